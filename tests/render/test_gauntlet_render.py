"""What a Gauntlet renders to: the RunSpec the harness reads, and a least-privilege Job.

The golden file is reviewed as YAML; ``DAYZERO_UPDATE_GOLDEN=1`` rewrites it after an intended
change. The RunSpec document is also parsed by the harness's own model, so the operator and the
harness cannot drift apart silently.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from dayzero.api.v1alpha1 import Gauntlet, ModelDeployment
from dayzero.gauntlet.spec import RunSpec
from dayzero.render.errors import RenderError
from dayzero.render.gauntlet import (
    EVAL_KEY_LABEL,
    Inputs,
    NotReadyError,
    desired_run,
    eval_key,
    resolve_targets,
)
from dayzero.render.modeldeployment import Images

GOLDEN = Path(__file__).parent / "golden-gauntlet" / "gauntlet.yaml"
HEADER = (
    "# Rendered by tests/render/test_gauntlet_render.py; DAYZERO_UPDATE_GOLDEN=1 rewrites it.\n"
)
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
IMAGES = Images(
    vllm="vllm/vllm-openai:v0.33.0",
    transformers="ghcr.io/dayzero-dev/transformers-serve:0.1.0",
    dayzero="ghcr.io/dayzero-dev/dayzero:0.1.0",
)
DATASET_HASH = "sha256:" + "d" * 64


def ready_mdep(
    name: str, sha: str = SHA, engine: str = "vllm", ready: bool = True
) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"source": {"hub": {"repo": "org/model", "revision": "main"}}},
            "status": {
                "phase": "Ready" if ready else "Loading",
                "endpoint": f"http://{name}.evals.svc:8000/v1",
                "engine": engine,
                "resolvedRevision": sha,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "Serving" if ready else "Loading",
                        "message": "",
                    }
                ],
            },
        }
    )


def gauntlet(name: str = "qwen3-eval", **spec: Any) -> Gauntlet:
    base: dict[str, Any] = {"targets": [{"modelDeploymentRef": {"name": "qwen3"}}]}
    return Gauntlet.model_validate({"metadata": {"name": name}, "spec": base | spec})


def inputs(name: str = "qwen3-eval", **kw: Any) -> Inputs:
    fields: dict[str, Any] = {
        "namespace": "evals",
        "name": name,
        "uid": "1b7c5f0e-3d2a-4c1b-9e8f-7a6b5c4d3e2f",
        "images": IMAGES,
        "gauntlet_image": IMAGES.dayzero,
        "model_deployments": {"qwen3": ready_mdep("qwen3")},
        "gateway_url": "http://dayzero-gateway.dayzero-system.svc:8080",
    }
    return Inputs(**(fields | kw))


def full() -> Gauntlet:
    return gauntlet(
        suites={"quality": {"enabled": True}, "stability": {"enabled": False}},
        datasets=[{"name": "support", "configMap": {"name": "support-evals", "key": "data.jsonl"}}],
        judge={"gateway": "judge", "family": "llama"},
        promotion={"lane": "chat"},
        concurrency=2,
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the RunSpec document) as literal blocks, to read as YAML."""


_Dumper.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)


def test_golden() -> None:
    rendered = desired_run(full(), inputs(dataset_hashes={"support": DATASET_HASH}))
    text = HEADER + yaml.dump_all(rendered.objects, Dumper=_Dumper, sort_keys=False)
    if os.environ.get("DAYZERO_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    expected = GOLDEN.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True)))
    assert text == expected, diff


def test_the_spec_document_is_a_valid_harness_run_spec() -> None:
    rendered = desired_run(full(), inputs(dataset_hashes={"support": DATASET_HASH}))
    spec = RunSpec.model_validate(yaml.safe_load(rendered.spec_text))
    (target,) = spec.targets
    assert target.name == "qwen3"
    assert target.endpoint == "http://qwen3.evals.svc:8000/v1"
    assert target.provenance.model_sha == SHA
    assert target.provenance.engine == "vllm"
    assert target.provenance.image == IMAGES.vllm
    assert spec.judge is not None
    assert spec.judge.model == "judge"
    assert spec.judge.endpoint.startswith("http://dayzero-gateway.dayzero-system.svc:8080")
    assert spec.harness.dataset == "/var/run/dayzero/datasets/support/support.jsonl"
    assert spec.suites.quality.enabled
    assert not spec.suites.stability.enabled


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def test_the_job_may_write_only_its_own_result_configmap() -> None:
    rendered = desired_run(gauntlet(), inputs())
    role = _by_kind(rendered.objects, "Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [rendered.result_configmap],
            "verbs": ["get", "update", "patch"],
        }
    ]
    binding = _by_kind(rendered.objects, "RoleBinding")
    sa = _by_kind(rendered.objects, "ServiceAccount")
    job = _by_kind(rendered.objects, "Job")
    pod = job["spec"]["template"]["spec"]
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"] == pod["serviceAccountName"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["command"][-2:] == ["--result-configmap", f"evals/{rendered.result_configmap}"]
    assert job["spec"]["backoffLimit"] >= 0
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    for obj in rendered.objects:
        assert obj["metadata"]["ownerReferences"][0]["kind"] == "Gauntlet"


