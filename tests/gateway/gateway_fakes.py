"""Helpers of the gateway tests: fake OpenAI upstreams and the gateway, both on loopback.

Every test runs its own event loop (``run``) with a real uvicorn server in front of the app and
aiohttp fakes behind it, so timeouts, resets and streams are real sockets, never the internet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
import yaml
from aiohttp import web

from dayzero.gateway.app import Gateway

ADMIN_KEY = "sk-test-admin"
USER_KEY = "sk-test-user"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def completion(model: str, text: str = "hello") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def chunk(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


@dataclass
class FakeUpstream:
    """An OpenAI-compatible fake whose behaviour a test sets with ``mode``.

    ok, slow (never answers in time), 500, garbage (200 but not JSON), stall_mid and reset_mid
    (a stream that stops or breaks after its first event), delay:<s> (answers after s seconds).
    """

    mode: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    active: int = 0
    peak: int = 0
    cancelled: int = 0
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else {}
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self._answer(request, body)
        except (asyncio.CancelledError, ConnectionResetError):
            # The gateway dropped the connection: the upstream stops generating.
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    async def _answer(  # noqa: PLR0911 - one return per behaviour reads best in a fake
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        mode = self.mode
        model = body.get("model", "?")
        if mode.startswith("delay:"):
            await asyncio.sleep(float(mode.split(":")[1]))
            mode = "ok"
        if mode == "slow":
            await asyncio.sleep(30)
        if mode == "500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if mode == "bad_request":
            return web.json_response({"error": {"message": "context too long"}}, status=400)
        if request.path.endswith("/embeddings"):
            return web.json_response(
                {"object": "list", "data": [{"embedding": [0.1], "index": 0}], "model": model}
            )
        if not body.get("stream"):
            return web.json_response(completion(model, f"from {self.url}"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(sse(chunk(model, "one ")))
        if mode == "stall_mid":
            await asyncio.sleep(30)
        if mode == "reset_mid":
            assert request.transport is not None
            request.transport.abort()
            return resp
        if mode == "long":
            for _ in range(2000):
                await asyncio.sleep(0.005)
                await resp.write(sse(chunk(model, "x")))
        await resp.write(sse(chunk(model, "two")))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
            await resp.write(sse({"id": "c", "choices": [], "usage": usage}))
        await resp.write(sse("[DONE]"))
        await resp.write_eof()
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def document(
    backends: list[dict[str, Any]], lanes: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A routing document: one lane ``chat`` over every backend unless lanes are given."""
    doc: dict[str, Any] = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": lanes
        or [{"name": "chat", "model": "chat", "backends": [b["name"] for b in backends]}],
        "backends": backends,
        "keys": {"enabled": False},
    }
    doc.update(extra)
    return doc


@dataclass
class Running:
    """A gateway under test."""

    url: str
    app: Gateway
    path: Path
    session: aiohttp.ClientSession

    def write(self, doc: dict[str, Any] | str) -> None:
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
        self.path.write_text(text)

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(self.url + path, data=data, headers=headers) as r:
            raw = await r.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw
            return r.status, {k.lower(): v for k, v in r.headers.items()}, parsed

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.get(self.url + path, headers=headers) as r:
            raw = await r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode()


@asynccontextmanager
async def serve(doc: dict[str, Any], tmp: Path, **kwargs: Any) -> AsyncIterator[Running]:
    """The gateway on a loopback port for ``doc``, written to a file it watches."""
    path = tmp / "routing.yaml"
    path.write_text(yaml.safe_dump(doc))
    app = Gateway(path, poll_seconds=kwargs.pop("poll_seconds", 0.05), **kwargs)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        access_log=False,
        http="httptools",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 1.5
    while not server.started:
        assert time.monotonic() < deadline, "gateway did not start"
        assert not task.done(), task.exception() if task.done() else ""
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    try:
        yield Running(f"http://127.0.0.1:{port}", app, path, session)
    finally:
        await session.close()
        server.should_exit = True
        await task


