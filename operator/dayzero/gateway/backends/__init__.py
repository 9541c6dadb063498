"""Upstream backends: one class per API the gateway speaks to (OpenAI today)."""

from .base import Backend, BackendError, Reply, StreamReply, UpstreamRequest
from .openai import OpenAIBackend

__all__ = ["Backend", "BackendError", "OpenAIBackend", "Reply", "StreamReply", "UpstreamRequest"]
