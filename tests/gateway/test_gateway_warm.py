"""Residency (vLLM's /v1/models, Ollama's /api/ps, polled) and keep-warm (Ollama's
``/api/generate`` with no prompt and ``keep_alive``), driven through the gateway against fakes that
speak the real protocols; the official ``ollama`` client checks the fake's load and unload first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ollama
from aiohttp import web
from gateway_fakes import (
    OLLAMA_AT,
    FakeOllama,
    FakeUpstream,
    Running,
    closed_port_url,
    document,
    fakes,
    ollama_backend,
    serve,
)

from dayzero.gateway.residency import same_model
from dayzero.gateway.warm import keep_alive_for

Run = Callable[[Coroutine[Any, Any, Any]], Any]
POLLS = {"residency_seconds": 0.05, "warm_seconds": 0.1}


@dataclass
class LoadingOllama(FakeOllama):
    """Ollama as it keeps models in memory: a generation loads its model; ``/api/generate`` with
    no prompt loads it (``done_reason: load``) or, with ``keep_alive: 0``, unloads it
    (``unload``); ``/api/ps`` lists what is loaded."""

    resident: set[str] = field(default_factory=set)
    warm_requests: list[dict[str, Any]] = field(default_factory=list)

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if request.path == "/api/generate" and not body.get("prompt") and "keep_alive" in body:
            self.paths.append(request.path)
            self.warm_requests.append(body)
            model = body["model"]
            unload = body["keep_alive"] in (0, "0", "0s")
            if unload:
                self.resident.discard(model)
            else:
                self.resident.add(model)
            return web.json_response(
                {
                    "model": model,
                    "created_at": OLLAMA_AT,
                    "response": "",
                    "done": True,
                    "done_reason": "unload" if unload else "load",
                }
            )
        if request.path == "/api/ps":
            self.paths.append(request.path)
            models = [
                {"name": m, "model": m, "size": 1, "digest": "d"} for m in sorted(self.resident)
            ]
            return web.json_response({"models": models})
        if request.path in ("/api/chat", "/api/generate"):
            self.resident.add(body.get("model", ""))
        return await super()._answer(request, body)


@dataclass
class FakeVLLM(FakeUpstream):
    """vLLM's ``GET /v1/models``: the one model it serves."""

    served: str = "llama-8b"

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/v1/models":
            data = [{"id": self.served, "object": "model", "created": 0, "owned_by": "vllm"}]
            return web.json_response({"object": "list", "data": data})
        return await super()._answer(request, body)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_fake_speaks_ollama_load_and_unload(run: Run) -> None:
    async def scenario() -> None:
        async with (
            fakes(LoadingOllama()) as (fake,),
            ollama.AsyncClient(host=fake.url) as client,
        ):
            loaded = await client.generate(model="llama3.2:1b", keep_alive="5m")
            assert loaded.done_reason == "load"
            assert [m.model for m in (await client.ps()).models] == ["llama3.2:1b"]
            unloaded = await client.generate(model="llama3.2:1b", keep_alive=0)
            assert unloaded.done_reason == "unload"
            assert (await client.ps()).models == []

    run(scenario())


async def status(gw: Running) -> dict[str, Any]:
    code, body = await gw.get("/v1/models/status")
    assert code == 200
    return body


