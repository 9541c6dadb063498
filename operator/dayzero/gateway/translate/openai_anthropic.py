"""Client OpenAI <-> backend Anthropic Messages (``POST /v1/messages``, version 2023-06-01).

Anthropic differs from OpenAI in shape, not in meaning, for everything chat clients use: system
prompts live at the top level, tool calls and results are content blocks, consecutive turns of
one role must be merged, and ``max_tokens`` is required. ``ChatStreamAnthropicToOpenAI`` turns
the typed event stream into ``chat.completion.chunk`` objects, fragment for fragment.
"""

from __future__ import annotations

import time
from typing import Any

from .openai_ollama import new_completion_id
from .types import (
    JsonObject,
    TranslationError,
    Usage,
    dump_arguments,
    objects,
    optional_bool,
    optional_int,
    optional_list,
    optional_number,
    optional_object,
    optional_str,
    parse_arguments,
    require_list,
    require_object,
    require_str,
    stop_list,
)

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header these translators speak."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the OpenAI request has none (Anthropic requires one)."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic ``stop_reason`` -> OpenAI ``finish_reason``; anything else reads as ``stop``."""


def chat_request_openai_to_anthropic(
    req: JsonObject, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> JsonObject:
    """An OpenAI ``chat.completions`` request as an Anthropic Messages request.

    Every system/developer message, wherever it stands, joins the top-level ``system``.
    ``seed``, ``presence_penalty``, ``frequency_penalty`` and ``user``-less metadata have no
    Anthropic field and are dropped; ``response_format`` json modes and ``n > 1`` are refused.
    """
    n = optional_int(req, "n", "")
    if n is not None and n != 1:
        raise TranslationError("n", "Anthropic returns one choice per request")
    if req.get("logprobs"):
        raise TranslationError("logprobs", "Anthropic returns no log probabilities")
    rf = optional_object(req, "response_format", "")
    if rf is not None and rf.get("type") != "text":
        raise TranslationError(
            "response_format",
            "Anthropic Messages has no JSON mode; describe the format in the prompt or use a tool",
        )
    system, messages = _messages(require_list(req, "messages", ""))
    limit = optional_int(req, "max_completion_tokens", "")
    if limit is None:
        limit = optional_int(req, "max_tokens", "")
    out: JsonObject = {
        "model": require_str(req, "model", ""),
        "max_tokens": default_max_tokens if limit is None else limit,
        "messages": messages,
    }
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    _sampling(req, out)
    tools = _tools(optional_list(req, "tools", "") or [])
    if tools:
        out["tools"] = tools
        choice = _tool_choice(req.get("tool_choice"), optional_bool(req, "parallel_tool_calls", ""))
        if choice is not None:
            out["tool_choice"] = choice
    user = optional_str(req, "user", "")
    if user:
        out["metadata"] = {"user_id": user}
    if optional_bool(req, "stream", ""):
        out["stream"] = True
    return out


def _sampling(req: JsonObject, out: JsonObject) -> None:
    temperature = optional_number(req, "temperature", "")
    if temperature is not None:
        if not 0 <= temperature <= 1:
            raise TranslationError("temperature", f"Anthropic accepts 0 to 1, got {temperature}")
        out["temperature"] = temperature
    top_p = optional_number(req, "top_p", "")
    if top_p is not None:
        out["top_p"] = top_p
    stop = stop_list(req, "stop", "")
    if stop:
        out["stop_sequences"] = stop


def _messages(messages: list[Any]) -> tuple[list[JsonObject], list[JsonObject]]:
    system: list[JsonObject] = []
    out: list[JsonObject] = []
    for path, msg in objects(messages, "messages"):
        role = require_str(msg, "role", path)
        content = msg.get("content")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(content, f"{path}.content", images=False) if b["text"])
            continue
        if role == "user":
            blocks = _blocks(content, f"{path}.content", images=True)
        elif role == "assistant":
            blocks = _blocks(content, f"{path}.content", images=False)
            for cpath, call in objects(
                optional_list(msg, "tool_calls", path) or [], f"{path}.tool_calls"
            ):
                fn = require_object(call, "function", cpath)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": require_str(call, "id", cpath),
                        "name": require_str(fn, "name", f"{cpath}.function"),
                        "input": parse_arguments(
                            require_str(fn, "arguments", f"{cpath}.function"),
                            f"{cpath}.function.arguments",
                        ),
                    }
                )
        elif role == "tool":
            result: JsonObject = {
                "type": "tool_result",
                "tool_use_id": require_str(msg, "tool_call_id", path),
            }
            text = "".join(b["text"] for b in _blocks(content, f"{path}.content", images=False))
            if text:
                result["content"] = text
            role, blocks = "user", [result]
        else:
            raise TranslationError(f"{path}.role", f"unsupported role {role!r}")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty OpenAI message says nothing
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _blocks(content: Any, where: str, *, images: bool) -> list[JsonObject]:  # noqa: ANN401 -- raw JSON
    """OpenAI content as Anthropic text (and, for users, image) blocks; empty text is dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError(where, "expected a string, null or an array of parts")
    blocks: list[JsonObject] = []
    for path, part in objects(content, where):
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = require_str(part, str(kind), path)
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            url = require_str(require_object(part, "image_url", path), "url", f"{path}.image_url")
            blocks.append({"type": "image", "source": _image_source(url, f"{path}.image_url.url")})
        else:
            raise TranslationError(f"{path}.type", f"unsupported content part {kind!r} here")
    return blocks