def test_names_fit_63_characters_for_the_longest_gauntlet_name() -> None:
    name = "a" * 120 + "." + "b" * 120
    rendered = desired_run(gauntlet(name), inputs(name))
    for obj in rendered.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
    assert rendered.job != desired_run(gauntlet(name + "c"), inputs(name + "c")).job


def test_a_target_that_is_not_ready_waits_and_names_the_field() -> None:
    with pytest.raises(NotReadyError, match=r"spec\.targets\[0\]\.modelDeploymentRef.*not Ready"):
        desired_run(
            gauntlet(), inputs(model_deployments={"qwen3": ready_mdep("qwen3", ready=False)})
        )
    with pytest.raises(NotReadyError, match="qwen3 not found"):
        desired_run(gauntlet(), inputs(model_deployments={}))


def test_prices_of_the_models_sent_come_from_the_routing_base() -> None:
    price = {"inputUsdPerMillion": 0.2, "outputUsdPerMillion": 0.6}
    other = {"inputUsdPerMillion": 3.0, "outputUsdPerMillion": 15.0}
    rendered = desired_run(gauntlet(), inputs(prices={"qwen3": price, "claude": other}))
    spec = RunSpec.model_validate(yaml.safe_load(rendered.spec_text))
    assert set(spec.prices) == {"qwen3"}
    assert spec.prices["qwen3"].output_usd_per_million == 0.6


def test_a_gateway_target_needs_the_operators_gateway_url() -> None:
    g = gauntlet(targets=[{"gateway": "preview"}])
    with pytest.raises(RenderError) as caught:
        desired_run(g, inputs(gateway_url=None))
    assert caught.value.field == "spec.targets[0].gateway"
    targets, _ = resolve_targets(g, inputs())
    assert (targets[0].endpoint, targets[0].model) == (
        "http://dayzero-gateway.dayzero-system.svc:8080",
        "preview",
    )


def test_a_provider_target_gets_its_key_from_the_secret_by_reference() -> None:
    provider = ModelDeployment.model_validate(
        {
            "metadata": {"name": "claude"},
            "spec": {
                "source": {
                    "provider": {
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-5",
                        "apiKeySecretRef": {"name": "anthropic", "key": "key"},
                    }
                }
            },
            "status": {
                "endpoint": "https://api.anthropic.com/v1",
                "engine": "anthropic",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    g = gauntlet(targets=[{"modelDeploymentRef": {"name": "claude"}}])
    rendered = desired_run(g, inputs(model_deployments={"claude": provider}))
    doc = yaml.safe_load(rendered.spec_text)
    assert doc["targets"][0]["model"] == "claude-sonnet-4-5"
    env = _by_kind(rendered.objects, "Job")["spec"]["template"]["spec"]["containers"][0]["env"]
    key_env = next(e for e in env if e["name"] == doc["targets"][0]["apiKeyEnv"])
    assert key_env["valueFrom"] == {"secretKeyRef": {"name": "anthropic", "key": "key"}}
    assert "sk-" not in rendered.spec_text
    assert rendered.eval_key is None  # a provider's model may change under the same id


def test_the_eval_key_pins_model_engine_datasets_and_the_asked_gates() -> None:
    g = full()
    hashes = {"support": DATASET_HASH}

    def key(g: Gauntlet, **kw: Any) -> str | None:
        i = inputs(dataset_hashes=hashes) if not kw else inputs(**kw)
        targets, baseline = resolve_targets(g, i)
        return eval_key(g, targets, baseline, i.dataset_hashes)

    first = key(g)
    assert first is not None
    assert key(g) == first
    assert key(g, dataset_hashes={"support": "sha256:" + "e" * 64}) != first
    other_sha = {"qwen3": ready_mdep("qwen3", sha="f" * 40)}
    assert key(g, dataset_hashes=hashes, model_deployments=other_sha) != first
    other_engine = {"qwen3": ready_mdep("qwen3", engine="transformers")}
    assert key(g, dataset_hashes=hashes, model_deployments=other_engine) != first
    stricter = g.model_copy(
        update={
            "spec": g.spec.model_copy(
                update={"gates": g.spec.gates.model_copy(update={"p95_seconds": 1.0})}
            )
        }
    )
    assert key(stricter) != first
    pvc = gauntlet(datasets=[{"name": "big", "pvc": {"claimName": "evals", "path": "big.jsonl"}}])
    assert key(pvc, dataset_hashes={}) is None
    assert key(gauntlet(targets=[{"endpoint": "http://127.0.0.1:9/v1"}])) is None
    labels = _by_kind(desired_run(g, inputs(dataset_hashes=hashes)).objects, "Job")["metadata"][
        "labels"
    ]
    assert labels[EVAL_KEY_LABEL] == first
