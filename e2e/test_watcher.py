"""The release watcher on the real control plane: `dayzero watcher poll` as the CronJob runs it.

The watcher is a real process against the local API server, reading a fake Hub through the real
huggingface-hub client, a fake GitHub, and posting to a fake Slack, all on loopback. Each test
gets its own namespace, so its own state ConfigMap: runs of different tests never share memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.github import FakeGitHub
from fakes.hub import FakeHub, FakeModel, Fault

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "planner" / "fixtures"
LLAMA = json.loads((FIXTURES / "llama-3.1-8b.json").read_text())
PARAMETERS = {"BF16": 8_030_261_248}
NEW = "acme/New-8B-Instruct"
NEW_NAME = "acme-new-8b-instruct"
GATED = "acme/Secret-8B"
FANCY = "acme/Fancy-8B"
FANCY_NAME = "acme-fancy-8b"


def kubectl(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


@pytest.fixture(scope="module")
def kenv(control_plane) -> dict[str, str]:
    env = control_plane.env()
    kubectl(env, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return env | {"HF_HUB_DISABLE_TELEMETRY": "1"}


class Slack:
    """A fake Slack incoming webhook: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                slack.messages.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/services/T0/B0/x"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[Slack]:
    fake = Slack()
    yield fake
    fake.close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    models = [
        FakeModel(NEW, config=LLAMA, parameters=PARAMETERS),
        FakeModel("acme/New-8B-Base", config=LLAMA, parameters=PARAMETERS),
    ]
    with FakeHub(models) as fake:
        yield fake


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.publish("vllm-project/vllm", "v0.1.0", body="Initial release")
        yield fake


