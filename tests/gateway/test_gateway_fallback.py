"""Ordered fallback, circuit breakers and streaming against misbehaving upstreams on loopback."""

import asyncio
import json

import pytest
from gateway_fakes import CHAT, closed_port_url, document, serve, upstreams

STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


def backends(*urls, timeout=0.3):
    return [
        {"name": f"b{i}", "url": url, "timeoutSeconds": timeout, "model": f"m{i}"}
        for i, url in enumerate(urls)
    ]


@pytest.mark.parametrize("mode", ["slow", "500", "garbage", "closed"])
def test_falls_over_to_the_next_backend(run, tmp_path, mode):
    async def scenario():
        async with upstreams("slow" if mode == "closed" else mode, "ok") as (bad, good):
            first = closed_port_url() if mode == "closed" else bad.url
            async with serve(document(backends(first, good.url)), tmp_path) as gw:
                status, headers, body = await gw.post("/v1/chat/completions", CHAT)
                assert status == 200, body
                assert headers["x-dayzero-backend"] == "b1"
                assert good.requests[0]["model"] == "m1"

    run(scenario())


def test_upstream_4xx_is_passed_through_without_fallback(run, tmp_path):
    async def scenario():
        async with (
            upstreams("bad_request", "ok") as (bad, good),
            serve(document(backends(bad.url, good.url)), tmp_path) as gw,
        ):
            status, headers, body = await gw.post("/v1/chat/completions", CHAT)
            assert status == 400
            assert body["error"]["message"] == "context too long"
            assert headers["x-dayzero-backend"] == "b0"
            assert good.requests == []

    run(scenario())


@pytest.mark.parametrize(("modes", "status"), [(("500", "garbage"), 502), (("slow", "slow"), 504)])
def test_every_backend_failing_is_an_error_naming_them(run, tmp_path, modes, status):
    async def scenario():
        async with upstreams(*modes) as ups:
            doc = document(backends(*(u.url for u in ups), timeout=0.2))
            async with serve(doc, tmp_path) as gw:
                got, _, body = await gw.post("/v1/chat/completions", CHAT)
                assert got == status
                assert "b0" in body["error"]["message"]
                assert "b1" in body["error"]["message"]
                assert all(len(u.requests) == 1 for u in ups)

    run(scenario())


def test_circuit_opens_after_two_timeouts_skips_then_probes_once(run, tmp_path):
    clock = [1000.0]

    async def scenario():
        async with upstreams("slow", "ok") as (slow, good):
            doc = document(backends(slow.url, good.url, timeout=0.15))
            doc["lanes"][0]["circuitBreaker"] = {"consecutiveTimeouts": 2, "openSeconds": 10}
            async with serve(doc, tmp_path, clock=lambda: clock[0]) as gw:
                for _ in range(2):
                    status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                    assert (status, headers["x-dayzero-backend"]) == (200, "b1")
                assert len(slow.requests) == 2
                _, status_doc = await gw.get("/v1/models/status")
                assert status_doc["backends"][0]["circuit"] == "open"
                # Open: skipped at once, the slow host sees nothing.
                loop = asyncio.get_running_loop()
                started = loop.time()
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert loop.time() - started < 0.1
                assert headers["x-dayzero-backend"] == "b1"
                assert len(slow.requests) == 2
                # Cool-down over: concurrent requests, exactly one probes the host.
                clock[0] += 10
                results = await asyncio.gather(
                    *(gw.post("/v1/chat/completions", CHAT) for _ in range(5))
                )
                assert all(r[0] == 200 for r in results)
                assert len(slow.requests) == 3
                _, status_doc = await gw.get("/v1/models/status")
                assert status_doc["backends"][0]["circuit"] == "open"
                # Recovered host: the next probe closes the circuit.
                slow.mode = "ok"
                clock[0] += 10
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert headers["x-dayzero-backend"] == "b0"
                _, status_doc = await gw.get("/v1/models/status")
                assert status_doc["backends"][0]["circuit"] == "closed"

    run(scenario())


