"""What a budget check costs a paid-fallback request: dayzero with and without budgets (in memory,
and in Redis), beside LiteLLM's proxy without and with its Redis-backed provider budget, one run.

Why a benchmark and not a test: it measures, it does not pass or fail. The goal it reports is
dayzero's added p99 at concurrency 1 (budgets in Redis minus no budgets) of 0.5 ms or less.

    .venv/bin/python bench/budget.py          # every target, about 8 minutes (LiteLLM is slow)
    .venv/bin/python bench/budget.py --smoke  # dayzero only, small counts, < 1 minute

The path measured is dayzero's paid fallback: the lane's local backend is a closed port whose
circuit opens on the first requests, so every measured request skips it (``circuit_open``) and
goes to the paid backend, the same fast mock upstream (bench/gateway/mock_upstream.py) for every
target. dayzero reserves the worst case and settles the usage: in memory, that is two dictionary
updates; with ``--redis-url`` two Lua scripts in a redis-server on loopback (``EVALSHA`` each,
over the ledger's own pipelined connection, ``dayzero.gateway.resp``).
LiteLLM 1.106's ``provider_budget_config`` with ``redis_host`` is its nearest feature: it checks
spend before routing (in-memory cache first, Redis behind it) and increments spend in memory,
flushing to Redis in the background; so its Redis round trip is mostly off the request path, and
its limit is not atomic across replicas (two replicas may both spend the last dollar).

Layout on the 2-core machine: the gateway under test runs alone on core 0 (``taskset``); the
mock, redis-server and the client share core 1. Per target: a warm-up, then a sequential client
(latency at concurrency 1: p50, p99) and 16 connections closed-loop (p99 and requests/s). The three
dayzero targets run in ``--rounds`` interleaved rounds (a fresh process each) and report each
round and the median, so drift from other work on the machine hits them alike; the load average
is printed beside the figures. Every process it starts is on 127.0.0.1 and killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gateway"))
sys.path.insert(0, str(HERE.parent / "tests"))

from client import Client, Request, closed_loop  # noqa: E402
from competitors import LITELLM_VERSION, PATHS  # noqa: E402

from redis_server import RedisServer, free_port  # noqa: E402

GOAL_ADDED_P99_MS = 0.5
UPSTREAM_KEY = "sk-upstream-bench"
LITELLM_KEY = "sk-" + "5f0c9b1e7a2d48c6" * 4  # its proxy refuses to start without a strong one
PRICE = {"inputUsdPerMillion": 3, "outputUsdPerMillion": 15}
BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
).encode()


@dataclass
class Plan:
    warmup: int
    sequential: int
    load_seconds: float
    connections: int = 16


FULL = Plan(warmup=300, sequential=3000, load_seconds=5.0)
SMOKE = Plan(warmup=50, sequential=300, load_seconds=1.0)
LITELLM_SEQUENTIAL = 1000  # it answers in milliseconds; 1,000 keep its run near a minute


@contextmanager
def child(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A process in its own group, killed with its children when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def pinned(core: int, argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core), *argv] if taskset and (os.cpu_count() or 1) > 1 else argv


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    out["NO_PROXY"] = "127.0.0.1,localhost"
    return out


async def wait_answer(request: Request, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        client = Client(request)
        try:
            timing = await client.send(5.0)
            if timing.status == 200:
                return
            last = f"HTTP {timing.status}"
        except (OSError, TimeoutError) as e:
            last = str(e) or type(e).__name__
        finally:
            client.close()
        await asyncio.sleep(0.2)
    msg = f"no 200 in {timeout}s: {last}"
    raise RuntimeError(msg)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(request: Request, plan: Plan) -> dict[str, Any]:
    await closed_loop(request, connections=1, count=plan.warmup)
    seq = await closed_loop(request, connections=1, count=plan.sequential)
    load = await closed_loop(request, connections=plan.connections, seconds=plan.load_seconds)
    ms = [s * 1000 for s in seq.latencies_s]
    load_ms = [s * 1000 for s in load.latencies_s]
    return {
        "c1_p50_ms": round(percentile(ms, 0.50), 3),
        "c1_p99_ms": round(percentile(ms, 0.99), 3),
        "c1_errors": seq.errors,
        f"c{plan.connections}_p99_ms": round(percentile(load_ms, 0.99), 3) if load_ms else None,
        f"c{plan.connections}_rps": round(len(load.latencies_s) / load.wall_s, 1),
        f"c{plan.connections}_errors": load.errors,
        "requests": seq.requests + load.requests,
    }


def dayzero_doc(upstream: int, closed: int, budgets: bool) -> dict[str, Any]:
    lane: dict[str, Any] = {
        "name": "bench",
        "model": "bench",
        "backends": ["local", "paid"],
        "concurrency": {"reserved": 64, "max": 256},
        "circuitBreaker": {"consecutiveTimeouts": 1, "openSeconds": 3600},
        "paidFallback": {"enabled": True},
    }
    doc: dict[str, Any] = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "keys": {"enabled": False},
        "lanes": [lane],
        "backends": [
            {"name": "local", "url": f"http://127.0.0.1:{closed}", "timeoutSeconds": 1},
            {
                "name": "paid",
                "kind": "provider",
                "url": f"http://127.0.0.1:{upstream}",
                "model": "bench-model",
                "paid": True,
            },
        ],
        "prices": {"bench-model": PRICE},
    }
    if budgets:
        lane["paidFallback"]["budget"] = {"dailyUsd": 100000, "monthlyUsd": 1000000}
        doc["budgets"] = {"bench": {"dailyUsd": 100000, "monthlyUsd": 1000000}}
    return doc


def run_dayzero(
    work: Path, name: str, upstream: int, *, redis_url: str | None, budgets: bool, plan: Plan
) -> dict[str, Any]:
    closed = free_port()
    config = work / f"{name}.yaml"
    config.write_text(json.dumps(dayzero_doc(upstream, closed, budgets)))
    port = free_port()
    argv = [str(Path(sys.executable).parent / "dayzero"), "gateway", "--config", str(config)]
    argv += ["--port", str(port), "--loopback-only"]
    if redis_url:
        argv += ["--redis-url", redis_url]
    headers = {"X-Dayzero-Project": "bench"}
    request = Request.post(f"http://127.0.0.1:{port}/v1/chat/completions", BODY, headers)
    with child(pinned(0, argv), work / f"{name}.log", env()):
        asyncio.run(wait_answer(request, 60))
        result = asyncio.run(measure(request, plan))
    lines = (work / f"{name}.log").read_text().splitlines()
    reasons = {json.loads(x).get("paid_fallback") for x in lines[-50:] if x.startswith("{")}
    result["paid_fallback"] = sorted(str(r) for r in reasons)
    return result


def run_litellm(
    work: Path, name: str, upstream: int, redis: RedisServer | None, plan: Plan
) -> dict[str, Any]:
    if not PATHS.litellm.exists():
        msg = f"LiteLLM {LITELLM_VERSION} is not installed: bench/gateway/setup_competitors.py"
        raise RuntimeError(msg)
    config: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{upstream}/v1",
                    "api_key": UPSTREAM_KEY,
                    "input_cost_per_token": PRICE["inputUsdPerMillion"] / 1e6,
                    "output_cost_per_token": PRICE["outputUsdPerMillion"] / 1e6,
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": LITELLM_KEY},
    }
    if redis is not None:
        config["router_settings"] = {
            "provider_budget_config": {"openai": {"budget_limit": 100000, "time_period": "1d"}},
            "redis_host": "127.0.0.1",
            "redis_port": redis.port,
        }
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [str(PATHS.litellm), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    child_env = env() | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    child_env.pop("DATABASE_URL", None)
    auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
    request = Request.post(f"http://127.0.0.1:{port}/v1/chat/completions", BODY, auth)
    with child(pinned(0, argv), work / f"{name}.log", child_env):
        asyncio.run(wait_answer(request, 200))
        return asyncio.run(measure(request, replace(plan, sequential=LITELLM_SEQUENTIAL)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="dayzero only, small counts")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of dayzero")
    parser.add_argument(
        "--check-only", action="store_true", help="only the budget check in this process, 10 s"
    )
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="dayzero-bench-budget-"))
    results: dict[str, Any] = {}
    redis = RedisServer().start()
    try:
        upstream = free_port()
        mock = [sys.executable, str(HERE / "gateway" / "mock_upstream.py"), "--port", str(upstream)]
        with child(pinned(1, mock), work / "mock.log", env()):
            dayzero: list[tuple[str, Any]] = [
                ("dayzero", {"redis_url": None, "budgets": False}),
                ("dayzero+budget(memory)", {"redis_url": None, "budgets": True}),
                ("dayzero+budget(redis)", {"redis_url": redis.url, "budgets": True}),
            ]
            results["redis PING (one hop)"] = asyncio.run(ping(redis.port))
            results["budget check alone (memory)"] = asyncio.run(check_alone(None))
            results["budget check alone (redis)"] = asyncio.run(check_alone(redis.url))
            for name in ("redis PING (one hop)", "budget check alone (memory)"):
                print(f"{name:24} {json.dumps(results[name])}", flush=True)
            name = "budget check alone (redis)"
            print(f"{name:24} {json.dumps(results[name])}", flush=True)
            if args.check_only:
                shutil.rmtree(work, ignore_errors=True)
                return 0
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in dayzero}
            for i in range(args.rounds):
                for name, kw in dayzero:
                    tag = f"{name.replace('+', '-').replace('(', '-').strip(')')}-{i}"
                    figures = run_dayzero(work, tag, upstream, plan=plan, **kw)
                    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
                    rounds[name].append(figures)
                    print(f"{name:24} round {i}: {json.dumps(figures)}", flush=True)
            for name, runs in rounds.items():
                results[name] = median_of(runs)
            if not args.smoke:
                for name, budget in (("litellm", None), ("litellm+budget(redis)", redis)):
                    try:
                        results[name] = run_litellm(work, name, upstream, budget, plan)
                        results[name]["load_avg_1m"] = round(os.getloadavg()[0], 2)
                    except (RuntimeError, OSError) as e:
                        results[name] = {"unavailable": str(e)[-500:]}
                    print(f"{name:24} {json.dumps(results[name])}", flush=True)
    finally:
        redis.close()
    summary = summarize(results, plan)
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


async def check_alone(redis_url: str | None, count: int = 3000) -> dict[str, Any]:
    """The budget check by itself, in this process: the reservation a paid call waits for, and
    the settlement that follows its answer (off the client's path), each timed."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - the gateway's own deps

    from dayzero.gateway.budget import MemoryLedger, PaidTier, RedisLedger  # noqa: PLC0415
    from dayzero.gateway.config import parse  # noqa: PLC0415
    from dayzero.gateway.shared import redis_client  # noqa: PLC0415

    doc = parse(json.dumps(dayzero_doc(9, 9, budgets=True)))
    lane, spec = doc.lanes[0], doc.backends[1]
    request = json.loads(BODY)
    client = redis_client(redis_url) if redis_url else None
    tier = PaidTier(RedisLedger(client) if client else MemoryLedger(), CollectorRegistry())
    reserve_ms, settle_ms = [], []
    try:
        for _ in range(count):
            start = time.perf_counter()
            held = await tier.reserve(doc, lane, spec, "bench", request)
            middle = time.perf_counter()
            assert not hasattr(held, "kind"), held  # noqa: S101 - a refusal would skew the figures
            await tier.settle(held, {"prompt_tokens": 12, "completion_tokens": 7})  # type: ignore[arg-type]
            reserve_ms.append((middle - start) * 1000)
            settle_ms.append((time.perf_counter() - middle) * 1000)
    finally:
        if isinstance(tier.ledger, RedisLedger):
            tier.ledger.close()
        if client is not None:
            await client.aclose()
    return {
        "reserve_p50_ms": round(percentile(reserve_ms, 0.5), 3),
        "reserve_p99_ms": round(percentile(reserve_ms, 0.99), 3),
        "settle_p50_ms": round(percentile(settle_ms, 0.5), 3),
        "settle_p99_ms": round(percentile(settle_ms, 0.99), 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


async def ping(port: int, count: int = 2000) -> dict[str, Any]:
    """The floor of one round trip to redis-server from here: PING on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ms = []
    for _ in range(count):
        start = time.perf_counter()
        writer.write(b"PING\r\n")
        await reader.readline()
        ms.append((time.perf_counter() - start) * 1000)
    writer.close()
    return {
        "c1_p50_ms": round(percentile(ms, 0.5), 3),
        "c1_p99_ms": round(percentile(ms, 0.99), 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds, with every round's p99 beside it."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            out[key] = round(sorted(r[key] for r in runs)[len(runs) // 2], 3)
    out["c1_p99_ms_rounds"] = [r["c1_p99_ms"] for r in runs]
    out["paid_fallback"] = runs[0].get("paid_fallback")
    return out


def summarize(results: dict[str, Any], plan: Plan) -> dict[str, Any]:
    def added(base: str, other: str, key: str) -> float | None:
        a, b = results.get(base, {}).get(key), results.get(other, {}).get(key)
        return None if a is None or b is None else round(b - a, 3)

    c = f"c{plan.connections}_p99_ms"
    out: dict[str, Any] = {
        "dayzero_added_c1_p99_ms(redis)": added("dayzero", "dayzero+budget(redis)", "c1_p99_ms"),
        "dayzero_added_c1_p50_ms(redis)": added("dayzero", "dayzero+budget(redis)", "c1_p50_ms"),
        "dayzero_added_c1_p99_ms(memory)": added("dayzero", "dayzero+budget(memory)", "c1_p99_ms"),
        f"dayzero_added_{c}(redis)": added("dayzero", "dayzero+budget(redis)", c),
        "litellm_added_c1_p99_ms(redis)": added("litellm", "litellm+budget(redis)", "c1_p99_ms"),
        f"litellm_added_{c}(redis)": added("litellm", "litellm+budget(redis)", c),
    }
    value = out["dayzero_added_c1_p99_ms(redis)"]
    out["goal_added_p99_le_0.5ms"] = None if value is None else value <= GOAL_ADDED_P99_MS
    return out


if __name__ == "__main__":
    raise SystemExit(main())
