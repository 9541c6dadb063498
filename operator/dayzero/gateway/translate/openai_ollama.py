"""OpenAI <-> Ollama, both ways: chat, legacy completions / generate, embeddings, model lists.

Client OpenAI, backend Ollama: ``*_openai_to_ollama`` requests, ``*_ollama_to_openai`` responses
and the ``*StreamOllamaToOpenAI`` classes (Ollama NDJSON chunks in, ``chat.completion.chunk``
objects out). Client Ollama, backend OpenAI-compatible: the mirror images. Every function is
pure (ids and clocks are parameters with defaults), so each direction is a golden test.
See docs/gateway-protocols.md for what has no equivalent and what happens then.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .types import (
    JsonObject,
    TranslationError,
    Usage,
    dump_arguments,
    epoch_of,
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
    rfc3339,
    stop_list,
)

OpenAIPath = Literal["/v1/chat/completions", "/v1/completions"]

_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
"""Sampling fields spelled the same in an OpenAI request and in Ollama's ``options``."""


def new_completion_id(prefix: str = "chatcmpl-") -> str:
    """A fresh OpenAI-style id (``chatcmpl-...`` or ``cmpl-...``)."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def tool_call_id(completion_id: str, index: int) -> str:
    """A tool call id derived from its completion's id, so a response's ids are reproducible."""
    return f"call_{completion_id.rpartition('-')[2]}_{index}"


# ---------------------------------------------------------------------------------------------
# Client OpenAI -> backend Ollama: requests
# ---------------------------------------------------------------------------------------------


def chat_request_openai_to_ollama(req: JsonObject) -> JsonObject:
    """An OpenAI ``chat.completions`` request as an Ollama ``/api/chat`` request.

    ``tool_choice`` has no Ollama field: ``"none"`` drops the tools, a named function keeps only
    that tool, ``"auto"``/``"required"`` send them all (Ollama cannot force a call).
    """
    model = require_str(req, "model", "")
    _reject_n(req)
    if req.get("logprobs"):
        raise TranslationError("logprobs", "Ollama's chat API returns no log probabilities")
    out: JsonObject = {
        "model": model,
        "messages": _messages_openai_to_ollama(require_list(req, "messages", "")),
        "stream": bool(optional_bool(req, "stream", "")),
    }
    tools = _tools_for_choice(req)
    if tools:
        out["tools"] = tools
    fmt = _format_of(req)
    if fmt is not None:
        out["format"] = fmt
    options = _options_of(req, max_key=_max_tokens_key(req))
    if options:
        out["options"] = options
    return out


def completion_request_openai_to_ollama(req: JsonObject) -> JsonObject:
    """A legacy OpenAI ``completions`` request as a raw Ollama ``/api/generate`` request.

    ``raw`` is set: a completions prompt is the literal text, not a message to template. OpenAI's
    default of 16 tokens is not imposed; absent ``max_tokens`` leaves Ollama's own limit.
    """
    model = require_str(req, "model", "")
    _reject_n(req)
    if req.get("echo"):
        raise TranslationError("echo", "Ollama cannot echo the prompt")
    if req.get("logprobs") is not None:
        raise TranslationError("logprobs", "Ollama's generate API returns no log probabilities")
    prompt = req.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise TranslationError("prompt", "Ollama takes exactly one text prompt per request")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise TranslationError("prompt", "expected a string")
    out: JsonObject = {
        "model": model,
        "prompt": prompt,
        "raw": True,
        "stream": bool(optional_bool(req, "stream", "")),
    }
    suffix = optional_str(req, "suffix", "")
    if suffix is not None:
        out["suffix"] = suffix
        del out["raw"]  # Ollama applies its fill-in-the-middle template only when not raw
    options = _options_of(req, max_key="max_tokens")
    if options:
        out["options"] = options
    return out


def embed_request_openai_to_ollama(req: JsonObject) -> JsonObject:
    """An OpenAI ``embeddings`` request as an Ollama ``/api/embed`` request."""
    model = require_str(req, "model", "")
    text = req.get("input")
    if not (
        isinstance(text, str)
        or (isinstance(text, list) and text and all(isinstance(t, str) for t in text))
    ):
        raise TranslationError(
            "input", "Ollama embeds text: expected a string or a non-empty array of strings"
        )
    fmt = req.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise TranslationError("encoding_format", f"expected float or base64, got {fmt!r}")
    out: JsonObject = {"model": model, "input": text}
    dims = optional_int(req, "dimensions", "")
    if dims is not None:
        out["dimensions"] = dims
    return out


def _reject_n(req: JsonObject) -> None:
    n = optional_int(req, "n", "")
    if n is not None and n != 1:
        raise TranslationError("n", "the backend returns one choice per request")


def _max_tokens_key(req: JsonObject) -> str:
    return "max_completion_tokens" if req.get("max_completion_tokens") is not None else "max_tokens"


def _options_of(req: JsonObject, *, max_key: str) -> JsonObject:
    options: JsonObject = {}
    limit = optional_int(req, max_key, "")
    if limit is not None:
        options["num_predict"] = limit
    for key in _SAMPLING:
        value = optional_int(req, key, "") if key == "seed" else optional_number(req, key, "")
        if value is not None:
            options[key] = value
    stop = stop_list(req, "stop", "")
    if stop:
        options["stop"] = stop
    return options


def _format_of(req: JsonObject) -> str | JsonObject | None:
    rf = optional_object(req, "response_format", "")
    if rf is None:
        return None
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = require_object(rf, "json_schema", "response_format")
        return require_object(spec, "schema", "response_format.json_schema")
    raise TranslationError(
        "response_format.type", f"expected text, json_object or json_schema, got {kind!r}"
    )


def _checked_tools(req: JsonObject) -> list[JsonObject]:
    tools = optional_list(req, "tools", "") or []
    for path, tool in objects(tools, "tools"):
        if tool.get("type") != "function":
            raise TranslationError(f"{path}.type", "only function tools are supported")
        require_str(require_object(tool, "function", path), "name", f"{path}.function")
    return tools


def _tools_for_choice(req: JsonObject) -> list[JsonObject]:
    tools = _checked_tools(req)
    choice = req.get("tool_choice")
    if choice is None or choice in ("auto", "required"):
        return tools
    if choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = require_str(
            require_object(choice, "function", "tool_choice"), "name", "tool_choice.function"
        )
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise TranslationError("tool_choice.function.name", f"no tool named {name!r}")
        return chosen
    raise TranslationError("tool_choice", "expected none, auto, required or a function")


def _messages_openai_to_ollama(messages: list[Any]) -> list[JsonObject]:
    out: list[JsonObject] = []
    names_by_id: dict[str, str] = {}
    for path, msg in objects(messages, "messages"):
        role = require_str(msg, "role", path)
        text, images = _text_and_images(msg.get("content"), f"{path}.content")
        if role in ("system", "developer", "user"):
            entry: JsonObject = {"role": "user" if role == "user" else "system", "content": text}
            if images:
                entry["images"] = images
        elif role == "assistant":
            entry = {"role": "assistant", "content": text}
            calls = []
            for cpath, call in objects(
                optional_list(msg, "tool_calls", path) or [], f"{path}.tool_calls"
            ):
                fn = require_object(call, "function", cpath)
                name = require_str(fn, "name", f"{cpath}.function")
                args = parse_arguments(
                    require_str(fn, "arguments", f"{cpath}.function"), f"{cpath}.function.arguments"
                )
                call_id = optional_str(call, "id", cpath)
                if call_id is not None:
                    names_by_id[call_id] = name
                calls.append({"function": {"name": name, "arguments": args}})
            if calls:
                entry["tool_calls"] = calls
        elif role == "tool":
            entry = {"role": "tool", "content": text}
            tool_name = names_by_id.get(optional_str(msg, "tool_call_id", path) or "")
            if tool_name is not None:
                entry["tool_name"] = tool_name
        else:
            raise TranslationError(f"{path}.role", f"unsupported role {role!r}")
        out.append(entry)
    return out


def _text_and_images(content: Any, where: str) -> tuple[str, list[str]]:  # noqa: ANN401 -- raw JSON
    """OpenAI content (string, null or parts) as text plus base64 images; remote URLs skipped."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise TranslationError(where, "expected a string, null or an array of parts")
    texts: list[str] = []
    images: list[str] = []
    for path, part in objects(content, where):
        kind = part.get("type")
        if kind in ("text", "refusal"):
            texts.append(require_str(part, str(kind), path))
        elif kind == "image_url":
            url = require_str(require_object(part, "image_url", path), "url", f"{path}.image_url")
            data = _data_url_payload(url)
            if data is not None:
                images.append(data)
        else:
            raise TranslationError(f"{path}.type", f"unsupported content part {kind!r}")
    return "\n".join(texts), images


