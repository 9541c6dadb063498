"""Budgets of the paid tier: USD per project and per lane, per UTC day and month.

Why reserve first: two replicas (or two requests of one) that each check "is there room?" and
then spend would together overspend. So a paid call first *reserves* its worst case (the prompt
estimate at the input price plus ``max_tokens`` at the output price) in one atomic step over
every ledger that applies, then *settles* the real cost from the upstream's usage, or releases
the reservation when the call failed. With ``--redis-url`` the step is a Lua script in Redis,
shared by every replica; without it the same rules run in memory, for one process.

Amounts are integer micro-dollars (a price per million tokens times tokens *is* micro-dollars),
so a ledger is exact: it equals the sum of the settled costs. A hard kill is stored in the
ledger, not in the document, so a reload or rollback of the document cannot lift it; only the
period's end or an admin reset does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from dayzero.api.routing import Price, Routing, RoutingBackend, RoutingLane
from dayzero.api.v1alpha1.lane import BudgetSpec

from .errors import GatewayError, invalid
from .resp import RESP_TIMEOUT_SECONDS, RespError, Script, ScriptConnection

log = logging.getLogger(__name__)

ScopeKind = Literal["project", "lane"]
Period = Literal["day", "month"]
FallbackReason = Literal["all_local_failed", "circuit_open", "denied", "timeout"]
RefusalKind = Literal["killed", "exhausted", "busy", "unavailable", "no_price"]

DEFAULT_MAX_TOKENS = 4096
"""The output bound reserved for a request that sets no ``max_tokens`` (Anthropic's default)."""
BYTES_PER_TOKEN = 3
"""The prompt estimate: one token per 3 bytes of the prompt's JSON (real text averages about
4), so the reservation is rarely below the real cost; settling corrects it either way."""
SCOPE_CACHE = 4096
KEY_PREFIX = "dz:{budget}:"
"""Ledger keys in Redis; the hash tag keeps every ledger in one slot, so one script sees all."""
_KEEP_AFTER = {"day": timedelta(days=7), "month": timedelta(days=62)}


def micro_usd(usd: float) -> int:
    """Dollars as integer micro-dollars."""
    return round(usd * 1_000_000)


def usd(micro: int) -> float:
    """Integer micro-dollars as dollars."""
    return micro / 1_000_000


def money(micro: int) -> str:
    """Micro-dollars for a message: ``$5.00``, or every digit under a cent (``$0.000282``)."""
    if micro >= 10_000 or micro == 0:
        return f"${usd(micro):.2f}"
    return f"${usd(micro):.6f}".rstrip("0")


def period_bounds(period: Period, now: float) -> tuple[str, datetime, datetime]:
    """The UTC period holding ``now``: its label (2026-11-30 or 2026-11), start and end."""
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start, start + timedelta(days=1)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), start, end


@dataclass(frozen=True)
class Scope:
    """One ledger: a project's or a lane's spend in one period, and its limit now."""

    kind: ScopeKind
    name: str
    period: Period
    label: str
    end: datetime
    limit: int | None
    """Micro-dollars; None: no limit (the ledger still counts, and a kill still holds)."""
    hard_kill: bool

    @property
    def key(self) -> str:
        """The ledger's name (its Redis key)."""
        return f"{KEY_PREFIX}{self.kind}:{self.name}:{self.period}:{self.label}"

    def ttl(self, now: float) -> int:
        """Seconds the ledger is kept: its period and then some, for the admin's record."""
        return max(1, int(self.end.timestamp() - now + _KEEP_AFTER[self.period].total_seconds()))

    def describe(self) -> str:
        """E.g. ``the daily budget of project 'acme' ($5.00 for 2026-11-30 UTC)``."""
        every = "daily" if self.period == "day" else "monthly"
        limit = money(self.limit) if self.limit is not None else "no limit"
        return f"the {every} budget of {self.kind} {self.name!r} ({limit} for {self.label} UTC)"


def scopes_for(doc: Routing, lane: RoutingLane, project: str, now: float) -> tuple[Scope, ...]:
    """The four ledgers a paid call of ``project`` on ``lane`` counts in: the project's day and
    month (``budgets``) and the lane's (``paidFallback.budget``). All four are kept even without
    a limit, so a kill and the spend survive a document that drops or changes the budget."""
    project_budget = doc.budgets.get(project, BudgetSpec())
    lane_budget = lane.paid_fallback.budget
    out = []
    for kind, name, spec in (
        ("project", project, project_budget),
        ("lane", lane.name, lane_budget),
    ):
        for period, limit in (("day", spec.daily_usd), ("month", spec.monthly_usd)):
            label, _, end = period_bounds(period, now)  # type: ignore[arg-type]
            out.append(
                Scope(
                    kind,  # type: ignore[arg-type]
                    name,
                    period,  # type: ignore[arg-type]
                    label,
                    end,
                    None if limit is None else micro_usd(limit),
                    spec.hard_kill,
                )
            )
    return tuple(out)


