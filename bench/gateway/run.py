"""Gateway benchmark (issue #4): dayzero beside LiteLLM's proxy and Portkey's gateway, one run.

Why a benchmark and not a test: it measures what a gateway adds to a request on this machine and
prints the figures; it never passes or fails. Every target proxies to the same fast mock upstream,
so what differs between the rows is the gateway alone; "direct" (the client straight to the mock)
is the floor each added figure is taken against.

    .venv/bin/python bench/gateway/run.py            # full: every target, about 5 minutes
    .venv/bin/python bench/gateway/run.py --smoke    # direct and dayzero, tiny counts, < 30 s

Layout on a 2-core machine: each gateway runs as a real process with one worker pinned to core 0
(``taskset -c 0``); the mock upstream, the load generator and this harness share core 1. Only one
gateway runs at a time. Per target it measures

* latency at concurrency 1: a sequential client (``client.py``, perf_counter per request);
* a closed-loop sweep of concurrencies with wrk (C, one thread): requests/s, latency
  percentiles (concurrency 64 is the "c=64" row) and errors; "max RPS" is the best run with zero
  errors (non-2xx, timeouts, socket errors);
* streaming: the mock sends one token every few milliseconds, and the sequential client stamps
  the first token's arrival; added time-to-first-token is taken against direct;
* the CPU every process used and how busy each core was, so a run disturbed by other work on the
  machine shows it.

Competitors come from ``~/.cache/dayzero/bench`` (``setup_competitors.py``); one that is not
installed or does not start is reported with the reason, never with made-up figures. Everything
it dials is on 127.0.0.1. Every wait has a deadline, the whole run has one, and every process it
started is killed on exit, Ctrl-C and failure included.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvloop
from client import LoadResult, Request, closed_loop, one
from competitors import LITELLM_VERSION, PATHS, PORTKEY_VERSION

Json = dict[str, Any]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")

DAYZERO_KEY = "sk-dayzero-bench"
LITELLM_KEY = "sk-litellm-bench"
UPSTREAM_KEY = "sk-upstream-bench"
MOCK_MARKER = b"chatcmpl-dayzero-bench"
MOCK_MODEL = "bench-model"
PROMPT: Json = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
GOAL_ADDED_P99_MS = 1.0
GOAL_RPS_PER_CORE = 2500
GOAL_X_LITELLM = 10
TARGETS = ("dayzero", "litellm", "portkey")
# LiteLLM's proxy imports for tens of seconds on a busy 2-core machine before it listens.
START_TIMEOUT_S = {"litellm": 150.0, "portkey": 60.0}


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a mode takes."""

    latency_requests: int
    latency_s: float
    warmup_s: float
    sweep: tuple[int, ...]
    sweep_s: float
    streams: int
    streams_s: float
    stream_chunks: int
    stream_interval_ms: float
    profile_s: float
    start_timeout_s: float
    deadline_s: float


FULL = Plan(
    latency_requests=3000,
    latency_s=20.0,
    warmup_s=5.0,
    sweep=(8, 16, 32, 64, 128, 256),
    sweep_s=5.0,
    streams=200,
    streams_s=30.0,
    stream_chunks=16,
    stream_interval_ms=5.0,
    profile_s=10.0,
    start_timeout_s=90.0,
    deadline_s=1800.0,
)
SMOKE = Plan(
    latency_requests=100,
    latency_s=3.0,
    warmup_s=0.5,
    sweep=(16, 64),
    sweep_s=1.0,
    streams=10,
    streams_s=3.0,
    stream_chunks=4,
    stream_interval_ms=5.0,
    profile_s=0.0,
    start_timeout_s=20.0,
    deadline_s=60.0,
)


class UnavailableError(Exception):
    """A target that cannot be measured here, and why."""


# --- processes -----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Own process group (signalled whole at the end) and SIGKILL if the harness dies hard."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes  # noqa: PLC0415 - only in the forked child

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


