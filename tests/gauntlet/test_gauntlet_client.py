"""The client through httpx's MockTransport: what it measures and records without a socket."""

from __future__ import annotations

import asyncio
import json

import httpx

from dayzero.gauntlet.client import ChatClient, Outcome
from dayzero.gauntlet.stability import bad_periods
from dayzero.gauntlet.stats import bootstrap_ci, percentile, rule_of_three


def sse(*chunks: dict) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def call(handler, body=None, **kwargs) -> tuple[Outcome, list[Outcome]]:
    async def go() -> tuple[Outcome, list[Outcome]]:
        async with ChatClient(
            "http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler), **kwargs
        ) as client:
            outcome = await client.chat(body or {"messages": []})
            return outcome, client.outcomes

    return asyncio.run(go())


def test_a_stream_is_measured_and_tool_call_pieces_are_joined():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["body"] = json.loads(request.content)
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=sse(
                {"choices": [{"delta": {"content": "Hi"}}]},
                {"choices": [{"delta": {"content": " there"}}]},
                {"choices": [{"delta": {"tool_calls": [
                    {"index": 0, "id": "c0", "function": {"name": "get_", "arguments": '{"a"'}}
                ]}}]},
                {"choices": [{"delta": {"tool_calls": [
                    {"index": 0, "function": {"name": "time", "arguments": ": 1}"}}
                ]}, "finish_reason": "tool_calls"}]},
                {"choices": [], "usage": {"completion_tokens": 4}},
            ),
        )  # fmt: skip

    outcome, timeline = call(handler, api_key="sk-x")
    assert seen["body"]["stream"] is True
    assert seen["body"]["model"] == "m"
    assert seen["auth"] == "Bearer sk-x"
    assert outcome.ok
    assert outcome.text == "Hi there"
    assert [(c.name, c.arguments, c.id) for c in outcome.tool_calls] == [
        ("get_time", '{"a": 1}', "c0")
    ]
    assert outcome.finish_reason == "tool_calls"
    assert outcome.completion_tokens == 4
    assert outcome.chunks == 4
    assert 0 <= outcome.ttft <= outcome.total
    assert outcome.per_token is not None
    assert timeline == [outcome]


def test_a_503_is_an_outcome_with_its_time_not_an_exception():
    outcome, _ = call(lambda _: httpx.Response(503, json={"error": "no healthy worker"}))
    assert not outcome.ok
    assert outcome.status == 503
    assert "no healthy worker" in (outcome.error or "")
    assert outcome.started >= 0


def test_a_server_that_ignores_stream_is_read_whole():
    call_ = {"id": "c", "function": {"name": "get_time", "arguments": {"city": "Oslo"}}}
    answer = {
        "choices": [
            {"message": {"content": "Whole.", "tool_calls": [call_]}, "finish_reason": "stop"}
        ],
        "usage": {"completion_tokens": 2},
    }
    outcome, _ = call(lambda _: httpx.Response(200, json=answer))
    assert (outcome.text, outcome.finish_reason, outcome.chunks) == ("Whole.", "stop", 1)
    assert outcome.tool_calls[0].arguments == '{"city": "Oslo"}'  # an object, re-encoded


def test_a_malformed_chunk_is_recorded():
    bad = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"data: {not json\n\n"
    )
    outcome, _ = call(lambda _: bad)
    assert "malformed stream chunk" in (outcome.error or "")
    assert not outcome.ok


def test_a_connection_failure_has_status_0():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    outcome, _ = call(refuse)
    assert outcome.status == 0
    assert "ConnectError" in (outcome.error or "")


def test_a_slow_answer_is_cut_at_the_timeout():
    async def slow_stream():
        yield b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
        await asyncio.sleep(5)
        yield b"data: [DONE]\n\n"

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=slow_stream()
        )

    outcome, _ = call(handler, timeout=0.1)
    assert outcome.error == "no complete answer within 0.1s"
    assert outcome.total < 1


def test_percentiles_and_intervals():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 95) == 95.05
    assert percentile([3.0], 95) == 3.0
    low, high = bootstrap_ci(values, lambda v: percentile(v, 50), seed=1, resamples=200)
    assert low < 50.5 < high
    assert bootstrap_ci(values, max, seed=1, resamples=200) == bootstrap_ci(
        values, max, seed=1, resamples=200
    )
    assert rule_of_three(300) == 0.01
    assert rule_of_three(0) == 1.0


def timeline(*pairs: tuple[float, int]) -> list[Outcome]:
    return [Outcome(started=t, status=s) for t, s in pairs]


def test_sliding_window_finds_each_outage_as_its_own_period():
    ok = [(t / 10, 200) for t in range(0, 100)]  # 10 s of requests every 0.1 s
    outage = {round(t / 10, 1) for t in [*range(20, 30), *range(70, 77)]}
    run = timeline(*((t, 503 if t in outage else s) for t, s in ok))
    periods = bad_periods(run, window=1.0, max_rate=0.5, min_requests=3)
    assert [(round(a, 1), round(b, 1), n, total) for a, b, n, total in periods] == [
        (2.0, 2.9, 10, 10),
        (7.0, 7.6, 7, 7),
    ]


def test_sliding_window_ignores_thin_windows_and_rates_at_the_limit():
    thin = timeline((0.0, 503), (0.1, 503), (5.0, 200))
    assert bad_periods(thin, window=1.0, max_rate=0.5, min_requests=3) == []
    half = timeline((0.0, 429), (0.1, 200), (0.2, 429), (0.3, 200))
    assert bad_periods(half, window=1.0, max_rate=0.5, min_requests=3) == []
    assert len(bad_periods(half, window=1.0, max_rate=0.4, min_requests=3)) == 1
