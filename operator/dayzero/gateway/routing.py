"""Pure lane choice: a header or a model name in, a lane and its ordered backends out.

Also the pure rules of which names a key sees and which backend refuses a lane by its size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from dayzero.api.routing import Canary, Routing, RoutingBackend, RoutingLane

from .errors import not_found

Via = Literal["header", "model", "alias", "tag"]


@dataclass(frozen=True)
class Route:
    """Where a request goes: the lane, the backend names to try in order, and why."""

    lane: RoutingLane
    backends: tuple[str, ...]
    via: Via


def names(doc: Routing) -> list[str]:
    """Every model name, alias and tag that selects a lane."""
    return [name for name, _ in selectors(doc)]


def selectors(doc: Routing) -> list[tuple[str, RoutingLane]]:
    """Every model name, alias and tag that selects a lane, with the lane it selects."""
    lanes = {lane.name: lane for lane in doc.lanes}
    out: list[tuple[str, RoutingLane]] = []
    for lane in doc.lanes:
        out += [(n, lane) for n in (lane.model, lane.tag) if n is not None]
        out += [(alias, lane) for alias in lane.aliases]
    return out + [(tag, lanes[target.lane]) for tag, target in doc.tags.items()]


def size_denial(lane: RoutingLane, backend: RoutingBackend) -> str | None:
    """Why ``backend`` refuses the lane's model by its size, or None when it may serve it.

    The size is known only when the lane states ``parametersBillions``; a backend in
    ``maintenance`` takes any size (an operator trying a big model on a small host on purpose).
    """
    size, limit = lane.parameters_billions, backend.max_parameters_billions
    if size is None or limit is None or size <= limit or backend.maintenance:
        return None
    return f"a {size:g}B model is over its limit of {limit:g}B parameters"


def in_canary(canary: Canary, project: str | None) -> bool:
    """Whether a project's requests go to the lane's canary first: listed, or in its share.

    The share is sticky: a project's hash decides, so a project sees one model for the stage.
    """
    if project is None:
        return False
    if project in canary.projects:
        return True
    bucket = int.from_bytes(hashlib.sha256(project.encode()).digest()[:4], "big") % 100
    return bucket < canary.percent


def lane_order(lane: RoutingLane, project: str | None) -> tuple[str, ...]:
    """The lane's backends in the order this project tries them (a canary goes first)."""
    canary = lane.canary
    if canary is None or not in_canary(canary, project):
        return tuple(lane.backends)
    return (canary.backend, *(b for b in lane.backends if b != canary.backend))


def choose(
    doc: Routing, model: str | None, lane_header: str | None, project: str | None = None
) -> Route:
    """The route of a request; ``GatewayError`` 404 listing what exists when nothing matches.

    ``X-Dayzero-Lane`` wins over the model name. Otherwise the model selects a lane by its model,
    an alias, the lane's tag, or a tag of the document (which may pin one backend). A lane in a
    staged rollout puts its canary first for the projects the stage covers.
    """
    lanes = {lane.name: lane for lane in doc.lanes}
    if lane_header:
        lane = lanes.get(lane_header)
        if lane is None:
            raise not_found("lane", lane_header, list(lanes))
        return Route(lane, lane_order(lane, project), "header")
    if model:
        for lane in doc.lanes:
            if model == lane.model:
                return Route(lane, lane_order(lane, project), "model")
            if model in lane.aliases:
                return Route(lane, lane_order(lane, project), "alias")
            if model == lane.tag:
                return Route(lane, lane_order(lane, project), "tag")
        target = doc.tags.get(model)
        if target is not None:
            lane = lanes[target.lane]
            pinned = (target.backend,) if target.backend else tuple(lane.backends)
            return Route(lane, pinned, "tag")
    raise not_found("model", model or "", names(doc))
