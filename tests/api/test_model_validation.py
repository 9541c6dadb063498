"""The models reject bad input with an error that names the field (the API server's CEL and
OpenAPI rules are checked against a real apiserver in e2e/test_crds.py)."""

from typing import Any

import pytest
from pydantic import ValidationError

from dayzero.api.v1alpha1 import Gauntlet, Lane, ModelDeployment

HUB = {"hub": {"repo": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main"}}


def mdep(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m"}, "spec": {"source": HUB} | spec}


def error_locs(model: Any, doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(doc)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_camel_case_on_the_wire_and_defaults_filled():
    obj = ModelDeployment.model_validate(mdep(resources={"gpuKind": "h200-141gb"}))
    wire = obj.to_wire()
    assert wire["spec"]["resources"]["gpuKind"] == "h200-141gb"
    assert wire["spec"]["resources"]["tensorParallel"] == "auto"
    assert wire["spec"]["engine"]["allowFallback"] is True
    assert obj.spec.resources.gpu_kind == "h200-141gb"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (mdep(resources={"gpuKind": "h100"}), "spec.resources.gpuKind"),
        (mdep(resources={"gpusPerNode": 9}), "spec.resources.gpusPerNode"),
        (mdep(resources={"tensorParallel": "four"}), "spec.resources.tensorParallel"),
        (mdep(replicas=-1), "spec.replicas"),
        (mdep(scaling={"idleAfter": "ten minutes"}), "spec.scaling.idleAfter"),
        (mdep(engine={"kind": "tgi"}), "spec.engine.kind"),
        (mdep(tags=["Not_A_Label"]), "spec.tags.0"),
        (mdep(unknownField=1), "spec.unknownField"),
        (
            {"metadata": {}, "spec": {"source": {"hub": {"repo": "no-slash", "revision": "x"}}}},
            "spec.source.hub.repo",
        ),
    ],
)
def test_model_deployment_errors_name_the_field(doc: dict[str, Any], field: str):
    # A union's error location carries the branch after the field (tensorParallel.int).
    locs = error_locs(ModelDeployment, doc)
    assert any(loc == field or loc.startswith(f"{field}.") for loc in locs), locs


def test_lane_needs_backends_and_names_bad_tag_keys():
    assert "spec.backends" in error_locs(Lane, {"spec": {"model": "x", "backends": []}})
    bad_tag = {
        "spec": {
            "model": "x",
            "backends": [{"name": "a", "url": {"url": "http://127.0.0.1:1"}}],
            "tags": {"Bad Tag": "m"},
        }
    }
    assert any(loc.startswith("spec.tags") for loc in error_locs(Lane, bad_tag))


def test_gauntlet_needs_a_target():
    assert "spec.targets" in error_locs(Gauntlet, {"spec": {"targets": []}})
