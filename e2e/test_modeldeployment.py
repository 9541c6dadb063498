"""The ModelDeployment controller on the real control plane, with fake 8xH100 nodes.

The operator runs as a real process (`dayzero operator`) against the local API server, and reads
model metadata from a fake Hub on loopback through the real huggingface-hub client.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.hub import FakeHub, FakeModel

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "planner" / "fixtures"
UNSUPPORTED_IMAGE = "registry.dayzero.test/engine:unsupported-architecture"
CRASHLOOP_IMAGE = "registry.dayzero.test/engine:crashloop"
OOM_IMAGE = "registry.dayzero.test/engine:oom"
SHA_A = "a" * 40
SHA_B = "b" * 40


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        ["kubectl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def get_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(kubectl(env, "get", *args, "-o", "json"))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError, KeyError, IndexError, TypeError, StopIteration):
            last = check()
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_)


def mdep(name: str, repo: str, revision: str = "main", **spec: Any) -> str:
    doc = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"source": {"hub": {"repo": repo, "revision": revision}}, **spec},
    }
    return yaml.safe_dump(doc)


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


PARAMETERS = {
    "llama-3.1-8b": {"BF16": 8_030_261_248},
    "llama-3.1-70b": {"BF16": 70_553_706_496},
    "llama-3.1-405b": {"BF16": 405_853_388_800},
}
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
LLAMA_405B = "meta-llama/Llama-3.1-405B-Instruct"
FANCY = "newlab/Fancy-8B"
GATED = "meta-llama/Llama-5-Secret"


def repo(repo_id: str, fixture: str, sha: str = SHA_A, **kw: Any) -> FakeModel:
    return FakeModel(
        repo=repo_id,
        sha=sha,
        config=load_fixture(f"{fixture}.json"),
        parameters=PARAMETERS.get(fixture, {}),
        **kw,
    )


def hub_repos() -> list[FakeModel]:
    fancy = load_fixture("llama-3.1-8b.json") | {"architectures": ["FancyNewForCausalLM"]}
    return [
        repo(LLAMA_8B, "llama-3.1-8b"),
        repo(LLAMA_70B, "llama-3.1-70b"),
        repo(LLAMA_405B, "llama-3.1-405b"),
        FakeModel(repo=FANCY, sha=SHA_A, config=fancy, parameters=PARAMETERS["llama-3.1-8b"]),
        repo(GATED, "llama-3.1-8b", gated="manual"),
    ]


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with FakeHub(hub_repos()) as fake:
        yield fake


@pytest.fixture(scope="module")
def kenv(control_plane) -> dict[str, str]:
    env = control_plane.env()
    kubectl(env, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return env


class Operator:
    """`dayzero operator` as a real process that a test can kill and restart."""

    def __init__(self, env: dict[str, str], hub_url: str, log: Path) -> None:
        self.env = env | {"HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_TELEMETRY": "1"}
        self.log = log
        self.args: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dayzero.cli", "operator", "--workers", "8", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def operator(kenv, hub, tmp_path_factory) -> Iterator[Operator]:
    op = Operator(
        kenv,
        hub.url,
        Path(
            os.environ.get(
                "DAYZERO_OPERATOR_LOG", str(tmp_path_factory.mktemp("operator") / "operator.log")
            )
        ),
    )
    op.start()
    yield op
    op.stop()


def ready(env: dict[str, str], ns: str, name: str) -> dict[str, Any] | None:
    obj = get_json(env, "mdep", name, "-n", ns)
    return obj if condition(obj, "Ready")["status"] == "True" else None


def children(
    env: dict[str, str], ns: str, name: str, kinds: str = "sts,pod,svc,job,pvc"
) -> list[str]:
    out = kubectl(
        env, "get", kinds, "-n", ns, "-l", f"dayzero.dev/model-deployment={name}", "-o", "name"
    )
    return out.split()


def test_8b_on_one_gpu(operator, kenv, namespace):
    kubectl(kenv, "apply", "-n", namespace, "-f", "-", stdin=mdep("llama-8b", LLAMA_8B))
    obj = wait_for("8B Ready", lambda: ready(kenv, namespace, "llama-8b"))
    status = obj["status"]
    assert status["plan"]["gpus"] == 1
    assert status["plan"]["tensorParallel"] == 1
    assert status["engine"] == "vllm"
    assert status["resolvedRevision"] == SHA_A
    assert status["endpoint"] == f"http://llama-8b.{namespace}.svc:8000/v1"
    for type_ in ("WeightsResolved", "WeightsCached", "Scheduled", "EngineLoaded", "Ready"):
        assert condition(obj, type_)["status"] == "True", type_
        assert condition(obj, type_)["observedGeneration"] == obj["metadata"]["generation"]
    sts = get_json(kenv, "sts", "-n", namespace, "-l", "dayzero.dev/model-deployment=llama-8b")
    [item] = sts["items"]
    engine = item["spec"]["template"]["spec"]["containers"][0]
    assert engine["resources"]["limits"]["nvidia.com/gpu"] in (1, "1")
    assert "--revision" in engine["args"] or any(SHA_A in a for a in engine.get("args", []))
    pods = get_json(
        kenv,
        "pods",
        "-n",
        namespace,
        "-l",
        "dayzero.dev/model-deployment=llama-8b,dayzero.dev/component=serving",
    )
    assert [p["status"]["phase"] for p in pods["items"]] == ["Running"]
    assert pods["items"][0]["spec"]["nodeName"].startswith("h100")
    events = kubectl(
        kenv,
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=llama-8b",
        "-o",
        "jsonpath={.items[*].reason}",
    )
    assert "Serving" in events


def apply(env: dict[str, str], ns: str, doc: str) -> None:
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=doc)


def engine_args(env: dict[str, str], ns: str, name: str) -> list[str]:
    sts = get_json(env, "sts", "-n", ns, "-l", f"dayzero.dev/model-deployment={name}")
    container = sts["items"][0]["spec"]["template"]["spec"]["containers"][0]
    return [*container.get("command", []), *container.get("args", [])]


def delete_and_wait_gone(env: dict[str, str], ns: str, name: str) -> None:
    kubectl(env, "delete", "mdep", name, "-n", ns, "--wait=true")
    wait_for(f"{name}'s children gone", lambda: children(env, ns, name) == [], timeout=60)


def test_70b_on_tp4(operator, kenv, namespace):
    apply(kenv, namespace, mdep("llama-70b", LLAMA_70B))
    obj = wait_for("70B Ready", lambda: ready(kenv, namespace, "llama-70b"))
    assert (obj["status"]["plan"]["gpus"], obj["status"]["plan"]["tensorParallel"]) == (4, 4)
    args = " ".join(engine_args(kenv, namespace, "llama-70b"))
    assert "--tensor-parallel-size 4" in args
    delete_and_wait_gone(kenv, namespace, "llama-70b")


def test_405b_spans_two_nodes_with_ranks_and_leader(operator, kenv, namespace):
    apply(kenv, namespace, mdep("llama-405b", LLAMA_405B))
    obj = wait_for("405B Ready", lambda: ready(kenv, namespace, "llama-405b"), timeout=90)
    plan = obj["status"]["plan"]
    assert (
        plan["nodes"],
        plan["gpusPerNode"],
        plan["tensorParallel"],
        plan["pipelineParallel"],
    ) == (
        2,
        8,
        8,
        2,
    )
    pods = get_json(
        kenv,
        "pods",
        "-n",
        namespace,
        "-l",
        "dayzero.dev/model-deployment=llama-405b,dayzero.dev/component=serving",
    )["items"]
    assert len(pods) == 2
    assert len({p["spec"]["nodeName"] for p in pods}) == 2, "one pod per node"
    ranks = sorted(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for p in pods)
    assert ranks == ["0", "1"]
    args = " ".join(engine_args(kenv, namespace, "llama-405b"))
    assert "--pipeline-parallel-size 2" in args
    assert "--nnodes 2" in args
    sts_name = get_json(
        kenv, "sts", "-n", namespace, "-l", "dayzero.dev/model-deployment=llama-405b"
    )["items"][0]["metadata"]["name"]
    assert f"{sts_name}-0.{sts_name}" in args, "workers dial the leader by its stable DNS name"
    delete_and_wait_gone(kenv, namespace, "llama-405b")


def test_405b_with_one_free_node_is_unschedulable(operator, kenv, namespace, control_plane):
    gpu_nodes = sorted(
        n["metadata"]["name"]
        for n in get_json(kenv, "nodes", "-l", "nvidia.com/gpu.product")["items"]
    )
    for node in gpu_nodes[1:]:
        kubectl(kenv, "cordon", node)
    try:
        apply(kenv, namespace, mdep("big", LLAMA_405B))

        def unschedulable() -> dict[str, Any] | None:
            obj = get_json(kenv, "mdep", "big", "-n", namespace)
            scheduled = condition(obj, "Scheduled")
            return scheduled if scheduled["reason"] == "Unschedulable" else None

        scheduled = wait_for("Unschedulable", unschedulable)
        assert "needs 16 GPUs" in scheduled["message"]
        assert "largest free block is 8" in scheduled["message"]
        obj = get_json(kenv, "mdep", "big", "-n", namespace)
        assert condition(obj, "Ready")["status"] == "False"
    finally:
        for node in gpu_nodes[1:]:
            kubectl(kenv, "uncordon", node)
    delete_and_wait_gone(kenv, namespace, "big")


def test_unsupported_architecture_falls_back_to_transformers(operator, kenv, namespace):
    apply(kenv, namespace, mdep("fancy", FANCY, engine={"image": UNSUPPORTED_IMAGE}))
    obj = wait_for("fallback Ready", lambda: ready(kenv, namespace, "fancy"), timeout=90)
    assert obj["status"]["engine"] == "transformers"
    assert obj["status"]["engineAttempts"] == 3
    loaded = condition(obj, "EngineLoaded")
    assert loaded["reason"] == "FellBack"
    assert condition(obj, "Degraded")["status"] == "True"
    assert "fallback engine transformers" in condition(obj, "Degraded")["message"]
    events = kubectl(
        kenv,
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=fancy",
        "-o",
        "jsonpath={.items[*].message}",
    )
    assert "UnsupportedArchitecture" in events
    assert "FancyNewForCausalLM" in events
    args = " ".join(engine_args(kenv, namespace, "fancy"))
    assert "transformers serve" in args or "serve" in args
    delete_and_wait_gone(kenv, namespace, "fancy")


def test_crash_loop_is_never_ready(operator, kenv, namespace):
    apply(kenv, namespace, mdep("crashy", LLAMA_8B, engine={"image": CRASHLOOP_IMAGE}))

    def crash_looping() -> dict[str, Any] | None:
        obj = get_json(kenv, "mdep", "crashy", "-n", namespace)
        return obj if condition(obj, "Ready")["reason"] == "CrashLoop" else None

    obj = wait_for("CrashLoop", crash_looping)
    assert obj["status"]["engine"] == "vllm", "a crash is not a reason to change engines"
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        obj = get_json(kenv, "mdep", "crashy", "-n", namespace)
        assert condition(obj, "Ready")["status"] == "False"
        time.sleep(0.5)
    delete_and_wait_gone(kenv, namespace, "crashy")


def test_gated_repo_surfaces_and_creates_nothing(operator, kenv, namespace):
    apply(kenv, namespace, mdep("gated", GATED))

    def gated() -> dict[str, Any] | None:
        obj = get_json(kenv, "mdep", "gated", "-n", namespace)
        return obj if condition(obj, "WeightsResolved")["reason"] == "GatedRepo" else None

    wait_for("GatedRepo", gated)
    assert children(kenv, namespace, "gated") == []


def test_revision_change_surges(operator, kenv, namespace, hub):
    surge_repo = "meta-llama/Llama-3.1-8B-Surge"
    hub.add(repo(surge_repo, "llama-3.1-8b"))
    apply(kenv, namespace, mdep("surge", surge_repo, revision="main"))
    wait_for("rev A Ready", lambda: ready(kenv, namespace, "surge"))
    old = get_json(kenv, "svc", "surge", "-n", namespace)["spec"]["selector"][
        "dayzero.dev/serving-hash"
    ]
    watcher = subprocess.Popen(
        [
            "kubectl",
            "get",
            "sts",
            "-n",
            namespace,
            "-l",
            "dayzero.dev/model-deployment=surge",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ],
        env=kenv,
        stdout=subprocess.PIPE,
        text=True,
    )
    not_ready_seen = []
    try:
        time.sleep(0.5)  # let the watch list what exists
        # Day 2: a new commit lands on a new branch, and the spec moves to it.
        hub.add(repo(surge_repo, "llama-3.1-8b", sha=SHA_B, branches=("main", "v2")))
        apply(kenv, namespace, mdep("surge", surge_repo, revision="v2"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            obj = get_json(kenv, "mdep", "surge", "-n", namespace)
            if condition(obj, "Ready")["status"] != "True":
                not_ready_seen.append(condition(obj, "Ready"))
            routed = get_json(kenv, "svc", "surge", "-n", namespace)["spec"]["selector"]
            done = (
                obj["status"].get("resolvedRevision") == SHA_B
                and condition(obj, "Ready")["status"] == "True"
                and routed["dayzero.dev/serving-hash"] != old
            )
            if done and len(children(kenv, namespace, "surge", "sts")) == 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the surge did not finish in 60 s")
    finally:
        time.sleep(0.5)
        watcher.terminate()
        stream = watcher.communicate(timeout=10)[0]
    new = get_json(kenv, "svc", "surge", "-n", namespace)["spec"]["selector"][
        "dayzero.dev/serving-hash"
    ]
    assert new != old
    # Traffic never stopped: the deployment stayed Ready throughout.
    assert not_ready_seen == []
    # Both groups existed at once: the old one was retired only after the new one came up.
    decoder = json.JSONDecoder()
    live: set[str] = set()
    both_at_once = False
    pos = 0
    while pos < len(stream):
        while pos < len(stream) and stream[pos].isspace():
            pos += 1
        if pos >= len(stream):
            break
        event, pos = decoder.raw_decode(stream, pos)
        hash_ = event["object"]["metadata"]["labels"]["dayzero.dev/serving-hash"]
        if event["type"] == "DELETED":
            live.discard(hash_)
        else:
            live.add(hash_)
        both_at_once |= {old, new} <= live
    assert both_at_once
    assert live == {new}


def test_scale_to_zero_and_back(operator, kenv, namespace):
    apply(kenv, namespace, mdep("scaler", LLAMA_8B))
    wait_for("Ready", lambda: ready(kenv, namespace, "scaler"))
    kubectl(kenv, "scale", "mdep", "scaler", "-n", namespace, "--replicas=0")
    wait_for("no StatefulSet", lambda: children(kenv, namespace, "scaler", "sts") == [])
    obj = wait_for(
        "ScaledToZero",
        lambda: (
            (o := get_json(kenv, "mdep", "scaler", "-n", namespace))
            and condition(o, "Ready")["reason"] == "ScaledToZero"
            and o
        ),
    )
    assert obj["status"]["phase"] == "Suspended"
    kubectl(kenv, "scale", "mdep", "scaler", "-n", namespace, "--replicas=1")
    wait_for("Ready again", lambda: ready(kenv, namespace, "scaler"))


def test_delete_leaves_nothing_behind(operator, kenv, namespace):
    apply(kenv, namespace, mdep("gone", LLAMA_8B))
    wait_for("Ready", lambda: ready(kenv, namespace, "gone"))
    assert children(kenv, namespace, "gone", "sts,svc,job")
    delete_and_wait_gone(kenv, namespace, "gone")


def test_provider_model_gets_no_pods(operator, kenv, namespace, hub):
    doc = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "claude"},
        "spec": {
            "source": {
                "provider": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "apiKeySecretRef": {"name": "anthropic", "key": "api-key"},
                    "baseUrl": hub.url,  # any loopback HTTP server stands in for the provider
                }
            }
        },
    }
    apply(kenv, namespace, yaml.safe_dump(doc))
    obj = wait_for("provider Ready", lambda: ready(kenv, namespace, "claude"))
    assert obj["status"]["engine"] == "anthropic"
    assert obj["status"]["endpoint"] == hub.url
    assert children(kenv, namespace, "claude") == []


@pytest.mark.timeout(300)
def test_operator_killed_mid_reconcile_converges_without_duplicates(operator, kenv, namespace):
    count = 12
    docs = "---\n".join(mdep(f"m{i}", LLAMA_8B) for i in range(count))
    apply(kenv, namespace, docs)
    time.sleep(1.0)
    operator.kill()
    operator.start()

    def all_ready() -> bool:
        objs = get_json(kenv, "mdep", "-n", namespace)["items"]
        return len(objs) == count and all(condition(o, "Ready")["status"] == "True" for o in objs)

    wait_for("all Ready after restart", all_ready, timeout=120)
    sts = get_json(kenv, "sts", "-n", namespace)["items"]
    assert len(sts) == count
    jobs = get_json(kenv, "jobs", "-n", namespace)["items"]
    assert len(jobs) == 1, "one download Job for the one (repo, SHA) they share"


def test_idle_scale_to_zero_never_writes_the_spec(operator, kenv, namespace):
    apply(kenv, namespace, mdep("idler", LLAMA_8B, scaling={"idleAfter": "3s"}))
    wait_for("Ready", lambda: ready(kenv, namespace, "idler"))
    spec_before = get_json(kenv, "mdep", "idler", "-n", namespace)["spec"]

    def idled() -> dict[str, Any] | None:
        obj = get_json(kenv, "mdep", "idler", "-n", namespace)
        return obj if condition(obj, "Ready")["reason"] == "IdleScaledToZero" else None

    obj = wait_for("idle scale-down", idled, timeout=30)
    assert obj["spec"] == spec_before, "idleness lives in status, never in the spec"
    wait_for("no StatefulSet", lambda: children(kenv, namespace, "idler", "sts") == [])
    # The gateway reports a use (its own field manager on the status): the model comes back.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    kubectl(
        kenv,
        "patch",
        "mdep",
        "idler",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"lastUsedTime": now}}),
    )
    wait_for("woken", lambda: ready(kenv, namespace, "idler"), timeout=30)


def test_out_of_memory_surfaces_and_never_falls_back(operator, kenv, namespace):
    apply(kenv, namespace, mdep("oomer", LLAMA_8B, engine={"image": OOM_IMAGE}))

    def oom() -> dict[str, Any] | None:
        obj = get_json(kenv, "mdep", "oomer", "-n", namespace)
        return obj if condition(obj, "EngineLoaded")["reason"] == "OutOfMemory" else None

    obj = wait_for("OutOfMemory", oom)
    assert obj["status"]["engine"] == "vllm"
    assert obj["status"]["engineAttempts"] == 1
    assert condition(obj, "Ready")["status"] == "False"
    assert "CUDA out of memory" in condition(obj, "EngineLoaded")["message"]
