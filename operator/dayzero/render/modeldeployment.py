"""What a ModelDeployment becomes: the weight cache, its download Job, and per replica group a
StatefulSet of GPU pods behind a headless Service, one leader Service, and a PodDisruptionBudget.

Pure builders (cert-manager's "gather, decide, act"): the controller gathers the resolved revision,
the engine rung, the images and the replica groups into ``Inputs``; these functions only turn the
typed spec, the plan and those inputs into manifest dicts. Nothing here reads the cluster or the
Hub. docs/serving.md explains the objects, the commands and the constants.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from ..api.v1alpha1 import API_VERSION, ModelDeployment, Plan
from ..api.v1alpha1.modeldeployment import HubSource
from . import labels, names
from .durations import whole_seconds
from .errors import RenderError

Manifest = dict[str, Any]
EngineRung = Literal["vllm", "vllm-transformers", "transformers"]
"""The fallback ladder, in order: vLLM, vLLM with --model-impl transformers, Transformers."""

HTTP_PORT = 8000
# torch.distributed's conventional rendezvous port, for vLLM's native multi-node launcher.
MASTER_PORT = 29500
RAY_PORT = 6379
# The cache volume holds the Hugging Face cache layout: /models/hub/models--org--name/snapshots/
# <sha>, so (repo, SHA) is the cache key.
CACHE_MOUNT = "/models"
HUB_CACHE = f"{CACHE_MOUNT}/hub"
# Meta's repos carry the original consolidated .pth checkpoints next to the safetensors (800 GB
# more for 405B); neither engine reads them.
DOWNLOAD_EXCLUDE = "original/*"

# Startup budget: engine start-up, torch.compile and CUDA-graph capture, plus reading this pod's
# share of the weights from the cache at a slow-network-filesystem pace (~34 MiB/s).
STARTUP_BASE_S = 300
STARTUP_S_PER_GIB = 30
STARTUP_PERIOD_S = 10
READINESS_PERIOD_S = 10
LIVENESS_PERIOD_S = 20
PROBE_FAILURES = 3
PROBE_TIMEOUT_S = 5

# Non-root identity of the download Job and the wait-for-leader init container; fsGroup makes the
# operator-created PVC writable by it.
NON_ROOT_UID = 1000

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION: Manifest = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

ANNOTATION_REPO = "dayzero.dev/repo"
ANNOTATION_REVISION = "dayzero.dev/revision"
ANNOTATION_ENGINE = "dayzero.dev/engine"

# Set by the operator on every engine container; spec.engine.env may not redefine them.
RESERVED_ENV = frozenset({"HF_HUB_OFFLINE", "HF_HUB_CACHE", "NODE_RANK", "VLLM_HOST_IP"})

# Only the leader (rank 0) serves HTTP; workers pass their probes as long as they run.
LEADER_HEALTH = (
    "import os, urllib.request\n"
    "if os.environ.get('NODE_RANK') == '0':\n"
    f"    urllib.request.urlopen('http://127.0.0.1:{HTTP_PORT}/health', timeout=4)\n"
)
# Workers wait until the leader's DNS record exists (the headless Service publishes it as soon as
# the leader pod has an IP); the leader itself goes on at once.
WAIT_FOR_LEADER = (
    "import os, socket, time\n"
    "while os.environ['NODE_RANK'] != '0':\n"
    "    try:\n"
    "        socket.getaddrinfo(os.environ['LEADER_HOST'], None)\n"
    "        break\n"
    "    except OSError:\n"
    "        time.sleep(2)\n"
)
# Native multi-node: every rank runs `vllm serve` with the same arguments; ranks > 0 run headless.
NATIVE_LAUNCH = (
    'if [ "$NODE_RANK" = 0 ]; then exec vllm serve "$@"; fi\nexec vllm serve "$@" --headless\n'
)


@dataclass(frozen=True)
class Images:
    """Pinned images; spec.engine.image and spec.engine.transformersImage override the first two."""

    vllm: str
    """vLLM's OpenAI server, e.g. vllm/vllm-openai:v0.33.0."""
    transformers: str
    """Our Transformers serving image (images/transformers), running `transformers serve`."""
    dayzero: str
    """The operator's own image: the download Job (hf CLI) and the wait-for-leader init
    container."""


@dataclass(frozen=True)
class Group:
    """One replica group: one StatefulSet of ``plan.nodes`` pods."""

    index: int
    """0..replicas-1."""
    serving_hash: str
    """serving_hash() of what the group's pods serve."""


