"""`dayzero gauntlet run` end to end against the fake: exit codes, the three reports, and bad
input that names the flag."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET

import pytest
from gauntlet_fakes import Behaviour, serve
from prometheus_client.parser import text_string_to_metric_families

from dayzero.cli import main

FAST = ["--requests", "6", "--warmup", "1", "--stability-requests", "6", "--timeout", "2"]
FAST += ["--max-tokens", "16", "--p95-seconds", "5", "--max-seconds", "10", "--concurrency", "3"]


def run_cli(url: str, tmp_path, *extra: str) -> int:
    argv = ["gauntlet", "run", "--endpoint", url, "--model", "fake", "--out", str(tmp_path)]
    return main([*argv, *FAST, *extra])


def test_a_healthy_run_exits_0_and_writes_the_reports(tmp_path, capsys):
    with serve() as fake:
        code = run_cli(
            fake.url, tmp_path, "--model-sha", "abc123", "--engine", "vllm 0.33.0",
            "--chat-template-hash", "sha256:feed", "--image", "dayzero/vllm:1",
        )  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert fake.bodies[0]["model"] == "fake"
    assert fake.bodies[0]["temperature"] == 0
    assert {b["max_tokens"] for b in fake.bodies if "load balancer" in str(b)} == {16}
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"] == "Pass"
    assert results["exit_code"] == 0
    assert results["provenance"] == {
        "model_sha": "abc123",
        "engine": "vllm 0.33.0",
        "image": "dayzero/vllm:1",
        "chat_template_hash": "sha256:feed",
        "dataset_hash": None,
    }
    assert results["sampling"] == {"temperature": 0.0, "top_p": None}
    assert (results["gates"]["p95_seconds"], results["gates"]["max_seconds"]) == (5, 10)
    assert results["concurrency"] == 3
    assert "api_key" not in json.dumps(results)
    root = ET.parse(tmp_path / "junit.xml").getroot()  # noqa: S314 - the report we just wrote
    suites = root.findall("testsuite")
    names = [s.get("name") for s in suites]
    assert names == ["sanity", "compliance", "latency", "toolCalls", "stability"]
    assert all(s.get("failures") == "0" for s in suites)
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page
    assert "abc123" in page
    assert "http://" not in page.split("<body>")[0]  # self-contained: nothing to fetch
    assert "verdict    Pass (exit 0)" in capsys.readouterr().out
    samples = {
        (m.name, tuple(sorted(m.labels.items()))): m.value
        for family in text_string_to_metric_families((tmp_path / "metrics.prom").read_text())
        for m in family.samples
    }
    labels = {"target": "candidate", "role": "candidate", "model": "fake", "model_sha": "abc123"}

    def sample(name: str, **extra: str) -> float:
        return samples[(name, tuple(sorted({**labels, **extra}.items())))]

    assert sample("dayzero_gauntlet_verdict", verdict="Pass") == 1
    assert sample("dayzero_gauntlet_verdict", verdict="Fail") == 0
    assert sample("dayzero_gauntlet_suite_verdict", suite="latency", verdict="Pass") == 1
    p95 = results["results"][2]["figures"]["p95Seconds"]
    assert sample("dayzero_gauntlet_figure", suite="latency", figure="p95Seconds") == p95


def test_a_failing_run_exits_1_with_the_reason_in_every_report(tmp_path, capsys):
    with serve(Behaviour(leak="<|im_end|>")) as fake:
        code = run_cli(fake.url, tmp_path, "--suites", "sanity")
    assert code == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert "chat-template tokens leaked: <|im_end|>" in results["reason"]
    junit = ET.parse(tmp_path / "junit.xml").getroot()  # noqa: S314 - the report we just wrote
    messages = [f.get("message") for f in junit.iter("failure")]
    assert any("<|im_end|>" in (m or "") for m in messages)
    assert "&lt;|im_end|&gt;" in (tmp_path / "report.html").read_text()
    assert "sanity     Fail" in capsys.readouterr().out


def test_api_key_is_sent_from_the_named_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GAUNTLET_TEST_KEY", "sk-test")
    with serve() as fake:
        assert run_cli(fake.url, tmp_path, "--suites", "sanity", "--api-key-env",
                       "GAUNTLET_TEST_KEY") == 0  # fmt: skip
    assert "sk-test" not in (tmp_path / "results.json").read_text()


def test_an_endpoint_that_never_answers_exits_3(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        code = run_cli(f"http://127.0.0.1:{port}", tmp_path, "--suites", "sanity")
    assert code == 3
    assert "never answered" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--endpoint", "ftp://x", "--model", "m"], "--endpoint: Value error, want an http(s) URL"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--suites", "sanity,bogus"],
         "--suites: unknown suite(s) bogus"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--suites", "diff"],
         "baseline: the diff suite needs a baseline"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--url-map", "http://a:1"],
         "--url-map: 'http://a:1' is not FROM=TO"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--url-map", "http://a:1/v1=http://b"],
         "--url-map: 'http://a:1/v1' in"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--url-map", "a=http://b"],
         "--url-map: 'a' in 'a=http://b' is not scheme://host[:port]"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--concurrency", "0"],
         "--concurrency: Input should be greater than or equal to 1"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--max-tokens", "0"],
         "--max-tokens: Input should be greater than or equal to 1"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--timeout", "-1"],
         "--timeout: Input should be greater than 0"),
        (["--endpoint", "http://127.0.0.1:1"], "--model is required"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--p95-seconds", "50"],
         "--p95-seconds: must not exceed --max-seconds"),
        (["--endpoint", "http://127.0.0.1:1", "--model", "m", "--api-key-env", "NOPE_NOT_SET"],
         "--api-key-env: $NOPE_NOT_SET is not set"),
        (["--spec", "/nonexistent/spec.yaml"], "--spec: cannot read"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_flag(argv, message, tmp_path, capsys):
    assert main(["gauntlet", "run", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_a_spec_file_is_read_and_flags_override_it(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model: from-file\n"
        "suites: {sanity: {enabled: true}, latency: {enabled: false}, stability: {enabled: false},"
        " toolCalls: {enabled: false}, compliance: {enabled: false}}\n"
        "provenance: {datasetHash: null, model_sha: deadbeef}\n"
    )
    with serve() as fake:
        code = main(["gauntlet", "run", "--spec", str(spec), "--endpoint", fake.url,
                     "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    assert fake.bodies[0]["model"] == "from-file"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["suite"] for r in results["results"]] == ["sanity"]
    assert results["provenance"]["model_sha"] == "deadbeef"