def prompt_tokens_estimate(request: dict[str, Any]) -> int:
    """An over-estimate of the prompt's tokens from its size (see ``BYTES_PER_TOKEN``)."""
    parts = [request.get(k) for k in ("messages", "prompt", "input", "tools", "system")]
    size = len(json.dumps([p for p in parts if p is not None], separators=(",", ":")).encode())
    return math.ceil(size / BYTES_PER_TOKEN)


def max_output_tokens(request: dict[str, Any]) -> int:
    """The client's output bound (``max_tokens`` or ``max_completion_tokens``), else 4096."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = request.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return DEFAULT_MAX_TOKENS


def cost(price: Price, input_tokens: int, output_tokens: int) -> int:
    """Micro-dollars of a call (rounded up to a whole micro-dollar)."""
    exact = (
        input_tokens * price.input_usd_per_million + output_tokens * price.output_usd_per_million
    )
    return math.ceil(exact - 1e-9)


def fallback_reason(local_reasons: Sequence[str]) -> FallbackReason:
    """Why the paid tier is tried, from how each local backend failed: every circuit was open,
    every one timed out, every one was denied (too small for the model, or unusable), or a mix
    (``all_local_failed``, also when the lane has no local backend)."""
    kinds = set(local_reasons)
    if kinds == {"circuit_open"}:
        return "circuit_open"
    if kinds == {"timeout"}:
        return "timeout"
    if kinds and kinds <= {"denied_size", "unusable"}:
        return "denied"
    return "all_local_failed"


# -- ledgers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The answer to a reservation: ok, or which ledger refused and why."""

    ok: bool
    index: int = -1
    kind: RefusalKind | None = None
    spent: int = 0
    reserved: int = 0


@dataclass(frozen=True)
class LedgerRow:
    """One ledger as stored."""

    key: str
    spent: int
    reserved: int
    killed: bool
    limit: int | None
    reset_spent: int

    def to_wire(self) -> dict[str, Any]:
        """As ``GET /v1/budgets`` shows it (the key split back into its parts)."""
        parts = self.key.removeprefix(KEY_PREFIX).split(":")
        return {
            "scope": parts[0],
            "name": ":".join(parts[1:-2]),
            "period": parts[-2],
            "label": parts[-1],
            "limitUsd": None if self.limit is None else usd(self.limit),
            "spentUsd": usd(self.spent),
            "reservedUsd": usd(self.reserved),
            "killed": self.killed,
            "spentBeforeResetUsd": usd(self.reset_spent),
        }


class LedgerUnavailableError(Exception):
    """The shared ledger (Redis) cannot be reached: paid calls fail closed."""


