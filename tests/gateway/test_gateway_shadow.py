"""Shadow lanes: the gateway decides, forwards unchanged to the legacy path, and records agreement.

The legacy path is a real OpenAI-compatible fake on loopback; the backends the decision names
must never be dialled. With Redis, two gateways share one redis-server and one agreement count.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from gateway_fakes import (
    CHAT,
    FakeUpstream,
    closed_port_url,
    document,
    fakes,
    serve,
    upstreams,
)

from dayzero.gateway.config import ConfigError, load_text
from dayzero.gateway.shadow import Decision, agreement, decide, legacy_target, revealed_model
from redis_server import RedisServer

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class LegacyWithHeader(FakeUpstream):
    """A legacy router that names the host it used in ``X-Legacy-Upstream``."""

    names: str = ""

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = await super()._answer(request, body)
        resp.headers["X-Legacy-Upstream"] = self.names
        return resp


def shadow_doc(legacy: str, a: str, b: str, **lane: Any) -> dict[str, Any]:
    return document(
        [
            {"name": "a", "url": a, "model": "llama-a"},
            {"name": "b", "url": b, "model": "llama-b"},
        ],
        lanes=[
            {
                "name": "chat",
                "model": "chat",
                "aliases": ["llama-a", "llama-b"],
                "backends": ["a", "b"],
                "mode": "shadow",
                "legacyUrl": legacy,
                **lane,
            }
        ],
    )


def test_shadow_forwards_unchanged_and_never_dials_the_decision(
    tmp_path: Path, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dayzero.gateway.access")

    async def scenario() -> None:
        async with (
            upstreams("ok", "ok", "ok") as (legacy, a, b),
            serve(shadow_doc(legacy.url, a.url, b.url), tmp_path) as gw,
        ):
            raw = json.dumps({**CHAT, "model": "llama-a", "temperature": 0.25}).encode()
            status, headers, body = await gw.post(
                "/v1/chat/completions",
                raw,
                {"Authorization": "Bearer sk-client", "X-Custom": "kept"},
            )
            assert status == 200
            assert body["choices"][0]["message"]["content"] == f"from {legacy.url}"
            assert headers["x-dayzero-lane"] == "chat"
            assert legacy.requests == [json.loads(raw)]  # unchanged: model, fields
            sent = {k.lower(): v for k, v in legacy.headers[0].items()}
            assert sent["x-custom"] == "kept"
            assert "authorization" not in sent  # a client key never leaves the gateway
            assert sent["traceparent"].endswith("-01")
            assert a.requests == []
            assert b.requests == []
            # The legacy answered model llama-a: the decision (backend a, llama-a) agrees.
            status, headers, body = await gw.post("/v1/chat/completions", CHAT)
            assert status == 200
            assert body["model"] == "chat"
            status, st = await gw.get("/v1/models/status")
            assert st["lanes"][0]["shadow"] == {
                "decisions": 2,
                "agree": 1,
                "disagree": 1,
                "unknown": 0,
                "agreementRate": 0.5,
            }
            status, recent = await gw.get("/v1/shadow/decisions")
            newest = recent["decisions"][0]
            assert newest["backend"] == "a"
            assert newest["model"] == "llama-a"
            assert newest["legacy"] == "chat"
            assert newest["agreement"] == "disagree"
            _, metrics = await gw.get("/metrics")
            assert (
                'dayzero_gateway_shadow_decisions_total{agreement="agree",lane="chat"} 1.0'
                in metrics
            )

    run(scenario())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert [line["shadow"]["agreement"] for line in lines] == ["agree", "disagree"]
    assert lines[0]["provider_tier"] == "shadow"
    assert lines[0]["backend"] == "legacy"
    assert lines[0]["shadow"]["backend"] == "a"


def test_shadow_stream_relayed_and_judged_from_its_chunks(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with (
            upstreams("ok", "ok", "ok") as (legacy, a, b),
            serve(shadow_doc(legacy.url, a.url, b.url), tmp_path) as gw,
        ):
            client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
            stream = await client.chat.completions.create(
                model="llama-a", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            await client.close()
            assert text == "one two"
            assert legacy.requests[0]["stream"] is True
            assert gw.app.shadow.counts["chat"].agree == 1

    run(scenario())


def test_shadow_decision_follows_circuits_and_the_header(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with upstreams("ok", "ok") as (a, b), fakes(LegacyWithHeader()) as (legacy,):
            doc = shadow_doc(legacy.url, a.url, b.url, legacyEndpointHeader="X-Legacy-Upstream")
            async with serve(doc, tmp_path) as gw:
                legacy.names = b.url.removeprefix("http://")  # host:port of b
                await gw.post("/v1/chat/completions", CHAT)
                assert gw.app.shadow.ring[-1].backend == "a"
                assert gw.app.shadow.ring[-1].agreement == "disagree"
                # a's circuit opens: the decision moves to b, which the legacy path also used.
                breaker = gw.app.breakers.get(a.url)
                breaker.failure(1, "timeout")
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert status == 200
                assert "x-legacy-upstream" in headers
                assert gw.app.shadow.ring[-1].backend == "b"
                assert gw.app.shadow.ring[-1].agreement == "agree"
                assert a.requests == []
                assert b.requests == []

    run(scenario())


def test_shadow_legacy_down_is_502_and_ollama_clients_are_shadowed(
    tmp_path: Path, run: Run
) -> None:
    async def scenario() -> None:
        async with (
            upstreams("ok", "ok") as (a, b),
            serve(shadow_doc(closed_port_url(), a.url, b.url), tmp_path) as gw,
        ):
            status, _, body = await gw.post("/v1/chat/completions", CHAT)
            assert status == 502
            assert "legacy path of shadow lane 'chat'" in body["error"]["message"]
            status, _, body = await gw.post("/api/chat", {**CHAT, "stream": False})
            assert status == 502
            assert "legacy path" in body["error"]
            assert a.requests == []
            assert b.requests == []

    run(scenario())


def test_shadow_lane_needs_legacy_url() -> None:
    doc = shadow_doc("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")
    del doc["lanes"][0]["legacyUrl"]
    with pytest.raises(ConfigError, match=r"lanes\[0\]\.legacyUrl"):
        load_text(yaml.safe_dump(doc))


def test_agreement_rules() -> None:
    d = Decision("chat", "a", "llama-a", "http://10.0.0.1:8000/v1")
    assert agreement(d, "llama-a", by_header=False) == "agree"
    assert agreement(d, "llama-b", by_header=False) == "disagree"
    assert agreement(d, None, by_header=False) == "unknown"
    for name in ("a", "http://10.0.0.1:8000", "10.0.0.1:8000", "http://10.0.0.1:8000/v1/"):
        assert agreement(d, name, by_header=True) == "agree", name
    assert agreement(d, "10.0.0.2:8000", by_header=True) == "disagree"
    nothing = Decision("chat", None, None, None)
    assert agreement(nothing, "llama-a", by_header=False) == "disagree"
    assert revealed_model(b'data: {"id":"x","model":"q\\"n"}\n\n') == 'q"n'
    assert revealed_model(b'{"model": "llama3.2:1b", "created_at"') == "llama3.2:1b"
    assert revealed_model(b'{"choices": []}') is None
    assert legacy_target("http://h:1/v1", "/v1/chat/completions", b"") == (
        "http://h:1/v1/chat/completions"
    )
    assert legacy_target("http://h:1/", "/api/chat", b"x=1") == "http://h:1/api/chat?x=1"


def test_shadow_agreement_shared_by_two_gateways_in_redis(
    tmp_path: Path, run: Run, redis_server: RedisServer
) -> None:
    async def scenario(url: str) -> None:
        one, two = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
        (tmp_path / "1").mkdir()
        (tmp_path / "2").mkdir()
        try:
            async with upstreams("ok", "ok", "ok") as (legacy, a, b):
                doc = shadow_doc(legacy.url, a.url, b.url)
                async with (
                    serve(doc, tmp_path / "1", redis=one, replica="gw-1") as gw1,
                    serve(doc, tmp_path / "2", redis=two, replica="gw-2") as gw2,
                ):
                    await asyncio.gather(
                        *(
                            gw1.post("/v1/chat/completions", {**CHAT, "model": "llama-a"})
                            for _ in range(3)
                        ),
                        *(gw2.post("/v1/chat/completions", CHAT) for _ in range(2)),
                    )
                    # Each replica writes its records just after its answers (eventually
                    # consistent): let both finish before reading the fleet's counts.
                    await gw1.app.shadow.flush()
                    await gw2.app.shadow.flush()
                    for gw in (gw1, gw2):
                        _, st = await gw.get("/v1/models/status")
                        assert st["lanes"][0]["shadow"]["agree"] == 3
                        assert st["lanes"][0]["shadow"]["disagree"] == 2
                        assert st["lanes"][0]["shadow"]["agreementRate"] == 0.6
                    _, recent = await gw2.get("/v1/shadow/decisions")
                    replicas = {d["replica"] for d in recent["decisions"]}
                    assert replicas == {"gw-1", "gw-2"}
                    assert len(recent["decisions"]) == 5
        finally:
            await one.aclose()
            await two.aclose()

    run(scenario(redis_server.url))


def test_decision_passes_over_an_asleep_backend_unless_the_lane_waits() -> None:
    doc = shadow_doc("http://127.0.0.1:9", "http://127.0.0.1:8", "http://127.0.0.1:7")
    doc["backends"][0] |= {"modelDeployment": "team/a", "asleep": True}
    snapshot = load_text(yaml.safe_dump(doc))
    lane = snapshot.doc.lanes[0]
    order = tuple(lane.backends)
    d = decide(snapshot, lane, order, "chat", lambda _: False)
    assert (d.backend, d.model, d.why_not) == ("b", "llama-b", ("a: asleep",))
    waits = lane.model_copy(update={"wake_timeout_seconds": 60})
    assert decide(snapshot, waits, order, "chat", lambda _: False).backend == "a"