@dataclass(frozen=True)
class Inputs:
    """Everything the controller gathered from the cluster and the Hub for one render."""

    namespace: str
    name: str
    """ModelDeployment name."""
    uid: str
    """ModelDeployment uid, for ownerReferences."""
    resolved_revision: str
    """Commit SHA every pod serves."""
    engine: EngineRung
    """Current rung of the fallback ladder."""
    images: Images
    groups: tuple[Group, ...]
    """Replica groups. During a surge both hashes are present: only groups of the desired hash
    are rendered; the others keep their existing objects until the controller retires them."""
    active_hash: str | None
    """Hash the leader Service routes to; None: nothing is routable yet (route to the desired)."""
    cache_owners: tuple[tuple[str, str], ...] = ()
    """(name, uid) of every ModelDeployment sharing the weight cache: the PVC's and the download
    Job's owners. This ModelDeployment is always included."""


@dataclass(frozen=True)
class _Cache:
    key: str
    """Identity of the cache location, for the download Job's name and the serving hash."""
    volume: Manifest
    """Volume source mounted at /models."""
    pvc: str | None
    """Name of the PVC the operator creates, or None for existingClaim and sharedPath."""
    host_path: bool


def endpoint(mdep_name: str, namespace: str) -> str:
    """In-cluster OpenAI-compatible base URL of a ModelDeployment's leader Service."""
    return f"http://{names.leader_service_name(mdep_name)}.{namespace}.svc:{HTTP_PORT}/v1"


def startup_failure_threshold(plan: Plan) -> int:
    """Startup probe failures allowed: the budget grows with this pod's share of the weights."""
    share_gib = plan.weights_gib / plan.nodes
    return math.ceil((STARTUP_BASE_S + STARTUP_S_PER_GIB * share_gib) / STARTUP_PERIOD_S)


def serving_hash(
    mdep: ModelDeployment, plan: Plan, revision: str, engine: EngineRung, images: Images
) -> str:
    """10 hex characters identifying what the serving pods run: every input of the pod template
    (revision, engine rung and its image, plan layout, quantization, flags, env, cache location,
    priority), never the replica count. A change means new StatefulSets, not an in-place update
    that would restart a multi-node group's ranks one by one."""
    hub = _hub(mdep)
    spec = mdep.spec
    fingerprint: dict[str, Any] = {
        "repo": hub.repo if hub else None,
        "revision": revision,
        "engine": engine,
        "kind": spec.engine.kind,
        "image": engine_image(mdep, engine, images),
        "extraArgs": list(spec.engine.extra_args),
        "env": [[env.name, env.value] for env in spec.engine.env],
        "distributedBackend": spec.engine.distributed_backend,
        "dtype": spec.resources.dtype,
        "priorityClassName": spec.priority_class_name,
        "cache": _cache(mdep, hub.repo).key if hub else None,
        "plan": {
            "gpuProduct": plan.gpu_product,
            "nodes": plan.nodes,
            "gpusPerNode": plan.gpus_per_node,
            "tensorParallel": plan.tensor_parallel,
            "pipelineParallel": plan.pipeline_parallel,
            "maxModelLen": plan.max_model_len,
            "quantization": plan.quantization,
            "onlineQuantization": plan.online_quantization,
            "gpuMemoryUtilization": plan.gpu_memory_utilization,
            "weightsGiB": plan.weights_gib,
        },
    }
    if plan.nodes > 1:
        # The operator's image runs in multi-node pods only (wait-for-leader).
        fingerprint["dayzeroImage"] = images.dayzero
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def cache_key(mdep: ModelDeployment) -> str | None:
    """Identity of the cache a ModelDeployment fills (``pvc:<name>``, ``claim:<name>`` or
    ``path:<dir>``); None for a provider model. ModelDeployments with the same key share the
    cache, and are the ``Inputs.cache_owners``."""
    hub = _hub(mdep)
    return _cache(mdep, hub.repo).key if hub else None


