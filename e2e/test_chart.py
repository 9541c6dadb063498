"""The Helm chart on a real control plane: install with defaults, upgrade with changed values,
uninstall leaving nothing of dayzero behind but the CRDs (when crds.keep is set).

Why its own plane: the chart owns the CRDs and, with crds.keep=false, deletes them, which would
pull them from under every other e2e test sharing the session's plane. kwok runs the pods (the
images are never pulled), so Deployments become Available and `helm --wait` means something.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import ControlPlane, build_binaries, wait_until
from fakes.hub import FakeHub
from test_modeldeployment import LLAMA_8B, Operator, hub_repos, mdep

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "dayzero"
NS = "dayzero-system"
RELEASE = "dayzero"
CRDS = ("modeldeployments.dayzero.dev", "lanes.dayzero.dev", "gauntlets.dayzero.dev")
SA = f"system:serviceaccount:{NS}"
# Every kind the chart can create, namespaced and not, for the "nothing left behind" check.
NAMESPACED = (
    "deployments,services,configmaps,cronjobs,jobs,serviceaccounts,roles,rolebindings,"
    "horizontalpodautoscalers,networkpolicies,pods"
)
CLUSTER = "clusterroles,clusterrolebindings,priorityclasses"


class Tools:
    """helm and kubectl against the chart's own plane."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.env = plane.env()
        self.bin = plane.binaries

    def run(
        self, tool: str, *args: str, timeout: float = 240, input_: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / tool), *args],
            env=self.env,
            input=input_,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, timeout=timeout)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, timeout=60)

    def json(self, *args: str) -> Any:
        out = self.kubectl(*args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def can(self, who: str, *args: str) -> bool:
        out = self.kubectl("auth", "can-i", "--as", f"{SA}:{who}", *args)
        return out.stdout.strip() == "yes"

    def leftovers(self, selector: str) -> list[str]:
        """Objects matching `selector`, namespaced (every namespace) and cluster-scoped."""
        names = []
        for kinds, scope in ((NAMESPACED, ("-A",)), (CLUSTER, ())):
            out = self.kubectl("get", kinds, *scope, "-l", selector, "-o", "name")
            assert out.returncode == 0, out.stderr
            names += out.stdout.split()
        return names


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    plane = ControlPlane(
        tmp_path_factory.mktemp("chartplane"), bin_dir=build_binaries(), gpu_nodes=1, cpu_nodes=2
    )
    plane.start()
    try:
        yield Tools(plane)
    finally:
        plane.stop()


def helm_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def install(tools: Tools, release: str, *sets: str) -> str:
    args = ["install", release, str(CHART), "-n", NS, "--create-namespace", "--wait"]
    args += ["--timeout", "180s"]
    for s in sets:
        args += ["--set", s]
    return helm_ok(tools.helm(*args))


def test_install_with_default_values(tools: Tools) -> None:
    notes = install(tools, RELEASE)
    assert "leader-elected" in notes
    for crd in CRDS:
        got = tools.json("get", "crd", crd)
        established = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert established["Established"] == "True", crd
    deployments = {
        d["metadata"]["name"]: d for d in tools.json("get", "deployments", "-n", NS)["items"]
    }
    assert set(deployments) == {"dayzero-operator", "dayzero-gateway"}
    for d in deployments.values():
        assert d["status"].get("availableReplicas") == 1, d["metadata"]["name"]
    assert deployments["dayzero-operator"]["spec"]["strategy"]["type"] == "Recreate"
    cron = tools.json("get", "cronjob", "dayzero-watcher", "-n", NS)
    assert cron["spec"]["schedule"] == "*/10 * * * *"

    # Least privilege, as the API server's own authorizer sees it.
    assert tools.can("dayzero-operator", "create", "statefulsets.apps", "-n", "default")
    assert tools.can(
        "dayzero-operator", "patch", "modeldeployments.dayzero.dev", "--subresource=status", "-A"
    )
    assert tools.can("dayzero-operator", "delete", "pods", "-n", "default")
    assert not tools.can("dayzero-operator", "create", "pods", "-n", "default")
    assert not tools.can("dayzero-operator", "get", "secrets", "-A")
    assert tools.can("dayzero-operator", "patch", "configmaps/dayzero-routing", "-n", NS)
    # A Gauntlet's run: ConfigMaps, a ServiceAccount and a Role limited to its result, which the
    # operator may grant only because it holds those verbs itself (no escalate, no bind).
    assert tools.can("dayzero-operator", "create", "configmaps", "-n", "default")
    assert tools.can(
        "dayzero-operator", "create", "roles.rbac.authorization.k8s.io", "-n", "default"
    )
    assert not tools.can("dayzero-operator", "delete", "configmaps", "-n", NS)
    assert not tools.can("dayzero-operator", "escalate", "roles.rbac.authorization.k8s.io", "-A")
    assert not tools.can("dayzero-operator", "bind", "roles.rbac.authorization.k8s.io", "-A")
    assert not tools.can("dayzero-gateway", "list", "modeldeployments.dayzero.dev", "-A")
    assert not tools.can("dayzero-gateway", "get", "secrets", "-n", NS)
    assert tools.can("dayzero-watcher", "create", "modeldeployments.dayzero.dev", "-n", NS)
    assert not tools.can("dayzero-watcher", "delete", "modeldeployments.dayzero.dev", "-n", NS)
    assert not tools.can("dayzero-watcher", "create", "modeldeployments.dayzero.dev", "-n", "x")
    helm_ok(tools.kubectl("create", "namespace", "models"))


def service_account_kubeconfig(tools: Tools, name: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount `name`, by its token."""
    token = tools.kubectl("create", "token", name, "-n", NS, "--duration=1h")
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(tools.plane.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token.stdout.strip()}}],
        "contexts": [
            {"name": name, "context": {"cluster": admin["clusters"][0]["name"], "user": name}}
        ],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_operator_works_within_the_charts_rbac(tools: Tools, tmp_path: Path) -> None:
    """The operator, as its ServiceAccount, serves a model and renders a Lane: no 403 anywhere."""
    kubeconfig = service_account_kubeconfig(tools, "dayzero-operator", tmp_path / "sa.kubeconfig")
    # $KUBECONFIG, not --kubeconfig: kubernetes' client reads the variable once, at import, so
    # kopf's login would not see a path set later by the flag.
    env = tools.env | {"KUBECONFIG": str(kubeconfig)}
    lane = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "Lane",
        "metadata": {"name": "chart-chat"},
        "spec": {
            "model": "chart-chat",
            "backends": [{"name": "a", "modelDeploymentRef": {"name": "chart-8b"}}],
        },
    }
    with FakeHub(hub_repos()) as hub:
        op = Operator(env, hub.url, tmp_path / "operator.log")
        op.args = [
            "--routing-configmap",
            f"{NS}/dayzero-routing",
            "--metrics-port",
            "0",
        ]
        op.start()
        try:
            applied = tools.run(
                "kubectl",
                "apply",
                "-n",
                "models",
                "-f",
                "-",
                input_=mdep("chart-8b", LLAMA_8B) + "---\n" + yaml.safe_dump(lane),
            )
            assert applied.returncode == 0, applied.stderr

            def ready(kind: str, name: str) -> bool | None:
                obj = tools.json("get", kind, name, "-n", "models")
                conds = {
                    c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])
                }
                return True if conds.get("Ready") == "True" else None

            try:
                wait_until(lambda: ready("mdep", "chart-8b"), timeout=120, what="chart-8b Ready")
            except TimeoutError:
                status = tools.json("get", "mdep", "chart-8b", "-n", "models").get("status")
                log = (tmp_path / "operator.log").read_text()[-4000:]
                pytest.fail(f"chart-8b not Ready: {json.dumps(status)}\noperator log:\n{log}")
            wait_until(lambda: ready("lane", "chart-chat"), timeout=60, what="Lane Ready")
            routing = tools.json("get", "configmap", "dayzero-routing", "-n", NS)
            assert "chart-8b" in routing["data"]["routing.yaml"]
        finally:
            op.stop()
    log = (tmp_path / "operator.log").read_text()
    for denied in ("403", "Forbidden", "forbidden"):
        assert denied not in log, log[-3000:]
    # The routing ConfigMap is the operator's, not the release's: uninstall leaves it to be cleared.
    tools.kubectl("delete", "configmap", "dayzero-routing", "-n", NS)


def test_upgrade_with_changed_values(tools: Tools) -> None:
    sets = (
        "gateway.replicas=2",
        "redis.enabled=true",
        "watcher.schedule=*/5 * * * *",
        "operator.secretNames={hf-token}",
        "gateway.wakeFromZero.enabled=true",
        "priorityClass.create=true",
        "networkPolicy.enabled=true",
    )
    args = ["upgrade", RELEASE, str(CHART), "-n", NS, "--wait", "--timeout", "180s"]
    for s in sets:
        args += ["--set", s]
    helm_ok(tools.helm(*args))
    gateway = tools.json("get", "deployment", "dayzero-gateway", "-n", NS)
    assert gateway["spec"]["replicas"] == 2
    assert gateway["status"].get("availableReplicas") == 2
    env = {
        e["name"]: e.get("value")
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DAYZERO_REDIS_URL"] == f"redis://dayzero-redis.{NS}.svc:6379/0"
    assert (
        tools.json("get", "deployment", "dayzero-redis", "-n", NS)["status"].get(
            "availableReplicas"
        )
        == 1
    )
    assert tools.json("get", "cronjob", "dayzero-watcher", "-n", NS)["spec"]["schedule"] == (
        "*/5 * * * *"
    )
    assert tools.json("get", "priorityclass", "dayzero-serving")["value"] == 100000
    assert len(tools.json("get", "networkpolicies", "-n", NS)["items"]) == 4
    # The named Secret, and only it, became readable; the gateway may now wake deployments.
    assert tools.can("dayzero-operator", "get", "secrets/hf-token", "-n", "models")
    assert not tools.can("dayzero-operator", "get", "secrets/other", "-n", "models")
    assert not tools.can("dayzero-operator", "list", "secrets", "-n", "models")
    assert tools.can(
        "dayzero-gateway", "patch", "modeldeployments.dayzero.dev", "--subresource=status", "-A"
    )
    assert not tools.can("dayzero-gateway", "patch", "modeldeployments.dayzero.dev", "-A")
    assert tools.can(
        "dayzero-gateway", "patch", "modeldeployments.dayzero.dev", "--subresource=scale", "-A"
    )
    args = gateway["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--in-cluster" in args
    assert gateway["spec"]["template"]["spec"]["automountServiceAccountToken"] is True

    # The chart's CRDs accept the examples (some name the Secret hf-token, now readable).
    applied = tools.kubectl("apply", "--server-side", "-n", "models", "-f", str(ROOT / "examples"))
    assert applied.returncode == 0, applied.stderr

    # A bad upgrade is refused before anything changes, naming the field.
    bad = tools.helm(
        "upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values", "--set", "redis.enabled=false"
    )
    assert bad.returncode != 0
    assert "redis.enabled" in bad.stderr
    history = json.loads(helm_ok(tools.helm("history", RELEASE, "-n", NS, "-o", "json")))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]


def test_uninstall_leaves_only_the_kept_crds(tools: Tools) -> None:
    helm_ok(tools.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s"))

    def gone() -> bool | None:
        return True if not tools.leftovers(f"app.kubernetes.io/instance={RELEASE}") else None

    wait_until(gone, timeout=60, what="the release's objects to be deleted")
    # crds.keep (the default): the CRDs, and so the user's models, stay.
    for crd in CRDS:
        assert tools.kubectl("get", "crd", crd).returncode == 0, crd
    assert tools.json("get", "mdep", "-n", "models")["items"]


def test_uninstall_without_keep_removes_the_crds(tools: Tools) -> None:
    # The kept CRDs still carry the old release's ownership; clear them (and the models) first.
    helm_ok(tools.kubectl("delete", "crd", *CRDS, "--wait=true"))
    install(tools, "dz2", "crds.keep=false", "watcher.enabled=false")
    assert tools.kubectl("get", "crd", CRDS[0]).returncode == 0
    helm_ok(tools.helm("uninstall", "dz2", "-n", NS, "--wait", "--timeout", "120s"))

    def gone() -> bool | None:
        left = tools.leftovers("app.kubernetes.io/instance=dz2")
        crds = [c for c in CRDS if tools.kubectl("get", "crd", c).returncode == 0]
        return True if not left and not crds else None

    wait_until(gone, timeout=90, what="dz2's objects and CRDs to be deleted")
