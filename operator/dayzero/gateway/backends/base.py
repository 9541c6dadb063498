"""The seam every backend plugs into.

The app speaks OpenAI's wire format to its core; a backend takes an OpenAI-shaped request and
returns an OpenAI-shaped answer, either whole (``Reply``) or as OpenAI SSE bytes
(``StreamReply``). An Ollama or Anthropic backend translates inside ``send`` (with
``dayzero.gateway.translate``), so routing, fallback and metrics never see another protocol. A
backend raises ``BackendError`` for anything the next backend should be tried for; a 4xx answer
of the upstream is a ``Reply`` (OpenAI-shaped) the client gets as it is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Endpoint = Literal["chat/completions", "completions", "embeddings"]
FailureReason = Literal[
    "timeout", "connect", "upstream_5xx", "upstream_error", "bad_response", "unsupported"
]
"""Why a backend failed: ``upstream_error`` is an error event inside a 200 stream,
``unsupported`` a request this backend cannot express (it was not dialed)."""


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
    usage: dict[str, Any] | None = None
    """OpenAI-shaped token counts that a translating stream fills in as it ends; None for a
    relayed stream, whose bytes the app scans for the usage chunk instead."""


class BackendError(Exception):
    """The backend failed in a way the next backend should be tried for."""

    def __init__(self, reason: FailureReason, detail: str, *, param: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FailureReason = reason
        self.detail = detail
        self.param = param
        """For ``unsupported``: the request field this backend cannot express."""

    @property
    def trips_breaker(self) -> bool:
        """Timeouts and connection errors count toward opening the host's circuit."""
        return self.reason in ("timeout", "connect")

    @property
    def dialed(self) -> bool:
        """Whether the host was reached at all (``unsupported`` is decided before a dial)."""
        return self.reason != "unsupported"


class Backend(Protocol):
    """What the app needs of a backend."""

    name: str
    host: str

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """Answer ``request``; BackendError when the next backend should be tried."""
        ...
