"""The gateway's ASGI app: OpenAI and Ollama endpoints in front of ordered, guarded backends.

A request reads the routing snapshot once, is authenticated, routed to a lane, admitted by the
lane's concurrency, and tried on the lane's backends in order (skipping open circuits and
backends too small for the lane's model) until one answers. Everything it did ends as one JSON
log line and one increment of the request counter. The core speaks OpenAI: an Ollama client's
request is translated to OpenAI on the way in and the (OpenAI-shaped) answer back on the way
out, so every protocol shares one routing, fallback and metrics path. The app is plain ASGI (no
framework): for an OpenAI client the hot path is a dictionary lookup and a byte copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dayzero.api.routing import Routing, RoutingBackend, RoutingLane

from . import shadow
from .asyncjobs import (
    ASYNC_PATH,
    RESULT_PATH,
    AsyncJobs,
    Attempt,
    Job,
    MemoryStore,
    RedisStore,
    Store,
    StoreUnavailableError,
    rotated,
)
from .auth import Principal, bearer
from .backends import (
    AnthropicBackend,
    Backend,
    BackendError,
    OllamaBackend,
    OpenAIBackend,
    Reply,
    StreamReply,
    UpstreamRequest,
)
from .backends.base import Endpoint
from .backends.transport import openai_usage
from .budget import PaidTier, Refusal, Reservation, fallback_reason
from .concurrency import Limiter
from .config import POLL_SECONDS, ConfigWatcher, Snapshot, host_of
from .errors import GatewayError, invalid
from .headers import Trace, clean, trace_from
from .metrics import Metrics
from .ratelimit import Admission, counters_for
from .ratelimit import Refusal as RateRefusal
from .residency import Residency
from .routing import Route, choose, names, selectors, size_denial
from .shared import SharedState
from .translate import (
    ChatStreamOpenAIToOllama,
    GenerateStreamOpenAIToOllama,
    OllamaModel,
    StreamPipe,
    TranslationError,
    chat_request_ollama_to_openai,
    chat_response_openai_to_ollama,
    embed_request_ollama_to_openai,
    embed_response_openai_to_ollama,
    encode_ndjson,
    generate_request_ollama_to_openai,
    generate_response_openai_to_ollama,
    models_from_ollama,
    ollama_ps,
    ollama_tags,
)
from .wake import Waker
from .warm import KeepWarm, NotOllamaError

if TYPE_CHECKING:
    from redis.asyncio import Redis

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
BackendFactory = Callable[[RoutingBackend, aiohttp.ClientSession, str | None], Backend]

access_log = logging.getLogger("dayzero.gateway.access")
log = logging.getLogger(__name__)

ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat/completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
OllamaAPI = Literal["chat", "generate", "embed"]
OLLAMA_ENDPOINTS: dict[str, OllamaAPI] = {
    "/api/chat": "chat",
    "/api/generate": "generate",
    "/api/embed": "embed",
}
OLLAMA_VERSION = "0.12.6"
"""What ``/api/version`` answers: the Ollama API whose shapes the gateway speaks."""
_SSE_EVENT_MAX = 1 << 20
WARM_ADMIN = ("/v1/admin/warm", "/v1/admin/unload")


def default_backend(
    spec: RoutingBackend, session: aiohttp.ClientSession, token: str | None
) -> Backend:
    """The backend for one entry of the document, by the API its host speaks."""
    kinds: dict[str, Callable[..., Backend]] = {
        "ollama": OllamaBackend,
        "anthropic": AnthropicBackend,
    }
    return kinds.get(spec.kind, OpenAIBackend)(
        spec.name,
        spec.url,
        host_of(spec.url),
        session=session,
        timeout_seconds=spec.timeout_seconds,
        token=token,
    )


@dataclass
class BackendStats:
    """What /v1/models/status shows of a backend."""

    in_flight: int = 0
    last_error: str | None = None
    last_ok: float | None = None


@dataclass
class Outcome:
    """What one request did, for the log line and the metrics."""

    endpoint: str
    trace: Trace
    started: float
    project: str = "-"
    lane: str = "-"
    model: str = "-"
    backend: str | None = None
    provider_tier: str = "-"
    status: int = 0
    fallback_reason: str = "none"
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float = 0.0
    error: str | None = None
    intent: str | None = None
    prompt: Any = None
    shadow: dict[str, Any] | None = None
    """A shadow lane's decision and whether the legacy path agreed (shadow.Record)."""
    paid_reason: str | None = None
    """Why the paid tier was tried (``budget.fallback_reason``); None when it was not."""
    reservation: Reservation | None = None
    refusal: Refusal | None = None
    admission: Admission | None = None
    """The rate limits' token counters it was admitted under (settled with its real usage)."""


