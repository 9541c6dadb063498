"""A fast fake OpenAI upstream for the gateway benchmark: canned JSON and timed SSE streams.

Why not uvicorn and an ASGI app, as the gateway's tests use: the upstream shares a core with the
load generator, and every microsecond it spends is one the gateway under test does not get
measured against. This is an asyncio protocol on uvloop with httptools' parser and responses
serialized once at start, about 5x the rate of a plain ASGI app, so it is never what limits a run.

    .venv/bin/python bench/gateway/mock_upstream.py --port 9000 [--chunks 16] [--interval-ms 5]

Any POST answers a ``chat.completion`` (with ``usage``), or, when the body asks for
``"stream": true``, ``--chunks`` SSE chunks of one token each, the first at once and then one every
``--interval-ms`` (so time-to-first-token is measurable apart from the stream's length), a usage
chunk and ``data: [DONE]``. ``GET .../models`` lists one model; other GETs get 404.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import cast

import httptools
import uvloop

MODEL = "bench-model"
COMPLETION_ID = "chatcmpl-dayzero-bench"

_BODY = json.dumps(
    {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the mock upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    },
    separators=(",", ":"),
).encode()
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "b"}]}
).encode()
_NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error"}}'


def _response(status: bytes, body: bytes, *, keep_alive: bool) -> bytes:
    head = [
        b"HTTP/1.1 " + status,
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: " + (b"keep-alive" if keep_alive else b"close"),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_CANNED = {
    (route, keep): _response(status, body, keep_alive=keep)
    for route, status, body in (
        ("chat", b"200 OK", _BODY),
        ("models", b"200 OK", _MODELS),
        ("404", b"404 Not Found", _NOT_FOUND),
    )
    for keep in (True, False)
}


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of the chunked transfer coding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(delta: dict[str, str], finish: str | None = None, usage: object = None) -> bytes:
    payload: dict[str, object] = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        payload["usage"] = usage
    return _chunk(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


def stream_parts(chunks: int) -> list[bytes]:
    """The stream's writes: one per token, then the stop, usage and [DONE] events together."""
    parts = [_event({"role": "assistant", "content": "tok0 "})]
    parts += [_event({"content": f"tok{i} "}) for i in range(1, chunks)]
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    # As vLLM ends a stream: the finish_reason, the usage chunk and [DONE] in one write.
    tail = _event({}, finish="stop") + _event({}, usage=usage) + _chunk(b"data: [DONE]\n\n")
    parts.append(tail + b"0\r\n\r\n")
    return parts


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _wants_stream(body: bytes) -> bool:
    if b'"stream"' not in body:
        return False
    try:
        return json.loads(body).get("stream") is True
    except (ValueError, AttributeError):
        return False


class Upstream(asyncio.Protocol):
    """One client connection: requests are answered in order (a stream delays the next)."""

    def __init__(self, parts: list[bytes], interval: float) -> None:
        self._parts = parts
        self._interval = interval
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._queue: list[tuple[bytes, bytes, bytes, bool]] = []
        self._streaming = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        keep = self._parser.should_keep_alive()
        self._queue.append((method, self._url, b"".join(self._body), keep))
        self._url, self._body = b"", []
        if not self._streaming:
            self._serve()

    def _serve(self) -> None:
        while self._queue and not self._streaming and self._transport is not None:
            method, url, body, keep = self._queue.pop(0)
            path = url.split(b"?", 1)[0]
            if method == b"POST" and _wants_stream(body):
                self._stream(keep)
                return
            route = (
                "chat" if method == b"POST" else "models" if path.endswith(b"/models") else "404"
            )
            self._transport.write(_CANNED[route, keep])
            if not keep:
                self._close()

    def _stream(self, keep: bool) -> None:
        assert self._transport is not None  # noqa: S101 - checked by the caller
        self._streaming = True
        self._transport.write(_STREAM_HEAD + self._parts[0])
        loop = asyncio.get_running_loop()

        def step(i: int) -> None:
            if self._transport is None:
                return
            self._transport.write(self._parts[i])
            if i + 1 < len(self._parts):
                loop.call_later(self._interval, step, i + 1)
                return
            self._streaming = False
            if keep:
                self._serve()
            else:
                self._close()

        loop.call_later(self._interval, step, 1)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


async def serve(host: str, port: int, chunks: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    parts = stream_parts(chunks)
    server = await loop.create_server(
        lambda: Upstream(parts, interval), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{host}:{port}/v1 ({chunks} chunks, {interval * 1000:g} ms)")
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=16, help="tokens per stream (at least 1)")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="time between tokens")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port, max(1, args.chunks), args.interval_ms / 1000))


if __name__ == "__main__":
    main()
