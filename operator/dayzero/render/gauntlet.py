"""What a Gauntlet becomes: the harness's RunSpec in a ConfigMap, an evaluation Job, and the
least privilege that Job needs to hand its result back.

Pure builders. The controller gathers the ModelDeployments the targets name, the gateway URL, the
dataset ConfigMaps' hashes and the image into ``Inputs``; ``resolve_targets`` turns the API's
targets into URLs and provenance, and ``desired_run`` turns all of it into manifest dicts. The
Job's ServiceAccount may only get, update and patch the one result ConfigMap created for it
beforehand (``resourceNames``): a compromised harness can write a verdict, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..api.v1alpha1 import API_VERSION, Gauntlet, ModelDeployment
from ..api.v1alpha1.base import DNS_LABEL
from ..api.v1alpha1.gauntlet import DatasetRef, Target
from . import labels, names
from .errors import RenderError
from .lifecycle import LADDER
from .modeldeployment import Images, engine_image

Manifest = dict[str, Any]

GAUNTLET_LABEL = "dayzero.dev/gauntlet"
RUN_LABEL = "dayzero.dev/gauntlet-run"
EVAL_KEY_LABEL = "dayzero.dev/eval-key"
EVAL_KEY_ENV = "DAYZERO_EVAL_KEY"
"""The Job's copy of the eval key, which the harness writes into its result."""
COMPONENT = "gauntlet"
SPEC_KEY = "spec.yaml"
RESULT_KEY = "result.json"
SPEC_MOUNT = "/etc/dayzero/gauntlet"
REPORT_DIR = "/var/run/dayzero/report"
DATASET_MOUNT = "/var/run/dayzero/datasets"
# Non-root identity of the evaluation pod: the dayzero image's own user.
NON_ROOT_UID = 10001
# A harness run is bounded per request already; the Job's deadline is the backstop.
ACTIVE_DEADLINE_S = 2 * 3600
TTL_AFTER_FINISHED_S = 24 * 3600
# Crashes and evictions are retried; a verdict (exit 1), bad input (2) or an endpoint that never
# answered (3) is final, so podFailurePolicy fails the Job at once on those.
BACKOFF_LIMIT = 2
VERDICT_EXIT_CODES = (1, 2, 3)


@dataclass(frozen=True)
class ResolvedTarget:
    """One target as the harness will reach it."""

    name: str
    """Unique within the run: the ModelDeployment, the gateway's lane or tag, or endpoint-<i>."""
    endpoint: str
    model: str
    model_deployment: str | None = None
    """The ModelDeployment behind it, when there is one (what a promotion points the tag at)."""
    family: str | None = None
    api_key_secret: tuple[str, str] | None = None
    """(Secret, key) of a provider's API key, passed to the Job as an environment variable."""
    provenance: Mapping[str, str] = field(default_factory=dict)
    """modelSha, engine and image, as far as they are known."""


@dataclass(frozen=True)
class Inputs:
    """Everything the controller gathered for one render."""

    namespace: str
    name: str
    uid: str
    images: Images
    gauntlet_image: str
    """The image that runs the harness (``spec.image`` wins over it)."""
    model_deployments: Mapping[str, ModelDeployment] = field(default_factory=dict)
    """The ModelDeployments the targets and baseline name, by name (absent ones are missing)."""
    gateway_url: str | None = None
    """The gateway's in-cluster base URL, for gateway targets and the judge."""
    dataset_hashes: Mapping[str, str] = field(default_factory=dict)
    """``sha256:<hex>`` of each ConfigMap dataset's content, by dataset name."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where evaluation pods may run (an operator flag; CPU nodes, usually)."""
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """The routing document's prices (model as sent -> USD per million tokens), for cost."""


class NotReadyError(Exception):
    """A target cannot be reached yet (its ModelDeployment is missing or not Ready)."""


def _ready_reason(mdep: ModelDeployment) -> str | None:
    status = mdep.status
    ready = next((c for c in (status.conditions if status else []) if c.type == "Ready"), None)
    if ready is None or ready.status != "True":
        return f"not Ready ({ready.reason}: {ready.message})" if ready else "not Ready yet"
    if status is None or not status.endpoint:
        return "Ready but no endpoint in status"
    return None


