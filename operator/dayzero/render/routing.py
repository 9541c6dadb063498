"""Lanes and the ModelDeployments they name -> the gateway's routing document.

Pure: the controller gathers every Lane and ModelDeployment, this module decides, and the result
is one deterministic document (sorted, stable order), so an unchanged cluster renders the same
bytes and the ConfigMap is never rewritten. Each Lane is rendered and validated on its own first:
a Lane that would make the document invalid is left out with an error naming its field, and its
previous fragment (read back from the document in force) stays, so one bad Lane never takes the
others, or its own last good routing, down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from ..api.errors import field_error
from ..api.routing import (
    ROUTING_API_VERSION,
    ROUTING_KIND,
    ApiKeyRef,
    Canary,
    Routing,
    RoutingBackend,
    RoutingLane,
    TagTarget,
)
from ..api.v1alpha1 import Lane, ModelDeployment
from ..api.v1alpha1.lane import Backend, PromotionRecord, ResolvedBackend, RolloutStage
from .modeldeployment import endpoint

DATA_KEY = "routing.yaml"
DEFAULT_PROVIDER_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
}
# Backends a promotion adds to a lane (the promoted model need not be in its spec) get this.
IMPLICIT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Target:
    """What a ModelDeployment offers the gateway right now."""

    name: str
    available: bool
    reason: str | None = None
    kind: str = "openai"
    url: str | None = None
    model: str | None = None
    paid: bool = False
    api_key_ref: ApiKeyRef | None = None
    model_deployment: str | None = None
    """namespace/name, for the gateway's last-use reports and wake-ups."""
    asleep: bool = False


# Scaled to zero on purpose (idle, or replicas 0): the gateway may wake it. Suspended is not.
ASLEEP_REASONS = ("IdleScaledToZero", "ScaledToZero")


def target_of(
    mdep: ModelDeployment,
    name: str,
    provider_urls: Mapping[str, str],
    namespace: str | None = None,
) -> Target:
    """A ModelDeployment as a routing target: routed to only while its Ready condition is True,
    or, when ``namespace`` is given and it is scaled to zero, as an asleep backend the gateway
    wakes (at the leader Service URL it will have)."""
    status = mdep.status
    ready = next((c for c in (status.conditions if status else []) if c.type == "Ready"), None)
    provider = mdep.spec.source.provider
    where = f"{namespace}/{name}" if namespace else None
    if (
        ready is not None
        and ready.reason in ASLEEP_REASONS
        and provider is None
        and namespace is not None
        and not mdep.spec.suspend
    ):
        url = endpoint(name, namespace)
        return Target(name, True, model=name, url=url, model_deployment=where, asleep=True)
    if ready is None or ready.status != "True":
        why = f"not Ready ({ready.reason}: {ready.message})" if ready else "not Ready yet"
        return Target(name, available=False, reason=why)
    if provider is not None:
        ref = provider.api_key_secret_ref
        return Target(
            name,
            available=True,
            kind="anthropic" if provider.provider == "anthropic" else "provider",
            url=provider.base_url or provider_urls[provider.provider],
            model=provider.model,
            paid=True,
            api_key_ref=ApiKeyRef(secret=ref.name, key=ref.key),
        )
    if status is None or not status.endpoint:
        return Target(name, available=False, reason="Ready but no endpoint in status")
    # vLLM and transformers serve the model under the ModelDeployment's name.
    return Target(name, available=True, url=status.endpoint, model=name, model_deployment=where)


@dataclass
class LaneResult:
    """What rendering did with one Lane: its status material and, if valid, its fragment."""

    backends: list[ResolvedBackend] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    """Tag -> ModelDeployment in force (pins over promotions), available or not."""
    notes: list[str] = field(default_factory=list)
    """Why a tag or backend is out of routing right now (not an error)."""
    error: str | None = None
    """The field that made the Lane unrenderable; None when it rendered."""
    stale: bool = False
    """True when the Lane's previous fragment was kept because this one is invalid."""
    lane: RoutingLane | None = None
    routing_backends: list[RoutingBackend] = field(default_factory=list)
    routing_tags: dict[str, TagTarget] = field(default_factory=dict)


