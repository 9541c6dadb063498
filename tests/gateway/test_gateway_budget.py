"""Paid fallback under budgets: why the paid tier was tried, reservations that cannot overspend
under a race, the hard kill and its admin reset, and the ledger in memory and in a real Redis
(which a test kills mid-run: paid calls fail closed, local ones keep answering)."""

import asyncio
import json
import logging

import openai
import pytest
from gateway_fakes import (
    ADMIN_KEY,
    ANTHROPIC_KEY_ENV,
    CHAT,
    USER_KEY,
    FakeAnthropic,
    FakeUpstream,
    anthropic_backend,
    closed_port_url,
    document,
    fakes,
    serve,
    sha,
)

from dayzero.api.routing import Price
from dayzero.gateway.budget import (
    LedgerUnavailableError,
    MemoryLedger,
    RedisLedger,
    Scope,
    cost,
    fallback_reason,
    period_bounds,
)
from dayzero.gateway.shared import redis_client

openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="none")  # import cost outside a test

PRICES = {"claude-fake-1": {"inputUsdPerMillion": 3, "outputUsdPerMillion": 15}}
ACTUAL = 12 * 3 + 6 * 15
"""Micro-dollars of one answer of the Anthropic fake: 12 input and 6 output tokens."""
PAID_CHAT = {**CHAT, "max_tokens": 10}
"""Its worst case: a 12-token prompt estimate and 10 output tokens, 186 micro-dollars."""
ACME = {"X-Dayzero-Project": "acme"}


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch):
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, "sk-ant-budget")


def paid_doc(local_url, paid_url, *, budgets=None, lane_budget=None, keys=None, **lane):
    """Lane ``chat``: a local backend, then Claude as the paid fallback."""
    fallback = {"enabled": True, "budget": lane_budget or {}}
    doc = document(
        [
            {"name": "local", "url": local_url, "timeoutSeconds": 0.3},
            anthropic_backend("claude", paid_url, paid=True),
        ],
        lanes=[
            {
                "name": "chat",
                "model": "chat",
                "backends": ["local", "claude"],
                "paidFallback": fallback,
                "concurrency": {"max": 512},
                **lane,
            },
            {"name": "near", "model": "near", "backends": ["local"]},
        ],
        prices=PRICES,
        budgets=budgets or {},
    )
    if keys:
        doc["keys"] = keys
    return doc


async def settled(gw, headers=None):
    """The ledgers once no reservation is held: a call settles just after its answer is sent."""
    for _ in range(100):
        status, body = await gw.get("/v1/budgets", headers)
        assert status == 200, body
        if all(row["reservedUsd"] == 0 for row in body["ledgers"]):
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"reservations still held: {body}")


def access_lines(caplog):
    return [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "dayzero.gateway.access"
    ]


# -- pure rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["circuit_open"], "circuit_open"),
        (["circuit_open", "circuit_open"], "circuit_open"),
        (["timeout", "timeout"], "timeout"),
        (["denied_size"], "denied"),
        (["denied_size", "unusable"], "denied"),
        (["timeout", "circuit_open"], "all_local_failed"),
        (["connect"], "all_local_failed"),
        ([], "all_local_failed"),
    ],
)
def test_the_fallback_reason_says_how_the_local_tier_failed(reasons, expected):
    assert fallback_reason(reasons) == expected


def test_periods_and_costs_are_exact():
    assert period_bounds("day", 1796083200.5)[0] == "2026-12-01"
    label, start, end = period_bounds("month", 1796083199.0)
    assert (label, start.day, end.month, end.day) == ("2026-11", 1, 12, 1)
    assert period_bounds("month", 1798761599.0)[2].year == 2027  # December rolls the year
    price = Price(input_usd_per_million=0.15, output_usd_per_million=0.6)
    assert cost(price, 1000, 1000) == 750  # micro-dollars
    assert cost(price, 1, 0) == 1  # a fraction of a micro-dollar rounds up, never to zero


def scopes(limit, hard_kill=True):
    label, _, end = period_bounds("day", 1796083200.0)
    return [Scope("project", "acme", "day", label, end, limit, hard_kill)]