def target_name(raw: str) -> str:
    """A target's name in the harness's reports: a DNS label (a ModelDeployment's own name when
    it is one, which is the usual case)."""
    if len(raw) <= names.LABEL_MAX and re.fullmatch(DNS_LABEL, raw):
        return raw
    return names.dns_label(raw)


def _provider_env(index: int) -> str:
    return f"DAYZERO_TARGET_{index}_API_KEY"


def resolve_target(target: Target, where: str, index: int, inputs: Inputs) -> ResolvedTarget:
    """One API target as a URL, a model name and provenance.

    Raises RenderError for a spec that cannot be resolved (no gateway configured) and
    NotReadyError while a ModelDeployment is missing or not Ready.
    """
    if target.model_deployment_ref is not None:
        name = target.model_deployment_ref.name
        mdep = inputs.model_deployments.get(name)
        if mdep is None:
            raise NotReadyError(f"{where}.modelDeploymentRef: ModelDeployment {name} not found")
        why = _ready_reason(mdep)
        if why is not None:
            raise NotReadyError(f"{where}.modelDeploymentRef: ModelDeployment {name} is {why}")
        status = mdep.status
        assert status is not None  # noqa: S101 - checked by _ready_reason
        assert status.endpoint  # noqa: S101 - checked by _ready_reason
        provider = mdep.spec.source.provider
        provenance: dict[str, str] = {}
        if status.resolved_revision:
            provenance["modelSha"] = status.resolved_revision
        if status.engine:
            provenance["engine"] = status.engine
        rung = next((r for r in LADDER if r == status.engine), None)
        if provider is None and rung is not None:
            provenance["image"] = engine_image(mdep, rung, inputs.images)
        key = provider.api_key_secret_ref if provider else None
        return ResolvedTarget(
            name=target_name(name),
            endpoint=status.endpoint,
            # vLLM and transformers serve the model under the ModelDeployment's name.
            model=target.model or (provider.model if provider else name),
            model_deployment=name,
            api_key_secret=(key.name, key.key) if key else None,
            provenance=provenance,
        )
    if target.gateway is not None:
        if not inputs.gateway_url:
            raise RenderError(
                f"{where}.gateway", "the operator has no --gateway URL to reach the gateway by"
            )
        return ResolvedTarget(
            name=target_name(target.gateway),
            endpoint=inputs.gateway_url,
            model=target.model or target.gateway,
        )
    assert target.endpoint is not None  # noqa: S101 - the API's CEL rule: exactly one is set
    return ResolvedTarget(
        name=f"endpoint-{index}", endpoint=target.endpoint, model=target.model or "default"
    )


def resolve_targets(
    gauntlet: Gauntlet, inputs: Inputs
) -> tuple[list[ResolvedTarget], ResolvedTarget | None]:
    """The candidates (names made unique) and the baseline."""
    spec = gauntlet.spec
    resolved: list[ResolvedTarget] = []
    seen: set[str] = set()
    for i, target in enumerate(spec.targets):
        one = resolve_target(target, f"spec.targets[{i}]", i, inputs)
        if one.name in seen:
            one = ResolvedTarget(**{**one.__dict__, "name": names.dns_label(one.name, f"-{i}")})
        seen.add(one.name)
        resolved.append(one)
    baseline = None
    if spec.baseline is not None:
        baseline = resolve_target(spec.baseline, "spec.baseline", len(spec.targets), inputs)
        renamed = names.dns_label(f"baseline-{baseline.name}")
        baseline = ResolvedTarget(**{**baseline.__dict__, "name": renamed})
    return resolved, baseline


def dataset_path(dataset: DatasetRef) -> str:
    """Where the Job sees a dataset's JSONL file."""
    if dataset.pvc is not None:
        return f"{DATASET_MOUNT}/{dataset.name}/{dataset.pvc.path.lstrip('/')}"
    return f"{DATASET_MOUNT}/{dataset.name}/{dataset.name}.jsonl"