@dataclass(frozen=True)
class LaneInput:
    """One gathered Lane: its spec and the promotions recorded in its status."""

    namespace: str
    name: str
    lane: Lane | None
    promotions: tuple[PromotionRecord, ...] = ()
    error: str | None = None
    """Why the Lane could not even be parsed (its previous fragment then stays)."""


def backend_name(lane: str, backend: str) -> str:
    """The document-wide name of a lane's backend (a DNS label, stable, at most 63 chars)."""
    name = f"{lane}-{backend}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def promoted_backend(lane: Lane, lane_name: str, mdep: str) -> str:
    """The document name of the backend that serves a tag pointing at ``mdep``."""
    for backend in lane.spec.backends:
        ref = backend.model_deployment_ref
        if ref is not None and ref.name == mdep:
            return backend_name(lane_name, backend.name)
    return backend_name(lane_name, mdep)


def tags_in_force(lane: Lane, promotions: tuple[PromotionRecord, ...]) -> dict[str, str]:
    """Promotions overlaid by spec pins: a pin always wins."""
    tags = {p.tag: p.model_deployment for p in promotions}
    return dict(sorted((tags | lane.spec.tags).items()))


def _resolve_backend(
    lane_name: str,
    backend: Backend,
    targets: Mapping[str, Target],
    provider_urls: Mapping[str, str],
) -> tuple[ResolvedBackend, RoutingBackend | None]:
    doc_name = backend_name(lane_name, backend.name)
    common: dict[str, Any] = {
        "name": doc_name,
        "timeout_seconds": backend.timeout_seconds,
        "max_parameters_billions": backend.max_parameters_billions,
        "maintenance": backend.maintenance,
        "keep_warm": backend.keep_warm,
    }
    if backend.url is not None:
        u = backend.url
        ref = u.api_key_secret_ref
        return ResolvedBackend(
            name=backend.name, kind="url", endpoint=u.url, available=True
        ), RoutingBackend(
            kind=u.api,
            url=u.url,
            model=u.model,
            api_key_ref=ApiKeyRef(secret=ref.name, key=ref.key) if ref else None,
            **common,
        )
    if backend.provider is not None:
        p = backend.provider
        url = p.base_url or provider_urls[p.provider]
        return ResolvedBackend(
            name=backend.name, kind="provider", endpoint=url, available=True
        ), RoutingBackend(
            kind="anthropic" if p.provider == "anthropic" else "provider",
            url=url,
            model=p.model,
            paid=True,
            api_key_ref=ApiKeyRef(secret=p.api_key_secret_ref.name, key=p.api_key_secret_ref.key),
            **common,
        )
    mdep_ref = backend.model_deployment_ref
    assert mdep_ref is not None  # noqa: S101 - the CRD's CEL rule makes exactly one source set
    return _resolve_target(doc_name, backend.name, targets, mdep_ref.name, common)


def _resolve_target(
    doc_name: str,
    shown: str,
    targets: Mapping[str, Target],
    mdep: str,
    common: dict[str, Any],
) -> tuple[ResolvedBackend, RoutingBackend | None]:
    target = targets.get(mdep) or Target(mdep, available=False, reason="no such ModelDeployment")
    if not target.available or target.url is None:
        why = f"ModelDeployment {mdep}: {target.reason}"
        return ResolvedBackend(
            name=shown, kind="modelDeployment", available=False, reason=why
        ), None
    asleep = "scaled to zero: the gateway wakes it on demand" if target.asleep else None
    return ResolvedBackend(
        name=shown, kind="modelDeployment", endpoint=target.url, available=True, reason=asleep
    ), RoutingBackend(
        kind=target.kind,  # type: ignore[arg-type]
        url=target.url,
        model=target.model,
        paid=target.paid,
        api_key_ref=target.api_key_ref,
        model_deployment=target.model_deployment,
        asleep=target.asleep,
        **common,
    )