async def ledger_rules(ledger):
    now = 1796083200.0
    s = scopes(1000)
    assert (await ledger.reserve(s, 600, now)).ok
    busy = await ledger.reserve(s, 600, now)  # 600 held in flight: no room, but nothing spent
    assert (busy.ok, busy.kind, busy.reserved) == (False, "busy", 600)
    await ledger.settle(s, 600, 400, now)  # the real cost was lower: room again
    assert (await ledger.reserve(s, 600, now)).ok
    await ledger.settle(s, 600, 0, now)  # released
    exhausted = await ledger.reserve(s, 601, now)  # 400 spent + 601 > 1000: the limit is hit
    assert (exhausted.kind, exhausted.spent) == ("exhausted", 400)
    killed = await ledger.reserve(s, 1, now)  # the hard kill holds even for a small call
    assert killed.kind == "killed"
    row = await ledger.reset(s[0].key)
    assert (row.spent, row.reset_spent, row.killed) == (0, 400, False)
    assert (await ledger.reserve(s, 1, now)).ok
    soft = scopes(10, hard_kill=False)
    soft = [Scope("lane", "chat", *(soft[0].period, soft[0].label, soft[0].end, 10, False))]
    assert (await ledger.reserve(soft, 11, now)).kind == "exhausted"
    assert (await ledger.reserve(soft, 10, now)).ok  # no kill: a call that fits still goes
    rows = {r.key: r for r in await ledger.rows([s[0].label])}
    assert rows[soft[0].key].reserved == 10
    assert rows[s[0].key].limit == 1000


def test_the_memory_ledger_reserves_settles_kills_and_resets(run):
    run(ledger_rules(MemoryLedger()))


def test_the_redis_ledger_keeps_the_same_rules(run, redis_server):
    async def scenario():
        client = redis_client(redis_server.url)
        ledger = RedisLedger(client)
        try:
            await ledger_rules(ledger)
        finally:
            ledger.close()
            await client.aclose()

    run(scenario())


# -- through the gateway ---------------------------------------------------------------------------


