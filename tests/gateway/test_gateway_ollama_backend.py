"""OpenAI clients through the gateway to Ollama backends: translation, streams, tool calls,
failover before the first chunk, and Ollama's errors as OpenAI's."""

import asyncio
import json

import openai
import pytest
from gateway_fakes import (
    CHAT,
    FakeOllama,
    FakeUpstream,
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

STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_chat_whole_and_streamed(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama()) as (fake,):
            doc = document([ollama_backend("o", fake.url)])
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post("/v1/chat/completions", CHAT)
                assert (status, headers["x-dayzero-backend"]) == (200, "o"), body
                assert body["object"] == "chat.completion"
                assert body["choices"][0]["message"]["content"] == "hello from ollama"
                assert body["usage"]["prompt_tokens"] == 11
                assert fake.requests[0]["model"] == "llama3.2:1b"
                assert fake.requests[0]["stream"] is False
                status, headers, raw = await gw.post("/v1/chat/completions", STREAM)
                assert headers["content-type"].startswith("text/event-stream")
                events = sse_events(raw)
                assert events[-1] == "[DONE]"
                text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2])
                assert text == "hello from ollama"
                assert events[-2]["usage"]["completion_tokens"] == 4
                assert fake.paths == ["/api/chat", "/api/chat"]

    run(scenario())


def official(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)


def test_official_openai_client_gets_tool_calls_whole_and_streamed(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama()) as (fake,),
            serve(document([ollama_backend("o", fake.url)]), tmp_path) as gw,
        ):

            def drive():
                msgs = [{"role": "user", "content": "weather in Paris?"}]
                with official(gw) as client:
                    whole = client.chat.completions.create(
                        model="chat", messages=msgs, tools=[WEATHER]
                    )
                    chunks = list(
                        client.chat.completions.create(
                            model="chat", messages=msgs, tools=[WEATHER], stream=True
                        )
                    )
                    return whole, chunks

            whole, chunks = await asyncio.to_thread(drive)
            call = whole.choices[0].message.tool_calls[0]
            assert whole.choices[0].finish_reason == "tool_calls"
            assert call.function.name == "get_weather"
            assert json.loads(call.function.arguments) == {"city": "Paris"}
            deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
            assert deltas[0].function.name == "get_weather"
            arguments = "".join(d.function.arguments for d in deltas)
            assert json.loads(arguments) == {"city": "Paris"}
            assert chunks[-1].choices[0].finish_reason == "tool_calls"
            assert fake.requests[0]["tools"][0]["function"]["name"] == "get_weather"

    run(scenario())


def test_official_openai_client_gets_completions_and_embeddings(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama()) as (fake,),
            serve(document([ollama_backend("o", fake.url)]), tmp_path) as gw,
        ):

            def drive():
                with official(gw) as client:
                    text = client.completions.create(model="chat", prompt="once upon")
                    vectors = client.embeddings.create(model="chat", input=["a", "b"])
                    return text, vectors

            text, vectors = await asyncio.to_thread(drive)
            assert text.choices[0].text == "hello from ollama"
            # openai-python asks for base64 embeddings; the gateway packs Ollama's floats.
            assert [round(x, 3) for x in vectors.data[1].embedding] == [0.1, 0.2, 1.0]
            assert fake.paths == ["/api/generate", "/api/embed"]
            assert fake.requests[0]["raw"] is True

    run(scenario())


@pytest.mark.parametrize(
    ("mode", "stream"),
    [(m, s) for m in ("500", "slow", "garbage", "dead") for s in (False, True)]
    + [("error_first", True)],
)
def test_falls_over_before_the_first_chunk(run, tmp_path, mode, stream):
    async def scenario():
        bad = FakeOllama("ok" if mode == "dead" else mode)
        async with fakes(bad, FakeOllama(text="second")) as (bad, good):
            url = closed_port_url() if mode == "dead" else bad.url
            doc = document(
                [ollama_backend("o1", url, timeoutSeconds=0.3), ollama_backend("o2", good.url)]
            )
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post(
                    "/v1/chat/completions", STREAM if stream else CHAT
                )
                assert (status, headers["x-dayzero-backend"]) == (200, "o2"), body
                assert len(good.requests) == 1

    run(scenario())


def test_a_4xx_is_an_openai_error_without_failover(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama("not_found"), FakeOllama()) as (bad, good):
            doc = document([ollama_backend("o1", bad.url), ollama_backend("o2", good.url)])
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post("/v1/chat/completions", CHAT)
                assert (status, headers["x-dayzero-backend"]) == (404, "o1")
                assert set(body["error"]) == {"message", "type", "param", "code"}
                assert "not found, try pulling it first" in body["error"]["message"]
                assert good.requests == []

    run(scenario())


def test_an_error_line_mid_stream_ends_with_an_error_event(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama("error_mid"), FakeOllama()) as (bad, good):
            doc = document([ollama_backend("o1", bad.url), ollama_backend("o2", good.url)])
            async with serve(doc, tmp_path) as gw:
                status, _, raw = await gw.post("/v1/chat/completions", STREAM)
                assert status == 200
                events = sse_events(raw)
                assert events[1]["choices"][0]["delta"]["content"] == "hello "
                assert "terminated" in events[-1]["error"]["message"]
                assert "[DONE]" not in events
                assert good.requests == []

    run(scenario())


def test_what_ollama_cannot_take_goes_to_the_next_backend_or_is_400(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama(), FakeUpstream()) as (ollama_, plain),
            serve(with_fallback(ollama_backend("o", ollama_.url), plain.url), tmp_path) as gw,
        ):
            status, headers, _ = await gw.post("/v1/chat/completions", {**CHAT, "n": 2})
            assert (status, headers["x-dayzero-backend"]) == (200, "p")
            status, _, body = await gw.post(
                "/v1/chat/completions", {**CHAT, "model": "alone", "n": 2}
            )
            assert (status, body["error"]["param"]) == (400, "n")
            assert body["error"]["code"] == "unsupported"
            assert ollama_.requests == []

    run(scenario())


def test_stream_tokens_are_counted_without_the_usage_chunk(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama()) as (fake,):
            doc = document([ollama_backend("o", fake.url)])
            async with serve(doc, tmp_path) as gw:
                _, _, raw = await gw.post("/v1/chat/completions", {**CHAT, "stream": True})
                assert all("usage" not in e for e in sse_events(raw)[:-1])
                _, metrics = await gw.get("/metrics")
                assert (
                    'direction="output",lane="chat",model="llama3.2:1b",project="local"} 4.0'
                    in (metrics)
                )

    run(scenario())
