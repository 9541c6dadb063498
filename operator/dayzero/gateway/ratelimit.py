"""Rate limits: requests and tokens per minute, per project and lane and per key and lane.

A fixed one-minute window per counter, started by the counter's first request (so the window is
the same on every replica: it lives with the counter). With Redis every check is one Lua script
over the budget's pipelined connection (``resp.ScriptConnection``): it reads every counter the
request touches, and only when all have room adds to each (INCRBY, PEXPIRE on a new counter), so
replicas share one limit exactly and a refused request counts against nothing. Without Redis the
same rules run on the replica's own dictionary. A token counter is charged the request's
estimate (the budget's: prompt size / 3 plus max_tokens) up front, and corrected to the real usage
once the answer is in (a second script, not awaited).

When Redis cannot be reached, limits fall back to each replica's own counters (logged, and shown
in ``/v1/models/status``): local routing must not stop because Redis did; a fleet of N replicas
then lets up to N times the limit through. Redis is tried again a second later, and every check
goes back to it as soon as it answers (the local counts of the outage are not merged back).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dayzero.api.routing import RoutingLane
from dayzero.api.v1alpha1.lane import RateLimitSpec

from .auth import Principal
from .budget import max_output_tokens, prompt_tokens_estimate
from .errors import GatewayError
from .resp import RespError, Script, ScriptConnection

log = logging.getLogger(__name__)

WINDOW_MS = 60_000
RETRY_REDIS_SECONDS = 1.0
"""After Redis failed a check, checks stay local this long before Redis is tried again (a Redis
that does not answer must not cost every request the connection timeout)."""
KEY_PREFIX = "dz:rl:"
MEMORY_SWEEP = 10_000
"""Expired memory counters are dropped once this many are held."""

# KEYS: the counters. ARGV[1]: window ms; then amount, limit per counter.
# Returns {0, 0, 0} when admitted, else {index (1-based), used, ttl ms} of the first full counter.
CHECK_LUA = """
local window = tonumber(ARGV[1])
for i = 1, #KEYS do
  local amount, limit = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + amount > limit then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then ttl = window end
    return {i, used, ttl}
  end
end
for i = 1, #KEYS do
  local amount = tonumber(ARGV[2 * i])
  local n = redis.call('INCRBY', KEYS[i], amount)
  if n == amount or redis.call('PTTL', KEYS[i]) == -1 then
    redis.call('PEXPIRE', KEYS[i], window)
  end
end
return {0, 0, 0}
"""
CHECK = Script(CHECK_LUA)

# KEYS: token counters. ARGV: what to add to each (real usage minus the estimate). A counter whose
# window ended meanwhile is left alone; none goes below zero.
SETTLE_LUA = """
for i = 1, #KEYS do
  local delta = tonumber(ARGV[i])
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], delta) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 0
"""
SETTLE = Script(SETTLE_LUA)


@dataclass(frozen=True)
class Counter:
    """One limit a request counts against."""

    key: str
    """Redis key (hash-tagged by lane: one request's counters are in one cluster slot)."""
    amount: int
    """What the request adds: 1, or its estimated tokens."""
    limit: int
    what: str
    """The limit in words, e.g. ``project acme: 120 requests per minute on lane chat``."""


@dataclass(frozen=True)
class Refusal:
    """The full counter and when its window ends."""

    counter: Counter
    used: int
    retry_after: int
    """Whole seconds until the window ends (at least 1)."""

    def error(self) -> GatewayError:
        """429 ``rate_limit_error`` naming the limit."""
        c = self.counter
        used = f"{self.used} used in this minute"
        if c.key.endswith(":t"):
            used += f", this request counts {c.amount} (estimated)"
        return GatewayError(
            429,
            f"rate limit reached: {c.what}; {used}; retry in {self.retry_after} s",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(self.retry_after)},
        )


@dataclass(frozen=True)
class Admission:
    """An admitted request's token counters, to settle with its real usage."""

    tokens: tuple[Counter, ...]
    shared: bool
    """Counted in Redis (else in this replica's memory)."""


def counters_for(
    lane: RoutingLane, principal: Principal, project: str, request: dict[str, Any]
) -> list[Counter]:
    """The counters of one request: the lane's per-project limit, then the key's own."""
    out: list[Counter] = []
    tokens: int | None = None

    def add(spec: RateLimitSpec | None, who: str, label: str) -> None:
        nonlocal tokens
        if spec is None:
            return
        base = f"{KEY_PREFIX}{{{lane.name}}}:{who}"
        if spec.requests_per_minute is not None:
            what = f"{label}: {spec.requests_per_minute} requests per minute on lane {lane.name}"
            out.append(Counter(base + ":r", 1, spec.requests_per_minute, what))
        if spec.tokens_per_minute is not None:
            if tokens is None:
                tokens = prompt_tokens_estimate(request) + max_output_tokens(request)
            what = f"{label}: {spec.tokens_per_minute} tokens per minute on lane {lane.name}"
            out.append(Counter(base + ":t", tokens, spec.tokens_per_minute, what))

    add(lane.rate_limit, f"p:{project}", f"project {project}")
    if principal.key_id:
        add(principal.rate_limit, f"k:{principal.key_id}", f"key {principal.key_id}…")
    return out


