"""Shadow lanes: decide where a request would go, forward it unchanged to the legacy path, and
record whether the two agree.

Why: before the gateway takes a caller's traffic, its routing decisions are compared with what the
legacy path really did, on real traffic and at no risk, because the client only ever sees the
legacy answer. The decision follows the rules a sync request follows (lane order, the paid tier,
the size deny rule, unreadable keys, open circuits) but dials no backend and moves no breaker.
The legacy answer reveals the endpoint it used either in a response header the lane names
(``legacyEndpointHeader``) or in its ``model`` field, which every OpenAI and Ollama answer (and
every stream chunk) carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from dayzero.api.routing import RoutingBackend, RoutingLane

from .errors import GatewayError
from .routing import size_denial

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .config import Snapshot

log = logging.getLogger(__name__)

Agreement = Literal["agree", "disagree", "unknown"]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

RING_SIZE = 1000
"""Decisions kept in memory (and in Redis, per fleet) for /v1/shadow/decisions."""
REDIS_PREFIX = "dayzero:shadow:"
_SCAN_BYTES = 8192
"""How much of the legacy answer is searched for its model field (it comes first in practice)."""
_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,200})"')
# Not relayed back: they describe the gateway's connection to the legacy path, not the answer.
_HOP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection")
)
# Not forwarded: hop-by-hop, what aiohttp sets itself, and the client's key (the gateway never
# hands a client key to another host).
_DROP = frozenset(
    (
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "authorization",
        "x-api-key",
    )
)


@dataclass(frozen=True)
class Decision:
    """Where the gateway would have sent a request: the lane, the first backend that would be
    dialled, and the model it would ask that backend for (backend None: none would serve it)."""

    lane: str
    backend: str | None
    model: str | None
    url: str | None
    why_not: tuple[str, ...] = ()


def decide(
    snapshot: Snapshot,
    lane: RoutingLane,
    order: tuple[str, ...],
    client_model: str | None,
    circuit_open: Callable[[str], bool],
) -> Decision:
    """The decision for a routed request: the sync path's order with everything that passes a
    backend over without a dial (a dial is what a shadow never does)."""
    specs = [snapshot.backend(name) for name in order]
    specs = [b for b in specs if not b.paid] + [
        b for b in specs if b.paid and lane.paid_fallback.enabled
    ]
    skipped: list[str] = []
    for spec in specs:
        why = _passed_over(snapshot, lane, spec, circuit_open)
        if why is not None:
            skipped.append(f"{spec.name}: {why}")
            continue
        model = spec.model or lane.model or client_model
        return Decision(lane.name, spec.name, model, spec.url, tuple(skipped))
    return Decision(lane.name, None, None, None, tuple(skipped))


def _passed_over(
    snapshot: Snapshot,
    lane: RoutingLane,
    spec: RoutingBackend,
    circuit_open: Callable[[str], bool],
) -> str | None:
    denial = size_denial(lane, spec)
    if denial is not None:
        return f"denied_size: {denial}"
    if spec.name in snapshot.unusable:
        return "unusable"
    if circuit_open(spec.url):
        return "circuit_open"
    if spec.asleep and not lane.wake_timeout_seconds:
        return "asleep"  # the sync path would wake it but answer from the next backend
    return None


def revealed_model(prefix: bytes) -> str | None:
    """The first ``model`` field of an OpenAI or Ollama answer (JSON, SSE or NDJSON)."""
    match = _MODEL.search(prefix)
    if match is None:
        return None
    try:
        value: Any = json.loads(b'"' + match.group(1) + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def agreement(decision: Decision, legacy: str | None, *, by_header: bool) -> Agreement:
    """Whether the legacy path used the endpoint the gateway chose.

    A header may name the backend, its URL or its ``host:port``; a model field is compared with
    the model the gateway would have asked for. Nothing revealed is ``unknown``.
    """
    if legacy is None or not legacy:
        return "unknown"
    if decision.backend is None:
        return "disagree"
    if not by_header:
        return "agree" if legacy == decision.model else "disagree"
    url = (decision.url or "").rstrip("/")
    names = {decision.backend, url, url.removesuffix("/v1"), urlsplit(url).netloc}
    return "agree" if legacy.rstrip("/") in names else "disagree"


@dataclass(slots=True)
class Record:
    """One shadow decision as logged and kept."""

    time: float
    trace_id: str
    lane: str
    backend: str | None
    model: str | None
    legacy: str | None
    legacy_status: int
    agreement: Agreement
    replica: str

    def wire(self) -> dict[str, Any]:
        """As logged, kept in Redis and listed by /v1/shadow/decisions."""
        return {
            "time": self.time,
            "trace_id": self.trace_id,
            "lane": self.lane,
            "backend": self.backend,
            "model": self.model,
            "legacy": self.legacy,
            "legacy_status": self.legacy_status,
            "agreement": self.agreement,
            "replica": self.replica,
        }


@dataclass
class Counts:
    """Agreement counts of one lane."""

    agree: int = 0
    disagree: int = 0
    unknown: int = 0

    def wire(self) -> dict[str, Any]:
        """As /v1/models/status shows it: the rate is over the decisions the legacy revealed."""
        known = self.agree + self.disagree
        return {
            "decisions": known + self.unknown,
            "agree": self.agree,
            "disagree": self.disagree,
            "unknown": self.unknown,
            "agreementRate": round(self.agree / known, 4) if known else None,
        }


class ShadowRecorder:
    """Keeps every decision: a counter, a bounded ring, and with Redis the same ring and counts
    shared by every replica (written after the answer, off the client's path). The JSON log line
    is the request's own access line, which carries the decision as ``shadow``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        redis: Redis | None = None,
        replica: str = "-",
        ring_size: int = RING_SIZE,
    ) -> None:
        self.counter = Counter(
            "dayzero_gateway_shadow_decisions",
            "Shadow decisions by whether the legacy path used the same endpoint.",
            ["lane", "agreement"],
            registry=registry,
        )
        self.ring: deque[Record] = deque(maxlen=ring_size)
        self.counts: dict[str, Counts] = {}
        self.redis = redis
        self.replica = replica
        self._ring_size = ring_size
        self._writes: set[asyncio.Task[None]] = set()

    def record(self, record: Record) -> None:
        """Count, log and keep one decision."""
        self.counter.labels(record.lane, record.agreement).inc()
        counts = self.counts.setdefault(record.lane, Counts())
        setattr(counts, record.agreement, getattr(counts, record.agreement) + 1)
        self.ring.append(record)
        if self.redis is not None:
            task = asyncio.get_running_loop().create_task(self._share(record))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _share(self, record: Record) -> None:
        assert self.redis is not None  # noqa: S101 - only scheduled with a client
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(f"{REDIS_PREFIX}counts:{record.lane}", record.agreement, 1)
                pipe.lpush(f"{REDIS_PREFIX}ring", json.dumps(record.wire()))
                pipe.ltrim(f"{REDIS_PREFIX}ring", 0, self._ring_size - 1)
                await pipe.execute()
        except Exception as e:  # noqa: BLE001 - a shadow record must never break serving
            log.warning("shadow decision not shared in Redis: %s", e)

    async def flush(self) -> None:
        """Wait for the Redis writes in flight (status reads and shutdown)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def summary(self, lanes: list[str]) -> dict[str, dict[str, Any]]:
        """Per lane agreement counts: the fleet's from Redis when configured, else this
        replica's."""
        if self.redis is None:
            return {lane: self.counts.get(lane, Counts()).wire() for lane in lanes}
        await self.flush()
        out: dict[str, dict[str, Any]] = {}
        try:
            for lane in lanes:
                raw: dict[Any, Any] = await self.redis.hgetall(f"{REDIS_PREFIX}counts:{lane}")
                got = {_text(k): int(v) for k, v in raw.items()}
                out[lane] = Counts(
                    got.get("agree", 0), got.get("disagree", 0), got.get("unknown", 0)
                ).wire()
        except Exception as e:  # noqa: BLE001 - status still answers, from this replica
            log.warning("shadow counts not read from Redis: %s", e)
            return {lane: self.counts.get(lane, Counts()).wire() for lane in lanes}
        return out

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """The latest decisions, newest first (the fleet's with Redis)."""
        if self.redis is not None:
            await self.flush()
            with contextlib.suppress(Exception):
                items = await self.redis.lrange(f"{REDIS_PREFIX}ring", 0, limit - 1)
                return [json.loads(item) for item in items]
        return [r.wire() for r in list(self.ring)[::-1][:limit]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Forward:
    """A shadow lane's request on its way to the legacy path."""

    lane: RoutingLane
    decision: Decision
    path: str
    query: bytes
    body: bytes
    headers: Mapping[str, str]
    extra_headers: list[tuple[bytes, bytes]]
    """What the gateway adds to the legacy answer (trace id, lane)."""


def legacy_target(legacy_url: str, path: str, query: bytes) -> str:
    """The legacy URL of a request path; a legacy URL ending in /v1 is not doubled."""
    base = legacy_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        base = base.removesuffix("/v1")
    return base + path + (f"?{query.decode('latin-1')}" if query else "")


async def forward(
    session: aiohttp.ClientSession,
    call: Forward,
    send: Send,
    *,
    timeout_seconds: float,
) -> tuple[int, str | None]:
    """Relay the request to the legacy path and its answer back unchanged (stream or not).

    Returns the legacy status and what its answer revealed about the endpoint it used. A legacy
    path that cannot be reached is a 502, as a backend would be.
    """
    assert call.lane.legacy_url is not None  # noqa: S101 - the document requires it in shadow
    url = legacy_target(call.lane.legacy_url, call.path, call.query)
    headers = {k: v for k, v in call.headers.items() if k not in _DROP}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds)
    header = call.lane.legacy_endpoint_header
    try:
        async with session.post(url, data=call.body, headers=headers, timeout=timeout) as resp:
            revealed = resp.headers.get(header) if header else None
            out = [
                (k.lower(), v)
                for k, v in resp.raw_headers
                if k.lower() not in _HOP and not k.lower().startswith(b"x-dayzero-")
            ]
            start = {"type": "http.response.start", "status": resp.status}
            start["headers"] = out + call.extra_headers
            if resp.content_length is not None:  # a whole answer: one read, one write
                body = await resp.read()
                if header is None:
                    revealed = revealed_model(body[:_SCAN_BYTES])
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return resp.status, revealed
            await send(start)
            prefix = b""
            async for chunk in resp.content.iter_any():
                if header is None and revealed is None and len(prefix) < _SCAN_BYTES:
                    prefix += chunk
                    revealed = revealed_model(prefix[:_SCAN_BYTES])
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return resp.status, revealed
    except (aiohttp.ClientError, TimeoutError) as e:
        detail = str(e) or type(e).__name__
        raise GatewayError(
            502,
            f"the legacy path of shadow lane {call.lane.name!r} failed: {detail}",
            code="legacy_failed",
        ) from None


def record_of(
    decision: Decision,
    legacy: str | None,
    status: int,
    *,
    by_header: bool,
    trace_id: str,
    replica: str,
) -> Record:
    """The record of one forwarded request."""
    return Record(
        time=round(time.time(), 3),
        trace_id=trace_id,
        lane=decision.lane,
        backend=decision.backend,
        model=decision.model,
        legacy=legacy,
        legacy_status=status,
        agreement=agreement(decision, legacy, by_header=by_header),
        replica=replica,
    )