def test_residency_shows_which_lane_is_safe(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        a, b = LoadingOllama(resident={"llama3.2:1b"}), LoadingOllama()
        async with fakes(a, b, FakeVLLM()) as (_, _, vllm):
            doc = document(
                [
                    ollama_backend("ollama-a", a.url),
                    ollama_backend("ollama-b", b.url),
                    {"name": "vllm", "url": vllm.url, "model": "llama-8b"},
                    {"name": "paid", "url": closed_port_url(), "paid": True},
                ],
                lanes=[
                    {"name": "fast", "model": "fast", "backends": ["ollama-a", "ollama-b"]},
                    {"name": "big", "model": "big", "backends": ["vllm", "paid"]},
                ],
            )
            async with serve(doc, tmp_path, poll_options=POLLS) as gw:

                async def polled() -> bool:
                    lanes = {lane["name"]: lane for lane in (await status(gw))["lanes"]}
                    return lanes["fast"]["residentOn"] == ["ollama-a"] and lanes["big"][
                        "residentOn"
                    ] == ["vllm"]

                await eventually(polled)
                backends = {b["name"]: b for b in (await status(gw))["backends"]}
                assert backends["ollama-a"]["resident"]["models"] == ["llama3.2:1b"]
                assert backends["ollama-b"]["resident"]["models"] == []
                assert backends["vllm"]["resident"]["models"] == ["llama-8b"]
                assert backends["paid"]["resident"] is None  # a paid API is never polled
                # A request through the gateway loads the model on b (a is open): b turns warm.
                gw.app.breakers.get(a.url).failure(1, "timeout")
                code, _, _ = await gw.post(
                    "/api/chat", {"model": "fast", "messages": [], "stream": False}
                )
                assert code == 200

                async def both() -> bool:
                    lanes = {lane["name"]: lane for lane in (await status(gw))["lanes"]}
                    return "ollama-b" in lanes["fast"]["residentOn"]

                await eventually(both)
                assert "/api/ps" in b.paths

    run(scenario())


def test_keep_warm_loads_unloads_and_follows_the_document(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        a, b = LoadingOllama(), LoadingOllama()
        async with fakes(a, b):
            backends = [
                ollama_backend("ollama-a", a.url, keepWarm=True),
                ollama_backend("ollama-b", b.url),
            ]
            doc = document(backends)
            async with serve(doc, tmp_path, poll_options=POLLS) as gw:
                await eventually(lambda: _true(len(a.warm_requests) >= 2))
                first = a.warm_requests[0]
                assert first == {
                    "model": "llama3.2:1b",
                    "keep_alive": keep_alive_for(0.1),
                    "stream": False,
                }
                assert a.resident == {"llama3.2:1b"}
                assert b.warm_requests == []
                warm = {x["name"]: x["keepWarm"] for x in (await status(gw))["backends"]}
                assert warm["ollama-a"]["last"] == "load"
                assert warm["ollama-b"] is None

                code, _, body = await gw.post("/v1/admin/unload", {"backend": "ollama-a"})
                assert code == 200
                assert body == {
                    "backend": "ollama-a",
                    "model": "llama3.2:1b",
                    "result": "unload",
                    "paused": True,
                }
                assert a.warm_requests[-1]["keep_alive"] == 0
                assert a.resident == set()
                sent = len(a.warm_requests)
                await asyncio.sleep(0.3)
                assert len(a.warm_requests) == sent  # paused: no load behind the admin's back

                code, _, body = await gw.post("/v1/admin/warm", {"backend": "ollama-a"})
                assert code == 200
                assert body["result"] == "load"
                assert a.resident == {"llama3.2:1b"}

                code, _, body = await gw.post("/v1/admin/unload", {"backend": "nope"})
                assert code == 400
                assert body["error"]["param"] == "backend"

                # The document drops keepWarm: the model is unloaded, and no longer warmed.
                backends[0]["keepWarm"] = False
                gw.write(document(backends))
                await eventually(lambda: _true(a.warm_requests[-1]["keep_alive"] == 0))
                assert a.resident == set()
                sent = len(a.warm_requests)
                await asyncio.sleep(0.3)
                assert len(a.warm_requests) == sent

    run(scenario())


async def _true(value: bool) -> bool:
    return value


def test_model_names() -> None:
    assert same_model("llama3.2", "llama3.2:latest", ollama=True)
    assert not same_model("llama3.2", "llama3.2:1b", ollama=True)
    assert not same_model("llama3.2", "llama3.2:latest", ollama=False)
    assert keep_alive_for(60) == "300s"
    assert keep_alive_for(600) == "1800s"
