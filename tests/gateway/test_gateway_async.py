"""Async lanes: 409 for sync calls, 202 and an id, the status then the result, TTL, retries on
another backend, and (with a real redis-server) work that survives the replica that took it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from gateway_fakes import (
    ADMIN_KEY,
    CHAT,
    USER_KEY,
    Running,
    document,
    serve,
    sha,
    upstreams,
)

from dayzero.gateway.asyncjobs import Attempt, Job, MemoryStore, rotated
from redis_server import RedisServer

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = {"workers": 2, "lease_seconds": 0.3, "backoff_seconds": 0.02, "max_attempts": 3}


def async_doc(*urls: str, **lane: Any) -> dict[str, Any]:
    backends = [{"name": f"b{i}", "url": url, "timeoutSeconds": 5} for i, url in enumerate(urls)]
    return document(
        backends,
        lanes=[
            {
                "name": "deep",
                "model": "deep",
                "mode": "async",
                "backends": [b["name"] for b in backends],
                **lane,
            }
        ],
    )


async def until_done(gw: Running, job_id: str, seconds: float = 1.5) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        status, job = await gw.get(f"/v1/async/{job_id}")
        assert status == 200, job
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.02)


DEEP = {**CHAT, "model": "deep"}


def test_async_lane_refuses_sync_and_answers_later(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with (
            upstreams("delay:0.2") as (up,),
            serve(async_doc(up.url), tmp_path, async_options=FAST) as gw,
        ):
            status, _, body = await gw.post("/v1/chat/completions", DEEP)
            assert status == 409
            assert "POST /v1/async/chat/completions" in body["error"]["message"]
            status, _, body = await gw.post("/api/chat", DEEP)
            assert status == 409
            assert "/v1/async/chat/completions" in body["error"]
            assert up.requests == []
            status, headers, job = await gw.post("/v1/async/chat/completions", DEEP)
            assert status == 202
            assert job["status"] == "queued"
            assert headers["location"] == f"/v1/async/{job['id']}"
            deadline = time.monotonic() + 1
            while not up.requests:  # the upstream has it: the job is running
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            _, running = await gw.get(f"/v1/async/{job['id']}")
            assert running["status"] == "running"
            assert "result" not in running
            done = await until_done(gw, job["id"])
            assert done["status"] == "succeeded"
            assert done["backend"] == "b0"
            assert done["resultStatus"] == 200
            assert done["result"]["choices"][0]["message"]["content"] == f"from {up.url}"
            assert up.requests[0]["stream"] is False
            assert up.requests[0]["messages"] == CHAT["messages"]
            _, metrics = await gw.get("/metrics")
            assert 'endpoint="async/chat/completions"' in metrics
            assert 'dayzero_gateway_async_jobs_total{lane="deep",status="queued"} 1.0' in metrics
            assert 'dayzero_gateway_async_jobs_total{lane="deep",status="succeeded"} 1.0' in metrics

    run(scenario())


def test_async_bad_input_and_unknown_ids(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with (
            upstreams("ok") as (up,),
            serve(async_doc(up.url), tmp_path, async_options=FAST) as gw,
        ):
            status, _, body = await gw.post("/v1/async/chat/completions", {**DEEP, "stream": True})
            assert status == 400
            assert body["error"]["param"] == "stream"
            status, _, body = await gw.post("/v1/async/chat/completions", {"model": "deep"})
            assert status == 400
            assert body["error"]["param"] == "messages"
            status, _, body = await gw.post("/v1/async/chat/completions", {**CHAT, "model": "x"})
            assert status == 404
            status, body = await gw.get("/v1/async/job-nope")
            assert status == 404
            assert "unknown or expired" in body["error"]["message"]
            status, _, _ = await gw.post("/v1/async/job-nope", DEEP)
            assert status == 405

    run(scenario())


def test_async_retries_from_the_next_backend_then_fails(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with (
            upstreams("500", "500") as (a, b),
            serve(async_doc(a.url, b.url), tmp_path, async_options=FAST) as gw,
        ):
            _, _, job = await gw.post("/v1/async/chat/completions", DEEP)
            done = await until_done(gw, job["id"])
            assert done["status"] == "failed"
            assert done["attempts"] == 3
            assert done["resultStatus"] == 502
            assert len(done["history"]) == 2
            _, metrics = await gw.get("/metrics")
            assert 'dayzero_gateway_async_jobs_total{lane="deep",status="retried"} 2.0' in metrics
            # Each attempt fails over inside the lane; each retry starts one backend on.
            assert len(a.requests) == 3
            assert len(b.requests) == 3
            assert done["backend"] is None

    run(scenario())


def test_async_results_expire_and_stay_within_their_project(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        keys = {
            "enabled": True,
            "entries": [
                {"sha256": sha(USER_KEY), "project": "team-a"},
                {"sha256": sha("sk-other"), "project": "team-b"},
                {"sha256": sha(ADMIN_KEY), "project": "ops", "admin": True},
            ],
        }
        async with upstreams("ok") as (up,):
            doc = async_doc(up.url) | {"keys": keys}
            options = {**FAST, "ttl_seconds": 0.3}
            async with serve(doc, tmp_path, async_options=options) as gw:
                user = {"Authorization": f"Bearer {USER_KEY}"}
                _, _, job = await gw.post("/v1/async/chat/completions", DEEP, user)
                deadline = time.monotonic() + 1
                while (await gw.get(f"/v1/async/{job['id']}", user))[1]["status"] != "succeeded":
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                other = {"Authorization": "Bearer sk-other"}
                assert (await gw.get(f"/v1/async/{job['id']}", other))[0] == 404
                admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
                assert (await gw.get(f"/v1/async/{job['id']}", admin))[0] == 200
                await asyncio.sleep(0.35)
                assert (await gw.get(f"/v1/async/{job['id']}", user))[0] == 404

    run(scenario())


def test_rotation_and_retryable() -> None:
    assert rotated(("a", "b", "c"), 1) == ("a", "b", "c")
    assert rotated(("a", "b", "c"), 2) == ("b", "c", "a")
    assert rotated(("a", "b", "c"), 4) == ("a", "b", "c")
    assert Attempt(502, b"", None).retryable
    assert Attempt(429, b"", None).retryable
    assert not Attempt(400, b"", None).retryable
    assert not Attempt(200, b"", "b0").retryable
    job = Job(id="job-1", lane="deep", project="p", request=DEEP)
    assert Job.loads(job.dumps()) == job

    async def expiry() -> None:
        now = [0.0]
        store = MemoryStore(10, clock=lambda: now[0])
        await store.put(job)
        claimed = await store.claim("r", 0.1)
        assert claimed is not None
        await store.finish(claimed)
        now[0] = 9.9
        assert await store.get("job-1") is not None
        now[0] = 10.0
        assert await store.get("job-1") is None

    asyncio.run(expiry())


def test_async_work_survives_the_replica_that_took_it(
    tmp_path: Path, run: Run, redis_server: RedisServer
) -> None:
    """Replica one takes the job and dies on a slow backend; replica two finds the lapsed
    lease, queues the job again, and runs it from the lane's next backend."""

    async def scenario() -> None:
        one = aioredis.Redis.from_url(redis_server.url)
        two = aioredis.Redis.from_url(redis_server.url)
        (tmp_path / "1").mkdir()
        (tmp_path / "2").mkdir()
        try:
            async with upstreams("delay:30", "ok") as (slow, fast):
                doc = async_doc(slow.url, fast.url)
                doc["backends"][0]["timeoutSeconds"] = 60
                async with serve(
                    doc, tmp_path / "1", redis=one, replica="gw-1", async_options=FAST
                ) as gw1:
                    _, _, job = await gw1.post("/v1/async/chat/completions", DEEP)
                    deadline = time.monotonic() + 1
                    while not slow.requests:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.01)
                    _, seen = await gw1.get(f"/v1/async/{job['id']}")
                    assert seen["status"] == "running"
                    gw1.app.jobs._tasks[-1].cancel()
                    for task in gw1.app.jobs._tasks[:-1]:
                        task.cancel()
                async with serve(
                    doc, tmp_path / "2", redis=two, replica="gw-2", async_options=FAST
                ) as gw2:
                    done = await until_done(gw2, job["id"], seconds=1.5)
                    assert done["status"] == "succeeded"
                    assert done["attempts"] == 2
                    assert done["backend"] == "b1"
                    assert len(fast.requests) == 1
                    assert len(slow.requests) == 1
        finally:
            await one.aclose()
            await two.aclose()

    run(scenario())


def test_async_answers_503_while_redis_is_down(
    tmp_path: Path, run: Run, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(
            redis_server.url, socket_timeout=0.25, socket_connect_timeout=0.25
        )
        try:
            async with (
                upstreams("ok") as (up,),
                serve(async_doc(up.url), tmp_path, redis=client, async_options=FAST) as gw,
            ):
                redis_server.kill()
                status, headers, body = await gw.post("/v1/async/chat/completions", DEEP)
                assert status == 503
                assert headers["retry-after"] == "1"
                assert "async job store is unavailable" in body["error"]["message"]
                status, body = await gw.get("/v1/async/job-0123")
                assert status == 503
        finally:
            await client.aclose()

    run(scenario())
