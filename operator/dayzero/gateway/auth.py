"""Client API keys: stored as sha256 hashes, compared in constant time.

Each key maps to a project (the project label of metrics, logs and budgets) and the lanes it may
use. The gateway never holds a key itself, only its hash, and never logs either.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from dayzero.api.routing import KeyEntry
from dayzero.api.v1alpha1.lane import RateLimitSpec

from .errors import GatewayError

LOCAL_PROJECT = "local"
KEY_ID_DIGITS = 12


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    project: str
    lanes: frozenset[str]
    admin: bool
    key_id: str = ""
    """The first 12 hex digits of the key's sha256, naming it in rate limits ("" without keys)."""
    rate_limit: RateLimitSpec | None = None
    """The key's own rate limit per lane."""

    def may_use(self, lane: str) -> bool:
        """Whether the key allows ``lane``."""
        return "*" in self.lanes or lane in self.lanes


ANONYMOUS = Principal(LOCAL_PROJECT, frozenset({"*"}), admin=True)


def bearer(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key`` (as Anthropic clients send it)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key and x_api_key.strip() else None


class KeyTable:
    """The key entries of one loaded document."""

    def __init__(self, entries: list[KeyEntry], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries = [(e.sha256.encode(), e) for e in entries]

    def authenticate(self, key: str | None) -> Principal:
        """The principal of ``key``; GatewayError 401 when missing or unknown."""
        if not self.enabled:
            return ANONYMOUS
        if key is None:
            raise GatewayError(
                401, "missing API key: send Authorization: Bearer <key>", code="missing_api_key"
            )
        digest = hashlib.sha256(key.encode()).hexdigest().encode()
        found: KeyEntry | None = None
        # Every entry is compared, with compare_digest, so timing says nothing about which matched.
        for stored, entry in self._entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = entry
        if found is None:
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        return Principal(
            found.project,
            frozenset(found.lanes),
            found.admin,
            key_id=found.sha256[:KEY_ID_DIGITS],
            rate_limit=found.rate_limit,
        )
