"""The Gauntlet controller on the real control plane, its Job's command run against a real model.

The operator runs as a real process. A Gauntlet becomes a Job whose pod kwok cannot place (the
operator's `--gauntlet-node-selector` matches no node), so nothing in the fake cluster pretends to
evaluate. The test runs the Job's own container command on this machine instead: the Job's env,
the spec ConfigMap's content in place of its mount, `--url-map` from the deployment's in-cluster
endpoint to SmolLM2-135M-Instruct under `transformers serve` on 127.0.0.1 (`make model-env`), and
a kubeconfig holding a token of the Job's own ServiceAccount, so the result travels back through
the least-privilege RBAC the operator created. Nothing but loopback is dialled.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import test_gateway_real_model as real
from fakes.hub import FakeHub
from model.cache import model_dir
from test_modeldeployment import (
    LLAMA_8B,
    SHA_A,
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
model = real.model  # the module-scoped `transformers serve` fixture, reused as it is
IMAGE = "registry.dayzero.test/dayzero:e2e"
NO_NODE = "dayzero.dev/e2e-evaluation-pool=none"
MDEP = "smollm2"
RUN_S = 300


@pytest.fixture(scope="module")
def world(control_plane, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """CRDs, a namespace, a Ready ModelDeployment, a Lane over it, and the operator."""
    env = control_plane.env()
    kubectl(env, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    ns = f"gauntlet-{os.getpid()}"
    kubectl(env, "create", "namespace", ns)
    wait_for("default SA", lambda: kubectl(env, "get", "sa", "default", "-n", ns))
    tmp = tmp_path_factory.mktemp("gauntlet")
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
            "--gauntlet-image",
            IMAGE,
            "--gauntlet-node-selector",
            NO_NODE,
        ]
        op.start()
        try:
            kubectl(env, "apply", "-n", ns, "-f", "-", stdin=mdep(MDEP, LLAMA_8B))
            obj = wait_for(f"{MDEP} Ready", lambda: _ready(env, ns, MDEP), timeout=120)
            kubectl(env, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(LANE))
            yield {"env": env, "ns": ns, "tmp": tmp, "endpoint": obj["status"]["endpoint"]}
        finally:
            op.stop()
            kubectl(env, "delete", "namespace", ns, "--wait=false")


LANE = {
    "apiVersion": "dayzero.dev/v1alpha1",
    "kind": "Lane",
    "metadata": {"name": "chat"},
    "spec": {"model": "chat", "backends": [{"name": "a", "modelDeploymentRef": {"name": MDEP}}]},
}


def _ready(env: dict[str, str], ns: str, name: str) -> dict[str, Any] | None:
    obj = get_json(env, "mdep", name, "-n", ns)
    return obj if condition(obj, "Ready")["status"] == "True" else None


def gauntlet_yaml(
    name: str, gates: dict[str, float], suites: dict[str, Any], concurrency: int = 2
) -> str:
    every = ("sanity", "compliance", "latency", "stability", "toolCalls", "quality", "diff")
    doc = {
        "apiVersion": "dayzero.dev/v1alpha1",
        "kind": "Gauntlet",
        "metadata": {"name": name},
        "spec": {
            # `transformers serve` answers to the weights' path, not the deployment's name.
            "targets": [{"modelDeploymentRef": {"name": MDEP}, "model": str(model_dir())}],
            "suites": {s: suites.get(s, {"enabled": False}) for s in every},
            "gates": gates,
            "concurrency": concurrency,
            "promotion": {"lane": "chat"},
        },
    }
    return yaml.safe_dump(doc)


def gauntlet(world: dict[str, Any], name: str) -> dict[str, Any]:
    return get_json(world["env"], "gauntlet", name, "-n", world["ns"])


def the_job(world: dict[str, Any], name: str) -> dict[str, Any]:
    job_name = wait_for(f"{name} jobName", lambda: gauntlet(world, name)["status"]["jobName"])
    return get_json(world["env"], "job", job_name, "-n", world["ns"])


def token_kubeconfig(world: dict[str, Any], service_account: str) -> Path:
    """A kubeconfig that authenticates as the Job's ServiceAccount, by a token the API issues."""
    env, ns = world["env"], world["ns"]
    token = kubectl(env, "create", "token", service_account, "-n", ns, "--duration=1h").strip()
    admin = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    assert "127.0.0.1" in cluster["cluster"]["server"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "job", "context": {"cluster": cluster["name"], "user": service_account}}
        ],
        "current-context": "job",
    }
    path = world["tmp"] / f"{service_account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def run_job_locally(
    world: dict[str, Any], job: dict[str, Any], served_url: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The Job's container command on this machine, with the Job's env and its identity."""
    ns, name = world["ns"], job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    spec_volume = next(v for v in pod["volumes"] if v["name"] == "spec")
    spec_cm = get_json(world["env"], "configmap", spec_volume["configMap"]["name"], "-n", ns)
    here = world["tmp"] / name
    (here / "home").mkdir(parents=True)
    spec_file = here / "spec.yaml"
    spec_file.write_text(spec_cm["data"]["spec.yaml"])
    out = here / "report"
    argv = list(container["command"])
    assert argv[0] == "dayzero"
    argv[0] = str(real.DAYZERO)
    argv[argv.index("--spec") + 1] = str(spec_file)
    argv[argv.index("--out") + 1] = str(out)
    in_cluster = world["endpoint"].removesuffix("/v1")
    argv += ["--url-map", f"{in_cluster}={served_url}"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env |= {
        "HOME": str(here / "home"),  # the pod's /tmp emptyDir
        "PATH": os.environ["PATH"],
        "KUBECONFIG": str(token_kubeconfig(world, pod["serviceAccountName"])),
    }
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=RUN_S, check=False, cwd=here
    )
    return done, out


def sa_env(world: dict[str, Any], kubeconfig: Path) -> dict[str, str]:
    """kubectl as the Job's ServiceAccount; its discovery cache stays in the test's folder."""
    return {"PATH": os.environ["PATH"], "KUBECONFIG": str(kubeconfig), "HOME": str(world["tmp"])}


def can_i(world: dict[str, Any], kubeconfig: Path, *args: str) -> bool:
    out = subprocess.run(
        ["kubectl", "auth", "can-i", *args, "-n", world["ns"]],
        env=sa_env(world, kubeconfig),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip() == "yes"


def events(world: dict[str, Any], name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=Gauntlet,involvedObject.name={name}"
    items = get_json(world["env"], "events", "-n", world["ns"], "--field-selector", selector)
    return list(items["items"])


def lane_status(world: dict[str, Any]) -> dict[str, Any]:
    return get_json(world["env"], "lane", "chat", "-n", world["ns"]).get("status", {})


def routing_tags(world: dict[str, Any]) -> dict[str, Any]:
    cm = get_json(world["env"], "configmap", "dayzero-routing", "-n", world["ns"])
    return dict(yaml.safe_load(cm["data"]["routing.yaml"]).get("tags") or {})


def check_job(world: dict[str, Any], job: dict[str, Any]) -> str:
    """The Job the operator made: image, command, env, volumes, identity; its result ConfigMap."""
    ns = world["ns"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    result_cm = container["command"][-1].split("/", 1)[1]
    assert container["image"] == IMAGE
    assert container["command"][:3] == ["dayzero", "gauntlet", "run"]
    assert container["command"][-2] == "--result-configmap"
    assert container["command"][-1] == f"{ns}/{result_cm}"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {
        "/etc/dayzero/gauntlet",
        "/var/run/dayzero/report",
        "/tmp",
    }
    assert any(e["name"] == "DAYZERO_EVAL_KEY" for e in container["env"])
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["controller"]) == ("Gauntlet", True)
    assert pod["serviceAccountName"] == f"{owner['name']}-gauntlet"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == dict([NO_NODE.split("=")])
    return result_cm


def check_least_privilege(world: dict[str, Any], job: dict[str, Any], result_cm: str) -> None:
    """What the Job's token may do, as the API server's authorizer sees it."""
    ns = world["ns"]
    pod = job["spec"]["template"]["spec"]
    sa_config = token_kubeconfig(world, pod["serviceAccountName"])
    assert can_i(world, sa_config, "patch", f"configmaps/{result_cm}")
    assert not can_i(world, sa_config, "patch", "configmaps/dayzero-routing")
    assert not can_i(world, sa_config, "create", "configmaps")
    assert not can_i(world, sa_config, "get", "secrets")
    assert not can_i(world, sa_config, "patch", "lanes.dayzero.dev/chat")
    refused = subprocess.run(
        ["kubectl", "-n", ns, "patch", "configmap", "dayzero-routing", "-p", '{"data":{"x":"1"}}'],
        env=sa_env(world, sa_config),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def check_reuse(world: dict[str, Any]) -> None:
    """The same evaluation again (same SHA, engine, suites and gates) is reused: no new Job."""
    env, ns = world["env"], world["ns"]
    again = gauntlet_yaml(
        "smollm2-again",
        {"p95Seconds": 60, "maxSeconds": 120},
        {
            "sanity": {"enabled": True},
            "latency": {"enabled": True, "requests": 3, "warmup": 1, "maxTokens": 8},
        },
        concurrency=1,
    )
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=again)
    st = wait_for(
        "smollm2-again reused",
        lambda: (s := gauntlet(world, "smollm2-again")["status"])["phase"] == "Succeeded" and s,
    )
    assert st["verdict"] == "Pass"
    assert "jobName" not in st
    assert any(e["reason"] == "Reused" for e in events(world, "smollm2-again"))
    jobs = get_json(env, "jobs", "-n", ns, "-l", "dayzero.dev/gauntlet=smollm2-again")
    assert jobs["items"] == []


@pytest.mark.timeout(real.MODEL_START_S + 3 * RUN_S)
def test_a_fail_keeps_preview_and_a_pass_promotes_it(world, model, capsys):
    env, ns = world["env"], world["ns"]

    # A gate the model cannot meet on a busy CPU: a p95 of 10 ms.
    kubectl(
        env,
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        stdin=gauntlet_yaml(
            "too-strict",
            {"p95Seconds": 0.01, "maxSeconds": 60},
            {"latency": {"enabled": True, "requests": 2, "warmup": 0, "maxTokens": 8}},
        ),
    )
    job = the_job(world, "too-strict")
    result_cm = check_job(world, job)
    check_least_privilege(world, job, result_cm)

    assert gauntlet(world, "too-strict")["status"]["phase"] == "Running"

    done, out = run_job_locally(world, job, model.url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (out / "results.json").is_file()
    st = wait_for(
        "too-strict Succeeded",
        lambda: (s := gauntlet(world, "too-strict")["status"])["phase"] == "Succeeded" and s,
    )
    assert st["verdict"] == "Fail"
    assert st["promoted"] is False
    (latency,) = st["suites"]
    assert (latency["suite"], latency["target"], latency["verdict"]) == ("latency", MDEP, "Fail")
    assert latency["figures"]["p95Seconds"] > 0.01
    obj = gauntlet(world, "too-strict")
    assert condition(obj, "Complete")["reason"] == "GatesFailed"
    assert "p95" in condition(obj, "Complete")["message"]
    promoted = condition(obj, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "NotPassed")
    assert promoted["message"].startswith("tag preview of Lane chat stays; verdict Fail: latency")
    assert promoted["observedGeneration"] == 1
    assert any(
        e["reason"] == "NotPassed" and e["type"] == "Warning" for e in events(world, "too-strict")
    )
    assert "preview" not in lane_status(world).get("tags", {})
    assert "preview" not in routing_tags(world)

    # Gates the model meets even on a busy 2-core machine: sanity and a short latency run.
    kubectl(
        env,
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        stdin=gauntlet_yaml(
            "smollm2-eval",
            {"p95Seconds": 60, "maxSeconds": 120},
            {
                "sanity": {"enabled": True},
                "latency": {"enabled": True, "requests": 3, "warmup": 1, "maxTokens": 8},
            },
            # One at a time: `transformers serve` generates one request at a time on this CPU,
            # and a request waiting behind another risks the harness's 60 s request timeout.
            concurrency=1,
        ),
    )
    job = the_job(world, "smollm2-eval")
    done, out = run_job_locally(world, job, model.url)
    assert done.returncode == 0, done.stdout + done.stderr
    st = wait_for(
        "smollm2-eval promoted",
        lambda: (s := gauntlet(world, "smollm2-eval")["status"]).get("promoted") and s,
        timeout=60,
    )
    assert (st["phase"], st["verdict"], st["winner"]) == ("Succeeded", "Pass", MDEP)
    assert {(s["suite"], s["verdict"]) for s in st["suites"]} == {
        ("sanity", "Pass"),
        ("latency", "Pass"),
    }
    assert st["report"] == f"configmap/{job['metadata']['name']}-result/result.json"
    result = get_json(env, "configmap", f"{job['metadata']['name']}-result", "-n", ns)
    record = json.loads(result["data"]["result.json"])
    assert record["targets"][0]["provenance"]["modelSha"] == SHA_A
    assert record["evalKey"] == result["metadata"]["labels"]["dayzero.dev/eval-key"]
    lane = lane_status(world)
    assert lane["tags"]["preview"] == MDEP
    (promo,) = lane["promotions"]
    assert (promo["tag"], promo["modelDeployment"], promo["by"]) == (
        "preview",
        MDEP,
        "gauntlet/smollm2-eval",
    )
    wait_for("routing carries preview", lambda: "preview" in routing_tags(world))

    check_reuse(world)

    figures = {
        s["suite"]: s["figures"] for s in gauntlet(world, "smollm2-eval")["status"]["suites"]
    }
    real.report(
        capsys,
        f"gauntlet controller: fail run p95 {latency['figures']['p95Seconds']:.2f}s vs gate 0.01s",
        f"pass run: sanity {figures['sanity'].get('passRate', 0):.0%}, latency p95 "
        f"{figures['latency'].get('p95Seconds', -1):.2f}s; model ready in {model.started_s:.1f}s",
    )


def test_a_ready_deployment_with_spec_gauntlet_gets_its_own_gauntlet(world):
    env, ns = world["env"], world["ns"]
    template = {"suites": ["sanity"], "promoteToLane": "chat", "promoteTag": "canary"}
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=mdep("templated", LLAMA_8B, gauntlet=template))
    name = f"templated-{SHA_A[:8]}"
    made = wait_for(f"Gauntlet {name}", lambda: gauntlet(world, name), timeout=120)
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ModelDeployment", "templated")
    assert made["metadata"]["labels"]["dayzero.dev/revision"] == SHA_A
    assert made["spec"]["targets"] == [{"modelDeploymentRef": {"name": "templated"}}]
    enabled = {s for s, v in made["spec"]["suites"].items() if v["enabled"]}
    assert enabled == {"sanity"}
    assert made["spec"]["promotion"] == {"enabled": True, "lane": "chat", "tag": "canary"}
    # It runs like any other: a Job against the deployment's in-cluster endpoint.
    job = the_job(world, name)
    spec_volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "spec")
    spec = get_json(env, "configmap", spec_volume["configMap"]["name"], "-n", ns)
    (target,) = yaml.safe_load(spec["data"]["spec.yaml"])["targets"]
    assert target["endpoint"] == f"http://templated.{ns}.svc:8000/v1"
    assert target["provenance"]["modelSha"] == SHA_A
    events = get_json(env, "events", "-n", ns, "--field-selector", "involvedObject.name=templated")
    assert any(e["reason"] == "GauntletCreated" for e in events["items"])
    # Once per revision: another look at the Ready deployment creates nothing more.
    kubectl(env, "annotate", "mdep", "templated", "-n", ns, "poke=1")
    time.sleep(3)  # the event's reconcile has run by then on an idle operator
    made_again = get_json(
        env, "gauntlets", "-n", ns, "-l", "dayzero.dev/model-deployment=templated"
    )
    assert len(made_again["items"]) == 1


def test_a_job_that_ends_without_a_result_fails_the_gauntlet_with_its_reason(world):
    env, ns = world["env"], world["ns"]
    kubectl(
        env,
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        stdin=gauntlet_yaml("never-answers", {"p95Seconds": 20, "maxSeconds": 40}, {"sanity": {}}),
    )
    job = the_job(world, "never-answers")
    # The Job controller gives up on the pod that never ran: as a real deadline would.
    patch = '{"spec": {"activeDeadlineSeconds": 1}}'
    kubectl(env, "patch", "job", job["metadata"]["name"], "-n", ns, "--type=merge", "-p", patch)
    st = wait_for(
        "never-answers Failed",
        lambda: (s := gauntlet(world, "never-answers")["status"])["phase"] == "Failed" and s,
        timeout=90,
    )
    assert "verdict" not in st
    assert "promoted" not in st
    obj = gauntlet(world, "never-answers")
    complete = condition(obj, "Complete")
    assert (complete["status"], complete["reason"]) == ("False", "JobFailed")
    assert "DeadlineExceeded" in complete["message"]
    assert any(e["reason"] == "JobFailed" for e in events(world, "never-answers"))


def test_a_gauntlet_waiting_for_its_deployment_starts_when_the_deployment_is_ready(world, capsys):
    env, ns = world["env"], world["ns"]
    doc = yaml.safe_load(gauntlet_yaml("early", {"p95Seconds": 20, "maxSeconds": 40}, {}))
    doc["spec"]["targets"] = [{"modelDeploymentRef": {"name": "late"}}]
    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(doc))
    pending = wait_for(
        "early Pending",
        lambda: (g := gauntlet(world, "early")).get("status", {}).get("phase") == "Pending" and g,
    )
    waiting = condition(pending, "TargetsReady")
    assert (waiting["status"], waiting["reason"]) == ("False", "TargetNotReady")
    assert "ModelDeployment late not found" in waiting["message"]
    assert not pending["metadata"].get("finalizers")  # the watch index needs none

    kubectl(env, "apply", "-n", ns, "-f", "-", stdin=mdep("late", LLAMA_8B))
    wait_for("late Ready", lambda: _ready(env, ns, "late"), timeout=120)
    ready_at = time.monotonic()
    # The deployment's own event wakes the Gauntlet; the backstop re-check is 30 s away.
    wait_for("early's Job", lambda: gauntlet(world, "early")["status"].get("jobName"), timeout=15)
    took = time.monotonic() - ready_at
    real.report(capsys, f"gauntlet controller: a waiting Gauntlet started {took:.1f}s after Ready")
    assert condition(gauntlet(world, "early"), "TargetsReady")["status"] == "True"
