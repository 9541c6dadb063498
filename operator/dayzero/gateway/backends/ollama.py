"""An Ollama host, spoken to in its own API (``/api/chat``, ``/api/generate``, ``/api/embed``).

The app hands every backend an OpenAI-shaped request; this one translates it to Ollama's
native API (the one every Ollama version serves in full, beside ``/api/tags`` and ``/api/ps``)
and translates the answer back: JSON to a ``chat.completion``, NDJSON to OpenAI SSE. Failure
rules are the shared ones of ``transport``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..translate import (
    ChatStreamOllamaToOpenAI,
    CompletionStreamOllamaToOpenAI,
    JsonObject,
    TranslationError,
    chat_request_openai_to_ollama,
    chat_response_ollama_to_openai,
    completion_request_openai_to_ollama,
    completion_response_ollama_to_openai,
    embed_request_openai_to_ollama,
    embed_response_ollama_to_openai,
)
from . import transport
from .base import BackendError, Reply, StreamReply, UpstreamRequest

Convert = Callable[[JsonObject], JsonObject]
"""A pure translation of one JSON payload."""

PS_TIMEOUT_SECONDS = 2.0
"""The longest wait for a host's ``/api/ps`` (a status read, not a generation)."""


_GENERATIONS: dict[
    str, tuple[str, Convert, Convert, Callable[..., transport.CountingTranslator]]
] = {
    "chat/completions": (
        "/api/chat",
        chat_request_openai_to_ollama,
        chat_response_ollama_to_openai,
        ChatStreamOllamaToOpenAI,
    ),
    "completions": (
        "/api/generate",
        completion_request_openai_to_ollama,
        completion_response_ollama_to_openai,
        CompletionStreamOllamaToOpenAI,
    ),
}
"""OpenAI endpoint -> Ollama path, request and answer translators, stream translator."""


class OllamaBackend(transport.Host):
    """One Ollama host."""

    @staticmethod
    def base_url(url: str) -> str:
        """The root: the native API; a URL written for Ollama's OpenAI shim ends in /v1."""
        return url.removesuffix("/v1")

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """Translate, POST, translate back; BackendError for whatever should fail over."""
        return await transport.exchange(self._session, self._exchange(request), self._timeout)

    def _exchange(self, request: UpstreamRequest) -> transport.Exchange:
        body = request.body
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        # Ollama behind an authenticating proxy, or ollama.com, takes a bearer token.
        headers = {"Content-Type": "application/json", **request.headers, **self._bearer()}
        try:
            if request.endpoint in _GENERATIONS:
                path, to_ollama, to_openai, stream = _GENERATIONS[request.endpoint]
                return transport.Exchange(
                    url=self._base + path,
                    body=to_ollama(body),
                    headers=headers,
                    whole=to_openai,
                    stream=functools.partial(stream, include_usage=include_usage)
                    if request.stream
                    else None,
                    framing="ndjson",
                )
            encoding = str(body.get("encoding_format") or "float")
            return transport.Exchange(
                url=f"{self._base}/api/embed",
                body=embed_request_openai_to_ollama(body),
                headers=headers,
                whole=lambda answer: embed_response_ollama_to_openai(
                    answer, encoding_format=encoding
                ),
            )
        except TranslationError as e:
            raise BackendError("unsupported", f"Ollama cannot take {e}", param=e.field) from None

    async def tags(self) -> JsonObject:
        """``GET /api/tags``: the models the host has."""
        return await self._get("/api/tags", self._timeout)

    async def ps(self, seconds: float = PS_TIMEOUT_SECONDS) -> JsonObject:
        """``GET /api/ps``: the models the host has loaded, within ``seconds``."""
        return await self._get("/api/ps", min(seconds, self._timeout))

    async def _get(self, path: str, seconds: float) -> JsonObject:
        return await transport.get_json(self._session, self._base + path, self._bearer(), seconds)
