"""Pure lane choice: a header or a model name in, a lane and its ordered backends out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dayzero.api.routing import Routing, RoutingLane

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
    out: list[str] = []
    for lane in doc.lanes:
        out += [n for n in (lane.model, lane.tag) if n is not None] + lane.aliases
    return out + list(doc.tags)


def choose(doc: Routing, model: str | None, lane_header: str | None) -> Route:
    """The route of a request; ``GatewayError`` 404 listing what exists when nothing matches.

    ``X-Dayzero-Lane`` wins over the model name. Otherwise the model selects a lane by its model,
    an alias, the lane's tag, or a tag of the document (which may pin one backend).
    """
    lanes = {lane.name: lane for lane in doc.lanes}
    if lane_header:
        lane = lanes.get(lane_header)
        if lane is None:
            raise not_found("lane", lane_header, list(lanes))
        return Route(lane, tuple(lane.backends), "header")
    if model:
        for lane in doc.lanes:
            if model == lane.model:
                return Route(lane, tuple(lane.backends), "model")
            if model in lane.aliases:
                return Route(lane, tuple(lane.backends), "alias")
            if model == lane.tag:
                return Route(lane, tuple(lane.backends), "tag")
        target = doc.tags.get(model)
        if target is not None:
            lane = lanes[target.lane]
            pinned = (target.backend,) if target.backend else tuple(lane.backends)
            return Route(lane, pinned, "tag")
    raise not_found("model", model or "", names(doc))
