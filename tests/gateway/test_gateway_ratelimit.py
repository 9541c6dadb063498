"""Rate limits: the window's rules, two replicas that share one limit through a real Redis, one
replica's own counts without it, the fallback when Redis is killed mid-run, the 429 that the
official client reads, and a bad rateLimit refused naming the field."""

import asyncio
import json
import logging
from pathlib import Path

import openai
import pytest
import yaml
from gateway_fakes import CHAT, USER_KEY, FakeUpstream, document, fakes, serve, sha

from dayzero.api.routing import RoutingLane
from dayzero.gateway import ratelimit
from dayzero.gateway.auth import ANONYMOUS
from dayzero.gateway.config import ConfigError, parse
from dayzero.gateway.ratelimit import MemoryCounters, RateLimiter, counters_for
from dayzero.gateway.shared import redis_client

openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="none")  # import cost outside a test


def limited_doc(url, rate_limit, **extra):
    """Lane ``chat`` over one backend, limited per project by ``rate_limit``."""
    return document(
        [{"name": "local", "url": url}],
        lanes=[
            {
                "name": "chat",
                "model": "chat",
                "backends": ["local"],
                "rateLimit": rate_limit,
                "concurrency": {"max": 512},
            }
        ],
        **extra,
    )


async def statuses(gw, n, body=CHAT, headers=None):
    replies = await asyncio.gather(
        *(gw.post("/v1/chat/completions", body, headers) for _ in range(n))
    )
    return [status for status, _, _ in replies]


def rate_limited(gw):
    text = gw.app.metrics.registry.get_sample_value(
        "dayzero_gateway_rate_limited_total", {"lane": "chat"}
    )
    return int(text or 0)


# -- the window's rules ----------------------------------------------------------------------------


def test_the_memory_window_counts_refuses_and_opens_again():
    now = [100.0]
    lane = RoutingLane.model_validate(
        {
            "name": "chat",
            "model": "chat",
            "backends": ["b"],
            "rateLimit": {"requestsPerMinute": 3, "tokensPerMinute": 10_000},
        }
    )
    request = {**CHAT, "max_tokens": 3000}
    counters = counters_for(lane, ANONYMOUS, "acme", request)
    assert [c.limit for c in counters] == [3, 10_000]
    assert counters[1].amount > 3000  # max_tokens plus the prompt's estimate
    memory = MemoryCounters(lambda: now[0])
    assert [memory.check(counters) for _ in range(3)] == [None, None, None]
    refusal = memory.check(counters)
    assert refusal is not None
    assert refusal.counter is counters[0]
    assert (refusal.used, refusal.retry_after) == (3, 60)
    error = refusal.error()
    assert (error.status, error.type, error.headers["Retry-After"]) == (
        429,
        "rate_limit_error",
        "60",
    )
    assert "project acme: 3 requests per minute on lane chat" in error.message
    now[0] += 45
    assert memory.check(counters).retry_after == 15  # type: ignore[union-attr]
    now[0] += 15
    assert memory.check(counters) is None  # a new window
    # Tokens: the fourth 3000-token request of a window does not fit 10 000.
    tokens = [counters[1]]
    assert [memory.check(tokens) is None for _ in range(3)] == [True, True, False]
    message = memory.check(tokens).error().message  # type: ignore[union-attr]
    assert "project acme: 10000 tokens per minute on lane chat" in message
    assert "(estimated)" in message
    # A refused request counted against nothing: the request counter still has room.
    assert memory.check(counters[:1]) is None


# -- two replicas, one Redis -----------------------------------------------------------------------


