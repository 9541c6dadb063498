"""Gather the state of the world a ModelDeployment reconcile decides from, in one place.

Pods are reduced to the few facts the lifecycle decisions need (scheduled, ready, how the engine
container last terminated), so the pure layer never parses raw pod status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .client import Kube, Manifest

MDEP_LABEL = "dayzero.dev/model-deployment"
HASH_LABEL = "dayzero.dev/serving-hash"
GROUP_LABEL = "dayzero.dev/group"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Termination:
    """How a container last terminated."""

    reason: str | None
    message: str | None
    exit_code: int | None


@dataclass(frozen=True)
class PodState:
    """What a reconcile needs to know about one serving pod."""

    name: str
    serving_hash: str
    group: str
    ordinal: int
    phase: str
    ready: bool
    unschedulable: str | None
    restarts: int
    waiting_reason: str | None
    terminated: Termination | None
    deleting: bool


@dataclass
class Observed:
    """Children of one ModelDeployment as they are now."""

    statefulsets: list[Manifest] = field(default_factory=list)
    pods: list[PodState] = field(default_factory=list)
    leader_service: Manifest | None = None


def _termination(status: Manifest) -> Termination | None:
    for key in ("state", "lastState"):
        terminated = (status.get(key) or {}).get("terminated")
        if terminated:
            return Termination(
                terminated.get("reason"), terminated.get("message"), terminated.get("exitCode")
            )
    return None


def pod_state(pod: Manifest) -> PodState:
    """Reduce a pod to the facts the lifecycle decisions use."""
    meta, status = pod["metadata"], pod.get("status", {})
    labels = meta.get("labels", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    scheduled = conditions.get("PodScheduled", {})
    unschedulable = (
        scheduled.get("message") or "Unschedulable"
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
        else None
    )
    containers = status.get("containerStatuses") or []
    engine = containers[0] if containers else {}
    waiting = (engine.get("state") or {}).get("waiting") or {}
    return PodState(
        name=meta["name"],
        serving_hash=labels.get(HASH_LABEL, ""),
        group=labels.get(GROUP_LABEL, ""),
        ordinal=int(labels.get(POD_INDEX_LABEL, meta["name"].rsplit("-", 1)[-1]) or 0),
        phase=status.get("phase", "Pending"),
        ready=conditions.get("Ready", {}).get("status") == "True",
        unschedulable=unschedulable,
        restarts=int(engine.get("restartCount", 0)),
        waiting_reason=waiting.get("reason"),
        terminated=_termination(engine) if engine else None,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def gather_model_deployment(kube: Kube, namespace: str, selector: str, leader: str) -> Observed:
    """Serving children of one ModelDeployment, found by its label selector. (Shared cache
    objects carry no per-deployment label; the controller reads them by name.)"""
    return Observed(
        statefulsets=kube.list("StatefulSet", namespace, selector),
        pods=[pod_state(p) for p in kube.list("Pod", namespace, selector)],
        leader_service=kube.get("Service", namespace, leader) if leader else None,
    )


def job_state(job: Manifest | None) -> tuple[str, str]:
    """(state, message) of a Job: Missing, Running, Succeeded, or Failed with its reason."""
    if job is None:
        return "Missing", "not created yet"
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("status") != "True":
            continue
        if condition["type"] == "Complete":
            return "Succeeded", "download complete"
        if condition["type"] == "Failed":
            return "Failed", f"{condition.get('reason', '')}: {condition.get('message', '')}"
    return "Running", f"{job.get('status', {}).get('active', 0)} pod(s) active"


def free_gpu_blocks(
    kube: Kube, gpu_product: str, exclude: frozenset[str] = frozenset()
) -> list[int]:
    """Free GPUs on each schedulable node of this product, largest first (for clear reasons).

    ``exclude`` names the deployment's own pods: a half-placed group's GPUs are part of the ask.
    """
    nodes = [
        n
        for n in kube.list("Node", None, f"nvidia.com/gpu.product={gpu_product}")
        if not n.get("spec", {}).get("unschedulable")
    ]
    used: dict[str, int] = {}
    for pod in kube.list("Pod", None):
        node = pod.get("spec", {}).get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"]["name"] in exclude:
            continue
        for container in pod["spec"].get("containers", []):
            requests = container.get("resources", {}).get("requests", {})
            used[node] = used.get(node, 0) + int(requests.get(GPU, 0))
    free = [
        int(n.get("status", {}).get("allocatable", {}).get(GPU, 0))
        - used.get(n["metadata"]["name"], 0)
        for n in nodes
    ]
    return sorted(free, reverse=True)
