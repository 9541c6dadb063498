"""Anthropic's Messages API (``POST /v1/messages``), the paid fallback of most lanes.

Chat only: Anthropic has no legacy completions and no embeddings, so those fail over at once
(``unsupported``, without a dial). A chat request is translated to a Messages request, the
answer back to a ``chat.completion`` (stream: Anthropic's typed events to OpenAI chunks, tool
calls fragment for fragment), and Anthropic's token counts become OpenAI ``usage`` so the
request's cost is counted like any other.
"""

from __future__ import annotations

import functools

from ..translate import (
    ANTHROPIC_VERSION,
    ChatStreamAnthropicToOpenAI,
    TranslationError,
    chat_request_openai_to_anthropic,
    chat_response_anthropic_to_openai,
)
from . import transport
from .base import BackendError, Reply, StreamReply, UpstreamRequest


class AnthropicBackend(transport.Host):
    """Anthropic's API, or anything that speaks Messages (a proxy, a compatible server)."""

    @staticmethod
    def base_url(url: str) -> str:
        """The Messages endpoint itself (a trailing /v1 in the document's URL is accepted)."""
        return url + ("/messages" if url.endswith("/v1") else "/v1/messages")

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """Translate, POST, translate back; BackendError for whatever should fail over."""
        if request.endpoint != "chat/completions":
            raise BackendError("unsupported", f"Anthropic serves chat only, not {request.endpoint}")
        try:
            body = chat_request_openai_to_anthropic(request.body)
        except TranslationError as e:
            raise BackendError("unsupported", f"Anthropic cannot take {e}", param=e.field) from None
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **request.headers,
        }
        if self._token:
            headers["x-api-key"] = self._token
        options = request.body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        call = transport.Exchange(
            url=self._base,
            body=body,
            headers=headers,
            whole=chat_response_anthropic_to_openai,
            stream=functools.partial(ChatStreamAnthropicToOpenAI, include_usage=include_usage)
            if request.stream
            else None,
            framing="sse",
        )
        return await transport.exchange(self._session, call, self._timeout)