def _data_url_payload(url: str) -> str | None:
    head, sep, data = url.partition(",")
    if sep and head.startswith("data:") and head.endswith(";base64"):
        return data
    return None


# ---------------------------------------------------------------------------------------------
# Client OpenAI <- backend Ollama: responses and streams
# ---------------------------------------------------------------------------------------------


def chat_response_ollama_to_openai(
    resp: JsonObject, *, completion_id: str | None = None, model: str | None = None
) -> JsonObject:
    """An Ollama ``/api/chat`` response (``done: true``) as an OpenAI ``chat.completion``."""
    _raise_ollama_error(resp)
    cid = completion_id or new_completion_id()
    message = require_object(resp, "message", "")
    content = optional_str(message, "content", "message") or ""
    calls = _tool_calls_ollama_to_openai(message, cid, 0)
    finish = "tool_calls" if calls else _finish_of_done_reason(resp)
    out_message: JsonObject = {
        "role": "assistant",
        "content": content if content or not calls else None,
    }
    if calls:
        out_message["tool_calls"] = calls
    thinking = optional_str(message, "thinking", "message")
    if thinking:
        out_message["reasoning_content"] = thinking
    return {
        "id": cid,
        "object": "chat.completion",
        "created": _created_of(resp),
        "model": model or require_str(resp, "model", ""),
        "choices": [
            {"index": 0, "message": out_message, "logprobs": None, "finish_reason": finish}
        ],
        "usage": _openai_usage(usage_of_ollama(resp)),
    }