def _image_source(url: str, where: str) -> JsonObject:
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        media_type = head.removeprefix("data:").removesuffix(";base64")
        if not sep or not head.endswith(";base64") or not media_type:
            raise TranslationError(where, "expected a base64 data URL")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise TranslationError(where, "expected an http(s) or data URL")


def _tools(tools: list[Any]) -> list[JsonObject]:
    out = []
    for path, tool in objects(tools, "tools"):
        if tool.get("type") != "function":
            raise TranslationError(f"{path}.type", "only function tools are supported")
        fn = require_object(tool, "function", path)
        entry: JsonObject = {
            "name": require_str(fn, "name", f"{path}.function"),
            "input_schema": optional_object(fn, "parameters", f"{path}.function")
            or {"type": "object", "properties": {}},
        }
        description = optional_str(fn, "description", f"{path}.function")
        if description:
            entry["description"] = description
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: bool | None) -> JsonObject | None:  # noqa: ANN401 -- raw JSON
    if choice is None:
        out: JsonObject | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = require_str(
            require_object(choice, "function", "tool_choice"), "name", "tool_choice.function"
        )
        out = {"type": "tool", "name": name}
    else:
        raise TranslationError("tool_choice", "expected none, auto, required or a function")
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def chat_response_anthropic_to_openai(
    resp: JsonObject, *, created: int | None = None, model: str | None = None
) -> JsonObject:
    """An Anthropic message as an OpenAI ``chat.completion``; its id becomes the completion id."""
    if resp.get("type") == "error":
        raise TranslationError(
            "error", f"the Anthropic backend answered an error: {_error_message(resp)}"
        )
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JsonObject] = []
    for path, block in objects(require_list(resp, "content", ""), "content"):
        kind = block.get("type")
        if kind == "text":
            texts.append(require_str(block, "text", path))
        elif kind == "thinking":
            thinking.append(optional_str(block, "thinking", path) or "")
        elif kind == "tool_use":
            calls.append(
                {
                    "id": require_str(block, "id", path),
                    "type": "function",
                    "function": {
                        "name": require_str(block, "name", path),
                        "arguments": dump_arguments(block.get("input"), f"{path}.input"),
                    },
                }
            )
    text = "".join(texts)
    message: JsonObject = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return {
        "id": optional_str(resp, "id", "") or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model or require_str(resp, "model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(resp.get("stop_reason")),
            }
        ],
        "usage": _openai_usage(resp),
    }


