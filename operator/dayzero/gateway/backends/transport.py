"""The aiohttp exchange every backend shares: timeouts, failure mapping and stream hand-over.

Backends differ in what they send and how they read the answer. How a call times out, which
aiohttp errors mean the host is unreachable, what a 5xx or a garbled body becomes, and the rule
that a stream is handed to the app only once its first chunk is in (until then any failure is a
``BackendError`` and the app fails over) are the same for every upstream, so they live here once.
``exchange`` is the whole call for a backend whose protocol is translated to OpenAI's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from ..errors import GatewayError
from ..translate import ChunkTranslator, JsonObject, StreamPipe, TranslationError, Usage
from .base import BackendError, Reply, StreamReply

Framing = Literal["sse", "ndjson"]


class CountingTranslator(ChunkTranslator, Protocol):
    """A stream translator that keeps the exchange's token counts (every one in translate)."""

    usage: Usage


class Host:
    """What every backend holds: its name, its host (the breaker's key), the shared pool, its
    timeout and its key. A backend class names its base URL and what it sends there."""

    def __init__(
        self,
        name: str,
        url: str,
        host: str,
        *,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self._base = self.base_url(url.rstrip("/"))
        self._session = session
        self._timeout = timeout_seconds
        self._token = token

    @staticmethod
    def base_url(url: str) -> str:
        """The URL the backend's paths are relative to (``url`` without a trailing slash)."""
        return url

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}


def timeout(seconds: float, *, stream: bool) -> aiohttp.ClientTimeout:
    """The whole answer within ``seconds``; for a stream, each wait for the next chunk."""
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    return aiohttp.ClientTimeout(total=seconds)


@contextmanager
def failures(seconds: float, waiting_for: str = "answer") -> Iterator[None]:
    """Timeouts and aiohttp errors as ``BackendError`` (the two reasons that trip a breaker)."""
    try:
        yield
    except TimeoutError:
        raise BackendError("timeout", f"no {waiting_for} within {seconds:g}s") from None
    except aiohttp.ClientError as e:
        # The exception's own text names the host and the OS error (refused, reset, no route).
        detail = str(e)[:300]
        raise BackendError(
            "connect",
            f"waiting for the {waiting_for}: {type(e).__name__}"
            + (f": {detail}" if detail else ""),
        ) from None


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: JsonObject,
    headers: dict[str, str],
    *,
    seconds: float,
    stream: bool,
) -> aiohttp.ClientResponse:
    """POST JSON; the response is open (headers read, body not) for the caller to consume."""
    data = json.dumps(body).encode()
    with failures(seconds):
        return await session.post(
            url, data=data, headers=headers, timeout=timeout(seconds, stream=stream)
        )


async def read(resp: aiohttp.ClientResponse, seconds: float) -> bytes:
    """The whole body, the connection released; ``upstream_5xx`` for a 5xx status."""
    try:
        with failures(seconds):
            body = await resp.read()
    finally:
        resp.release()
    if resp.status >= 500:
        raise BackendError("upstream_5xx", f"HTTP {resp.status}")
    return body