class Gateway:
    """The ASGI app."""

    def __init__(
        self,
        config_path: str | Path,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        backend_factory: BackendFactory = default_backend,
        url_map: Mapping[str, str] | None = None,
        loopback_only: bool = False,
        redis: Redis | None = None,
        replica: str | None = None,
        async_options: Mapping[str, float] | None = None,
        poll_options: Mapping[str, float] | None = None,
        waker: Waker | None = None,
    ) -> None:
        self.metrics = Metrics()
        self.redis = redis
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}"
        self.shadow = shadow.ShadowRecorder(
            self.metrics.registry, redis=redis, replica=self.replica
        )
        self.jobs = _async_jobs(self, redis, async_options or {})
        # Off unless asked (the CLI asks: every 10 s and 60 s): a poll dials every backend.
        polls = poll_options or {}
        self.residency = Residency(float(polls.get("residency_seconds", 0.0)))
        self.warm = KeepWarm(float(polls.get("warm_seconds", 0.0)))
        self.waker = waker
        self.shared = SharedState(redis, clock=clock)
        self.breakers = self.shared.breakers
        self.paid = PaidTier(self.shared.ledger, self.metrics.registry)
        self.watcher = ConfigWatcher(
            config_path,
            poll_seconds=poll_seconds,
            on_error=lambda _: self.metrics.config_errors.inc(),
            on_swap=self._swap,
            url_map=url_map,
            loopback_only=loopback_only,
        )
        snapshot = self.watcher.current
        self.limiter = Limiter(snapshot.doc.shared_concurrency)
        self.stats: dict[str, BackendStats] = {}
        self._factory = backend_factory
        self._session: aiohttp.ClientSession | None = None
        self._state: tuple[Snapshot, dict[str, Backend]] = (snapshot, {})
        self._ready = False
        self._apply_limits(snapshot)
        self.metrics.config_loaded(snapshot.hash)

    # -- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the upstream connection pool and start watching the document."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        self._state = (self.watcher.current, self._backends(self.watcher.current))
        self.watcher.start()
        self.shared.start()
        self.jobs.start()
        if self.waker is not None:
            await self.waker.start()
        self.residency.start(lambda: (self._state[0].doc, self._state[1]), self._circuit_open)
        self.warm.start(
            lambda: self._session,
            lambda: (self._state[0].doc, self._state[0].backend_tokens),
            self._circuit_open,
        )
        self._ready = True

    async def shutdown(self) -> None:
        """Stop watching and close the pool."""
        self._ready = False
        await self.jobs.stop()
        await self.residency.stop()
        await self.warm.stop()
        if self.waker is not None:
            await self.waker.stop()
        await self.shadow.flush()
        await self.watcher.stop()
        await self.shared.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _backends(self, snapshot: Snapshot) -> dict[str, Backend]:
        assert self._session is not None  # noqa: S101 - only called after startup
        return {
            b.name: self._factory(b, self._session, snapshot.backend_tokens.get(b.name))
            for b in snapshot.doc.backends
        }

    def _apply_limits(self, snapshot: Snapshot) -> None:
        self.limiter.configure(
            snapshot.doc.shared_concurrency,
            {lane.name: lane.concurrency for lane in snapshot.doc.lanes},
        )

    def _swap(self, snapshot: Snapshot) -> None:
        self._apply_limits(snapshot)
        backends = self._backends(snapshot) if self._session is not None else {}
        self._state = (snapshot, backends)
        self.warm.kick()
        self.metrics.config_loaded(snapshot.hash)

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        ollama = path.startswith("/api/")
        if path in ENDPOINTS or path in OLLAMA_ENDPOINTS:
            if method != "POST":
                await _send_error(send, GatewayError(405, f"{path} takes POST"), None, ollama)
                return
            await self._proxy(path, scope, receive, send)
            return
        if path in ("/v1/budgets", "/v1/budgets/reset"):
            await self._budgets(path, method, scope, receive, send)
            return
        if path.startswith(RESULT_PATH) or path in WARM_ADMIN:
            lanes = self._async if path.startswith(RESULT_PATH) else self._warm_admin
            await lanes(path, method, scope, receive, send)
            return
        gets: dict[str, Callable[[Scope, Send], Awaitable[None]]] = {
            "/v1/models": self._models,
            "/v1/models/status": self._status,
            "/v1/shadow/decisions": self._shadow_decisions,
            "/api/tags": self._ollama_tags,
            "/api/ps": self._ollama_ps,
            "/api/version": self._ollama_version,
            "/health": self._health,
            "/ready": self._ready_check,
            "/metrics": self._metrics,
        }
        handler = gets.get(path)
        if handler is None:
            error = GatewayError(404, "no such endpoint", code="not_found")
            await _send_error(send, error, None, ollama)
        elif method not in ("GET", "HEAD"):
            await _send_error(send, GatewayError(405, f"{path} takes GET"), None, ollama)
        else:
            await handler(scope, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as e:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the read-only endpoints -----------------------------------------------------------------

    async def _models(self, scope: Scope, send: Send) -> None:
        snapshot, _ = self._state
        principal = self._authenticate(snapshot, scope, send)
        if isinstance(principal, GatewayError):
            await _send_error(send, principal, None)
            return
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "dayzero"}
            for name in names(snapshot.doc)
        ]
        await _send_json(send, 200, {"object": "list", "data": data})

    async def _admin_snapshot(self, scope: Scope, send: Send, what: str) -> Snapshot | None:
        """The current snapshot for an admin key; otherwise the 401/403 is sent and None is
        returned."""
        snapshot, _ = self._state
        principal = self._authenticate(snapshot, scope, send)
        if not isinstance(principal, GatewayError) and not principal.admin:
            principal = GatewayError(403, f"{what}: needs an admin key")
        if isinstance(principal, GatewayError):
            await _send_error(send, principal, None)
            return None
        return snapshot

    async def _status(self, scope: Scope, send: Send) -> None:
        snapshot = await self._admin_snapshot(scope, send, "status")
        if snapshot is None:
            return
        body = self.status(snapshot)
        agreement = await self.shadow.summary(
            [lane.name for lane in snapshot.doc.lanes if lane.mode == "shadow"]
        )
        for lane in body["lanes"]:
            if lane["name"] in agreement:
                lane["shadow"] = agreement[lane["name"]]
        resident = self.residency.lanes(snapshot.doc)
        for lane in body["lanes"]:
            lane["residentOn"] = resident.get(lane["name"], [])
        for backend in body["backends"]:
            held = self.residency.view.get(backend["name"])
            backend["resident"] = held.wire() if held is not None else None
            warm = self.warm.state.get(backend["name"])
            backend["keepWarm"] = warm.wire() if warm is not None else None
            ref = next(
                (b.model_deployment for b in snapshot.doc.backends if b.name == backend["name"]),
                None,
            )
            known = self.waker.deployments.get(ref) if self.waker and ref else None
            backend["modelDeployment"] = ref
            backend["asleep"] = snapshot.backend(backend["name"]).asleep
            backend["wake"] = known.wire() if known is not None else None
        await _send_json(send, 200, body)

    async def _shadow_decisions(self, scope: Scope, send: Send) -> None:
        """(admin) The latest shadow decisions, newest first: the fleet's with Redis."""
        if await self._admin_snapshot(scope, send, "shadow decisions") is None:
            return
        await _send_json(send, 200, {"decisions": await self.shadow.recent(shadow.RING_SIZE)})

    def status(self, snapshot: Snapshot) -> dict[str, Any]:
        """Every lane, backend and tag with its health."""
        backends = []
        for b in snapshot.doc.backends:
            breaker = self.breakers.get(host_of(b.url))
            stats = self.stats.get(b.name, BackendStats())
            backends.append(
                {
                    "name": b.name,
                    "kind": b.kind,
                    "url": b.url,
                    "paid": b.paid,
                    "maxParametersBillions": b.max_parameters_billions,
                    "maintenance": b.maintenance,
                    "health": "down"
                    if breaker.state == "open" or b.name in snapshot.unusable
                    else "up",
                    "circuit": breaker.state,
                    "consecutiveFailures": breaker.failures,
                    "inFlight": stats.in_flight,
                    "lastError": snapshot.unusable.get(b.name, stats.last_error),
                }
            )
        lanes = [
            {
                "name": lane.name,
                "model": lane.model,
                "aliases": lane.aliases,
                "tag": lane.tag,
                "mode": lane.mode,
                "backends": lane.backends,
                "parametersBillions": lane.parameters_billions,
                "inFlight": self.limiter.in_flight(lane.name),
                "reserved": lane.concurrency.reserved,
                "max": lane.concurrency.max,
            }
            for lane in snapshot.doc.lanes
        ]
        return {
            "configHash": snapshot.hash,
            "configError": self.watcher.last_error,
            "sharedState": self.shared.status(),
            "lanes": lanes,
            "backends": backends,
            "tags": {tag: t.to_wire() for tag, t in snapshot.doc.tags.items()},
        }

    async def _ollama_tags(self, scope: Scope, send: Send) -> None:
        """Every name the key may use, as Ollama lists the models it has."""
        snapshot, _ = self._state
        principal = self._authenticate(snapshot, scope, send)
        if isinstance(principal, GatewayError):
            await _send_error(send, principal, None, ollama=True)
            return
        models = [
            OllamaModel(name=name, parameter_size=_size_text(lane.parameters_billions))
            for name, lane in selectors(snapshot.doc)
            if principal.may_use(lane.name)
        ]
        await _send_json(send, 200, ollama_tags(models))

    async def _ollama_ps(self, scope: Scope, send: Send) -> None:
        """The models loaded on the Ollama backends of the key's lanes, each marked with its
        backend; hosts that do not answer in time are skipped and named in ``unreachable``."""
        snapshot, backends = self._state
        principal = self._authenticate(snapshot, scope, send)
        if isinstance(principal, GatewayError):
            await _send_error(send, principal, None, ollama=True)
            return
        used = {
            name
            for lane in snapshot.doc.lanes
            if principal.may_use(lane.name)
            for name in lane.backends
        }
        specs = [b for b in snapshot.doc.backends if b.kind == "ollama" and b.name in used]
        results = await asyncio.gather(*(self._loaded(backends.get(b.name)) for b in specs))
        models: list[OllamaModel] = []
        marks: list[str] = []
        unreachable = []
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, str):
                unreachable.append({"backend": spec.name, "error": result})
                continue
            models += result
            marks += [spec.name] * len(result)
        body = ollama_ps(models)
        for entry, backend in zip(body["models"], marks, strict=True):
            entry["backend"] = backend
        body["unreachable"] = unreachable
        await _send_json(send, 200, body)

    async def _loaded(self, backend: Backend | None) -> list[OllamaModel] | str:
        """The models ``backend`` has loaded, or why they are unknown (no dial to an open
        circuit: a status read must not wait on a host known to be down)."""
        if not isinstance(backend, OllamaBackend):
            return "not an Ollama backend"
        if self.breakers.get(backend.host).state == "open":
            return "circuit open"
        try:
            return models_from_ollama(await backend.ps())
        except BackendError as e:
            return str(e)
        except TranslationError as e:
            return f"bad_response: {e}"

    async def _ollama_version(self, scope: Scope, send: Send) -> None:
        await _send_json(send, 200, {"version": OLLAMA_VERSION})

    async def _health(self, scope: Scope, send: Send) -> None:
        await _send_json(send, 200, {"status": "ok"})

    async def _ready_check(self, scope: Scope, send: Send) -> None:
        snapshot, _ = self._state
        status = 200 if self._ready else 503
        await _send_json(send, status, {"ready": self._ready, "configHash": snapshot.hash})

    async def _metrics(self, scope: Scope, send: Send) -> None:
        body = generate_latest(self.metrics.registry)
        await _send(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])

    def _authenticate(
        self, snapshot: Snapshot, scope: Scope, send: Send
    ) -> Principal | GatewayError:
        headers = _headers(scope)
        try:
            return snapshot.keys.authenticate(
                bearer(headers.get("authorization"), headers.get("x-api-key"))
            )
        except GatewayError as e:
            return e

    # -- the proxied endpoints ---------------------------------------------------------------------

    async def _proxy(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        api = OLLAMA_ENDPOINTS.get(path)
        client = _OllamaClient(api) if api is not None else None
        headers = _headers(scope)
        trace = trace_from(headers.get("traceparent"))
        label = ENDPOINTS[path] if client is None else f"api/{client.api}"
        outcome = Outcome(endpoint=label, trace=trace, started=time.monotonic())
        outcome.intent = clean(headers.get("x-dayzero-intent"))
        snapshot, backends = self._state
        sent = _SentTracker(send)
        try:
            body = await _read_body(receive, headers, snapshot.doc.max_body_bytes)
            principal = snapshot.keys.authenticate(
                bearer(headers.get("authorization"), headers.get("x-api-key"))
            )
            outcome.project = principal.project
            if not snapshot.keys.enabled:
                # Without keys the project is the client's word for it (sanitized, label-capped).
                outcome.project = clean(headers.get("x-dayzero-project")) or principal.project
            if client is None:
                endpoint = ENDPOINTS[path]
                request = _parse(endpoint, body)
                model = request.get("model")
            else:
                endpoint, request = client.request(body)
                model = _ollama_selector(snapshot.doc, request["model"])
            if snapshot.doc.log_prompts:
                outcome.prompt = request
            route = choose(
                snapshot.doc, model, clean(headers.get("x-dayzero-lane")), outcome.project
            )
            outcome.lane = route.lane.name
            outcome.model = route.lane.model or route.lane.tag or route.lane.name
            _admit(principal, route.lane)
            call = _Call(snapshot, backends, route, endpoint, request, sent, outcome, client)
            if route.lane.mode == "shadow":
                await self._shadow(scope, receive, call, body)
                return
            outcome.admission = await self._rate_limit(
                principal, route.lane, outcome.project, request
            )
            await self._serve_guarded(call, receive)
        except GatewayError as e:
            outcome.status = e.status
            outcome.error = e.message
            if not sent.started:
                await _send_error(sent, e, outcome, ollama=client is not None)
        except asyncio.CancelledError:
            outcome.status = 499
            outcome.error = "client disconnected"
            raise
        finally:
            await self._settle_paid(outcome)
            if outcome.admission is not None and outcome.usage:
                used = outcome.usage.get("prompt_tokens"), outcome.usage.get("completion_tokens")
                self.shared.rates.settle(outcome.admission, _int(used[0]) + _int(used[1]))
            self._record(snapshot, outcome)

    async def _rate_limit(
        self, principal: Principal, lane: RoutingLane, project: str, request: dict[str, Any]
    ) -> Admission | None:
        """Count the request against its lane's and key's rate limits; 429 when one is full."""
        counters = counters_for(lane, principal, project, request)
        if not counters:
            return None
        verdict = await self.shared.rates.check(counters)
        if isinstance(verdict, RateRefusal):
            self.metrics.child(self.metrics.rate_limited, lane.name).inc()
            raise verdict.error()
        return verdict

    async def _serve_guarded(self, call: _Call, receive: Receive) -> None:
        """Serve under the lane's concurrency, abandoning the upstream when the client leaves."""
        outcome = call.outcome
        async with self.limiter.slot(call.route.lane.name):
            gauge = self.metrics.in_flight.labels(lane=call.route.lane.name)
            gauge.inc()
            work = asyncio.ensure_future(self._serve(call))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gauge.dec()
                watch.cancel()
                if not work.done():
                    work.cancel()
                    outcome.status = 499
                    outcome.error = "client disconnected"
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _serve(self, call: _Call) -> None:
        outcome, send = call.outcome, call.send
        reply, spec = await self._attempt(call)
        outcome.backend = spec.name
        outcome.model = spec.model or outcome.model
        outcome.provider_tier = "paid" if spec.paid else "local"
        extra = [(b"x-dayzero-backend", spec.name.encode())]
        if call.client is not None:
            reply = call.client.answer(reply, str(call.request["model"]), outcome.started)
        if isinstance(reply, Reply):
            outcome.status = reply.status
            outcome.usage = reply.usage or {}
            await _send(
                send,
                reply.status,
                reply.body,
                _response_headers(outcome, reply.content_type, extra),
            )
            return
        outcome.status = reply.status
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    *_response_headers(outcome, reply.content_type, extra),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        # A relayed stream is scanned for its usage chunk; a translated one counts its own.
        scanner = _UsageScanner() if reply.usage is None else None
        if scanner is not None:
            scanner.feed(reply.first)
        await send({"type": "http.response.body", "body": reply.first, "more_body": True})
        stats = self.stats.setdefault(spec.name, BackendStats())
        stats.in_flight += 1
        try:
            await self._pump(reply.rest, send, scanner, call)
        finally:
            stats.in_flight -= 1
            outcome.usage = (scanner.usage if scanner is not None else reply.usage) or {}

    async def _pump(
        self,
        rest: AsyncGenerator[bytes, None],
        send: Send,
        scanner: _UsageScanner | None,
        call: _Call,
    ) -> None:
        outcome = call.outcome
        backend = outcome.backend or "-"
        try:
            async for chunk in rest:
                if scanner is not None:
                    scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except BackendError as e:
            # Bytes already reached the client: no failover, end the stream with an error event.
            outcome.error = str(e)
            outcome.fallback_reason = "midstream_" + e.reason
            self.stats.setdefault(backend, BackendStats()).last_error = str(e)
            err = GatewayError(502, f"backend {backend} failed mid-stream: {e}", code=e.reason)
            event = err.sse_event() if call.client is None else call.client.error_line(err)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            await rest.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _attempt(  # noqa: PLR0912, PLR0915 - the failover loop reads best in one piece
        self, call: _Call
    ) -> tuple[Reply | StreamReply, RoutingBackend]:
        """Try the route's backends in order: local ones first, paid ones if the lane allows."""
        snapshot, backends, route, request, outcome = (
            call.snapshot,
            call.backends,
            call.route,
            call.request,
            call.outcome,
        )
        lane = route.lane
        specs = [snapshot.backend(name) for name in route.backends]
        specs = [b for b in specs if not b.paid] + [
            b for b in specs if b.paid and lane.paid_fallback.enabled
        ]
        tried = _Tried(lane)
        for spec in specs:
            skip = _passed_over(snapshot, lane, spec)
            if skip is not None:  # no dial
                tried.add(spec.name, skip[0], f"{skip[0]}: {skip[1]}")
                self.metrics.fallbacks.labels(lane.name, spec.name, skip[0]).inc()
                continue
            if spec.asleep and not await self._awake(lane, spec, tried):
                continue
            backend = backends[spec.name]
            breaker = self.breakers.get(backend.host)
            if not breaker.allow(lane.circuit_breaker.open_seconds):
                tried.add(spec.name, "circuit_open", "circuit open")
                continue
            probe = breaker.state == "half_open"
            if spec.paid and not await self._reserve_paid(call, spec, tried, probe=probe):
                continue
            upstream = UpstreamRequest(
                endpoint=call.endpoint,
                body={**request, "model": spec.model or lane.model or request.get("model")},
                stream=bool(request.get("stream")),
                headers={"traceparent": outcome.trace.traceparent},
            )
            stats = self.stats.setdefault(spec.name, BackendStats())
            stats.in_flight += 1
            try:
                reply = await backend.send(upstream)
            except BackendError as e:
                await self._release_paid(outcome)
                if e.trips_breaker:
                    breaker.failure(lane.circuit_breaker.consecutive_timeouts, str(e), probe=probe)
                elif not e.dialed:
                    if probe:  # nothing was learned about the host: let another request probe
                        breaker.abandon()
                else:
                    breaker.success()
                stats.last_error = str(e)
                tried.add(spec.name, e.reason, str(e), e.param)
                self.metrics.fallbacks.labels(lane.name, spec.name, e.reason).inc()
                continue
            except BaseException:
                if probe:
                    breaker.abandon()
                raise
            finally:
                stats.in_flight -= 1
            breaker.success()
            stats.last_ok = time.time()
            if spec.model_deployment is not None and self.waker is not None:
                self.waker.used(spec.model_deployment)
            if tried.reasons:
                outcome.fallback_reason = tried.reasons[0]
            return reply, spec
        outcome.fallback_reason = tried.reasons[0] if tried.reasons else "none"
        refusal = outcome.refusal
        raise refusal.error("; ".join(tried.failures) or "none") if refusal else tried.error()

    async def _reserve_paid(
        self, call: _Call, spec: RoutingBackend, tried: _Tried, *, probe: bool
    ) -> bool:
        """Reserve the budget of a paid attempt; False (and the refusal kept) when refused."""
        outcome = call.outcome
        if outcome.paid_reason is None:  # the first paid backend: every local one is behind
            outcome.paid_reason = fallback_reason(tried.reasons)
        held = await self.paid.reserve(
            call.snapshot.doc, call.route.lane, spec, outcome.project, call.request
        )
        if isinstance(held, Refusal):
            outcome.refusal = held
            if probe:  # nothing was learned about the host: let another request probe
                self.breakers.get(call.backends[spec.name].host).abandon()
            return False
        outcome.reservation = held
        return True

    async def _release_paid(self, outcome: Outcome) -> None:
        """A paid attempt failed: its reservation is released, nothing was spent."""
        if outcome.reservation is not None:
            await self.paid.release(outcome.reservation)
            outcome.reservation = None

    async def _settle_paid(self, outcome: Outcome) -> None:
        """Settle a paid answer's reservation at its real cost (once; later calls do nothing).

        After the answer is sent, so the client does not wait for the ledger's round trip; the
        reservation holds the worst case until then, so nothing can overspend meanwhile."""
        if outcome.reservation is not None:
            charged = outcome.status in (200, 499)  # a 4xx costs nothing; a cut stream may
            await self.paid.settle(outcome.reservation, outcome.usage or None, charged=charged)

    async def _budgets(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """(admin) ``GET /v1/budgets``: the ledgers; ``POST /v1/budgets/reset``: lift a kill."""
        snapshot, _ = self._state
        headers = _headers(scope)
        want = "POST" if path.endswith("/reset") else "GET"
        try:
            principal = snapshot.keys.authenticate(
                bearer(headers.get("authorization"), headers.get("x-api-key"))
            )
            _want(method, want, path)
            _need_admin(principal, path)
            if want == "GET":
                answer = await self.paid.ledgers(snapshot.doc)
            else:
                body = await _read_body(receive, headers, 65536)
                answer = await self.paid.reset(_json_object(body))
        except GatewayError as e:
            await _send_error(send, e, None)
            return
        await _send_json(send, 200, answer)

    # -- shadow and async lanes (shadow.py, asyncjobs.py) ------------------------------------------

    async def _shadow(self, scope: Scope, receive: Receive, call: _Call, body: bytes) -> None:
        """Decide without dialling, forward unchanged to the legacy path, record agreement."""
        snapshot, route, request, outcome, send = (
            call.snapshot,
            call.route,
            call.request,
            call.outcome,
            call.send,
        )
        headers = _headers(scope)
        lane = route.lane
        decision = shadow.decide(
            snapshot,
            lane,
            route.backends,
            request.get("model"),
            lambda url: self.breakers.get(host_of(url)).state == "open",
        )
        outcome.provider_tier, outcome.backend = "shadow", "legacy"
        forward = shadow.Forward(
            lane=lane,
            decision=decision,
            path=scope["path"],
            query=scope.get("query_string", b""),
            body=body,
            headers={**headers, "traceparent": outcome.trace.traceparent},
            extra_headers=_response_headers(outcome, "")[1:],
        )
        assert self._session is not None  # noqa: S101 - requests arrive only after startup
        work = asyncio.ensure_future(
            shadow.forward(self._session, forward, send, timeout_seconds=_legacy_timeout(snapshot))
        )
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not work.done():
                work.cancel()
                outcome.status, outcome.error = 499, "client disconnected"
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        with contextlib.suppress(asyncio.CancelledError):
            outcome.status, revealed = await work
            record = shadow.record_of(
                decision,
                revealed,
                outcome.status,
                by_header=lane.legacy_endpoint_header is not None,
                trace_id=outcome.trace.trace_id,
                replica=self.replica,
            )
            self.shadow.record(record)
            outcome.shadow = record.wire()

    async def _async(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """``POST /v1/async/chat/completions`` (202 and an id) and ``GET /v1/async/{id}``."""
        snapshot, _ = self._state
        headers = _headers(scope)
        outcome = Outcome(endpoint="async", trace=trace_from(headers.get("traceparent")), started=0)
        try:
            principal = snapshot.keys.authenticate(
                bearer(headers.get("authorization"), headers.get("x-api-key"))
            )
            project = principal.project
            if not snapshot.keys.enabled:
                project = clean(headers.get("x-dayzero-project")) or principal.project
            if path == ASYNC_PATH:
                _want(method, "POST", path)
                body = await _read_body(receive, headers, snapshot.doc.max_body_bytes)
                lane = _async_lane(snapshot.doc, principal, project, body, headers)
                outcome.lane = lane
                job = await self.jobs.submit(lane, project, _parse("chat/completions", body))
                extra = [(b"location", f"{RESULT_PATH}{job.id}".encode())]
                data = json.dumps(job.wire()).encode()
                await _send(send, 202, data, _response_headers(outcome, "application/json", extra))
                return
            _want(method, "GET", path)
            job_id = path.removeprefix(RESULT_PATH)
            found = await self.jobs.get(job_id) if job_id.startswith("job-") else None
            if found is None or (found.project != project and not principal.admin):
                found = None  # another project's job is as unknown as a missing one
            await _send_json(send, 200, _found(found, job_id).wire())
        except StoreUnavailableError as e:
            down = GatewayError(
                503, f"the async job store is unavailable: {e}", headers={"Retry-After": "1"}
            )
            await _send_error(send, down, outcome)
        except GatewayError as e:
            await _send_error(send, e, outcome)

    async def _awake(self, lane: RoutingLane, spec: RoutingBackend, tried: _Tried) -> bool:
        """A backend scaled to zero: ask it to wake, then wait up to the lane's
        wakeTimeoutSeconds for it to be Ready; False (passed over, no dial) otherwise."""
        ref, wait = spec.model_deployment, lane.wake_timeout_seconds
        if self.waker is None or ref is None:
            why = "scaled to zero (the gateway has no Kubernetes access to wake it)"
        else:
            self.waker.wake(ref)
            if wait and await self.waker.wait_ready(ref, wait):
                return True
            why = f"scaled to zero; waking {ref}" + (f", not Ready in {wait:g}s" if wait else "")
        tried.add(spec.name, "asleep", f"asleep: {why}")
        self.metrics.fallbacks.labels(lane.name, spec.name, "asleep").inc()
        return False

    def _circuit_open(self, url: str) -> bool:
        return self.breakers.get(host_of(url)).state == "open"

    async def _warm_admin(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """(admin) ``POST /v1/admin/unload`` / ``/v1/admin/warm`` ``{"backend": NAME}``."""
        snapshot, _ = self._state
        headers = _headers(scope)
        try:
            principal = snapshot.keys.authenticate(
                bearer(headers.get("authorization"), headers.get("x-api-key"))
            )
            _want(method, "POST", path)
            _need_admin(principal, path)
            data = _json_object(await _read_body(receive, headers, 65536))
            name = data.get("backend")
            if not isinstance(name, str):
                raise invalid("backend", "is required (the name of an Ollama backend)")
            assert self._session is not None  # noqa: S101 - requests arrive only after startup
            act = self.warm.unload if path.endswith("/unload") else self.warm.warm
            token = snapshot.backend_tokens.get(name)
            try:
                answer = await act(self._session, snapshot.doc, name, token)
            except NotOllamaError as e:
                raise invalid("backend", str(e).removeprefix("backend: ")) from None
        except GatewayError as e:
            await _send_error(send, e, None)
            return
        await _send_json(send, 200, answer)

    async def _run_job(self, job: Job) -> Attempt:
        """One attempt of an async job through its lane, starting one backend further on for
        each retry; recorded like any request (endpoint ``async/chat/completions``)."""
        snapshot, backends = self._state
        outcome = Outcome(
            endpoint="async/chat/completions",
            trace=trace_from(None),
            started=time.monotonic(),
            project=job.project,
        )
        try:
            route = choose(snapshot.doc, job.request.get("model"), job.lane, job.project)
            outcome.lane = route.lane.name
            outcome.model = route.lane.model or route.lane.tag or route.lane.name
            route = Route(route.lane, rotated(route.backends, job.attempts), route.via)
            request = {**job.request, "stream": False}
            call = _Call(
                snapshot,
                backends,
                route,
                "chat/completions",
                request,
                _SentTracker(_nowhere),
                outcome,
            )
            async with self.limiter.slot(route.lane.name):
                reply, spec = await self._attempt(call)
            outcome.backend, outcome.status = spec.name, reply.status
            outcome.model = spec.model or outcome.model
            outcome.provider_tier = "paid" if spec.paid else "local"
            body = reply.body if isinstance(reply, Reply) else b""
            outcome.usage = (reply.usage if isinstance(reply, Reply) else None) or {}
            return Attempt(reply.status, body, spec.name)
        except GatewayError as e:
            outcome.status, outcome.error = e.status, e.message
            return Attempt(e.status, e.json_bytes(), outcome.backend, e.message)
        finally:
            await self._settle_paid(outcome)  # a paid attempt's reservation, as for a sync call
            self._record(snapshot, outcome)

    # -- the request's record --------------------------------------------------------------------

    def _record(self, snapshot: Snapshot, o: Outcome) -> None:
        latency = time.monotonic() - o.started
        input_tokens = _int(o.usage.get("prompt_tokens"))
        output_tokens = _int(o.usage.get("completion_tokens"))
        price = snapshot.doc.prices.get(o.model)
        if price is not None:
            o.cost_usd = (
                input_tokens * price.input_usd_per_million
                + output_tokens * price.output_usd_per_million
            ) / 1e6
        m = self.metrics
        project = m.project(o.project)
        m.child(
            m.requests,
            project,
            o.lane,
            o.provider_tier,
            o.endpoint,
            o.model,
            str(o.status),
            o.fallback_reason,
        ).inc()
        m.child(m.latency, o.lane, o.endpoint, o.model).observe(latency)
        if input_tokens or output_tokens:
            m.child(m.tokens, project, o.lane, o.model, "input").inc(input_tokens)
            m.child(m.tokens, project, o.lane, o.model, "output").inc(output_tokens)
        if o.cost_usd:
            m.child(m.cost, project, o.lane, o.model).inc(o.cost_usd)
        if o.paid_reason is not None:
            self.paid.count(o.lane, o.paid_reason, o.provider_tier == "paid", o.refusal)
        line: dict[str, Any] = {
            "trace_id": o.trace.trace_id,
            "project_id": o.project,
            "lane": o.lane,
            "provider_tier": o.provider_tier,
            "endpoint": o.endpoint,
            "model": o.model,
            "backend": o.backend,
            "status": o.status,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "fallback_reason": o.fallback_reason,
            "cost_usd": round(o.cost_usd, 8),
            "latency_ms": round(latency * 1000, 1),
            "intent": o.intent,
            "error": o.error,
            "paid_fallback": o.paid_reason,
        }
        if o.prompt is not None:
            line["request"] = o.prompt
        if o.shadow is not None:
            line["shadow"] = o.shadow
        access_log.info(json.dumps(line, separators=(",", ":"), default=str))


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class _Tried:
    """Why each backend tried for a request did not answer, in order."""

    lane: RoutingLane
    failures: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    def add(self, backend: str, reason: str, detail: str, param: str | None = None) -> None:
        """One backend passed over."""
        self.failures.append(f"{backend}: {detail}")
        self.reasons.append(reason)
        if param:
            self.params.append(param)

    def error(self) -> GatewayError:
        """The answer when none answered: 503 all circuits open, 400 no backend can express the
        request, 504 all timed out, else 502; each lists every backend's failure."""
        lane, listed = self.lane.name, "; ".join(self.failures or ["none"])
        only = self.reasons[0] if self.reasons and len(set(self.reasons)) == 1 else None
        if only == "circuit_open":
            retry = max(1, math.ceil(self.lane.circuit_breaker.open_seconds))
            return GatewayError(
                503,
                f"every backend of lane {lane!r} is unavailable: {listed}",
                code="circuit_open",
                headers={"Retry-After": str(retry)},
            )
        if only == "unsupported":  # the client's to change, not the backends' fault
            return GatewayError(
                400,
                f"no backend of lane {lane!r} can serve this request: {listed}",
                param=self.params[0] if self.params else None,
                code="unsupported",
            )
        if only == "timeout":
            return GatewayError(504, f"every backend of lane {lane!r} timed out: {listed}")
        return GatewayError(
            502, f"every backend of lane {lane!r} failed: {listed}", code="upstream_failed"
        )


@dataclass(frozen=True)
class _Call:
    """One routed request on its way to the backends."""

    snapshot: Snapshot
    backends: dict[str, Backend]
    route: Route
    endpoint: Endpoint
    request: dict[str, Any]
    """OpenAI-shaped, whatever the client speaks."""
    send: _SentTracker
    outcome: Outcome
    client: _OllamaClient | None = None
    """How to answer an Ollama client; None for an OpenAI client (bytes pass as they are)."""


@dataclass(frozen=True)
class _OllamaClient:
    """A client of the Ollama API: its request becomes OpenAI's, the OpenAI answer Ollama's."""

    api: OllamaAPI

    def request(self, body: bytes) -> tuple[Endpoint, dict[str, Any]]:
        """The OpenAI endpoint and request meaning the same; 400 naming the field otherwise."""
        data = _json_object(body)
        try:
            if self.api == "chat":
                return "chat/completions", chat_request_ollama_to_openai(data)
            if self.api == "generate":
                path, request = generate_request_ollama_to_openai(data)
                return ("completions" if path == "/v1/completions" else "chat/completions"), request
            return "embeddings", embed_request_ollama_to_openai(data)
        except TranslationError as e:
            raise invalid(e.field, e.message) from None

    def answer(self, reply: Reply | StreamReply, model: str, started: float) -> Reply | StreamReply:
        """The backend's OpenAI-shaped answer as Ollama's, naming the model the client asked for."""
        if isinstance(reply, StreamReply):
            chat = self.api == "chat"
            translator = (
                ChatStreamOpenAIToOllama(model=model)
                if chat
                else GenerateStreamOpenAIToOllama(model=model)
            )
            usage: dict[str, Any] = {}
            return StreamReply(
                first=b"",
                rest=_to_ndjson(reply, translator, usage),
                status=reply.status,
                content_type="application/x-ndjson",
                usage=usage,
            )
        if reply.status != 200:
            return Reply(
                reply.status, _ollama_error_body(reply.body, reply.status), usage=reply.usage
            )
        try:
            data: Any = json.loads(reply.body)  # a JSON object: every backend checked it
            if self.api == "embed":
                out = embed_response_openai_to_ollama(data, model=model)
            else:
                translate = (
                    chat_response_openai_to_ollama
                    if self.api == "chat"
                    else generate_response_openai_to_ollama
                )
                took = int((time.monotonic() - started) * 1e9)
                out = translate(data, model=model, total_duration=took)
        except ValueError as e:  # TranslationError is a ValueError
            raise GatewayError(
                502, f"the backend's answer has no Ollama form: {e}", code="bad_response"
            ) from None
        return Reply(200, json.dumps(out).encode(), usage=reply.usage)

    def error_line(self, error: GatewayError) -> bytes:
        """An error ending an NDJSON stream, as Ollama writes it."""
        return encode_ndjson({"error": error.message})


async def _to_ndjson(
    reply: StreamReply,
    translator: ChatStreamOpenAIToOllama | GenerateStreamOpenAIToOllama,
    usage: dict[str, Any],
) -> AsyncGenerator[bytes, None]:
    """An OpenAI SSE stream as Ollama NDJSON; ``usage`` is filled as it ends."""
    pipe = StreamPipe(translator, source="sse", target="ndjson")
    try:
        try:
            out = pipe.feed(reply.first)
            if out:
                yield out
            async for chunk in reply.rest:
                out = pipe.feed(chunk)
                if out:
                    yield out
            out = pipe.finish()
        except TranslationError as e:
            raise BackendError("bad_response", f"the stream has no Ollama form: {e}") from None
        if out:
            yield out
    finally:
        usage.update(openai_usage(translator.usage))
        await reply.rest.aclose()


def _ollama_error_body(body: bytes, status: int) -> bytes:
    """An OpenAI error body as Ollama's ``{"error": "..."}``."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return json.dumps({"error": str(message or f"HTTP {status}")}).encode()


def _ollama_selector(doc: Routing, model: str) -> str:
    """Ollama clients may add the default tag ``:latest`` to a name that has none."""
    if model.endswith(":latest") and model not in names(doc):
        return model.removesuffix(":latest")
    return model


def _size_text(billions: float | None) -> str:
    return f"{billions:g}B" if billions is not None else ""


def _passed_over(
    snapshot: Snapshot, lane: RoutingLane, spec: RoutingBackend
) -> tuple[str, str] | None:
    """Why a backend is skipped without a dial: too small for the lane's model (the deny rule),
    or its API key is not readable (a Secret not mounted yet)."""
    denial = size_denial(lane, spec)
    if denial is not None:
        return "denied_size", denial
    if spec.name in snapshot.unusable:
        return "unusable", snapshot.unusable[spec.name]
    return None


def _admit(principal: Principal, lane: RoutingLane) -> None:
    """403 for a lane the key may not use, 409 for a lane that takes no sync calls."""
    if not principal.may_use(lane.name):
        raise GatewayError(403, f"this key may not use lane {lane.name!r}", code="lane_not_allowed")
    if lane.mode == "async":
        raise GatewayError(
            409,
            f"lane {lane.name!r} is async: POST {ASYNC_PATH} (202 with an id), then "
            f"GET {RESULT_PATH}{{id}} for the status and the result",
            code="lane_is_async",
        )


class _SentTracker:
    """``send`` that remembers whether the response has started (after it, no error page)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class _UsageScanner:
    """Finds the ``usage`` object of an SSE stream without parsing every event."""

    def __init__(self) -> None:
        self._buf = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        """Scan one chunk; an event split across chunks is joined first."""
        data = self._buf + chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._buf = data[-_SSE_EVENT_MAX:]
            return
        complete, self._buf = data[:cut], data[cut + 2 :][-_SSE_EVENT_MAX:]
        if b'"usage"' not in complete:
            return
        events = complete.split(b"\n\n")
        for event in events:
            if b'"usage"' not in event:
                continue
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(line[5:])
                    if isinstance(data, dict) and isinstance(data.get("usage"), dict):
                        self.usage = data["usage"]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _too_big(limit: int) -> GatewayError:
    return GatewayError(
        413, f"request body is over the limit of {limit} bytes", code="body_too_large"
    )


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_big(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(499, "client disconnected while sending the body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_big(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


_REQUIRED: dict[str, tuple[str, str]] = {
    "chat/completions": ("messages", "array"),
    "completions": ("prompt", "string or array"),
    "embeddings": ("input", "string or array"),
}
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "messages": ((list,), "an array"),
    "prompt": ((str, list), "a string or an array"),
    "input": ((str, list), "a string or an array"),
    "stream": ((bool,), "a boolean"),
    "stream_options": ((dict,), "an object"),
    "tools": ((list,), "an array"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data: Any = json.loads(body)
    except ValueError as e:
        raise GatewayError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the body must be a JSON object", code="invalid_json")
    return data


def _parse(endpoint: str, body: bytes) -> dict[str, Any]:
    """The request body as JSON, with the fields the gateway reads type-checked."""
    data = _json_object(body)
    required, kind = _REQUIRED[endpoint]
    for name in ("model", required):
        if name not in data:
            raise invalid(name, f"is required ({'a string' if name == 'model' else kind})")
    for name, (types, what) in _TYPES.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise invalid(name, f"must be {what}, got {type(value).__name__}")
    if endpoint == "embeddings" and data.get("stream"):
        raise invalid("stream", "embeddings do not stream")
    return data


def _response_headers(
    outcome: Outcome | None, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type.encode())]
    if outcome is not None:
        headers += [
            (b"traceparent", outcome.trace.traceparent.encode()),
            (b"x-dayzero-trace-id", outcome.trace.trace_id.encode()),
        ]
        if outcome.lane != "-":
            headers.append((b"x-dayzero-lane", outcome.lane.encode()))
        if outcome.paid_reason is not None:
            headers.append((b"x-dayzero-fallback-reason", outcome.paid_reason.encode()))
    return headers + (extra or [])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, data: dict[str, Any]) -> None:
    await _send(send, status, json.dumps(data).encode(), [(b"content-type", b"application/json")])


async def _send_error(
    send: Send, error: GatewayError, outcome: Outcome | None, ollama: bool = False
) -> None:
    """The error as OpenAI writes it, or as Ollama does (``{"error": "..."}``) for its clients."""
    headers = _response_headers(outcome, "application/json")
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    body = json.dumps({"error": error.message}).encode() if ollama else error.json_bytes()
    await _send(send, error.status, body, headers)


def _want(method: str, allowed: str, path: str) -> None:
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise GatewayError(405, f"{path} takes {allowed}")


def _need_admin(principal: Principal, path: str) -> None:
    if not principal.admin:
        raise GatewayError(403, f"{path} needs an admin key")


def _found(job: Job | None, job_id: str) -> Job:
    if job is None:
        raise GatewayError(404, f"no async job {job_id!r} (unknown or expired)", code="not_found")
    return job


def _async_lane(
    doc: Routing, principal: Principal, project: str, body: bytes, headers: dict[str, str]
) -> str:
    """The lane an async request is queued for: any lane the key may use but a shadow one."""
    request = _parse("chat/completions", body)
    if request.get("stream"):
        raise invalid("stream", "an async request does not stream")
    route = choose(doc, request.get("model"), clean(headers.get("x-dayzero-lane")), project)
    if not principal.may_use(route.lane.name):
        raise GatewayError(
            403, f"this key may not use lane {route.lane.name!r}", code="lane_not_allowed"
        )
    if route.lane.mode == "shadow":
        raise GatewayError(409, f"lane {route.lane.name!r} is shadow: it only forwards sync calls")
    return route.lane.name


async def _nowhere(message: Message) -> None:
    """``send`` of an async job: its answer is stored, not sent."""


def _legacy_timeout(snapshot: Snapshot) -> float:
    """How long a shadow lane waits for the legacy path's next bytes: the document's longest
    backend timeout (a legacy path is at least as slow as what would replace it)."""
    return max((b.timeout_seconds for b in snapshot.doc.backends), default=300.0)


def _async_jobs(gateway: Gateway, redis: Redis | None, options: Mapping[str, float]) -> AsyncJobs:
    """The async lanes' jobs: in Redis when configured, else in memory (lost on restart)."""
    ttl = float(options.get("ttl_seconds", 3600))
    lease = float(options.get("lease_seconds", 30))
    store: Store = (
        RedisStore(redis, ttl_seconds=ttl, lease_seconds=lease)
        if redis is not None
        else MemoryStore(ttl)
    )
    return AsyncJobs(
        store,
        gateway._run_job,
        replica=gateway.replica,
        workers=int(options.get("workers", 4)),
        lease_seconds=lease,
        max_attempts=int(options.get("max_attempts", 3)),
        backoff_seconds=float(options.get("backoff_seconds", 0.5)),
        registry=gateway.metrics.registry,
    )


def create_app(config_path: str | Path, **kwargs: Any) -> Gateway:
    """The gateway app for a routing document on disk (ConfigError when it is invalid)."""
    return Gateway(config_path, **kwargs)
