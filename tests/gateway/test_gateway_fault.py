"""A bounded fault run: many requests against misbehaving upstreams, none hangs or is lost."""

import asyncio
import collections
import random
import time

import aiohttp
import pytest
from gateway_fakes import closed_port_url, document, serve, upstreams

REQUESTS = 2000
DEFINED = {200, 429, 502, 503, 504}


@pytest.mark.timeout(30)  # 2,000 real HTTP requests through two servers; about 5 s on two cores
def test_every_request_ends_in_success_or_a_defined_error(run, tmp_path):
    async def scenario():
        modes = ("ok", "500", "garbage", "slow", "stall_mid", "reset_mid", "delay:0.02")
        async with upstreams(*modes) as ups:
            by_mode = dict(zip(modes, ups, strict=True))
            backends = [
                {
                    "name": m.replace(":", "-").replace(".", "").replace("_", "-"),
                    "url": u.url,
                    "timeoutSeconds": 0.2,
                }
                for m, u in by_mode.items()
            ] + [{"name": "closed", "url": closed_port_url(), "timeoutSeconds": 0.2}]
            names = [b["name"] for b in backends]
            lanes = [
                {
                    "name": "healthy-last",
                    "model": "l1",
                    "backends": [*names[1:], names[0]],
                    "circuitBreaker": {"consecutiveTimeouts": 2, "openSeconds": 0.5},
                },
                {"name": "all-bad", "model": "l2", "backends": ["500", "garbage", "closed"]},
                {
                    "name": "streams",
                    "model": "l3",
                    "backends": ["stall-mid", "reset-mid", "ok"],
                    "concurrency": {"reserved": 4, "max": 16, "queueTimeoutSeconds": 0.5},
                },
                {"name": "ok", "model": "l4", "backends": ["delay-002", "ok"]},
            ]
            doc = document(backends, lanes=lanes, sharedConcurrency=48)
            async with serve(doc, tmp_path) as gw:
                rng = random.Random(7)  # noqa: S311 - a reproducible mix, not a secret
                gate = asyncio.Semaphore(64)
                outcomes = collections.Counter()
                timeout = aiohttp.ClientTimeout(total=5)

                async def one(i):
                    model = rng.choice(["l1", "l2", "l3", "l4"])
                    body = {
                        "model": model,
                        "messages": [{"role": "user", "content": str(i)}],
                        "stream": rng.random() < 0.4,
                    }
                    async with (
                        gate,
                        gw.session.post(
                            gw.url + "/v1/chat/completions", json=body, timeout=timeout
                        ) as r,
                    ):
                        payload = await r.read()
                        kind = (
                            "stream-error"
                            if b'"error"' in payload and r.status == 200
                            else str(r.status)
                        )
                        outcomes[kind] += 1
                        return r.status

                started = time.monotonic()
                statuses = await asyncio.wait_for(
                    asyncio.gather(*(one(i) for i in range(REQUESTS))), 25
                )
                time.monotonic() - started
                assert len(statuses) == REQUESTS
                assert set(statuses) <= DEFINED, outcomes
                assert sum(outcomes.values()) == REQUESTS
                assert outcomes["200"] > REQUESTS / 4
                _, status = await gw.get("/v1/models/status")
                assert all(lane["inFlight"] == 0 for lane in status["lanes"])
                assert all(b["inFlight"] == 0 for b in status["backends"])

    run(scenario())