def desired_cache(mdep: ModelDeployment, plan: Plan, inputs: Inputs) -> list[Manifest]:
    """The weight cache PVC (unless existingClaim or sharedPath) and the download Job of
    repo@resolved_revision; nothing for a provider model."""
    hub = _hub(mdep)
    if hub is None:
        return []
    cache = _cache(mdep, hub.repo)
    owners = _shared_owners(inputs)
    manifests: list[Manifest] = []
    if cache.pvc is not None:
        pvc = mdep.spec.weight_cache.pvc
        size = pvc.size if pvc else "500Gi"
        access_mode = pvc.access_mode if pvc else "ReadWriteMany"
        claim: Manifest = {
            "accessModes": [access_mode],
            "resources": {"requests": {"storage": size}},
        }
        if pvc and pvc.storage_class_name:
            claim["storageClassName"] = pvc.storage_class_name
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": _metadata(
                    cache.pvc,
                    inputs.namespace,
                    labels.shared("cache"),
                    owners,
                    {ANNOTATION_REPO: hub.repo},
                ),
                "spec": claim,
            }
        )
    manifests.append(_download_job(mdep, plan, inputs, hub=hub, cache=cache, owners=owners))
    return _unshared(manifests)


def desired_serving(mdep: ModelDeployment, plan: Plan, inputs: Inputs) -> list[Manifest]:
    """Per replica group of the desired hash a StatefulSet and its headless Service; the leader
    Service; a PodDisruptionBudget when there is more than one group. Nothing for a provider
    model.

    Groups of another hash (the old side of a surge) are not rendered: their content came from a
    spec that no longer exists, so the controller keeps their objects as they are until it retires
    them. Raises RenderError when the spec cannot be served as planned.
    """
    hub = _hub(mdep)
    if hub is None:
        return []
    if inputs.engine == "transformers" and plan.nodes > 1:
        raise RenderError(
            "spec.engine",
            f"the Transformers engine serves on one node, and the plan needs {plan.nodes} nodes",
        )
    _check_env(mdep)
    desired = serving_hash(mdep, plan, inputs.resolved_revision, inputs.engine, inputs.images)
    indexes = sorted({group.index for group in inputs.groups if group.serving_hash == desired})
    owner = [_owner(inputs.name, inputs.uid)]
    manifests: list[Manifest] = []
    for index in indexes:
        manifests.append(
            _statefulset(
                mdep, plan, inputs, hub=hub, serving_hash_=desired, index=index, owner=owner
            )
        )
        manifests.append(_headless_service(inputs, desired, index, owner))
    # Before anything is routable, route to what will become Ready first: the desired hash.
    manifests.append(_leader_service(inputs, inputs.active_hash or desired, owner))
    if len(indexes) > 1:
        manifests.append(_disruption_budget(plan, inputs, desired, owner))
    return _unshared(manifests)


# --- the cache -----------------------------------------------------------------------------------


def _hub(mdep: ModelDeployment) -> HubSource | None:
    return mdep.spec.source.hub


def _cache(mdep: ModelDeployment, repo: str) -> _Cache:
    """Where the weights live. No cache configured means a PVC with the spec's defaults: an
    emptyDir would download hundreds of GiB again on every pod start."""
    spec = mdep.spec.weight_cache
    if spec.existing_claim:
        return _Cache(
            key=f"claim:{spec.existing_claim}",
            volume={"persistentVolumeClaim": {"claimName": spec.existing_claim}},
            pvc=None,
            host_path=False,
        )
    if spec.shared_path:
        return _Cache(
            key=f"path:{spec.shared_path}",
            volume={"hostPath": {"path": spec.shared_path, "type": "DirectoryOrCreate"}},
            pvc=None,
            host_path=True,
        )
    pvc = names.cache_pvc_name(repo)
    return _Cache(
        key=f"pvc:{pvc}",
        volume={"persistentVolumeClaim": {"claimName": pvc}},
        pvc=pvc,
        host_path=False,
    )