def completion_response_ollama_to_openai(
    resp: JsonObject, *, completion_id: str | None = None, model: str | None = None
) -> JsonObject:
    """An Ollama ``/api/generate`` response as a legacy OpenAI ``text_completion``."""
    _raise_ollama_error(resp)
    return {
        "id": completion_id or new_completion_id("cmpl-"),
        "object": "text_completion",
        "created": _created_of(resp),
        "model": model or require_str(resp, "model", ""),
        "choices": [
            {
                "index": 0,
                "text": optional_str(resp, "response", "") or "",
                "logprobs": None,
                "finish_reason": _finish_of_done_reason(resp),
            }
        ],
        "usage": _openai_usage(usage_of_ollama(resp)),
    }


def embed_response_ollama_to_openai(
    resp: JsonObject, *, encoding_format: str = "float", model: str | None = None
) -> JsonObject:
    """An Ollama ``/api/embed`` response as an OpenAI embeddings list (float or base64)."""
    _raise_ollama_error(resp)
    data = []
    for i, vector in enumerate(require_list(resp, "embeddings", "")):
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise TranslationError(f"embeddings[{i}]", "expected an array of numbers")
        embedding: list[float] | str = vector
        if encoding_format == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    prompt = optional_int(resp, "prompt_eval_count", "") or 0
    return {
        "object": "list",
        "data": data,
        "model": model or require_str(resp, "model", ""),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


class _OllamaToOpenAIStream:
    """Shared state of the two Ollama -> OpenAI stream translators."""

    _object = ""

    def __init__(
        self,
        *,
        include_usage: bool = False,
        completion_id: str | None = None,
        created: int | None = None,
        model: str | None = None,
    ) -> None:
        self.id = completion_id or new_completion_id(
            "cmpl-" if self._object == "text_completion" else "chatcmpl-"
        )
        self.usage = Usage()
        """Token counts, known once the ``done`` chunk has been fed."""
        self._include_usage = include_usage
        self._created = created
        self._model = model
        self._started = False
        self._done = False

    def finish(self) -> list[JsonObject]:
        if not self._done:
            raise TranslationError("stream", "the Ollama stream ended before its done chunk")
        return []

    def _begin(self, chunk: JsonObject) -> None:
        if self._created is None:
            at = optional_str(chunk, "created_at", "")
            self._created = epoch_of(at, "created_at") if at else int(time.time())
        if self._model is None:
            self._model = optional_str(chunk, "model", "") or ""

    def _chunk(self, choices: list[JsonObject], usage: JsonObject | None = None) -> JsonObject:
        out: JsonObject = {
            "id": self.id,
            "object": self._object,
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            out["usage"] = usage
        return out

    def _error(self, chunk: JsonObject) -> list[JsonObject] | None:
        if "error" not in chunk:
            return None
        self._done = True
        return [{"error": {"message": str(chunk["error"]), "type": "backend_error", "code": None}}]

    def _closing(self, choice: JsonObject, chunk: JsonObject) -> list[JsonObject]:
        self._done = True
        self.usage = usage_of_ollama(chunk)
        out = [self._chunk([choice])]
        if self._include_usage:
            out.append(self._chunk([], _openai_usage(self.usage)))
        return out


class ChatStreamOllamaToOpenAI(_OllamaToOpenAIStream):
    """Ollama ``/api/chat`` NDJSON chunks -> OpenAI ``chat.completion.chunk`` objects.

    The first chunk is the role delta; each tool call arrives whole from Ollama and leaves as one
    delta carrying its index, a generated id, its name and the arguments as a JSON string.
    """

    _object = "chat.completion.chunk"

    def __init__(
        self,
        *,
        include_usage: bool = False,
        completion_id: str | None = None,
        created: int | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(
            include_usage=include_usage, completion_id=completion_id, created=created, model=model
        )
        self._tool_calls = 0

    def feed(self, event: JsonObject) -> list[JsonObject]:
        if self._done:
            return []
        error = self._error(event)
        if error is not None:
            return error
        out: list[JsonObject] = []
        if not self._started:
            self._begin(event)
            self._started = True
            out.append(self._chunk([_delta({"role": "assistant", "content": ""})]))
        message = optional_object(event, "message", "") or {}
        thinking = optional_str(message, "thinking", "message")
        if thinking:
            out.append(self._chunk([_delta({"reasoning_content": thinking})]))
        content = optional_str(message, "content", "message")
        if content:
            out.append(self._chunk([_delta({"content": content})]))
        calls = _tool_calls_ollama_to_openai(message, self.id, self._tool_calls)
        if calls:
            self._tool_calls += len(calls)
            out.append(self._chunk([_delta({"tool_calls": calls})]))
        if event.get("done") is True:
            finish = "tool_calls" if self._tool_calls else _finish_of_done_reason(event)
            out.extend(self._closing(_delta({}, finish), event))
        return out


class CompletionStreamOllamaToOpenAI(_OllamaToOpenAIStream):
    """Ollama ``/api/generate`` NDJSON chunks -> legacy OpenAI ``text_completion`` chunks."""

    _object = "text_completion"

    def feed(self, event: JsonObject) -> list[JsonObject]:
        if self._done:
            return []
        error = self._error(event)
        if error is not None:
            return error
        if not self._started:
            self._begin(event)
            self._started = True
        out: list[JsonObject] = []
        text = optional_str(event, "response", "")
        if text:
            out.append(
                self._chunk([{"index": 0, "text": text, "logprobs": None, "finish_reason": None}])
            )
        if event.get("done") is True:
            choice = {
                "index": 0,
                "text": "",
                "logprobs": None,
                "finish_reason": _finish_of_done_reason(event),
            }
            out.extend(self._closing(choice, event))
        return out


def _delta(delta: JsonObject, finish_reason: str | None = None) -> JsonObject:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _tool_calls_ollama_to_openai(
    message: JsonObject, completion_id: str, first: int
) -> list[JsonObject]:
    calls = []
    for i, (path, call) in enumerate(
        objects(optional_list(message, "tool_calls", "message") or [], "message.tool_calls")
    ):
        fn = require_object(call, "function", path)
        calls.append(
            {
                "index": first + i,
                "id": optional_str(call, "id", path) or tool_call_id(completion_id, first + i),
                "type": "function",
                "function": {
                    "name": require_str(fn, "name", f"{path}.function"),
                    "arguments": dump_arguments(fn.get("arguments"), f"{path}.function.arguments"),
                },
            }
        )
    return calls


def _finish_of_done_reason(resp: JsonObject) -> str:
    return "length" if resp.get("done_reason") == "length" else "stop"


def _created_of(resp: JsonObject) -> int:
    at = optional_str(resp, "created_at", "")
    return epoch_of(at, "created_at") if at else int(time.time())


def _raise_ollama_error(resp: JsonObject) -> None:
    if "error" in resp:
        raise TranslationError("error", f"the Ollama backend answered an error: {resp['error']}")


def _openai_usage(usage: Usage) -> JsonObject:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


# ---------------------------------------------------------------------------------------------
# Client Ollama -> backend OpenAI-compatible: requests
# ---------------------------------------------------------------------------------------------


def chat_request_ollama_to_openai(req: JsonObject, *, extensions: bool = False) -> JsonObject:
    """An Ollama ``/api/chat`` request as an OpenAI ``chat.completions`` request.

    Ollama streams unless told not to, so ``stream`` defaults to true here, and a streamed
    request asks for the usage chunk that fills ``prompt_eval_count``/``eval_count``.
    ``extensions`` passes ``top_k``, ``min_p`` and ``repetition_penalty`` (vLLM, SGLang accept
    them; OpenAI itself rejects them); without it they are dropped.
    """
    out: JsonObject = {
        "model": require_str(req, "model", ""),
        "messages": _messages_ollama_to_openai(require_list(req, "messages", "")),
    }
    tools = _checked_tools(req)
    if tools:
        out["tools"] = tools
    return _common_ollama_to_openai(req, out, extensions=extensions, max_key="max_tokens")


def generate_request_ollama_to_openai(
    req: JsonObject, *, extensions: bool = False
) -> tuple[OpenAIPath, JsonObject]:
    """An Ollama ``/api/generate`` request as the OpenAI request that means the same.

    ``raw`` or ``suffix`` is literal text: a legacy ``completions`` call. Otherwise Ollama would
    apply the chat template, which is what ``chat.completions`` with ``system`` + user does.
    ``context``, ``template`` and ``keep_alive`` have no equivalent and are dropped.
    """
    model = require_str(req, "model", "")
    prompt = optional_str(req, "prompt", "") or ""
    suffix = optional_str(req, "suffix", "")
    if optional_bool(req, "raw", "") or suffix is not None:
        body: JsonObject = {"model": model, "prompt": prompt}
        if suffix is not None:
            body["suffix"] = suffix
        return "/v1/completions", _common_ollama_to_openai(
            req, body, extensions=extensions, max_key="max_tokens"
        )
    messages: list[JsonObject] = []
    system = optional_str(req, "system", "")
    if system:
        messages.append({"role": "system", "content": system})
    images = [
        _image_part(img, f"images[{i}]")
        for i, img in enumerate(optional_list(req, "images", "") or [])
    ]
    messages.append(
        {
            "role": "user",
            "content": [{"type": "text", "text": prompt}, *images] if images else prompt,
        }
    )
    body = {"model": model, "messages": messages}
    return "/v1/chat/completions", _common_ollama_to_openai(
        req, body, extensions=extensions, max_key="max_tokens"
    )


def embed_request_ollama_to_openai(req: JsonObject) -> JsonObject:
    """An Ollama ``/api/embed`` request as an OpenAI ``embeddings`` request (floats)."""
    text = req.get("input")
    if not (
        isinstance(text, str)
        or (isinstance(text, list) and text and all(isinstance(t, str) for t in text))
    ):
        raise TranslationError("input", "expected a string or a non-empty array of strings")
    out: JsonObject = {
        "model": require_str(req, "model", ""),
        "input": text,
        "encoding_format": "float",
    }
    dims = optional_int(req, "dimensions", "")
    if dims is not None:
        out["dimensions"] = dims
    return out


def _common_ollama_to_openai(
    req: JsonObject, out: JsonObject, *, extensions: bool, max_key: str
) -> JsonObject:
    stream = optional_bool(req, "stream", "")
    out["stream"] = True if stream is None else stream
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}
    fmt = req.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": fmt},
        }
    elif fmt not in (None, ""):
        raise TranslationError("format", 'expected "json" or a JSON schema object')
    options = optional_object(req, "options", "") or {}
    limit = optional_int(options, "num_predict", "options")
    if limit is not None and limit >= 0:  # -1 (until done) and -2 (fill context) mean no limit
        out[max_key] = limit
    for key in _SAMPLING:
        value = (
            optional_int(options, key, "options")
            if key == "seed"
            else optional_number(options, key, "options")
        )
        if value is not None:
            out[key] = value
    stop = stop_list(options, "stop", "options")
    if stop:
        out["stop"] = stop
    if extensions:
        for src, dst in (
            ("top_k", "top_k"),
            ("min_p", "min_p"),
            ("repeat_penalty", "repetition_penalty"),
        ):
            value = optional_number(options, src, "options")
            if value is not None:
                out[dst] = value
    return out


def _messages_ollama_to_openai(messages: list[Any]) -> list[JsonObject]:
    """Ollama messages, whose tool calls carry no ids, with ids generated and tool results linked.

    A tool message is matched to the earliest pending call with its ``tool_name``, else to the
    earliest pending call (Ollama sends results in call order).
    """
    out: list[JsonObject] = []
    pending: list[tuple[str, str]] = []
    serial = 0
    for path, msg in objects(messages, "messages"):
        role = require_str(msg, "role", path)
        content = optional_str(msg, "content", path) or ""
        images = [
            _image_part(img, f"{path}.images[{i}]")
            for i, img in enumerate(optional_list(msg, "images", path) or [])
        ]
        if role in ("system", "user"):
            entry: JsonObject = {
                "role": role,
                "content": [{"type": "text", "text": content}, *images] if images else content,
            }
        elif role == "assistant":
            entry = {"role": "assistant", "content": content}
            calls = []
            pending = []
            for cpath, call in objects(
                optional_list(msg, "tool_calls", path) or [], f"{path}.tool_calls"
            ):
                fn = require_object(call, "function", cpath)
                name = require_str(fn, "name", f"{cpath}.function")
                call_id = optional_str(call, "id", cpath) or f"call_{serial}"
                serial += 1
                pending.append((call_id, name))
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": name,
                            "arguments": dump_arguments(
                                fn.get("arguments"), f"{cpath}.function.arguments"
                            ),
                        },
                    }
                )
            if calls:
                entry["tool_calls"] = calls
                entry["content"] = content or None
        elif role == "tool":
            if not pending:
                raise TranslationError(path, "a tool result needs an earlier assistant tool call")
            wanted = optional_str(msg, "tool_name", path) or optional_str(msg, "name", path)
            match = next((p for p in pending if p[1] == wanted), pending[0])
            pending.remove(match)
            entry = {"role": "tool", "tool_call_id": match[0], "content": content}
        else:
            raise TranslationError(f"{path}.role", f"unsupported role {role!r}")
        out.append(entry)
    return out


