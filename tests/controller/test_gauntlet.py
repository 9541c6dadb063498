"""The Gauntlet reconcile's decisions against an in-memory API: run, result, promotion, reuse.

The fake keeps objects as the API server would (apply merges, a merge patch drops None keys,
create conflicts); the real control plane covers the same story in e2e/test_gauntlet.py.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from dayzero.controller import gauntlet as gc
from dayzero.controller.lane import PROMOTE_ANNOTATION, REQUESTED_BY_ANNOTATION
from dayzero.kube import KubeError
from dayzero.render.gauntlet import EVAL_KEY_LABEL, RESULT_KEY
from dayzero.render.modeldeployment import Images

NS = "evals"
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
Key = tuple[str, str, str]


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.uids = 0

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.uids += 1
        meta.setdefault("uid", f"uid-{self.uids}")
        meta.setdefault("generation", 1)
        meta.setdefault("namespace", NS)
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def list(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[Any]:
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and all(o["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]

    def apply(self, obj: dict[str, Any], *, subresource: str | None = None, **_: Any) -> Any:
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        current = self.objects.get(key)
        if subresource == "status":
            if current is None:
                raise KubeError(404, "NotFound", "gone")
            current["status"] = copy.deepcopy(obj["status"])
            return current
        if current is None:
            return self.put(copy.deepcopy(obj))
        _merge(current, copy.deepcopy(obj))
        return current

    def patch(
        self, kind: str, namespace: str | None, name: str, patch: dict[str, Any], **_: Any
    ) -> Any:
        current = self.objects.get((kind, namespace or "", name))
        if current is None:
            raise KubeError(404, "NotFound", name)
        _merge(current, patch)
        return current

    def create(self, obj: dict[str, Any]) -> Any:
        if obj["kind"] == "Event":
            self.events.append(obj)
            return obj
        meta = obj["metadata"]
        if (obj["kind"], meta["namespace"], meta["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", meta["name"])
        return self.put(copy.deepcopy(obj))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


def mdep(kube: FakeKube, name: str = "qwen3", ready: bool = True, **spec: Any) -> None:
    kube.put(
        {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"source": {"hub": {"repo": "org/qwen3", "revision": "main"}}, **spec},
            "status": {
                "phase": "Ready" if ready else "Loading",
                "endpoint": f"http://{name}.{NS}.svc:8000/v1",
                "engine": "vllm",
                "resolvedRevision": SHA,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
    )


def gauntlet(kube: FakeKube, name: str = "g1", **spec: Any) -> None:
    base = {"targets": [{"modelDeploymentRef": {"name": "qwen3"}}], "promotion": {"lane": "chat"}}
    kube.put(
        {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "Gauntlet",
            "metadata": {"name": name},
            "spec": base | spec,
        }
    )


def lane(kube: FakeKube) -> None:
    kube.put(
        {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "Lane",
            "metadata": {"name": "chat"},
            "spec": {"model": "chat", "backends": [{"name": "a", "url": {"url": "http://a:1"}}]},
        }
    )


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    mdep(k)
    lane(k)
    return k


def deps(kube: FakeKube) -> gc.GauntletDeps:
    return gc.GauntletDeps(
        kube=kube,  # type: ignore[arg-type]
        images=Images(vllm="vllm:1", transformers="tf:1", dayzero="dz:1"),
        gauntlet_image="dz:1",
        now=lambda: datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
    )


def status(kube: FakeKube, name: str = "g1") -> dict[str, Any]:
    return kube.objects[("Gauntlet", NS, name)].get("status", {})


def cond(kube: FakeKube, type_: str, name: str = "g1") -> dict[str, Any]:
    return next(c for c in status(kube, name)["conditions"] if c["type"] == type_)


def harness_writes(kube: FakeKube, verdict: str, reason: str | None = None) -> None:
    (job,) = kube.of_kind("Job")
    target = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    ns, name = target.split("/")
    result = {
        "verdict": verdict,
        "reason": reason,
        "winner": "qwen3" if verdict == "Pass" else None,
        "suites": [
            {
                "target": "qwen3",
                "suite": "latency",
                "verdict": verdict,
                "figures": {"p95Seconds": 1.5},
            }
        ],
        "completionTime": "2026-11-30T16:05:00+00:00",
    }
    kube.patch("ConfigMap", ns, name, {"data": {RESULT_KEY: json.dumps(result)}})


def test_a_pass_records_the_suites_and_promotes_through_the_lane(kube: FakeKube) -> None:
    gauntlet(kube)
    d = deps(kube)
    assert gc.reconcile(d, NS, "g1") == gc.WAITING
    (job,) = kube.of_kind("Job")
    assert status(kube)["phase"] == "Running"
    assert status(kube)["jobName"] == job["metadata"]["name"]
    assert cond(kube, "Complete")["reason"] == "Running"
    assert cond(kube, "Complete")["observedGeneration"] == 1

    harness_writes(kube, "Pass")
    gc.reconcile(d, NS, "g1")
    st = status(kube)
    assert (st["phase"], st["verdict"], st["winner"]) == ("Succeeded", "Pass", "qwen3")
    assert st["suites"][0]["figures"] == {"p95Seconds": 1.5}
    assert st["report"].startswith("configmap/")
    annotations = kube.objects[("Lane", NS, "chat")]["metadata"]["annotations"]
    assert annotations == {
        PROMOTE_ANNOTATION: "preview=qwen3",
        REQUESTED_BY_ANNOTATION: "gauntlet/g1",
    }
    assert cond(kube, "Promoted")["status"] == "Unknown"

    # The Lane controller consumes the request and records the promotion in its status.
    lane_obj = kube.objects[("Lane", NS, "chat")]
    lane_obj["metadata"]["annotations"] = {}
    lane_obj["status"] = {
        "promotions": [{"tag": "preview", "modelDeployment": "qwen3", "by": "gauntlet/g1"}]
    }
    gc.reconcile(d, NS, "g1")
    assert status(kube)["promoted"] is True
    assert cond(kube, "Promoted")["reason"] == "Promoted"
    # Finished: another look changes nothing and asks nothing again.
    before = copy.deepcopy(status(kube))
    gc.reconcile(d, NS, "g1")
    assert status(kube) == before
    assert not kube.objects[("Lane", NS, "chat")]["metadata"]["annotations"]


def test_a_fail_never_moves_the_tag_and_says_why(kube: FakeKube) -> None:
    gauntlet(kube)
    d = deps(kube)
    gc.reconcile(d, NS, "g1")
    harness_writes(kube, "Fail", "latency: p95 5.1s > gate 0.01s")
    gc.reconcile(d, NS, "g1")
    st = status(kube)
    assert (st["phase"], st["verdict"], st["promoted"]) == ("Succeeded", "Fail", False)
    assert cond(kube, "Complete")["reason"] == "GatesFailed"
    assert "p95" in cond(kube, "Complete")["message"]
    assert cond(kube, "Promoted")["reason"] == "NotPassed"
    assert cond(kube, "Promoted")["message"] == (
        "tag preview of Lane chat stays; verdict Fail: latency: p95 5.1s > gate 0.01s"
    )
    assert "annotations" not in kube.objects[("Lane", NS, "chat")]["metadata"]
    reasons = {e["reason"] for e in kube.events}
    assert {"JobCreated", "GatesFailed", "NotPassed"} <= reasons


def test_a_job_that_fails_without_a_result_is_failed_with_the_reason(kube: FakeKube) -> None:
    gauntlet(kube)
    d = deps(kube)
    gc.reconcile(d, NS, "g1")
    (job,) = kube.of_kind("Job")
    job["status"] = {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    }
    gc.reconcile(d, NS, "g1")
    assert status(kube)["phase"] == "Failed"
    assert cond(kube, "Complete")["reason"] == "JobFailed"
    assert "BackoffLimitExceeded" in cond(kube, "Complete")["message"]
    assert "promoted" not in status(kube)


def test_a_target_that_is_not_ready_keeps_it_pending(kube: FakeKube) -> None:
    mdep(kube, ready=False)
    gauntlet(kube)
    assert gc.reconcile(deps(kube), NS, "g1") == gc.WAITING
    assert status(kube)["phase"] == "Pending"
    assert cond(kube, "TargetsReady")["reason"] == "TargetNotReady"
    assert not kube.of_kind("Job")


def test_the_same_evaluation_is_reused_unless_forced(kube: FakeKube) -> None:
    gauntlet(kube, "g1")
    d = deps(kube)
    gc.reconcile(d, NS, "g1")
    harness_writes(kube, "Pass")
    gc.reconcile(d, NS, "g1")
    (result,) = [c for c in kube.of_kind("ConfigMap") if EVAL_KEY_LABEL in c["metadata"]["labels"]]

    gauntlet(kube, "g2", promotion={"enabled": False})
    gc.reconcile(d, NS, "g2")
    assert len(kube.of_kind("Job")) == 1  # no second Job
    st = status(kube, "g2")
    assert (st["phase"], st["verdict"]) == ("Succeeded", "Pass")
    assert st["report"] == f"configmap/{result['metadata']['name']}/{RESULT_KEY}"
    assert any(e["reason"] == "Reused" for e in kube.events)

    gauntlet(kube, "g3", force=True)
    gc.reconcile(d, NS, "g3")
    assert len(kube.of_kind("Job")) == 2
    assert status(kube, "g3")["phase"] == "Running"


def test_a_new_generation_is_a_new_run(kube: FakeKube) -> None:
    gauntlet(kube)
    d = deps(kube)
    gc.reconcile(d, NS, "g1")
    harness_writes(kube, "Fail", "sanity: bad")
    gc.reconcile(d, NS, "g1")
    body = kube.objects[("Gauntlet", NS, "g1")]
    body["spec"]["gates"] = {"p95Seconds": 30.0, "maxSeconds": 60.0}
    body["metadata"]["generation"] = 2
    gc.reconcile(d, NS, "g1")
    st = status(kube)
    assert (st["phase"], st["observedGeneration"]) == ("Running", 2)
    assert "verdict" not in st
    assert len(kube.of_kind("Job")) == 2


def test_an_invalid_spec_is_a_condition_naming_the_field(kube: FakeKube) -> None:
    gauntlet(kube, concurrency=0)
    gc.reconcile(deps(kube), NS, "g1")
    assert status(kube)["phase"] == "Failed"
    assert cond(kube, "Complete")["reason"] == "InvalidSpec"
    assert "spec.concurrency" in cond(kube, "Complete")["message"]


def test_a_ready_deployment_with_a_template_gets_one_gauntlet_per_revision(kube: FakeKube) -> None:
    mdep(kube, "fresh", gauntlet={"suites": ["sanity", "latency"], "promoteToLane": "chat"})
    d = deps(kube)
    gc.ensure_from_template(d, NS, "fresh")
    name = gc.template_gauntlet_name("fresh", SHA)
    made = kube.objects[("Gauntlet", NS, name)]
    assert made["spec"]["targets"] == [{"modelDeploymentRef": {"name": "fresh"}}]
    enabled = {k for k, v in made["spec"]["suites"].items() if v["enabled"]}
    assert enabled == {"sanity", "latency"}
    assert made["spec"]["promotion"] == {"enabled": True, "lane": "chat", "tag": "preview"}
    assert made["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    gc.ensure_from_template(d, NS, "fresh")
    assert len(kube.of_kind("Gauntlet")) == 1


def test_a_template_gauntlet_is_copied_with_its_targets_replaced_and_never_runs(
    kube: FakeKube,
) -> None:
    gauntlet(kube, "tmpl", gates={"p95Seconds": 3.0, "maxSeconds": 9.0})
    kube.objects[("Gauntlet", NS, "tmpl")]["metadata"]["annotations"] = {
        gc.TEMPLATE_ANNOTATION: "true"
    }
    mdep(kube, "fresh", gauntlet={"name": "tmpl"})
    d = deps(kube)
    gc.reconcile(d, NS, "tmpl")
    assert cond(kube, "Complete", "tmpl")["reason"] == "Template"
    assert not kube.of_kind("Job")
    gc.ensure_from_template(d, NS, "fresh")
    made = kube.objects[("Gauntlet", NS, gc.template_gauntlet_name("fresh", SHA))]
    assert made["spec"]["targets"] == [{"modelDeploymentRef": {"name": "fresh"}}]
    assert made["spec"]["gates"]["p95Seconds"] == 3.0


def test_an_unknown_template_suite_is_an_event_naming_the_field(kube: FakeKube) -> None:
    mdep(kube, "fresh", gauntlet={"suites": ["sanity", "vibes"]})
    gc.ensure_from_template(deps(kube), NS, "fresh")
    assert not kube.of_kind("Gauntlet")
    (event,) = kube.events
    assert event["reason"] == "InvalidGauntletTemplate"
    assert "spec.gauntlet.suites[1]" in event["message"]


def test_a_dataset_configmap_is_hashed_into_the_key_and_a_missing_key_is_named(
    kube: FakeKube,
) -> None:
    dataset = {"name": "support", "configMap": {"name": "evals-data", "key": "items.jsonl"}}
    kube.put(
        {"kind": "ConfigMap", "metadata": {"name": "evals-data"}, "data": {"items.jsonl": "{}"}}
    )
    gauntlet(kube, "g1", datasets=[dataset], suites={"quality": {"enabled": True}})
    d = deps(kube)
    gc.reconcile(d, NS, "g1")
    (job,) = kube.of_kind("Job")
    first_key = job["metadata"]["labels"][EVAL_KEY_LABEL]
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "evals-data", "items": [{"key": "items.jsonl", "path": "support.jsonl"}]} in [
        v.get("configMap") for v in volumes
    ]
    kube.objects[("ConfigMap", NS, "evals-data")]["data"] = {"items.jsonl": '{"changed": 1}'}
    gauntlet(kube, "g2", datasets=[dataset], suites={"quality": {"enabled": True}})
    gc.reconcile(d, NS, "g2")
    keys = {j["metadata"]["labels"][EVAL_KEY_LABEL] for j in kube.of_kind("Job")}
    assert len(keys) == 2
    assert first_key in keys

    wrong = dataset | {"configMap": {"name": "evals-data", "key": "nope.jsonl"}}
    gauntlet(kube, "g3", datasets=[wrong])
    gc.reconcile(d, NS, "g3")
    assert status(kube, "g3")["phase"] == "Failed"
    assert cond(kube, "Complete", "g3")["reason"] == "InvalidSpec"
    assert "spec.datasets[0].configMap.key" in cond(kube, "Complete", "g3")["message"]


def test_the_deployments_a_stored_spec_names_are_found_for_the_watch_index() -> None:
    spec = {
        "targets": [
            {"modelDeploymentRef": {"name": "a"}},
            {"gateway": "preview"},
            {"endpoint": "http://127.0.0.1:9/v1"},
        ],
        "baseline": {"modelDeploymentRef": {"name": "b"}},
    }
    assert gc.deployments_named(spec) == {"a", "b"}
    assert gc.deployments_named({"targets": "not a list of targets"}) == set()
    assert gc.deployments_named({}) == set()
