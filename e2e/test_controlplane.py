"""The local control plane behaves like a real cluster with GPU nodes: the operator's e2e tests rely
on the pinned version, real scheduling against `nvidia.com/gpu`, Jobs completing, and RBAC."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from cluster import (
    GPU_PRODUCT_LABEL,
    H100_PRODUCT,
    ControlPlane,
    Kubectl,
    NodeSpec,
    h100_node,
    is_loopback,
    pinned_versions,
    wait_until,
)

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"


def _container(gpus: int | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/never-pulled:1"}
    if gpus is not None:
        container["resources"] = {"limits": {GPU: str(gpus)}}
    return container


def _pod(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = kubectl.json("get", "pod", name, "-n", namespace)
    return pod


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition["type"] == kind:
            found: dict[str, Any] = condition
            return found
    return None


def _wait_pod(
    kubectl: Kubectl, namespace: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        # The pod of a StatefulSet or Job may not exist yet: a failed get is "not yet".
        rc, out, _ = kubectl("get", "pod", name, "-n", namespace, "-o", "json")
        pod: dict[str, Any] = json.loads(out) if rc == 0 else {}
        return pod if pod.get("status", {}).get("phase") == phase else None

    return wait_until(reached, timeout=timeout, interval=0.3, what=f"pod {name} to be {phase}")


def _wait_unschedulable(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    def unschedulable() -> dict[str, Any] | None:
        condition = _condition(_pod(kubectl, namespace, name), "PodScheduled")
        return condition if condition and condition.get("reason") == "Unschedulable" else None

    return wait_until(unschedulable, timeout=60, interval=0.3, what=f"{name} to be Unschedulable")


def test_client_and_server_report_the_pinned_version(
    control_plane: ControlPlane, kubectl: Kubectl
) -> None:
    pinned = pinned_versions()["K8S_VERSION"]
    versions = kubectl.json("version")
    assert versions["clientVersion"]["gitVersion"] == pinned
    assert versions["serverVersion"]["gitVersion"] == pinned
    endpoint = control_plane.request("GET", "/version")
    assert endpoint["gitVersion"] == pinned
    assert (endpoint["major"], endpoint["minor"]) == ("1", pinned.split(".")[1])
    assert control_plane.server.startswith("https://127.0.0.1:")


def test_fake_nodes_are_ready_and_h100_nodes_expose_eight_gpus(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes", "-l", "type=kwok")["items"]
    gpu_nodes = [n for n in nodes if n["metadata"]["labels"].get(GPU_PRODUCT_LABEL) == H100_PRODUCT]
    cpu_nodes = [n for n in nodes if GPU not in n["status"]["allocatable"]]
    assert len(gpu_nodes) >= 4
    assert len(cpu_nodes) >= 1
    for node in nodes:
        ready = _condition(node, "Ready")
        assert ready is not None, node["metadata"]["name"]
        assert ready["status"] == "True", node["metadata"]["name"]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert all(
            is_loopback(a["address"])
            for a in node["status"]["addresses"]
            if a["type"] == "InternalIP"
        )
    for node in gpu_nodes:
        assert node["status"]["allocatable"][GPU] == "8"
        assert node["status"]["capacity"][GPU] == "8"
        assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == "8"
    zones = sorted(n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in gpu_nodes)
    assert zones.count("zone-a") >= 2
    assert zones.count("zone-b") >= 1


def test_statefulset_asking_eight_gpus_runs_on_an_h100_node(
    kubectl: Kubectl, namespace: str
) -> None:
    labels = {"app": "gpu-server"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gpu-server"},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 8000}]},
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "gpu-server"},
        "spec": {
            "serviceName": "gpu-server",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {GPU_PRODUCT_LABEL: H100_PRODUCT},
                    "containers": [_container(gpus=8)],
                },
            },
        },
    }
    kubectl.apply(service, statefulset, namespace=namespace)

    pod = _wait_pod(kubectl, namespace, "gpu-server-0", "Running")

    node = kubectl.json("get", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == H100_PRODUCT
    assert is_loopback(pod["status"]["podIP"]), pod["status"]["podIP"]
    ready = _condition(pod, "Ready")
    assert ready is not None
    assert ready["status"] == "True"

    def ready_replicas() -> bool | None:
        status = kubectl.json("get", "statefulset", "gpu-server", "-n", namespace)["status"]
        return True if status.get("readyReplicas") == 1 else None

    assert wait_until(ready_replicas, timeout=30, what="the StatefulSet to count its ready replica")


def test_pod_asking_nine_gpus_stays_pending_as_unschedulable(
    kubectl: Kubectl, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big"},
        "spec": {"containers": [_container(gpus=9)]},
    }
    kubectl.apply(pod, namespace=namespace)

    condition = _wait_unschedulable(kubectl, namespace, "too-big")

    assert condition["status"] == "False"
    assert f"Insufficient {GPU}" in condition["message"]
    got = _pod(kubectl, namespace, "too-big")
    assert got["status"]["phase"] == "Pending"
    assert "nodeName" not in got["spec"]


def test_job_pod_succeeds_and_the_job_completes(kubectl: Kubectl, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [_container()]}},
        },
    }
    kubectl.apply(job, namespace=namespace)

    def complete() -> dict[str, Any] | None:
        got: dict[str, Any] = kubectl.json("get", "job", "once", "-n", namespace)
        condition = _condition(got, "Complete")
        return got if condition and condition["status"] == "True" else None

    done = wait_until(complete, timeout=90, interval=0.5, what="the Job to complete")

    assert done["status"]["succeeded"] == 1
    assert not done["status"].get("failed")
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "job-name=once")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]


def test_rbac_forbids_a_service_account_without_bindings(kubectl: Kubectl, namespace: str) -> None:
    account = f"system:serviceaccount:{namespace}:default"

    rc, out, _ = kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={account}")
    assert (rc, out.strip()) == (1, "no")
    rc, _, err = kubectl("get", "pods", "-n", namespace, f"--as={account}")
    assert rc != 0
    assert "forbidden" in err.lower()
    # The admin can, so the "no" above is RBAC speaking and not a broken request.
    rc, out, _ = kubectl("auth", "can-i", "list", "pods", "-n", namespace)
    assert (rc, out.strip()) == (0, "yes")

    # Binding the aggregated `view` role grants it: aggregation and RBAC both work.
    rc, _, err = kubectl(
        "create", "rolebinding", "view", "--clusterrole=view",
        f"--serviceaccount={namespace}:default", "-n", namespace,
    )  # fmt: skip
    assert rc == 0, err

    def allowed() -> bool | None:
        rc, out, _ = kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={account}")
        return True if (rc, out.strip()) == (0, "yes") else None

    assert wait_until(allowed, timeout=30, what="the rolebinding to take effect")


def test_nodes_can_be_added_cordoned_and_removed(
    control_plane: ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    name = f"h100-extra-{secrets.token_hex(3)}"
    base = h100_node(name, "zone-c")
    # The taint keeps other tests' pods off this node while it exists.
    taint = {"key": "dayzero.dev/e2e", "value": name, "effect": "NoSchedule"}
    spec = NodeSpec(base.name, {**base.labels, "dayzero.dev/e2e": name}, base.capacity, [taint])
    control_plane.add_node(spec)
    try:
        control_plane.wait_node_ready(name)
        control_plane.cordon(name)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pinned"},
            "spec": {
                "nodeSelector": {"dayzero.dev/e2e": name},
                "tolerations": [{**taint, "operator": "Equal"}],
                "containers": [_container(gpus=8)],
            },
        }
        kubectl.apply(pod, namespace=namespace)
        condition = _wait_unschedulable(kubectl, namespace, "pinned")
        assert "unschedulable" in condition["message"]

        control_plane.uncordon(name)
        running = _wait_pod(kubectl, namespace, "pinned", "Running")
        assert running["spec"]["nodeName"] == name
    finally:
        control_plane.remove_node(name)
    rc, _, err = kubectl("get", "node", name)
    assert (rc, "NotFound" in err) == (1, True)
    # The pod went with its node, as it does when a machine disappears.
    rc, _, err = kubectl("get", "pod", "pinned", "-n", namespace)
    assert (rc, "NotFound" in err) == (1, True)


def test_services_get_cluster_ips_on_loopback(kubectl: Kubectl, namespace: str) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    kubectl.apply(service, namespace=namespace)

    got = kubectl.json("get", "service", "web", "-n", namespace)

    # Something that dials a ClusterIP by mistake stays on this machine.
    assert is_loopback(got["spec"]["clusterIP"]), got["spec"]["clusterIP"]


def test_deleting_a_namespace_removes_its_workloads(kubectl: Kubectl, namespace: str) -> None:
    labels = {"app": "cpu-worker"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cpu-worker"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [_container()]}},
        },
    }
    kubectl.apply(deployment, namespace=namespace)

    def two_running() -> bool | None:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=cpu-worker")["items"]
        phases = [p["status"].get("phase") for p in pods]
        return True if phases == ["Running", "Running"] else None

    wait_until(two_running, timeout=60, interval=0.3, what="two Deployment pods Running")
    rc, _, err = kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=60s")
    assert rc == 0, err

    rc, _, err = kubectl("get", "namespace", namespace)
    assert (rc, "NotFound" in err) == (1, True)
    rc, out, _ = kubectl("get", "pods", "-n", namespace, "-o", "name")
    assert (rc, out) == (0, "")
