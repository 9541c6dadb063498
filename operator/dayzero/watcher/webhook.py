"""Hugging Face Hub webhooks: a push from the Hub starts a poll at once; polling stays the net.

The Hub POSTs a JSON event (``event.action``/``event.scope``, ``repo.type``/``repo.name``) with
the secret the webhook was created with in ``X-Webhook-Secret``. A valid event for a model of a
whitelisted org triggers one ordinary poll run, so judging, acting, the seen-set and the
no-duplicate guarantee are the CronJob's own; events that arrive during a run coalesce into one
more run after it. The payload itself is never trusted beyond choosing whether to poll.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000
SECRET_HEADER = "x-webhook-secret"  # noqa: S105 - a header name, not a secret


class Coalescer:
    """Runs ``job`` in a background thread; triggers during a run become one more run."""

    def __init__(self, job: Callable[[], None]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self.runs = 0
        self.idle = threading.Event()
        self.idle.set()

    def trigger(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self.idle.clear()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                self._job()
            except (
                Exception
            ):  # a failed run must not stop later webhooks (logged with its traceback)
                log.exception("watcher run failed")
            with self._lock:
                self.runs += 1
                if not self._again:
                    self._running = False
                    self.idle.set()
                    return
                self._again = False


def judge_event(
    headers: Mapping[str, str], body: bytes, *, secret: str, orgs: Collection[str]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) for one delivery; 202 means a poll should run."""
    given = headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return 401, {"error": "bad or missing X-Webhook-Secret"}
    try:
        event = json.loads(body)
        repo = event["repo"]
        kind, name = str(repo.get("type", "")), str(repo["name"])
        action = str(event.get("event", {}).get("action", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return 400, {"error": "not a Hub webhook payload"}
    if kind != "model":
        return 200, {"ignored": f"{kind} {name}: not a model"}
    if name.split("/", 1)[0] not in orgs:
        return 200, {"ignored": f"{name}: org not in hub.orgs"}
    if action == "delete":
        return 200, {"ignored": f"{name}: deleted"}
    return 202, {"polling": name}


def make_server(
    host: str, port: int, *, secret: str, orgs: Collection[str], trigger: Callable[[], None]
) -> ThreadingHTTPServer:
    """An HTTP server answering ``POST /webhooks/hub`` (and ``GET /healthz``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200 if self.path == "/healthz" else 404, {"ok": self.path == "/healthz"})

        def do_POST(self) -> None:
            if self.path != "/webhooks/hub":
                self._answer(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": "payload too large"})
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = judge_event(headers, body, secret=secret, orgs=orgs)
            if status == 202:
                trigger()
            self._answer(status, answer)

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
