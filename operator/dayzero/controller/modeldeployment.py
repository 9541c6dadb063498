"""ModelDeployment reconcile: gather, decide with pure functions, act with server-side apply.

``reconcile()`` always starts from a fresh read of the object, so it is idempotent and safe to
run after an operator restart in the middle of a previous run: names are deterministic and every
write is an apply, so nothing is ever created twice.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from ..api.errors import field_error
from ..api.v1alpha1 import ModelDeployment, ModelDeploymentStatus, Plan
from ..hub import HubError
from ..kube import Kube, KubeError, Manifest
from ..kube.events import post_event
from ..kube.gather import (
    HASH_LABEL,
    MDEP_LABEL,
    Observed,
    PodState,
    free_gpu_blocks,
    gather_model_deployment,
    job_state,
)
from ..planner import ModelFacts, PlanError, plan
from ..render import labels, lifecycle
from ..render.durations import parse_duration
from ..render.modeldeployment import (
    Group,
    Images,
    Inputs,
    desired_cache,
    desired_serving,
    endpoint,
    serving_hash,
)
from ..render.names import leader_service_name
from ..render.routing import DEFAULT_PROVIDER_URLS

log = logging.getLogger(__name__)

# Re-check soon while something is changing; rarely once settled (watch events wake us anyway).
BUSY, SETTLED = 5.0, 120.0
# Hub metadata is fetched once per (repo, revision) and kept this long.
FACTS_TTL = 600.0
MAX_GROUP_RESTARTS = 3


class SecretForbiddenError(Exception):
    """A Secret the spec names is forbidden to the operator."""


class HubFetcher(Protocol):
    def __call__(self, repo: str, revision: str, token: str | None) -> tuple[str, ModelFacts]:
        """Resolve the revision to a commit SHA and read the model's facts, never its weights."""
        ...


@dataclass
class Deps:
    """What a reconcile needs, created once at start-up (kopf memo), never module globals."""

    kube: Kube
    images: Images
    fetch: HubFetcher
    probe: Callable[[str], str | None]
    provider_urls: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_URLS))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    facts: dict[tuple[str, str], tuple[float, str, ModelFacts]] = field(default_factory=dict)


class _Status(lifecycle.StatusDraft[ModelDeploymentStatus]):
    """A ModelDeployment's new status: not ready sets the phase and the Ready condition together."""

    def not_ready(self, phase: str, reason: str, message: str) -> None:
        self.status.phase = phase  # type: ignore[assignment]
        self.set("Ready", False, reason, message)


def _secret_value(kube: Kube, namespace: str, name: str, key: str) -> str | None:
    secret = kube.get("Secret", namespace, name)
    encoded = (secret or {}).get("data", {}).get(key)
    return base64.b64decode(encoded).decode() if encoded else None


def _resolve(deps: Deps, mdep: ModelDeployment, namespace: str) -> tuple[str, ModelFacts]:
    hub = mdep.spec.source.hub
    assert hub is not None  # noqa: S101 - only called for Hub sources
    key = (hub.repo, hub.revision)
    now = deps.now().timestamp()
    cached = deps.facts.get(key)
    if cached and now - cached[0] < FACTS_TTL:
        return cached[1], cached[2]
    token_ref = mdep.spec.weight_cache.hf_token_secret_ref
    try:
        token = (
            _secret_value(deps.kube, namespace, token_ref.name, token_ref.key)
            if token_ref
            else None
        )
    except KubeError as exc:
        if exc.status != 403:  # HTTP Forbidden
            raise
        # A condition, not a retry loop: only a person can grant the read.
        raise SecretForbiddenError(
            f"spec.weightCache.hfTokenSecretRef: the operator may not read Secret "
            f"{namespace}/{token_ref.name if token_ref else ''} (it reads only the Secrets "
            f"named in its RBAC, e.g. the chart's operator.secretNames): {exc.message}"
        ) from None
    sha, facts = deps.fetch(hub.repo, hub.revision, token)
    deps.facts[key] = (now, sha, facts)
    return sha, facts


