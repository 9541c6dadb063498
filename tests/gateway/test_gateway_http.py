"""The gateway's HTTP surface: errors, auth, headers, metrics, logs, status and hot reload."""

import asyncio
import json
import logging

import pytest
from gateway_fakes import ADMIN_KEY, CHAT, USER_KEY, document, serve, sha, upstreams

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
USER = {"Authorization": f"Bearer {USER_KEY}"}


def two_lanes(url, **extra):
    return document(
        [{"name": "a", "url": url, "timeoutSeconds": 1}],
        lanes=[
            {"name": "chat", "model": "chat", "aliases": ["default"], "backends": ["a"]},
            {"name": "fast", "model": "fast", "backends": ["a"]},
        ],
        **extra,
    )


KEYS = {
    "entries": [
        {"sha256": sha(ADMIN_KEY), "project": "ops", "admin": True},
        {"sha256": sha(USER_KEY), "project": "team-a", "lanes": ["chat"]},
    ]
}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        ({"messages": []}, 400, "model"),
        ({"model": 3, "messages": []}, 400, "model"),
        ({"model": "chat"}, 400, "messages"),
        ({"model": "chat", "messages": "hi"}, 400, "messages"),
        ({**CHAT, "stream": "yes"}, 400, "stream"),
        ({**CHAT, "max_tokens": 1.5}, 400, "max_tokens"),
        ({**CHAT, "temperature": True}, 400, "temperature"),
        ({**CHAT, "tools": {}}, 400, "tools"),
        ({**CHAT, "model": "gpt-9"}, 404, "model"),
        ({"model": "chat", "messages": [{"content": "x" * 5000}]}, 413, None),
    ],
)
def test_bad_requests_get_openai_errors(run, tmp_path, body, status, param):
    async def scenario():
        async with (
            upstreams("ok") as (up,),
            serve(two_lanes(up.url, maxBodyBytes=4096), tmp_path) as gw,
        ):
            got, _, answer = await gw.post("/v1/chat/completions", body)
            assert got == status, answer
            error = answer["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["param"] == param
            if param:
                assert param in error["message"]
            if status == 404:
                assert "chat, default, fast" in error["message"]
            assert up.requests == []

    run(scenario())


def test_unknown_lane_header_is_404_listing_lanes(run, tmp_path):
    async def scenario():
        async with upstreams("ok") as (up,), serve(two_lanes(up.url), tmp_path) as gw:
            status, _, body = await gw.post(
                "/v1/chat/completions", CHAT, {"X-Dayzero-Lane": "nope"}
            )
            assert status == 404
            assert "chat, fast" in body["error"]["message"]
            status, headers, _ = await gw.post(
                "/v1/chat/completions", {**CHAT, "model": "x"}, {"X-Dayzero-Lane": "fast"}
            )
            assert (status, headers["x-dayzero-lane"]) == (200, "fast")

    run(scenario())


def test_auth_401_403_and_admin_status(run, tmp_path):
    async def scenario():
        async with (
            upstreams("ok") as (up,),
            serve(two_lanes(up.url, keys=KEYS), tmp_path) as gw,
        ):
            status, _, body = await gw.post("/v1/chat/completions", CHAT)
            assert (status, body["error"]["code"]) == (401, "missing_api_key")
            bad = {"Authorization": "Bearer sk-wrong"}
            status, _, body = await gw.post("/v1/chat/completions", CHAT, bad)
            assert (status, body["error"]["code"]) == (401, "invalid_api_key")
            status, _, _ = await gw.post("/v1/chat/completions", CHAT, USER)
            assert status == 200
            fast = {**CHAT, "model": "fast"}
            status, _, body = await gw.post("/v1/chat/completions", fast, USER)
            assert (status, body["error"]["code"]) == (403, "lane_not_allowed")
            assert (await gw.get("/v1/models/status", USER))[0] == 403
            assert (await gw.get("/v1/models/status", ADMIN))[0] == 200
            assert (await gw.get("/v1/models"))[0] == 401
            assert up.requests[0].get("Authorization") is None
            assert "authorization" not in {k.lower() for k in up.headers[0]}

    run(scenario())


def test_trace_backend_headers_and_sanitizing(run, tmp_path):
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"

    async def scenario():
        async with upstreams("ok") as (up,), serve(two_lanes(up.url), tmp_path) as gw:
            headers = {
                "traceparent": f"00-{tid}-00f067aa0ba902b7-01",
                "X-Dayzero-Project": "team-a<script>",
            }
            status, got, _ = await gw.post("/v1/chat/completions", CHAT, headers)
            assert status == 200
            assert got["x-dayzero-trace-id"] == tid
            assert got["traceparent"].startswith(f"00-{tid}-")
            assert got["x-dayzero-backend"] == "a"
            assert up.headers[0]["traceparent"].startswith(f"00-{tid}-")
            _, fresh, _ = await gw.post("/v1/chat/completions", CHAT)
            assert len(fresh["x-dayzero-trace-id"]) == 32
            assert fresh["x-dayzero-trace-id"] != tid
            _, metrics = await gw.get("/metrics")
            assert 'project="team-ascript"' in metrics

    run(scenario())


def test_one_log_line_per_request_without_prompt_or_key(run, tmp_path, caplog):
    async def scenario():
        async with (
            upstreams("ok") as (up,),
            serve(two_lanes(up.url, keys=KEYS), tmp_path) as gw,
        ):
            body = {**CHAT, "messages": [{"role": "user", "content": "SECRET-PROMPT"}]}
            await gw.post("/v1/chat/completions", body, USER)

    with caplog.at_level(logging.INFO, logger="dayzero.gateway.access"):
        run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "dayzero.gateway.access"]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["project_id"] == "team-a"
    assert record["lane"] == "chat"
    assert record["status"] == 200
    assert (record["input_tokens"], record["output_tokens"]) == (7, 3)
    assert record["provider_tier"] == "local"
    assert "SECRET-PROMPT" not in lines[0]
    assert USER_KEY not in lines[0]
    assert sha(USER_KEY) not in lines[0]


