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


def routing(ns: str, name: str, other: str, *, asleep: bool) -> dict[str, Any]:
    """The document the Lane controller renders for a lane over the deployment, then ``other``:
    lane ``wait`` waits for a wake-up, lane ``now`` does not."""
    return {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "keys": {"enabled": False},
        "backends": [
            {
                "name": name,
                "url": endpoint(name, ns),
                "model": name,
                "modelDeployment": f"{ns}/{name}",
                "asleep": asleep,
                "timeoutSeconds": 10,
            },
            {"name": "other", "url": other},
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


class WakingGateway:
    """`dayzero gateway --kubeconfig <the ServiceAccount's>` with the deployment's Service URL
    mapped to a fake engine on loopback."""

    def __init__(self, env: dict[str, str], ns: str, name: str, served: str, tmp: Path) -> None:
        self.config = tmp / "routing.yaml"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.argv = [
            str(DAYZERO),
            "gateway",
            "--config",
            str(self.config),
            "--port",
            str(self.port),
            "--loopback-only",
            "--url-map",
            f"{endpoint(name, ns).removesuffix('/v1')}={served}",
            "--kubeconfig",
            str(gateway_kubeconfig(env, ns, tmp)),
            "--last-used-seconds",
            "1",
            "--residency-seconds",
            "0",
        ]
        self.log = tmp / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, doc: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump(doc))

    def __enter__(self) -> WakingGateway:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for("gateway ready", lambda: _up(self.base), timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)

    def chat(self, model: str, timeout: float = 30) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return httpx.post(f"{self.base}/v1/chat/completions", json=body, timeout=timeout)


def test_gateway_wakes_a_deployment_scaled_to_zero(
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
    gateway = WakingGateway(kenv, ns, name, served.url, tmp_path)
    gateway.write(routing(ns, name, other.url, asleep=True))
    try:
        with gateway:
            # A lane that waits: the request is held until the operator brought the model back.
            started = time.monotonic()
            r = gateway.chat("wait", timeout=150)
            waited = time.monotonic() - started
            assert r.status_code == 200, r.text
            assert r.headers["x-dayzero-backend"] == name
            assert r.json()["choices"][0]["message"]["content"] == "hello from sleepy"
            assert served.calls == 1
            assert other.calls == 0
            obj = get_json(kenv, "mdep", name, "-n", ns, "--show-managed-fields")
            assert condition(obj, "Ready")["status"] == "True"
            assert obj["spec"] == {**applied, "replicas": 1}, (
                "only the scale subresource is written"
            )
            assert obj["status"]["lastUsedTime"]
            managers = {f["manager"] for f in obj["metadata"]["managedFields"]}
            assert "dayzero-gateway" in managers

            # Back to zero; a lane that does not wait falls through at once and still wakes it.
            kubectl(kenv, "scale", "mdep", name, "-n", ns, "--replicas=0")
            wait_for("ScaledToZero again", lambda: scaled_to_zero(kenv, ns, name))
            time.sleep(1.1)  # past the gateway's Ready cache (--last-used-seconds 1)
            started = time.monotonic()
            r = gateway.chat("now")
            assert r.status_code == 200, r.text
            assert r.headers["x-dayzero-backend"] == "other"
            assert time.monotonic() - started < 2.0
            wait_for("woken in the background", lambda: ready(kenv, ns, name), timeout=120)
            assert get_json(kenv, "mdep", name, "-n", ns)["spec"]["replicas"] == 1
            status = httpx.get(f"{gateway.base}/v1/models/status").json()
            wake = next(b for b in status["backends"] if b["name"] == name)["wake"]
            assert wake["wakes"] == 2
            assert wake["error"] is None
            print(f"woken and served in {waited:.1f}s")
    finally:
        served.close()
        other.close()


def test_reported_use_keeps_a_deployment_up_and_wakes_it_after_idling(
    operator,  # noqa: F811 - the fixture of test_modeldeployment
    kenv,  # noqa: F811
    namespace,
    tmp_path,
):
    """The operator idles a deployment after scaling.idleAfter without use; the gateway's
    lastUsedTime reports keep a used one up, and a request after it idled wakes it by its report
    alone (spec.replicas is 1: the scale subresource is not touched)."""
    ns, name = namespace, "idler"
    idle = {"scaling": {"idleAfter": "6s"}}
    kubectl(kenv, "apply", "-n", ns, "-f", "-", stdin=mdep(name, LLAMA_8B, **idle))
    applied = get_json(kenv, "mdep", name, "-n", ns)["spec"]
    wait_for("Ready", lambda: ready(kenv, ns, name), timeout=120)
    served, other = FakeEngine("idler"), FakeEngine("other")
    gateway = WakingGateway(kenv, ns, name, served.url, tmp_path)
    gateway.write(routing(ns, name, other.url, asleep=False))
    try:
        with gateway:
            for _ in range(6):  # 12 s of traffic: twice the idle window
                r = gateway.chat("now")
                assert r.status_code == 200, r.text
                assert r.headers["x-dayzero-backend"] == name
                time.sleep(2)
            assert ready(kenv, ns, name), "a deployment in use is not idled"
            idled = wait_for(
                "IdleScaledToZero",
                lambda: (
                    (o := get_json(kenv, "mdep", name, "-n", ns))
                    and condition(o, "Ready")["reason"] == "IdleScaledToZero"
                    and o
                ),
                timeout=60,
            )
            assert idled["spec"] == applied
            gateway.write(routing(ns, name, other.url, asleep=True))  # as the Lane controller does
            time.sleep(0.6)  # the gateway's reload poll
            r = gateway.chat("wait", timeout=150)
            assert r.status_code == 200, r.text
            assert r.headers["x-dayzero-backend"] == name
            obj = get_json(kenv, "mdep", name, "-n", ns)
            assert condition(obj, "Ready")["status"] == "True"
            assert obj["spec"] == applied, "woken by the reported use, the spec untouched"
    finally:
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
