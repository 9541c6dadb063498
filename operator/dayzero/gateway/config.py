"""Loading, validating and hot-reloading the routing document.

The watcher polls the file (mtime, size, then content hash) and swaps a new valid document in as one
immutable ``Snapshot``: a request reads the snapshot once when it starts, so a reload never changes
the rules under a request in flight. An invalid document is rejected, the last good one stays, and
the error is kept for ``/v1/models/status`` and the metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import TypeAdapter, ValidationError

from dayzero.api.errors import field_errors
from dayzero.api.routing import KeyEntry, Routing, RoutingBackend

from . import background
from .auth import KeyTable

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25


class ConfigError(Exception):
    """An invalid routing document; the message names the field."""


@dataclass(frozen=True)
class Snapshot:
    """One loaded document with everything derived from it."""

    doc: Routing
    hash: str
    keys: KeyTable
    backend_tokens: dict[str, str | None] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)
    """Backend -> why it cannot be used (its key's Secret is not mounted): skipped, not fatal."""

    def backend(self, name: str) -> RoutingBackend:
        """The backend named ``name`` (the document guarantees it exists)."""
        return next(b for b in self.doc.backends if b.name == name)


def host_of(url: str) -> str:
    """``scheme://netloc`` of a URL: the unit of a circuit breaker."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse(text: str) -> Routing:
    """Validate a routing document; ConfigError names the field."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("the document must be a mapping with apiVersion: dayzero.dev/routing-v1")
    try:
        return Routing.model_validate(data)
    except ValidationError as e:
        raise ConfigError(field_errors(e)) from None


_KEY_LIST = TypeAdapter(list[KeyEntry])


def _read_keys(path: str) -> list[KeyEntry]:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return _KEY_LIST.validate_python(data or [], by_alias=True)
    except OSError as e:
        raise ConfigError(f"keys.file: cannot read {path}: {e.strerror}") from None
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"keys.file: {path}: invalid key list: {e}") from None


def _token(doc: Routing, backend: RoutingBackend, index: int) -> str | None:
    ref = backend.api_key_ref
    if ref is None:
        return None
    where = f"backends[{index}].apiKeyRef"
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError(f"{where}.env: environment variable {ref.env} is not set")
        return value
    path = Path(doc.secrets_dir) / str(ref.secret) / ref.key
    try:
        return path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"{where}.secret: cannot read {path}: {e.strerror}") from None


# Where --loopback-only sends a backend that is not on loopback: a port nothing listens on, so
# the backend fails over as a connection error and nothing leaves the machine.
NOWHERE = "http://127.0.0.1:1"


def is_loopback(url: str) -> bool:
    """Whether a URL's host is localhost or a literal address in 127.0.0.0/8 (or ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def remap(doc: Routing, url_map: Mapping[str, str], *, loopback_only: bool = False) -> Routing:
    """The document with backend URLs whose prefix is mapped rewritten (an explicit override,
    e.g. in-cluster Service URLs to loopback in tests), and with ``loopback_only`` every other
    non-loopback backend pointed at a closed loopback port. The hash stays the text's."""
    if not url_map and not loopback_only:
        return doc
    backends = []
    for b in doc.backends:
        url = b.url
        for prefix, target in url_map.items():
            if url.startswith(prefix):
                url = target + url[len(prefix) :]
                break
        if loopback_only and not is_loopback(url):
            log.info(
                "backend %s: %s is not loopback; --loopback-only sends it nowhere", b.name, url
            )
            url = NOWHERE
        backends.append(b if url == b.url else b.model_copy(update={"url": url}))
    return doc.model_copy(update={"backends": backends})


def load_text(
    text: str, url_map: Mapping[str, str] | None = None, *, loopback_only: bool = False
) -> Snapshot:
    """A snapshot from the document's text: validated, keys and backend tokens resolved."""
    doc = remap(parse(text), url_map or {}, loopback_only=loopback_only)
    entries = list(doc.keys.entries)
    if doc.keys.file:
        entries += _read_keys(doc.keys.file)
    tokens: dict[str, str | None] = {}
    unusable: dict[str, str] = {}
    for i, b in enumerate(doc.backends):
        # One backend's missing key must not stop every lane: it is skipped with the reason.
        try:
            tokens[b.name] = _token(doc, b, i)
        except ConfigError as e:
            tokens[b.name] = None
            unusable[b.name] = str(e)
            log.warning("backend %s is unusable: %s", b.name, e)
    return Snapshot(
        doc=doc,
        hash=hashlib.sha256(text.encode()).hexdigest()[:16],
        keys=KeyTable(entries, enabled=doc.keys.enabled),
        backend_tokens=tokens,
        unusable=unusable,
    )


def load_file(
    path: str | Path, url_map: Mapping[str, str] | None = None, *, loopback_only: bool = False
) -> Snapshot:
    """A snapshot from a file; ConfigError when it cannot be read or is invalid."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    return load_text(text, url_map, loopback_only=loopback_only)


class ConfigWatcher:
    """Holds the current snapshot and swaps in valid changes of the file."""

    def __init__(
        self,
        path: str | Path,
        *,
        poll_seconds: float = POLL_SECONDS,
        on_error: Callable[[str], None] | None = None,
        on_swap: Callable[[Snapshot], None] | None = None,
        url_map: Mapping[str, str] | None = None,
        loopback_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.url_map = dict(url_map or {})
        self.loopback_only = loopback_only
        self.poll_seconds = poll_seconds
        self.current = load_file(self.path, self.url_map, loopback_only=loopback_only)
        self.last_error: str | None = None
        self._stamp = self._stat()
        self._on_error = on_error
        self._on_swap = on_swap
        self._task: asyncio.Task[None] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Reload if the file changed; True when a new document was swapped in."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            text = self.path.read_text()
            if hashlib.sha256(text.encode()).hexdigest()[:16] == self.current.hash:
                self.last_error = None
                return False
            snapshot = load_text(text, self.url_map, loopback_only=self.loopback_only)
        except (OSError, ConfigError) as e:
            self.last_error = str(e)
            log.warning("routing document rejected, keeping %s: %s", self.current.hash, e)
            if self._on_error:
                self._on_error(self.last_error)
            return False
        self.current = snapshot
        self.last_error = None
        log.info("routing document %s loaded", snapshot.hash)
        if self._on_swap:
            self._on_swap(snapshot)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            self.check()

    def start(self) -> None:
        """Start polling on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling."""
        await background.cancel(self._task)
        self._task = None