def test_all_circuits_open_is_503_with_retry_after(run, tmp_path):
    async def scenario():
        doc = document(backends(closed_port_url()))
        doc["lanes"][0]["circuitBreaker"] = {"consecutiveTimeouts": 1, "openSeconds": 7}
        async with serve(doc, tmp_path) as gw:
            status, _, _ = await gw.post("/v1/chat/completions", CHAT)
            assert status == 502
            status, headers, body = await gw.post("/v1/chat/completions", CHAT)
            assert status == 503
            assert headers["retry-after"] == "7"
            assert body["error"]["code"] == "circuit_open"

    run(scenario())


def test_streaming_passthrough_with_usage(run, tmp_path):
    async def scenario():
        async with (
            upstreams("ok") as (up,),
            serve(document(backends(up.url)), tmp_path) as gw,
        ):
            status, headers, body = await gw.post("/v1/chat/completions", STREAM)
            assert status == 200
            assert headers["content-type"].startswith("text/event-stream")
            events = [e for e in body.decode().split("\n\n") if e]
            assert events[-1] == "data: [DONE]"
            assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 2
            assert up.requests[0]["stream_options"] == {"include_usage": True}

    run(scenario())


@pytest.mark.parametrize("mode", ["slow", "500", "garbage"])
def test_stream_fails_over_before_the_first_byte(run, tmp_path, mode):
    async def scenario():
        async with (
            upstreams(mode, "ok") as (bad, good),
            serve(document(backends(bad.url, good.url)), tmp_path) as gw,
        ):
            status, headers, body = await gw.post("/v1/chat/completions", STREAM)
            assert status == 200
            assert headers["x-dayzero-backend"] == "b1"
            assert body.decode().endswith("data: [DONE]\n\n")

    run(scenario())


@pytest.mark.parametrize("mode", ["stall_mid", "reset_mid"])
def test_mid_stream_failure_ends_with_an_error_event(run, tmp_path, mode):
    async def scenario():
        async with (
            upstreams(mode, "ok") as (bad, good),
            serve(document(backends(bad.url, good.url, timeout=0.3)), tmp_path) as gw,
        ):
            status, headers, body = await gw.post("/v1/chat/completions", STREAM)
            assert status == 200
            assert headers["x-dayzero-backend"] == "b0"
            events = [e for e in body.decode().split("\n\n") if e]
            assert "one " in events[0]
            error = json.loads(events[-1][6:])["error"]
            assert "b0" in error["message"]
            assert "[DONE]" not in body.decode()
            assert good.requests == []  # bytes reached the client: no failover

    run(scenario())


def test_client_disconnect_cancels_the_upstream(run, tmp_path):
    async def scenario():
        async with (
            upstreams("long") as (up,),
            serve(document(backends(up.url, timeout=2)), tmp_path) as gw,
        ):
            resp = await gw.session.post(gw.url + "/v1/chat/completions", json=STREAM)
            await resp.content.readany()
            resp.close()  # drop the connection mid-stream
            for _ in range(100):
                if up.active == 0:
                    break
                await asyncio.sleep(0.01)
            assert up.active == 0
            assert up.cancelled == 1
            assert gw.app.limiter.in_flight("chat") == 0
            _, status_doc = await gw.get("/v1/models/status")
            assert status_doc["backends"][0]["inFlight"] == 0

    run(scenario())


def test_embeddings_and_completions(run, tmp_path):
    async def scenario():
        async with (
            upstreams("ok") as (up,),
            serve(document(backends(up.url)), tmp_path) as gw,
        ):
            status, _, body = await gw.post("/v1/embeddings", {"model": "chat", "input": "hello"})
            assert status == 200
            assert body["data"][0]["embedding"] == [0.1]
            status, _, body = await gw.post("/v1/completions", {"model": "chat", "prompt": "x"})
            assert status == 200
            tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
            status, _, _ = await gw.post("/v1/chat/completions", {**CHAT, "tools": tools})
            assert status == 200
            assert up.requests[-1]["tools"] == tools

    run(scenario())