def _plan(mdep: ModelDeployment, facts: ModelFacts) -> Plan:
    res = mdep.spec.resources

    def size(value: int | str) -> int | None:
        return value if isinstance(value, int) else None

    return plan(
        facts,
        res.gpu_kind,
        max_model_len=res.max_model_len,
        tensor_parallel=size(res.tensor_parallel),
        pipeline_parallel=size(res.pipeline_parallel),
        gpus_per_node=res.gpus_per_node,
        nodes=res.nodes,
        quantization=res.quantization,
        gpu_memory_utilization=res.gpu_memory_utilization,
    )


def _leader_ready(pods: list[PodState], hash_: str, group: str, members: int = 1) -> bool:
    """A group serves when its leader is ready and, multi-node, every member is running ready:
    a leader whose workers are unschedulable cannot load the model."""
    live = [p for p in pods if not p.deleting and p.serving_hash == hash_ and p.group == group]
    leader = any(p.ready and p.ordinal == 0 for p in live)
    return leader and sum(p.ready for p in live) >= members


def _failed_engine(pods: list[PodState], hash_: str) -> lifecycle.Failure | None:
    """A classified failure of the engine in a pod of this hash, if one is crash-looping."""
    for pod in pods:
        if pod.serving_hash != hash_ or pod.terminated is None or pod.ready:
            continue
        t = pod.terminated
        return lifecycle.classify_termination(
            reason=t.reason, message=t.message, exit_code=t.exit_code
        )
    return None


def _unschedulable(pods: list[PodState], hash_: str) -> str | None:
    return next(
        (p.unschedulable for p in pods if p.serving_hash == hash_ and p.unschedulable), None
    )


def _apply_all(kube: Kube, objects: list[Manifest]) -> None:
    for obj in objects:
        kube.apply(obj)


def _idle(mdep: ModelDeployment, st: _Status, *, body_created: datetime | None) -> float | None:
    """Seconds without traffic when the deployment should sit at zero for idleness, else None.

    The clock starts at the later of the gateway's last reported use and the moment it became
    Ready; once idled, it stays down until the gateway reports a use after that moment.
    """
    window = mdep.spec.scaling.idle_after
    if window is None or mdep.spec.suspend or mdep.spec.replicas == 0:
        return None
    last_used = st.previous.last_used_time
    ready = next((c for c in st.previous.conditions if c.type == "Ready"), None)
    if ready is not None and ready.reason == "IdleScaledToZero":
        woken = (
            last_used is not None
            and ready.last_transition_time is not None
            and (last_used > ready.last_transition_time)
        )
        return (
            None
            if woken
            else (st.now - (last_used or ready.last_transition_time or st.now)).total_seconds()
        )
    if ready is None or ready.status != "True" or ready.last_transition_time is None:
        return None
    since = max(t for t in (last_used, ready.last_transition_time, body_created) if t is not None)
    quiet = (st.now - since).total_seconds()
    return quiet if quiet >= parse_duration(window) else None


def _selector(name: str) -> str:
    return f"{MDEP_LABEL}={labels.value(name)}"


def _ensure_shared(kube: Kube, obj: Manifest, uid: str) -> Manifest | None:
    """A cache object shared by every ModelDeployment of the same (repo, SHA, cache).

    The first owner creates it: a Job's template and a PVC's size are immutable, so later owners
    never rewrite them. Each owner then applies only its own ownerReference under a field manager
    of its own; ownerReferences is a map keyed by uid, so the API server keeps the union, and the
    garbage collector deletes the object only when the last owner is gone.
    """
    meta = obj["metadata"]
    existing = kube.get(obj["kind"], meta["namespace"], meta["name"])
    if existing is None:
        try:
            existing = kube.create(obj)
        except KubeError as exc:
            if not exc.conflict:
                raise
            existing = kube.get(obj["kind"], meta["namespace"], meta["name"])
    mine = [r for r in meta.get("ownerReferences", []) if r.get("uid") == uid]
    if existing is not None and mine:
        owned = {r.get("uid") for r in existing["metadata"].get("ownerReferences", [])}
        if uid not in owned:
            kube.apply(
                {
                    "apiVersion": obj["apiVersion"],
                    "kind": obj["kind"],
                    "metadata": {
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "ownerReferences": mine,
                    },
                },
                field_manager=f"dayzero-owner-{uid}",
            )
    return existing


