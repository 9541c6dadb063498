"""Token counts of any response or stream chunk, by protocol, for billing and metrics."""

from __future__ import annotations

from .openai_anthropic import usage_of_anthropic
from .openai_ollama import usage_of_ollama, usage_of_openai
from .types import JsonObject, Protocol, Usage


def usage_of(response: JsonObject, protocol: Protocol) -> Usage:
    """``(input_tokens, output_tokens)`` of a response, usage chunk or stream event; zeros if none.

    Anthropic input counts include prompt-cache writes and reads, as OpenAI's ``prompt_tokens``
    includes cached tokens.
    """
    if protocol == "openai":
        return usage_of_openai(response)
    if protocol == "ollama":
        return usage_of_ollama(response)
    return usage_of_anthropic(response)
