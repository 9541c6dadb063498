"""A concurrent, streaming OpenAI-compatible chat client that measures what the gates judge.

Every request streams, so time-to-first-token and per-token time are measured, not estimated.
A failed request is an ``Outcome`` too (status code, error, when it started): the stability
suite needs the 503s and 429s on the run's timeline, not an exception that ends the run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

THROTTLED = frozenset({429, 503})


@dataclass
class ToolCall:
    """One tool call as streamed: the arguments stay the raw string the model produced."""

    name: str = ""
    arguments: str = ""
    id: str = ""


@dataclass
class Outcome:
    """What one request did. Times are seconds; ``started`` is from the client's creation."""

    started: float
    status: int = 0
    """HTTP status; 0 when no answer came (connection error, timeout)."""
    error: str | None = None
    ttft: float | None = None
    """Time to the first content or tool-call chunk."""
    total: float | None = None
    chunks: int = 0
    """Content-bearing chunks received (a token each on the servers we know)."""
    text: str = ""
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    completion_tokens: int | None = None
    """The server's usage figure, when it sent one."""
    reported_prompt_tokens: int | None = None
    """The server's usage figure, when it sent one."""
    prompt_chars: int = 0
    """Characters of the request's messages, to estimate its tokens without usage."""

    @property
    def prompt_tokens(self) -> int:
        """Input tokens: the server's usage, else about four characters a token."""
        if self.reported_prompt_tokens is not None:
            return self.reported_prompt_tokens
        return -(-self.prompt_chars // 4)

    @property
    def output_tokens(self) -> int:
        """Output tokens: the server's usage, else one a chunk (as the servers we know send)."""
        return self.completion_tokens if self.completion_tokens is not None else self.chunks

    @property
    def ok(self) -> bool:
        """A 200 that streamed to its end."""
        return self.status == 200 and self.error is None

    @property
    def per_token(self) -> float | None:
        """Mean time between chunks after the first (inter-token latency)."""
        if self.ttft is None or self.total is None or self.chunks < 2:
            return None
        return (self.total - self.ttft) / (self.chunks - 1)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle for every client (the
    targets, the baseline and the judge each have one) costs 0.1-0.4 s apiece."""
    return httpx.create_ssl_context()


class ChatClient:
    """Sends chat completions to ``base_url`` (ending in ``/v1``) with at most ``concurrency``
    in flight. ``transport`` lets tests swap the network for httpx's MockTransport."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        """Every request this client made, in start order: the run's timeline."""
        self._origin = time.monotonic()
        self._limit = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=_tls(),
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def elapsed(self) -> float:
        """Seconds since the client was created (the run's clock)."""
        return time.monotonic() - self._origin

    async def chat(self, body: dict[str, Any]) -> Outcome:
        """One streamed chat completion; never raises for what the server or network did."""
        async with self._limit:
            outcome = Outcome(started=self.elapsed(), prompt_chars=_chars(body))
            self.outcomes.append(outcome)
            payload = {"model": self.model, **body, "stream": True}
            start = time.monotonic()
            try:
                # The overall bound: httpx's timeout is per read, a slow drip could outlive it.
                async with asyncio.timeout(self.timeout):
                    await self._stream(payload, outcome, start)
            except TimeoutError:
                outcome.error = f"no complete answer within {self.timeout:g}s"
            except httpx.HTTPError as e:
                outcome.error = f"{type(e).__name__}: {e}"
            outcome.total = time.monotonic() - start
            return outcome

    async def chat_many(self, bodies: Sequence[dict[str, Any]]) -> list[Outcome]:
        """Requests concurrently, bounded by the client's concurrency; outcomes in input order."""
        return list(await asyncio.gather(*(self.chat(b) for b in bodies)))

    async def _stream(self, payload: dict[str, Any], outcome: Outcome, start: float) -> None:
        async with self._http.stream("POST", "/chat/completions", json=payload) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                outcome.error = f"HTTP {response.status_code}: {body[:200]}"
                return
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignores "stream": take the whole answer as one chunk.
                _apply_message(outcome, json.loads(await response.aread()), start)
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    _apply_chunk(outcome, json.loads(data), start)
                except (ValueError, TypeError, AttributeError) as e:
                    outcome.error = f"malformed stream chunk: {e}: {data[:120]}"
                    return


def _apply_chunk(outcome: Outcome, chunk: dict[str, Any], start: float) -> None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        _apply_usage(outcome, usage)
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        got = False
        if delta.get("content"):
            outcome.text += delta["content"]
            got = True
        for call in delta.get("tool_calls") or []:
            index = int(call.get("index", len(outcome.tool_calls)))
            while len(outcome.tool_calls) <= index:
                outcome.tool_calls.append(ToolCall())
            merged = outcome.tool_calls[index]
            fn = call.get("function") or {}
            merged.id = call.get("id") or merged.id
            merged.name += fn.get("name") or ""
            merged.arguments += _arguments(fn.get("arguments"))
            got = True
        if got:
            outcome.chunks += 1
            if outcome.ttft is None:
                outcome.ttft = time.monotonic() - start
        if choice.get("finish_reason"):
            outcome.finish_reason = choice["finish_reason"]


def _apply_message(outcome: Outcome, answer: dict[str, Any], start: float) -> None:
    outcome.ttft = time.monotonic() - start
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        outcome.text += message.get("content") or ""
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            outcome.tool_calls.append(
                ToolCall(
                    fn.get("name") or "", _arguments(fn.get("arguments")), call.get("id") or ""
                )
            )
        outcome.finish_reason = choice.get("finish_reason")
    outcome.chunks = 1
    _apply_usage(outcome, answer.get("usage") or {})


def _arguments(value: object) -> str:
    """Arguments as the raw string; a server that sends an object gets it re-encoded."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _apply_usage(outcome: Outcome, usage: dict[str, Any]) -> None:
    if usage.get("completion_tokens") is not None:
        outcome.completion_tokens = int(usage["completion_tokens"])
    if usage.get("prompt_tokens") is not None:
        outcome.reported_prompt_tokens = int(usage["prompt_tokens"])


def _chars(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content") or "")) for m in body.get("messages") or [])