@pytest.mark.timeout(8)
def test_two_replicas_sharing_redis_admit_exactly_the_limit(run, tmp_path, redis_server):
    async def scenario():
        clients = [redis_client(redis_server.url), redis_client(redis_server.url)]
        try:
            async with fakes(FakeUpstream("ok")) as (up,):
                doc = limited_doc(up.url, {"requestsPerMinute": 20})
                (tmp_path / "a").mkdir()
                (tmp_path / "b").mkdir()
                async with (
                    serve(doc, tmp_path / "a", redis=clients[0]) as a,
                    serve(doc, tmp_path / "b", redis=clients[1]) as b,
                ):
                    got = await asyncio.gather(statuses(a, 20), statuses(b, 20))
                    flat = got[0] + got[1]
                    assert flat.count(200) == 20, got
                    assert flat.count(429) == 20, got
                    assert len(up.requests) == 20
                    assert rate_limited(a) + rate_limited(b) == 20
                    state = a.app.status(a.app.watcher.current)["sharedState"]
                    assert state["rateLimits"] == {"store": "redis"}
        finally:
            for client in clients:
                await client.aclose()

    run(scenario())


def test_without_redis_each_replica_counts_its_own(run, tmp_path):
    async def scenario():
        async with fakes(FakeUpstream("ok")) as (up,):
            doc = limited_doc(up.url, {"requestsPerMinute": 5})
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            async with serve(doc, tmp_path / "a") as a, serve(doc, tmp_path / "b") as b:
                got = await asyncio.gather(statuses(a, 6), statuses(b, 6))
                assert [sorted(g) for g in got] == [[200] * 5 + [429]] * 2
                # Another project has a window of its own.
                other = await statuses(a, 1, headers={"X-Dayzero-Project": "other"})
                assert other == [200]
                state = a.app.status(a.app.watcher.current)["sharedState"]
                assert state["rateLimits"] == {"store": "memory"}

    run(scenario())


@pytest.mark.timeout(8)
def test_redis_killed_limits_fall_back_to_local_counts_and_recover(
    run, tmp_path, redis_server, caplog, monkeypatch
):
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_SECONDS", 0.1)
    caplog.set_level(logging.INFO, logger="dayzero.gateway.ratelimit")

    async def scenario():
        client = redis_client(redis_server.url)
        try:
            async with fakes(FakeUpstream("ok")) as (up,):
                doc = limited_doc(up.url, {"requestsPerMinute": 3})
                async with serve(doc, tmp_path, redis=client) as gw:

                    def state():
                        return gw.app.status(gw.app.watcher.current)["sharedState"]["rateLimits"]

                    assert await statuses(gw, 2) == [200, 200]  # counted in Redis
                    redis_server.kill()
                    # Local routing keeps answering: this replica's own window starts empty.
                    assert sorted(await statuses(gw, 4)) == [200, 200, 200, 429]
                    assert state()["store"] == "memory"
                    assert "redis is unreachable" in state()["fallback"]
                    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
                    assert len(warned) == 1  # once per outage, not per request
                    assert "rate limits count on this replica only" in warned[0]
                    redis_server.start()  # back, empty
                    await asyncio.sleep(0.15)
                    assert await statuses(gw, 1) == [200]
                    assert state() == {"store": "redis"}
                    assert any("shared again" in r.getMessage() for r in caplog.records)
        finally:
            await client.aclose()

    run(scenario())


# -- what clients see ------------------------------------------------------------------------------


def test_the_official_client_reads_a_429_that_names_the_limit(run, tmp_path):
    async def scenario():
        async with fakes(FakeUpstream("ok")) as (up,):
            doc = limited_doc(up.url, {"requestsPerMinute": 100})
            doc["keys"] = {
                "entries": [
                    {
                        "sha256": sha(USER_KEY),
                        "project": "platform-team",
                        "rateLimit": {"requestsPerMinute": 1},
                    }
                ]
            }
            async with serve(doc, tmp_path) as gw:
                client = openai.AsyncOpenAI(
                    base_url=gw.url + "/v1", api_key=USER_KEY, max_retries=0
                )
                await client.chat.completions.create(model="chat", messages=CHAT["messages"])
                with pytest.raises(openai.RateLimitError) as caught:
                    await client.chat.completions.create(model="chat", messages=CHAT["messages"])
                await client.close()
                assert len(up.requests) == 1
                assert rate_limited(gw) == 1
        error = caught.value
        assert error.code == "rate_limit_exceeded"
        message = error.body["message"]  # type: ignore[index]
        key_id = sha(USER_KEY)[:12]
        assert f"key {key_id}…: 1 requests per minute on lane chat" in message
        assert "1 used in this minute" in message
        assert 0 < int(error.response.headers["retry-after"]) <= 60

    run(scenario())


