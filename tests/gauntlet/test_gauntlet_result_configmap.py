"""`dayzero gauntlet run --result-configmap NS/NAME`: the evaluation Job's hand-back.

A loopback HTTP server stands in for the API server: it speaks the merge-patch endpoint of one
ConfigMap and answers 403 for any other, as the Job's Role would. The harness runs against the
fake upstream, so the compact result is the real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from gauntlet_fakes import serve

import dayzero.kube.results  # noqa: F401 - the kubernetes client imports slowly: not in a test's 2 s
from dayzero.cli import main

FAST = ["--suites", "latency", "--requests", "3", "--warmup", "0", "--max-tokens", "8"]
FAST += ["--timeout", "2", "--concurrency", "3"]
TOKEN = "job-token"  # noqa: S105 - a test token for the loopback API server


class FakeApiServer:
    """PATCH of one ConfigMap, with a bearer token; every other path is forbidden."""

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"reason": "Unauthorized", "message": "no token"})
                elif self.path != fake.allowed:
                    self._answer(
                        403, {"reason": "Forbidden", "message": f"{self.path} is forbidden"}
                    )
                else:
                    fake.patches.append((self.path, self.headers["Content-Type"], body))
                    self._answer(200, {"kind": "ConfigMap", **body})

            def _answer(self, code: int, doc: dict[str, Any]) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "job", "user": {"token": TOKEN}}],
            "contexts": [{"name": "job", "context": {"cluster": "fake", "user": "job"}}],
            "current-context": "job",
        }
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    fake = FakeApiServer("/api/v1/namespaces/evals/configmaps/g1-abc-result")
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("DAYZERO_EVAL_KEY", "k" * 32)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def run(url: str, out: Path, target: str, *extra: str) -> int:
    argv = ["gauntlet", "run", "--endpoint", url, "--model", "fake", "--out", str(out)]
    return main([*argv, *FAST, "--result-configmap", target, *extra])


def test_the_result_lands_in_the_configmap(api: FakeApiServer, tmp_path: Path, capsys) -> None:
    with serve() as fake:
        code = run(fake.url, tmp_path / "out", "evals/g1-abc-result", "--model-sha", "abc")
    assert code == 0, capsys.readouterr()
    ((_, content_type, body),) = api.patches
    assert content_type == "application/merge-patch+json"
    result = json.loads(body["data"]["result.json"])
    assert (result["verdict"], result["exitCode"], result["winner"]) == ("Pass", 0, "candidate")
    (latency,) = result["suites"]
    assert (latency["target"], latency["suite"], latency["verdict"]) == (
        "candidate",
        "latency",
        "Pass",
    )
    assert latency["figures"]["p95Seconds"] > 0
    assert result["targets"][0]["provenance"]["modelSha"] == "abc"
    assert result["evalKey"] == "k" * 32
    assert result["completionTime"]
    assert "<svg" in body["data"]["report.html"]
    assert "result     configmap evals/g1-abc-result" in capsys.readouterr().out


def test_bad_input_still_hands_back_an_error_naming_the_flag(
    api: FakeApiServer, tmp_path: Path
) -> None:
    with serve() as fake:
        code = run(
            fake.url,
            tmp_path / "out",
            "evals/g1-abc-result",
            "--p95-seconds",
            "50",
            "--max-seconds",
            "10",
        )
    assert code == 2
    ((_, _, body),) = api.patches
    result = json.loads(body["data"]["result.json"])
    assert result["verdict"] == "Error"
    assert "--p95-seconds" in result["reason"]
    assert result["exitCode"] == 2


def test_a_refused_write_exits_4_so_the_job_retries(
    api: FakeApiServer, tmp_path: Path, capsys
) -> None:
    with serve() as fake:
        code = run(fake.url, tmp_path / "out", "evals/someone-elses")
    assert code == 4
    assert not api.patches
    err = capsys.readouterr().err
    assert "--result-configmap evals/someone-elses" in err
    assert "403" in err


def test_a_malformed_target_exits_2_naming_the_flag(tmp_path: Path, capsys) -> None:
    assert run("http://127.0.0.1:9", tmp_path / "out", "no-namespace") == 2
    assert "--result-configmap: want NAMESPACE/NAME" in capsys.readouterr().err
