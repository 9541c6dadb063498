"""A fake OpenAI-compatible engine on loopback (what a vLLM pod answers), for e2e and the demo.

It answers ``POST /v1/chat/completions`` (JSON, or SSE when ``stream`` is set) with its own name
as the content, ``GET /v1/models`` and ``/health``, and can be told to fail with 500s, so routing,
promotion and rollback can be watched end to end without a GPU. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeEngine:
    """One engine: ``url`` is its base, ``failing`` makes it answer 500, ``calls`` counts."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.failing = False
        self.calls = 0
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = {"object": "list", "data": [{"id": engine.name, "object": "model"}]}
                    self._send(200, json.dumps(data).encode(), "application/json")
                else:
                    self._send(200, b"{}", "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                engine.calls += 1
                if engine.failing:
                    self._send(500, b'{"error": {"message": "engine failing"}}', "application/json")
                    return
                text = f"hello from {engine.name}"
                usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
                if body.get("stream"):
                    self._send(200, _sse(body.get("model"), text, usage), "text/event-stream")
                    return
                answer = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
                self._send(200, json.dumps(answer).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _sse(model: Any, text: str, usage: dict[str, int]) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    words = [w + " " for w in text.split()]
    out = chunk({"role": "assistant", "content": ""})
    out += b"".join(chunk({"content": w}) for w in words)
    out += chunk({}, "stop")
    tail = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return out + f"data: {json.dumps(tail)}\n\ndata: [DONE]\n\n".encode()
