"""Per-lane concurrency: reserved slots no other lane can borrow, plus a shared pool.

A request of a lane is admitted while the lane is below its reserved count, or below its max and
the gateway-wide shared pool has room. Past that it waits up to the lane's queue timeout, then gets
429 with Retry-After. Limits are changed in place on a reload so in-flight requests keep counting.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dayzero.api.v1alpha1.lane import ConcurrencySpec

from .errors import GatewayError


@dataclass
class _Lane:
    spec: ConcurrencySpec
    in_flight: int = 0
    shared_used: int = 0


class Limiter:
    """Admission for every lane of the gateway."""

    def __init__(self, shared: int) -> None:
        self.shared = shared
        self.shared_used = 0
        self._lanes: dict[str, _Lane] = {}
        self._changed = asyncio.Condition()
        self._waiting = 0  # requests queued for a slot; a release wakes them only if any

    def configure(self, shared: int, lanes: dict[str, ConcurrencySpec]) -> None:
        """Apply a (re)loaded document's limits; counts of in-flight requests are kept."""
        self.shared = shared
        for name, spec in lanes.items():
            lane = self._lanes.get(name)
            if lane is None:
                self._lanes[name] = _Lane(spec)
            else:
                lane.spec = spec

    def in_flight(self, lane: str) -> int:
        """Requests of the lane now admitted."""
        state = self._lanes.get(lane)
        return state.in_flight if state else 0

    def _try_admit(self, lane: _Lane) -> bool | None:
        """None when full, else whether the slot is a shared one."""
        if lane.in_flight < lane.spec.reserved:
            return False
        if lane.in_flight < lane.spec.max and self.shared_used < self.shared:
            return True
        return None

    @asynccontextmanager
    async def slot(self, name: str) -> AsyncIterator[None]:
        """Hold a slot of lane ``name`` for the block; GatewayError 429 when none frees in time."""
        lane = self._lanes[name]
        shared = self._try_admit(lane)
        if shared is None:
            timeout = lane.spec.queue_timeout_seconds
            self._waiting += 1
            try:
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._try_admit(lane) is not None),
                        timeout,
                    )
                    shared = bool(self._try_admit(lane))
            except TimeoutError:
                raise GatewayError(
                    429,
                    f"lane {name!r} is at its concurrency limit ({lane.spec.max}); retry later",
                    code="concurrency_limit",
                    headers={"Retry-After": str(max(1, math.ceil(timeout)))},
                ) from None
            finally:
                self._waiting -= 1
        lane.in_flight += 1
        self.shared_used += shared
        try:
            yield
        finally:
            lane.in_flight -= 1
            self.shared_used -= shared
            if self._waiting:
                async with self._changed:
                    self._changed.notify_all()
