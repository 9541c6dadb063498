"""Several real ``dayzero gateway`` processes on loopback sharing one redis-server.

Why: what several replicas share (budget ledgers, circuits, shadow decisions, async jobs) can
only be shown wrong by several processes at once; one app in one event loop hides every race.
No Kubernetes: the e2e control plane is not needed, only ``redis-server`` (``make
redis-server``) and the venv's ``dayzero``.

How to use it (from any e2e test; this folder is on sys.path)::

    from gateway_fleet import Fleet, Upstream, running_redis

    with running_redis() as redis, Upstream("ok") as up, Fleet(
        doc, tmp_path, redis_url=redis.url, replicas=3
    ) as fleet:
        status, headers, body = fleet.post(0, "/v1/chat/completions", {...})
        replies = fleet.post_many([(i % 3, path, body, headers) for i in range(150)])
        fleet.get(2, "/v1/models/status")

``doc`` is a routing document (a dict: it is written once to ``tmp_path/routing.yaml``; every
replica watches that one file, so ``fleet.write(doc)`` reloads them all). ``Upstream(mode)`` is
an OpenAI-compatible fake in a thread of its own (``ok``: a completion with 7 prompt and 3
completion tokens; ``slow``: never answers in time); ``up.url`` goes in a backend and
``up.requests`` counts what reached it. ``extra_args`` adds flags to every replica (e.g.
``["--async-workers", "2"]``; ``{i}`` in an argument becomes the replica's index, e.g.
``["--replica", "replica-{i}"]``); each replica's log is ``tmp_path/gateway-<i>.log``. A replica is
``--loopback-only``: nothing it dials leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:  # one redis-server helper for unit and e2e tests
    sys.path.append(str(_TESTS))

from redis_server import RedisServer, free_port, running_redis  # noqa: E402

__all__ = ["Fleet", "RedisServer", "Upstream", "free_port", "running_redis"]

DAYZERO = Path(sys.executable).parent / "dayzero"
Reply = tuple[int, dict[str, str], Any]


class Upstream:
    """An OpenAI-compatible fake on its own loop in a thread: ``ok`` or ``slow``."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.mode == "slow":
            await asyncio.sleep(30)
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        return web.json_response(
            {
                "id": "chatcmpl-fleet",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> Upstream:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # A slow answer still sleeping would be destroyed pending when the loop closes.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class Fleet:
    """N ``dayzero gateway`` subprocesses on free loopback ports, one routing file, one Redis."""

    def __init__(
        self,
        doc: dict[str, Any],
        tmp: Path,
        *,
        redis_url: str | None,
        replicas: int = 3,
        extra_args: list[str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.tmp = tmp
        self.config = tmp / "routing.yaml"
        self.write(doc)
        self.redis_url = redis_url
        self.count = replicas
        self.extra_args = extra_args or []
        self.ready_timeout = ready_timeout
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        """Each replica's base URL."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def write(self, doc: dict[str, Any]) -> None:
        """(Re)write the routing document every replica watches."""
        self.config.write_text(yaml.safe_dump(doc))

    def __enter__(self) -> Fleet:
        try:
            for i in range(self.count):
                port = free_port()
                argv = [
                    str(DAYZERO),
                    "gateway",
                    "--config",
                    str(self.config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--loopback-only",
                    *(["--redis-url", self.redis_url] if self.redis_url else []),
                    *(arg.replace("{i}", str(i)) for arg in self.extra_args),
                ]
                with (self.tmp / f"gateway-{i}.log").open("wb") as log:
                    self.processes.append(
                        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
                    )
                self.ports.append(port)
            for i in range(self.count):
                self._wait_ready(i)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, i: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.processes[i].poll() is not None:
                log = (self.tmp / f"gateway-{i}.log").read_text()[-2000:]
                msg = f"replica {i} exited {self.processes[i].returncode}: {log}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(self.urls[i] + "/ready", timeout=1) as r:  # noqa: S310 - loopback
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        msg = f"replica {i} was not ready in {self.ready_timeout}s"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """SIGTERM every replica, SIGKILL what is left after 5 s."""
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- requests -------------------------------------------------------------------------------

    def post(
        self, replica: int, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> Reply:
        """One POST to a replica: (status, lower-cased headers, JSON body or text)."""
        return self.post_many([(replica, path, body, headers)])[0]

    def get(self, replica: int, path: str, headers: dict[str, str] | None = None) -> Reply:
        """One GET to a replica."""
        return asyncio.run(self._all([(replica, "GET", path, None, headers)]))[0]

    def post_many(self, requests: list[tuple[int, str, Any, dict[str, str] | None]]) -> list[Reply]:
        """Many POSTs at once (one event loop, all in flight together), in order."""
        return asyncio.run(self._all([(r, "POST", p, b, h) for r, p, b, h in requests]))

    async def _all(
        self, requests: list[tuple[int, str, str, Any, dict[str, str] | None]]
    ) -> list[Reply]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(
                replica: int, method: str, path: str, body: Any, headers: dict[str, str] | None
            ) -> Reply:
                data = None if body is None else json.dumps(body).encode()
                url = self.urls[replica] + path
                async with session.request(method, url, data=data, headers=headers) as r:
                    raw = await r.read()
                    try:
                        parsed: Any = json.loads(raw)
                    except ValueError:
                        parsed = raw.decode(errors="replace")
                    return r.status, {k.lower(): v for k, v in r.headers.items()}, parsed

            return await asyncio.gather(*(one(*request) for request in requests))


@contextmanager
def fleet_with_redis(
    doc: dict[str, Any], tmp: Path, replicas: int = 3, **kwargs: Any
) -> Iterator[tuple[Fleet, RedisServer]]:
    """A redis-server and a fleet on it, for the block."""
    with (
        running_redis() as redis,
        Fleet(doc, tmp, redis_url=redis.url, replicas=replicas, **kwargs) as fleet,
    ):
        yield fleet, redis
