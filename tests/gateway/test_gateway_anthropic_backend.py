"""OpenAI clients through the gateway to Anthropic backends: Messages translation, the typed
event stream (tool calls included) as OpenAI chunks, usage counted as cost, Anthropic's errors,
and failover into and out of Anthropic."""

import asyncio
import json

import openai
import pytest
from gateway_fakes import (
    ANTHROPIC_KEY_ENV,
    CHAT,
    FakeAnthropic,
    FakeOllama,
    FakeUpstream,
    anthropic_backend,
    closed_port_url,
    document,
    fakes,
    ollama_backend,
    serve,
    sse_events,
    with_fallback,
)

# The client imports its transport on first use: pay for that at collection, not in a timed test.
openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="none").close()

KEY = "sk-ant-gateway"
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PRICES = {"claude-fake-1": {"inputUsdPerMillion": 3, "outputUsdPerMillion": 15}}


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch):
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, KEY)


def official(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)


def test_chat_whole_and_streamed_with_the_anthropic_headers(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic()) as (fake,):
            doc = document([anthropic_backend("c", fake.url)], prices=PRICES)
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post(
                    "/v1/chat/completions", CHAT, {"Authorization": "Bearer sk-client"}
                )
                assert (status, headers["x-dayzero-backend"]) == (200, "c"), body
                assert body["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
                assert body["choices"][0]["message"]["content"] == "hello from claude"
                assert body["usage"] == {
                    "prompt_tokens": 12,
                    "completion_tokens": 6,
                    "total_tokens": 18,
                }
                sent = fake.headers[0]
                assert sent["x-api-key"] == KEY
                assert sent["anthropic-version"] == "2023-06-01"
                assert "traceparent" in sent
                assert "Authorization" not in sent
                assert fake.requests[0]["max_tokens"] == 4096
                assert fake.requests[0]["model"] == "claude-fake-1"
                _, _, raw = await gw.post("/v1/chat/completions", STREAM)
                events = sse_events(raw)
                assert events[-1] == "[DONE]"
                text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2])
                assert text == "hello from claude "
                assert events[-3]["choices"][0]["finish_reason"] == "stop"
                assert events[-2]["usage"]["completion_tokens"] == 6
                _, metrics = await gw.get("/metrics")
                # Two requests of 12 in and 6 out at $3 and $15 per million tokens.
                cost = 2 * (12 * 3 + 6 * 15) / 1e6
                line = next(
                    x
                    for x in metrics.splitlines()
                    if x.startswith("dayzero_gateway_cost_usd_total{")
                )
                assert float(line.split()[-1]) == pytest.approx(cost)

    run(scenario())


def test_official_openai_client_streams_tool_calls(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeAnthropic()) as (fake,),
            serve(document([anthropic_backend("c", fake.url)]), tmp_path) as gw,
        ):

            def drive():
                msgs = [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather in Paris?"},
                ]
                with official(gw) as client:
                    whole = client.chat.completions.create(
                        model="chat", messages=msgs, tools=[WEATHER], max_tokens=100
                    )
                    chunks = list(
                        client.chat.completions.create(
                            model="chat",
                            messages=msgs,
                            tools=[WEATHER],
                            stream=True,
                            stream_options={"include_usage": True},
                        )
                    )
                    return whole, chunks

            whole, chunks = await asyncio.to_thread(drive)
            message = whole.choices[0].message
            assert whole.choices[0].finish_reason == "tool_calls"
            assert message.content == "hello from claude"
            assert message.tool_calls[0].id == "toolu_01A09q90qw90lq917835lq9"
            assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
            deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
            assert deltas[0].function.name == "get_weather"
            assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Paris"}
            finish = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert finish[-1] == "tool_calls"
            assert chunks[-1].usage.prompt_tokens == 12
            assert fake.requests[0]["system"] == "be brief"
            assert fake.requests[0]["max_tokens"] == 100
            assert fake.requests[0]["tools"][0]["input_schema"]["properties"] == {
                "city": {"type": "string"}
            }

    run(scenario())