def test_paid_fallback_records_why_in_header_log_and_metric(run, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dayzero.gateway.access")

    async def scenario():
        async with fakes(FakeUpstream("slow"), FakeAnthropic()) as (slow, claude):
            doc = paid_doc(slow.url, claude.url, circuitBreaker={"consecutiveTimeouts": 1})
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post("/v1/chat/completions", PAID_CHAT)
                assert status == 200, body
                assert headers["x-dayzero-backend"] == "claude"
                assert headers["x-dayzero-fallback-reason"] == "timeout"
                # The local host's circuit is open now: the next fallback says so.
                status, headers, _ = await gw.post("/v1/chat/completions", PAID_CHAT)
                assert headers["x-dayzero-fallback-reason"] == "circuit_open"
                status, headers, _ = await gw.post(
                    "/v1/chat/completions", {**CHAT, "model": "near"}
                )
                assert "x-dayzero-fallback-reason" not in headers  # no paid tier on that lane
                _, metrics = await gw.get("/metrics")
        lines = access_lines(caplog)
        assert [line["paid_fallback"] for line in lines] == ["timeout", "circuit_open", None]
        assert lines[0]["provider_tier"] == "paid"
        assert lines[0]["cost_usd"] == pytest.approx(ACTUAL / 1e6)
        for reason in ("timeout", "circuit_open"):
            sample = (
                f'dayzero_gateway_paid_fallbacks_total{{lane="chat",reason="{reason}",'
                f'result="served"}} 1.0'
            )
            assert sample in metrics

    run(scenario())


def test_a_lane_budget_refusal_is_a_clear_429_for_the_official_client(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic()) as (claude,):
            doc = paid_doc(closed_port_url(), claude.url, lane_budget={"dailyUsd": 0.0001})
            async with serve(doc, tmp_path) as gw:
                client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
                with pytest.raises(openai.RateLimitError) as caught:
                    await client.chat.completions.create(
                        model="chat", messages=CHAT["messages"], max_tokens=10
                    )
                await client.close()
                assert claude.requests == []  # refused before any dial
        error = caught.value
        assert error.code == "budget_exceeded"
        message = error.body["message"]
        assert "the daily budget of lane 'chat' ($0.0001 for " in message
        assert "UTC) is exhausted (hard kill now on)" in message
        assert "local: connect" in message
        assert int(error.response.headers["retry-after"]) > 0
        assert error.response.headers["x-dayzero-fallback-reason"] == "all_local_failed"

    run(scenario())


async def budget_race(gw, claude, caplog, n=200, fits=50):
    replies = await asyncio.gather(
        *(gw.post("/v1/chat/completions", PAID_CHAT, ACME) for _ in range(n))
    )
    ok = [r for r in replies if r[0] == 200]
    refused = [r for r in replies if r[0] != 200]
    assert 1 <= len(ok) <= fits, len(ok)
    assert len(claude.requests) == len(ok)  # a refused call never dialled the paid API
    assert {r[0] for r in refused} == {429}
    assert {r[2]["error"]["code"] for r in refused} == {"budget_exceeded"}
    ledgers = await settled(gw)
    row = next(
        r
        for r in ledgers["ledgers"]
        if (r["scope"], r["name"], r["period"]) == ("project", "acme", "day")
    )
    costs = sum(line["cost_usd"] for line in access_lines(caplog) if line["status"] == 200)
    assert round(row["spentUsd"], 6) == round(costs, 6) == round(len(ok) * ACTUAL / 1e6, 6)
    assert row["reservedUsd"] == 0
    return len(ok)


@pytest.mark.timeout(10)  # 200 requests through the gateway on a shared 2-core machine
@pytest.mark.parametrize("store", ["memory", "redis"])
def test_200_racing_paid_calls_never_overspend(run, tmp_path, caplog, request, store):
    caplog.set_level(logging.INFO, logger="dayzero.gateway.access")

    async def scenario():
        client = (
            redis_client(request.getfixturevalue("redis_server").url) if store == "redis" else None
        )
        budgets = {"acme": {"dailyUsd": 50 * ACTUAL / 1e6}}
        try:
            async with fakes(FakeAnthropic()) as (claude,):
                doc = paid_doc(closed_port_url(), claude.url, budgets=budgets)
                async with serve(doc, tmp_path, redis=client) as gw:
                    assert await budget_race(gw, claude, caplog) >= 50 * ACTUAL // 186
        finally:
            if client is not None:
                await client.aclose()

    run(scenario())


def test_the_hard_kill_survives_a_reload_until_an_admin_resets_it(run, tmp_path):
    keys = {
        "enabled": True,
        "entries": [
            {"sha256": sha(ADMIN_KEY), "project": "ops", "admin": True},
            {"sha256": sha(USER_KEY), "project": "acme"},
        ],
    }
    user = {"Authorization": f"Bearer {USER_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    reset = {"scope": "project", "name": "acme", "period": "day"}

    async def scenario():
        async with fakes(FakeAnthropic()) as (claude,):
            two = {"acme": {"dailyUsd": (2 * ACTUAL + 100) / 1e6}}
            doc = paid_doc(closed_port_url(), claude.url, budgets=two, keys=keys)
            async with serve(doc, tmp_path) as gw:
                for _ in range(2):
                    status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, user)
                    assert status == 200, body
                    await settled(gw, admin)
                status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, user)
                assert status == 429
                assert "project 'acme'" in body["error"]["message"]
                # A new document with a far bigger budget: the kill is in the ledger, it stays.
                gw.write(
                    paid_doc(
                        closed_port_url(),
                        claude.url,
                        keys=keys,
                        budgets={"acme": {"dailyUsd": 100}},
                    )
                )
                await asyncio.sleep(0.3)
                assert gw.app.status(gw.app.watcher.current)["configError"] is None
                status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, user)
                assert status == 429
                assert "hard kill is on until" in body["error"]["message"]
                assert "POST /v1/budgets/reset" in body["error"]["message"]
                status, _, body = await gw.post("/v1/budgets/reset", reset, user)
                assert status == 403
                status, _, body = await gw.post(
                    "/v1/budgets/reset", {**reset, "period": "week"}, admin
                )
                assert (status, body["error"]["param"]) == (400, "period")
                status, _, row = await gw.post("/v1/budgets/reset", reset, admin)
                assert status == 200
                assert (row["killed"], row["spentUsd"]) == (False, 0)
                assert row["spentBeforeResetUsd"] == pytest.approx(2 * ACTUAL / 1e6)
                status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, user)
                assert status == 200, body
                status, ledgers = await gw.get("/v1/budgets", admin)
                assert status == 200
                assert ledgers["ledger"] == "memory"
                assert ledgers["budgets"]["acme"]["dailyUsd"] == 100
                assert len(claude.requests) == 3

    run(scenario())


@pytest.mark.timeout(6)
def test_redis_down_paid_fails_closed_local_keeps_answering(run, tmp_path, redis_server):
    async def scenario():
        client = redis_client(redis_server.url)
        try:
            async with fakes(FakeUpstream("ok"), FakeAnthropic()) as (near, claude):
                doc = paid_doc(closed_port_url(), claude.url, budgets={"acme": {"dailyUsd": 1}})
                doc["backends"].append({"name": "near", "url": near.url})
                doc["lanes"][1]["backends"] = ["near"]
                async with serve(doc, tmp_path, redis=client) as gw:
                    status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, ACME)
                    assert status == 200, body
                    redis_server.kill()
                    status, headers, body = await gw.post("/v1/chat/completions", PAID_CHAT, ACME)
                    assert status == 503, body
                    assert body["error"]["code"] == "budget_unavailable"
                    assert "budget ledger (redis) is unreachable" in body["error"]["message"]
                    assert "fail closed" in body["error"]["message"]
                    assert headers["retry-after"] == "1"
                    for _ in range(5):  # the local lane does not need Redis
                        status, _, body = await gw.post(
                            "/v1/chat/completions", {**CHAT, "model": "near"}
                        )
                        assert status == 200, body
                    await asyncio.sleep(0.3)
                    assert (
                        gw.app.status(gw.app.watcher.current)["sharedState"]["available"] is False
                    )
                    assert len(claude.requests) == 1
                    redis_server.start()  # back, empty: the client reconnects by itself
                    status, _, body = await gw.post("/v1/chat/completions", PAID_CHAT, ACME)
                    assert status == 200, body
                    await asyncio.sleep(0.3)
                    assert gw.app.status(gw.app.watcher.current)["sharedState"]["available"] is True
        finally:
            await client.aclose()

    run(scenario())