class Child:
    """A process this run started, in its own process group, logged to a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self.argv = argv
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - needs prctl, which has no flag
            )

    def pids(self) -> list[int]:
        """Every live process of the group (a gateway may fork helpers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = _stat(int(entry.name))
                if fields is not None and int(fields[2]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def cpu_s(self) -> float:
        """User and system CPU seconds of the group's live processes, every thread included."""
        total = 0
        for pid in self.pids():
            fields = _stat(pid)
            if fields is not None:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def affinity(self) -> dict[str, list[int]]:
        out = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                out[str(pid)] = sorted(os.sched_getaffinity(pid))
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:])
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; a forked helper may not be.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no proxy for loopback, nothing that reaches outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


class RunStoppedError(BaseException):
    """The deadline passed or a signal came. Not an Exception, so an event loop re-raises it
    from a callback instead of logging it, and every finally block tears down what it started."""


_STOP: list[str] = []


def stop(reason: str) -> None:
    _STOP.append(reason)
    raise RunStoppedError(reason)


def check_stop() -> None:
    """Between phases too: a signal that landed while no Python code ran is not lost."""
    if _STOP:
        raise RunStoppedError(_STOP[0])


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    check_stop()
    try:
        return uvloop.run(coro)
    finally:
        check_stop()


# --- CPU accounting ------------------------------------------------------------------------------


def _cores() -> dict[str, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]
            out[name] = (sum(ticks) - idle, sum(ticks))
    return out


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Meter:
    """How busy each core was over one run, and the CPU each of our processes took."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.start = time.perf_counter()
        self.cores = _cores()
        self.cpu = {c.name: c.cpu_s() for c in children}
        self.own = _own_cpu_s()

    def read(self) -> Json:
        wall = time.perf_counter() - self.start
        cores = _cores()
        busy = {}
        busy_s = 0.0
        for name, (b1, t1) in cores.items():
            b0, t0 = self.cores.get(name, (b1, t1))
            busy[name] = round((b1 - b0) / max(1, t1 - t0), 3)
            busy_s += (b1 - b0) / CLK_TCK
        cpu = {c.name: round(c.cpu_s() - self.cpu.get(c.name, 0.0), 3) for c in self.children}
        cpu["harness+wrk"] = round(_own_cpu_s() - self.own, 3)
        return {
            "wall_s": round(wall, 3),
            "core_busy": busy,
            "cpu_s": cpu,
            # What the rest of the machine took meanwhile: other users of the two cores.
            "other_cpu_s": round(max(0.0, busy_s - sum(cpu.values())), 3),
        }


# --- load ----------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class Target:
    """Something the client can POST to: the mock itself, or a gateway in front of it."""

    name: str
    url: str
    model: str
    headers: dict[str, str]
    child: Child | None
    version: str
    config: Json = field(default_factory=dict)

    def body(self, *, stream: bool) -> bytes:
        data: Json = {"model": self.model, **PROMPT}
        if stream:
            data["stream"] = True
        return json.dumps(data).encode()

    def request(self, *, stream: bool) -> Request:
        return Request.post(self.url, self.body(stream=stream), self.headers, stream=stream)


def from_python(result: LoadResult, connections: int) -> Json:
    lat = result.latencies_s
    errors = sum(result.errors.values())
    return {
        "tool": "python",
        "connections": connections,
        "requests": result.requests,
        "ok": len(lat),
        "rps": round(len(lat) / result.wall_s, 1) if result.wall_s else 0.0,
        "errors": errors,
        "errors_by_kind": result.errors,
        "latency_ms": {
            "mean": _ms(sum(lat) / len(lat)) if lat else None,
            "p50": _ms(_pct(lat, 50)),
            "p90": _ms(_pct(lat, 90)),
            "p99": _ms(_pct(lat, 99)),
            "p99.9": _ms(_pct(lat, 99.9)),
            "max": _ms(max(lat)) if lat else None,
        },
    }


def wrk(target: Target, connections: int, seconds: float, work: Path) -> Json:
    """A closed-loop run of wrk (one thread, ``connections`` keep-alive connections)."""
    body = work / f"body-{target.name}.json"
    body.write_bytes(target.body(stream=False))
    env = child_env(
        BENCH_BODY_FILE=str(body),
        BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in target.headers.items()),
    )
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "bench.lua"),
        target.url,
    ]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    raw = json.loads(lines[-1])
    if raw["requests"] == 0:
        # wrk does not count a request still waiting at the end as a timeout.
        raw["errors"]["none_completed"] = connections
    errors = sum(raw["errors"].values())
    wall = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "tool": "wrk",
        "connections": connections,
        "requests": raw["requests"],
        "ok": raw["requests"] - raw["errors"]["status"],
        "rps": round(raw["requests"] / wall, 1) if wall else 0.0,
        "errors": errors,
        "errors_by_kind": {k: v for k, v in raw["errors"].items() if v},
        "latency_ms": {
            "mean": round(lat["mean"] / 1000, 3),
            "p50": lat["p50"] / 1000,
            "p90": lat["p90"] / 1000,
            "p99": lat["p99"] / 1000,
            "p99.9": lat["p99.9"] / 1000,
            "max": lat["max"] / 1000,
        },
    }


def load(target: Target, connections: int, seconds: float, work: Path) -> Json:
    """Closed loop at ``connections``: wrk when installed, else the Python client (slower)."""
    check_stop()
    if shutil.which("wrk"):
        return wrk(target, connections, seconds, work)
    result = run_async(
        closed_loop(target.request(stream=False), connections=connections, seconds=seconds)
    )
    return from_python(result, connections)


# --- targets -------------------------------------------------------------------------------------


def wait_ready(target: Target, timeout: float) -> None:
    """Until the target answers a real completion from the mock (or its process died)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if target.child is not None and not target.child.alive():
            raise UnavailableError(
                f"{target.name} exited with {target.child.proc.returncode} while starting:\n"
                f"{target.child.tail()}"
            )
        try:
            timing = run_async(one(target.request(stream=False), timeout=5.0))
        except (OSError, TimeoutError) as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if timing.status == 200 and MOCK_MARKER in timing.body:
                return
            last = f"HTTP {timing.status}: {timing.body[:300]!r}"
        time.sleep(0.25)
    tail = target.child.tail() if target.child is not None else ""
    raise UnavailableError(f"{target.name} not answering after {timeout:g} s ({last})\n{tail}")


