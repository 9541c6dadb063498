"""The hub package's one error type: why the Hub could not tell us about a model.

huggingface-hub raises a dozen exception classes, and a connection error or a 429 can surface
wrapped in another one; the operator needs one of six reasons to write a condition, and whether
retrying can help. ``HubError.reason`` is that condition reason, so its spelling is part of the
API: a user's ``kubectl get`` shows it.
"""

from __future__ import annotations

from typing import Literal, get_args

HubErrorReason = Literal[
    "GatedRepo",
    "RepoNotFound",
    "RevisionNotFound",
    "RateLimited",
    "HubUnavailable",
    "InvalidMetadata",
]
"""Condition reasons, PascalCase: what went wrong, in the words a status condition uses."""

HUB_ERROR_REASONS: tuple[HubErrorReason, ...] = get_args(HubErrorReason)

# Retrying later can succeed without anyone changing the spec, a token or the repository.
_TRANSIENT: frozenset[HubErrorReason] = frozenset({"RateLimited", "HubUnavailable"})


class HubError(Exception):
    """The Hub refused, lacked or garbled what a plan needs; ``reason`` names which.

    ``message`` is for humans and never holds the token. ``retry_after`` is the number of seconds
    the Hub asked us to wait (``Retry-After`` or the ``RateLimit`` header), when it said.
    """

    def __init__(
        self, reason: HubErrorReason, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: HubErrorReason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Whether retrying with backoff can help (rate limits, outages)."""
        return self.reason in _TRANSIENT
