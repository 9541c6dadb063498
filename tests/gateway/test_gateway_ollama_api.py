"""The gateway's Ollama API, driven by the official ``ollama`` client: chat, generate and embed
through the same routing, fallback and metrics as OpenAI clients, over any backend; tags and ps
of what the key may use; errors as Ollama writes them."""

import asyncio
import json

import ollama
import pytest
from gateway_fakes import (
    ADMIN_KEY,
    ANTHROPIC_KEY_ENV,
    CITY_TOOL,
    USER_KEY,
    FakeAnthropic,
    FakeOllama,
    FakeOpenAIStream,
    anthropic_backend,
    closed_port_url,
    document,
    fakes,
    ollama_backend,
    serve,
    sha,
)

# The client imports its transport on first use: pay for that at collection, not in a timed test.
ollama.Client(host="http://127.0.0.1:9").close()

HI = [{"role": "user", "content": "hi"}]


def official(gw, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return ollama.Client(host=gw.url, headers=headers)


def test_chat_and_generate_whole_and_streamed_over_ollama(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama()) as (fake,),
            serve(document([ollama_backend("o", fake.url)]), tmp_path) as gw,
        ):

            def drive():
                with official(gw) as client:
                    return (
                        client.chat(model="chat", messages=HI),
                        list(client.chat(model="chat", messages=HI, stream=True)),
                        client.generate(model="chat", prompt="hi", system="be brief"),
                        list(client.generate(model="chat", prompt="hi", stream=True)),
                    )

            chat, parts, gen, gen_parts = await asyncio.to_thread(drive)
            assert chat.model == "chat"  # the name the client asked for
            assert chat.message.content == "hello from ollama"
            assert (chat.done, chat.prompt_eval_count, chat.eval_count) == (True, 11, 4)
            assert chat.total_duration > 0
            assert "".join(p.message.content for p in parts) == "hello from ollama"
            assert (parts[-1].done, parts[-1].eval_count) == (True, 4)
            assert gen.response == "hello from ollama"
            assert "".join(p.response for p in gen_parts) == "hello from ollama"
            assert gen_parts[-1].done_reason == "stop"
            # Templated generate goes upstream as a chat with the system prompt.
            assert fake.paths == ["/api/chat"] * 4
            assert fake.requests[2]["messages"][0] == {"role": "system", "content": "be brief"}

    run(scenario())


def test_embed_and_tool_calls_over_ollama(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama()) as (fake,),
            serve(document([ollama_backend("o", fake.url)]), tmp_path) as gw,
        ):

            def drive():
                with official(gw) as client:
                    return (
                        client.embed(model="chat", input=["a", "b"]),
                        client.chat(model="chat", messages=HI, tools=[CITY_TOOL]),
                        list(
                            client.chat(model="chat", messages=HI, tools=[CITY_TOOL], stream=True)
                        ),
                    )

            embed, tool, tool_parts = await asyncio.to_thread(drive)
            assert [list(v) for v in embed.embeddings] == [[0.1, 0.2, 0.0], [0.1, 0.2, 1.0]]
            call = tool.message.tool_calls[0].function
            assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
            calls = [c for p in tool_parts for c in (p.message.tool_calls or [])]
            assert [dict(c.function.arguments) for c in calls] == [{"city": "Paris"}]
            assert fake.requests[1]["tools"][0]["function"]["name"] == "get_weather"

    run(scenario())


def test_chat_over_openai_and_anthropic_backends(run, tmp_path, monkeypatch):
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, "sk-ant-gateway")

    async def scenario():
        async with fakes(FakeOpenAIStream(), FakeAnthropic()) as (plain, claude):
            doc = document(
                [{"name": "p", "url": plain.url}, anthropic_backend("c", claude.url)],
                lanes=[
                    {"name": "chat", "model": "chat", "backends": ["p"]},
                    {"name": "claude", "model": "claude", "backends": ["c"]},
                ],
            )
            async with serve(doc, tmp_path) as gw:

                def drive():
                    with official(gw) as client:
                        return (
                            list(client.chat(model="chat", messages=HI, stream=True)),
                            client.chat(model="claude", messages=HI, tools=[CITY_TOOL]),
                            list(client.chat(model="claude", messages=HI, stream=True)),
                        )

                plain_parts, tool, claude_parts = await asyncio.to_thread(drive)
                assert "".join(p.message.content for p in plain_parts) == "one two"
                assert (plain_parts[-1].prompt_eval_count, plain_parts[-1].eval_count) == (5, 2)
                assert plain.requests[0]["stream_options"] == {"include_usage": True}
                assert tool.message.content == "hello from claude"
                assert dict(tool.message.tool_calls[0].function.arguments) == {"city": "Paris"}
                text = "".join(p.message.content for p in claude_parts)
                assert text == "hello from claude "
                assert claude_parts[-1].eval_count == 6

    run(scenario())


