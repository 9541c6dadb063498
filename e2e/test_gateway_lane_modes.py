"""Async and shadow lanes across real `dayzero gateway` processes that share one redis-server.

No control plane: real processes on loopback. An async job survives the gateway process that took
it being killed (SIGKILL mid-request): the restarted process finds the lapsed lease and runs the
job from the lane's next backend, and another replica reads the same result. Three gateways in
front of one legacy path count the shadow agreement together. Every upstream is on 127.0.0.1 and
every gateway runs with --loopback-only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fakes.engine import FakeEngine
from gateway_fleet import Fleet, RedisServer, free_port, running_redis

DAYZERO = Path(sys.executable).parent / "dayzero"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


class StallingEngine:
    """An OpenAI upstream that takes every request and never answers (until closed)."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                engine.calls += 1
                engine.release.wait(60)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class GatewayProcess:
    """One `dayzero gateway` process in its own process group, logging to a file."""

    def __init__(self, config: Path, redis: RedisServer, name: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(DAYZERO),
            "gateway",
            "--config",
            str(config),
            "--port",
            str(self.port),
            "--loopback-only",
            "--redis-url",
            redis.url,
            "--replica",
            name,
            "--async-lease-seconds",
            "1",
            "--residency-seconds",
            "0",
            "--warm-seconds",
            "0",
        ]
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(f"{self.url} ready", self.ready, 30)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown hook runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(what: str, check: Callable[[], object], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def one_gateway(
    doc: dict[str, Any], redis: RedisServer, tmp: Path, name: str
) -> Iterator[GatewayProcess]:
    """One gateway this test may SIGKILL and restart (the fleet helper only stops them all)."""
    config = tmp / "routing.yaml"
    config.write_text(yaml.safe_dump(doc))
    gateway = GatewayProcess(config, redis, name, tmp)
    try:
        yield gateway.start()
    finally:
        gateway.stop()


def document(backends: list[dict[str, Any]], lanes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": lanes,
        "backends": backends,
        "keys": {"enabled": False},
    }


def test_async_job_survives_a_killed_gateway(tmp_path: Path) -> None:
    stalling, fast = StallingEngine(), FakeEngine("fast-engine")
    doc = document(
        [
            {"name": "stalls", "url": stalling.url, "timeoutSeconds": 120},
            {"name": "fast", "url": fast.url, "timeoutSeconds": 10},
        ],
        [{"name": "deep", "model": "deep", "mode": "async", "backends": ["stalls", "fast"]}],
    )
    try:
        with running_redis() as redis, one_gateway(doc, redis, tmp_path, "gw-a") as gw_a:
            sync = httpx.post(gw_a.url + "/v1/chat/completions", json={**CHAT, "model": "deep"})
            assert sync.status_code == 409
            assert "/v1/async/chat/completions" in sync.json()["error"]["message"]
            taken = httpx.post(
                gw_a.url + "/v1/async/chat/completions", json={**CHAT, "model": "deep"}
            )
            assert taken.status_code == 202
            job = taken.json()["id"]
            wait_for("the job on the stalling backend", lambda: stalling.calls == 1, 10)
            assert httpx.get(f"{gw_a.url}/v1/async/{job}").json()["status"] == "running"
            gw_a.kill()
            restarted = GatewayProcess(tmp_path / "routing.yaml", redis, "gw-a", tmp_path)
            restarted.port, restarted.url = gw_a.port, gw_a.url  # the same replica, restarted
            restarted.args[restarted.args.index("--port") + 1] = str(gw_a.port)
            restarted.start()
            try:

                def finished() -> dict[str, Any] | None:
                    body: dict[str, Any] = httpx.get(f"{restarted.url}/v1/async/{job}").json()
                    return body if body["status"] in ("succeeded", "failed") else None

                done = wait_for("the job to finish after the restart", finished, 30)
                assert done["status"] == "succeeded"
                assert done["attempts"] == 2
                assert done["backend"] == "fast"
                assert (
                    done["result"]["choices"][0]["message"]["content"] == "hello from fast-engine"
                )
                assert stalling.calls == 1  # the retry started at the next backend
                (tmp_path / "b").mkdir()
                with Fleet(doc, tmp_path / "b", redis_url=redis.url, replicas=1) as other_replica:
                    _, _, other = other_replica.get(0, f"/v1/async/{job}")
                    assert other["status"] == "succeeded"
                    assert other["result"] == done["result"]
            finally:
                restarted.stop()
    finally:
        stalling.close()
        fast.close()


def test_shadow_agreement_counted_by_three_gateways(tmp_path: Path) -> None:
    legacy, a, b = FakeEngine("legacy"), FakeEngine("a"), FakeEngine("b")
    doc = document(
        [
            {"name": "a", "url": a.url, "model": "llama-a"},
            {"name": "b", "url": b.url, "model": "llama-b"},
        ],
        [
            {
                "name": "chat",
                "model": "chat",
                "aliases": ["llama-a", "llama-b"],
                "mode": "shadow",
                "legacyUrl": legacy.url,
                "backends": ["a", "b"],
            }
        ],
    )
    try:
        with (
            running_redis() as redis,
            Fleet(doc, tmp_path, redis_url=redis.url, extra_args=["--replica", "gw-{i}"]) as fleet,
        ):
            # The legacy path echoes the model it was asked for: llama-a agrees with the
            # decision (backend a, model llama-a); llama-b does not.
            replies = fleet.post_many(
                [
                    (
                        i % 3,
                        "/v1/chat/completions",
                        {**CHAT, "model": "llama-a" if i % 3 else "llama-b"},
                        None,
                    )
                    for i in range(30)
                ]
            )
            for status, _, body in replies:
                assert status == 200
                assert body["choices"][0]["message"]["content"] == "hello from legacy"
            assert legacy.calls == 30
            assert a.calls == 0
            assert b.calls == 0
            for i in range(3):
                # Each replica writes its records just after its answers: wait for the last.
                shadow = wait_for(
                    "every decision in Redis",
                    lambda i=i: (
                        (s := fleet.get(i, "/v1/models/status")[2]["lanes"][0]["shadow"])[
                            "decisions"
                        ]
                        == 30
                        and s
                    ),
                    5,
                )
                assert shadow["agree"] == 20
                assert shadow["disagree"] == 10
                assert shadow["agreementRate"] == pytest.approx(20 / 30, abs=1e-4)
            _, _, recent = fleet.get(0, "/v1/shadow/decisions")
            assert {d["replica"] for d in recent["decisions"]} == {"gw-0", "gw-1", "gw-2"}
            _, _, metrics = fleet.get(1, "/metrics")
            assert (
                'dayzero_gateway_shadow_decisions_total{agreement="agree",lane="chat"}' in metrics
            )
            log = json.loads(
                next(
                    line
                    for line in (tmp_path / "gateway-0.log").read_text().splitlines()
                    if '"shadow"' in line
                )
            )
            assert log["shadow"]["backend"] == "a"
    finally:
        for engine in (legacy, a, b):
            engine.close()
