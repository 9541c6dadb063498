"""The Lane controller on the real control plane, with a real gateway reading what it wrote.

The operator runs as a real process and renders Lanes into a ConfigMap. A syncer copies the
ConfigMap's content into a file the way the kubelet projects a mounted ConfigMap (write, then
atomic rename), and a real `dayzero gateway` process hot-reloads that file. In-cluster Service
URLs are mapped to fake OpenAI upstreams on 127.0.0.1 by the gateway's explicit `--url-map`, so
nothing outside loopback is ever dialled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fakes.engine import FakeEngine
from fakes.hub import FakeHub
from fakes.kubelet import ConfigMapSync
from test_modeldeployment import (
    LLAMA_8B,
    Operator,
    condition,
    get_json,
    hub_repos,
    kubectl,
    mdep,
    wait_for,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("llama-a", "llama-b", "llama-c", "llama-d")


def free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lane_yaml() -> str:
    doc = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "Lane",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "chat",
            "backends": [
                {"name": "a", "modelDeploymentRef": {"name": "llama-a"}, "timeoutSeconds": 5},
                {"name": "b", "modelDeploymentRef": {"name": "llama-b"}, "timeoutSeconds": 5},
                {"name": "ext", "url": {"url": "http://127.0.0.1:1/v1"}, "timeoutSeconds": 2},
            ],
            "rollout": {
                "stages": [
                    {"name": "preview", "soak": "2s"},
                    {"name": "canary", "projects": ["team-a"], "soak": "2s"},
                    {"name": "default", "soak": "0s"},
                ],
                "limits": {"maxErrorRate": 0.2, "minRequests": 5},
            },
        },
    }
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def world(control_plane, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """CRDs, a namespace, a fake Hub, four Ready deployments, the operator, the gateway."""
    env = control_plane.env()
    kubectl(env, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    ns = f"lane-{os.getpid()}"
    kubectl(env, "create", "namespace", ns)
    wait_for("default SA", lambda: kubectl(env, "get", "sa", "default", "-n", ns))
    tmp = tmp_path_factory.mktemp("lane")
    upstreams = {name: FakeEngine(name) for name in MODELS}
    gw_port = free_port()
    base = tmp / "base.yaml"
    base.write_text(yaml.safe_dump({"keys": {"enabled": False}}))
    with FakeHub(hub_repos()) as hub:
        op = Operator(env, hub.url, tmp / "operator.log")
        op.args = [
            "--namespace",
            ns,
            "--routing-configmap",
            f"{ns}/dayzero-routing",
            "--routing-base",
            str(base),
            "--gateway",
            f"http://127.0.0.1:{gw_port}",
        ]
        op.start()
        gateway: subprocess.Popen[bytes] | None = None
        sync: ConfigMapSync | None = None
        try:
            for name in MODELS:
                kubectl(env, "apply", "-n", ns, "-f", "-", stdin=mdep(name, LLAMA_8B))
            endpoints = {}
            for name in MODELS:
                obj = wait_for(f"{name} Ready", lambda n=name: _ready(env, ns, n), timeout=120)
                endpoints[name] = obj["status"]["endpoint"].removesuffix("/v1")
            kubectl(env, "apply", "-n", ns, "-f", "-", stdin=lane_yaml())
            config = tmp / "routing.yaml"
            sync = ConfigMapSync(env, ns, config)
            wait_for("routing ConfigMap", sync.text, timeout=60)
            sync.sync()
            sync.start()
            url_map = [f"--url-map={endpoints[n]}={upstreams[n].url}" for n in MODELS]
            log = (tmp / "gateway.log").open("ab")
            gateway = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dayzero.cli",
                    "gateway",
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(gw_port),
                    "--loopback-only",
                    *url_map,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            gw = f"http://127.0.0.1:{gw_port}"
            wait_for("gateway ready", lambda: up(gw), timeout=60)
            applied = {
                "apiVersion": "dayzero.dev/v1alpha1",
                "specs": {
                    **{("mdep", n): yaml.safe_load(mdep(n, LLAMA_8B))["spec"] for n in MODELS},
                    ("lane", "chat"): yaml.safe_load(lane_yaml())["spec"],
                },
            }
            yield {
                "env": env,
                "ns": ns,
                "gw": gw,
                "upstreams": upstreams,
                "applied": applied,
                "sync": sync,
            }
        finally:
            if gateway is not None and gateway.poll() is None:
                os.killpg(gateway.pid, signal.SIGTERM)
                gateway.wait(10)
            if sync is not None:
                sync.stop()
            op.stop()
            for upstream in upstreams.values():
                upstream.close()
            kubectl(env, "delete", "namespace", ns, "--wait=false")


def up(gw: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(gw + "/ready").status_code == 200
    return False


def _ready(env: dict[str, str], ns: str, name: str) -> dict[str, Any] | None:
    obj = get_json(env, "mdep", name, "-n", ns)
    return obj if condition(obj, "Ready")["status"] == "True" else None


def lane_status(world: dict[str, Any]) -> dict[str, Any]:
    return get_json(world["env"], "lane", "chat", "-n", world["ns"]).get("status", {})


def ask(world: dict[str, Any], model: str, project: str = "team-z") -> httpx.Response:
    return httpx.post(
        world["gw"] + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Dayzero-Project": project},
        timeout=10,
    )


def served_by(world: dict[str, Any], model: str, project: str = "team-z") -> str | None:
    r = ask(world, model, project)
    return r.headers.get("x-dayzero-backend") if r.status_code == 200 else None


def annotate(world: dict[str, Any], *pairs: str) -> None:
    kubectl(world["env"], "annotate", "lane", "chat", "-n", world["ns"], "--overwrite", *pairs)


def test_document_routes_only_ready_deployments_and_the_external_url(world):
    doc = yaml.safe_load(world["sync"].text())
    [lane] = doc["lanes"]
    assert lane["backends"] == ["chat-a", "chat-b", "chat-ext"]
    by_name = {b["name"]: b for b in doc["backends"]}
    assert by_name["chat-ext"]["url"] == "http://127.0.0.1:1/v1"
    assert by_name["chat-a"]["model"] == "llama-a"
    assert "apiKey" not in json.dumps(doc).replace("apiKeyRef", "")
    status = wait_for(
        "Applied",
        lambda: (
            (s := lane_status(world))
            and condition({"status": s}, "Applied")["status"] == "True"
            and s
        ),
    )
    assert status["appliedConfigHash"] == status["configHash"]
    assert [b["available"] for b in status["backends"]] == [True, True, True]
    assert served_by(world, "chat") == "chat-a"


def test_an_unready_deployment_leaves_routing_within_one_reconcile(world):
    env, ns = world["env"], world["ns"]
    kubectl(
        env, "patch", "mdep", "llama-a", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    try:
        wait_for(
            "chat-a out of routing",
            lambda: (
                yaml.safe_load(world["sync"].text())["lanes"][0]["backends"]
                == ["chat-b", "chat-ext"]
            ),
        )
        status = lane_status(world)
        a = next(b for b in status["backends"] if b["name"] == "a")
        assert a["available"] is False
        assert "llama-a" in a["reason"]
        wait_for("gateway follows", lambda: served_by(world, "chat") == "chat-b")
    finally:
        kubectl(
            env,
            "patch",
            "mdep",
            "llama-a",
            "-n",
            ns,
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/spec/suspend"}]',
        )
    wait_for("chat-a back", lambda: served_by(world, "chat") == "chat-a", timeout=90)


def test_promotion_moves_preview_and_the_rollout_advances_on_good_metrics(world):
    annotate(world, "dayzero.dev/promote=preview=llama-c")
    wait_for("preview -> llama-c", lambda: served_by(world, "preview") == "chat-llama-c")
    status = lane_status(world)
    assert status["tags"]["preview"] == "llama-c"
    [promo] = status["promotions"]
    assert promo["stage"] == "preview"
    anns = get_json(world["env"], "lane", "chat", "-n", world["ns"])["metadata"].get(
        "annotations", {}
    )
    assert "dayzero.dev/promote" not in anns
    # Good traffic on preview lets the stage advance to canary: team-a's lane traffic first.
    for _ in range(6):
        assert served_by(world, "preview") == "chat-llama-c"

    def canary() -> bool:
        served_by(world, "chat", "team-a")  # keeps feeding the rollout good requests
        return lane_status(world)["promotions"][0].get("stage") == "canary"

    wait_for("canary stage", canary, timeout=60)
    wait_for("team-a on llama-c", lambda: served_by(world, "chat", "team-a") == "chat-llama-c")
    assert served_by(world, "chat", "team-z") == "chat-a"

    def done() -> bool:
        served_by(world, "chat", "team-a")
        return bool(lane_status(world)["promotions"][0].get("rolloutComplete"))

    wait_for("rollout complete", done, timeout=60)
    wait_for("llama-c leads the lane", lambda: served_by(world, "chat") == "chat-llama-c")


def test_a_failing_promotion_rolls_back_on_its_own(world):
    world["upstreams"]["llama-d"].failing = True
    annotate(world, "dayzero.dev/promote=preview=llama-d")
    wait_for("preview -> llama-d", lambda: lane_status(world)["tags"].get("preview") == "llama-d")
    wait_for("gateway on llama-d", lambda: ask(world, "preview").status_code == 502)
    for _ in range(8):
        ask(world, "preview")
    status = wait_for(
        "automatic rollback",
        lambda: (
            (s := lane_status(world)).get("lastRollback", {}).get("by", "").startswith("rollout/")
            and s
        ),
        timeout=60,
    )
    assert status["tags"]["preview"] == "llama-c"
    assert "maxErrorRate" in status["lastRollback"]["reason"]
    wait_for("preview back", lambda: served_by(world, "preview") == "chat-llama-c")


def test_manual_rollback_restores_the_previous_model_and_says_who(world):
    annotate(world, "dayzero.dev/promote=preview=llama-b")
    wait_for("preview -> llama-b", lambda: served_by(world, "preview") == "chat-b")
    annotate(world, "dayzero.dev/rollback=answers look wrong", "dayzero.dev/requested-by=alice")
    wait_for("preview back to llama-c", lambda: served_by(world, "preview") == "chat-llama-c")
    status = lane_status(world)
    assert status["lastRollback"]["by"] == "alice"
    assert status["lastRollback"]["reason"] == "answers look wrong"
    events = get_json(world["env"], "events", "-n", world["ns"])["items"]
    assert any(
        e["reason"] == "RolledBack" and "alice" in e["message"] and "look wrong" in e["message"]
        for e in events
    )


def test_invalid_lanes_are_refused_and_routing_does_not_change(world):
    env, ns = world["env"], world["ns"]
    before = world["sync"].text()
    both = yaml.safe_load(lane_yaml())
    both["metadata"]["name"] = "both"
    both["spec"]["tag"] = "light"
    out = subprocess.run(
        ["kubectl", "apply", "-n", ns, "-f", "-"],
        env=env,
        input=yaml.safe_dump(both),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "exactly one of spec.model and spec.tag" in out.stderr
    clash = yaml.safe_load(lane_yaml())
    clash["metadata"]["name"] = "chat-two"
    clash["spec"].pop("rollout")
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(clash))
    try:
        obj = wait_for(
            "chat-two Ready=False",
            lambda: (
                (o := get_json(env, "lane", "chat-two", "-n", ns))
                and condition(o, "Ready")["status"] == "False"
                and o
            ),
        )
        assert "'chat' already selects" in condition(obj, "Ready")["message"]
        assert world["sync"].text() == before
    finally:
        kubectl(env, "delete", "lane", "chat-two", "-n", ns)


def written(mine: Any, live: Any) -> bool:
    """Every value in ``mine`` is in ``live`` unchanged (defaults may add fields)."""
    if isinstance(mine, dict):
        return isinstance(live, dict) and all(
            k in live and written(v, live[k]) for k, v in mine.items()
        )
    if isinstance(mine, list):
        return (
            isinstance(live, list)
            and len(mine) == len(live)
            and all(written(a, b) for a, b in zip(mine, live, strict=True))
        )
    return bool(mine == live)


def test_no_spec_the_user_applied_was_changed(world):
    env, ns = world["env"], world["ns"]
    for (kind, name), spec in world["applied"]["specs"].items():
        live = get_json(env, kind, name, "-n", ns)["spec"]
        # The API server adds defaults; every field the user wrote must be byte-identical.
        assert written(spec, live), (kind, name, spec, live)
    managers = {
        m["manager"]
        for m in get_json(env, "lane", "chat", "-n", ns, "--show-managed-fields")["metadata"][
            "managedFields"
        ]
        if "f:spec" in json.dumps(m.get("fieldsV1", {}))
    }
    assert managers <= {"kubectl-client-side-apply", "kubectl"}, managers