def test_tags_list_what_the_key_may_use(run, tmp_path):
    keys = {
        "entries": [
            {"sha256": sha(ADMIN_KEY), "project": "ops", "admin": True},
            {"sha256": sha(USER_KEY), "project": "team-a", "lanes": ["chat"]},
        ]
    }
    doc = document(
        [{"name": "a", "url": "http://127.0.0.1:9"}],
        lanes=[
            {"name": "chat", "model": "chat", "aliases": ["default"], "backends": ["a"]},
            {"name": "big", "model": "big", "backends": ["a"], "parametersBillions": 70},
        ],
        keys=keys,
    )

    async def scenario():
        async with serve(doc, tmp_path) as gw:

            def drive():
                with official(gw, USER_KEY) as user, official(gw, ADMIN_KEY) as admin:
                    return user.list(), admin.list()

            user, admin = await asyncio.to_thread(drive)
            assert [m.model for m in user.models] == ["chat", "default"]
            assert [m.model for m in admin.models] == ["chat", "default", "big"]
            assert admin.models[2].details.parameter_size == "70B"
            status, body = await gw.get("/api/tags")
            assert status == 401
            assert set(body) == {"error"}

    run(scenario())


def test_ps_merges_the_ollama_backends_and_names_the_unreachable(run, tmp_path):
    async def scenario():
        up, slow = FakeOllama(), FakeOllama()
        slow.loaded = "qwen2.5:7b"
        async with fakes(up, slow, FakeOllama()) as (up, slow, other):
            doc = document(
                [
                    ollama_backend("up", up.url),
                    ollama_backend("dead", closed_port_url()),
                    ollama_backend("slow", slow.url),
                    {"name": "plain", "url": "http://127.0.0.1:9"},
                ]
            )
            async with serve(doc, tmp_path) as gw:

                def drive():
                    with official(gw) as client:
                        return client.ps()

                ps = await asyncio.to_thread(drive)
                assert [m.model for m in ps.models] == ["llama3.2:1b", "qwen2.5:7b"]
                status, raw = await gw.get("/api/ps")
                assert status == 200
                assert [m["backend"] for m in raw["models"]] == ["up", "slow"]
                assert [u["backend"] for u in raw["unreachable"]] == ["dead"]
                assert "connect" in raw["unreachable"][0]["error"]
                assert other.paths == []  # not in the document

    run(scenario())


def test_ps_does_not_wait_on_a_slow_host(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama("slow")) as (fake,):
            doc = document([ollama_backend("o", fake.url, timeoutSeconds=0.2)])
            async with serve(doc, tmp_path) as gw:
                started = asyncio.get_running_loop().time()
                status, raw = await gw.get("/api/ps")
                assert asyncio.get_running_loop().time() - started < 1
                assert (status, raw["models"]) == (200, [])
                assert raw["unreachable"][0]["error"].startswith("timeout")

    run(scenario())


def test_version(run, tmp_path):
    async def scenario():
        async with serve(document([{"name": "a", "url": "http://127.0.0.1:9"}]), tmp_path) as gw:
            assert await gw.get("/api/version") == (200, {"version": "0.12.6"})

    run(scenario())


def test_errors_are_ollama_shaped_with_the_openai_statuses(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama("500")) as (fake,):
            doc = document([ollama_backend("o", fake.url)])
            async with serve(doc, tmp_path) as gw:

                def chat(model, messages=HI):
                    with official(gw) as client:
                        client.chat(model=model, messages=messages, stream=False)

                with pytest.raises(ollama.ResponseError) as e:
                    await asyncio.to_thread(chat, "nope")
                assert e.value.status_code == 404
                assert "unknown model 'nope'; available: chat" in e.value.error
                with pytest.raises(ollama.ResponseError) as e:
                    await asyncio.to_thread(chat, "chat")
                assert e.value.status_code == 502
                assert "every backend of lane 'chat' failed" in e.value.error
                status, _, body = await gw.post(
                    "/api/chat", {"model": "chat", "messages": [{"role": "wizard"}]}
                )
                assert status == 400
                assert body == {"error": "messages[0].role: unsupported role 'wizard'"}
                status, _, body = await gw.post("/api/chat", b"{nope")
                assert status == 400
                assert set(body) == {"error"}
                status, body = await gw.get("/api/chat")
                assert (status, set(body)) == (405, {"error"})
                status, body = await gw.get("/api/pull")
                assert (status, set(body)) == (404, {"error"})

    run(scenario())


def test_a_failure_mid_stream_is_an_error_line(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama("error_mid")) as (fake,):
            doc = document([ollama_backend("o", fake.url)])
            async with serve(doc, tmp_path) as gw:
                seen = []

                def drive():
                    with official(gw) as client:
                        for part in client.chat(model="chat", messages=HI, stream=True):
                            seen.append(part.message.content)

                with pytest.raises(ollama.ResponseError, match="failed mid-stream"):
                    await asyncio.to_thread(drive)
                assert seen == ["hello "]
                _, headers, raw = await gw.post("/api/chat", {"model": "chat", "messages": HI})
                assert headers["content-type"] == "application/x-ndjson"
                lines = [json.loads(line) for line in raw.decode().splitlines()]
                assert set(lines[-1]) == {"error"}

    run(scenario())


def test_latest_tag_and_lane_header_select_like_openai(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama()) as (fake,):
            doc = document([ollama_backend("o", fake.url)])
            async with serve(doc, tmp_path) as gw:
                body = {"model": "chat:latest", "messages": HI, "stream": False}
                status, headers, answer = await gw.post("/api/chat", body)
                assert (status, headers["x-dayzero-lane"]) == (200, "chat")
                assert answer["model"] == "chat:latest"
                body = {"model": "x", "messages": HI, "stream": False}
                status, _, _ = await gw.post("/api/chat", body, {"X-Dayzero-Lane": "chat"})
                assert status == 200
                _, metrics = await gw.get("/metrics")
                assert 'endpoint="api/chat"' in metrics

    run(scenario())
