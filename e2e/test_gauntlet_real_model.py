"""`dayzero gauntlet run` (the real CLI) against a real model: sanity and latency must pass.

SmolLM2-135M-Instruct on CPU under `transformers serve`, started by the same fixture as the
gateway's real-model test (`make model-env` first). The figures are printed past the capture,
prefixed `[real-model]`, and recorded in docs/gauntlet.md. No control plane is needed.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import test_gateway_real_model as real
from model.cache import model_dir

model = real.model  # the module-scoped `transformers serve` fixture, reused as it is
MODEL_START_S = real.MODEL_START_S
RUN_S = 300  # 6 sanity prompts and 7 latency requests at 0.1-0.4 s a token on 2 busy cores


@pytest.mark.timeout(MODEL_START_S + RUN_S + 30)  # the model's start-up counts against the test
def test_sanity_and_latency_pass_on_the_real_model(model, tmp_path, capsys):
    out = tmp_path / "report"
    cmd = [str(real.DAYZERO), "gauntlet", "run", "--endpoint", model.url]
    cmd += ["--model", str(model_dir()), "--suites", "sanity,latency"]
    cmd += ["--concurrency", "2", "--requests", "6", "--warmup", "1", "--max-tokens", "16"]
    cmd += ["--engine", "transformers serve (CPU)", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_S, check=False)
    assert (out / "results.json").is_file(), f"exit {done.returncode}: {done.stdout}{done.stderr}"
    results = json.loads((out / "results.json").read_text())
    sanity, latency = results["results"]
    answers = [f"{i['name']}: {i['answer']!r}" for i in sanity["items"]]
    fig = latency["figures"]
    real.report(
        capsys,
        f"gauntlet: exit {done.returncode}, verdict {results['verdict']}, "
        f"{results['duration_seconds']:.1f}s, model ready in {model.started_s:.1f}s",
        f"sanity: {sanity['verdict']} pass rate {sanity['figures']['passRate']:.0%}"
        + (f" ({sanity['reason']})" if sanity["reason"] else ""),
        *answers,
        f"latency at concurrency 2, {fig['requests']:.0f} requests of <=16 tokens: "
        f"p50 {fig['p50Seconds']:.2f}s [{fig['p50SecondsLow']:.2f}-{fig['p50SecondsHigh']:.2f}], "
        f"p95 {fig['p95Seconds']:.2f}s [{fig['p95SecondsLow']:.2f}-{fig['p95SecondsHigh']:.2f}], "
        f"max {fig['maxSeconds']:.2f}s, TTFT p50 {fig.get('ttftP50Seconds', -1):.2f}s, "
        f"per token p50 {fig.get('perTokenP50Seconds', -1) * 1000:.0f} ms",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert results["verdict"] == "Pass"
    assert sanity["verdict"] == "Pass"
    assert latency["verdict"] == "Pass"
    assert fig["succeeded"] == 6
    assert 0 < fig["ttftP50Seconds"] <= fig["p50Seconds"] <= fig["maxSeconds"] <= 40
    assert results["provenance"]["engine"] == "transformers serve (CPU)"
    assert (out / "junit.xml").is_file()
    assert "<svg" in (out / "report.html").read_text()


CAPITALS = (("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"))


@pytest.mark.timeout(MODEL_START_S + RUN_S + 30)
def test_a_diff_of_the_real_model_against_itself_is_not_separated(model, tmp_path, capsys):
    """The rotation runbook's diff, cheaply: the same model as candidate and baseline on a
    4-item dataset (8 generations of <=16 tokens). Equal models must not be told apart."""
    data = tmp_path / "capitals.jsonl"
    data.write_text("".join(
        json.dumps({"id": c.lower(), "prompt": f"What is the capital of {c}?",
                    "scorer": "contains", "expected": city, "max_tokens": 16}) + "\n"
        for c, city in CAPITALS
    ))  # fmt: skip
    served = str(model_dir())
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "targets": [{"name": "smollm2-new", "endpoint": model.url, "model": served}],
        "baseline": {"name": "smollm2-old", "endpoint": model.url, "model": served},
    }))  # fmt: skip
    out = tmp_path / "report"
    cmd = [str(real.DAYZERO), "gauntlet", "run", "--spec", str(spec), "--dataset", str(data)]
    cmd += ["--suites", "quality,diff", "--concurrency", "2", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_S, check=False)
    assert (out / "results.json").is_file(), f"exit {done.returncode}: {done.stdout}{done.stderr}"
    results = json.loads((out / "results.json").read_text())
    target = results["targets"][0]
    diff = next(r for r in target["suites"] if r["suite"] == "diff")
    fig = diff["figures"]
    answers = [
        f"{i['name']}: {i['answer']!r}"
        for r in (*target["suites"], *results["baseline"]["suites"])
        if r["suite"] == "quality"
        for i in r["items"]
    ]
    real.report(
        capsys,
        f"gauntlet diff: exit {done.returncode}, {results['duration_seconds']:.1f}s, "
        f"decision {diff['decision']}, candidate {fig['candidateMean']:.2f} vs baseline "
        f"{fig['baselineMean']:.2f}, CI [{fig['differenceLower95']:+.2f}, "
        f"{fig['differenceUpper95']:+.2f}], McNemar p={fig['mcnemarP']:.3g}, "
        f"MDE {fig['minDetectableEffect']:.2f}, paired latency "
        f"{fig['latencyMeanDifferenceSeconds']:+.2f}s",
        *answers,
    )
    assert fig["pairs"] == len(CAPITALS)
    assert fig["mcnemarP"] > 0.05  # not separated
    assert diff["decision"] != "inferior"
    assert target["family"] == "smollm"