def test_a_4xx_is_an_openai_error_without_failover(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic("bad_request"), FakeUpstream()) as (claude, plain):
            doc = document([anthropic_backend("c", claude.url), {"name": "p", "url": plain.url}])
            async with serve(doc, tmp_path) as gw:

                def drive():
                    with official(gw) as client:
                        client.chat.completions.create(model="chat", messages=CHAT["messages"])

                with pytest.raises(openai.BadRequestError) as e:
                    await asyncio.to_thread(drive)
                assert e.value.body["message"] == "prompt is too long"
                assert e.value.response.headers["x-dayzero-backend"] == "c"
                assert plain.requests == []

    run(scenario())


@pytest.mark.parametrize(
    ("mode", "stream"),
    [(m, s) for m in ("500", "overloaded", "slow") for s in (False, True)]
    + [("error_first", True)],
)
def test_falls_over_out_of_anthropic_before_the_first_chunk(run, tmp_path, mode, stream):
    async def scenario():
        async with fakes(FakeAnthropic(mode), FakeUpstream()) as (claude, plain):
            doc = document(
                [
                    anthropic_backend("c", claude.url, timeoutSeconds=0.3),
                    {"name": "p", "url": plain.url},
                ]
            )
            async with serve(doc, tmp_path) as gw:
                status, headers, _ = await gw.post(
                    "/v1/chat/completions", STREAM if stream else CHAT
                )
                assert (status, headers["x-dayzero-backend"]) == (200, "p")
                assert len(claude.requests) == 1

    run(scenario())


def test_an_error_event_mid_stream_ends_with_an_error_event(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic("error_mid"), FakeUpstream()) as (claude, plain):
            doc = document([anthropic_backend("c", claude.url), {"name": "p", "url": plain.url}])
            async with serve(doc, tmp_path) as gw:
                status, _, raw = await gw.post("/v1/chat/completions", STREAM)
                assert status == 200
                events = sse_events(raw)
                assert events[0]["choices"][0]["delta"]["role"] == "assistant"
                assert "Overloaded" in events[-1]["error"]["message"]
                assert events[-1]["error"]["code"] == "upstream_error"
                assert "[DONE]" not in events
                assert plain.requests == []

    run(scenario())


def test_completions_and_embeddings_skip_anthropic_without_a_dial(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic(), FakeUpstream()) as (claude, plain):
            doc = with_fallback(anthropic_backend("c", claude.url), plain.url)
            async with serve(doc, tmp_path) as gw:
                status, headers, _ = await gw.post(
                    "/v1/embeddings", {"model": "chat", "input": "x"}
                )
                assert (status, headers["x-dayzero-backend"]) == (200, "p")
                status, _, body = await gw.post(
                    "/v1/completions", {"model": "alone", "prompt": "x"}
                )
                assert (status, body["error"]["code"]) == (400, "unsupported")
                assert "chat only" in body["error"]["message"]
                assert claude.requests == []
                _, status_doc = await gw.get("/v1/models/status")
                assert status_doc["backends"][0]["circuit"] == "closed"

    run(scenario())


def test_a_dead_ollama_falls_over_to_paid_anthropic(run, tmp_path):
    async def scenario():
        async with fakes(FakeAnthropic(), FakeOllama()) as (claude, spare):
            backends = [
                ollama_backend("ollama", closed_port_url()),
                anthropic_backend("claude", claude.url, paid=True),
                ollama_backend("spare", spare.url, paid=True),
            ]
            lane = {
                "name": "chat",
                "model": "chat",
                "backends": ["claude", "ollama"],
                "paidFallback": {"enabled": True},
            }
            async with serve(document(backends, lanes=[lane]), tmp_path) as gw:

                def drive():
                    with official(gw) as client:
                        return list(
                            client.chat.completions.create(
                                model="chat",
                                messages=CHAT["messages"],
                                tools=[WEATHER],
                                stream=True,
                            )
                        )

                chunks = await asyncio.to_thread(drive)
                deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
                assert json.loads("".join(d.function.arguments for d in deltas)) == {
                    "city": "Paris"
                }
                assert len(claude.requests) == 1
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert (status, headers["x-dayzero-backend"]) == (200, "claude")
                _, metrics = await gw.get("/metrics")
                assert 'fallback_reason="connect",lane="chat",model="claude-fake-1"' in metrics
                assert 'provider_tier="paid"' in metrics

    run(scenario())
