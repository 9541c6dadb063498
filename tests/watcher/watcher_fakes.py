"""Helpers of the watcher tests: fixture configs and a loopback webhook receiver.

e2e/ goes on sys.path here so that the fakes import as ``fakes`` (it is package-less).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dayzero.kube import KubeError

E2E = Path(__file__).resolve().parents[2] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

FIXTURES = Path(__file__).resolve().parents[1] / "planner" / "fixtures"
LLAMA_8B = {"BF16": 8_030_261_248}


def fixture_config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


class Receiver:
    """A loopback HTTP server that records every POSTed JSON body (Slack, CI webhooks)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.bodies.append(json.loads(raw))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class MemoryKube:
    """Create/get/patch in memory, with the API server's 409 on a second create."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.creates = 0

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        self.creates += 1
        if key in self.objects:
            raise KubeError(409, "AlreadyExists", f"{meta['name']} already exists")
        stored = obj | {"metadata": meta | {"resourceVersion": "1"}}
        self.objects[key] = stored
        return stored

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[(kind, namespace, name)]
        version = obj["metadata"]["resourceVersion"]
        if patch.get("metadata", {}).get("resourceVersion") not in (None, version):
            raise KubeError(409, "Conflict", "the object has been modified")
        obj["data"] = patch.get("data", obj.get("data"))
        obj["metadata"]["resourceVersion"] = str(int(version) + 1)
        return obj