def _retire(kube: Kube, namespace: str, observed: Observed, keep: set[str]) -> None:
    """Delete serving StatefulSets (and their headless Services) whose hash is no longer kept."""
    for sts in observed.statefulsets:
        labels = sts["metadata"].get("labels", {})
        if labels.get(HASH_LABEL) in keep or sts["metadata"].get("deletionTimestamp"):
            continue
        name = sts["metadata"]["name"]
        kube.delete("StatefulSet", namespace, name)
        kube.delete("Service", namespace, sts["spec"].get("serviceName", name))


def _restart_group(
    kube: Kube, namespace: str, pods: list[PodState], hash_: str, group: str
) -> None:
    for pod in pods:
        if pod.serving_hash == hash_ and pod.group == group and not pod.deleting:
            kube.delete("Pod", namespace, pod.name)


def _group_restarts(observed: Observed, hash_: str, group: str) -> int:
    for sts in observed.statefulsets:
        labels = sts["metadata"].get("labels", {})
        if labels.get(HASH_LABEL) == hash_ and labels.get("dayzero.dev/group") == group:
            return int(sts["metadata"].get("annotations", {}).get(RESTARTS_ANNOTATION, 0))
    return 0


RESTARTS_ANNOTATION = "dayzero.dev/group-restarts"


def _reconcile_provider(deps: Deps, mdep: ModelDeployment, st: _Status) -> float:
    provider = mdep.spec.source.provider
    assert provider is not None  # noqa: S101 - only called for provider sources
    url = provider.base_url or deps.provider_urls[provider.provider]
    st.status.engine = provider.provider
    st.status.endpoint = url
    st.status.plan = None
    st.status.replicas = 0
    st.status.ready_replicas = 0
    st.set("WeightsResolved", True, "ProviderModel", f"{provider.provider} model {provider.model}")
    error = deps.probe(url)
    if error:
        st.not_ready("Pending", "ProviderUnreachable", f"{url} is not reachable: {error}")
        return BUSY * 6
    st.status.phase = "Ready"
    st.set("EngineLoaded", True, "ProviderModel", f"served by {provider.provider}")
    st.set("Ready", True, "ProviderReachable", f"{url} answered; no pods are needed")
    st.set("Degraded", False, "AsExpected", "")
    return SETTLED


