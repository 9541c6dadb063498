"""Pure protocol translators: OpenAI, Ollama and Anthropic payloads, each into the others.

The gateway speaks whatever the client speaks and routes to whatever the backend speaks, so
every pair it supports is a set of functions here: request in, request out; response in,
response out; and for streams a small stateful class fed one decoded chunk at a time. Nothing
here does I/O, so the whole matrix is tested byte for byte without a socket; anything one
protocol cannot say in another raises ``TranslationError`` naming the field.

A streamed exchange, e.g. an OpenAI client on an Anthropic backend::

    pipe = StreamPipe(ChatStreamAnthropicToOpenAI(include_usage=True), source="sse", target="sse")
    async for piece in backend.aiter_bytes():
        yield pipe.feed(piece)
    yield pipe.finish()  # ends with data: [DONE]
"""

from .openai_anthropic import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    ChatStreamAnthropicToOpenAI,
    chat_request_openai_to_anthropic,
    chat_response_anthropic_to_openai,
)
from .openai_ollama import (
    ChatStreamOllamaToOpenAI,
    ChatStreamOpenAIToOllama,
    CompletionStreamOllamaToOpenAI,
    GenerateStreamOpenAIToOllama,
    OllamaModel,
    chat_request_ollama_to_openai,
    chat_request_openai_to_ollama,
    chat_response_ollama_to_openai,
    chat_response_openai_to_ollama,
    completion_request_openai_to_ollama,
    completion_response_ollama_to_openai,
    embed_request_ollama_to_openai,
    embed_request_openai_to_ollama,
    embed_response_ollama_to_openai,
    embed_response_openai_to_ollama,
    generate_request_ollama_to_openai,
    generate_response_openai_to_ollama,
    models_from_ollama,
    models_from_openai,
    ollama_ps,
    ollama_tags,
    openai_model_list,
)
from .sse import (
    SSE_DONE,
    ChunkTranslator,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    StreamPipe,
    encode_ndjson,
    encode_sse,
    parse_ndjson,
    parse_sse,
)
from .types import JsonObject, Protocol, TranslationError, Usage
from .usage import usage_of

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "SSE_DONE",
    "ChatStreamAnthropicToOpenAI",
    "ChatStreamOllamaToOpenAI",
    "ChatStreamOpenAIToOllama",
    "ChunkTranslator",
    "CompletionStreamOllamaToOpenAI",
    "GenerateStreamOpenAIToOllama",
    "JsonObject",
    "NDJSONDecoder",
    "OllamaModel",
    "Protocol",
    "SSEDecoder",
    "SSEEvent",
    "StreamPipe",
    "TranslationError",
    "Usage",
    "chat_request_ollama_to_openai",
    "chat_request_openai_to_anthropic",
    "chat_request_openai_to_ollama",
    "chat_response_anthropic_to_openai",
    "chat_response_ollama_to_openai",
    "chat_response_openai_to_ollama",
    "completion_request_openai_to_ollama",
    "completion_response_ollama_to_openai",
    "embed_request_ollama_to_openai",
    "embed_request_openai_to_ollama",
    "embed_response_ollama_to_openai",
    "embed_response_openai_to_ollama",
    "encode_ndjson",
    "encode_sse",
    "generate_request_ollama_to_openai",
    "generate_response_openai_to_ollama",
    "models_from_ollama",
    "models_from_openai",
    "ollama_ps",
    "ollama_tags",
    "openai_model_list",
    "parse_ndjson",
    "parse_sse",
    "usage_of",
]
