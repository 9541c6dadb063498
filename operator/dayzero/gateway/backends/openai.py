"""An OpenAI-compatible upstream (vLLM, transformers serve, llama.cpp, OpenAI itself).

Requests go over one shared aiohttp session, so connections to a host are pooled and reused. The
answer is relayed byte for byte (a whole one is parsed once, to check it and read ``usage``). A
stream is only handed to the app after its first chunk arrived: up to then any failure is a
``BackendError`` and the app fails over; after it, a failure surfaces from ``rest`` and the app
ends the client's stream with an error event.
"""

from __future__ import annotations

from typing import Any

from . import transport
from .base import BackendError, Reply, StreamReply, UpstreamRequest


class OpenAIBackend(transport.Host):
    """One OpenAI-compatible host."""

    @staticmethod
    def base_url(url: str) -> str:
        """``.../v1``, whether or not the document's URL ends with it."""
        return url if url.endswith("/v1") else url + "/v1"

    def _headers(self, request: UpstreamRequest) -> dict[str, str]:
        return {"Content-Type": "application/json", **request.headers, **self._bearer()}

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """POST the request; BackendError on timeout, connection error, 5xx or garbage."""
        resp = await transport.post(
            self._session,
            f"{self._base}/{request.endpoint}",
            request.body,
            self._headers(request),
            seconds=self._timeout,
            stream=request.stream,
        )
        try:
            if request.stream and resp.status == 200:
                return await transport.relay(resp, self._timeout)
            body = await transport.read(resp, self._timeout)
        except BaseException:
            resp.close()
            raise
        parsed = transport.json_object(body, resp.status)
        if (
            resp.status == 200
            and "error" not in parsed
            and not ("choices" in parsed or "data" in parsed)
        ):
            raise BackendError("bad_response", "the answer has neither choices nor data")
        usage = parsed.get("usage")
        return Reply(resp.status, body, usage=usage if isinstance(usage, dict) else None)

    async def models(self) -> dict[str, Any]:
        """GET /v1/models of the host (for probes and status)."""
        return await transport.get_json(
            self._session, f"{self._base}/models", self._bearer(), self._timeout
        )