def _reconcile_hub(  # noqa: PLR0911, PLR0912, PLR0915 - one linear story, one return per stage
    deps: Deps,
    mdep: ModelDeployment,
    *,
    namespace: str,
    name: str,
    uid: str,
    st: _Status,
    created: datetime | None = None,
) -> float:
    kube = deps.kube
    spec = mdep.spec
    try:
        sha, facts = _resolve(deps, mdep, namespace)
    except SecretForbiddenError as exc:
        st.set("WeightsResolved", False, "SecretForbidden", str(exc))
        st.not_ready("Pending", "SecretForbidden", str(exc))
        return SETTLED
    except HubError as exc:
        st.set("WeightsResolved", False, exc.reason, exc.message)
        permanent = exc.reason in ("GatedRepo", "RepoNotFound", "RevisionNotFound")
        st.not_ready("Failed" if permanent else "Pending", exc.reason, exc.message)
        return SETTLED if permanent else BUSY * 6
    st.status.resolved_revision = sha
    st.set("WeightsResolved", True, "Resolved", f"{spec.source.hub and spec.source.hub.repo}@{sha}")
    try:
        the_plan = _plan(mdep, facts)
    except PlanError as exc:
        st.not_ready("Failed", "InvalidSpec", f"spec.resources.{exc.field}: {exc}")
        return SETTLED
    st.status.plan = the_plan
    if not the_plan.fits:
        why = "; ".join(r.reason for r in the_plan.reasons if r.field == "fits")
        st.not_ready("Failed", "DoesNotFit", why or "the model does not fit the largest layout")
        return SETTLED

    # The ladder restarts for a new revision (it may load where the old one could not), and a
    # pinned engine kind always serves on its own rung.
    same_revision = st.previous.resolved_revision in (None, sha)
    climbing = spec.engine.kind == "auto" and same_revision
    rung: lifecycle.EngineRung = (
        st.status.engine
        if climbing and st.status.engine in lifecycle.LADDER
        else lifecycle.first_rung(spec.engine.kind)
    )
    attempts = (st.status.engine_attempts or 1) if climbing else 1
    st.status.engine, st.status.engine_attempts = rung, attempts
    desired_hash = serving_hash(mdep, the_plan, sha, rung, deps.images)
    leader = leader_service_name(name)
    observed = gather_model_deployment(kube, namespace, _selector(name), leader)
    base = Inputs(
        namespace=namespace,
        name=name,
        uid=uid,
        resolved_revision=sha,
        engine=rung,
        images=deps.images,
        groups=(),
        active_hash=None,
    )

    live_hashes = {
        s["metadata"].get("labels", {}).get(HASH_LABEL)
        for s in observed.statefulsets
        if not s["metadata"].get("deletionTimestamp")
    }
    selector = (leader_svc := observed.leader_service or {}).get("spec", {}).get("selector", {})
    routed = selector.get(HASH_LABEL) if leader_svc else None
    old_serving_now = (
        routed is not None
        and routed != desired_hash
        and routed in live_hashes
        and any(p.ready and p.serving_hash == routed and p.ordinal == 0 for p in observed.pods)
    )

    # Weights first: serving starts only once the cache holds (repo, SHA).
    cache_objects = desired_cache(mdep, the_plan, base)
    found = {o["kind"]: _ensure_shared(kube, o, uid) for o in cache_objects}
    jobs = [o for o in cache_objects if o["kind"] == "Job"]
    state, detail = job_state(found.get("Job"))
    if jobs and state != "Succeeded":
        if state == "Failed":
            reason = "DownloadStalled" if "DeadlineExceeded" in detail else "DownloadFailed"
            st.set("WeightsCached", False, reason, detail)
            st.not_ready("Failed", reason, detail)
            return SETTLED
        st.set("WeightsCached", False, "Downloading", detail)
        if old_serving_now:
            # Day 2: the previous revision keeps serving while the new one downloads.
            st.status.phase = "Degraded"
            st.set(
                "Ready", True, "Serving", f"the previous revision serves while {sha[:12]} downloads"
            )
            st.set("Degraded", True, "Surging", f"downloading {sha[:12]}: {detail}")
            return BUSY
        st.not_ready("Downloading", "Downloading", f"downloading {sha[:12]}: {detail}")
        return BUSY
    st.set("WeightsCached", True, "Cached", f"weights of {sha[:12]} are in the cache")

    idle_for = _idle(mdep, st, body_created=created)
    replicas = 0 if spec.suspend or idle_for is not None else spec.replicas
    new_groups = [str(i) for i in range(replicas)]
    new_ready = replicas > 0 and all(
        _leader_ready(observed.pods, desired_hash, g, the_plan.nodes) for g in new_groups
    )
    surging = old_serving_now and not new_ready and replicas > 0
    active = desired_hash if new_ready or not surging else routed
    groups = [Group(index=i, serving_hash=desired_hash) for i in range(replicas)]
    if surging and routed is not None:
        old_groups = sorted(
            {p.group for p in observed.pods if p.serving_hash == routed and p.group.isdigit()}
        )
        groups += [Group(index=int(g), serving_hash=routed) for g in old_groups]

    # The engine: step down the ladder only on a classified load failure.
    failure = _failed_engine(observed.pods, desired_hash) if replicas else None
    if failure is not None and failure.steps_down:
        nxt, why = lifecycle.next_rung(
            rung,
            failure,
            kind=spec.engine.kind,
            allow_fallback=spec.engine.allow_fallback,
            attempts=attempts,
            max_attempts=spec.engine.max_fallback_attempts,
            nodes=the_plan.nodes,
        )
        if nxt is not None:
            st.status.engine, st.status.engine_attempts = nxt, attempts + 1
            st.set("EngineLoaded", False, "FallingBack", f"{why}: {failure.message}")
            st.not_ready("Loading", "FallingBack", why)
            _retire(kube, namespace, observed, keep={h for h in (routed,) if old_serving_now and h})
            return 0.5
        st.set("EngineLoaded", False, failure.reason, f"{failure.message} ({why})")
        st.not_ready("Failed", failure.reason, failure.message)
        return SETTLED

    inputs = replace(
        base, groups=tuple(groups), active_hash=active if (new_ready or old_serving_now) else None
    )
    _apply_all(kube, desired_serving(mdep, the_plan, inputs))
    keep = {g.serving_hash for g in groups}
    _retire(kube, namespace, observed, keep)

    st.status.replicas = replicas
    st.status.selector = labels.selector_string(labels.hash_selector(name, desired_hash))
    ready_groups = sum(
        _leader_ready(observed.pods, desired_hash, g, the_plan.nodes) for g in new_groups
    )
    old_serving = (
        sum(
            _leader_ready(observed.pods, routed, str(g.index))
            for g in groups
            if g.serving_hash == routed
        )
        if surging and routed
        else 0
    )
    # While surging, the old groups still serve: they count until the new ones take over.
    st.status.ready_replicas = ready_groups + old_serving
    if replicas == 0:
        if spec.suspend:
            reason, why = "Suspended", "spec.suspend is true"
        elif idle_for is not None:
            reason = "IdleScaledToZero"
            why = f"no traffic for {idle_for:.0f}s (scaling.idleAfter); the next request wakes it"
        else:
            reason, why = "ScaledToZero", "spec.replicas is 0"
        st.status.phase = "Suspended"
        st.status.endpoint = None
        st.set("Scheduled", None, reason, why)
        st.set("EngineLoaded", None, reason, why)
        st.set("Ready", False, reason, f"no replicas: {why}")
        st.set("Degraded", False, reason, why)
        return SETTLED

    # Scheduling: say how far the cluster is from fitting the group.
    pending = _unschedulable(observed.pods, desired_hash)
    if pending:
        own = frozenset(p.name for p in observed.pods)
        blocks = free_gpu_blocks(kube, the_plan.gpu_product, exclude=own)
        need = the_plan.nodes * the_plan.gpus_per_node
        largest = blocks[0] if blocks else 0
        detail = (
            f"needs {need} GPUs ({the_plan.nodes} node(s) x {the_plan.gpus_per_node} "
            f"{the_plan.gpu_kind}), largest free block is {largest} "
            f"({sum(1 for b in blocks if b >= the_plan.gpus_per_node)} node(s) with "
            f"{the_plan.gpus_per_node} free); scheduler: {pending}"
        )
        st.set("Scheduled", False, "Unschedulable", detail)
    else:
        st.set("Scheduled", True, "Scheduled", "every pod of the group is on a node")

    # Crash-looping or restarting pods: never Ready.
    if failure is not None:
        st.set("EngineLoaded", False, failure.reason, failure.message)
    multi = the_plan.nodes > 1
    for g in new_groups:
        members = [p for p in observed.pods if p.serving_hash == desired_hash and p.group == g]
        broken = [p for p in members if p.restarts > 0 or p.terminated is not None]
        if multi and broken and len(members) == the_plan.nodes:
            restarts = _group_restarts(observed, desired_hash, g)
            if restarts >= MAX_GROUP_RESTARTS:
                st.set(
                    "EngineLoaded", False, "GroupRestartLoop", f"group {g} restarted {restarts}x"
                )
                failure = failure or lifecycle.Failure("CrashLoop", "group restart loop")
            else:
                _restart_group(kube, namespace, observed.pods, desired_hash, g)
                _annotate_restarts(
                    kube, namespace, observed, hash_=desired_hash, group=g, count=restarts + 1
                )
                post_event(
                    kube,
                    mdep_ref(namespace, name, uid),
                    "Warning",
                    "GroupRestarted",
                    f"group {g}: {broken[0].name} failed, restarting all {len(members)} pods",
                )

    if st.status.ready_replicas and failure is None:
        st.status.phase = "Ready" if ready_groups == replicas else "Degraded"
        st.status.endpoint = endpoint(name, namespace)
        fell_back = rung != lifecycle.first_rung(spec.engine.kind)
        st.set(
            "EngineLoaded",
            True,
            "FellBack" if fell_back else "Loaded",
            f"serving with {rung}"
            + (f" after {attempts - 1} failed attempt(s)" if fell_back else ""),
        )
        st.set("Ready", True, "Serving", f"{st.status.ready_replicas}/{replicas} group(s) serving")
        degraded = []
        if ready_groups < replicas:
            degraded.append(f"{ready_groups}/{replicas} groups ready")
        if fell_back:
            degraded.append(f"fallback engine {rung}")
        if surging:
            degraded.append("surging to a new revision")
        st.set(
            "Degraded",
            bool(degraded),
            "Degraded" if degraded else "AsExpected",
            "; ".join(degraded),
        )
        window = spec.scaling.idle_after
        # Look again when the idle window would run out, not only on the slow resync.
        settled = min(SETTLED, float(parse_duration(window)) + 0.5) if window else SETTLED
        return BUSY if degraded else settled
    if failure is not None:
        st.not_ready(
            "Failed" if failure.reason != "CrashLoop" else "Degraded",
            failure.reason,
            failure.message,
        )
        st.set("Degraded", True, failure.reason, failure.message)
        return BUSY * 2
    st.status.phase = "Loading"
    st.set(
        "Ready",
        False,
        "Unschedulable" if pending else "Loading",
        "waiting for the leader to be ready",
    )
    if not pending:
        st.set("EngineLoaded", None, "Loading", f"{rung} is loading {sha[:12]}")
    return BUSY


