"""Client OpenAI, backend Anthropic Messages: requests, messages and the typed event stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dayzero.gateway.translate import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    SSE_DONE,
    ChatStreamAnthropicToOpenAI,
    SSEDecoder,
    StreamPipe,
    TranslationError,
    chat_request_openai_to_anthropic,
    chat_response_anthropic_to_openai,
    encode_sse,
    usage_of,
)

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
NOW = {"type": "function", "function": {"name": "now"}}


def test_request_golden_with_parallel_tool_round() -> None:
    req = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and Tokyo?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_02",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "toolu_02",
                "content": [{"type": "text", "text": "25C"}],
            },
            {"role": "user", "content": "Thanks. Which is warmer?"},
            {"role": "developer", "content": "Answer in one word."},
        ],
        "tools": [WEATHER, NOW],
        "tool_choice": "required",
        "parallel_tool_calls": True,
        "max_completion_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.95,
        "stop": "###",
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 7,
        "user": "user-42",
    }
    assert chat_request_openai_to_anthropic(req) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris"},
                    {"type": "text", "text": "and Tokyo?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": "/9j/4AAQ",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking both."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "get_weather",
                        "input": {"city": "Tokyo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "25C"},
                    {"type": "text", "text": "Thanks. Which is warmer?"},
                ],
            },
        ],
        "system": [
            {"type": "text", "text": "You are a weather bot."},
            {"type": "text", "text": "Answer in one word."},
        ],
        "temperature": 0.3,
        "top_p": 0.95,
        "stop_sequences": ["###"],
        "tools": [
            {
                "name": "get_weather",
                "input_schema": WEATHER["function"]["parameters"],
                "description": "Current weather",
            },
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any"},
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }
    assert ANTHROPIC_VERSION == "2023-06-01"


def test_request_minimal_defaults_max_tokens_and_single_system_string() -> None:
    req = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": ""},
        ],
    }
    assert chat_request_openai_to_anthropic(req) == {
        "model": "claude",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "system": "Be kind.",
    }
    assert (
        chat_request_openai_to_anthropic({**req, "max_tokens": 9}, default_max_tokens=1)[
            "max_tokens"
        ]
        == 9
    )
    assert chat_request_openai_to_anthropic(req, default_max_tokens=100)["max_tokens"] == 100


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", None, {"type": "auto"}),
        ("none", False, {"type": "none"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ({"type": "function", "function": {"name": "now"}}, None, {"type": "tool", "name": "now"}),
    ],
)
def test_tool_choice_mapping(
    choice: object, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    req = {
        "model": "c",
        "messages": [],
        "tools": [NOW],
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
    }
    assert chat_request_openai_to_anthropic(req).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped_and_remote_images_are_url_sources() -> None:
    req = {
        "model": "c",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
            }
        ],
        "tool_choice": "required",
    }
    out = chat_request_openai_to_anthropic(req)
    assert "tool_choice" not in out
    assert out["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    ]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [NOW], "tool_choice": {"type": "function"}}, "tool_choice.function"),
        ({"tools": [NOW], "tool_choice": "any"}, "tool_choice"),
        ({"max_tokens": "many"}, "max_tokens"),
    ],
)
def test_request_malformed_names_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        chat_request_openai_to_anthropic({"model": "c", "messages": [], **patch})
    assert err.value.field == field


ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
        {"type": "text", "text": "Let me check both."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Tokyo"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
        "output_tokens": 91,
    },
}


def test_response_golden_parallel_tool_use() -> None:
    assert chat_response_anthropic_to_openai(ANTHROPIC_MESSAGE, created=1700000000) == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check both.",
                    "tool_calls": [
                        {
                            "id": "toolu_01A",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "toolu_01B",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                        },
                    ],
                    "reasoning_content": "Two cities.",
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 572,
            "completion_tokens": 91,
            "total_tokens": 663,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    assert usage_of(ANTHROPIC_MESSAGE, "anthropic") == (572, 91)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
    ],
)
def test_response_finish_reasons(stop_reason: str | None, finish: str) -> None:
    resp = {
        **ANTHROPIC_MESSAGE,
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
    }
    out = chat_response_anthropic_to_openai(resp, model="alias")
    assert out["choices"][0]["finish_reason"] == finish
    assert out["model"] == "alias"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "x"}


def test_response_errors() -> None:
    with pytest.raises(TranslationError, match="Overloaded"):
        chat_response_anthropic_to_openai(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    with pytest.raises(TranslationError) as err:
        chat_response_anthropic_to_openai(
            {
                **ANTHROPIC_MESSAGE,
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}],
            }
        )
    assert err.value.field == "content[0].input"
    with pytest.raises(TranslationError) as err:
        chat_response_anthropic_to_openai({**ANTHROPIC_MESSAGE, "content": "hi"})
    assert err.value.field == "content"


EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_S",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-5",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Checking "},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "both \u2601\ufe0f."},
    },
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Tokyo"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
]


def oa(
    delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": "msg_S",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": choices,
        "usage": usage,
    }


def test_stream_golden_text_then_parallel_tool_calls() -> None:
    stream = ChatStreamAnthropicToOpenAI(include_usage=True, created=1700000000)
    out = [c for e in EVENTS for c in stream.feed(e)] + stream.finish()
    assert out == [
        oa({"role": "assistant", "content": ""}),
        oa({"content": "Checking "}),
        oa({"content": "both \u2601\ufe0f."}),
        oa(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_A",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        oa({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
        oa({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        oa(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_B",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        oa({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Tokyo"}'}}]}),
        oa({}, "tool_calls"),
        oa(None, usage={"prompt_tokens": 30, "completion_tokens": 89, "total_tokens": 119}),
    ]
    assert stream.usage == (30, 89)
    args: dict[int, str] = {}
    for c in out:
        for choice in c["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                args[call["index"]] = args.get(call["index"], "") + call["function"]["arguments"]
    assert {i: json.loads(a) for i, a in args.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Tokyo"},
    }


def test_stream_without_usage_and_with_thinking_and_unknown_events() -> None:
    events = [
        EVENTS[0],
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "x"},
        },
        {"type": "future_event", "foo": 1},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "text", "text": "Hi"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    stream = ChatStreamAnthropicToOpenAI(created=1700000000, model="alias")
    out = [c for e in events for c in stream.feed(e)]
    assert [c["choices"][0]["delta"] for c in out] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "hmm"},
        {"content": "Hi"},
        {},
    ]
    assert out[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c and c["model"] == "alias" for c in out)
    assert stream.feed(EVENTS[1]) == []


def test_stream_error_event_and_malformed_streams() -> None:
    stream = ChatStreamAnthropicToOpenAI(created=1)
    stream.feed(EVENTS[0])
    assert stream.feed(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    ) == [{"error": {"message": "Overloaded", "type": "overloaded_error", "code": None}}]
    assert stream.finish() == []
    with pytest.raises(TranslationError) as err:
        ChatStreamAnthropicToOpenAI().feed({"no": "type"})
    assert err.value.field == "event.type"
    with pytest.raises(TranslationError, match="before message_start"):
        ChatStreamAnthropicToOpenAI().feed(EVENTS[3])
    orphan = ChatStreamAnthropicToOpenAI()
    orphan.feed(EVENTS[0])
    with pytest.raises(TranslationError) as err:
        orphan.feed(EVENTS[8])
    assert err.value.field == "content_block_delta.index"
    truncated = ChatStreamAnthropicToOpenAI()
    truncated.feed(EVENTS[0])
    with pytest.raises(TranslationError, match="before message_stop"):
        truncated.finish()


def test_stream_bytes_identical_for_every_split() -> None:
    raw = b"".join(encode_sse(e, event=e["type"]) for e in EVENTS)

    def run(cut: int) -> bytes:
        pipe = StreamPipe(
            ChatStreamAnthropicToOpenAI(include_usage=True, created=1700000000),
            source="sse",
            target="sse",
        )
        return pipe.feed(raw[:cut]) + pipe.feed(raw[cut:]) + pipe.finish()

    whole = run(len(raw))
    assert whole.endswith(SSE_DONE)
    decoder = SSEDecoder()
    events = decoder.feed(whole) + decoder.finish()
    assert next(e.json() for e in events[:-1]) == oa({"role": "assistant", "content": ""})
    for cut in range(0, len(raw) + 1, 5):
        assert run(cut) == whole, cut


def test_usage_of_every_protocol_and_event() -> None:
    assert usage_of(
        {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}, "openai"
    ) == (3, 4)
    assert usage_of({"choices": [], "usage": None}, "openai") == (0, 0)
    assert usage_of({"done": True, "prompt_eval_count": 10, "eval_count": 2}, "ollama") == (10, 2)
    assert usage_of({"done": False}, "ollama") == (0, 0)
    assert usage_of(EVENTS[0], "anthropic") == (30, 1)
    assert usage_of(EVENTS[-2], "anthropic") == (0, 89)
    input_tokens, output_tokens = usage_of(ANTHROPIC_MESSAGE, "anthropic")
    assert (input_tokens, output_tokens) == (572, 91)
    with pytest.raises(TranslationError) as err:
        usage_of({"usage": {"prompt_tokens": "3"}}, "openai")
    assert err.value.field == "usage.prompt_tokens"
