"""Lane reconcile: every Lane and the ModelDeployments it names -> one routing ConfigMap.

The routing document is one object for the whole gateway, so there is one reconcile for it (key
``Routing``), triggered by any Lane or ModelDeployment event. It gathers, acts on the requests
users left as annotations (promote, rollback), moves staged rollouts on by the gateway's own
metrics, renders with pure functions, writes the ConfigMap only when its bytes change, reads the
hash the gateways loaded back, and writes each Lane's status only when it changed.

Promotions live in Lane status, never in the spec, so GitOps tools never see drift; requests to
promote or roll back arrive as annotations, which the reconcile consumes and removes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from ..api.errors import field_error
from ..api.v1alpha1 import Lane, ModelDeployment
from ..api.v1alpha1.lane import LaneStatus, PromotionRecord, RollbackRecord
from ..kube import Kube, KubeError, Manifest
from ..kube.events import post_event
from ..render import lifecycle
from ..render.durations import parse_duration
from ..render.gatewaymetrics import GatewayMetrics, ModelStats, scrape
from ..render.routing import (
    DATA_KEY,
    DEFAULT_PROVIDER_URLS,
    LaneInput,
    Rendered,
    Target,
    parse_document,
    promoted_backend,
    render_routing,
    stage_named,
    target_of,
)

log = logging.getLogger(__name__)

PROMOTE_ANNOTATION = "dayzero.dev/promote"
"""``<tag>=<ModelDeployment>``: promote that model to the tag (what a Gauntlet pass writes)."""
ROLLBACK_ANNOTATION = "dayzero.dev/rollback"
"""Any value (the reason): restore the previous model of the latest promotion."""
REQUESTED_BY_ANNOTATION = "dayzero.dev/requested-by"
"""Optional: who asked, shown in the Event (otherwise the annotating field manager)."""
SETTLED, APPLY_WAIT, ROLLOUT_CHECK = 120.0, 1.0, 5.0


@dataclass
class RoutingDeps:
    """What the routing reconcile needs, created once at start-up."""

    kube: Kube
    configmap_namespace: str
    configmap_name: str
    namespaces: tuple[str, ...] = ()
    """Namespaces whose Lanes are routed; empty: every namespace."""
    base: dict[str, Any] = field(default_factory=dict)
    """Document-wide settings: keys, prices, budgets, limits."""
    gateways: tuple[str, ...] = ()
    """Gateway base URLs whose /ready (config hash) and /metrics the operator reads."""
    provider_urls: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_URLS))
    http_get: Callable[[str], str | None] = lambda _url: None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class _LaneState:
    namespace: str
    name: str
    uid: str
    generation: int
    lane: Lane | None
    error: str | None
    previous: LaneStatus
    status: LaneStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _list(deps: RoutingDeps, kind: str) -> list[Manifest]:
    if not deps.namespaces:
        return deps.kube.list(kind, None)
    return [obj for ns in deps.namespaces for obj in deps.kube.list(kind, ns)]


def _targets(deps: RoutingDeps, mdeps: list[Manifest]) -> dict[str, dict[str, Target]]:
    out: dict[str, dict[str, Target]] = {}
    for body in mdeps:
        meta = body["metadata"]
        name, ns = meta["name"], meta["namespace"]
        try:
            mdep = ModelDeployment.model_validate(body)
        except ValidationError:
            target = Target(name, available=False, reason="its spec is invalid")
        else:
            target = target_of(mdep, name, deps.provider_urls, ns)
        out.setdefault(ns, {})[name] = target
    return out


def _state(body: Manifest) -> _LaneState:
    meta = body["metadata"]
    try:
        previous = LaneStatus.model_validate(body.get("status") or {})
    except ValidationError:
        previous = LaneStatus()
    lane: Lane | None
    error = None
    try:
        lane = Lane.model_validate(body)
    except ValidationError as exc:
        lane, error = None, field_error(exc)
    return _LaneState(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        generation=int(meta.get("generation", 1)),
        lane=lane,
        error=error,
        previous=previous,
        status=previous.model_copy(deep=True),
    )


def _who(meta: Manifest, annotation: str) -> str:
    """Who set an annotation: the requested-by annotation, else the field manager that owns it."""
    named = meta.get("annotations", {}).get(REQUESTED_BY_ANNOTATION)
    if named:
        return str(named)[:128]
    needle = f"f:{annotation}"
    for entry in meta.get("managedFields", []):
        fields = json.dumps(entry.get("fieldsV1", {}))
        if needle in fields:
            return str(entry.get("manager", "unknown"))
    return "unknown"


def _promote(st: _LaneState, tag: str, mdep: str, by: str, now: datetime) -> PromotionRecord | None:
    """Record a promotion in status; the spec is never written."""
    assert st.lane is not None  # noqa: S101 - only called for parsed Lanes
    promos = st.status.promotions
    current = next((p for p in promos if p.tag == tag), None)
    if current is not None and current.model_deployment == mdep:
        return None
    stages = st.lane.spec.rollout.stages
    record = PromotionRecord(
        tag=tag,
        model_deployment=mdep,
        previous=current.model_deployment if current else st.lane.spec.tags.get(tag),
        stage=stages[0].name if stages else None,
        stage_started=now if stages else None,
        by=by,
    )
    st.status.promotions = [p for p in promos if p.tag != tag] + [record]
    return record


def _rollback(st: _LaneState, by: str, reason: str, now: datetime, tag: str | None = None) -> bool:
    """Restore the previous model of the latest (or the named tag's) promotion: one step."""
    promos = st.status.promotions
    candidates = [p for p in promos if tag is None or p.tag == tag]
    if not candidates:
        return False
    latest = candidates[-1]
    rest = [p for p in promos if p is not latest]
    restored = (
        [PromotionRecord(tag=latest.tag, model_deployment=latest.previous, by=f"rollback by {by}")]
        if latest.previous
        else []
    )
    st.status.promotions = rest + restored
    st.status.last_rollback = RollbackRecord(
        tag=latest.tag,
        from_model_deployment=latest.model_deployment,
        to_model_deployment=latest.previous,
        by=by,
        reason=reason,
        time=now,
    )
    st.events.append(
        (
            "Warning",
            "RolledBack",
            f"tag {latest.tag}: {latest.model_deployment} -> {latest.previous or '(none)'}, "
            f"asked by {by}: {reason or 'no reason given'}",
        )
    )
    return True


def _requests(st: _LaneState, meta: Manifest, now: datetime) -> bool:
    """Consume the promote and rollback annotations; True when the Lane needs them removed."""
    annotations = meta.get("annotations", {}) or {}
    consumed = False
    ask = annotations.get(PROMOTE_ANNOTATION)
    if ask is not None and st.lane is not None:
        consumed = True
        tag, _, mdep = str(ask).partition("=")
        if not tag or not mdep:
            st.events.append(
                (
                    "Warning",
                    "InvalidPromotion",
                    f"metadata.annotations[{PROMOTE_ANNOTATION}]: want <tag>=<ModelDeployment>,"
                    f" got {ask!r}",
                )
            )
        else:
            by = _who(meta, PROMOTE_ANNOTATION)
            if _promote(st, tag.strip(), mdep.strip(), by, now) is not None:
                st.events.append(("Normal", "Promoted", f"tag {tag} -> {mdep}, asked by {by}"))
    reason = annotations.get(ROLLBACK_ANNOTATION)
    if reason is not None:
        consumed = True
        by = _who(meta, ROLLBACK_ANNOTATION)
        if not _rollback(st, by, str(reason), now):
            st.events.append(("Warning", "NothingToRollBack", f"asked by {by}: no promotion"))
    return consumed


def _stats(
    metrics: GatewayMetrics,
    st: _LaneState,
    promo: PromotionRecord,
    targets: Mapping[str, Target],
) -> ModelStats:
    """The gateway's counters for a promoted model: the gateway labels an answer with the model
    name it sent upstream (a provider's model id for a provider ModelDeployment)."""
    assert st.lane is not None  # noqa: S101 - only called for parsed Lanes
    mdep = promo.model_deployment
    target = targets.get(mdep)
    model = target.model if target is not None and target.model else mdep
    return metrics.stats(st.name, model, promoted_backend(st.lane, st.name, mdep))


def _rollout(
    st: _LaneState,
    metrics: GatewayMetrics | None,
    now: datetime,
    targets: Mapping[str, Target],
) -> float | None:
    """Advance or roll back staged promotions; the seconds until the next check, if any."""
    if st.lane is None:
        return None
    limits = st.lane.spec.rollout.limits
    wake: float | None = None
    for promo in list(st.status.promotions):
        if promo.rollout_complete or promo.stage is None:
            continue
        stage = stage_named(st.lane, promo.stage)
        if stage is None:
            # The stage was removed from the spec: finish the rollout rather than strand it.
            promo.rollout_complete, promo.stage = True, None
            continue
        if metrics is None:
            wake = ROLLOUT_CHECK
            continue
        current = _stats(metrics, st, promo, targets)
        seen = current.since(promo.baseline)
        breach = seen.breach(limits)
        if breach is not None:
            _rollback(st, f"rollout/{stage.name}", breach, now, tag=promo.tag)
            continue
        started = promo.stage_started or now
        left = float(parse_duration(stage.soak)) - (now - started).total_seconds()
        if left > 0:
            wake = min(wake or left, left, ROLLOUT_CHECK)
            continue
        if seen.requests < limits.min_requests:
            wake = ROLLOUT_CHECK
            continue
        stages = [s.name for s in st.lane.spec.rollout.stages]
        index = stages.index(stage.name)
        if index + 1 < len(stages):
            promo.stage, promo.stage_started = stages[index + 1], now
            promo.baseline = current.sample()
            wake = ROLLOUT_CHECK
            what = f"stage {stages[index + 1]}"
        else:
            promo.rollout_complete, promo.stage, promo.stage_started = True, None, None
            promo.baseline = None
            what = "the lane's default"
        st.events.append(
            (
                "Normal",
                "RolloutAdvanced",
                f"tag {promo.tag}: {promo.model_deployment} moves to {what} after {stage.name} "
                f"({seen.summary()})",
            )
        )
    return wake


def _scrape_all(deps: RoutingDeps) -> GatewayMetrics | None:
    """Metrics of every gateway, summed; None when any gateway cannot be read (no decision is
    made on part of the traffic)."""
    if not deps.gateways:
        return None
    total = GatewayMetrics()
    for url in deps.gateways:
        text = deps.http_get(url.rstrip("/") + "/metrics")
        if text is None:
            return None
        try:
            total.add(scrape(text))
        except ValueError:
            log.warning("unreadable metrics from %s", url)
            return None
    return total


def _applied_hash(deps: RoutingDeps, rendered: Rendered) -> str | None:
    """The hash every gateway reports it loaded: ours when all agree, else a differing one."""
    seen: list[str | None] = []
    for url in deps.gateways:
        text = deps.http_get(url.rstrip("/") + "/ready")
        try:
            seen.append(str(json.loads(text or "")["configHash"]))
        except (ValueError, KeyError, TypeError):
            seen.append(None)
    if not seen:
        return None
    if all(h == rendered.hash for h in seen):
        return rendered.hash
    return next((h for h in seen if h != rendered.hash), None)


def _write_configmap(deps: RoutingDeps, rendered: Rendered, current: Manifest | None) -> bool:
    if current is not None and (current.get("data") or {}).get(DATA_KEY) == rendered.text:
        return False
    deps.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": deps.configmap_name,
                "namespace": deps.configmap_namespace,
                "labels": {"app.kubernetes.io/managed-by": "dayzero"},
                "annotations": {"dayzero.dev/config-hash": rendered.hash},
            },
            "data": {DATA_KEY: rendered.text},
        }
    )
    return True