def _download_job(
    mdep: ModelDeployment,
    plan: Plan,
    inputs: Inputs,
    *,
    hub: HubSource,
    cache: _Cache,
    owners: list[Manifest],
) -> Manifest:
    spec = mdep.spec.weight_cache
    revision = inputs.resolved_revision
    env: list[Manifest] = [
        {"name": "HF_HUB_CACHE", "value": HUB_CACHE},
        # Token file, xet cache and lock-free scratch go to the pod's /tmp, not the shared cache.
        {"name": "HF_HOME", "value": "/tmp/hf-home"},  # noqa: S108 -- /tmp is the pod's own emptyDir
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 -- the root filesystem is read-only
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if spec.hf_token_secret_ref is not None:
        ref = spec.hf_token_secret_ref
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    container: Manifest = {
        "name": "download",
        "image": inputs.images.dayzero,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "hf",
            "download",
            hub.repo,
            "--revision",
            revision,
            "--cache-dir",
            HUB_CACHE,
            "--exclude",
            DOWNLOAD_EXCLUDE,
        ],
        "env": env,
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"memory": "8Gi"},
        },
        "securityContext": _restricted_container(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "weights", "mountPath": CACHE_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 -- an emptyDir, see HF_HOME
        ],
    }
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            # A recursive chown of hundreds of GiB on every mount would take minutes.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "weights", **cache.volume},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if cache.host_path:
        # A shared path exists on the GPU nodes only: download there (without taking a GPU), or
        # the weights land on a CPU node's local disk.
        pod["nodeSelector"] = {GPU_PRODUCT_LABEL: plan.gpu_product}
        pod["tolerations"] = [GPU_TOLERATION]
    job_labels = labels.shared("download")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            names.download_job_name(hub.repo, revision, cache.key),
            inputs.namespace,
            job_labels,
            owners,
            {ANNOTATION_REPO: hub.repo, ANNOTATION_REVISION: revision},
        ),
        "spec": {
            "activeDeadlineSeconds": whole_seconds(spec.download_timeout),
            "backoffLimit": spec.download_retries,
            "template": {"metadata": {"labels": job_labels}, "spec": pod},
        },
    }


# --- serving -------------------------------------------------------------------------------------


def _check_env(mdep: ModelDeployment) -> None:
    for position, env in enumerate(mdep.spec.engine.env):
        if env.name in RESERVED_ENV:
            raise RenderError(
                f"spec.engine.env[{position}].name",
                f"{env.name} is set by the operator and cannot be overridden",
            )


def engine_image(mdep: ModelDeployment, engine: EngineRung, images: Images) -> str:
    """The image a rung of the ladder runs (spec.engine's overrides over the pinned ones)."""
    spec = mdep.spec.engine
    if engine == "transformers":
        return spec.transformers_image or images.transformers
    return spec.image or images.vllm


def _vllm_args(
    mdep: ModelDeployment, plan: Plan, inputs: Inputs, repo: str, leader: str
) -> list[str]:
    spec = mdep.spec
    args = [
        repo,
        "--revision",
        inputs.resolved_revision,
        "--served-model-name",
        inputs.name,
        repo,
        "--tensor-parallel-size",
        str(plan.tensor_parallel),
        "--pipeline-parallel-size",
        str(plan.pipeline_parallel),
        "--max-model-len",
        str(plan.max_model_len),
        "--dtype",
        spec.resources.dtype,
        "--gpu-memory-utilization",
        str(plan.gpu_memory_utilization),
    ]
    if plan.online_quantization:
        # A quantized checkpoint brings its own quantization_config; forcing the method there
        # would pick a slower kernel (awq over awq_marlin), so the flag is for online only.
        args += ["--quantization", plan.quantization]
    if inputs.engine == "vllm-transformers":
        args += ["--model-impl", "transformers"]
    args += ["--port", str(HTTP_PORT)]
    if plan.nodes > 1 and spec.engine.distributed_backend == "native":
        args += [
            "--distributed-executor-backend",
            "mp",
            "--nnodes",
            str(plan.nodes),
            "--node-rank",
            "$(NODE_RANK)",  # expanded by the kubelet from the container's env
            "--master-addr",
            leader,
            "--master-port",
            str(MASTER_PORT),
        ]
    elif plan.nodes > 1:
        args += ["--distributed-executor-backend", "ray"]
    return args + list(spec.engine.extra_args)


def _transformers_args(mdep: ModelDeployment, plan: Plan, inputs: Inputs, repo: str) -> list[str]:
    spec = mdep.spec
    args = [
        f"{repo}@{inputs.resolved_revision}",
        "--host",
        "0.0.0.0",  # noqa: S104 -- the pod's port must be reachable from its Services
        "--port",
        str(HTTP_PORT),
        "--dtype",
        spec.resources.dtype,
    ]
    if plan.online_quantization:
        if plan.quantization != "bitsandbytes":
            raise RenderError(
                "spec.resources.quantization",
                f"the Transformers engine cannot quantize to {plan.quantization} while loading"
                " (it supports bitsandbytes only); serve a pre-quantized checkpoint instead",
            )
        args += ["--quantization", "bnb-4bit"]
    if spec.engine.kind == "transformers":
        # extraArgs were written for the engine the user chose; on a fallback from vLLM they are
        # vLLM flags that `transformers serve` would reject.
        args += list(spec.engine.extra_args)
    return args


