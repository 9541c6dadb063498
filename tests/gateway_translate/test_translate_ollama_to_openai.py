"""Client Ollama, backend OpenAI-compatible: requests out, responses and SSE streams back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dayzero.gateway.translate import (
    ChatStreamOpenAIToOllama,
    GenerateStreamOpenAIToOllama,
    NDJSONDecoder,
    OllamaModel,
    StreamPipe,
    TranslationError,
    chat_request_ollama_to_openai,
    chat_request_openai_to_ollama,
    chat_response_ollama_to_openai,
    chat_response_openai_to_ollama,
    embed_request_ollama_to_openai,
    embed_response_openai_to_ollama,
    encode_sse,
    generate_request_ollama_to_openai,
    generate_response_openai_to_ollama,
    models_from_ollama,
    models_from_openai,
    ollama_ps,
    ollama_tags,
    openai_model_list,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
JPEG = "/9j/4AAQSkZJRgABAQ=="
CREATED = 1721930592
CREATED_AT = "2024-07-25T18:03:12Z"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_chat_request_golden_links_tool_results_to_generated_ids() -> None:
    req = {
        "model": "llama3.1",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {
                "role": "user",
                "content": "Weather in Paris and Tokyo? Also this:",
                "images": [PNG, JPEG],
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "09:00", "tool_name": "get_time"},
            {"role": "tool", "content": "18C"},
            {"role": "assistant", "content": "18C at 09:00."},
        ],
        "tools": [WEATHER_TOOL],
        "format": "json",
        "options": {
            "num_predict": 100,
            "temperature": 0.7,
            "seed": 1,
            "stop": ["END"],
            "top_k": 40,
            "num_ctx": 8192,
        },
        "keep_alive": "5m",
    }
    assert chat_request_ollama_to_openai(req) == {
        "model": "llama3.1",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris and Tokyo? Also this:"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "09:00"},
            {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
            {"role": "assistant", "content": "18C at 09:00."},
        ],
        "tools": [WEATHER_TOOL],
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_object"},
        "max_tokens": 100,
        "temperature": 0.7,
        "seed": 1,
        "stop": ["END"],
    }


def test_chat_request_extensions_schema_format_and_no_stream() -> None:
    req = {
        "model": "m",
        "messages": [],
        "stream": False,
        "format": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "options": {"num_predict": -1, "top_k": 20, "min_p": 0.05, "repeat_penalty": 1.1},
    }
    assert chat_request_ollama_to_openai(req, extensions=True) == {
        "model": "m",
        "messages": [],
        "stream": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": req["format"]},
        },
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
    }
    assert "top_k" not in chat_request_ollama_to_openai(req)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "x", "images": [7]}]}, "messages[0].images[0]"),
        (
            {"messages": [{"role": "user", "content": "x", "images": ["!!!!"]}]},
            "messages[0].images[0]",
        ),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
        ({"format": "yaml"}, "format"),
        ({"options": {"num_predict": "lots"}}, "options.num_predict"),
        ({"options": []}, "options"),
        ({"stream": "yes"}, "stream"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": [1]}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_chat_request_malformed(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        chat_request_ollama_to_openai({"model": "m", "messages": [], **patch})
    assert err.value.field == field


def test_generate_request_templated_becomes_chat() -> None:
    req = {
        "model": "m",
        "prompt": "Why is the sky blue?",
        "system": "Be brief.",
        "images": [PNG],
        "stream": False,
        "context": [1, 2],
    }
    path, body = generate_request_ollama_to_openai(req)
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Why is the sky blue?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        "stream": False,
    }


def test_generate_request_raw_or_suffix_becomes_completion() -> None:
    path, body = generate_request_ollama_to_openai(
        {"model": "m", "prompt": "[INST] hi [/INST]", "raw": True, "options": {"num_predict": 8}}
    )
    assert path == "/v1/completions"
    assert body == {
        "model": "m",
        "prompt": "[INST] hi [/INST]",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 8,
    }
    path, body = generate_request_ollama_to_openai(
        {"model": "m", "prompt": "def f(", "suffix": ")"}
    )
    assert (path, body["suffix"]) == ("/v1/completions", ")")


OPENAI_TOOL_RESPONSE = {
    "id": "chatcmpl-B9",
    "object": "chat.completion",
    "created": CREATED,
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "reasoning_content": "The user wants weather.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
}


def test_chat_response_golden_parallel_tool_calls() -> None:
    out = chat_response_openai_to_ollama(
        OPENAI_TOOL_RESPONSE, model="llama3.1", total_duration=1_500_000_000
    )
    assert out == {
        "model": "llama3.1",
        "created_at": CREATED_AT,
        "message": {
            "role": "assistant",
            "content": "",
            "thinking": "The user wants weather.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
            ],
        },
        "done": True,
        "done_reason": "stop",
        "total_duration": 1_500_000_000,
        "prompt_eval_count": 82,
        "eval_count": 17,
    }


def test_chat_round_trip_ollama_openai_ollama() -> None:
    ollama = chat_response_openai_to_ollama(OPENAI_TOOL_RESPONSE)
    openai = chat_response_ollama_to_openai(ollama, completion_id="chatcmpl-B9")
    back = chat_response_openai_to_ollama(openai)
    assert back == ollama
    assert openai["usage"] == OPENAI_TOOL_RESPONSE["usage"]
    assert openai["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_request_round_trip_openai_ollama_openai() -> None:
    openai_req = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "r"},
        ],
        "tools": [WEATHER_TOOL],
        "max_tokens": 10,
        "temperature": 0.5,
        "stop": ["x"],
        "stream": False,
    }
    back = chat_request_ollama_to_openai(chat_request_openai_to_ollama(openai_req))
    assert back == openai_req


def test_generate_response_from_chat_and_completion() -> None:
    chat = {
        **OPENAI_TOOL_RESPONSE,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Blue."},
                "finish_reason": "length",
            }
        ],
    }
    assert generate_response_openai_to_ollama(chat) == {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "created_at": CREATED_AT,
        "response": "Blue.",
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 82,
        "eval_count": 17,
    }
    completion = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": CREATED,
        "model": "m",
        "choices": [{"index": 0, "text": "Rayleigh", "finish_reason": "stop"}],
    }
    out = generate_response_openai_to_ollama(completion)
    assert (out["response"], out["prompt_eval_count"], out["eval_count"]) == ("Rayleigh", 0, 0)


@pytest.mark.parametrize(
    ("resp", "field"),
    [
        ({"error": {"message": "overloaded"}}, "error"),
        ({"choices": []}, "choices"),
        (
            {
                "choices": [
                    {
                        "message": {
                            "content": "x",
                            "tool_calls": [{"function": {"name": "f", "arguments": "nope"}}],
                        }
                    }
                ],
                "model": "m",
            },
            "choices[0].message.tool_calls[0].function.arguments",
        ),
        ({"choices": [{"index": 0}], "model": "m"}, "choices[0].message"),
    ],
)
def test_chat_response_malformed(resp: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        chat_response_openai_to_ollama(resp)
    assert err.value.field == field


def openai_chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "backend",
        "choices": choices,
        "usage": usage,
    }


OPENAI_STREAM = [
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"reasoning_content": "hmm"}),
    openai_chunk({"content": "Checking "}),
    openai_chunk({"content": "now."}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                }
            ]
        }
    ),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
    openai_chunk({}, "tool_calls"),
    openai_chunk(usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
]


def test_chat_stream_golden() -> None:
    stream = ChatStreamOpenAIToOllama(model="llama3.1")
    out = [c for e in OPENAI_STREAM for c in stream.feed(e)] + stream.finish()
    base = {"model": "llama3.1", "created_at": CREATED_AT}
    assert out == [
        {**base, "message": {"role": "assistant", "content": "", "thinking": "hmm"}, "done": False},
        {**base, "message": {"role": "assistant", "content": "Checking "}, "done": False},
        {**base, "message": {"role": "assistant", "content": "now."}, "done": False},
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
            "prompt_eval_count": 50,
            "eval_count": 20,
        },
    ]
    assert stream.usage == (50, 20)


def test_chat_stream_without_usage_chunk_finishes_at_end() -> None:
    stream = ChatStreamOpenAIToOllama()
    out = [c for e in [*OPENAI_STREAM[:4], openai_chunk({}, "length")] for c in stream.feed(e)]
    assert out[-1]["done"] is False
    final = stream.finish()
    assert final == [
        {
            "model": "backend",
            "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 0,
            "eval_count": 0,
        }
    ]
    assert stream.finish() == []


def test_chat_stream_errors() -> None:
    stream = ChatStreamOpenAIToOllama()
    stream.feed(OPENAI_STREAM[0])
    assert stream.feed(
        {"error": {"message": "context too long", "type": "invalid_request_error"}}
    ) == [{"error": "context too long"}]
    assert stream.feed(OPENAI_STREAM[2]) == []
    truncated = ChatStreamOpenAIToOllama()
    truncated.feed(OPENAI_STREAM[2])
    with pytest.raises(TranslationError, match="before a finish_reason"):
        truncated.finish()
    bad = ChatStreamOpenAIToOllama()
    bad.feed(
        openai_chunk(
            {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{oops"}}]}
        )
    )
    with pytest.raises(TranslationError) as err:
        bad.feed(openai_chunk({}, "tool_calls"))
    assert err.value.field == "tool_calls[0].function.arguments"


def test_chat_stream_bytes_identical_for_every_split() -> None:
    raw = b"".join(encode_sse(e) for e in OPENAI_STREAM) + b"data: [DONE]\n\n"

    def run(cut: int) -> bytes:
        pipe = StreamPipe(ChatStreamOpenAIToOllama(), source="sse", target="ndjson")
        return pipe.feed(raw[:cut]) + pipe.feed(raw[cut:]) + pipe.finish()

    whole = run(len(raw))
    decoder = NDJSONDecoder()
    lines = decoder.feed(whole) + decoder.finish()
    assert [line["done"] for line in lines] == [False, False, False, False, True]
    for cut in range(0, len(raw) + 1, 5):
        assert run(cut) == whole, cut


def test_generate_stream_from_completion_and_chat_chunks() -> None:
    completion_chunks = [
        {
            "id": "c",
            "object": "text_completion",
            "created": CREATED,
            "model": "m",
            "choices": [{"index": 0, "text": "Ray", "finish_reason": None}],
        },
        {
            "id": "c",
            "object": "text_completion",
            "created": CREATED,
            "model": "m",
            "choices": [{"index": 0, "text": "leigh", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2},
        },
    ]
    stream = GenerateStreamOpenAIToOllama()
    out = [c for e in completion_chunks for c in stream.feed(e)] + stream.finish()
    base = {"model": "m", "created_at": CREATED_AT}
    assert out == [
        {**base, "response": "Ray", "done": False},
        {**base, "response": "leigh", "done": False},
        {
            **base,
            "response": "",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 4,
            "eval_count": 2,
        },
    ]
    chat = GenerateStreamOpenAIToOllama(model="alias")
    out = [
        c for e in [*OPENAI_STREAM[:4], openai_chunk({}, "stop")] for c in chat.feed(e)
    ] + chat.finish()
    assert [c["response"] for c in out] == ["Checking ", "now.", ""]


def test_embed_both_ways() -> None:
    assert embed_request_ollama_to_openai(
        {"model": "bge-m3", "input": ["a", "b"], "truncate": True, "dimensions": 256}
    ) == {
        "model": "bge-m3",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 256,
    }
    resp = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.3]},
            {"object": "embedding", "index": 0, "embedding": [0.1]},
        ],
        "model": "BAAI/bge-m3",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert embed_response_openai_to_ollama(resp, model="bge-m3") == {
        "model": "bge-m3",
        "embeddings": [[0.1], [0.3]],
        "prompt_eval_count": 2,
    }
    with pytest.raises(TranslationError) as err:
        embed_response_openai_to_ollama({"model": "m", "data": [{"index": 0, "embedding": "AAAA"}]})
    assert err.value.field == "data[0].embedding"
    with pytest.raises(TranslationError):
        embed_request_ollama_to_openai({"model": "m", "input": 3})


LLAMA = OllamaModel(
    name="llama3.1:8b",
    size=4_920_753_328,
    digest="46e0c10c039e019119339687c3c1757cc81b9da49709a3b3924863ba87ca666e",
    modified_at=datetime(2024, 7, 25, 18, 3, 12, tzinfo=UTC),
    format="gguf",
    family="llama",
    parameter_size="8.0B",
    quantization_level="Q4_K_M",
    expires_at=datetime(2024, 7, 25, 18, 8, 12, tzinfo=UTC),
    size_vram=5_000_000_000,
    context_length=8192,
)


def test_tags_and_ps_golden() -> None:
    details = {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "8.0B",
        "quantization_level": "Q4_K_M",
    }
    common = {
        "name": "llama3.1:8b",
        "model": "llama3.1:8b",
        "size": 4_920_753_328,
        "digest": LLAMA.digest,
        "details": details,
    }
    assert ollama_tags([LLAMA]) == {"models": [{**common, "modified_at": "2024-07-25T18:03:12Z"}]}
    assert ollama_ps([LLAMA]) == {
        "models": [
            {
                **common,
                "expires_at": "2024-07-25T18:08:12Z",
                "size_vram": 5_000_000_000,
                "context_length": 8192,
            }
        ]
    }


def test_tags_round_trip_and_defaults() -> None:
    assert models_from_ollama(ollama_tags([LLAMA]))[0] == OllamaModel(
        name=LLAMA.name,
        size=LLAMA.size,
        digest=LLAMA.digest,
        modified_at=LLAMA.modified_at,
        format="gguf",
        family="llama",
        families=("llama",),
        parameter_size="8.0B",
        quantization_level="Q4_K_M",
    )
    assert models_from_ollama(ollama_ps([LLAMA]))[0].expires_at == LLAMA.expires_at
    bare = ollama_tags([OllamaModel(name="Qwen/Qwen3-8B")])["models"][0]
    assert len(bare["digest"]) == 64
    assert bare["modified_at"] == "0001-01-01T00:00:00Z"
    assert bare["details"]["families"] is None
    with pytest.raises(TranslationError) as err:
        models_from_ollama({"models": [{"name": "x", "modified_at": "soon"}]})
    assert err.value.field == "models[0].modified_at"


def test_openai_model_list_both_ways() -> None:
    listing = openai_model_list([LLAMA, OllamaModel(name="q")])
    assert listing == {
        "object": "list",
        "data": [
            {"id": "llama3.1:8b", "object": "model", "created": 1721930592, "owned_by": "dayzero"},
            {"id": "q", "object": "model", "created": 0, "owned_by": "dayzero"},
        ],
    }
    models = models_from_openai(listing)
    assert [(m.name, m.modified_at) for m in models] == [
        ("llama3.1:8b", LLAMA.modified_at),
        ("q", None),
    ]