async def recorded(gw, n):
    """Wait until ``n`` requests are recorded (each settled its tokens just before), then for
    the settlements sent to Redis."""
    for _ in range(100):
        total = sum(
            s.value
            for metric in gw.app.metrics.registry.collect()
            if metric.name == "dayzero_gateway_requests"
            for s in metric.samples
            if s.name.endswith("_total")
        )
        if total >= n:
            break
        await asyncio.sleep(0.01)
    await gw.app.shared.rates.drain()


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_tokens_count_the_estimate_then_the_real_usage(run, tmp_path, request, store):
    async def scenario():
        url = request.getfixturevalue("redis_server").url if store == "redis" else None
        client = redis_client(url) if url else None
        try:
            async with fakes(FakeUpstream("ok")) as (up,):  # answers use 7 + 3 tokens
                doc = limited_doc(up.url, {"tokensPerMinute": 250})
                async with serve(doc, tmp_path, redis=client) as gw:
                    headers = {"X-Dayzero-Project": "platform-team"}
                    body = {**CHAT, "max_tokens": 200}  # an estimate of about 212
                    for n in (1, 2):  # each settles to 10, so the next estimate fits again
                        status, _, reply = await gw.post("/v1/chat/completions", body, headers)
                        assert status == 200, reply
                        await recorded(gw, n)
                    if client is not None:
                        counter = await client.get("dz:rl:{chat}:p:platform-team:t")
                        assert int(counter) == 20
                    # 20 used; this one's estimate (over 240) does not fit before it runs.
                    status, reply_headers, reply = await gw.post(
                        "/v1/chat/completions", {**CHAT, "max_tokens": 240}, headers
                    )
                    assert len(up.requests) == 2
        finally:
            if client is not None:
                await client.aclose()
        assert status == 429
        assert reply["error"]["type"] == "rate_limit_error"
        message = reply["error"]["message"]
        assert "project platform-team: 250 tokens per minute on lane chat" in message
        assert "20 used in this minute, this request counts 25" in message
        assert int(reply_headers["retry-after"]) > 0

    run(scenario())


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("lane", {"requestsPerMinute": 0}, "lanes.0.rateLimit.requestsPerMinute"),
        ("lane", {"tokensPerMinute": "lots"}, "lanes.0.rateLimit.tokensPerMinute"),
        ("lane", {}, "lanes.0.rateLimit: Value error, set requestsPerMinute, tokensPerMinute"),
        ("key", {"requestsPerMinute": -1}, "keys.entries.0.rateLimit.requestsPerMinute"),
        ("lane", {"requestsPerMinit": 5}, "lanes.0.rateLimit.requestsPerMinit"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_the_field(where, value, expected):
    doc = limited_doc("http://127.0.0.1:1", value)
    if where == "key":
        doc["lanes"][0].pop("rateLimit")
        doc["keys"] = {"entries": [{"sha256": sha(USER_KEY), "project": "p", "rateLimit": value}]}
    with pytest.raises(ConfigError) as caught:
        parse(json.dumps(doc))
    assert expected in str(caught.value)


def test_the_limiter_without_redis_never_reports_a_fallback():
    limiter = RateLimiter()
    assert limiter.status() == {"store": "memory"}
    assert limiter.available


def test_the_documented_examples_load():
    root = Path(__file__).resolve().parents[2]
    doc = parse((root / "examples/gateway/ratelimit.yaml").read_text())
    assert doc.lanes[0].rate_limit is not None
    assert doc.lanes[0].rate_limit.requests_per_minute == 2
    text = (root / "docs/gateway.md").read_text()
    section = text[text.index("## Rate limits") :]
    snippet = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    fragment = yaml.safe_load(snippet)
    full = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "backends": [{"name": "local", "url": "http://127.0.0.1:9100"}],
        **fragment,
    }
    routing = parse(json.dumps(full))
    entry = routing.keys.entries[0]
    assert entry.sha256 == sha("sk-platform-team-example")
    assert entry.rate_limit is not None
    assert entry.rate_limit.requests_per_minute == 30