def _conditions(st: _LaneState, rendered: Rendered, applied: str | None, now: datetime) -> None:
    result = rendered.lanes.get((st.namespace, st.name))

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> None:
        st.status.conditions = lifecycle.set_condition(
            st.status.conditions,
            type_,
            ok,
            reason,
            message,
            generation=st.generation,
            now=now,
        )

    st.status.observed_generation = st.generation
    st.status.config_hash = rendered.hash or None
    st.status.applied_config_hash = applied
    if result is None or st.error is not None:
        cond("Ready", False, "InvalidSpec", st.error or "not rendered")
        return
    st.status.backends = result.backends
    st.status.tags = result.tags
    if result.error is not None:
        kept = "; the last good routing stays in force" if result.stale else ""
        cond("Ready", False, "InvalidSpec", result.error + kept)
    elif result.lane is None:
        cond("Ready", False, "NoBackendAvailable", "; ".join(result.notes))
    else:
        up = sum(b.available for b in result.backends)
        cond("Ready", True, "Routed", f"{up}/{len(result.backends)} backend(s) available")
    notes = [n for n in result.notes if n.startswith(("backend", "tag"))]
    cond("Degraded", bool(notes), "Unavailable" if notes else "AsExpected", "; ".join(notes))
    if not rendered.hash:
        cond("Applied", False, "ConfigMapNotWritable", "the routing ConfigMap's namespace is gone")
    elif applied is None:
        cond("Applied", None, "NoGateway", "no gateway reported a config hash")
    elif applied == rendered.hash:
        cond("Applied", True, "GatewayLoaded", f"every gateway serves {applied}")
    else:
        cond("Applied", False, "Pending", f"a gateway still serves {applied}, not {rendered.hash}")


