"""Hub webhooks: the secret is checked, only whitelisted models count, a push polls at once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from watcher_fakes import LLAMA_8B, fixture_config

from dayzero.watcher.config import parse_config
from dayzero.watcher.poll import Poller, Summary
from dayzero.watcher.sources import HubSource
from dayzero.watcher.state import FileStore
from dayzero.watcher.webhook import Coalescer, judge_event, make_server
from fakes import FakeHub, FakeModel

SECRET = "s3cret"  # noqa: S105 - a test secret


def event(name: str, kind: str = "model", action: str = "create") -> bytes:
    payload = {
        "event": {"action": action, "scope": "repo"},
        "repo": {"type": kind, "name": name, "headSha": "a" * 40},
        "webhook": {"id": "x", "version": 3},
    }
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, event("acme/M"), 401),
        ({"x-webhook-secret": "wrong"}, event("acme/M"), 401),
        ({"x-webhook-secret": SECRET}, b"{not json", 400),
        ({"x-webhook-secret": SECRET}, b'{"repo": {}}', 400),
        ({"x-webhook-secret": SECRET}, event("acme/D", kind="dataset"), 200),
        ({"x-webhook-secret": SECRET}, event("other/M"), 200),
        ({"x-webhook-secret": SECRET}, event("acme/M", action="delete"), 200),
        ({"x-webhook-secret": SECRET}, event("acme/M"), 202),
    ],
)
def test_judge_event(headers: dict[str, str], body: bytes, status: int) -> None:
    assert judge_event(headers, body, secret=SECRET, orgs=["acme"])[0] == status


def test_coalescer_runs_once_more_for_triggers_during_a_run() -> None:
    started, release = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        release.wait(1)

    runs = Coalescer(job)
    runs.trigger()
    assert started.wait(1)
    runs.trigger()
    runs.trigger()
    release.set()
    assert runs.idle.wait(1)
    assert runs.runs == 2


def test_a_webhook_polls_at_once(tmp_path: Path) -> None:
    cfg = parse_config({"hub": {"orgs": ["acme"]}, "stateFile": str(tmp_path / "state.json")})
    summaries: list[Summary] = []
    with FakeHub([]) as hub:

        def job() -> None:
            source = HubSource(hub.url, sleep=lambda _: None)
            summaries.append(Poller(cfg, hub=source, store=FileStore(cfg.state_file)).run())  # type: ignore[arg-type]

        runs = Coalescer(job)
        server = make_server("127.0.0.1", 0, secret=SECRET, orgs=cfg.hub.orgs, trigger=runs.trigger)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        try:
            host, port = server.server_address[:2]
            url = f"http://{host!s}:{port}/webhooks/hub"
            hub.add(
                FakeModel("acme/New-8B", config=fixture_config("llama-3.1-8b"), parameters=LLAMA_8B)
            )
            began = time.monotonic()
            answer = httpx.post(
                url, content=event("acme/New-8B"), headers={"X-Webhook-Secret": SECRET}
            )
            assert answer.status_code == 202
            assert runs.idle.wait(1.5)
            latency = time.monotonic() - began
            denied = httpx.post(url, content=event("acme/New-8B"))
        finally:
            server.shutdown()
            server.server_close()
    assert denied.status_code == 401
    [summary] = summaries
    verdicts: dict[str, Any] = {m["repo"]: m["verdict"] for m in summary.models}
    assert verdicts == {"acme/New-8B": "deployable"}
    assert latency < 1.5