_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def _image_part(image: Any, where: str) -> JsonObject:  # noqa: ANN401 -- raw JSON
    """An Ollama base64 image as an OpenAI data-URL part, its type sniffed from magic bytes."""
    if not isinstance(image, str):
        raise TranslationError(where, "expected a base64 string")
    try:
        head = base64.b64decode(image[:16] + "=" * (-len(image[:16]) % 4), validate=True)
    except ValueError:
        raise TranslationError(where, "not base64") from None
    mime = next((m for magic, m in _MAGIC if head.startswith(magic)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{image}"}}


# ---------------------------------------------------------------------------------------------
# Client Ollama <- backend OpenAI-compatible: responses and streams
# ---------------------------------------------------------------------------------------------


def chat_response_openai_to_ollama(
    resp: JsonObject, *, model: str | None = None, total_duration: int | None = None
) -> JsonObject:
    """An OpenAI ``chat.completion`` as an Ollama ``/api/chat`` response.

    ``total_duration`` (nanoseconds, measured by the gateway) is included when given; the other
    Ollama timings are not derivable from an OpenAI response and are left out.
    """
    choice = _first_choice(resp)
    message = require_object(choice, "message", "choices[0]")
    out_message: JsonObject = {
        "role": "assistant",
        "content": optional_str(message, "content", "choices[0].message") or "",
    }
    thinking = _reasoning_of(message)
    if thinking:
        out_message["thinking"] = thinking
    calls = _tool_calls_openai_to_ollama(
        optional_list(message, "tool_calls", "choices[0].message") or [],
        "choices[0].message.tool_calls",
    )
    if calls:
        out_message["tool_calls"] = calls
    out: JsonObject = {
        "model": model or require_str(resp, "model", ""),
        "created_at": _created_at_of(resp),
        "message": out_message,
    }
    return _ollama_final(out, choice.get("finish_reason"), usage_of_openai(resp), total_duration)


def generate_response_openai_to_ollama(
    resp: JsonObject, *, model: str | None = None, total_duration: int | None = None
) -> JsonObject:
    """An OpenAI ``chat.completion`` or ``text_completion`` as an ``/api/generate`` response."""
    choice = _first_choice(resp)
    message = optional_object(choice, "message", "choices[0]")
    if message is not None:
        text = optional_str(message, "content", "choices[0].message") or ""
    else:
        text = optional_str(choice, "text", "choices[0]") or ""
    out: JsonObject = {
        "model": model or require_str(resp, "model", ""),
        "created_at": _created_at_of(resp),
        "response": text,
    }
    return _ollama_final(out, choice.get("finish_reason"), usage_of_openai(resp), total_duration)


def embed_response_openai_to_ollama(resp: JsonObject, *, model: str | None = None) -> JsonObject:
    """An OpenAI embeddings list (float encoding) as an Ollama ``/api/embed`` response."""
    rows = []
    for path, row in objects(require_list(resp, "data", ""), "data"):
        vector = row.get("embedding")
        if not isinstance(vector, list):
            raise TranslationError(
                f"{path}.embedding", "expected an array of numbers (ask for encoding_format float)"
            )
        rows.append((optional_int(row, "index", path) or 0, vector))
    rows.sort(key=lambda r: r[0])
    return {
        "model": model or require_str(resp, "model", ""),
        "embeddings": [v for _, v in rows],
        "prompt_eval_count": usage_of_openai(resp).input_tokens,
    }


class _OpenAIToOllamaStream:
    """OpenAI SSE chunks -> Ollama NDJSON chunks; the done chunk waits for the usage chunk."""

    def __init__(self, *, model: str | None = None) -> None:
        self.usage = Usage()
        """Token counts, known once the usage chunk (or the end) has been fed."""
        self._model = model
        self._created: int | None = None
        self._finish: str | None = None
        self._done = False
        self._calls: dict[int, JsonObject] = {}

    def feed(self, event: JsonObject) -> list[JsonObject]:
        if self._done:
            return []
        if "error" in event:
            self._done = True
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else error
            return [{"error": str(message)}]
        if self._created is None:
            self._created = optional_int(event, "created", "") or int(time.time())
        if self._model is None:
            self._model = optional_str(event, "model", "") or ""
        out: list[JsonObject] = []
        for path, choice in objects(optional_list(event, "choices", "") or [], "choices"):
            out.extend(self._choice(choice, path))
            reason = choice.get("finish_reason")
            if reason is not None:
                self._finish = str(reason)
                calls = self._flush_calls()
                if calls:
                    out.append(self._chunk(self._message("", tool_calls=calls)))
        usage = optional_object(event, "usage", "")
        if usage is not None:
            self.usage = usage_of_openai(event)
            if self._finish is not None:
                out.append(self._final())
        return out

    def finish(self) -> list[JsonObject]:
        if self._done:
            return []
        if self._finish is None:
            raise TranslationError("stream", "the OpenAI stream ended before a finish_reason")
        return [self._final()]

    def _choice(self, choice: JsonObject, where: str) -> list[JsonObject]:
        raise NotImplementedError

    def _message(self, text: str, **extra: Any) -> JsonObject:
        raise NotImplementedError

    def _chunk(self, body: JsonObject, *, done: bool = False) -> JsonObject:
        return {
            "model": self._model,
            "created_at": rfc3339(self._created or 0),
            **body,
            "done": done,
        }

    def _final(self) -> JsonObject:
        self._done = True
        out = self._chunk(self._message(""), done=True)
        return _ollama_final(out, self._finish, self.usage, None)

    def _accumulate(self, delta: JsonObject, where: str) -> None:
        for path, call in objects(
            optional_list(delta, "tool_calls", where) or [], f"{where}.tool_calls"
        ):
            index = optional_int(call, "index", path) or 0
            slot = self._calls.setdefault(index, {"name": "", "arguments": ""})
            fn = optional_object(call, "function", path) or {}
            slot["name"] += optional_str(fn, "name", f"{path}.function") or ""
            slot["arguments"] += optional_str(fn, "arguments", f"{path}.function") or ""

    def _flush_calls(self) -> list[JsonObject]:
        calls = [
            {
                "function": {
                    "name": c["name"],
                    "arguments": parse_arguments(
                        c["arguments"], f"tool_calls[{i}].function.arguments"
                    ),
                }
            }
            for i, c in sorted(self._calls.items())
        ]
        self._calls = {}
        return calls


class ChatStreamOpenAIToOllama(_OpenAIToOllamaStream):
    """OpenAI ``chat.completion.chunk`` objects -> Ollama ``/api/chat`` NDJSON chunks.

    Tool-call argument fragments are assembled and sent as one chunk (Ollama's shape) when the
    choice finishes; the ``done`` chunk carries the counts from the usage chunk.
    """

    def _choice(self, choice: JsonObject, where: str) -> list[JsonObject]:
        delta = optional_object(choice, "delta", where) or {}
        self._accumulate(delta, f"{where}.delta")
        out = []
        thinking = _reasoning_of(delta)
        if thinking:
            out.append(self._chunk(self._message("", thinking=thinking)))
        text = optional_str(delta, "content", f"{where}.delta")
        if text:
            out.append(self._chunk(self._message(text)))
        return out

    def _message(self, text: str, **extra: Any) -> JsonObject:
        return {"message": {"role": "assistant", "content": text, **extra}}


class GenerateStreamOpenAIToOllama(_OpenAIToOllamaStream):
    """OpenAI chat or legacy completion chunks -> Ollama ``/api/generate`` NDJSON chunks."""

    def _choice(self, choice: JsonObject, where: str) -> list[JsonObject]:
        delta = optional_object(choice, "delta", where)
        text = (
            optional_str(delta, "content", f"{where}.delta")
            if delta is not None
            else optional_str(choice, "text", where)
        )
        return [self._chunk(self._message(text))] if text else []

    def _message(self, text: str, **extra: Any) -> JsonObject:
        return {"response": text}


def _first_choice(resp: JsonObject) -> JsonObject:
    if "error" in resp:
        raise TranslationError("error", f"the OpenAI backend answered an error: {resp['error']}")
    choices = objects(require_list(resp, "choices", ""), "choices")
    if not choices:
        raise TranslationError("choices", "expected at least one choice")
    return choices[0][1]


def _reasoning_of(message: JsonObject) -> str:
    """vLLM and SGLang put reasoning in ``reasoning_content`` (newer vLLM: ``reasoning``)."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _tool_calls_openai_to_ollama(calls: list[Any], where: str) -> list[JsonObject]:
    out = []
    for path, call in objects(calls, where):
        fn = require_object(call, "function", path)
        args = parse_arguments(
            require_str(fn, "arguments", f"{path}.function"), f"{path}.function.arguments"
        )
        out.append(
            {"function": {"name": require_str(fn, "name", f"{path}.function"), "arguments": args}}
        )
    return out


def _created_at_of(resp: JsonObject) -> str:
    created = optional_int(resp, "created", "")
    return rfc3339(created if created is not None else time.time())


def _ollama_final(
    out: JsonObject, finish_reason: object, usage: Usage, total_duration: int | None
) -> JsonObject:
    out["done"] = True
    out["done_reason"] = "length" if finish_reason == "length" else "stop"
    if total_duration is not None:
        out["total_duration"] = total_duration
    out["prompt_eval_count"] = usage.input_tokens
    out["eval_count"] = usage.output_tokens
    return out


# ---------------------------------------------------------------------------------------------
# Model lists: /api/tags, /api/ps, /v1/models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OllamaModel:
    """One model as the Ollama listing endpoints describe it; the gateway aggregates these."""

    name: str
    size: int = 0
    digest: str = ""
    """Hex SHA-256; empty means derive a stable one from the name."""
    modified_at: datetime | None = None
    format: str = ""
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    expires_at: datetime | None = None
    """When a loaded model unloads (``/api/ps``)."""
    size_vram: int = 0
    context_length: int | None = None
    extra: JsonObject = field(default_factory=dict, compare=False)
    """Fields a backend sent that this type does not model, kept for pass-through."""


def ollama_tags(models: list[OllamaModel]) -> JsonObject:
    """An ``/api/tags`` response listing ``models``."""
    return {"models": [_model_entry(m, modified=True) for m in models]}


def ollama_ps(models: list[OllamaModel]) -> JsonObject:
    """An ``/api/ps`` response listing the loaded ``models``."""
    out = []
    for m in models:
        entry = _model_entry(m, modified=False)
        entry["expires_at"] = _datetime_text(m.expires_at)
        entry["size_vram"] = m.size_vram
        if m.context_length is not None:
            entry["context_length"] = m.context_length
        out.append(entry)
    return {"models": out}


def openai_model_list(models: list[OllamaModel], *, owned_by: str = "dayzero") -> JsonObject:
    """A ``/v1/models`` response listing ``models``."""
    return {
        "object": "list",
        "data": [
            {
                "id": m.name,
                "object": "model",
                "created": int(m.modified_at.timestamp()) if m.modified_at else 0,
                "owned_by": owned_by,
            }
            for m in models
        ],
    }


def models_from_ollama(resp: JsonObject) -> list[OllamaModel]:
    """The models of a backend's ``/api/tags`` or ``/api/ps`` response."""
    out = []
    for path, entry in objects(require_list(resp, "models", ""), "models"):
        details = optional_object(entry, "details", path) or {}
        families = optional_list(details, "families", f"{path}.details") or []
        out.append(
            OllamaModel(
                name=optional_str(entry, "name", path) or require_str(entry, "model", path),
                size=optional_int(entry, "size", path) or 0,
                digest=optional_str(entry, "digest", path) or "",
                modified_at=_parse_datetime(
                    optional_str(entry, "modified_at", path), f"{path}.modified_at"
                ),
                format=optional_str(details, "format", f"{path}.details") or "",
                family=optional_str(details, "family", f"{path}.details") or "",
                families=tuple(str(f) for f in families),
                parameter_size=optional_str(details, "parameter_size", f"{path}.details") or "",
                quantization_level=optional_str(details, "quantization_level", f"{path}.details")
                or "",
                expires_at=_parse_datetime(
                    optional_str(entry, "expires_at", path), f"{path}.expires_at"
                ),
                size_vram=optional_int(entry, "size_vram", path) or 0,
                context_length=optional_int(entry, "context_length", path),
            )
        )
    return out


def models_from_openai(resp: JsonObject) -> list[OllamaModel]:
    """The models of a backend's ``/v1/models`` response (only names and creation times)."""
    out = []
    for path, entry in objects(require_list(resp, "data", ""), "data"):
        created = optional_int(entry, "created", path)
        modified = datetime.fromtimestamp(created, tz=UTC) if created else None
        out.append(OllamaModel(name=require_str(entry, "id", path), modified_at=modified))
    return out


def _model_entry(m: OllamaModel, *, modified: bool) -> JsonObject:
    entry: JsonObject = {
        "name": m.name,
        "model": m.name,
        "size": m.size,
        "digest": m.digest or hashlib.sha256(m.name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": m.format,
            "family": m.family,
            "families": list(m.families) if m.families else ([m.family] if m.family else None),
            "parameter_size": m.parameter_size,
            "quantization_level": m.quantization_level,
        },
    }
    if modified:
        entry["modified_at"] = _datetime_text(m.modified_at)
    return entry


def _datetime_text(moment: datetime | None) -> str:
    if moment is None:
        return "0001-01-01T00:00:00Z"  # Go's zero time, what Ollama prints for "never"
    return rfc3339(moment.timestamp()) if moment.tzinfo is not None else moment.isoformat() + "Z"


def _parse_datetime(text: str | None, where: str) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise TranslationError(where, f"not an RFC 3339 timestamp: {text!r}") from None


# ---------------------------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------------------------


def usage_of_openai(resp: JsonObject) -> Usage:
    """``(prompt_tokens, completion_tokens)`` of a response or usage chunk; zeros if absent."""
    usage = optional_object(resp, "usage", "") or {}
    return Usage(
        optional_int(usage, "prompt_tokens", "usage") or 0,
        optional_int(usage, "completion_tokens", "usage") or 0,
    )


def usage_of_ollama(resp: JsonObject) -> Usage:
    """``(prompt_eval_count, eval_count)`` of an Ollama response or done chunk; zeros if absent."""
    return Usage(
        optional_int(resp, "prompt_eval_count", "") or 0, optional_int(resp, "eval_count", "") or 0
    )
