"""Keep-warm: Ollama hosts marked ``keepWarm`` keep their model loaded; unloading is explicit.

Why: Ollama unloads an idle model after ``keep_alive`` (5 minutes by default), and the next
request waits for the load; a protected fast lane (the seed's ``alert-fast``) must never pay that.
So every ``seconds`` the gateway sends each such host the smallest request that loads a model
and sets how long it stays: ``POST /api/generate {"model": M, "keep_alive": K}`` with no prompt
(Ollama answers ``done_reason: "load"`` without generating). Unloading is the same request with
``keep_alive: 0`` (``done_reason: "unload"``): sent when a backend stops being keepWarm (or
leaves the document), and by ``POST /v1/admin/unload``, which also pauses keep-warm for that
backend until ``POST /v1/admin/warm`` or a document that changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from dayzero.api.routing import Routing, RoutingBackend

from . import background
from .backends import OllamaBackend
from .residency import served_model

log = logging.getLogger(__name__)

WARM_SECONDS = 60.0
REQUEST_SECONDS = 120.0
"""A load may take minutes on a cold host (weights read from disk)."""


def keep_alive_for(seconds: float) -> str:
    """How long a warmed model stays: three periods (a missed tick or two does not unload it),
    at least Ollama's own default of five minutes."""
    return f"{int(max(300.0, 3 * seconds))}s"


@dataclass
class WarmState:
    """What keep-warm last did on one backend."""

    model: str
    last: str | None = None
    """``load``, ``unload`` or the error of the last request."""
    at: float | None = None
    paused: bool = False

    def wire(self) -> dict[str, Any]:
        """As /v1/models/status shows it."""
        return {"model": self.model, "last": self.last, "at": self.at, "paused": self.paused}


class KeepWarm:
    """Sends the load and unload requests, and remembers what it keeps warm."""

    def __init__(
        self, seconds: float = WARM_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.seconds = seconds
        self.keep_alive = keep_alive_for(seconds or WARM_SECONDS)
        self.state: dict[str, WarmState] = {}
        self._urls: dict[str, tuple[str, str | None]] = {}
        """Backend -> (base URL, token) of every backend warmed, to unload it after it left."""
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    async def request(
        self,
        session: aiohttp.ClientSession,
        base: str,
        token: str | None,
        model: str,
        keep_alive: str | int,
    ) -> str:
        """One ``/api/generate`` with no prompt; its ``done_reason`` (``load``/``unload``)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = {"model": model, "keep_alive": keep_alive, "stream": False}
        timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
        async with session.post(
            f"{base}/api/generate", data=json.dumps(body), headers=headers, timeout=timeout
        ) as resp:
            raw = await resp.read()
        try:
            answer: Any = json.loads(raw)
        except ValueError:
            answer = None
        if resp.status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else raw[:200].decode()
            return f"HTTP {resp.status}: {error}"
        return str(answer.get("done_reason") or ("unload" if keep_alive == 0 else "load"))

    async def tick(
        self,
        session: aiohttp.ClientSession,
        doc: Routing,
        tokens: Mapping[str, str | None],
        circuit_open: Callable[[str], bool],
    ) -> None:
        """Warm every keepWarm Ollama backend; unload the ones that stopped being keepWarm."""
        wanted = {b.name: b for b in doc.backends if b.kind == "ollama" and b.keep_warm}
        jobs: list[Coroutine[Any, Any, object]] = []
        for name in list(self.state):
            if name not in wanted:
                jobs.append(self._unload_gone(session, name))
        for name, spec in wanted.items():
            models = served_model(doc, spec)
            if not models or circuit_open(spec.url):
                continue
            state = self.state.get(name)
            if state is None or state.model != models[0]:
                state = self.state[name] = WarmState(models[0])
            if state.paused:
                continue
            self._urls[name] = (_base(spec), tokens.get(name))
            jobs.append(self._send(session, name, spec, tokens.get(name), self.keep_alive))
        await asyncio.gather(*jobs)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        name: str,
        spec: RoutingBackend,
        token: str | None,
        keep_alive: str | int,
    ) -> str:
        state = self.state[name]
        try:
            state.last = await self.request(session, _base(spec), token, state.model, keep_alive)
        except (aiohttp.ClientError, TimeoutError) as e:
            state.last = f"error: {e or type(e).__name__}"
        state.at = round(self._clock(), 3)
        log.info("keep-warm %s %s: %s", name, state.model, state.last)
        return state.last

    async def _unload_gone(self, session: aiohttp.ClientSession, name: str) -> None:
        state = self.state.pop(name)
        base, token = self._urls.pop(name, (None, None))
        if base is None:
            return
        try:
            result = await self.request(session, base, token, state.model, 0)
        except (aiohttp.ClientError, TimeoutError) as e:
            result = f"error: {e}"
        log.info("keep-warm %s is no longer kept warm: unload %s: %s", name, state.model, result)

    async def unload(
        self, session: aiohttp.ClientSession, doc: Routing, name: str, token: str | None
    ) -> dict[str, Any]:
        """Unload a backend's model now and pause keep-warm for it (admin)."""
        return await self._admin(session, doc, name, token, paused=True)

    async def warm(
        self, session: aiohttp.ClientSession, doc: Routing, name: str, token: str | None
    ) -> dict[str, Any]:
        """Load a backend's model now and resume keep-warm for it (admin)."""
        return await self._admin(session, doc, name, token, paused=False)

    async def _admin(
        self,
        session: aiohttp.ClientSession,
        doc: Routing,
        name: str,
        token: str | None,
        *,
        paused: bool,
    ) -> dict[str, Any]:
        spec = _ollama(doc, name)
        model = served_model(doc, spec)[0]
        state = self.state.setdefault(name, WarmState(model))
        state.paused = paused
        state.model = model
        if not paused:
            self._urls[name] = (_base(spec), token)
        result = await self._send(session, name, spec, token, 0 if paused else self.keep_alive)
        return {"backend": name, "model": model, "result": result, "paused": paused}

    def start(
        self,
        session: Callable[[], aiohttp.ClientSession | None],
        state: Callable[[], tuple[Routing, Mapping[str, str | None]]],
        circuit_open: Callable[[str], bool],
    ) -> None:
        """Tick every ``seconds`` (the first at once, and again at once after ``kick``)."""

        async def loop() -> None:
            while True:
                pool = session()
                if pool is not None:
                    doc, tokens = state()
                    try:
                        await self.tick(pool, doc, tokens, circuit_open)
                    except Exception as e:  # noqa: BLE001 - keep-warm must never stop
                        log.warning("keep-warm round failed: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self.seconds)
                self._kick.clear()

        if self._task is None and self.seconds > 0:
            self._task = asyncio.get_running_loop().create_task(loop())

    def kick(self) -> None:
        """Run a round now (a new document may add or drop keepWarm backends)."""
        self._kick.set()

    async def stop(self) -> None:
        """Stop ticking (models stay loaded for their keep_alive)."""
        await background.cancel(self._task)
        self._task = None


def _base(spec: RoutingBackend) -> str:
    return OllamaBackend.base_url(spec.url.rstrip("/"))


class NotOllamaError(LookupError):
    """The admin named a backend that is not an Ollama backend of the document."""


def _ollama(doc: Routing, name: str) -> RoutingBackend:
    spec = next((b for b in doc.backends if b.name == name), None)
    if spec is None or spec.kind != "ollama":
        raise NotOllamaError(f"backend: no Ollama backend named {name!r}")
    if not served_model(doc, spec):
        raise NotOllamaError(f"backend: {name!r} names no model and serves no lane with one")
    return spec