def render_lane(
    item: LaneInput, targets: Mapping[str, Target], provider_urls: Mapping[str, str]
) -> LaneResult:
    """One Lane's fragment of the document, validated on its own."""
    lane, name = item.lane, item.name
    assert lane is not None  # noqa: S101 - render_routing renders only parsed Lanes
    out = LaneResult()
    by_mdep: dict[str, str] = {}
    for backend in lane.spec.backends:
        resolved, routed = _resolve_backend(name, backend, targets, provider_urls)
        out.backends.append(resolved)
        if routed is not None:
            out.routing_backends.append(routed)
        elif resolved.reason:
            out.notes.append(f"backend {backend.name}: {resolved.reason}")
        if backend.model_deployment_ref is not None:
            by_mdep.setdefault(backend.model_deployment_ref.name, backend_name(name, backend.name))
    order = [b.name for b in out.routing_backends]
    out.tags = tags_in_force(lane, item.promotions)
    extra: list[RoutingBackend] = []
    for tag, mdep in out.tags.items():
        doc_backend = by_mdep.get(mdep)
        if doc_backend is None:
            # A promoted (or pinned) model the spec does not list: it serves only its tag.
            doc_backend = backend_name(name, mdep)
            _, routed = _resolve_target(
                doc_backend,
                mdep,
                targets,
                mdep,
                {"name": doc_backend, "timeout_seconds": IMPLICIT_TIMEOUT_SECONDS},
            )
            if routed is not None and all(b.name != routed.name for b in extra):
                extra.append(routed)
        if doc_backend in order or any(b.name == doc_backend for b in extra):
            out.routing_tags[tag] = TagTarget(lane=name, backend=doc_backend)
        else:
            why = (targets.get(mdep) or Target(mdep, False, "no such ModelDeployment")).reason
            out.notes.append(f"tag {tag} -> {mdep}: unavailable ({why})")
    out.routing_backends += extra
    order, canary = _rollout(item, out, order)
    if not order:
        out.notes.append("no backend is available: the lane is out of routing")
        out.routing_tags = {}
        return out
    spec = lane.spec
    try:
        out.lane = RoutingLane(
            name=name,
            model=spec.model,
            aliases=spec.aliases,
            tag=spec.tag,
            mode=spec.mode,
            legacy_url=spec.legacy_url,
            legacy_endpoint_header=spec.legacy_endpoint_header,
            wake_timeout_seconds=spec.wake_timeout_seconds,
            backends=order,
            concurrency=spec.concurrency,
            circuit_breaker=spec.circuit_breaker,
            paid_fallback=spec.paid_fallback,
            rate_limit=spec.rate_limit,
            canary=canary,
        )
        # The fragment alone must make a valid document (names, tags, references).
        Routing(
            api_version="dayzero.dev/routing-v1",
            kind="Routing",
            lanes=[out.lane],
            backends=out.routing_backends,
            tags=out.routing_tags,
        )
    except ValidationError as exc:
        out.error = field_error(exc)
        out.lane, out.routing_backends, out.routing_tags = None, [], {}
    except ValueError as exc:
        out.error = str(exc)
        out.lane, out.routing_backends, out.routing_tags = None, [], {}
    return out


def stage_named(lane: Lane, name: str | None) -> RolloutStage | None:
    """The rollout stage of that name, if the Lane still has it."""
    return next((s for s in lane.spec.rollout.stages if s.name == name), None)


def _rollout(item: LaneInput, out: LaneResult, order: list[str]) -> tuple[list[str], Canary | None]:
    """Apply the promotions in force: the last stage and a finished rollout lead the lane, an
    earlier stage with projects or a percent becomes the lane's canary."""
    canary: Canary | None = None
    assert item.lane is not None  # noqa: S101 - only parsed Lanes are rendered
    for promo in item.promotions:
        target = out.routing_tags.get(promo.tag)
        if out.tags.get(promo.tag) != promo.model_deployment or target is None:
            continue  # pinned over, or its model is unavailable
        backend = target.backend
        assert backend is not None  # noqa: S101 - promotions always pin a backend
        stages = item.lane.spec.rollout.stages
        last = stages[-1].name if stages else None
        if promo.rollout_complete or (promo.stage is not None and promo.stage == last):
            # The last stage is the lane's default: it soaks at full traffic.
            order = [backend, *(b for b in order if b != backend)]
            continue
        stage = stage_named(item.lane, promo.stage)
        if canary is None and stage is not None and (stage.projects or stage.percent):
            canary = Canary(backend=backend, projects=stage.projects, percent=stage.percent or 0)
    return order, canary


@dataclass
class Rendered:
    """The whole document and what happened to each Lane."""

    text: str
    hash: str
    lanes: dict[tuple[str, str], LaneResult]


