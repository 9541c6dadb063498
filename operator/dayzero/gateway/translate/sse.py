"""Framing: Server-Sent Events (OpenAI, Anthropic) and NDJSON (Ollama), parsed and encoded.

Backends hand the gateway bytes in whatever pieces the network cut them into, so the decoders
are incremental (``feed(bytes)`` returns what is complete, ``finish()`` flushes at EOF) and give
the same result however the stream is split, even inside a UTF-8 character or a CRLF.
``StreamPipe`` joins a decoder, a chunk translator and an encoder into bytes in, bytes out.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from .types import JsonObject, TranslationError

SSE_DONE = b"data: [DONE]\n\n"
"""OpenAI's end-of-stream sentinel."""

Framing = Literal["sse", "ndjson"]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: ``data`` lines joined by newlines, as the WHATWG spec says."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    @property
    def is_done(self) -> bool:
        """OpenAI's ``data: [DONE]``, which carries no JSON."""
        return self.data.strip() == "[DONE]"

    def json(self) -> JsonObject:
        """The data as a JSON object; anything else is a ``TranslationError``."""
        try:
            value = json.loads(self.data)
        except json.JSONDecodeError as exc:
            raise TranslationError("sse.data", f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TranslationError("sse.data", "expected a JSON object")
        return value


class _Lines:
    """Incremental bytes -> complete lines, splitting on CRLF, LF or CR."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._scanned = 0

    def feed(self, data: bytes) -> list[str]:
        try:
            self._buffer += self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise TranslationError("stream", f"not UTF-8: {exc}") from None
        return self._split(final=False)

    def finish(self) -> list[str]:
        try:
            self._buffer += self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise TranslationError("stream", f"not UTF-8: {exc}") from None
        lines = self._split(final=True)
        if self._buffer:
            lines.append(self._buffer)
            self._buffer, self._scanned = "", 0
        return lines

    def _split(self, *, final: bool) -> list[str]:
        lines: list[str] = []
        buf = self._buffer
        start = 0
        i = self._scanned  # resume where the last scan stopped: no rescans of a long line
        while i < len(buf):
            ch = buf[i]
            if ch == "\n":
                lines.append(buf[start:i])
                start = i + 1
            elif ch == "\r":
                if i + 1 == len(buf) and not final:
                    break  # a CR at the end may be half of a CRLF still in flight
                lines.append(buf[start:i])
                if i + 1 < len(buf) and buf[i + 1] == "\n":
                    i += 1
                start = i + 1
            i += 1
        self._buffer = buf[start:]
        self._scanned = i - start
        return lines


class SSEDecoder:
    """Incremental SSE parser: bytes in, dispatched ``SSEEvent``s out."""

    def __init__(self) -> None:
        self._lines = _Lines()
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._first = True

    def feed(self, data: bytes) -> list[SSEEvent]:
        return self._process(self._lines.feed(data))

    def finish(self) -> list[SSEEvent]:
        """Flush at EOF; unlike a browser, a last event missing its blank line is dispatched."""
        events = self._process(self._lines.finish())
        events.extend(self._dispatch())
        return events

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for raw in lines:
            line = raw
            if self._first:
                line = line.removeprefix("\ufeff")
                self._first = False
            if not line:
                events.extend(self._dispatch())
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self._id = value
            elif name == "retry" and value.isdigit():
                self._retry = int(value)
        return events

    def _dispatch(self) -> list[SSEEvent]:
        data, event = self._data, self._event
        self._data, self._event = [], None
        if not data:
            return []
        return [SSEEvent("\n".join(data), event=event, id=self._id, retry=self._retry)]


def parse_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events from already-split lines (no line terminators), e.g. ``httpx``'s ``iter_lines``."""
    decoder = SSEDecoder()
    for line in lines:
        yield from decoder.feed(line.encode() + b"\n")
    yield from decoder.finish()


def encode_sse(obj: JsonObject | str, event: str | None = None) -> bytes:
    """One event: a JSON object (compact, one line) or raw text, optionally named."""
    text = (
        obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    )
    head = f"event: {event}\n" if event is not None else ""
    body = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}{body}\n".encode()


class NDJSONDecoder:
    """Incremental NDJSON parser: bytes in, JSON objects out; blank lines are skipped."""

    def __init__(self) -> None:
        self._lines = _Lines()
        self._count = 0

    def feed(self, data: bytes) -> list[JsonObject]:
        return [self._parse(line) for line in self._lines.feed(data) if line.strip()]

    def finish(self) -> list[JsonObject]:
        return [self._parse(line) for line in self._lines.finish() if line.strip()]

    def _parse(self, line: str) -> JsonObject:
        where = f"ndjson[{self._count}]"
        self._count += 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TranslationError(where, f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TranslationError(where, "expected a JSON object")
        return value


def parse_ndjson(lines: Iterable[str | bytes]) -> Iterator[JsonObject]:
    """Objects from already-split lines."""
    decoder = NDJSONDecoder()
    for line in lines:
        yield from decoder.feed((line if isinstance(line, bytes) else line.encode()) + b"\n")
    yield from decoder.finish()


def encode_ndjson(obj: JsonObject) -> bytes:
    """One object on one line, as Ollama writes it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class ChunkTranslator(Protocol):
    """Every stream translator here: stateful, fed one decoded chunk at a time."""

    def feed(self, event: JsonObject) -> list[JsonObject]: ...

    def finish(self) -> list[JsonObject]: ...


class StreamPipe:
    """Backend bytes -> decoded chunks -> translator -> client bytes, incrementally.

    ``source``/``target`` name the framing on each side. An SSE source skips ``[DONE]`` (the end
    is the end of the bytes); an SSE target ends with ``data: [DONE]`` when ``done_marker`` is set
    (OpenAI clients expect it; Anthropic's own streams have none).
    """

    def __init__(
        self,
        translator: ChunkTranslator,
        *,
        source: Framing,
        target: Framing,
        done_marker: bool = True,
    ) -> None:
        self._translator = translator
        self._source = source
        self._target = target
        self._done_marker = done_marker and target == "sse"
        self._sse = SSEDecoder()
        self._ndjson = NDJSONDecoder()

    def feed(self, data: bytes) -> bytes:
        return self._encode(self._translate(self._decode(data, final=False)))

    def finish(self) -> bytes:
        out = self._translate(self._decode(b"", final=True))
        out.extend(self._translator.finish())
        tail = SSE_DONE if self._done_marker else b""
        return self._encode(out) + tail

    def _decode(self, data: bytes, *, final: bool) -> list[JsonObject]:
        if self._source == "ndjson":
            objs = self._ndjson.feed(data)
            return objs + self._ndjson.finish() if final else objs
        events = self._sse.feed(data)
        if final:
            events += self._sse.finish()
        return [e.json() for e in events if not e.is_done]

    def _translate(self, chunks: list[JsonObject]) -> list[JsonObject]:
        out: list[JsonObject] = []
        for chunk in chunks:
            out.extend(self._translator.feed(chunk))
        return out

    def _encode(self, chunks: list[JsonObject]) -> bytes:
        encode = encode_sse if self._target == "sse" else encode_ndjson
        return b"".join(encode(c) for c in chunks)
