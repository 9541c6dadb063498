"""OpenAI-style errors: every failure the gateway answers is one ``GatewayError``.

Clients written for OpenAI read ``error.message``, ``error.type``, ``error.param`` and
``error.code``; keeping that shape means their retry and error paths work unchanged.
"""

from __future__ import annotations

import json
from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class GatewayError(Exception):
    """An error answered to the client with an HTTP status and an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        """The OpenAI error type for the status."""
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request")

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}`` as OpenAI writes it."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json_bytes(self) -> bytes:
        """The body, encoded."""
        return json.dumps(self.body()).encode()

    def sse_event(self) -> bytes:
        """The error as one SSE event, ending a stream that already started."""
        return b"data: " + self.json_bytes() + b"\n\n"


def invalid(param: str, message: str) -> GatewayError:
    """400 naming the offending field."""
    return GatewayError(400, f"{param}: {message}", param=param, code="invalid_value")


def not_found(what: str, name: str, available: list[str]) -> GatewayError:
    """404 for an unknown model, lane or tag, listing what exists."""
    listed = ", ".join(sorted(available)) or "(none)"
    return GatewayError(
        404,
        f"unknown {what} {name!r}; available: {listed}",
        param="model" if what != "lane" else "X-Dayzero-Lane",
        code=f"{what}_not_found",
    )