def _lane_ref(st: _LaneState) -> dict[str, str]:
    return {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "Lane",
        "namespace": st.namespace,
        "name": st.name,
        "uid": st.uid,
    }


def _write_status(deps: RoutingDeps, st: _LaneState) -> None:
    if st.status == st.previous:
        return
    body = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "Lane",
        "metadata": {"name": st.name, "namespace": st.namespace},
        "status": st.status.to_wire(),
    }
    try:
        deps.kube.apply(body, subresource="status")
    except KubeError as exc:
        if not exc.not_found:
            raise


def reconcile_routing(deps: RoutingDeps) -> float:
    """Render every Lane into the routing ConfigMap and report back; seconds to the next look."""
    now = deps.now()
    bodies = _list(deps, "Lane")
    targets = _targets(deps, _list(deps, "ModelDeployment"))
    states = [_state(b) for b in bodies]
    needs_stats = any(
        not p.rollout_complete and p.stage is not None for s in states for p in s.status.promotions
    ) or any(b["metadata"].get("annotations", {}).get(PROMOTE_ANNOTATION) for b in bodies)
    metrics = _scrape_all(deps) if needs_stats else None
    wake: float = SETTLED
    consumed: list[_LaneState] = []
    for body, st in zip(bodies, states, strict=True):
        mine = targets.get(st.namespace, {})
        if _requests(st, body["metadata"], now):
            consumed.append(st)
        for promo in st.status.promotions:
            if promo.stage is not None and promo.baseline is None and metrics is not None:
                promo.baseline = _stats(metrics, st, promo, mine).sample()
        nxt = _rollout(st, metrics, now, mine)
        if nxt is not None:
            wake = min(wake, max(nxt, 0.5))
    inputs = [
        LaneInput(
            namespace=st.namespace,
            name=st.name,
            lane=st.lane,
            promotions=tuple(st.status.promotions),
            error=st.error,
        )
        for st in states
    ]
    current = deps.kube.get("ConfigMap", deps.configmap_namespace, deps.configmap_name)
    previous = parse_document((current or {}).get("data", {}).get(DATA_KEY))
    rendered = render_routing(
        inputs, targets, base=deps.base, previous=previous, provider_urls=deps.provider_urls
    )
    try:
        if _write_configmap(deps, rendered, current):
            log.info("routing document %s written (%d lanes)", rendered.hash, len(states))
    except KubeError as exc:
        if not exc.not_found:
            raise
        # No namespace for it (yet): say so on every Lane instead of retrying hot.
        where = f"{deps.configmap_namespace}/{deps.configmap_name}"
        log.warning("cannot write the routing ConfigMap %s: %s", where, exc)
        rendered.hash = ""
    applied = _applied_hash(deps, rendered)
    if deps.gateways and applied != rendered.hash:
        wake = min(wake, APPLY_WAIT)
    for st in states:
        _report(deps, st, rendered, applied, now)
    for st in consumed:
        _clear_requests(deps, st)
    return wake if math.isfinite(wake) else SETTLED