def _annotate_restarts(
    kube: Kube, namespace: str, observed: Observed, *, hash_: str, group: str, count: int
) -> None:
    for sts in observed.statefulsets:
        labels = sts["metadata"].get("labels", {})
        if labels.get(HASH_LABEL) == hash_ and labels.get("dayzero.dev/group") == group:
            patch = {"metadata": {"annotations": {RESTARTS_ANNOTATION: str(count)}}}
            kube.patch("StatefulSet", namespace, sts["metadata"]["name"], patch)


def mdep_ref(namespace: str, name: str, uid: str) -> dict[str, str]:
    """The involvedObject of an Event about a ModelDeployment."""
    return {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "ModelDeployment",
        "namespace": namespace,
        "name": name,
        "uid": uid,
    }


def reconcile(deps: Deps, namespace: str, name: str) -> float | None:
    """Bring one ModelDeployment's children and status in line; the seconds until the next
    look, or None when the object is gone."""
    body = deps.kube.get("ModelDeployment", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    meta = body["metadata"]
    uid, generation = meta["uid"], int(meta.get("generation", 1))
    previous = _previous_status(body)
    st = _Status(previous, generation, deps.now())
    try:
        mdep = ModelDeployment.model_validate(body)
    except ValidationError as exc:
        st.not_ready("Failed", "InvalidSpec", field_error(exc))
        requeue: float = SETTLED
    else:
        if mdep.spec.source.provider is not None:
            _retire(
                deps.kube, namespace, gather_model_deployment(deps.kube, namespace, name, ""), set()
            )
            requeue = _reconcile_provider(deps, mdep, st)
        else:
            requeue = _reconcile_hub(
                deps, mdep, namespace=namespace, name=name, uid=uid, st=st, created=_created(meta)
            )
    _write_status(deps.kube, namespace, name, st.status)
    for changed in lifecycle.condition_changes(previous.conditions, st.status.conditions):
        kind = "Normal" if (changed.status == "True") != (changed.type == "Degraded") else "Warning"
        post_event(
            deps.kube,
            mdep_ref(namespace, name, uid),
            kind,
            changed.reason or changed.type,
            f"{changed.type}={changed.status}: {changed.message}",
        )
    return requeue


def _created(meta: Manifest) -> datetime | None:
    stamp = meta.get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _previous_status(body: Manifest) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError:
        # A status we cannot read is rebuilt from the world rather than trusted.
        return ModelDeploymentStatus()


def _write_status(kube: Kube, namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    body: dict[str, Any] = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        # lastUsedTime belongs to the gateway (its own field manager): never applied here.
        "status": {k: v for k, v in status.to_wire().items() if k != "lastUsedTime"},
    }
    try:
        kube.apply(body, subresource="status")
    except KubeError as exc:
        if not exc.not_found:
            raise