class ChatStreamAnthropicToOpenAI:
    """Anthropic Messages stream events -> OpenAI ``chat.completion.chunk`` objects.

    Feed each event's decoded ``data`` (its ``type`` names the event). A ``tool_use`` block
    becomes tool call number k (k counts tool blocks, not all blocks): its start sends id and
    name, each ``input_json_delta`` sends the fragment as ``arguments``. An ``error`` event
    becomes an OpenAI-style ``{"error": ...}`` object and ends the stream.
    """

    def __init__(
        self, *, include_usage: bool = False, created: int | None = None, model: str | None = None
    ) -> None:
        self.usage = Usage()
        """Token counts so far: input from ``message_start``, output from ``message_delta``."""
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._model = model
        self._id: str | None = None
        self._tools: dict[int, int] = {}
        self._stop_reason: Any = None
        self._done = False

    def feed(self, event: JsonObject) -> list[JsonObject]:
        if self._done:
            return []
        kind = require_str(event, "type", "event")
        if kind == "error":
            self._done = True
            error = optional_object(event, "error", "event") or {}
            return [
                {
                    "error": {
                        "message": _error_message(event),
                        "type": error.get("type", "backend_error"),
                        "code": None,
                    }
                }
            ]
        if kind == "message_start":
            return self._start(require_object(event, "message", "message_start"))
        if kind in ("ping",) or kind not in _STREAM_EVENTS:
            return []  # Anthropic may add event types; its docs ask clients to ignore them
        if self._id is None:
            raise TranslationError(f"{kind}", "arrived before message_start")
        return _STREAM_EVENTS[kind](self, event)

    def finish(self) -> list[JsonObject]:
        if not self._done:
            raise TranslationError("stream", "the Anthropic stream ended before message_stop")
        return []

    def _start(self, message: JsonObject) -> list[JsonObject]:
        self._id = optional_str(message, "id", "message_start.message") or new_completion_id()
        if self._model is None:
            self._model = optional_str(message, "model", "message_start.message") or ""
        self.usage = usage_of_anthropic(message)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: JsonObject) -> list[JsonObject]:
        block = require_object(event, "content_block", "content_block_start")
        index = optional_int(event, "index", "content_block_start") or 0
        kind = block.get("type")
        if kind == "text":
            text = optional_str(block, "text", "content_block_start.content_block")
            return [self._chunk({"content": text})] if text else []
        if kind == "tool_use":
            k = self._tools[index] = len(self._tools)
            call = {
                "index": k,
                "id": require_str(block, "id", "content_block_start.content_block"),
                "type": "function",
                "function": {
                    "name": require_str(block, "name", "content_block_start.content_block"),
                    "arguments": "",
                },
            }
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _block_delta(self, event: JsonObject) -> list[JsonObject]:
        delta = require_object(event, "delta", "content_block_delta")
        index = optional_int(event, "index", "content_block_delta") or 0
        kind = delta.get("type")
        if kind == "text_delta":
            text = require_str(delta, "text", "content_block_delta.delta")
            return [self._chunk({"content": text})] if text else []
        if kind == "input_json_delta":
            if index not in self._tools:
                raise TranslationError(
                    "content_block_delta.index", f"no tool_use block {index} was started"
                )
            fragment = require_str(delta, "partial_json", "content_block_delta.delta")
            call = {"index": self._tools[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})] if fragment else []
        if kind == "thinking_delta":
            text = require_str(delta, "thinking", "content_block_delta.delta")
            return [self._chunk({"reasoning_content": text})] if text else []
        return []  # signature_delta and future kinds carry nothing an OpenAI client reads

    def _message_delta(self, event: JsonObject) -> list[JsonObject]:
        delta = optional_object(event, "delta", "message_delta") or {}
        if delta.get("stop_reason") is not None:
            self._stop_reason = delta["stop_reason"]
        usage = optional_object(event, "usage", "message_delta") or {}
        self.usage = Usage(
            _input_tokens(usage) or self.usage.input_tokens,
            optional_int(usage, "output_tokens", "message_delta.usage") or self.usage.output_tokens,
        )
        return []

    def _message_stop(self, _event: JsonObject) -> list[JsonObject]:
        self._done = True
        out = [self._chunk({}, _finish(self._stop_reason))]
        if self._include_usage:
            out.append(self._envelope([], _usage_json(self.usage)))
        return out

    def _nothing(self, _event: JsonObject) -> list[JsonObject]:
        return []

    def _chunk(self, delta: JsonObject, finish_reason: str | None = None) -> JsonObject:
        return self._envelope(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )

    def _envelope(self, choices: list[JsonObject], usage: JsonObject | None = None) -> JsonObject:
        out: JsonObject = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            out["usage"] = usage
        return out


_STREAM_EVENTS = {
    "content_block_start": ChatStreamAnthropicToOpenAI._block_start,
    "content_block_delta": ChatStreamAnthropicToOpenAI._block_delta,
    "content_block_stop": ChatStreamAnthropicToOpenAI._nothing,
    "message_delta": ChatStreamAnthropicToOpenAI._message_delta,
    "message_stop": ChatStreamAnthropicToOpenAI._message_stop,
}


def usage_of_anthropic(resp: JsonObject) -> Usage:
    """Input (cache writes and reads included) and output tokens of a message or stream event."""
    if resp.get("type") == "message_start":
        resp = optional_object(resp, "message", "") or {}
    usage = optional_object(resp, "usage", "") or {}
    return Usage(_input_tokens(usage), optional_int(usage, "output_tokens", "usage") or 0)


def _input_tokens(usage: JsonObject) -> int:
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(optional_int(usage, k, "usage") or 0 for k in keys)


def _finish(stop_reason: Any) -> str:  # noqa: ANN401 -- raw JSON
    return FINISH_REASONS.get(str(stop_reason), "stop")


def _openai_usage(resp: JsonObject) -> JsonObject:
    out = _usage_json(usage_of_anthropic(resp))
    usage = optional_object(resp, "usage", "") or {}
    cached = optional_int(usage, "cache_read_input_tokens", "usage")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _usage_json(usage: Usage) -> JsonObject:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _error_message(event: JsonObject) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)
