"""A fake GitHub REST API on loopback: ``GET /repos/{owner}/{repo}/releases`` with ETags.

Enough for the watcher: releases newest first, a strong ``ETag`` over the page, ``304 Not
Modified`` when ``If-None-Match`` still matches (as GitHub answers, without counting it against
the rate limit), and the ``X-RateLimit-*`` headers. Every request is logged.

    with FakeGitHub() as gh:
        gh.publish("vllm-project/vllm", "v0.99.0", body="New models: FooForCausalLM")
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_RELEASES = re.compile(r"^/repos/(?P<repo>[^/]+/[^/]+)/releases$")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    if_none_match: str | None
    status: int


class FakeGitHub:
    """The server: a context manager serving on ``url`` while open; thread-safe."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._releases: dict[str, list[dict[str, Any]]] = {}
        self._log: list[Request] = []
        self.fail_with: int | None = None
        """Answer every request with this status (e.g. 503) while set."""
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def publish(self, repo: str, tag: str, *, body: str = "", prerelease: bool = False) -> None:
        """Add a release (newest first, as GitHub lists them)."""
        with self._lock:
            rows = self._releases.setdefault(repo, [])
            rows.insert(
                0,
                {
                    "id": len(rows) + 1,
                    "tag_name": tag,
                    "name": tag,
                    "body": body,
                    "draft": False,
                    "prerelease": prerelease,
                    "published_at": "2026-01-01T00:00:00Z",
                },
            )

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def start(self) -> FakeGitHub:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake GitHub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _answer(self, path: str, if_none_match: str | None) -> tuple[int, bytes, dict[str, str]]:
        limits = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59"}
        if self.fail_with is not None:
            return self.fail_with, b'{"message": "fault"}', limits
        match = _RELEASES.match(path)
        if match is None:
            return 404, b'{"message": "Not Found"}', limits
        with self._lock:
            rows = list(self._releases.get(match["repo"], []))
        body = json.dumps(rows).encode()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = limits | {"ETag": etag}
        if if_none_match == etag:
            return 304, b"", headers
        return 200, body, headers


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            etag = self.headers.get("If-None-Match")
            status, body, headers = fake._answer(path, etag)
            with fake._lock:
                fake._log.append(Request("GET", path, etag, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
