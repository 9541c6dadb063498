"""The Ollama fake speaks the real protocol: the official ``ollama`` client reads all it says.

The gateway tests trust this fake for what Ollama sends, so it is checked against the one
client that knows Ollama's shapes best, driven from a thread (it blocks) while the fake serves.
"""

import asyncio

import ollama
import pytest
from gateway_fakes import CITY_TOOL, FakeOllama, fakes

# The client imports its transport on first use: pay for that at collection, not in a timed test.
ollama.Client(host="http://127.0.0.1:9").close()

MODEL = "llama3.2:1b"
HI = [{"role": "user", "content": "hi"}]


def test_chat_generate_and_tool_calls_parse(run):
    async def scenario():
        async with fakes(FakeOllama()) as (fake,):

            def drive():
                with ollama.Client(host=fake.url) as client:
                    return (
                        client.chat(model=MODEL, messages=HI),
                        list(client.chat(model=MODEL, messages=HI, stream=True)),
                        client.chat(model=MODEL, messages=HI, tools=[CITY_TOOL]),
                        list(client.chat(model=MODEL, messages=HI, tools=[CITY_TOOL], stream=True)),
                        client.generate(model=MODEL, prompt="hi"),
                        list(client.generate(model=MODEL, prompt="hi", stream=True)),
                    )

            chat, parts, tool, tool_parts, gen, gen_parts = await asyncio.to_thread(drive)
            assert chat.message.content == "hello from ollama"
            assert (chat.done_reason, chat.prompt_eval_count, chat.eval_count) == ("stop", 11, 4)
            assert "".join(p.message.content for p in parts) == "hello from ollama"
            assert [p.done for p in parts] == [False, False, False, True]
            call = tool.message.tool_calls[0].function
            assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
            assert tool_parts[0].message.tool_calls[0].function.name == "get_weather"
            assert gen.response == "hello from ollama"
            assert gen.context == [1, 2, 3]
            assert "".join(p.response for p in gen_parts) == "hello from ollama"
            assert gen_parts[-1].eval_count == 4
            assert fake.paths == ["/api/chat"] * 4 + ["/api/generate"] * 2

    run(scenario())


def test_embed_tags_ps_parse(run):
    async def scenario():
        async with fakes(FakeOllama()) as (fake,):

            def drive():
                with ollama.Client(host=fake.url) as client:
                    return client.embed(model=MODEL, input=["a", "b"]), client.list(), client.ps()

            embed, tags, ps = await asyncio.to_thread(drive)
            assert [list(v) for v in embed.embeddings] == [[0.1, 0.2, 0.0], [0.1, 0.2, 1.0]]
            assert tags.models[0].model == MODEL
            assert tags.models[0].details.parameter_size == "1.2B"
            assert ps.models[0].context_length == 4096
            assert ps.models[0].expires_at.year == 2025

    run(scenario())


@pytest.mark.parametrize(("mode", "status"), [("not_found", 404), ("500", 500)])
def test_errors_are_what_the_client_reports(run, mode, status):
    async def scenario():
        async with fakes(FakeOllama(mode)) as (fake,):

            def drive():
                with ollama.Client(host=fake.url) as client:
                    client.chat(model=MODEL, messages=HI)

            with pytest.raises(ollama.ResponseError) as e:
                await asyncio.to_thread(drive)
            assert e.value.status_code == status
            assert "not found" in e.value.error or "terminated" in e.value.error

    run(scenario())


def test_an_error_line_ends_a_stream_with_the_clients_error(run):
    async def scenario():
        async with fakes(FakeOllama("error_mid")) as (fake,):
            seen = []

            def drive():
                with ollama.Client(host=fake.url) as client:
                    for part in client.chat(model=MODEL, messages=HI, stream=True):
                        seen.append(part.message.content)

            with pytest.raises(ollama.ResponseError, match="terminated"):
                await asyncio.to_thread(drive)
            assert seen == ["hello "]

    run(scenario())
