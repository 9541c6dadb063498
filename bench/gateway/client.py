"""A small HTTP/1.1 client for the benchmark: exact per-request timing, and time to first token.

Why not aiohttp: the client shares a core with the mock upstream, and its own cost is part of
every latency it reports. A keep-alive connection with httptools' response parser costs a few
tens of microseconds per request; the same for every target, so it cancels out of the added
latency. It also stamps the moment the first token (a non-empty ``content`` in an SSE event)
arrives, which wrk cannot.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import cast

import httptools

_TOKEN = re.compile(rb'"content"\s*:\s*"[^"]')
# Past this much body without a token the stream is scanned no further (bounded work).
_SCAN_LIMIT = 1 << 16


@dataclass
class Timing:
    """One request: status, seconds to the first token (streams) and to the end."""

    status: int
    first_token_s: float | None
    total_s: float
    body: bytes = b""


class _Connection(asyncio.Protocol):
    def __init__(self, *, keep_body: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._keep_body = keep_body
        self._waiter: asyncio.Future[Timing] | None = None
        self._start = 0.0
        self._first: float | None = None
        self._scan = b""
        self._body: list[bytes] = []
        self._status = 0
        self._stream = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(ConnectionError(f"bad response: {e}"))
            self.close()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self._keep_body:
            self._body.append(body)
        if self._stream and self._first is None and len(self._scan) < _SCAN_LIMIT:
            self._scan += body
            if _TOKEN.search(self._scan):
                self._first = time.perf_counter()

    def on_message_complete(self) -> None:
        end = time.perf_counter()
        first = None if self._first is None else self._first - self._start
        timing = Timing(self._status, first, end - self._start, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(timing)

    def send(self, raw: bytes, *, stream: bool) -> asyncio.Future[Timing]:
        assert self._transport is not None  # noqa: S101 - only called on an open connection
        self._waiter = asyncio.get_running_loop().create_future()
        self._first, self._scan, self._body, self._status = None, b"", [], 0
        self._stream = stream
        self._start = time.perf_counter()
        self._transport.write(raw)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


@dataclass
class Request:
    """A request serialized once and sent many times."""

    host: str
    port: int
    raw: bytes
    stream: bool

    @classmethod
    def post(
        cls, url: str, body: bytes, headers: dict[str, str], *, stream: bool = False
    ) -> Request:
        rest = url.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        lines = [
            f"POST /{path} HTTP/1.1",
            f"Host: {hostport}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        return cls(host, int(port or 80), raw, stream)


@dataclass
class Client:
    """One keep-alive connection, reopened when the server closes it."""

    request: Request
    keep_body: bool = False
    _conn: _Connection | None = field(default=None, init=False)

    async def send(self, timeout: float) -> Timing:
        if self._conn is None or self._conn.closed:
            loop = asyncio.get_running_loop()
            keep = self.keep_body
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(keep_body=keep), self.request.host, self.request.port
                ),
                timeout,
            )
            self._conn = conn
        try:
            return await asyncio.wait_for(
                self._conn.send(self.request.raw, stream=self.request.stream), timeout
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class LoadResult:
    """What a run of requests gave: latencies of the successes, and the failures by kind."""

    latencies_s: list[float] = field(default_factory=list)
    first_tokens_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + sum(self.errors.values())

    def fail(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def closed_loop(
    request: Request,
    *,
    connections: int,
    seconds: float | None = None,
    count: int | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """``connections`` clients each sending back to back, for ``seconds`` or ``count`` requests."""
    result = LoadResult()
    left = count if count is not None else -1
    start = time.perf_counter()
    deadline = start + (seconds if seconds is not None else 3600.0)

    async def worker() -> None:
        nonlocal left
        client = Client(request)
        try:
            while time.perf_counter() < deadline and left != 0:
                if left > 0:
                    left -= 1
                try:
                    timing = await client.send(timeout)
                except (TimeoutError, OSError) as e:
                    result.fail("timeout" if isinstance(e, TimeoutError) else "connect")
                    continue
                if timing.status != 200:
                    result.fail(f"status {timing.status}")
                    continue
                if request.stream and timing.first_token_s is None:
                    result.fail("no token")
                    continue
                result.latencies_s.append(timing.total_s)
                if timing.first_token_s is not None:
                    result.first_tokens_s.append(timing.first_token_s)
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.wall_s = time.perf_counter() - start
    return result


async def one(request: Request, timeout: float = 10.0) -> Timing:
    """A single request with its body, for checking what a target answers."""
    client = Client(request, keep_body=True)
    try:
        return await client.send(timeout)
    finally:
        client.close()