def json_object(body: bytes, status: int) -> JsonObject:
    """The body as a JSON object; ``bad_response`` otherwise."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        raise BackendError("bad_response", f"HTTP {status} with a non-JSON body") from None
    if not isinstance(parsed, dict):
        raise BackendError("bad_response", "the answer is not a JSON object")
    return parsed


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], seconds: float
) -> JsonObject:
    """GET a JSON object (model lists, loaded models); any non-200 is a ``BackendError``."""
    with failures(seconds):
        async with session.get(
            url, headers=headers, timeout=timeout(seconds, stream=False)
        ) as resp:
            body = await resp.read()
    if resp.status >= 500:
        raise BackendError("upstream_5xx", f"HTTP {resp.status}")
    if resp.status != 200:
        raise BackendError("bad_response", f"HTTP {resp.status}")
    return json_object(body, resp.status)


def error_reply(status: int, answer: JsonObject) -> Reply:
    """An upstream's 4xx (Ollama ``{"error": "..."}``, Anthropic or OpenAI ``{"error": {...}}``)
    as an OpenAI error body with the same status."""
    error = answer.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    text = str(message) if message else f"HTTP {status} from the backend"
    return Reply(status, GatewayError(status, text, code="upstream_error").json_bytes())


def close(resp: aiohttp.ClientResponse) -> None:
    """Release a finished response; drop the connection of an unfinished one.

    Closing (not releasing) drops the connection, which cancels the upstream generation when the
    client went away mid-stream.
    """
    if resp.content.at_eof():
        resp.release()
    else:
        resp.close()


# -- relayed streams (the upstream already speaks OpenAI SSE) ------------------------------------


async def relay(resp: aiohttp.ClientResponse, seconds: float) -> StreamReply:
    """The SSE stream as its bytes come, handed over once the first chunk is in."""
    if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
        raise BackendError("bad_response", "a stream was asked for but not answered")
    chunks = resp.content.iter_any()
    with failures(seconds, "first event"):
        first = await anext(chunks, b"")
    if not first:
        raise BackendError("bad_response", "the stream ended before any event")
    return StreamReply(first=first, rest=_relayed(resp, chunks, seconds))


async def _relayed(
    resp: aiohttp.ClientResponse, chunks: AsyncIterator[bytes], seconds: float
) -> AsyncGenerator[bytes, None]:
    try:
        with failures(seconds, "next event"):
            async for chunk in chunks:
                yield chunk
    finally:
        close(resp)


# -- translated streams (Ollama NDJSON, Anthropic SSE -> OpenAI SSE) -----------------------------


class _ErrorsRaised:
    """A stream translator whose error chunk (the upstream's error event) is raised, not sent.

    The app then fails over (before the first chunk) or ends the client's stream with its own
    error event and no ``[DONE]``, as for any other upstream failure.
    """

    def __init__(self, inner: CountingTranslator) -> None:
        self.inner = inner

    def feed(self, event: JsonObject) -> list[JsonObject]:
        out = self.inner.feed(event)
        for chunk in out:
            error = chunk.get("error")
            if error is not None:
                message = error.get("message") if isinstance(error, dict) else error
                raise BackendError("upstream_error", f"error event: {message}")
        return out

    def finish(self) -> list[JsonObject]:
        return self.inner.finish()


def _pipe(pipe: StreamPipe, data: bytes | None) -> bytes:
    """OpenAI SSE of the next bytes (None: the end); garbled input is ``bad_response``."""
    try:
        return pipe.finish() if data is None else pipe.feed(data)
    except TranslationError as e:
        raise BackendError("bad_response", f"untranslatable stream: {e}") from None


async def translated(
    resp: aiohttp.ClientResponse,
    translator: CountingTranslator,
    *,
    source: Framing,
    seconds: float,
) -> StreamReply:
    """The upstream stream as OpenAI SSE (ending ``data: [DONE]``), once a chunk is translated.

    The reply's ``usage`` is filled from the translator's counts when the stream ends, whether or
    not the client asked for the usage chunk, so cost is always counted.
    """
    pipe = StreamPipe(_ErrorsRaised(translator), source=source, target="sse")
    chunks = resp.content.iter_any()
    first = b""
    data: bytes | None = b""
    while not first and data is not None:
        with failures(seconds, "first event"):
            data = await anext(chunks, None)
        # At the end: a whole answer in one read, or a stream cut short (the translator raises).
        first = _pipe(pipe, data)
    usage: dict[str, Any] = {}
    rest = _translated(
        resp,
        chunks if data is not None else None,  # None: the answer is already whole
        pipe,
        translator,
        usage=usage,
        seconds=seconds,
    )
    return StreamReply(first=first, rest=rest, usage=usage)


async def _translated(
    resp: aiohttp.ClientResponse,
    chunks: AsyncIterator[bytes] | None,
    pipe: StreamPipe,
    translator: CountingTranslator,
    *,
    usage: dict[str, Any],
    seconds: float,
) -> AsyncGenerator[bytes, None]:
    try:
        if chunks is not None:
            with failures(seconds, "next event"):
                async for data in chunks:
                    out = _pipe(pipe, data)
                    if out:
                        yield out
            yield _pipe(pipe, None)
    finally:
        usage.update(openai_usage(translator.usage))
        close(resp)


def openai_usage(counts: Usage) -> dict[str, int]:
    """Token counts as OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": counts.input_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.input_tokens + counts.output_tokens,
    }


# -- the whole call of a translated backend -------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One translated call: where it goes, and how its answer becomes OpenAI's."""

    url: str
    body: JsonObject
    headers: dict[str, str]
    whole: Callable[[JsonObject], JsonObject]
    """The upstream's 200 answer -> an OpenAI answer (``TranslationError`` when it cannot)."""
    stream: Callable[[], CountingTranslator] | None = None
    """A fresh stream translator, when a stream was asked for."""
    framing: Framing = "sse"
    """How the upstream frames its stream."""


async def exchange(
    session: aiohttp.ClientSession, call: Exchange, seconds: float
) -> Reply | StreamReply:
    """Send the call and translate the answer; ``BackendError`` for whatever should fail over."""
    resp = await post(
        session, call.url, call.body, call.headers, seconds=seconds, stream=call.stream is not None
    )
    try:
        if call.stream is not None and resp.status == 200:
            return await translated(resp, call.stream(), source=call.framing, seconds=seconds)
        answer = json_object(await read(resp, seconds), resp.status)
    except BaseException:
        resp.close()
        raise
    if resp.status != 200:
        return error_reply(resp.status, answer)
    try:
        out = call.whole(answer)
    except TranslationError as e:
        raise BackendError("bad_response", f"untranslatable answer: {e}") from None
    usage = out.get("usage")
    return Reply(200, json.dumps(out).encode(), usage=usage if isinstance(usage, dict) else None)
