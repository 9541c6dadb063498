"""Request headers: W3C trace context and the dayzero headers, sanitized before any reuse.

Header values end up in response headers, logs and metric labels; only a bounded, plain character
set of them is ever reflected.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]")
MAX_VALUE = 64


def clean(value: str | None) -> str | None:
    """The value with anything but ``[A-Za-z0-9._:/-]`` dropped, at most 64 characters."""
    if value is None:
        return None
    cleaned = _UNSAFE.sub("", value)[:MAX_VALUE]
    return cleaned or None


@dataclass(frozen=True)
class Trace:
    """The request's trace: the client's trace id (or a new one) and the gateway's span."""

    trace_id: str
    span_id: str
    flags: str

    @property
    def traceparent(self) -> str:
        """``traceparent`` for the upstream call and the response."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def trace_from(traceparent: str | None) -> Trace:
    """Continue the client's trace, or start one when the header is absent or malformed."""
    match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if match and match.group(1) != "0" * 32:
        return Trace(match.group(1), secrets.token_hex(8), match.group(3))
    return Trace(secrets.token_hex(16), secrets.token_hex(8), "01")
