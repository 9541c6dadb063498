"""Client OpenAI, backend Ollama: requests out, responses and NDJSON streams back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dayzero.gateway.translate import (
    SSE_DONE,
    ChatStreamOllamaToOpenAI,
    CompletionStreamOllamaToOpenAI,
    SSEDecoder,
    StreamPipe,
    TranslationError,
    chat_request_openai_to_ollama,
    chat_response_ollama_to_openai,
    completion_request_openai_to_ollama,
    completion_response_ollama_to_openai,
    embed_request_openai_to_ollama,
    embed_response_ollama_to_openai,
    encode_ndjson,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
CREATED_AT = "2024-07-25T18:03:12.123456789Z"
CREATED = 1721930592


def test_chat_request_golden() -> None:
    req = {
        "model": "llama3.1:8b",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {"type": "text", "text": "And the weather in Paris?"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
        ],
        "tools": [WEATHER_TOOL],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 42,
        "stop": "\n\n",
        "frequency_penalty": 0.5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
    }
    assert chat_request_openai_to_ollama(req) == {
        "model": "llama3.1:8b",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": "What is in this image?\nAnd the weather in Paris?",
                "images": ["iVBORw0KGgo="],
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": "18C, cloudy", "tool_name": "get_weather"},
        ],
        "stream": True,
        "tools": [WEATHER_TOOL],
        "format": {"type": "object"},
        "options": {
            "num_predict": 256,
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 42,
            "frequency_penalty": 0.5,
            "stop": ["\n\n"],
        },
    }


def test_chat_request_minimal_is_non_streaming() -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert chat_request_openai_to_ollama(req) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [({"type": "text"}, None), ({"type": "json_object"}, "json")],
)
def test_chat_request_json_mode(response_format: dict[str, Any], expected: str | None) -> None:
    req = {"model": "m", "messages": [], "response_format": response_format}
    assert chat_request_openai_to_ollama(req).get("format") == expected


def test_chat_request_max_completion_tokens_wins() -> None:
    req = {"model": "m", "messages": [], "max_tokens": 5, "max_completion_tokens": 9}
    assert chat_request_openai_to_ollama(req)["options"] == {"num_predict": 9}


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        (None, ["get_weather", "get_time"]),
        ("auto", ["get_weather", "get_time"]),
        ("required", ["get_weather", "get_time"]),
        ("none", []),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
    ],
)
def test_tool_choice_approximations(choice: object, names: list[str]) -> None:
    req = {"model": "m", "messages": [], "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": choice}
    out = chat_request_openai_to_ollama(req)
    assert [t["function"]["name"] for t in out.get("tools", [])] == names


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"model": 3}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{bad"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": 1.5}, "seed"),
        ({"stop": [1]}, "stop"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "x"}},
            },
            "tool_choice.function.name",
        ),
        ({"tool_choice": "always"}, "tool_choice"),
    ],
)
def test_chat_request_malformed_names_the_field(patch: dict[str, Any], field: str) -> None:
    req = {"model": "m", "messages": [], **patch}
    with pytest.raises(TranslationError) as err:
        chat_request_openai_to_ollama(req)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


OLLAMA_TEXT_RESPONSE = {
    "model": "llama3.1:8b",
    "created_at": CREATED_AT,
    "message": {"role": "assistant", "content": "Paris is 18C and cloudy."},
    "done": True,
    "done_reason": "stop",
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 7,
    "eval_duration": 4535599000,
}


def test_chat_response_golden_text() -> None:
    out = chat_response_ollama_to_openai(OLLAMA_TEXT_RESPONSE, completion_id="chatcmpl-abc")
    assert out == {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": CREATED,
        "model": "llama3.1:8b",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is 18C and cloudy."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 26, "completion_tokens": 7, "total_tokens": 33},
    }


def test_chat_response_parallel_tool_calls() -> None:
    resp = {
        **OLLAMA_TEXT_RESPONSE,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
            ],
        },
    }
    out = chat_response_ollama_to_openai(resp, completion_id="chatcmpl-abc", model="alias")
    assert out["model"] == "alias"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_abc_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "index": 1,
                "id": "call_abc_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
            },
        ],
    }


def test_chat_response_length_and_errors() -> None:
    resp = {**OLLAMA_TEXT_RESPONSE, "done_reason": "length"}
    assert chat_response_ollama_to_openai(resp)["choices"][0]["finish_reason"] == "length"
    assert chat_response_ollama_to_openai(resp)["id"].startswith("chatcmpl-")
    with pytest.raises(TranslationError, match="model 'x' not found"):
        chat_response_ollama_to_openai({"error": "model 'x' not found"})
    with pytest.raises(TranslationError) as err:
        chat_response_ollama_to_openai({**OLLAMA_TEXT_RESPONSE, "created_at": "yesterday"})
    assert err.value.field == "created_at"
    with pytest.raises(TranslationError) as err:
        chat_response_ollama_to_openai({**OLLAMA_TEXT_RESPONSE, "message": None})
    assert err.value.field == "message"


def ollama_chunks() -> list[dict[str, Any]]:
    base = {"model": "llama3.1:8b", "created_at": CREATED_AT}
    return [
        {**base, "message": {"role": "assistant", "content": "Let me "}, "done": False},
        {**base, "message": {"role": "assistant", "content": "check \u2600"}, "done": False},
        {
            **base,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                ],
            },
            "done": False,
        },
        {
            **base,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1,
            "prompt_eval_count": 30,
            "eval_count": 12,
        },
    ]


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "llama3.1:8b",
        "choices": choices,
        **extra,
    }


def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]


def test_chat_stream_golden_with_parallel_tool_calls_and_usage() -> None:
    stream = ChatStreamOllamaToOpenAI(include_usage=True, completion_id="chatcmpl-s1")
    out = [c for event in ollama_chunks() for c in stream.feed(event)] + stream.finish()
    assert out == [
        chunk(delta({"role": "assistant", "content": ""}), usage=None),
        chunk(delta({"content": "Let me "}), usage=None),
        chunk(delta({"content": "check \u2600"}), usage=None),
        chunk(
            delta(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_s1_0",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "index": 1,
                            "id": "call_s1_1",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ]
                }
            ),
            usage=None,
        ),
        chunk(delta({}, "tool_calls"), usage=None),
        chunk([], usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}),
    ]
    assert stream.usage == (30, 12)


def test_chat_stream_without_usage_ends_on_length() -> None:
    events = ollama_chunks()
    del events[2]
    events[-1]["done_reason"] = "length"
    stream = ChatStreamOllamaToOpenAI(completion_id="chatcmpl-s1")
    out = [c for e in events for c in stream.feed(e)]
    assert "usage" not in out[0]
    assert out[-1] == chunk(delta({}, "length"))
    assert stream.feed(events[-1]) == []  # anything after done is ignored


def test_chat_stream_tool_call_indices_continue_across_chunks() -> None:
    base = {"model": "m", "created_at": CREATED_AT, "done": False}
    call = {"function": {"name": "f", "arguments": {"x": 1}}}
    stream = ChatStreamOllamaToOpenAI(completion_id="chatcmpl-z")
    out = stream.feed(
        {**base, "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
    )
    out += stream.feed(
        {**base, "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
    )
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in out[1:]]
    assert [(c["index"], c["id"]) for c in calls] == [(0, "call_z_0"), (1, "call_z_1")]


def test_chat_stream_error_and_truncation() -> None:
    stream = ChatStreamOllamaToOpenAI(completion_id="chatcmpl-s1")
    stream.feed(ollama_chunks()[0])
    assert stream.feed({"error": "out of memory"}) == [
        {"error": {"message": "out of memory", "type": "backend_error", "code": None}}
    ]
    assert stream.finish() == []
    truncated = ChatStreamOllamaToOpenAI()
    truncated.feed(ollama_chunks()[0])
    with pytest.raises(TranslationError, match="ended before its done chunk"):
        truncated.finish()


def test_chat_stream_bytes_identical_for_every_split() -> None:
    raw = b"".join(encode_ndjson(e) for e in ollama_chunks())

    def run(cut: int) -> bytes:
        pipe = StreamPipe(
            ChatStreamOllamaToOpenAI(include_usage=True, completion_id="chatcmpl-s1"),
            source="ndjson",
            target="sse",
        )
        return pipe.feed(raw[:cut]) + pipe.feed(raw[cut:]) + pipe.finish()

    whole = run(len(raw))
    assert whole.endswith(b"\n\n" + SSE_DONE)
    decoder = SSEDecoder()
    events = decoder.feed(whole) + decoder.finish()
    assert events[-1].is_done
    assert [e.json()["choices"] for e in events[:-1]][-1] == []
    for cut in range(len(raw) + 1):
        assert run(cut) == whole, cut


def test_completion_request_and_response_golden() -> None:
    req = {
        "model": "qwen2.5-coder",
        "prompt": ["def fib(n):"],
        "suffix": "    return a",
        "max_tokens": 64,
        "temperature": 0,
        "stop": ["\n\n", "def "],
        "stream": False,
    }
    assert completion_request_openai_to_ollama(req) == {
        "model": "qwen2.5-coder",
        "prompt": "def fib(n):",
        "suffix": "    return a",
        "stream": False,
        "options": {"num_predict": 64, "temperature": 0, "stop": ["\n\n", "def "]},
    }
    plain = completion_request_openai_to_ollama({"model": "m", "prompt": "Once"})
    assert plain == {"model": "m", "prompt": "Once", "raw": True, "stream": False}
    resp = {
        "model": "qwen2.5-coder",
        "created_at": CREATED_AT,
        "response": "\n    a, b = 0, 1",
        "done": True,
        "done_reason": "length",
        "context": [1, 2, 3],
        "prompt_eval_count": 5,
        "eval_count": 64,
    }
    assert completion_response_ollama_to_openai(resp, completion_id="cmpl-1") == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": CREATED,
        "model": "qwen2.5-coder",
        "choices": [
            {"index": 0, "text": "\n    a, b = 0, 1", "logprobs": None, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 64, "total_tokens": 69},
    }


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"echo": True}, "echo"),
        ({"logprobs": 3}, "logprobs"),
        ({"n": 3}, "n"),
    ],
)
def test_completion_request_refusals(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        completion_request_openai_to_ollama({"model": "m", "prompt": "x", **patch})
    assert err.value.field == field


def test_completion_stream() -> None:
    base = {"model": "m", "created_at": CREATED_AT}
    events = [
        {**base, "response": "Hello", "done": False},
        {**base, "response": "", "done": False},
        {
            **base,
            "response": "",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 1,
        },
    ]
    stream = CompletionStreamOllamaToOpenAI(include_usage=True, completion_id="cmpl-9")
    out = [c for e in events for c in stream.feed(e)] + stream.finish()
    envelope = {"id": "cmpl-9", "object": "text_completion", "created": CREATED, "model": "m"}
    assert out == [
        {
            **envelope,
            "choices": [{"index": 0, "text": "Hello", "logprobs": None, "finish_reason": None}],
            "usage": None,
        },
        {
            **envelope,
            "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        },
        {
            **envelope,
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        },
    ]
    assert CompletionStreamOllamaToOpenAI().id.startswith("cmpl-")


def test_embeddings_golden_float_and_base64() -> None:
    req = {"model": "nomic-embed-text", "input": ["hello", "world"], "dimensions": 2, "user": "u"}
    assert embed_request_openai_to_ollama(req) == {
        "model": "nomic-embed-text",
        "input": ["hello", "world"],
        "dimensions": 2,
    }
    assert embed_request_openai_to_ollama({"model": "e", "input": "hi"})["input"] == "hi"
    resp = {
        "model": "nomic-embed-text",
        "embeddings": [[0.5, -1.0], [0.25, 2]],
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": 4,
    }
    assert embed_response_ollama_to_openai(resp) == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2]},
        ],
        "model": "nomic-embed-text",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    b64 = embed_response_ollama_to_openai(resp, encoding_format="base64")
    # little-endian float32 0.5, -1.0, as OpenAI's base64 encoding
    assert b64["data"][0]["embedding"] == "AAAAPwAAgL8="


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"model": "e", "input": [1, 2, 3]}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_embeddings_refusals(req: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        embed_request_openai_to_ollama(req)
    assert err.value.field == field


def test_embed_response_malformed_vector() -> None:
    with pytest.raises(TranslationError) as err:
        embed_response_ollama_to_openai({"model": "e", "embeddings": [["x"]]})
    assert err.value.field == "embeddings[0]"


def test_chat_response_string_arguments_pass_when_json() -> None:
    resp = {
        **OLLAMA_TEXT_RESPONSE,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
        },
    }
    call = chat_response_ollama_to_openai(resp)["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"a": 1}