@asynccontextmanager
async def upstreams(*modes: str) -> AsyncIterator[list[FakeUpstream]]:
    fakes = [FakeUpstream(mode) for mode in modes]
    for fake in fakes:
        await fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes:
            await fake.stop()


CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


# -- for the official clients (test_gateway_openai_client.py) ----------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_ARGUMENTS = ['{"city": ', '"Par', 'is"}']  # how OpenAI streams them: in pieces
TOOL_CALL_ID = "call_weather_1"


class ClientUpstream(FakeUpstream):
    """A fake that answers every field the official clients parse, as OpenAI does.

    On top of FakeUpstream: legacy completions (``text``), embeddings (floats, or base64 float32
    when the client asks, which openai-python does by default), and tool calls: a request with
    ``tools`` gets a ``get_weather`` call (streamed as deltas in pieces when ``stream``), and a
    request that ends with the tool's result gets an answer quoting it.
    """

    async def _answer(  # noqa: PLR0911 - one return per kind of answer, as in FakeUpstream
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        if self.mode != "ok":
            return await super()._answer(request, body)
        model = body.get("model", "?")
        if request.path.endswith("/embeddings"):
            return web.json_response(embeddings(model, body))
        if request.path.endswith("/completions") and not request.path.endswith("chat/completions"):
            return web.json_response(text_completion(model, f"from {self.url}"))
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool":
            return web.json_response(completion(model, f"it is {messages[-1]['content']}"))
        if not body.get("tools"):
            return await super()._answer(request, body)
        if not body.get("stream"):
            return web.json_response(tool_call_completion(model))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in tool_call_chunks(model):
            await resp.write(sse(event))
        await resp.write(sse("[DONE]"))
        await resp.write_eof()
        return resp


def text_completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6},
    }


def embedding_vector(text: str) -> list[float]:
    """A deterministic 4-dimensional vector; exact in float32, so base64 round-trips equal."""
    return [float(len(text)), 0.5, -0.25, 1.0]


def embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for i, text in enumerate(texts):
        vector: Any = embedding_vector(str(text))
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def tool_call_completion(model: str) -> dict[str, Any]:
    call = {
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "".join(TOOL_ARGUMENTS)},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer = completion(model)
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
    return answer


def tool_call_chunks(model: str) -> list[dict[str, Any]]:
    """The chunks of a streamed tool call: id and name first, then the arguments in pieces."""

    def event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": "chatcmpl-t",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [choice],
        }

    first = {
        "index": 0,
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = [{"index": 0, "function": {"arguments": part}} for part in TOOL_ARGUMENTS]
    return [
        event({"role": "assistant", "content": None, "tool_calls": [first]}),
        *(event({"tool_calls": [piece]}) for piece in pieces),
        event({}, "tool_calls"),
    ]


@dataclass
class Background:
    """A gateway and its fakes served from a thread of their own, for blocking (sync) clients."""

    gateway: Running
    fakes: list[FakeUpstream]
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event

    @property
    def url(self) -> str:
        return self.gateway.url


@contextmanager
def in_background(
    fakes: list[FakeUpstream],
    make_doc: Callable[[list[FakeUpstream]], dict[str, Any]],
    tmp: Path,
    **kwargs: Any,
) -> Iterator[Background]:
    """Serve ``make_doc(fakes)`` on a loop in a daemon thread until the block ends."""
    ready: Future[Background] = Future()

    async def main() -> None:
        for fake in fakes:
            await fake.start()
        try:
            async with serve(make_doc(fakes), tmp, **kwargs) as gw:
                bg = Background(gw, fakes, asyncio.get_running_loop(), asyncio.Event())
                ready.set_result(bg)
                await bg.stop.wait()
        finally:
            for fake in fakes:
                await fake.stop()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:
            if ready.done():
                raise
            ready.set_exception(e)

    thread = threading.Thread(target=thread_main, name="gateway", daemon=True)
    thread.start()
    bg = ready.result(timeout=2)
    try:
        yield bg
    finally:
        bg.loop.call_soon_threadsafe(bg.stop.set)
        thread.join(timeout=2)
        assert not thread.is_alive(), "the background gateway did not stop"