class MemoryCounters:
    """The same rules as ``CHECK_LUA`` on this replica's own dictionary."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        """key -> (used, when the window ends)."""

    def check(self, counters: Sequence[Counter]) -> Refusal | None:
        """Admit (and count) the request, or say which counter is full."""
        now = self._clock()
        if len(self._counts) >= MEMORY_SWEEP:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        current = []
        for c in counters:
            used, ends = self._counts.get(c.key, (0, 0.0))
            if ends <= now:
                used, ends = 0, now + WINDOW_MS / 1000
            if used + c.amount > c.limit:
                return Refusal(c, used, max(1, math.ceil(ends - now)))
            current.append((used, ends))
        for c, (used, ends) in zip(counters, current, strict=True):
            self._counts[c.key] = (used + c.amount, ends)
        return None

    def settle(self, counters: Sequence[Counter], actual: int) -> None:
        """Replace the estimate of ``counters`` with ``actual`` (within their window)."""
        now = self._clock()
        for c in counters:
            used, ends = self._counts.get(c.key, (0, 0.0))
            if ends > now:
                self._counts[c.key] = (max(0, used + actual - c.amount), ends)


class RateLimiter:
    """Checks counters in Redis (``client`` and its ``fast`` connection) or in memory."""

    def __init__(
        self,
        client: Any = None,  # noqa: ANN401 - a redis.asyncio.Redis
        fast: ScriptConnection | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._fast = fast
        self._tasks: set[asyncio.Task[None]] = set()
        self._clock = clock
        self.memory = MemoryCounters(clock)
        self.available = True
        """Redis answered the last check (always True without Redis)."""
        self._retry_at = 0.0

    async def check(self, counters: Sequence[Counter]) -> Refusal | Admission:
        """Admit (and count) the request, or the refusal of the first full counter."""
        tokens = tuple(c for c in counters if c.key.endswith(":t"))
        if self._client is None or (not self.available and self._clock() < self._retry_at):
            return self.memory.check(counters) or Admission(tokens, shared=False)
        try:
            args = [WINDOW_MS]
            for c in counters:
                args += [c.amount, c.limit]
            reply = await self._eval(CHECK, [c.key for c in counters], args)
        except (RespError, OSError, _redis_error()) as e:
            if self.available:
                log.warning(
                    "redis unreachable, rate limits count on this replica only until it is "
                    "back: %s",
                    e,
                )
            self.available = False
            self._retry_at = self._clock() + RETRY_REDIS_SECONDS
            return self.memory.check(counters) or Admission(tokens, shared=False)
        if not self.available:
            log.info("redis is back: rate limits are shared again")
            self.available = True
        index, used, ttl = (int(v) for v in reply)
        if index == 0:
            return Admission(tokens, shared=True)
        return Refusal(counters[index - 1], used, max(1, math.ceil(ttl / 1000)))

    def settle(self, admission: Admission, actual: int) -> None:
        """Count ``actual`` tokens instead of the estimate (in Redis without waiting: a lost
        settlement leaves the estimate counted, which errs on the safe side)."""
        if not admission.tokens:
            return
        if not admission.shared:
            self.memory.settle(admission.tokens, actual)
            return
        task = asyncio.get_running_loop().create_task(self._settle(admission.tokens, actual))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, counters: Sequence[Counter], actual: int) -> None:
        try:
            await self._eval(
                SETTLE, [c.key for c in counters], [actual - c.amount for c in counters]
            )
        except (RespError, OSError, _redis_error()) as e:
            log.debug("a rate-limit settlement was lost (the estimate stays counted): %s", e)

    async def drain(self) -> None:
        """Wait for the settlements in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _eval(self, script: Script, keys: list[str], args: list[int]) -> Any:  # noqa: ANN401 - a RESP value
        if self._fast is not None:
            return await self._fast.evalsha(script, keys, args)
        assert self._client is not None  # noqa: S101 - only called with a client
        return await self._client.eval(script.body, len(keys), *keys, *args)

    def status(self) -> dict[str, Any]:
        """For ``sharedState.rateLimits`` of ``/v1/models/status``."""
        if self._client is None:
            return {"store": "memory"}
        if self.available:
            return {"store": "redis"}
        return {
            "store": "memory",
            "fallback": "redis is unreachable: each replica counts only its own requests",
        }


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError  # noqa: PLC0415 - only with --redis-url

    return RedisError