def config_hash(text: str) -> str:
    """The hash the gateway reports for a document (its /ready and status)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _previous_fragment(
    previous: Routing | None, lane: str
) -> tuple[RoutingLane, list[RoutingBackend], dict[str, TagTarget]] | None:
    if previous is None:
        return None
    found = next((x for x in previous.lanes if x.name == lane), None)
    if found is None:
        return None
    backends = {b.name: b for b in previous.backends}
    tags = {t: v for t, v in previous.tags.items() if v.lane == lane}
    used = set(found.backends) | {v.backend for v in tags.values() if v.backend}
    return found, [backends[b] for b in sorted(used) if b in backends], tags


def render_routing(
    lanes: list[LaneInput],
    targets_by_namespace: Mapping[str, Mapping[str, Target]],
    *,
    base: Mapping[str, Any] | None = None,
    previous: Routing | None = None,
    provider_urls: Mapping[str, str] = DEFAULT_PROVIDER_URLS,
) -> Rendered:
    """The routing document for every Lane (deterministic), and each Lane's result.

    ``base`` holds the document-wide settings (keys, prices, budgets, limits); lanes, backends
    and tags come from the Lanes. A Lane whose name another namespace already took (first by
    namespace, name), or whose fragment clashes with others, gets an error and no new fragment.
    """
    results: dict[tuple[str, str], LaneResult] = {}
    doc_lanes: list[RoutingLane] = []
    doc_backends: dict[str, RoutingBackend] = {}
    doc_tags: dict[str, TagTarget] = {}
    claimed: dict[str, str] = {}
    settings = {
        k: v for k, v in (base or {}).items() if k not in ("lanes", "backends", "tags", "kind")
    }
    settings.pop("apiVersion", None)
    for item in sorted(lanes, key=lambda i: (i.namespace, i.name)):
        if item.lane is None or item.error is not None:
            result = LaneResult(error=item.error or "the Lane could not be read")
        else:
            result = render_lane(item, targets_by_namespace.get(item.namespace, {}), provider_urls)
        results[(item.namespace, item.name)] = result
        owner = claimed.setdefault(item.name, item.namespace)
        if owner != item.namespace:
            result.error = f"metadata.name: lane {item.name!r} is already served from {owner}"
        fragment: tuple[RoutingLane, list[RoutingBackend], dict[str, TagTarget]] | None = None
        if result.error is None and result.lane is not None:
            fragment = (result.lane, result.routing_backends, result.routing_tags)
            clash = _clash(fragment, doc_lanes, doc_backends, doc_tags, settings)
            if clash:
                result.error = clash
                fragment = None
        if result.error is not None and owner == item.namespace:
            fragment = _previous_fragment(previous, item.name)
            result.stale = fragment is not None
        if fragment is None:
            continue
        lane, backends, tags = fragment
        doc_lanes.append(lane)
        doc_backends.update({b.name: b for b in backends})
        doc_tags.update(tags)
    doc = _document(settings, doc_lanes, doc_backends, doc_tags)
    text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    return Rendered(text=text, hash=config_hash(text), lanes=results)


def _document(
    settings: Mapping[str, Any],
    lanes: list[RoutingLane],
    backends: Mapping[str, RoutingBackend],
    tags: Mapping[str, TagTarget],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": ROUTING_API_VERSION,
        "kind": ROUTING_KIND,
        **settings,
        "lanes": [lane.to_wire() for lane in lanes],
        "backends": [backends[name].to_wire() for name in sorted(backends)],
        "tags": {tag: tags[tag].to_wire() for tag in sorted(tags)},
    }
    return doc


def _clash(
    fragment: tuple[RoutingLane, list[RoutingBackend], dict[str, TagTarget]],
    lanes: list[RoutingLane],
    backends: Mapping[str, RoutingBackend],
    tags: Mapping[str, TagTarget],
    settings: Mapping[str, Any],
) -> str | None:
    """Why adding this fragment would make the whole document invalid, naming the field."""
    lane, new_backends, new_tags = fragment
    candidate = _document(
        settings,
        [*lanes, lane],
        {**backends, **{b.name: b for b in new_backends}},
        {**tags, **new_tags},
    )
    try:
        Routing.model_validate(candidate)
    except ValidationError as exc:
        return field_error(exc)
    return None


def parse_document(text: str | None) -> Routing | None:
    """The document in force (the ConfigMap's), or None when absent or unreadable."""
    if not text:
        return None
    try:
        return Routing.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError):
        return None