class Watcher:
    """Writes the config and runs `dayzero watcher poll` as a process."""

    def __init__(
        self, env: dict[str, str], namespace: str, hub: FakeHub, gh: FakeGitHub, tmp: Path
    ):
        self.env = env
        self.hub = hub
        self.gh = gh
        self.config = tmp / "watcher.yaml"
        self.settings: dict[str, Any] = {
            "hub": {"orgs": ["acme"], "maxRetryAfterS": 10},
            "github": {"repos": ["vllm-project/vllm"]},
            "filters": {"exclude": ["-Base$"]},
            "mode": "auto",
            "namespace": namespace,
            "budget": {"gpuKind": "h100-80gb", "maxGpus": 8},
            "gauntlet": {"suites": ["sanity"]},
        }

    def argv(self) -> list[str]:
        self.config.write_text(yaml.safe_dump(self.settings))
        return [
            sys.executable,
            "-m",
            "dayzero.cli",
            "watcher",
            "poll",
            "--config",
            str(self.config),
            "--kubeconfig",
            self.env["KUBECONFIG"],
            "--hub-endpoint",
            self.hub.url,
            "--github-api",
            self.gh.url,
        ]

    def poll(self) -> dict[str, Any]:
        done = subprocess.run(
            self.argv(), env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr + done.stdout
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary


@pytest.fixture
def watcher(kenv, namespace, hub, github, tmp_path) -> Watcher:
    return Watcher(kenv, namespace, hub, github, tmp_path)


def mdeps(env: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl(env, "get", "mdep", "-n", namespace, "-o", "json")
    )["items"]
    return items


def verdicts(summary: dict[str, Any]) -> dict[str, str]:
    return {m["repo"]: m["verdict"] for m in summary["models"]}


def test_a_new_release_creates_exactly_one_modeldeployment(watcher, kenv, namespace, hub):
    first = watcher.poll()
    print(f"\nwatcher run against the fake Hub: {first['durationSeconds']:.3f} s (in-process)")
    assert verdicts(first) == {NEW: "deployable", "acme/New-8B-Base": "filtered"}
    [created] = [m for m in first["models"] if m["repo"] == NEW]
    assert (created["action"], created["name"]) == ("created", NEW_NAME)
    assert created["plan"]["gpus"] == 1
    [obj] = mdeps(kenv, namespace)
    meta = obj["metadata"]
    assert meta["name"] == NEW_NAME
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "dayzero-watcher"
    assert meta["annotations"]["dayzero.dev/source-repo"] == NEW
    assert meta["annotations"]["dayzero.dev/source-sha"] == hub.model(NEW).sha
    assert obj["spec"]["source"]["hub"] == {"repo": NEW, "revision": hub.model(NEW).sha}
    assert obj["spec"]["suspend"] is False
    assert obj["spec"]["gauntlet"]["suites"] == ["sanity"]

    again = watcher.poll()
    assert again["models"] == []
    assert again["unchanged"] == 2
    assert len(mdeps(kenv, namespace)) == 1
    state = json.loads(
        kubectl(kenv, "get", "configmap", "dayzero-watcher-state", "-n", namespace, "-o", "json")
    )
    seen = json.loads(state["data"]["state.json"])["models"]
    assert seen[NEW] == seen[NEW] | {"verdict": "deployable", "name": NEW_NAME}


def test_approval_mode_creates_it_suspended(watcher, kenv, namespace):
    watcher.settings["mode"] = "approval"
    summary = watcher.poll()
    assert [m["action"] for m in summary["models"] if m["repo"] == NEW] == ["suspended"]
    [obj] = mdeps(kenv, namespace)
    assert obj["spec"]["suspend"] is True


def test_a_gated_release_alerts_but_creates_nothing(watcher, kenv, namespace, hub, slack):
    hub.remove(NEW)
    hub.add(FakeModel(GATED, config=LLAMA, parameters=PARAMETERS, gated="manual"))
    watcher.settings["sinks"] = {"slack": {"webhookUrl": slack.url}}
    summary = watcher.poll()
    assert verdicts(summary)[GATED] == "gated"
    assert summary["alerts"] == [{"sink": "slack", "ok": True}]
    [message] = slack.messages
    assert GATED in message["text"]
    assert "gated" in message["text"]
    assert mdeps(kenv, namespace) == []


def test_an_unsupported_release_is_held_until_a_vllm_release(watcher, kenv, namespace, hub, github):
    hub.remove(NEW)
    fancy = LLAMA | {"architectures": ["FancyNewForCausalLM"]}
    hub.add(FakeModel(FANCY, config=fancy, parameters=PARAMETERS))
    held = watcher.poll()
    assert verdicts(held)[FANCY] == "unsupported"
    assert mdeps(kenv, namespace) == []
    quiet = watcher.poll()
    assert quiet["models"] == []
    assert quiet["checked"]["github"][0]["changed"] is False  # a 304 on the ETag

    github.publish("vllm-project/vllm", "v99.0.0", body="New models: FancyNewForCausalLM (#1)")
    news = watcher.poll()
    [judged] = news["models"]
    assert (judged["repo"], judged["verdict"], judged["previously"]) == (
        FANCY,
        "deployable",
        "unsupported",
    )
    assert judged["action"] == "created"
    assert [o["metadata"]["name"] for o in mdeps(kenv, namespace)] == [FANCY_NAME]


def test_two_concurrent_polls_do_not_double_create(watcher, kenv, namespace):
    argv = watcher.argv()
    procs = [
        subprocess.Popen(argv, env=kenv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    actions = sorted(
        m["action"] for out, _ in outs for m in json.loads(out)["models"] if m["repo"] == NEW
    )
    # Either both judged it (one create wins, the other meets the conflict) or the second
    # already read the first's state.
    assert actions in (["created", "exists"], ["created"])
    assert [o["metadata"]["name"] for o in mdeps(kenv, namespace)] == [NEW_NAME]


def test_a_hub_429_is_honoured(watcher, kenv, namespace, hub):
    hub.set_fault("*", Fault(status=429, headers={"Retry-After": "2"}, times=1))
    began = time.monotonic()
    summary = watcher.poll()
    elapsed = time.monotonic() - began
    assert summary["rateLimitWaitSeconds"] == 2
    assert elapsed >= 2
    statuses = [r.status for r in hub.requests if r.path == "/api/models"]
    assert statuses[:2] == [429, 200]
    assert verdicts(summary)[NEW] == "deployable"
    assert len(mdeps(kenv, namespace)) == 1
