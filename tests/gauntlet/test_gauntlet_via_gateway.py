"""The harness through the real dayzero gateway, a lane as the model: what the Job will do when a
Gauntlet targets `gateway:`. Tests may import both siblings; the packages never import each
other."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import uvicorn
import yaml
from gauntlet_fakes import Behaviour, serve

from dayzero.gateway.app import create_app
from dayzero.gauntlet.run import run
from dayzero.gauntlet.spec import HarnessSettings, RunSpec, only


async def through_gateway(upstream: str, tmp: Path, suites: list[str]):
    doc = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": [{"name": "chat", "model": "chat", "aliases": ["preview"], "backends": ["b"]}],
        "backends": [{"name": "b", "kind": "openai", "url": upstream, "model": "upstream-name"}],
        "keys": {"enabled": False},
    }
    config = tmp / "routing.yaml"
    config.write_text(yaml.safe_dump(doc))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, loopback_only=True),
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 1.5
    while not server.started:
        assert time.monotonic() < deadline, "gateway did not start"
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        spec = RunSpec(
            endpoint=f"http://127.0.0.1:{port}",
            model="preview",  # a tag (alias) of the lane, as a promotion would point it
            suites=only(suites),
            harness=HarnessSettings(timeout_seconds=2, stability_requests=6),
        )
        spec.suites.latency.requests = 4
        spec.suites.latency.warmup = 0
        return await run(spec)
    finally:
        server.should_exit = True
        await task


# A gateway start and ~30 requests through two servers: about 1 s, more on a busy 2-core machine.
@pytest.mark.timeout(6)
def test_a_lane_through_the_gateway_passes(tmp_path):
    suites = ["sanity", "compliance", "latency", "toolCalls", "stability"]
    with serve() as fake:
        report = asyncio.run(through_gateway(fake.url, tmp_path, suites))
    assert report.verdict == "Pass", report.reason
    assert {b["model"] for b in fake.bodies} == {"upstream-name"}
    assert report.suite("latency").figures["ttftP50Seconds"] > 0


def test_a_leak_behind_the_gateway_is_caught(tmp_path):
    with serve(Behaviour(leak="<|eot_id|>")) as fake:
        report = asyncio.run(through_gateway(fake.url, tmp_path, ["sanity"]))
    assert report.verdict == "Fail"
    assert "chat-template tokens leaked: <|eot_id|>" in (report.reason or "")
