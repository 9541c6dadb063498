"""What a rate-limit check costs a request: dayzero's check in memory and in Redis, beside the
same check through redis-py and the usual redis-py recipe (a MULTI pipeline of INCRBY and
PEXPIRE, as rate-limit libraries on redis-py do it), in one run.

Why a benchmark and not a test: it measures, it does not pass or fail.

    .venv/bin/python bench/ratelimit.py            # about 10 s
    .venv/bin/python bench/ratelimit.py --count 500

Each target runs ``--count`` sequential checks of one request against a lane with both limits
(a request counter and a token counter: two keys), in this process, on a redis-server the run
starts on a free loopback port; one ``PING`` on a raw socket is the floor of a round trip. The
limits are high enough that no check is refused. The recipe is not the same guarantee: it
increments before it compares, so a refused request still counts, and it cannot check two
counters before adding to either.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

LANE = {
    "name": "chat",
    "model": "chat",
    "backends": ["local"],
    "rateLimit": {"requestsPerMinute": 100_000_000, "tokensPerMinute": 100_000_000_000},
}
REQUEST = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(check: Callable[[], Awaitable[Any]], count: int) -> dict[str, float]:
    for _ in range(min(200, count)):  # warm-up: connections dialled, scripts loaded
        await check()
    ms = []
    for _ in range(count):
        start = time.perf_counter()
        await check()
        ms.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(percentile(ms, 0.5), 3), "p99_ms": round(percentile(ms, 0.99), 3)}


async def run(url: str, port: int, count: int) -> dict[str, dict[str, float]]:
    from dayzero.api.routing import RoutingLane  # noqa: PLC0415 - after the path is set
    from dayzero.gateway.auth import ANONYMOUS  # noqa: PLC0415
    from dayzero.gateway.budget import _script_connection  # noqa: PLC0415
    from dayzero.gateway.ratelimit import (  # noqa: PLC0415
        CHECK_LUA,
        WINDOW_MS,
        RateLimiter,
        Refusal,
        counters_for,
    )
    from dayzero.gateway.shared import redis_client  # noqa: PLC0415

    counters = counters_for(RoutingLane.model_validate(LANE), ANONYMOUS, "bench", REQUEST)
    keys = [c.key for c in counters]
    args: list[int] = [WINDOW_MS]
    for c in counters:
        args += [c.amount, c.limit]
    client = redis_client(url)
    fast = _script_connection(client)
    memory, shared = RateLimiter(), RateLimiter(client, fast)
    script = client.register_script(CHECK_LUA)

    async def dayzero_memory() -> None:
        assert not isinstance(await memory.check(counters), Refusal)  # noqa: S101

    async def dayzero_redis() -> None:
        assert not isinstance(await shared.check(counters), Refusal)  # noqa: S101

    async def redis_py_script() -> None:
        await script(keys=keys, args=args)

    async def redis_py_recipe() -> None:
        pipe = client.pipeline(transaction=True)
        for c in counters:
            pipe.incrby(c.key + ":recipe", c.amount)
            pipe.pexpire(c.key + ":recipe", WINDOW_MS, nx=True)
        await pipe.execute()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def ping() -> None:
        writer.write(b"PING\r\n")
        await reader.readline()

    out = {}
    try:
        for name, check in [
            ("Redis PING, raw socket (the floor)", ping),
            ("dayzero, memory", dayzero_memory),
            ("dayzero, Redis (one EVALSHA, own connection)", dayzero_redis),
            ("redis-py, the same script (EVALSHA)", redis_py_script),
            ("redis-py, MULTI INCRBY+PEXPIRE recipe", redis_py_recipe),
        ]:
            out[name] = await timed(check, count)
        assert shared.available  # noqa: S101 - every Redis check went to Redis
    finally:
        writer.close()
        if fast is not None:
            fast.close()
        await client.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="checks per target")
    args = parser.parse_args()
    import redis  # noqa: PLC0415

    from redis_server import running_redis  # noqa: PLC0415 - tests/redis_server.py

    with running_redis() as server:
        results = asyncio.run(run(server.url, server.port, args.count))
    print(
        f"{args.count} sequential checks each; redis-py {redis.__version__}; "
        f"1-minute load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'target':<48} {'p50':>9} {'p99':>9}")
    for name, figures in results.items():
        print(f"{name:<48} {figures['p50_ms']:>7.3f}ms {figures['p99_ms']:>7.3f}ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