class Ledger(Protocol):
    """Where budgets are counted: in memory, or in Redis for every replica."""

    name: str

    async def reserve(self, scopes: Sequence[Scope], amount: int, now: float) -> Verdict:
        """Reserve ``amount`` in every ledger at once, or in none."""
        ...

    async def settle(self, scopes: Sequence[Scope], reserved: int, actual: int, now: float) -> None:
        """Turn a reservation into its actual cost (0 releases it)."""
        ...

    async def reset(self, key: str) -> LedgerRow:
        """An admin's reset: the spend so far is set aside, the kill lifted."""
        ...

    async def rows(self, labels: Sequence[str]) -> list[LedgerRow]:
        """The ledgers of the periods named by ``labels``."""
        ...


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class MemoryLedger:
    """The ledgers of one process (no ``--redis-url``); the same rules as the Lua scripts.

    No ``await`` between the check and the update, so on one event loop it is atomic too.
    """

    name = "memory"

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, int]] = {}

    def _row(self, key: str) -> dict[str, int]:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = {
                "spent": 0,
                "reserved": 0,
                "killed": 0,
                "limit": -1,
                "reset_spent": 0,
            }
        return row

    async def reserve(self, scopes: Sequence[Scope], amount: int, now: float) -> Verdict:
        """See ``Ledger.reserve``."""
        for i, scope in enumerate(scopes):
            row = self._row(scope.key)
            spent, reserved = row["spent"], row["reserved"]
            if row["killed"]:
                return Verdict(False, i, "killed", spent, reserved)
            if scope.limit is not None:
                if spent + amount > scope.limit:
                    if scope.hard_kill:
                        row["killed"], row["limit"] = 1, scope.limit
                    return Verdict(False, i, "exhausted", spent, reserved)
                if spent + reserved + amount > scope.limit:
                    return Verdict(False, i, "busy", spent, reserved)
        for scope in scopes:
            row = self._row(scope.key)
            row["reserved"] += amount
            row["limit"] = _limit(scope.limit)
        return Verdict(True)

    async def settle(self, scopes: Sequence[Scope], reserved: int, actual: int, now: float) -> None:
        """See ``Ledger.settle``."""
        for scope in scopes:
            row = self._row(scope.key)
            row["reserved"] = max(0, row["reserved"] - reserved)
            row["spent"] += actual
            if scope.limit is not None and scope.hard_kill and row["spent"] >= scope.limit:
                row["killed"] = 1

    async def reset(self, key: str) -> LedgerRow:
        """See ``Ledger.reset``."""
        row = self._row(key)
        row["reset_spent"] += row["spent"]
        row["spent"] = 0
        row["killed"] = 0
        return _row_of(key, row)

    async def rows(self, labels: Sequence[str]) -> list[LedgerRow]:
        """See ``Ledger.rows``."""
        wanted = set(labels)
        return [
            _row_of(key, row)
            for key, row in sorted(self._rows.items())
            if key.rsplit(":", 1)[-1] in wanted
        ]


def _row_of(key: str, row: dict[str, int]) -> LedgerRow:
    limit = row.get("limit", -1)
    return LedgerRow(
        key=key,
        spent=row.get("spent", 0),
        reserved=row.get("reserved", 0),
        killed=bool(row.get("killed", 0)),
        limit=None if limit < 0 else limit,
        reset_spent=row.get("reset_spent", 0),
    )


# KEYS: the ledgers. ARGV[1]: amount; then for each key: limit (-1: none), hard kill (0/1), ttl.
RESERVE_LUA = """
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 * i - 1])
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved', 'killed')
  local spent = tonumber(v[1] or '0')
  local reserved = tonumber(v[2] or '0')
  if v[3] == '1' then return {0, i, 'killed', spent, reserved} end
  if limit >= 0 then
    if spent + amount > limit then
      if ARGV[3 * i] == '1' then
        redis.call('HSET', KEYS[i], 'killed', 1, 'limit', limit)
        redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3 * i + 1]))
      end
      return {0, i, 'exhausted', spent, reserved}
    end
    if spent + reserved + amount > limit then return {0, i, 'busy', spent, reserved} end
  end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', amount)
  redis.call('HSET', KEYS[i], 'limit', ARGV[3 * i - 1])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3 * i + 1]))
end
return {1, 0, 'ok', 0, 0}
"""

# KEYS: the ledgers. ARGV[1]: reserved, ARGV[2]: actual; then per key: limit, hard kill, ttl.
SETTLE_LUA = """
local reserved = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
for i = 1, #KEYS do
  -- A Redis restarted empty lost the reservation: never let reserved go below zero.
  if redis.call('HINCRBY', KEYS[i], 'reserved', -reserved) < 0 then
    redis.call('HSET', KEYS[i], 'reserved', 0)
  end
  local spent = redis.call('HINCRBY', KEYS[i], 'spent', actual)
  local limit = tonumber(ARGV[3 * i])
  if limit >= 0 and ARGV[3 * i + 1] == '1' and spent >= limit then
    redis.call('HSET', KEYS[i], 'killed', 1)
  end
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3 * i + 2]))
end
return 1
"""