def eval_key(
    gauntlet: Gauntlet,
    targets: list[ResolvedTarget],
    baseline: ResolvedTarget | None,
    dataset_hashes: Mapping[str, str],
) -> str | None:
    """What makes two runs the same evaluation: each model's SHA and engine, each dataset's hash,
    and the suites and gates asked for. None when a part cannot be pinned (an endpoint or the
    gateway, whose model may change under the same name; a dataset on a volume, which the
    operator cannot hash): such a run is never reused."""
    models = []
    for t in [*targets, *([baseline] if baseline else [])]:
        sha, engine = t.provenance.get("modelSha"), t.provenance.get("engine")
        if not sha or not engine:
            return None
        models.append([t.name, sha, engine])
    datasets = []
    for d in gauntlet.spec.datasets:
        digest = dataset_hashes.get(d.name)
        if d.pvc is not None or digest is None:
            return None
        datasets.append([d.name, digest])
    spec = gauntlet.spec
    asked = {
        "models": models,
        "datasets": datasets,
        "suites": spec.suites.to_wire(),
        "gates": spec.gates.to_wire(),
        "judge": spec.judge.to_wire() if spec.judge else None,
    }
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _target_doc(target: ResolvedTarget, index: int) -> Manifest:
    doc: Manifest = {"name": target.name, "endpoint": target.endpoint, "model": target.model}
    if target.family:
        doc["family"] = target.family
    if target.api_key_secret:
        doc["apiKeyEnv"] = _provider_env(index)
    if target.provenance:
        doc["provenance"] = dict(target.provenance)
    return doc


def run_spec(
    gauntlet: Gauntlet,
    targets: list[ResolvedTarget],
    baseline: ResolvedTarget | None,
    inputs: Inputs,
) -> Manifest:
    """The harness's RunSpec document (camelCase), as ``dayzero gauntlet run --spec`` reads it."""
    spec = gauntlet.spec
    doc: Manifest = {
        "targets": [_target_doc(t, i) for i, t in enumerate(targets)],
        "suites": spec.suites.to_wire(),
        "gates": spec.gates.to_wire(),
        "concurrency": spec.concurrency,
        "seed": spec.seed,
    }
    if baseline is not None:
        doc["baseline"] = _target_doc(baseline, len(targets))
    sent = {t.model for t in [*targets, *([baseline] if baseline else [])]}
    prices = {m: dict(p) for m, p in sorted(inputs.prices.items()) if m in sent}
    if prices:
        doc["prices"] = prices
    if spec.judge is not None:
        if not inputs.gateway_url:
            raise RenderError(
                "spec.judge.gateway", "the operator has no --gateway URL to reach the judge by"
            )
        judge: Manifest = {"endpoint": inputs.gateway_url, "model": spec.judge.gateway}
        if spec.judge.family:
            judge["family"] = spec.judge.family
        doc["judge"] = judge
    if spec.datasets:
        # The quality suite reads one file: the first dataset.
        doc["harness"] = {"dataset": dataset_path(spec.datasets[0])}
    return doc


def _owner(inputs: Inputs) -> list[Manifest]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Gauntlet",
            "name": inputs.name,
            "uid": inputs.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def object_labels(gauntlet: str, run: str | None = None) -> dict[str, str]:
    """Labels of every child of one Gauntlet (and of one run of it)."""
    out = {
        labels.NAME: "dayzero-gauntlet",
        labels.INSTANCE: labels.value(gauntlet),
        labels.MANAGED_BY: labels.MANAGER,
        labels.COMPONENT: COMPONENT,
        GAUNTLET_LABEL: labels.value(gauntlet),
    }
    if run is not None:
        out[RUN_LABEL] = run
    return out


def run_id(spec_text: str, image: str) -> str:
    """8 hex characters naming one run: the RunSpec and the image that reads it."""
    return names.digest(f"{image}\n{spec_text}", 8)


def job_name(gauntlet: str, run: str) -> str:
    """``<gauntlet>-<run>``: at most 63 characters (the Job controller labels pods with it)."""
    return names.dns_label(gauntlet, f"-{run}")


def result_configmap_name(gauntlet: str, run: str) -> str:
    return names.dns_label(gauntlet, f"-{run}-result")


def spec_configmap_name(gauntlet: str, run: str) -> str:
    return names.dns_label(gauntlet, f"-{run}-spec")


def service_account_name(gauntlet: str) -> str:
    return names.dns_label(gauntlet, "-gauntlet")


@dataclass(frozen=True)
class Rendered:
    """One run's objects, in the order they are applied, and what the controller records."""

    run: str
    job: str
    result_configmap: str
    eval_key: str | None
    targets: tuple[ResolvedTarget, ...]
    objects: list[Manifest]
    spec_text: str


