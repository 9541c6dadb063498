"""The generated CRDs on a real kube-apiserver: they install with server-side apply, accept every
example, reject bad objects with a message that names the field, and explain themselves."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def run_kubectl(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(
        ["kubectl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def kenv(control_plane) -> dict[str, str]:
    env = control_plane.env()
    out = run_kubectl(env, "apply", "--server-side", "--field-manager=dayzero-e2e", "-f", "crds/")
    assert out.returncode == 0, out.stderr
    waited = run_kubectl(
        env,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modeldeployments.dayzero.dev",
        "crd/lanes.dayzero.dev",
        "crd/gauntlets.dayzero.dev",
    )
    assert waited.returncode == 0, waited.stderr
    return env


def test_crds_install_with_server_side_apply_and_are_idempotent(kenv):
    again = run_kubectl(
        kenv, "apply", "--server-side", "--field-manager=dayzero-e2e", "-f", "crds/"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("serverside-applied") == 3
    names = run_kubectl(kenv, "api-resources", "--api-group=dayzero.dev", "-o", "name")
    assert sorted(names.stdout.split()) == [
        "gauntlets.dayzero.dev",
        "lanes.dayzero.dev",
        "modeldeployments.dayzero.dev",
    ]


def test_every_example_is_accepted(kenv, namespace):
    out = run_kubectl(kenv, "apply", "--server-side", "-n", namespace, "-f", "examples/")
    assert out.returncode == 0, out.stderr
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert out.stdout.count("serverside-applied") == len(examples)
    # Short names work and defaults were filled in by the API server.
    got = run_kubectl(kenv, "get", "mdep", "llama-3-1-8b", "-n", namespace, "-o", "json")
    spec = json.loads(got.stdout)["spec"]
    assert spec["resources"]["gpuKind"] == "h100-80gb"
    assert spec["resources"]["tensorParallel"] == "auto"
    assert spec["replicas"] == 1
    assert spec["engine"] == {
        "kind": "auto",
        "allowFallback": True,
        "maxFallbackAttempts": 3,
        "distributedBackend": "native",
    }
    assert run_kubectl(kenv, "get", "gnt,lane", "-n", namespace).returncode == 0


def test_scale_subresource(kenv, namespace):
    path = ROOT / "examples" / "llama-3.1-8b.yaml"
    assert run_kubectl(kenv, "apply", "-n", namespace, "-f", str(path)).returncode == 0
    scaled = run_kubectl(kenv, "scale", "mdep", "llama-3-1-8b", "-n", namespace, "--replicas=0")
    assert scaled.returncode == 0, scaled.stderr
    got = run_kubectl(
        kenv, "get", "mdep", "llama-3-1-8b", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert got.stdout == "0"


def test_printer_columns(kenv, namespace):
    path = ROOT / "examples" / "llama-3.1-8b.yaml"
    assert run_kubectl(kenv, "apply", "-n", namespace, "-f", str(path)).returncode == 0
    header = run_kubectl(kenv, "get", "mdep", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "ENGINE", "GPUS", "ENDPOINT", "AGE"]


def test_kubectl_explain_shows_field_docs(kenv):
    out = run_kubectl(kenv, "explain", "modeldeployment.spec.resources")
    assert out.returncode == 0, out.stderr
    assert "GPU kind and parallelism" in out.stdout
    assert "tensorParallel" in out.stdout
    assert "Must divide the attention heads" in out.stdout
    deeper = run_kubectl(kenv, "explain", "lane.spec.circuitBreaker.consecutiveTimeouts")
    assert "Consecutive timeouts" in deeper.stdout


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / name).read_text())


def _mdep(**resources: Any) -> dict[str, Any]:
    doc = _load("llama-3.1-8b.yaml")
    doc["spec"]["resources"] = resources
    return doc


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf)
    else:
        node[leaf] = value
    return doc


_DELETE = object()
MDEP = _load("llama-3.1-8b.yaml")
LANE = _load("lane-alert-fast.yaml")
GNT = _load("gauntlet-preview.yaml")
PROVIDER = {"provider": "openai", "model": "gpt-5", "apiKeySecretRef": {"name": "k"}}
URL = {"url": "http://127.0.0.1:9", "api": "openai"}

# (id, object, text the API server's message must contain: the field and the rule).
INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "two-sources",
        _with(MDEP, "spec.source.provider", PROVIDER),
        ["spec.source", "exactly one of spec.source.hub and spec.source.provider"],
    ),
    ("no-source", _with(MDEP, "spec.source.hub", _DELETE), ["spec.source", "exactly one of"]),
    ("gpu-kind", _mdep(gpuKind="h100"), ["spec.resources.gpuKind", "Unsupported value"]),
    ("gpus-per-node", _mdep(gpusPerNode=9), ["spec.resources.gpusPerNode", "less than or equal"]),
    (
        "tp-times-pp",
        _mdep(gpusPerNode=8, nodes=1, tensorParallel=4, pipelineParallel=1),
        ["spec.resources.tensorParallel", "tensorParallel x pipelineParallel must equal"],
    ),
    (
        "tp-beyond-node",
        _mdep(gpusPerNode=8, nodes=2, tensorParallel=16, pipelineParallel=1),
        ["spec.resources.tensorParallel", "within one node"],
    ),
    ("tp-word", _mdep(tensorParallel="four"), ["spec.resources.tensorParallel"]),
    ("replicas", _with(MDEP, "spec.replicas", -1), ["spec.replicas", "greater than or equal"]),
    (
        "min-over-max",
        _with(MDEP, "spec.scaling", {"minReplicas": 3, "maxReplicas": 2}),
        ["spec.scaling.minReplicas", "must not exceed maxReplicas"],
    ),
    (
        "two-caches",
        _with(MDEP, "spec.weightCache", {"existingClaim": "a", "sharedPath": "/mnt/x"}),
        ["spec.weightCache", "at most one of pvc, existingClaim and sharedPath"],
    ),
    (
        "repo-pattern",
        _with(MDEP, "spec.source.hub.repo", "no-slash"),
        ["spec.source.hub.repo", "should match"],
    ),
    (
        "idle-after",
        _with(MDEP, "spec.scaling", {"idleAfter": "ten minutes"}),
        ["spec.scaling.idleAfter"],
    ),
    ("unknown-field", _with(MDEP, "spec.gpus", 8), [".spec.gpus: field not declared in schema"]),
    (
        "backend-two-kinds",
        _with(LANE, "spec.backends", [{"name": "a", "url": URL, "provider": PROVIDER}]),
        ["spec.backends[0]", "exactly one of modelDeploymentRef, url and provider"],
    ),
    ("no-backends", _with(LANE, "spec.backends", []), ["spec.backends", "at least 1 items"]),
    (
        "shadow-without-legacy",
        _with(LANE, "spec.mode", "shadow"),
        ["spec.legacyUrl", "needs spec.legacyUrl"],
    ),
    (
        "duplicate-backends",
        _with(LANE, "spec.backends", [{"name": "a", "url": URL}, {"name": "a", "url": URL}]),
        ["spec.backends", "unique"],
    ),
    ("bad-tag-key", _with(LANE, "spec.tags", {"Bad_Key": "x"}), ["spec.tags", "keys must"]),
    (
        "reserved-over-max",
        _with(LANE, "spec.concurrency", {"reserved": 9, "max": 8}),
        ["spec.concurrency.reserved", "must not exceed max"],
    ),
    (
        "model-and-tag",
        _with(LANE, "spec.tag", "preview"),
        ["spec", "exactly one of spec.model and spec.tag"],
    ),
    ("no-targets", _with(GNT, "spec.targets", []), ["spec.targets", "at least 1 items"]),
    (
        "diff-without-baseline",
        _with(GNT, "spec.baseline", _DELETE),
        ["spec.baseline", "the diff suite needs spec.baseline"],
    ),
    (
        "p95-over-max",
        _with(GNT, "spec.gates", {"p95Seconds": 50, "maxSeconds": 40}),
        ["spec.gates.p95Seconds", "must not exceed maxSeconds"],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_object_is_rejected_naming_the_field(kenv, namespace, doc, expected):
    out = run_kubectl(
        kenv, "apply", "--server-side", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc)
    )
    assert out.returncode != 0, f"accepted: {out.stdout}"
    for text in expected:
        assert text in out.stderr, out.stderr
    # Nothing half-applied: the object does not exist.
    kind = doc["kind"].lower()
    name = doc["metadata"]["name"]
    assert run_kubectl(kenv, "get", kind, name, "-n", namespace).returncode != 0