@pytest.mark.timeout(6)
def test_a_circuit_one_replica_opens_is_open_on_the_other(run, tmp_path, redis_server):
    async def scenario():
        a_client, b_client = redis_client(redis_server.url), redis_client(redis_server.url)
        try:
            async with fakes(FakeUpstream("slow"), FakeUpstream("ok")) as (slow, ok):
                doc = document(
                    [
                        {"name": "slow", "url": slow.url, "timeoutSeconds": 0.2},
                        {"name": "ok", "url": ok.url},
                    ],
                    lanes=[
                        {
                            "name": "chat",
                            "model": "chat",
                            "backends": ["slow", "ok"],
                            "circuitBreaker": {"consecutiveTimeouts": 2, "openSeconds": 30},
                        }
                    ],
                )
                (tmp_path / "a").mkdir()
                (tmp_path / "b").mkdir()
                async with (
                    serve(doc, tmp_path / "a", redis=a_client) as a,
                    serve(doc, tmp_path / "b", redis=b_client) as b,
                ):
                    await a.post("/v1/chat/completions", CHAT)
                    await b.post("/v1/chat/completions", CHAT)  # one timeout each: two in a row
                    assert len(slow.requests) == 2
                    for _ in range(40):
                        states = [
                            x.app.status(x.app.watcher.current)["backends"][0]["circuit"]
                            for x in (a, b)
                        ]
                        if states == ["open", "open"]:
                            break
                        await asyncio.sleep(0.05)
                    assert states == ["open", "open"]
                    status, headers, _ = await b.post("/v1/chat/completions", CHAT)
                    assert (status, headers["x-dayzero-backend"]) == (200, "ok")
                    assert len(slow.requests) == 2  # skipped without a dial
        finally:
            await a_client.aclose()
            await b_client.aclose()

    run(scenario())


def test_the_cli_names_a_bad_redis_url(tmp_path, capsys):
    from dayzero.cli import main  # noqa: PLC0415 - the CLI only here

    config = tmp_path / "routing.yaml"
    config.write_text(json.dumps(document([{"name": "a", "url": "http://127.0.0.1:1"}])))
    assert main(["gateway", "--config", str(config), "--redis-url", "http://127.0.0.1:1"]) == 2
    assert "--redis-url: want redis://" in capsys.readouterr().err


def test_an_async_lane_settles_its_paid_attempts(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic()) as (claude,):
            doc = paid_doc(closed_port_url(), claude.url, budgets={"acme": {"dailyUsd": 1}})
            doc["lanes"][0]["mode"] = "async"
            async with serve(doc, tmp_path) as gw:
                status, _, job = await gw.post("/v1/async/chat/completions", PAID_CHAT, ACME)
                assert status == 202, job
                for _ in range(100):
                    _, job = await gw.get(f"/v1/async/{job['id']}")
                    if job["status"] in ("succeeded", "failed"):
                        break
                    await asyncio.sleep(0.02)
                assert job["status"] == "succeeded", job
                ledgers = await settled(gw)
        spent = {(r["scope"], r["period"]): r["spentUsd"] for r in ledgers["ledgers"]}
        assert spent[("project", "day")] == pytest.approx(ACTUAL / 1e6)

    run(scenario())


def test_a_settlement_redis_missed_is_sent_when_it_is_back(run, redis_server):
    async def scenario():
        client = redis_client(redis_server.url)
        ledger = RedisLedger(client)
        now = 1796083200.0
        s = scopes(1000)
        try:
            assert (await ledger.reserve(s, 300, now)).ok
            redis_server.kill()
            with pytest.raises(LedgerUnavailableError):
                await ledger.settle(s, 300, 120, now)
            assert len(ledger.backlog) == 1
            redis_server.start()  # empty: the reservation is gone, the spend is not
            assert await ledger.flush() == 1
            assert ledger.backlog == []
            (row,) = await ledger.rows([s[0].label])
            assert (row.spent, row.reserved) == (120, 0)  # the lost reservation is not negative
        finally:
            ledger.close()
            await client.aclose()

    run(scenario())
