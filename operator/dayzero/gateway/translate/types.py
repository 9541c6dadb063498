"""The shared vocabulary of the translators: JSON objects, usage counts, and the one error.

Every translator reads untrusted JSON from a client or a backend, so field access goes through
the ``require_*``/``optional_*`` readers here: a wrong shape becomes a ``TranslationError`` that
names the field (the gateway answers 400 for a request, 502 for a backend response), never a
``KeyError`` deep in a stream.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

JsonObject = dict[str, Any]
"""A decoded JSON object, as it arrives on or leaves the wire."""

Protocol = Literal["openai", "ollama", "anthropic"]
"""The wire protocols the gateway speaks."""


class TranslationError(ValueError):
    """A payload another protocol cannot express, or a malformed one; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        """Dotted path of the offending field, e.g. ``messages[2].tool_calls[0].function``."""
        self.message = message
        """What is wrong, without the field prefix."""


class Usage(NamedTuple):
    """Token counts of one exchange, for billing and metrics; unpacks as ``(input, output)``."""

    input_tokens: int = 0
    output_tokens: int = 0


def require_object(obj: JsonObject, key: str, where: str) -> JsonObject:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise TranslationError(_path(where, key), f"expected an object, got {_kind(value)}")
    return value


def optional_object(obj: JsonObject, key: str, where: str) -> JsonObject | None:
    if obj.get(key) is None:
        return None
    return require_object(obj, key, where)


def require_str(obj: JsonObject, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise TranslationError(_path(where, key), f"expected a string, got {_kind(value)}")
    return value


def optional_str(obj: JsonObject, key: str, where: str) -> str | None:
    if obj.get(key) is None:
        return None
    return require_str(obj, key, where)


def optional_int(obj: JsonObject, key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(_path(where, key), f"expected an integer, got {_kind(value)}")
    return value


def optional_number(obj: JsonObject, key: str, where: str) -> float | int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(_path(where, key), f"expected a number, got {_kind(value)}")
    return value


def optional_bool(obj: JsonObject, key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise TranslationError(_path(where, key), f"expected a boolean, got {_kind(value)}")
    return value


def require_list(obj: JsonObject, key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise TranslationError(_path(where, key), f"expected an array, got {_kind(value)}")
    return value


def optional_list(obj: JsonObject, key: str, where: str) -> list[Any] | None:
    if obj.get(key) is None:
        return None
    return require_list(obj, key, where)


def objects(items: list[Any], where: str) -> list[tuple[str, JsonObject]]:
    """Each item of a JSON array with its path, checking that every item is an object."""
    out: list[tuple[str, JsonObject]] = []
    for i, item in enumerate(items):
        path = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise TranslationError(path, f"expected an object, got {_kind(item)}")
        out.append((path, item))
    return out


def stop_list(obj: JsonObject, key: str, where: str) -> list[str] | None:
    """OpenAI's ``stop`` (a string or an array of strings) as a list."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise TranslationError(_path(where, key), "expected a string or an array of strings")


def parse_arguments(text: str, where: str) -> JsonObject:
    """A tool call's JSON-string arguments (OpenAI) as the object Ollama and Anthropic carry."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranslationError(where, f"tool call arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TranslationError(
            where, f"tool call arguments must be a JSON object, got {_kind(value)}"
        )
    return value


def dump_arguments(value: Any, where: str) -> str:  # noqa: ANN401 -- any JSON value is accepted
    """A tool call's object arguments (Ollama, Anthropic) as OpenAI's JSON string."""
    if value is None:
        return "{}"
    if isinstance(value, str):  # some servers already send a string; pass it on if it is JSON
        parse_arguments(value, where)
        return value
    if not isinstance(value, dict):
        raise TranslationError(where, f"tool call arguments must be an object, got {_kind(value)}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def rfc3339(epoch_seconds: float) -> str:
    """Unix seconds as Ollama's ``created_at`` (UTC, ``Z`` suffix)."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def epoch_of(text: str, where: str) -> int:
    """Ollama's RFC 3339 ``created_at`` (nanoseconds and offsets allowed) as Unix seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TranslationError(where, f"not an RFC 3339 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)