def _command(
    mdep: ModelDeployment, plan: Plan, inputs: Inputs, repo: str, leader: str
) -> tuple[list[str], list[str]]:
    """The engine container's command and args for the current rung and plan."""
    if inputs.engine == "transformers":
        return ["transformers", "serve"], _transformers_args(mdep, plan, inputs, repo)
    args = _vllm_args(mdep, plan, inputs, repo, leader)
    if plan.nodes == 1:
        return ["vllm", "serve"], args
    if mdep.spec.engine.distributed_backend == "native":
        return ["sh", "-c", NATIVE_LAUNCH, "vllm"], args
    # Ray: the leader starts the head and serves; workers join it and block.
    ray = (
        'if [ "$NODE_RANK" = 0 ]; then\n'
        f'  ray start --head --port={RAY_PORT} --node-ip-address="$VLLM_HOST_IP"'
        " --disable-usage-stats || exit 1\n"
        '  exec vllm serve "$@"\n'
        "fi\n"
        f'exec ray start --address={leader}:{RAY_PORT} --node-ip-address="$VLLM_HOST_IP"'
        " --disable-usage-stats --block\n"
    )
    return ["sh", "-c", ray, "vllm"], args


def _probes(plan: Plan) -> Manifest:
    check: Manifest
    if plan.nodes > 1:
        check = {"exec": {"command": ["python3", "-c", LEADER_HEALTH]}}
    else:
        check = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "startupProbe": {
            **check,
            "periodSeconds": STARTUP_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": startup_failure_threshold(plan),
        },
        "readinessProbe": {
            **check,
            "periodSeconds": READINESS_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": PROBE_FAILURES,
        },
        "livenessProbe": {
            **check,
            "periodSeconds": LIVENESS_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": PROBE_FAILURES,
        },
    }


def _statefulset(
    mdep: ModelDeployment,
    plan: Plan,
    inputs: Inputs,
    *,
    hub: HubSource,
    serving_hash_: str,
    index: int,
    owner: list[Manifest],
) -> Manifest:
    name = names.statefulset_name(inputs.name, serving_hash_, index)
    leader = names.leader_host(inputs.name, serving_hash_, index, inputs.namespace)
    pod_labels = labels.serving(inputs.name, serving_hash_, index)
    selector = labels.group_selector(inputs.name, serving_hash_, index)
    annotations = {
        ANNOTATION_REPO: hub.repo,
        ANNOTATION_REVISION: inputs.resolved_revision,
        ANNOTATION_ENGINE: inputs.engine,
    }
    multi_node = plan.nodes > 1
    gpus = str(plan.gpus_per_node)

    env: list[Manifest] = [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HF_HUB_CACHE", "value": HUB_CACHE},
    ]
    if multi_node:
        env += [
            _field_env("NODE_RANK", f"metadata.labels['{labels.POD_INDEX}']"),
            # vLLM and Ray advertise this address to the other ranks.
            _field_env("VLLM_HOST_IP", "status.podIP"),
        ]
    env += [{"name": item.name, "value": item.value} for item in mdep.spec.engine.env]

    command, args = _command(mdep, plan, inputs, hub.repo, leader)
    engine: Manifest = {
        "name": "engine",
        "image": engine_image(mdep, inputs.engine, inputs.images),
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": {"requests": {GPU_RESOURCE: gpus}, "limits": {GPU_RESOURCE: gpus}},
        **_probes(plan),
        # The lifecycle classifier reads the engine's last words from here.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "weights", "mountPath": CACHE_MOUNT, "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 -- a memory emptyDir
        ],
    }
    pod: Manifest = {
        "automountServiceAccountToken": False,
        # Service env vars would inject VLLM_PORT=tcp://... for a Service named vllm, which vLLM
        # reads as its own setting.
        "enableServiceLinks": False,
        "containers": [engine],
        "nodeSelector": {GPU_PRODUCT_LABEL: plan.gpu_product},
        "tolerations": [GPU_TOLERATION],
        "volumes": [
            {"name": "weights", **_cache(mdep, hub.repo).volume},
            # NCCL and PyTorch's shared-memory transport outgrow the container runtime's 64 MiB.
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if mdep.spec.priority_class_name:
        pod["priorityClassName"] = mdep.spec.priority_class_name
    if multi_node:
        pod["affinity"] = _group_affinity(selector)
        pod["initContainers"] = [_wait_for_leader(inputs, leader)]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(name, inputs.namespace, pod_labels, owner, annotations),
        "spec": {
            "replicas": plan.nodes,
            # Ranks start together: a rank waiting for its predecessor to be Ready would deadlock.
            "podManagementPolicy": "Parallel",
            "serviceName": names.headless_service_name(inputs.name, serving_hash_, index),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": pod,
            },
        },
    }