def load_base(path: str | None) -> dict[str, Any]:
    """The document-wide settings file (YAML), without lanes, backends and tags."""
    if not path:
        return {"keys": {"enabled": True, "file": "/etc/dayzero/keys/keys.yaml"}}
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the routing base must be a mapping")  # noqa: TRY004 - bad input
    return data


def _report(
    deps: RoutingDeps, st: _LaneState, rendered: Rendered, applied: str | None, now: datetime
) -> None:
    """Write one Lane's status (when it changed) and its Events."""
    _conditions(st, rendered, applied, now)
    _write_status(deps, st)
    for type_, reason, message in st.events:
        post_event(deps.kube, _lane_ref(st), type_, reason, message)
    for changed in lifecycle.condition_changes(st.previous.conditions, st.status.conditions):
        ok = (changed.status == "True") != (changed.type == "Degraded")
        post_event(
            deps.kube,
            _lane_ref(st),
            "Normal" if ok else "Warning",
            changed.reason or changed.type,
            f"{changed.type}={changed.status}: {changed.message}",
        )


def _clear_requests(deps: RoutingDeps, st: _LaneState) -> None:
    """Remove consumed annotations, only after the status holding their effect is written."""
    gone = dict.fromkeys((PROMOTE_ANNOTATION, ROLLBACK_ANNOTATION, REQUESTED_BY_ANNOTATION))
    try:
        deps.kube.patch("Lane", st.namespace, st.name, {"metadata": {"annotations": gone}})
    except KubeError as exc:
        if not exc.not_found:
            raise