def test_metrics_models_health_ready(run, tmp_path):
    async def scenario():
        async with upstreams("ok") as (up,):
            doc = two_lanes(
                up.url, prices={"chat": {"inputUsdPerMillion": 1e6, "outputUsdPerMillion": 0}}
            )
            async with serve(doc, tmp_path) as gw:
                await gw.post("/v1/chat/completions", CHAT)
                status, metrics = await gw.get("/metrics")
                assert status == 200
                assert (
                    'dayzero_gateway_requests_total{endpoint="chat/completions",'
                    'fallback_reason="none",lane="chat",model="chat",project="local",'
                    'provider_tier="local",status="200"} 1.0'
                ) in metrics
                assert "dayzero_gateway_config_info{hash=" in metrics
                assert "dayzero_gateway_config_errors_total 0.0" in metrics
                assert 'dayzero_gateway_cost_usd_total{lane="chat"' in metrics
                _, models = await gw.get("/v1/models")
                assert [m["id"] for m in models["data"]] == ["chat", "default", "fast"]
                assert await gw.get("/health") == (200, {"status": "ok"})
                status, ready = await gw.get("/ready")
                assert status == 200
                assert ready["ready"]
                assert (await gw.get("/nope"))[0] == 404
                assert (await gw.get("/v1/chat/completions"))[0] == 405

    run(scenario())


def test_hot_reload_applies_and_rejects(run, tmp_path):
    async def scenario():
        async with upstreams("ok", "ok") as (one, two):
            doc = document([{"name": "one", "url": one.url}])
            async with serve(doc, tmp_path) as gw:
                _, before = await gw.get("/v1/models/status")
                # A slow in-flight request survives the swap.
                one.mode = "delay:0.3"
                pending = asyncio.create_task(gw.post("/v1/chat/completions", CHAT))
                await asyncio.sleep(0.05)
                gw.write(document([{"name": "two", "url": two.url}]))
                for _ in range(200):
                    _, now = await gw.get("/v1/models/status")
                    if now["configHash"] != before["configHash"]:
                        break
                    await asyncio.sleep(0.01)
                assert now["backends"][0]["name"] == "two"
                status, headers, _ = await pending
                assert (status, headers["x-dayzero-backend"]) == (200, "one")
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert headers["x-dayzero-backend"] == "two"
                # Invalid: rejected, the last good one stays, the error shows.
                bad = document([{"name": "three", "url": two.url}])
                bad["lanes"][0]["backends"] = ["nope"]
                gw.write(bad)
                for _ in range(200):
                    _, now = await gw.get("/v1/models/status")
                    if now["configError"]:
                        break
                    await asyncio.sleep(0.01)
                assert "lanes.0" in now["configError"] or "lanes[0]" in now["configError"]
                assert now["backends"][0]["name"] == "two"
                _, metrics = await gw.get("/metrics")
                assert "dayzero_gateway_config_errors_total 1.0" in metrics
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert (status, headers["x-dayzero-backend"]) == (200, "two")

    run(scenario())


def test_concurrency_limit_is_429_with_retry_after(run, tmp_path):
    async def scenario():
        async with upstreams("delay:0.3") as (up,):
            doc = document([{"name": "a", "url": up.url}])
            doc["lanes"][0]["concurrency"] = {"reserved": 1, "max": 2, "queueTimeoutSeconds": 0.1}
            async with serve(doc, tmp_path) as gw:
                results = await asyncio.gather(
                    *(gw.post("/v1/chat/completions", CHAT) for _ in range(4))
                )
                statuses = sorted(r[0] for r in results)
                assert statuses == [200, 200, 429, 429]
                limited = next(r for r in results if r[0] == 429)
                assert limited[1]["retry-after"] == "1"
                assert limited[2]["error"]["type"] == "rate_limit_error"
                assert up.peak == 2

    run(scenario())
