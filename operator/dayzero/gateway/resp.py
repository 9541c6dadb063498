"""One pipelined Redis connection for the budget scripts, on the paid call's path.

Why not redis-py for these two calls: measured on loopback (bench/budget.py), a reservation's
``EVALSHA`` through ``redis.asyncio`` costs 0.43 ms at the median, of which the round trip and
the script are 0.19 ms; the rest is its pool checkout, command packing, a ``wait_for`` task per
read and reply parsing, paid on every paid call (and again for its settlement). Here a command
is one ``transport.write`` of pre-packed bytes, and replies are parsed as they arrive and handed
to the callers in order (Redis answers a connection's commands in order), so concurrent calls
share the connection without a pool and without locking.

It speaks only what the scripts need: RESP2 replies, ``EVALSHA`` with ``EVAL`` when Redis lost
the script (a restart), ``AUTH`` and ``SELECT`` on connect. Every failure (refused, reset, an
error reply, no answer within ``timeout``) is ``RespError``; a timeout or a lost connection
fails every call waiting on it and the next call dials again, as redis-py's client does.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, cast

RESP_TIMEOUT_SECONDS = 1.0


class RespError(Exception):
    """Redis could not be reached or answered with an error."""


class ReplyError(RespError):
    """Redis answered ``-ERR ...`` (or ``-NOSCRIPT ...``)."""


def pack(*args: bytes | str | int) -> bytes:
    """A command as RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse(buf: bytearray | bytes, at: int = 0) -> tuple[Any, int] | None:  # noqa: PLR0911 - one per RESP type
    """One reply from ``buf`` at ``at``: (value, where it ends), or None when incomplete.
    Error replies are returned as ``ReplyError`` values, not raised."""
    end = buf.find(b"\r\n", at)
    if end < 0:
        return None
    kind, line = buf[at : at + 1], bytes(buf[at + 1 : end])
    at = end + 2
    if kind == b":":
        return int(line), at
    if kind == b"+":
        return line.decode(), at
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), at
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, at
        if len(buf) < at + size + 2:
            return None
        return bytes(buf[at : at + size]), at + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, at
        items = []
        for _ in range(count):
            item = parse(buf, at)
            if item is None:
                return None
            value, at = item
            items.append(value)
        return items, at
    msg = f"unexpected reply type {kind!r} from redis"
    raise RespError(msg)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's does not subclass asyncio.Transport, so no isinstance).
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        at = 0
        while self.waiting:
            try:
                reply = parse(self.buffer, at)
            except (RespError, ValueError) as e:
                self.fail(RespError(f"bad reply from redis: {e}"))
                return
            if reply is None:
                break
            value, at = reply
            future = self.waiting.popleft()
            if not future.done():  # a caller that was cancelled left its reply to be dropped
                future.set_result(value)
        del self.buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RespError(f"redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, error: RespError) -> None:
        """Every call waiting on this connection fails; the connection is not used again."""
        self.closed = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class ScriptConnection:
    """Lua scripts over one lazily dialled, pipelined connection (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = RESP_TIMEOUT_SECONDS,
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self._hello: list[bytes] = []
        if password:
            self._hello.append(
                pack("AUTH", username, password) if username else pack("AUTH", password)
            )
        if db:
            self._hello.append(pack("SELECT", db))
        self._proto: _Protocol | None = None
        self._dialling: asyncio.Future[_Protocol] | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed and proto.transport is not None:
            return proto
        if self._dialling is not None:
            return await asyncio.shield(self._dialling)
        dialling = self._dialling = asyncio.get_running_loop().create_future()
        try:
            proto = await self._dial()
        except BaseException as e:
            error = (
                e if isinstance(e, RespError) else RespError("connecting to redis was cancelled")
            )
            dialling.set_exception(error)
            dialling.exception()  # retrieved here: callers that share the dial re-raise it
            raise
        finally:
            self._dialling = None
        dialling.set_result(proto)
        return proto

    async def _dial(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, proto = await loop.create_connection(_Protocol, self.host, self.port)
        except (OSError, TimeoutError) as e:
            msg = f"cannot connect to redis at {self.host}:{self.port}: {e or type(e).__name__}"
            raise RespError(msg) from None
        try:
            for command in self._hello:
                await self._call(proto, command)
        except RespError:
            proto.fail(RespError("redis refused AUTH or SELECT"))
            raise
        self._proto = proto
        return proto

    async def _call(self, proto: _Protocol, command: bytes) -> Any:  # noqa: ANN401 - a RESP value
        if proto.closed or proto.transport is None:
            msg = "redis connection lost"
            raise RespError(msg)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        proto.waiting.append(future)
        proto.transport.write(command)
        timer = loop.call_later(
            self.timeout, proto.fail, RespError(f"redis did not answer in {self.timeout}s")
        )
        try:
            value = await future
        finally:
            timer.cancel()
        if isinstance(value, ReplyError):
            raise value
        return value

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:  # noqa: ANN401 - a RESP value
        """Run ``script`` by its sha1, sending its body when Redis does not have it."""
        proto = await self._connection()
        try:
            return await self._call(proto, pack("EVALSHA", script.sha, len(keys), *keys, *args))
        except ReplyError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        # Redis restarted (or flushed its scripts): the script did not run, so running it is safe.
        command = pack("EVAL", script.body, len(keys), *keys, *args)
        return await self._call(await self._connection(), command)

    def close(self) -> None:
        """Drop the connection (calls in flight fail)."""
        if self._proto is not None and not self._proto.closed:
            self._proto.fail(RespError("closed"))
        self._proto = None


class Script:
    """A Lua script's body and its sha1 (the name Redis knows it by)."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()  # noqa: S324 - Redis names scripts so
