"""kwok stages that make an engine container fail the way real engines do.

A pod whose engine image is one of ``FAILURES`` never becomes Ready: kwok gives it a crash-looping
container whose termination message is the engine's own tell-tale line, which is what the
operator's fallback ladder reads (``terminationMessagePolicy: FallbackToLogsOnError``).
"""

from __future__ import annotations

import json
from typing import Any

Json = dict[str, Any]
REGISTRY = "registry.dayzero.test/engine"

# image -> (reason, exit code, termination message)
FAILURES: dict[str, tuple[str, int, str]] = {
    f"{REGISTRY}:unsupported-architecture": (
        "Error",
        1,
        "INFO Resolved architecture: FancyNewForCausalLM\n"
        "ValueError: Model architectures ['FancyNewForCausalLM'] are not supported for now. "
        "Supported architectures: dict_keys(['LlamaForCausalLM', 'Qwen3ForCausalLM'])",
    ),
    f"{REGISTRY}:crashloop": ("Error", 139, "Fatal Python error: Segmentation fault"),
    f"{REGISTRY}:oom": ("OOMKilled", 137, "torch.OutOfMemoryError: CUDA out of memory."),
}
IMAGE_KEY = ".spec.containers.[0].image"


def _template(reason: str, exit_code: int, message: str) -> str:
    return f"""{{{{ $now := Now }}}}
conditions:
- lastTransitionTime: {{{{ $now | Quote }}}}
  reason: ContainersNotReady
  status: "False"
  type: Ready
- lastTransitionTime: {{{{ $now | Quote }}}}
  reason: ContainersNotReady
  status: "False"
  type: ContainersReady
containerStatuses:
{{{{ range $index, $item := .spec.containers }}}}
- image: {{{{ $item.image | Quote }}}}
  name: {{{{ $item.name | Quote }}}}
  ready: false
  started: false
  restartCount: 3
  state:
    waiting:
      reason: CrashLoopBackOff
      message: back-off 40s restarting failed container
  lastState:
    terminated:
      exitCode: {exit_code}
      reason: {reason}
      message: {json.dumps(message)}
      startedAt: {{{{ $now | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
phase: Running
startTime: {{{{ $now | Quote }}}}
"""


def engine_failure_stages() -> list[Json]:
    """One stage per failure image: Pending and initialised -> crash-looping, never Ready."""
    stages = []
    for image, (reason, code, message) in sorted(FAILURES.items()):
        name = "dayzero-engine-" + image.rsplit(":", 1)[-1]
        stages.append(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Stage",
                "metadata": {"name": name},
                "spec": {
                    "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                    "selector": {
                        "matchExpressions": [
                            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                            {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                            {
                                "key": '.status.conditions.[] | select( .type == "Initialized" )'
                                " | .status",
                                "operator": "In",
                                "values": ["True"],
                            },
                            {"key": IMAGE_KEY, "operator": "In", "values": [image]},
                        ]
                    },
                    "delay": {"durationMilliseconds": 100, "jitterDurationMilliseconds": 100},
                    "next": {"statusTemplate": _template(reason, code, message)},
                },
            }
        )
    return stages


def exclude_failure_images(stage: Json) -> None:
    """Keep a stock stage (pod-ready) away from the pods the failure stages own."""
    expressions = stage["spec"]["selector"].setdefault("matchExpressions", [])
    expressions.append({"key": IMAGE_KEY, "operator": "NotIn", "values": sorted(FAILURES)})