def _group_affinity(selector: dict[str, str]) -> Manifest:
    """One pod of a group per node (required); the group's pods in one zone (preferred)."""
    term = {"labelSelector": {"matchLabels": selector}}
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {**term, "topologyKey": "kubernetes.io/hostname"}
            ]
        },
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {**term, "topologyKey": "topology.kubernetes.io/zone"},
                }
            ]
        },
    }


def _wait_for_leader(inputs: Inputs, leader: str) -> Manifest:
    return {
        "name": "wait-for-leader",
        "image": inputs.images.dayzero,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", WAIT_FOR_LEADER],
        "env": [
            _field_env("NODE_RANK", f"metadata.labels['{labels.POD_INDEX}']"),
            {"name": "LEADER_HOST", "value": leader},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": {
            **_restricted_container(),
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
        },
    }


def _headless_service(
    inputs: Inputs, serving_hash_: str, index: int, owner: list[Manifest]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            names.headless_service_name(inputs.name, serving_hash_, index),
            inputs.namespace,
            labels.serving(inputs.name, serving_hash_, index),
            owner,
        ),
        "spec": {
            "clusterIP": "None",
            # Ranks must find the leader before any of them is Ready.
            "publishNotReadyAddresses": True,
            "selector": labels.group_selector(inputs.name, serving_hash_, index),
            "ports": [_http_port()],
        },
    }


def _leader_service(inputs: Inputs, routed_hash: str, owner: list[Manifest]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            names.leader_service_name(inputs.name),
            inputs.namespace,
            {**labels.common(inputs.name), labels.COMPONENT: "serving"},
            owner,
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.leader_selector(inputs.name, routed_hash),
            "ports": [_http_port()],
        },
    }


def _disruption_budget(
    plan: Plan, inputs: Inputs, serving_hash_: str, owner: list[Manifest]
) -> Manifest:
    """At most one group's worth of pods disrupted at a time, so the other groups keep serving.

    Only rendered with two groups or more: with one group any disruption is an outage anyway,
    and a budget that forbids it would block node drains forever. A PDB counts pods, not groups,
    so with multi-node groups it bounds the number of pods (plan.nodes), not which groups they
    belong to.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(
            names.pod_disruption_budget_name(inputs.name, serving_hash_),
            inputs.namespace,
            {
                **labels.common(inputs.name),
                **labels.hash_selector(inputs.name, serving_hash_),
            },
            owner,
        ),
        "spec": {
            "maxUnavailable": plan.nodes,
            "selector": {"matchLabels": labels.hash_selector(inputs.name, serving_hash_)},
            # A crash-looping pod must not hold a drain hostage.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


# --- small pieces --------------------------------------------------------------------------------


def _owner(name: str, uid: str, *, controller: bool = True) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": controller,
    }


def _shared_owners(inputs: Inputs) -> list[Manifest]:
    """One non-controller reference per ModelDeployment sharing the cache: the garbage collector
    deletes the object once the last of them is gone."""
    owners = sorted({*inputs.cache_owners, (inputs.name, inputs.uid)})
    return [_owner(name, uid, controller=False) for name, uid in owners]


def _metadata(
    name: str,
    namespace: str,
    object_labels: dict[str, str],
    owners: list[Manifest],
    annotations: dict[str, str] | None = None,
) -> Manifest:
    metadata: Manifest = {
        "name": name,
        "namespace": namespace,
        "labels": object_labels,
        "ownerReferences": owners,
    }
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _unshared(manifests: list[Manifest]) -> list[Manifest]:
    """Builders reuse label and selector dicts; callers get objects that share nothing (a JSON
    round trip, since deepcopy would keep the sharing)."""
    unshared: list[Manifest] = json.loads(json.dumps(manifests))
    return unshared


def _field_env(name: str, field_path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _http_port() -> Manifest:
    return {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}


def _restricted_container() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
