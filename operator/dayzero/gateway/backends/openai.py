"""An OpenAI-compatible upstream (vLLM, transformers serve, llama.cpp, OpenAI itself).

Requests go over one shared aiohttp session, so connections to a host are pooled and reused. A
stream is only handed to the app after its first chunk arrived: up to then any failure is a
``BackendError`` and the app fails over; after it, a failure surfaces from ``rest`` and the app
ends the client's stream with an error event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp

from .base import BackendError, Reply, StreamReply, UpstreamRequest


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIBackend:
    """One OpenAI-compatible host."""

    def __init__(
        self,
        name: str,
        url: str,
        host: str,
        *,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self._base = _base(url)
        self._session = session
        self._timeout = timeout_seconds
        self._token = token

    def _headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **request.headers}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def send(self, request: UpstreamRequest) -> Reply | StreamReply:
        """POST the request; BackendError on timeout, connection error, 5xx or garbage."""
        url = f"{self._base}/{request.endpoint}"
        if request.stream:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=self._timeout
            )
        else:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
        data = json.dumps(request.body).encode()
        try:
            resp = await self._session.post(
                url, data=data, headers=self._headers(request), timeout=timeout
            )
        except TimeoutError:
            raise BackendError("timeout", f"no answer within {self._timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise BackendError("connect", type(e).__name__) from None
        try:
            if request.stream and resp.status == 200:
                return await self._stream(resp)
            return await self._whole(resp)
        except BaseException:
            resp.close()
            raise

    async def _whole(self, resp: aiohttp.ClientResponse) -> Reply:
        try:
            body = await resp.read()
        except TimeoutError:
            raise BackendError("timeout", f"no answer within {self._timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise BackendError("connect", f"reading the answer: {type(e).__name__}") from None
        finally:
            resp.release()
        if resp.status >= 500:
            raise BackendError("upstream_5xx", f"HTTP {resp.status}")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            raise BackendError("bad_response", f"HTTP {resp.status} with a non-JSON body") from None
        if not isinstance(parsed, dict):
            raise BackendError("bad_response", "the answer is not a JSON object")
        if (
            resp.status == 200
            and "error" not in parsed
            and not ("choices" in parsed or "data" in parsed)
        ):
            raise BackendError("bad_response", "the answer has neither choices nor data")
        usage = parsed.get("usage")
        return Reply(resp.status, body, usage=usage if isinstance(usage, dict) else None)

    async def _stream(self, resp: aiohttp.ClientResponse) -> StreamReply:
        if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            raise BackendError("bad_response", "a stream was asked for but not answered")
        chunks = resp.content.iter_any()
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise BackendError("bad_response", "the stream ended before any event") from None
        except TimeoutError:
            raise BackendError("timeout", f"no first event within {self._timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise BackendError("connect", f"stream broke: {type(e).__name__}") from None
        return StreamReply(first=first, rest=self._rest(resp, chunks))

    async def _rest(
        self, resp: aiohttp.ClientResponse, chunks: AsyncIterator[bytes]
    ) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in chunks:
                yield chunk
        except TimeoutError:
            raise BackendError("timeout", f"no event within {self._timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise BackendError("connect", f"stream broke: {type(e).__name__}") from None
        finally:
            # Closing (not releasing) drops the connection, which cancels the upstream generation
            # when the client went away mid-stream.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    async def models(self) -> dict[str, Any]:
        """GET /v1/models of the host (for probes and status)."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.get(
                f"{self._base}/models", headers=self._headers_plain(), timeout=timeout
            ) as resp:
                if resp.status >= 500:
                    raise BackendError("upstream_5xx", f"HTTP {resp.status}")
                data: Any = await resp.json(content_type=None)
        except TimeoutError:
            raise BackendError("timeout", f"no answer within {self._timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise BackendError("connect", type(e).__name__) from None
        except ValueError:
            raise BackendError("bad_response", "non-JSON model list") from None
        if not isinstance(data, dict):
            raise BackendError("bad_response", "the model list is not an object")
        return data

    def _headers_plain(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}
