"""State that several gateway replicas share through Redis: budget ledgers, circuits and rate
limits (``ratelimit``).

Why not every request asks Redis: a local request's hot path stays a dictionary lookup. Circuit
breakers stay local objects; each replica reports a failure or a recovery to Redis (one Lua
script, fire and forget) and pulls every host's state every ``sync_seconds``, so a circuit one
replica opens is open on all of them within that interval. Budgets must not be approximate,
so the paid tier's reservation is a Redis round trip of its own (``budget.RedisLedger``).

When Redis is unreachable the circuits carry on with local state only and the paid tier fails
closed; the client reconnects by itself and both resume when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import background
from .breaker import Breaker, Breakers
from .budget import Ledger, MemoryLedger, RedisLedger
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

CIRCUITS_KEY = "dz:{circuits}"
"""One hash: host -> ``failures:opened_at_ms`` (Redis's clock, so replicas' clocks may differ)."""
SYNC_SECONDS = 0.1
REDIS_TIMEOUT_SECONDS = 1.0
"""Socket timeouts: a Redis that does not answer fails a paid call within a second instead of
holding it (a Redis that is down refuses the connection, which fails at once)."""
REDIS_CONNECTIONS = 16

# KEYS[1]: the hash. ARGV: host, threshold, probe (0/1). Returns failures, opened_at_ms.
FAIL_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures, opened = 0, 0
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  local f, o = string.match(v, '^(%d+):(%d+)$')
  failures, opened = tonumber(f), tonumber(o)
end
failures = failures + 1
if ARGV[3] == '1' or failures >= tonumber(ARGV[2]) then opened = now end
redis.call('HSET', KEYS[1], ARGV[1], failures .. ':' .. opened)
return {failures, opened}
"""

# Returns Redis's clock in ms, then host, value pairs.
SYNC_LUA = """
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
"""


@dataclass
class SharedBreaker(Breaker):
    """A host's breaker that tells the other replicas of its failures and recoveries."""

    host: str = ""
    circuits: SharedCircuits | None = None
    pending: int = field(default=0)
    """Reports not yet answered: a sync must not undo what Redis has not heard of yet."""

    def failure(self, threshold: int, error: str, *, probe: bool = False) -> None:
        """See ``Breaker.failure``; also counted in Redis."""
        super().failure(threshold, error, probe=probe)
        if self.circuits is not None:
            self.circuits.report(self, threshold=threshold, probe=probe)

    def success(self) -> None:
        """See ``Breaker.success``; Redis hears of it only when there was something to clear."""
        dirty = self.failures > 0 or self.state != "closed"
        super().success()
        if dirty and self.circuits is not None:
            self.circuits.report(self, threshold=None, probe=False)


