"""Shadow-mode benchmark: what a shadow lane adds to the legacy path, beside a plain pass-through.

Why: a shadow lane sits in front of a legacy path that already serves production; it must cost
that path next to nothing (the goal: at most 0.2 ms more p99 than the gateway's own
pass-through). It measures, in one run and on the same mock upstream (the "legacy path"):

* direct: the client straight to the mock (the floor);
* dayzero pass-through: a sync lane whose one backend is the mock;
* dayzero shadow: a shadow lane whose ``legacyUrl`` is the mock (the decision is computed, the
  request forwarded unchanged, the agreement recorded);
* LiteLLM pass-through, when ``setup_competitors.py`` installed it (``--no-litellm`` skips it).

The two dayzero lanes are served by one gateway process and measured interleaved, one request
each in turn, so whatever else a shared machine does lands on every target alike. The gateway's
own CPU time per request of each lane is measured too (from /proc), which load on the other
core barely moves. Layout as run.py: the gateway on core 0, the mock and this client on core 1.
Everything it dials is on 127.0.0.1.

    .venv/bin/python bench/gateway/shadow.py            # 4,000 requests a dayzero lane
    .venv/bin/python bench/gateway/shadow.py --smoke    # a few hundred, no LiteLLM, < 20 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import run as base
from client import Client, LoadResult, closed_loop

Json = dict[str, Any]
GOAL_SHADOW_ADDED_P99_MS = 0.2


def _dayzero(work: Path, upstream: int, core: int) -> tuple[base.Target, base.Target]:
    """One gateway: lane ``bench`` (sync) and lane ``shadow`` (legacyUrl: the same mock)."""
    target = base.start_dayzero(work, upstream, core)
    assert target.child is not None  # noqa: S101 - start_dayzero always starts a process
    target.child.stop()  # restarted below with both lanes in its document
    document: Json = target.config["routing"]
    document["lanes"].append(
        {
            "name": "shadow",
            "model": "shadow",
            "mode": "shadow",
            "legacyUrl": f"http://127.0.0.1:{upstream}",
            "backends": ["mock"],
            "concurrency": {"reserved": 0, "max": 4096, "queueTimeoutSeconds": 5},
        }
    )
    config = work / "routing.json"
    config.write_text(json.dumps(document, indent=2))
    port = base.free_port()
    dayzero = Path(sys.executable).parent / "dayzero"
    argv = ["taskset", "-c", str(core), str(dayzero), "gateway", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    child = base.Child("dayzero", argv, work / "dayzero.log", env=base.child_env())
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    plain = base.Target("dayzero pass-through", url, "bench", target.headers, child, target.version)
    shadow = base.Target("dayzero shadow", url, "shadow", target.headers, child, target.version)
    return plain, shadow


def _sequential(target: base.Target, count: int, seconds: float) -> LoadResult:
    return base.run_async(
        closed_loop(
            target.request(stream=False), connections=1, count=count, seconds=seconds, timeout=10
        )
    )


def _figures(result: LoadResult) -> Json:
    lat = result.latencies_s
    return {
        "requests": result.requests,
        "ok": len(lat),
        "errors": result.errors,
        "p50_ms": base._ms(base._pct(lat, 50)),
        "p90_ms": base._ms(base._pct(lat, 90)),
        "p99_ms": base._ms(base._pct(lat, 99)),
    }


def _interleaved(targets: list[base.Target], count: int) -> dict[str, LoadResult]:
    """``count`` sequential requests a target, one each in turn (A, B, C, A, B, C, ...), each
    target on its own keep-alive connection: whatever else the machine does lands on every
    target alike, which blocks of requests do not give on a busy 2-core machine."""

    async def go() -> dict[str, LoadResult]:
        clients = [(t.name, Client(t.request(stream=False))) for t in targets]
        results = {t.name: LoadResult() for t in targets}
        try:
            for _ in range(count):
                for name, client in clients:
                    try:
                        timing = await client.send(10.0)
                    except (TimeoutError, OSError) as e:
                        results[name].fail(type(e).__name__)
                        continue
                    if timing.status != 200:
                        results[name].fail(f"status {timing.status}")
                        continue
                    results[name].latencies_s.append(timing.total_s)
        finally:
            for _, client in clients:
                client.close()
        return results

    return base.run_async(go())


def _agreement(target: base.Target) -> Json:
    """The gateway's own count of the shadow decisions (from /metrics)."""
    port = int(target.url.split(":")[2].split("/")[0])
    import urllib.request  # noqa: PLC0415 - only here

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Json = {}
    for line in text.splitlines():
        if line.startswith("dayzero_gateway_shadow_decisions_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('agreement="')[1].split('"')[0]] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one run, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few requests, no LiteLLM")
    parser.add_argument("--requests", type=int, default=4000, help="per dayzero lane")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--out", default=str(base.RESULTS / "gateway_shadow.json"))
    args = parser.parse_args(argv)
    count = 300 if args.smoke else args.requests
    os.sched_setaffinity(0, {args.client_core})
    plan = base.SMOKE
    work = Path(tempfile.mkdtemp(prefix="dayzero-bench-shadow-"))
    children: list[base.Child] = []
    results: Json = {
        "benchmark": "gateway shadow mode",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": base._git("rev-parse", "--short", "HEAD"),
        "machine": base.machine(),
        "requests_per_target": count,
        "layout": f"gateway: core {args.gateway_core}; mock, client: core {args.client_core}",
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "targets": {},
    }
    try:
        with base.deadline(600):
            mock, port = base.start_mock(work, args.client_core, plan)
            children.append(mock)
            direct = base.direct_target(mock, port)
            base.wait_ready(direct, 10)
            plain, shadow = _dayzero(work, port, args.gateway_core)
            assert plain.child is not None  # noqa: S101
            children.append(plain.child)
            base.wait_ready(plain, 30)
            base.wait_ready(shadow, 10)
            for target in (direct, plain, shadow):  # warm every path
                _sequential(target, 200, 10)
            base.log(f"measuring {count} sequential requests a target, interleaved")
            measured = _interleaved([direct, plain, shadow], count)
            for name, result in measured.items():
                results["targets"][name] = _figures(result)
            results["targets"]["dayzero shadow"]["decisions"] = _agreement(shadow)
            for target in (plain, shadow):
                before = plain.child.cpu_s()
                done = _sequential(target, count, 120)
                cpu_us = (plain.child.cpu_s() - before) / max(1, len(done.latencies_s)) * 1e6
                results["targets"][target.name]["gateway_cpu_us_per_request"] = round(cpu_us, 1)
            plain.child.stop()
            children.remove(plain.child)
            if not args.smoke and not args.no_litellm:
                try:
                    litellm = base.start_litellm(work, port, args.gateway_core)
                    assert litellm.child is not None  # noqa: S101
                    children.append(litellm.child)
                    base.wait_ready(litellm, base.START_TIMEOUT_S["litellm"])
                    _sequential(litellm, 50, 10)
                    lite = _sequential(litellm, min(count, 1000), 30)
                    results["targets"]["litellm pass-through"] = _figures(lite) | {
                        "version": base.LITELLM_VERSION
                    }
                except base.UnavailableError as e:
                    results["targets"]["litellm pass-through"] = {"unavailable": str(e)[:300]}
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(work, ignore_errors=True)
    t = results["targets"]
    added = round(t["dayzero shadow"]["p99_ms"] - t["dayzero pass-through"]["p99_ms"], 3)
    results["shadow_added_p99_ms"] = added
    cpu = {
        n: t[n]["gateway_cpu_us_per_request"] for n in ("dayzero pass-through", "dayzero shadow")
    }
    results["shadow_added_cpu_us"] = round(cpu["dayzero shadow"] - cpu["dayzero pass-through"], 1)
    results["goal"] = {
        "shadow_added_p99_ms_at_most": GOAL_SHADOW_ADDED_P99_MS,
        "met": added <= GOAL_SHADOW_ADDED_P99_MS,
    }
    results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'target':<24}{'ok':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    for name, f in t.items():
        if "unavailable" in f:
            print(f"{name:<24} unavailable: {f['unavailable'][:60]}")
            continue
        print(f"{name:<24}{f['ok']:>7}{f['p50_ms']:>9.3f}{f['p90_ms']:>9.3f}{f['p99_ms']:>9.3f}")
    verdict = "met" if results["goal"]["met"] else "NOT met"
    print(f"\nshadow adds {added:+.3f} ms p99 over the pass-through (goal <= 0.2 ms: {verdict})")
    print(
        f"gateway CPU per request: pass-through {cpu['dayzero pass-through']} us, "
        f"shadow {cpu['dayzero shadow']} us"
    )
    print(f"decisions recorded: {t['dayzero shadow']['decisions']}; figures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
