"""The seam every backend plugs into.

The app speaks OpenAI's wire format to clients; a backend takes an OpenAI-shaped request and
returns an OpenAI-shaped answer, either whole (``Reply``) or as raw SSE bytes (``StreamReply``).
An Ollama or Anthropic backend translates inside ``send`` (with ``dayzero.gateway.translate``)
and the app does not change. A backend raises ``BackendError`` for anything the next backend
should be tried for; a 4xx answer of the upstream is a ``Reply`` the client gets as it is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Endpoint = Literal["chat/completions", "completions", "embeddings"]
FailureReason = Literal["timeout", "connect", "upstream_5xx", "bad_response", "unsupported"]


@dataclass(frozen=True)
class UpstreamRequest:
    """One call to a backend, already routed."""

    endpoint: Endpoint
    body: dict[str, Any]
    """The client's body with ``model`` replaced by the backend's model name."""
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)
    """Headers to forward (traceparent)."""


@dataclass(frozen=True)
class Reply:
    """A complete answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    usage: dict[str, Any] | None = None


@dataclass
class StreamReply:
    """A streaming answer whose first chunk has arrived (so failover is over)."""

    first: bytes
    rest: AsyncGenerator[bytes, None]
    """The remaining chunks; closing it early drops the upstream connection."""
    status: int = 200
    content_type: str = "text/event-stream"


class BackendError(Exception):
    """The backend failed in a way the next backend should be tried for."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FailureReason = reason
        self.detail = detail

    @property
    def trips_breaker(self) -> bool:
        """Timeouts and connection errors count toward opening the host's circuit."""
        return self.reason in ("timeout", "connect")


class Backend(Protocol):
    """What the app needs of a backend."""

    name: str
    host: str

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """Answer ``request``; BackendError when the next backend should be tried."""
        ...
