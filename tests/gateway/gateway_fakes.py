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


# -- Ollama and Anthropic fakes: the native protocols, as the real servers write them ------------

OLLAMA_AT = "2025-05-04T17:37:44.706015396Z"
OLLAMA_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "llama",
    "families": ["llama"],
    "parameter_size": "1.2B",
    "quantization_level": "Q8_0",
}
OLLAMA_DIGEST = "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878"
OLLAMA_TIMINGS = {
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 11,
    "prompt_eval_duration": 342546000,
    "eval_count": 4,
    "eval_duration": 4535599000,
}
CITY_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}


def ndjson(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode() + b"\n"


def anthropic_event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class FakeOllama(FakeUpstream):
    """An Ollama server's native API: /api/chat and /api/generate (JSON, or NDJSON streams, the
    default), /api/embed, /api/tags, /api/ps, /api/version.

    ``mode``: ok, slow (every path), 500, garbage, not_found (a model not pulled), error_first and
    error_mid (a 200 stream whose first or second line is Ollama's ``{"error": ...}``). A chat
    request with tools is answered with one call of its first tool, ``{"city": "Paris"}``.
    """

    text: str = "hello from ollama"
    paths: list[str] = field(default_factory=list)
    loaded: str = "llama3.2:1b"

    async def _answer(  # noqa: PLR0911 - one return per behaviour reads best in a fake
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        self.paths.append(request.path)
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(30)
        if request.path == "/api/version":
            return web.json_response({"version": "0.12.6"})
        if request.path in ("/api/tags", "/api/ps"):
            return self._models(request.path)
        if mode == "500":
            return web.json_response({"error": "llama runner process has terminated"}, status=500)
        if mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        model = body.get("model", "")
        if mode == "not_found":
            error = f'model "{model}" not found, try pulling it first'
            return web.json_response({"error": error}, status=404)
        if request.path == "/api/embed":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = [[0.1, 0.2, float(i)] for i in range(len(inputs))]
            return web.json_response(
                {
                    "model": model,
                    "embeddings": vectors,
                    "total_duration": 14143917,
                    "load_duration": 1019500,
                    "prompt_eval_count": 8,
                }
            )
        return await self._generate(request, body, chat=request.path == "/api/chat")

    async def _generate(
        self, request: web.Request, body: dict[str, Any], *, chat: bool
    ) -> web.StreamResponse:
        model = body.get("model", "")
        pieces = self._pieces(body, chat=chat)
        final = {"model": model, "created_at": OLLAMA_AT, "done": True, "done_reason": "stop"}
        final.update(OLLAMA_TIMINGS)
        if chat:
            final["message"] = {"role": "assistant", "content": ""}
        else:
            final["response"] = ""
        if body.get("stream") is False:
            whole = dict(final)
            if chat:
                calls = [c for p in pieces for c in p.get("tool_calls", [])]
                message = {"role": "assistant", "content": "".join(p["content"] for p in pieces)}
                whole["message"] = {**message, **({"tool_calls": calls} if calls else {})}
            else:
                whole["response"] = "".join(p["content"] for p in pieces)
                whole["context"] = [1, 2, 3]
            return web.json_response(whole)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        lines = [
            {
                "model": model,
                "created_at": OLLAMA_AT,
                **({"message": {"role": "assistant", **p}} if chat else {"response": p["content"]}),
                "done": False,
            }
            for p in pieces
        ]
        error = {"error": "llama runner process has terminated"}
        if self.mode == "error_first":
            lines = [error]
        elif self.mode == "error_mid":
            lines = [lines[0], error]
        else:
            lines.append(final)
        for i, line in enumerate(lines):
            if i and self.mode == "error_mid":
                await asyncio.sleep(0.05)  # the first line reaches the client alone
            await resp.write(ndjson(line))
        await resp.write_eof()
        return resp

    def _pieces(self, body: dict[str, Any], *, chat: bool) -> list[dict[str, Any]]:
        tools = body.get("tools") or []
        if chat and tools:
            name = tools[0]["function"]["name"]
            call = {"function": {"name": name, "arguments": {"city": "Paris"}}}
            return [{"content": "", "tool_calls": [call]}]
        words = self.text.split(" ")
        return [{"content": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)]

    def _models(self, path: str) -> web.Response:
        if self.mode == "500":
            return web.json_response({"error": "unavailable"}, status=500)
        entry: dict[str, Any] = {
            "name": self.loaded,
            "model": self.loaded,
            "size": 1321098329,
            "digest": OLLAMA_DIGEST,
            "details": OLLAMA_DETAILS,
        }
        if path == "/api/tags":
            entry["modified_at"] = "2025-05-04T17:37:44.706015396-07:00"
        else:
            entry.update(
                expires_at="2025-05-04T18:37:44.706015396-07:00",
                size_vram=1321098329,
                context_length=4096,
            )
        return web.json_response({"models": [entry]})


@dataclass
class FakeAnthropic(FakeUpstream):
    """Anthropic's Messages API: ``POST /v1/messages``, a message or its typed SSE events.

    Checks what the real one checks first (a key, ``anthropic-version``, ``max_tokens``).
    ``mode``: ok, slow, 500, overloaded (529), bad_request (400 invalid_request_error),
    error_first and error_mid (an ``error`` event first, or after ``message_start``). A request
    with tools is answered with a text block and a ``tool_use`` of its first tool, whose input
    streams as ``input_json_delta`` fragments.
    """

    text: str = "hello from claude"

    async def _answer(  # noqa: PLR0911 - one return per behaviour reads best in a fake
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        # The API takes the key as x-api-key or (what anthropic-python 2.x sends) a bearer token.
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return _anthropic_error(401, "authentication_error", "x-api-key header is required")
        version = request.headers.get("anthropic-version", "")  # a date: 2023-06-01 or later
        if not (len(version) == 10 and version.replace("-", "").isdigit()):
            return _anthropic_error(400, "invalid_request_error", "anthropic-version is required")
        if "max_tokens" not in body:
            return _anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(30)
        if mode == "500":
            return _anthropic_error(500, "api_error", "Internal server error")
        if mode == "overloaded":
            return _anthropic_error(529, "overloaded_error", "Overloaded")
        if mode == "bad_request":
            return _anthropic_error(400, "invalid_request_error", "prompt is too long")
        model = body["model"]
        tools = body.get("tools") or []
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        if tools:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": tools[0]["name"],
                    "input": {"city": "Paris"},
                }
            )
        stop = "tool_use" if tools else "end_turn"
        usage = {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 6,
        }
        message = {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(message, headers={"request-id": "req_1"})
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        for event in _anthropic_events(message, mode):
            if event["type"] == "error" and mode == "error_mid":
                await asyncio.sleep(0.05)  # message_start reaches the client alone
            await resp.write(anthropic_event(event))
        await resp.write_eof()
        return resp


def _anthropic_error(status: int, kind: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    return web.json_response(body, status=status)


def _anthropic_events(message: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    """The event sequence of ``message`` as Anthropic streams it."""
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    if mode == "error_first":
        return [error]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if mode == "error_mid":
        return [*events, error]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            if index == 0:
                events.append({"type": "ping"})
            for word in block["text"].split(" "):
                delta = {"type": "text_delta", "text": word + " "}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
            text = json.dumps(block["input"])
            for fragment in ("", text[:5], text[5:]):
                delta = {"type": "input_json_delta", "partial_json": fragment}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


@asynccontextmanager
async def fakes(*specs: FakeUpstream) -> AsyncIterator[list[FakeUpstream]]:
    """Start the given fakes (any kind) for the block."""
    for fake in specs:
        await fake.start()
    try:
        yield list(specs)
    finally:
        for fake in specs:
            await fake.stop()


ANTHROPIC_KEY_ENV = "DAYZERO_TEST_ANTHROPIC_KEY"
"""The environment variable the Anthropic test backends read their key from."""


def ollama_backend(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A routing document's Ollama backend entry."""
    return {
        "name": name,
        "kind": "ollama",
        "url": url,
        "model": "llama3.2:1b",
        "timeoutSeconds": 1,
        **extra,
    }


def anthropic_backend(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A routing document's Anthropic backend entry (its key from ``ANTHROPIC_KEY_ENV``)."""
    return {
        "name": name,
        "kind": "anthropic",
        "url": url,
        "model": "claude-fake-1",
        "timeoutSeconds": 1,
        "apiKeyRef": {"env": ANTHROPIC_KEY_ENV},
        **extra,
    }


def with_fallback(entry: dict[str, Any], plain_url: str) -> dict[str, Any]:
    """A document with lane ``chat`` over ``entry`` then an OpenAI backend ``p``, and lane
    ``alone`` over ``entry`` only."""
    return document(
        [entry, {"name": "p", "url": plain_url}],
        lanes=[
            {"name": "chat", "model": "chat", "backends": [entry["name"], "p"]},
            {"name": "alone", "model": "alone", "backends": [entry["name"]]},
        ],
    )


def sse_events(body: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body: JSON objects, or the ``[DONE]`` string."""
    out: list[Any] = []
    for event in body.decode().split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


@dataclass
class FakeOpenAIStream(FakeUpstream):
    """FakeUpstream whose chat streams end as OpenAI's do: a role chunk, content, a
    ``finish_reason`` chunk, the usage chunk when asked for, then ``[DONE]``."""

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if self.mode != "ok" or not body.get("stream") or "messages" not in body:
            return await super()._answer(request, body)
        head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1}
        head["model"] = body.get("model", "?")
        steps: list[tuple[dict[str, Any], str | None]] = [
            ({"role": "assistant", "content": ""}, None),
            ({"content": "one "}, None),
            ({"content": "two"}, None),
            ({}, "stop"),
        ]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for delta, finish in steps:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            await resp.write(sse({**head, "choices": [choice]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
            await resp.write(sse({**head, "choices": [], "usage": usage}))
        await resp.write(sse("[DONE]"))
        await resp.write_eof()
        return resp
