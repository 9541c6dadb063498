"""The gateway driven by the official openai client, the way its users will drive it.

Sync and async clients, streams with usage, tool calls (whole and as streamed deltas the client
reassembles), legacy completions, embeddings (the client asks for base64 by default), the model
list, each error status mapped to the client's own exception class, and failover seen in
``X-Dayzero-Backend``. The gateway and its fakes run on a loop in a background thread
(``in_background``) so the blocking client can be called from the test; ``max_retries=0`` so an
error is seen once, as the gateway sent it.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import openai
import pytest
from gateway_fakes import (
    ADMIN_KEY,
    TOOL_CALL_ID,
    USER_KEY,
    WEATHER_TOOL,
    Background,
    ClientUpstream,
    FakeUpstream,
    closed_port_url,
    document,
    embedding_vector,
    in_background,
    sha,
)

HI = [{"role": "user", "content": "hi"}]
UPSTREAM_MODEL = "smol-upstream"


def lanes(fakes: list[FakeUpstream], **extra: Any) -> dict[str, Any]:
    """Lane ``chat`` (aliases default, gpt-4o-mini) and lane ``fast``, over every fake in order."""
    backends = [
        {"name": f"b{i}", "url": fake.url, "model": UPSTREAM_MODEL, "timeoutSeconds": 1}
        for i, fake in enumerate(fakes)
    ]
    names = [b["name"] for b in backends]
    return document(
        backends,
        lanes=[
            {
                "name": "chat",
                "model": "chat",
                "aliases": ["default", "gpt-4o-mini"],
                "backends": names,
            },
            {"name": "fast", "model": "fast", "backends": names},
        ],
        **extra,
    )


KEYS = {
    "enabled": True,
    "entries": [
        {"sha256": sha(ADMIN_KEY), "project": "ops", "admin": True},
        {"sha256": sha(USER_KEY), "project": "team-a", "lanes": ["chat"]},
    ],
}


def with_keys(fakes: list[FakeUpstream]) -> dict[str, Any]:
    return lanes(fakes, keys=KEYS)


def client(bg: Background, key: str = "sk-unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=bg.url + "/v1", api_key=key, max_retries=0, timeout=2)


def async_client(bg: Background) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=bg.url + "/v1", api_key="sk-unused", max_retries=0, timeout=2
    )


def metrics(bg: Background) -> str:
    with urllib.request.urlopen(bg.url + "/metrics", timeout=2) as r:  # noqa: S310 - loopback
        return str(r.read().decode())


# -- chat -----------------------------------------------------------------------------------------


def test_sync_chat_answers_and_names_the_backend(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
        answer = raw.parse()
        assert raw.status_code == 200
        assert raw.headers["x-dayzero-backend"] == "b0"
        assert raw.headers["x-dayzero-lane"] == "chat"
        assert answer.choices[0].message.content == f"from {bg.fakes[0].url}"
        assert answer.usage is not None
        assert answer.usage.total_tokens == 10
        sent = bg.fakes[0].requests[0]
        assert sent["model"] == UPSTREAM_MODEL
        assert sent["messages"] == HI


def test_sync_stream_reports_usage_and_the_gateway_counts_it(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        stream = c.chat.completions.create(
            model="chat", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "one two"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 2
        assert bg.fakes[0].requests[0]["stream_options"] == {"include_usage": True}
        exposition = metrics(bg)
        assert 'direction="output",lane="chat",model="smol-upstream",project="local"} 2.0' in (
            exposition
        )


def test_async_client_chats_and_streams(run, tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg:

        async def scenario() -> None:
            async with async_client(bg) as c:
                answer = await c.chat.completions.create(model="chat", messages=HI)
                assert answer.choices[0].message.content == f"from {bg.fakes[0].url}"
                stream = await c.chat.completions.create(
                    model="chat",
                    messages=HI,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = [ch async for ch in stream]
                text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                assert text == "one two"
                assert chunks[-1].usage is not None
                assert chunks[-1].usage.total_tokens == 7
                raw = await c.chat.completions.with_raw_response.create(model="chat", messages=HI)
                assert raw.headers["x-dayzero-backend"] == "b0"

        run(scenario())


# -- tools ----------------------------------------------------------------------------------------


def test_tool_call_round_trip(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        first = c.chat.completions.create(model="chat", messages=HI, tools=[WEATHER_TOOL])
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        assert message.tool_calls is not None
        call = message.tool_calls[0]
        assert call.type == "function"
        assert call.id == TOOL_CALL_ID
        assert call.function.name == "get_weather"
        assert call.function.arguments == '{"city": "Paris"}'
        history: list[Any] = [
            *HI,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        final = c.chat.completions.create(model="chat", messages=history, tools=[WEATHER_TOOL])
        assert final.choices[0].message.content == "it is sunny"
        # Tools and the tool's turn reach the upstream exactly as the client wrote them.
        assert bg.fakes[0].requests[0]["tools"] == [WEATHER_TOOL]
        assert bg.fakes[0].requests[1]["messages"][1]["tool_calls"][0]["id"] == TOOL_CALL_ID
        assert bg.fakes[0].requests[1]["messages"][2]["tool_call_id"] == TOOL_CALL_ID


def test_streamed_tool_call_deltas_are_reassembled_by_the_client(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        with c.chat.completions.stream(model="chat", messages=HI, tools=[WEATHER_TOOL]) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_completion()
        assert "tool_calls.function.arguments.delta" in kinds
        assert "tool_calls.function.arguments.done" in kinds
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        call = choice.message.tool_calls[0]
        assert call.id == TOOL_CALL_ID
        assert call.function.name == "get_weather"
        assert call.function.arguments == '{"city": "Paris"}'
        assert bg.fakes[0].requests[0]["stream"] is True


# -- completions, embeddings, models ------------------------------------------------------------


def test_legacy_completions(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        raw = c.completions.with_raw_response.create(model="chat", prompt="Say", max_tokens=4)
        answer = raw.parse()
        assert raw.headers["x-dayzero-backend"] == "b0"
        assert answer.choices[0].text == f"from {bg.fakes[0].url}"
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 4
        assert bg.fakes[0].requests[0] == {
            "model": UPSTREAM_MODEL,
            "prompt": "Say",
            "max_tokens": 4,
        }


def test_embeddings_as_base64_by_default_and_as_floats(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        texts = ["ab", "abcd"]
        packed = c.embeddings.create(model="chat", input=texts)
        assert [d.embedding for d in packed.data] == [embedding_vector(t) for t in texts]
        assert bg.fakes[0].requests[0]["encoding_format"] == "base64"
        plain = c.embeddings.create(model="chat", input="abc", encoding_format="float")
        assert plain.data[0].embedding == embedding_vector("abc")
        assert plain.usage.prompt_tokens == 1


def test_models_list_names_every_model_and_alias(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        ids = {m.id for m in c.models.list()}
        assert ids == {"chat", "default", "gpt-4o-mini", "fast"}


# -- errors, as the client's exception classes ---------------------------------------------------


def test_unknown_model_is_not_found_naming_what_exists(tmp_path):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        with pytest.raises(openai.NotFoundError) as e:
            c.chat.completions.create(model="gpt-9", messages=HI)
        assert e.value.status_code == 404
        assert e.value.param == "model"
        for name in ("chat", "default", "gpt-4o-mini", "fast"):
            assert name in e.value.message
        assert bg.fakes[0].requests == []


def test_bad_key_is_authentication_error(tmp_path):
    with in_background([ClientUpstream()], with_keys, tmp_path) as bg:
        with client(bg, key="sk-wrong") as c, pytest.raises(openai.AuthenticationError) as e:
            c.chat.completions.create(model="chat", messages=HI)
        assert e.value.status_code == 401
        with client(bg, key=USER_KEY) as c:
            assert c.chat.completions.create(model="chat", messages=HI).choices


def test_lane_not_allowed_is_permission_denied(tmp_path):
    with in_background([ClientUpstream()], with_keys, tmp_path) as bg, client(bg, USER_KEY) as c:
        with pytest.raises(openai.PermissionDeniedError) as e:
            c.chat.completions.create(model="fast", messages=HI)
        assert e.value.status_code == 403
        assert e.value.code == "lane_not_allowed"
        assert "fast" in e.value.message
        assert bg.fakes[0].requests == []


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("max_tokens", {"max_tokens": "many"}),
        ("temperature", {"temperature": "hot"}),
        ("tools", {"tools": {"not": "a list"}}),
        ("stream", {"extra_body": {"stream": "yes"}}),
    ],
)
def test_bad_field_is_bad_request_naming_it(tmp_path, field, extra):
    with in_background([ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="chat", messages=HI, **extra)
        assert e.value.status_code == 400
        assert e.value.param == field
        assert field in e.value.message
        assert bg.fakes[0].requests == []


def test_concurrency_limit_is_rate_limit_error_with_retry_after(tmp_path):
    def one_slot(fakes: list[FakeUpstream]) -> dict[str, Any]:
        doc = lanes(fakes)
        doc["lanes"][0]["concurrency"] = {"reserved": 1, "max": 1, "queueTimeoutSeconds": 0.05}
        return doc

    with in_background([ClientUpstream("delay:0.5")], one_slot, tmp_path) as bg, client(bg) as c:
        answers: list[Any] = []
        holder = threading.Thread(
            target=lambda: answers.append(c.chat.completions.create(model="chat", messages=HI))
        )
        holder.start()
        deadline = time.monotonic() + 1
        while bg.fakes[0].active == 0:
            assert time.monotonic() < deadline, "the first request never reached the upstream"
            time.sleep(0.005)
        with pytest.raises(openai.RateLimitError) as e:
            c.chat.completions.create(model="chat", messages=HI)
        holder.join(timeout=1.5)
        assert e.value.status_code == 429
        assert int(e.value.response.headers["retry-after"]) >= 1
        assert len(answers) == 1
        assert len(bg.fakes[0].requests) == 1


# -- failover -------------------------------------------------------------------------------------


class Dead(FakeUpstream):
    """A backend whose URL refuses connections."""

    async def start(self) -> None:
        self.url = closed_port_url()


def test_failover_names_the_second_backend(tmp_path):
    with in_background([Dead(), ClientUpstream()], lanes, tmp_path) as bg, client(bg) as c:
        raw = c.chat.completions.with_raw_response.create(model="chat", messages=HI)
        assert raw.headers["x-dayzero-backend"] == "b1"
        assert raw.parse().choices[0].message.content == f"from {bg.fakes[1].url}"
        stream = c.chat.completions.with_raw_response.create(model="chat", messages=HI, stream=True)
        assert stream.headers["x-dayzero-backend"] == "b1"
        text = "".join(ch.choices[0].delta.content or "" for ch in stream.parse() if ch.choices)
        assert text == "one two"
        exposition = metrics(bg)
        assert (
            'dayzero_gateway_backend_failures_total{backend="b0",lane="chat",reason="connect"} 2.0'
            in (exposition)
        )


def test_failure_mid_stream_reaches_the_client_as_an_api_error(tmp_path):
    with in_background([ClientUpstream("reset_mid")], lanes, tmp_path) as bg, client(bg) as c:
        stream = c.chat.completions.create(model="chat", messages=HI, stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError) as e:
            seen.extend(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        assert seen == ["one "]
        assert "mid-stream" in e.value.message