def check_stream(target: Target) -> None:
    timing = run_async(one(target.request(stream=True), timeout=10.0))
    if timing.status != 200 or timing.first_token_s is None or b"tok1" not in timing.body:
        raise UnavailableError(
            f"{target.name} did not stream the mock's tokens: HTTP {timing.status}, "
            f"{timing.body[:300]!r}"
        )


def start_mock(work: Path, core: int, plan: Plan, name: str = "mock") -> tuple[Child, int]:
    port = free_port()
    child = Child(
        name,
        [
            "taskset",
            "-c",
            str(core),
            sys.executable,
            str(HERE / "mock_upstream.py"),
            "--port",
            str(port),
            "--chunks",
            str(plan.stream_chunks),
            "--interval-ms",
            str(plan.stream_interval_ms),
        ],
        work / f"{name}.log",
        env=child_env(),
    )
    return child, port


def direct_target(child: Child, port: int) -> Target:
    return Target(
        "direct",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        MOCK_MODEL,
        {"Authorization": f"Bearer {UPSTREAM_KEY}"},
        child,
        "mock_upstream.py",
    )


def start_dayzero(work: Path, upstream: int, core: int) -> Target:
    dayzero = Path(sys.executable).parent / "dayzero"
    if not dayzero.exists():
        raise UnavailableError(f"{dayzero} is missing: run make setup")
    # Keys on, as in production: each request pays for the sha256 lookup.
    document = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": [
            {
                "name": "bench",
                "model": "bench",
                "backends": ["mock"],
                "concurrency": {"reserved": 0, "max": 4096, "queueTimeoutSeconds": 5},
            }
        ],
        "backends": [
            {
                "name": "mock",
                "kind": "openai",
                "url": f"http://127.0.0.1:{upstream}",
                "model": MOCK_MODEL,
                "timeoutSeconds": 30,
            }
        ],
        "keys": {
            "enabled": True,
            "entries": [
                {
                    "sha256": hashlib.sha256(DAYZERO_KEY.encode()).hexdigest(),
                    "project": "bench",
                    "lanes": ["*"],
                }
            ],
        },
        "sharedConcurrency": 4096,
    }
    config = work / "routing.json"
    config.write_text(json.dumps(document, indent=2))
    port = free_port()
    argv = ["taskset", "-c", str(core), str(dayzero), "gateway", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    child = Child("dayzero", argv, work / "dayzero.log", env=child_env())
    from importlib.metadata import version  # noqa: PLC0415 - the gateway's venv is this one

    return Target(
        "dayzero",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        "bench",
        {"Authorization": f"Bearer {DAYZERO_KEY}"},
        child,
        version("dayzero"),
        {"routing": document, "log": "one JSON access line per request to stderr (a file here)"},
    )


def start_litellm(work: Path, upstream: int, core: int) -> Target:
    if not PATHS.litellm.exists():
        raise UnavailableError(
            f"LiteLLM {LITELLM_VERSION} is not installed at {PATHS.litellm_dir}: "
            "run python3 bench/gateway/setup_competitors.py"
        )
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": f"openai/{MOCK_MODEL}",
                    "api_base": f"http://127.0.0.1:{upstream}/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False},
    }
    path = work / "litellm.json"
    path.write_text(json.dumps(config, indent=2))
    port = free_port()
    argv = ["taskset", "-c", str(core), str(PATHS.litellm), "--config", str(path)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    # No database: keys are the master key only, spend is not logged. The cost map is the one
    # the package ships (no fetch at start).
    env = child_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    env.pop("DATABASE_URL", None)
    child = Child("litellm", argv, work / "litellm.log", env=env, cwd=work)
    return Target(
        "litellm",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        "bench",
        {"Authorization": f"Bearer {LITELLM_KEY}"},
        child,
        LITELLM_VERSION,
        {"litellm": config, "database": None, "workers": 1},
    )


def start_portkey(work: Path, upstream: int, core: int) -> Target:
    node = shutil.which("node")
    if node is None:
        raise UnavailableError("node is not installed; Portkey's gateway is a Node program")
    if not PATHS.portkey_entry.exists():
        raise UnavailableError(
            f"Portkey's gateway {PORTKEY_VERSION} is not installed at {PATHS.portkey_dir}: "
            "run python3 bench/gateway/setup_competitors.py"
        )
    port = free_port()
    argv = ["taskset", "-c", str(core), node, str(PATHS.portkey_entry), f"--port={port}"]
    argv.append("--headless")
    child = Child("portkey", argv, work / "portkey.log", env=child_env(), cwd=PATHS.portkey_dir)
    return Target(
        "portkey",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        MOCK_MODEL,
        {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{upstream}/v1",
            "Authorization": f"Bearer {UPSTREAM_KEY}",
        },
        child,
        PORTKEY_VERSION,
        {
            "headers": "x-portkey-provider: openai, x-portkey-custom-host: the mock",
            "flags": argv[4:],
        },
    )


STARTERS: dict[str, Callable[[Path, int, int], Target]] = {
    "dayzero": start_dayzero,
    "litellm": start_litellm,
    "portkey": start_portkey,
}


# --- measuring -----------------------------------------------------------------------------------


def measure(target: Target, plan: Plan, work: Path, meters: list[Child]) -> Json:
    """Every figure of one target."""
    out: Json = {"version": target.version, "url": target.url, "config": target.config}
    if target.child is not None:
        out["affinity"] = target.child.affinity()
    load(target, 16, plan.warmup_s, work)

    meter = Meter(meters)
    c1 = run_async(
        closed_loop(
            target.request(stream=False),
            connections=1,
            count=plan.latency_requests,
            seconds=plan.latency_s,
        )
    )
    out["c1"] = {**from_python(c1, 1), "cpu": meter.read()}
    log(f"  c=1: p50 {out['c1']['latency_ms']['p50']} ms, p99 {out['c1']['latency_ms']['p99']} ms")

    sweep = []
    for connections in plan.sweep:
        meter = Meter(meters)
        run = load(target, connections, plan.sweep_s, work)
        run["cpu"] = meter.read()
        sweep.append(run)
        log(
            f"  c={connections}: {run['rps']:,.0f} req/s, p50 {run['latency_ms']['p50']} ms, "
            f"p99 {run['latency_ms']['p99']} ms, errors {run['errors']}"
        )
    out["sweep"] = sweep

    meter = Meter(meters)
    streams = run_async(
        closed_loop(
            target.request(stream=True),
            connections=1,
            count=plan.streams,
            seconds=plan.streams_s,
            timeout=30,
        )
    )
    ttft = streams.first_tokens_s
    out["stream"] = {
        "streams": streams.requests,
        "ok": len(streams.latencies_s),
        "errors_by_kind": streams.errors,
        "ttft_ms": {"p50": _ms(_pct(ttft, 50)), "p99": _ms(_pct(ttft, 99))},
        "total_ms": {
            "p50": _ms(_pct(streams.latencies_s, 50)),
            "p99": _ms(_pct(streams.latencies_s, 99)),
        },
        "cpu": meter.read(),
    }
    ttft_ms = out["stream"]["ttft_ms"]
    log(f"  stream: TTFT p50 {ttft_ms['p50']} ms, p99 {ttft_ms['p99']} ms")
    return out


def profile(target: Target, plan: Plan, work: Path, client_core: int) -> Json:
    """py-spy on the gateway while wrk drives it at 64 connections; a separate run, not timed."""
    if not PATHS.py_spy.exists():
        return {"skipped": f"py-spy is not installed at {PATHS.py_spy}"}
    assert target.child is not None  # noqa: S101 - only gateways are profiled
    raw = work / f"profile-{target.name}.txt"
    argv = ["taskset", "-c", str(client_core), str(PATHS.py_spy), "record", "--nonblocking"]
    argv += ["-r", "200", "-d", str(round(plan.profile_s)), "-f", "raw", "-o", str(raw)]
    argv += ["-p", str(target.child.proc.pid)]
    spy = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        run = load(target, 64, plan.profile_s - 1.5, work)
        output, _ = spy.communicate(timeout=plan.profile_s + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {output.decode(errors='replace').strip()[-400:]}"}
    return {"load": run, **summarize_profile(raw.read_text())}


def _frame(frame: str) -> tuple[str, str]:
    """(function with file, package) of a py-spy raw frame ``func (aiohttp/client.py:123)``."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/"):
        path = path.split(marker, 1)[-1]
    parts = path.removesuffix(".py").split("/")
    # Ours by module, everything else by top-level package (aiohttp, uvicorn, asyncio, ...).
    package = ".".join(parts) if parts[0] == "dayzero" else parts[0]
    return f"{name} ({path})", package


def summarize_profile(text: str, top: int = 25) -> Json:
    """Self and inclusive share of each function, and self share by package."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        leaf, package = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        packages[package] = packages.get(package, 0) + count
        for name in {name for name, _ in frames}:
            inclusive[name] = inclusive.get(name, 0) + count

    def shares(table: dict[str, int]) -> list[list[Any]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [[name, round(100 * n / max(1, total), 1)] for name, n in ranked]

    return {
        "samples": total,
        "self_pct": shares(own),
        "inclusive_pct": shares(inclusive),
        "package_self_pct": shares(packages),
    }


# --- the run -------------------------------------------------------------------------------------


def wait_for_idle(threshold: float, max_s: float, every: float = 30.0) -> Json:
    """Poll the 1-minute load until it is under ``threshold``, for at most ``max_s``."""
    start = time.monotonic()
    first = os.getloadavg()
    while os.getloadavg()[0] >= threshold and time.monotonic() - start < max_s:
        print(
            f"waiting for the machine to settle: 1-min load {os.getloadavg()[0]:.2f} "
            f">= {threshold} ({time.monotonic() - start:.0f} of {max_s:.0f} s)",
            flush=True,
        )
        time.sleep(min(every, max(1.0, max_s - (time.monotonic() - start))))
    return {
        "threshold": threshold,
        "before_wait": [round(x, 2) for x in first],
        "waited_s": round(time.monotonic() - start, 1),
        "gave_up": os.getloadavg()[0] >= threshold,
    }


def _version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0] if text else "?"
    return "not installed"


def versions() -> Json:
    from importlib.metadata import version  # noqa: PLC0415

    out: Json = {
        "python": platform.python_version(),
        **{p: version(p) for p in ("uvicorn", "uvloop", "httptools", "aiohttp")},
        "wrk": _version(["wrk", "-v"]),
        "node": _version(["node", "--version"]),
        "litellm": f"{LITELLM_VERSION} (pinned; {PATHS.litellm_dir})",
        "portkey": f"@portkey-ai/gateway {PORTKEY_VERSION} (pinned; {PATHS.portkey_dir})",
    }
    if PATHS.litellm_python.exists():
        out["litellm_python"] = _version([str(PATHS.litellm_python), "--version"])
    return out


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()
    return "?"


def machine() -> Json:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
    }


def summarize(results: Json) -> Json:
    """The headline figures per target, added ones against direct."""
    targets = results["targets"]
    direct = targets.get("direct", {})
    out: Json = {}
    for name, t in targets.items():
        if "c1" not in t:
            out[name] = {"unavailable": t.get("unavailable", "?")}
            continue
        clean = [r for r in t["sweep"] if r["errors"] == 0 and r["rps"] > 0]
        best = max(clean, key=lambda r: r["rps"]) if clean else None
        c64 = next((r for r in t["sweep"] if r["connections"] == 64), None)
        row: Json = {
            "c1_p50_ms": t["c1"]["latency_ms"]["p50"],
            "c1_p99_ms": t["c1"]["latency_ms"]["p99"],
            "c64_p50_ms": c64["latency_ms"]["p50"] if c64 else None,
            "c64_p99_ms": c64["latency_ms"]["p99"] if c64 else None,
            "c64_rps": c64["rps"] if c64 else None,
            "max_rps": best["rps"] if best else None,
            "max_rps_connections": best["connections"] if best else None,
            "ttft_p50_ms": t["stream"]["ttft_ms"]["p50"],
            "ttft_p99_ms": t["stream"]["ttft_ms"]["p99"],
            "stream_errors": sum(t["stream"]["errors_by_kind"].values()),
        }
        if best and name != "direct":
            cpu = best["cpu"]["cpu_s"].get(name)
            row["gateway_cpu_s"] = cpu
            row["gateway_core_util"] = round(cpu / best["cpu"]["wall_s"], 3) if cpu else None
            row["requests_per_cpu_s"] = round(best["requests"] / cpu, 1) if cpu else None
        if name != "direct" and "c1" in direct:
            d = out["direct"]
            for key in (
                "c1_p50_ms",
                "c1_p99_ms",
                "c64_p50_ms",
                "c64_p99_ms",
                "ttft_p50_ms",
                "ttft_p99_ms",
            ):
                if row.get(key) is not None and d.get(key) is not None:
                    row["added_" + key] = round(row[key] - d[key], 3)
        out[name] = row
    return out


def goals(summary: Json) -> Json:
    ours = summary.get("dayzero", {})
    litellm = summary.get("litellm", {})
    added = ours.get("added_c1_p99_ms")
    rps = ours.get("max_rps")
    out: Json = {
        "added_p99_c1_le_1ms": {
            "value_ms": added,
            "met": added is not None and added <= GOAL_ADDED_P99_MS,
        },
        "rps_per_core_ge_2500": {"value": rps, "met": rps is not None and rps >= GOAL_RPS_PER_CORE},
    }
    if litellm.get("max_rps") and rps:
        ratio = round(rps / litellm["max_rps"], 2)
        out["x_litellm_rps_ge_10"] = {"value": ratio, "met": ratio >= GOAL_X_LITELLM}
    else:
        out["x_litellm_rps_ge_10"] = {"value": None, "met": None, "why": "LiteLLM not measured"}
    return out


def _f(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(summary: Json) -> str:
    header = [
        "target",
        "c=1 p50/p99 ms",
        "added c=1 p50/p99",
        "c=64 p50/p99 ms",
        "added c=64 p50/p99",
        "max RPS (at c)",
        "req/CPU-s",
        "TTFT p50/p99 ms",
        "added TTFT p50/p99",
    ]
    rows = [header]
    for name, s in summary.items():
        if "unavailable" in s:
            rows.append([name, "unavailable: " + s["unavailable"].splitlines()[0][:90]])
            continue
        rows.append(
            [
                name,
                f"{_f(s['c1_p50_ms'], 3)} / {_f(s['c1_p99_ms'], 3)}",
                f"{_f(s.get('added_c1_p50_ms'), 3)} / {_f(s.get('added_c1_p99_ms'), 3)}",
                f"{_f(s['c64_p50_ms'])} / {_f(s['c64_p99_ms'])}",
                f"{_f(s.get('added_c64_p50_ms'))} / {_f(s.get('added_c64_p99_ms'))}",
                f"{_f(s['max_rps'], 0)} ({_f(s['max_rps_connections'])})",
                _f(s.get("requests_per_cpu_s"), 0),
                f"{_f(s['ttft_p50_ms'], 3)} / {_f(s['ttft_p99_ms'], 3)}",
                f"{_f(s.get('added_ttft_p50_ms'), 3)} / {_f(s.get('added_ttft_p99_ms'), 3)}",
            ]
        )
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(header))]
    lines = []
    for r in rows:
        if len(r) == 2 and r is not header:
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]}")
        else:
            lines.append(
                "  ".join(
                    c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    return "\n".join(lines)


def plot(out_json: Path, out_png: Path) -> str:
    if not PATHS.tools_python.exists():
        return f"no plot: matplotlib is not installed at {PATHS.tools_dir} (setup_competitors.py)"
    done = subprocess.run(
        [str(PATHS.tools_python), str(HERE / "plot.py"), str(out_json), str(out_png)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return f"plot failed: {done.stderr.strip()[-400:]}"
    return f"plot: {out_png}"


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """The whole run's limit: SIGALRM raises, and the finally blocks tear everything down."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        stop(f"the benchmark ran past its deadline of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(max(1, round(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def log(msg: str) -> None:
    print(msg, flush=True)


def mock_alone(work: Path, plan: Plan, core: int, children: list[Child]) -> Json:
    """The mock on a core of its own: what it can serve, so it is known not to be the limit."""
    alone, port = start_mock(work, core, plan, "mock-alone")
    children.append(alone)
    target = direct_target(alone, port)
    wait_ready(target, plan.start_timeout_s)
    load(target, 16, plan.warmup_s, work)
    meter = Meter([alone])
    out = {**load(target, 64, plan.sweep_s, work), "cpu": meter.read()}
    log(f"mock alone (core {core}): {out['rps']:,.0f} req/s at c=64")
    alone.stop()
    children.remove(alone)
    return out


def measure_all(
    args: argparse.Namespace, plan: Plan, work: Path, children: list[Child], results: Json
) -> None:
    """Direct, then each gateway in turn (only one runs at a time), against one mock."""
    mock, port = start_mock(work, args.client_core, plan)
    children.append(mock)
    direct = direct_target(mock, port)
    wait_ready(direct, plan.start_timeout_s)
    check_stream(direct)
    log("direct (client -> mock):")
    results["targets"]["direct"] = measure(direct, plan, work, [mock])
    for name in args.targets:
        log(f"{name}:")
        try:
            target = STARTERS[name](work, port, args.gateway_core)
            if target.child is not None:
                children.append(target.child)
            wait_ready(target, max(plan.start_timeout_s, START_TIMEOUT_S.get(name, 0.0)))
            check_stream(target)
        except UnavailableError as e:
            log(f"  unavailable: {e}")
            results["targets"][name] = {"unavailable": str(e)}
            continue
        meters = [mock] + ([target.child] if target.child else [])
        results["targets"][name] = measure(target, plan, work, meters)
        if name == "dayzero" and plan.profile_s > 0 and not args.no_profile:
            log("  profiling (py-spy, a separate run at c=64) ...")
            results["profile"] = profile(target, plan, work, args.client_core)
        if target.child is not None:
            target.child.stop()
            children.remove(target.child)


def run(args: argparse.Namespace) -> Json:
    plan = SMOKE if args.smoke else FULL
    gateway_core, client_core = args.gateway_core, args.client_core
    # The harness (its Python client too) and every child but the gateway share the client core.
    os.sched_setaffinity(0, {client_core})
    results: Json = {
        "benchmark": "gateway",
        "mode": "smoke" if args.smoke else "full",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Uncommitted changes to the code under test, which is what ran (the working tree).
        "operator_changes": _git("status", "--porcelain", "--", "operator").splitlines(),
        "machine": machine(),
        "versions": versions(),
        "layout": {
            "gateway_core": gateway_core,
            "client_core": client_core,
            "note": (
                f"each gateway: one worker pinned to core {gateway_core}; the mock upstream, "
                f"the load generator (wrk, one thread) and the Python client share core "
                f"{client_core}"
            ),
            "load_generator": "wrk" if shutil.which("wrk") else "python (wrk not installed)",
        },
        "plan": plan.__dict__,
        "targets": {},
    }
    if not args.smoke and args.wait_load > 0:
        results["load"] = wait_for_idle(args.wait_load, args.wait_max_s)
    else:
        results["load"] = {}
    results["load"]["at_start"] = [round(x, 2) for x in os.getloadavg()]

    work = Path(tempfile.mkdtemp(prefix="dayzero-bench-gateway-"))
    children: list[Child] = []
    try:
        competitors = sum(START_TIMEOUT_S.get(name, 0.0) for name in args.targets)
        with deadline(plan.deadline_s + 2 * competitors):
            results["mock_alone"] = mock_alone(work, plan, gateway_core, children)
            measure_all(args, plan, work, children, results)
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for path in work.iterdir():
                shutil.copy2(path, keep / path.name)
        shutil.rmtree(work, ignore_errors=True)
    results["load"]["at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["summary"] = summarize(results)
    results["goals"] = goals(results["summary"])
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, no competitors (CI)")
    parser.add_argument(
        "--targets",
        help=f"gateways beside direct (default: {','.join(TARGETS)}; smoke: dayzero)",
    )
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument(
        "--wait-load",
        type=float,
        default=0.7,
        help="full mode: first wait for the 1-minute load to fall under this (0: do not wait)",
    )
    parser.add_argument("--wait-max-s", type=float, default=1500.0, help="then run anyway")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--plot", action="store_true", help="smoke mode: draw the PNG too")
    parser.add_argument(
        "--out", help="JSON of the raw figures (default bench/results/gateway.json)"
    )
    parser.add_argument("--keep", help="copy the logs and configs of every process to this folder")
    args = parser.parse_args(argv)
    default = "dayzero" if args.smoke else ",".join(TARGETS)
    args.targets = [t for t in (args.targets or default).split(",") if t]
    unknown = [t for t in args.targets if t not in STARTERS]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    if args.gateway_core == args.client_core:
        parser.error("the gateway and the client need different cores")
    name = "gateway_smoke" if args.smoke else "gateway"
    args.out = Path(args.out) if args.out else RESULTS / f"{name}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        stop(f"stopped by {signal.Signals(signum).name}")

    # Our own SIGINT handler also keeps asyncio.Runner from swapping in its own, which turns a
    # Ctrl-C during a load phase into a cancelled task and carries on.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)
    try:
        results = run(args)
    except RunStoppedError as e:
        print(f"gateway benchmark: {e}; every process it started was stopped", file=sys.stderr)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results["summary"]))
    print()
    print(results["layout"]["note"] + ".")
    for goal, verdict in results["goals"].items():
        print(f"goal {goal}: {verdict}")
    if "profile" in results and "package_self_pct" in results["profile"]:
        top = ", ".join(f"{n} {p}%" for n, p in results["profile"]["package_self_pct"][:8])
        print(f"profile (self time by package): {top}")
    print(f"figures: {args.out}")
    if not args.smoke or args.plot:
        print(plot(args.out, args.out.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
