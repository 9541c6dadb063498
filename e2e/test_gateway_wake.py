"""Wake-from-zero on the real control plane: a real `dayzero gateway` process, authenticated as a
ServiceAccount with exactly the chart's wake-from-zero RBAC, wakes a ModelDeployment scaled to
zero that the real operator then brings back (kwok marks its pods ready).

The deployment's in-cluster Service URL is mapped to a fake engine on 127.0.0.1 with the gateway's
`--url-map`, and the gateway runs with `--loopback-only`: nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dayzero.render.modeldeployment import endpoint
from fakes.engine import FakeEngine
from test_modeldeployment import (  # noqa: F401 - fixtures: hub, kenv, operator
    LLAMA_8B,
    condition,
    get_json,
    hub,
    kenv,
    kubectl,
    mdep,
    operator,
    ready,
    wait_for,
)

pytestmark = pytest.mark.e2e
DAYZERO = Path(sys.executable).parent / "dayzero"

# The chart's gateway rules with wakeFromZero (charts/dayzero/templates/gateway/rbac.yaml).
RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {{name: gateway}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: gateway-wake}}
rules:
  - {{apiGroups: [dayzero.dev], resources: [modeldeployments], verbs: [get, list, watch]}}
  - {{apiGroups: [dayzero.dev], resources: [modeldeployments/status], verbs: [patch]}}
  - {{apiGroups: [dayzero.dev], resources: [modeldeployments/scale], verbs: [get, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: gateway-wake}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: gateway-wake}}
subjects: [{{kind: ServiceAccount, name: gateway, namespace: {ns}}}]
"""


def gateway_kubeconfig(env: dict[str, str], ns: str, tmp: Path) -> Path:
    """A kubeconfig of the gateway's ServiceAccount (a token), on the admin's server and CA."""
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=RBAC.format(ns=ns))
    token = kubectl(env, "create", "token", "gateway", "-n", ns, "--duration=1h").strip()
    admin: Any = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    path = tmp / "gateway.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "gw",
                "contexts": [{"name": "gw", "context": {"cluster": "plane", "user": "gw"}}],
                "clusters": [{"name": "plane", "cluster": cluster}],
                "users": [{"name": "gw", "user": {"token": token}}],
            }
        )
    )
    return path


def scaled_to_zero(env: dict[str, str], ns: str, name: str) -> dict[str, Any] | None:
    obj = get_json(env, "mdep", name, "-n", ns)
    return obj if condition(obj, "Ready")["reason"] == "ScaledToZero" else None


def test_gateway_wakes_a_deployment_scaled_to_zero(  # noqa: PLR0915 - one story, top to bottom
    operator,  # noqa: F811 - the fixture of test_modeldeployment
    kenv,  # noqa: F811
    namespace,
    tmp_path,
):
    ns, name = namespace, "sleepy"
    kubectl(kenv, "apply", "-n", ns, "-f", "-", stdin=mdep(name, LLAMA_8B, replicas=0))
    applied = get_json(kenv, "mdep", name, "-n", ns)["spec"]
    wait_for("ScaledToZero", lambda: scaled_to_zero(kenv, ns, name))
    served, other = FakeEngine("sleepy"), FakeEngine("other")
    url = endpoint(name, ns)  # what the Lane controller renders for an asleep deployment
    service = url.removesuffix("/v1")
    doc = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "keys": {"enabled": False},
        "backends": [
            {
                "name": name,
                "url": url,
                "model": name,
                "modelDeployment": f"{ns}/{name}",
                "asleep": True,
                "timeoutSeconds": 10,
            },
            {"name": "other", "url": other.url},
        ],
        "lanes": [
            {
                "name": "wait",
                "model": "wait",
                "backends": [name, "other"],
                "wakeTimeoutSeconds": 120,
            },
            {"name": "now", "model": "now", "backends": [name, "other"]},
        ],
    }
    config = tmp_path / "routing.yaml"
    config.write_text(yaml.safe_dump(doc))
    port = int(served.url.rsplit(":", 1)[1])
    gw_port = _free_port()
    log = (tmp_path / "gateway.log").open("ab")
    proc = subprocess.Popen(
        [
            str(DAYZERO),
            "gateway",
            "--config",
            str(config),
            "--port",
            str(gw_port),
            "--loopback-only",
            "--url-map",
            f"{service}=http://127.0.0.1:{port}",
            "--kubeconfig",
            str(gateway_kubeconfig(kenv, ns, tmp_path)),
            "--last-used-seconds",
            "1",
            "--residency-seconds",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{gw_port}"
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    try:
        wait_for("gateway ready", lambda: _up(base), timeout=30)
        # A lane that waits: the request is held until the operator brought the model back.
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/chat/completions", json={**chat, "model": "wait"}, timeout=150)
        assert r.status_code == 200, r.text
        assert r.headers["x-dayzero-backend"] == name
        assert r.json()["choices"][0]["message"]["content"] == "hello from sleepy"
        assert served.calls == 1
        assert other.calls == 0
        obj = get_json(kenv, "mdep", name, "-n", ns, "--show-managed-fields")
        assert condition(obj, "Ready")["status"] == "True"
        assert obj["spec"] == {**applied, "replicas": 1}, "only the scale subresource is written"
        assert obj["status"]["lastUsedTime"]
        managers = {f["manager"] for f in obj["metadata"]["managedFields"]}
        assert "dayzero-gateway" in managers
        waited = time.monotonic() - started

        # Back to zero; a lane that does not wait falls through at once and still wakes it.
        kubectl(kenv, "scale", "mdep", name, "-n", ns, "--replicas=0")
        wait_for("ScaledToZero again", lambda: scaled_to_zero(kenv, ns, name))
        time.sleep(1.1)  # past the gateway's Ready cache (--last-used-seconds 1)
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/chat/completions", json={**chat, "model": "now"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-dayzero-backend"] == "other"
        assert time.monotonic() - started < 2.0
        wait_for("woken in the background", lambda: ready(kenv, ns, name), timeout=120)
        assert get_json(kenv, "mdep", name, "-n", ns)["spec"]["replicas"] == 1
        status = httpx.get(f"{base}/v1/models/status").json()
        wake = next(b for b in status["backends"] if b["name"] == name)["wake"]
        assert wake["wakes"] == 2
        assert wake["error"] is None
        print(f"woken and served in {waited:.1f}s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        log.close()
        served.close()
        other.close()


def _free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