class SharedCircuits(Breakers):
    """Breakers by host, mirrored in Redis (see the module docstring)."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.monotonic) -> None:  # noqa: ANN401 - redis.asyncio.Redis
        super().__init__(clock)
        self._client = client
        self._fail = client.register_script(FAIL_LUA)
        self._sync = client.register_script(SYNC_LUA)
        self._tasks: set[asyncio.Task[None]] = set()
        self.available = True

    def get(self, host: str) -> Breaker:
        """The breaker of ``host``."""
        breaker = self._by_host.get(host)
        if breaker is None:
            breaker = self._by_host[host] = SharedBreaker(
                clock=self._clock, host=host, circuits=self
            )
        return breaker

    def report(self, breaker: SharedBreaker, *, threshold: int | None, probe: bool) -> None:
        """Tell Redis of a failure (``threshold`` set) or a recovery, without waiting."""
        breaker.pending += 1
        task = asyncio.get_running_loop().create_task(self._report(breaker, threshold, probe))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, breaker: SharedBreaker, threshold: int | None, probe: bool) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415 - only with --redis-url

        try:
            if threshold is None:
                await self._client.hdel(CIRCUITS_KEY, breaker.host)
                return
            failures, opened = await self._fail(
                keys=[CIRCUITS_KEY], args=[breaker.host, threshold, int(probe)]
            )
            breaker.failures = max(breaker.failures, int(failures))
            if int(opened) and breaker.state == "closed":
                breaker.state, breaker.opened_at = "open", self._clock()
        except (RedisError, OSError) as e:
            self._down(e)
        finally:
            breaker.pending -= 1

    async def sync(self) -> None:
        """Pull every host's state from Redis into the local breakers."""
        now_ms, *flat = await self._sync(keys=[CIRCUITS_KEY], args=[])
        self.available = True
        remote: dict[str, tuple[int, int]] = {}
        for i in range(0, len(flat), 2):
            count, _, since = _text(flat[i + 1]).partition(":")
            remote[_text(flat[i])] = (int(count), int(since or 0))
        for host in remote.keys() - self._by_host.keys():
            self.get(host)
        for host, breaker in self._by_host.items():
            if not isinstance(breaker, SharedBreaker) or breaker.pending or breaker.probing:
                continue
            failures, opened = remote.get(host, (0, 0))
            if opened:
                opened_at = self._clock() - max(0.0, (int(now_ms) - opened) / 1000)
                if breaker.state == "closed" or breaker.opened_at < opened_at:
                    if breaker.state == "closed":
                        breaker.opens += 1
                    breaker.state, breaker.opened_at = "open", opened_at
                breaker.failures = max(breaker.failures, failures)
            elif breaker.state == "open":
                Breaker.success(breaker)  # another replica's probe closed it (nothing to report)
            else:
                breaker.failures = failures

    def _down(self, error: BaseException) -> None:
        if self.available:
            log.warning("redis unreachable, circuits are local until it is back: %s", error)
        self.available = False

    async def drain(self) -> None:
        """Wait for the reports in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SharedState:
    """The gateway's shared state: in memory, or in Redis with ``redis_url``."""

    def __init__(
        self,
        client: Any = None,  # noqa: ANN401 - a redis.asyncio.Redis (from ``redis_client``)
        *,
        clock: Callable[[], float] = time.monotonic,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.client = client
        self.sync_seconds = sync_seconds
        self.breakers: Breakers
        self.ledger: Ledger
        if client is None:
            self.breakers = Breakers(clock)
            self.ledger = MemoryLedger()
        else:
            self.breakers = SharedCircuits(client, clock)
            self.ledger = RedisLedger(client)
        # Rate checks share the ledger's pipelined connection (one more script on it).
        fast = self.ledger.fast if isinstance(self.ledger, RedisLedger) else None
        self.rates = RateLimiter(client, fast, clock)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start syncing circuits and retrying missed settlements (Redis only)."""
        if self.client is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415

        from .budget import LedgerUnavailableError  # noqa: PLC0415 - beside its only use

        circuits, ledger = self.breakers, self.ledger
        assert isinstance(circuits, SharedCircuits)  # noqa: S101 - set together in __init__
        assert isinstance(ledger, RedisLedger)  # noqa: S101
        while True:
            try:
                await circuits.sync()
                if ledger.backlog:
                    log.info("redis is back: %d budget settlements sent", await ledger.flush())
            except (RedisError, OSError, LedgerUnavailableError) as e:
                circuits._down(e)
            await asyncio.sleep(self.sync_seconds)

    async def stop(self) -> None:
        """Stop syncing (the client belongs to whoever made it: it is not closed here)."""
        await background.cancel(self._task)
        self._task = None
        if isinstance(self.breakers, SharedCircuits):
            await self.breakers.drain()
        await self.rates.drain()
        if isinstance(self.ledger, RedisLedger):
            self.ledger.close()

    def status(self) -> dict[str, Any]:
        """For ``/v1/models/status``: where the state lives and whether it is reachable."""
        if not isinstance(self.breakers, SharedCircuits):
            return {"store": "memory", "rateLimits": self.rates.status()}
        backlog = self.ledger.backlog if isinstance(self.ledger, RedisLedger) else []
        return {
            "store": "redis",
            "available": self.breakers.available,
            "unsettled": len(backlog),
            "rateLimits": self.rates.status(),
        }


def redis_client(url: str) -> Any:  # noqa: ANN401 - redis.asyncio.Redis is untyped enough
    """The gateway's one Redis client for ``--redis-url``. It fails fast: short timeouts and no
    retries, so a paid call fails closed at once; the next call, or the sync loop, reconnects.
    Made once at start-up; whoever made it closes it (``aclose``) after the app stops."""
    import redis.asyncio as redis  # noqa: PLC0415 - only with --redis-url
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    # A bounded pool that queues: a burst of paid calls shares a few connections instead of
    # opening one each (200 at once time out connecting on a busy host).
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_TIMEOUT_SECONDS * 5,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis.from_pool(pool)  # closing the client closes the pool