RESET_LUA = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
redis.call('HINCRBY', KEYS[1], 'reset_spent', spent)
redis.call('HSET', KEYS[1], 'spent', 0, 'killed', 0)
return redis.call('HGETALL', KEYS[1])
"""


def _scope_args(scopes: Sequence[Scope], now: float) -> list[int]:
    out: list[int] = []
    for scope in scopes:
        out += [_limit(scope.limit), int(scope.hard_kill), scope.ttl(now)]
    return out


class RedisLedger:
    """The ledgers in Redis, shared by every replica; each step one Lua script (atomic).

    ``client`` is a ``redis.asyncio.Redis``; any error reaching it is ``LedgerUnavailableError``.
    A settlement that fails (Redis down after the call) is kept and retried by ``flush`` so the
    spend is not lost.
    """

    name = "redis"
    MAX_BACKLOG = 100_000

    def __init__(self, client: Any) -> None:  # noqa: ANN401 - redis.asyncio.Redis is untyped
        self._client = client
        self._reserve = client.register_script(RESERVE_LUA)
        self._settle = client.register_script(SETTLE_LUA)
        self._reset = client.register_script(RESET_LUA)
        self._scripts = {
            id(self._reserve): Script(RESERVE_LUA),
            id(self._settle): Script(SETTLE_LUA),
        }
        # Reserve and settle, the two steps of every paid call, go over a connection of their
        # own (``resp.ScriptConnection``): a third of redis-py's CPU per call. The admin's reset
        # and listing stay on redis-py, as does a TLS or Unix-socket Redis.
        self.fast = _script_connection(client)
        self.backlog: list[tuple[tuple[Scope, ...], int, int, float]] = []

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:  # noqa: ANN401 - redis replies are untyped
        from redis.exceptions import RedisError  # noqa: PLC0415 - only a Redis ledger needs it

        fast = self._scripts.get(id(script))
        try:
            if fast is not None and self.fast is not None:
                return await self.fast.evalsha(fast, keys, args)
            return await script(keys=keys, args=args)
        except (RedisError, OSError, RespError) as e:
            raise LedgerUnavailableError(str(e) or type(e).__name__) from None

    def close(self) -> None:
        """Drop the ledger's own connection (the redis-py client is its maker's to close)."""
        if self.fast is not None:
            self.fast.close()

    async def reserve(self, scopes: Sequence[Scope], amount: int, now: float) -> Verdict:
        """See ``Ledger.reserve``."""
        args = [amount]
        for scope in scopes:
            args += [_limit(scope.limit), int(scope.hard_kill), scope.ttl(now)]
        ok, index, kind, spent, reserved = await self._run(
            self._reserve, [s.key for s in scopes], args
        )
        if ok:
            return Verdict(True)
        text = kind.decode() if isinstance(kind, bytes) else str(kind)
        return Verdict(False, int(index) - 1, text, int(spent), int(reserved))  # type: ignore[arg-type]

    async def settle(self, scopes: Sequence[Scope], reserved: int, actual: int, now: float) -> None:
        """See ``Ledger.settle``; kept for ``flush`` when Redis cannot be reached."""
        try:
            await self._run(
                self._settle,
                [s.key for s in scopes],
                [reserved, actual, *_scope_args(scopes, now)],
            )
        except LedgerUnavailableError:
            if len(self.backlog) < self.MAX_BACKLOG:
                self.backlog.append((tuple(scopes), reserved, actual, now))
            else:
                log.error(  # noqa: TRY400 - the cause is logged as a warning by the caller
                    "budget backlog full: a settlement of %d micro-USD is lost", actual
                )
            raise

    async def flush(self) -> int:
        """Retry the settlements Redis missed; how many went through."""
        done = 0
        while self.backlog:
            scopes, reserved, actual, now = self.backlog[0]
            await self._run(
                self._settle,
                [s.key for s in scopes],
                [reserved, actual, *_scope_args(scopes, now)],
            )
            self.backlog.pop(0)
            done += 1
        return done

    async def reset(self, key: str) -> LedgerRow:
        """See ``Ledger.reset``."""
        flat = await self._run(self._reset, [key], [])
        return _row_of(key, _decode_hash(flat))

    async def rows(self, labels: Sequence[str]) -> list[LedgerRow]:
        """See ``Ledger.rows`` (a SCAN of the ledger keys: admin use only)."""
        from redis.exceptions import RedisError  # noqa: PLC0415

        wanted = set(labels)
        try:
            keys = sorted(
                [_text(k) async for k in self._client.scan_iter(match=KEY_PREFIX + "*", count=1000)]
            )
            keys = [k for k in keys if k.rsplit(":", 1)[-1] in wanted]
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            values = await pipe.execute()
        except (RedisError, OSError) as e:
            raise LedgerUnavailableError(str(e) or type(e).__name__) from None
        return [
            _row_of(key, {_text(k): int(v) for k, v in value.items()})
            for key, value in zip(keys, values, strict=True)
        ]


def _script_connection(client: Any) -> ScriptConnection | None:  # noqa: ANN401 - redis.asyncio.Redis
    """A ``ScriptConnection`` to the Redis of ``client``'s pool, when it is plain TCP."""
    from redis.asyncio.connection import Connection  # noqa: PLC0415 - only a Redis ledger

    pool = getattr(client, "connection_pool", None)
    if pool is None or pool.connection_class is not Connection:
        return None
    kw = pool.connection_kwargs
    timeout = kw.get("socket_timeout") or RESP_TIMEOUT_SECONDS
    return ScriptConnection(
        str(kw.get("host", "localhost")),
        int(kw.get("port", 6379)),
        username=kw.get("username"),
        password=kw.get("password"),
        db=int(kw.get("db") or 0),
        timeout=float(timeout),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_hash(flat: list[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


# -- the paid tier ---------------------------------------------------------------------------------


@dataclass
class Reservation:
    """A paid call's hold on its ledgers, until it is settled or released."""

    scopes: tuple[Scope, ...]
    amount: int
    price: Price | None
    done: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a paid call may not go out; ``error()`` is the answer to the client."""

    kind: RefusalKind
    message: str
    retry_after: int

    def error(self, local: str) -> GatewayError:
        """429 for a budget, 503 when the ledger is unreachable or the model has no price."""
        status, code = (429, "budget_exceeded")
        if self.kind == "unavailable":
            status, code = 503, "budget_unavailable"
        elif self.kind == "no_price":
            status, code = 503, "no_price"
        return GatewayError(
            status,
            f"paid fallback refused: {self.message} (local backends: {local})",
            code=code,
            headers={"Retry-After": str(self.retry_after)},
        )


class PaidTier:
    """Budget checks around the paid backends of a lane, with their metrics."""

    def __init__(
        self,
        ledger: Ledger,
        registry: CollectorRegistry,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.now = now
        self.fallbacks = Counter(
            "dayzero_gateway_paid_fallbacks",
            "Paid-tier attempts, by why the local tier was left and what came of it.",
            ["lane", "reason", "result"],
            registry=registry,
        )
        self.settle_errors = Counter(
            "dayzero_gateway_budget_settle_errors",
            "Settlements the shared ledger missed (kept and retried).",
            registry=registry,
        )
        # The four ledgers of (document, lane, project) change only with the UTC day: worked out
        # once a day, not on every paid call (datetime arithmetic is most of the check's CPU).
        self._scopes: dict[tuple[int, str, str, int], tuple[Routing, tuple[Scope, ...]]] = {}

    def _scopes_for(
        self, doc: Routing, lane: RoutingLane, project: str, now: float
    ) -> tuple[Scope, ...]:
        key = (id(doc), lane.name, project, int(now // 86400))
        hit = self._scopes.get(key)
        if hit is not None and hit[0] is doc:
            return hit[1]
        if len(self._scopes) >= SCOPE_CACHE:
            self._scopes.clear()
        scopes = scopes_for(doc, lane, project, now)
        self._scopes[key] = (doc, scopes)
        return scopes

    async def reserve(
        self,
        doc: Routing,
        lane: RoutingLane,
        spec: RoutingBackend,
        project: str,
        request: dict[str, Any],
    ) -> Reservation | Refusal:
        """Reserve the worst case of ``request`` on ``spec``, or say why not."""
        now = self.now()
        scopes = self._scopes_for(doc, lane, project, now)
        model = spec.model or lane.model or str(request.get("model"))
        price = doc.prices.get(model)
        if price is None:
            limited = [s for s in scopes if s.limit is not None]
            if limited:
                return Refusal(
                    "no_price",
                    f"backend {spec.name!r} model {model!r} has no entry in prices, so "
                    f"{limited[0].describe()} cannot be kept",
                    60,
                )
            amount = 0
        else:
            amount = cost(price, prompt_tokens_estimate(request), max_output_tokens(request))
        try:
            verdict = await self.ledger.reserve(scopes, amount, now)
        except LedgerUnavailableError as e:
            return Refusal(
                "unavailable",
                f"the budget ledger ({self.ledger.name}) is unreachable, so paid calls fail "
                f"closed until it is back: {e}",
                1,
            )
        if verdict.ok:
            return Reservation(scopes, amount, price)
        scope = scopes[verdict.index]
        until = scope.end.strftime("%Y-%m-%dT%H:%M:%SZ")
        to_end = max(1, math.ceil(scope.end.timestamp() - now))
        spent = money(verdict.spent)
        if verdict.kind == "killed":
            message = (
                f"{scope.describe()} is used up and its hard kill is on until {until} or an "
                f"admin reset (POST /v1/budgets/reset); spent {spent}"
            )
            return Refusal("killed", message, to_end)
        need = money(amount)
        if verdict.kind == "exhausted":
            kill = " (hard kill now on)" if scope.hard_kill else ""
            message = (
                f"{scope.describe()} is exhausted{kill}: spent {spent}, and this request may "
                f"cost up to {need} (its prompt and max_tokens); the period ends {until}"
            )
            return Refusal("exhausted", message, to_end)
        held = money(verdict.reserved)
        message = (
            f"{scope.describe()} has no room now: spent {spent}, {held} reserved by calls in "
            f"flight, and this request may cost up to {need}"
        )
        return Refusal("busy", message, 1)

    async def settle(
        self, reservation: Reservation, usage: dict[str, Any] | None, *, charged: bool = True
    ) -> int:
        """Record the real cost from ``usage``; when the upstream reported none, the reserved
        worst case if it may have ``charged`` (an answer, a stream cut short), else nothing.
        The micro-dollars settled. Idempotent."""
        if reservation.done:
            return 0
        reservation.done = True
        actual = reservation.amount if charged else 0
        if usage and reservation.price is not None:
            actual = cost(
                reservation.price,
                _int(usage.get("prompt_tokens")),
                _int(usage.get("completion_tokens")),
            )
        elif reservation.price is None:
            actual = 0
        await self._settle(reservation, actual)
        return actual

    async def release(self, reservation: Reservation) -> None:
        """The call failed before any answer: nothing was spent. Idempotent."""
        if not reservation.done:
            reservation.done = True
            await self._settle(reservation, 0)

    async def _settle(self, reservation: Reservation, actual: int) -> None:
        try:
            await self.ledger.settle(reservation.scopes, reservation.amount, actual, self.now())
        except LedgerUnavailableError as e:
            self.settle_errors.inc()
            log.warning("budget settlement of %d micro-USD kept for later: %s", actual, e)

    def count(self, lane: str, reason: str, served: bool, refusal: Refusal | None) -> None:
        """One request that went to the paid tier, by what came of it: served, refused
        (budget), unavailable (ledger unreachable), no_price, or failed (the paid backends)."""
        if served:
            result = "served"
        elif refusal is None:
            result = "failed"
        else:
            result = {"unavailable": "unavailable", "no_price": "no_price"}.get(
                refusal.kind, "refused"
            )
        self.fallbacks.labels(lane, reason, result).inc()

    async def ledgers(self, doc: Routing) -> dict[str, Any]:
        """``GET /v1/budgets``: the ledgers of the current day and month, with the limits of
        the document in force beside the stored ones."""
        now = self.now()
        day, _, day_end = period_bounds("day", now)
        month, _, month_end = period_bounds("month", now)
        try:
            rows = await self.ledger.rows([day, month])
        except LedgerUnavailableError as e:
            raise GatewayError(503, f"the budget ledger is unreachable: {e}") from None
        return {
            "ledger": self.ledger.name,
            "periods": {
                "day": {"label": day, "ends": day_end.isoformat()},
                "month": {"label": month, "ends": month_end.isoformat()},
            },
            "budgets": {p: b.to_wire() for p, b in doc.budgets.items()},
            "lanes": {
                lane.name: lane.paid_fallback.budget.to_wire()
                for lane in doc.lanes
                if lane.paid_fallback.enabled
            },
            "ledgers": [row.to_wire() for row in rows],
        }

    async def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/budgets/reset`` with ``{scope, name, period}``: lift the kill and set
        the period's spend so far aside (kept as ``spentBeforeResetUsd``)."""
        scope = body.get("scope")
        if scope not in ("project", "lane"):
            raise invalid("scope", "must be project or lane")
        name = body.get("name")
        if not isinstance(name, str) or not name or ":" in name:
            raise invalid("name", "must be the project's or lane's name")
        period = body.get("period", "day")
        if period not in ("day", "month"):
            raise invalid("period", "must be day or month")
        label, _, _ = period_bounds(period, self.now())
        try:
            row = await self.ledger.reset(f"{KEY_PREFIX}{scope}:{name}:{period}:{label}")
        except LedgerUnavailableError as e:
            raise GatewayError(503, f"the budget ledger is unreachable: {e}") from None
        log.warning("budget reset by an admin: %s %s %s %s", scope, name, period, label)
        return row.to_wire()


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
