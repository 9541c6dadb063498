"""Upstream backends: one class per API the gateway speaks to (OpenAI, Ollama, Anthropic)."""

from .anthropic import AnthropicBackend
from .base import Backend, BackendError, Reply, StreamReply, UpstreamRequest
from .ollama import OllamaBackend
from .openai import OpenAIBackend

__all__ = [
    "AnthropicBackend",
    "Backend",
    "BackendError",
    "OllamaBackend",
    "OpenAIBackend",
    "Reply",
    "StreamReply",
    "UpstreamRequest",
]