def desired_run(gauntlet: Gauntlet, inputs: Inputs) -> Rendered:
    """Every object of one evaluation run; RenderError or NotReadyError when it cannot run."""
    targets, baseline = resolve_targets(gauntlet, inputs)
    doc = run_spec(gauntlet, targets, baseline, inputs)
    text = yaml.safe_dump(doc, sort_keys=False)
    image = gauntlet.spec.image or inputs.gauntlet_image
    run = run_id(text, image)
    key = eval_key(gauntlet, targets, baseline, inputs.dataset_hashes)
    ns, name = inputs.namespace, inputs.name
    job, result = job_name(name, run), result_configmap_name(name, run)
    spec_cm, sa = spec_configmap_name(name, run), service_account_name(name)
    run_labels = object_labels(name, run)
    owner = _owner(inputs)

    def meta(obj_name: str, extra: Mapping[str, str] | None = None) -> Manifest:
        out: Manifest = {
            "name": obj_name,
            "namespace": ns,
            "labels": {**run_labels, **(extra or {})},
            "ownerReferences": owner,
        }
        return out

    key_label = {EVAL_KEY_LABEL: key} if key else {}
    objects: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(spec_cm),
            "data": {SPEC_KEY: text},
        },
        # Created empty; only the harness fills it, through the Role below.
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(result, key_label)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {**meta(sa), "labels": object_labels(name)},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {**meta(sa), "labels": object_labels(name)},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [result],
                    "verbs": ["get", "update", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {**meta(sa), "labels": object_labels(name)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
        _job(
            gauntlet,
            inputs,
            targets=targets,
            baseline=baseline,
            image=image,
            metadata=meta(job, key_label),
            key=key,
            spec_cm=spec_cm,
            result=result,
            service_account=sa,
        ),
    ]
    return Rendered(
        run=run,
        job=job,
        result_configmap=result,
        eval_key=key,
        targets=tuple(targets),
        objects=json.loads(json.dumps(objects)),
        spec_text=text,
    )


def _job(
    gauntlet: Gauntlet,
    inputs: Inputs,
    *,
    targets: list[ResolvedTarget],
    baseline: ResolvedTarget | None,
    image: str,
    metadata: Manifest,
    spec_cm: str,
    result: str,
    service_account: str,
    key: str | None,
) -> Manifest:
    env: list[Manifest] = [
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 -- an emptyDir; the root is read-only
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if key:
        env.append({"name": EVAL_KEY_ENV, "value": key})
    for i, t in enumerate([*targets, *([baseline] if baseline else [])]):
        if t.api_key_secret:
            secret, key = t.api_key_secret
            ref = {"secretKeyRef": {"name": secret, "key": key}}
            env.append({"name": _provider_env(i), "valueFrom": ref})
    mounts: list[Manifest] = [
        {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
        {"name": "report", "mountPath": REPORT_DIR},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 -- an emptyDir, see HOME
    ]
    volumes: list[Manifest] = [
        {"name": "spec", "configMap": {"name": spec_cm}},
        {"name": "report", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    for i, d in enumerate(gauntlet.spec.datasets):
        volume = f"dataset-{i}"
        mounts.append({"name": volume, "mountPath": f"{DATASET_MOUNT}/{d.name}", "readOnly": True})
        if d.config_map is not None:
            items = [{"key": d.config_map.key, "path": f"{d.name}.jsonl"}]
            volumes.append(
                {"name": volume, "configMap": {"name": d.config_map.name, "items": items}}
            )
        elif d.pvc is not None:
            claim = {"claimName": d.pvc.claim_name, "readOnly": True}
            volumes.append({"name": volume, "persistentVolumeClaim": claim})
    container: Manifest = {
        "name": "gauntlet",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "dayzero",
            "gauntlet",
            "run",
            "--spec",
            f"{SPEC_MOUNT}/{SPEC_KEY}",
            "--out",
            REPORT_DIR,
            "--result-configmap",
            f"{inputs.namespace}/{result}",
        ],
        "env": env,
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    pod: Manifest = {
        "serviceAccountName": service_account,
        # The token is what writes the result; it reaches nothing but that ConfigMap.
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if inputs.node_selector:
        pod["nodeSelector"] = dict(inputs.node_selector)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "gauntlet",
                            "operator": "In",
                            "values": list(VERDICT_EXIT_CODES),
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": metadata["labels"]}, "spec": pod},
        },
    }
