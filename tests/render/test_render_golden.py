"""Golden files: what each kind of ModelDeployment renders to, reviewed as YAML.

A normal run fails on any difference and prints a unified diff; after an intended change,
``DAYZERO_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render`` rewrites the files for review.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from render_cases import (
    IMAGES,
    OTHER_SHA,
    PLAN_8B,
    PLAN_70B_TP4,
    PLAN_405B_2X8,
    SHA,
    hub_spec,
    make_inputs,
    model_deployment,
    render,
    to_yaml,
)

from dayzero.render import Group, Manifest, serving_hash

GOLDEN = Path(__file__).parent / "golden"
HEADER = "# Rendered by tests/render/test_render_golden.py; DAYZERO_UPDATE_GOLDEN=1 rewrites it.\n"
TOKEN = {"hfTokenSecretRef": {"name": "hf-token"}}


def llama_8b_single() -> list[Manifest]:
    """8B on one GPU, its own 50Gi PVC, a gated repo's token."""
    mdep = model_deployment(
        "llama-3-1-8b",
        hub_spec(
            "meta-llama/Llama-3.1-8B-Instruct",
            weightCache={"pvc": {"size": "50Gi"}, **TOKEN},
            tags=["light"],
        ),
    )
    return render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))


def llama_70b_tp4() -> list[Manifest]:
    """70B on 4 GPUs (TP4), two replica groups (so a PDB), no cache configured (PVC defaults)."""
    mdep = model_deployment(
        "llama-3-1-70b",
        hub_spec(
            "meta-llama/Llama-3.1-70B-Instruct",
            replicas=2,
            engine={
                "extraArgs": ["--enable-prefix-caching"],
                "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
            },
        ),
    )
    return render(mdep, PLAN_70B_TP4, make_inputs(mdep, PLAN_70B_TP4, replicas=2))


def llama_405b_native() -> list[Manifest]:
    """405B BF16 on 2 pods x 8 GPUs (TP8 x PP2) with vLLM's native launcher, on a shared path."""
    mdep = model_deployment(
        "llama-3-1-405b",
        hub_spec(
            "meta-llama/Llama-3.1-405B-Instruct",
            resources={"maxModelLen": 32768},
            priorityClassName="dayzero-serving",
            weightCache={"sharedPath": "/mnt/lustre/hf", **TOKEN},
        ),
    )
    return render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8))


def llama_405b_ray() -> list[Manifest]:
    """The same 405B layout launched through a Ray cluster."""
    mdep = model_deployment(
        "llama-3-1-405b-ray",
        hub_spec(
            "meta-llama/Llama-3.1-405B-Instruct",
            engine={"distributedBackend": "ray"},
            resources={"maxModelLen": 32768},
            weightCache={"pvc": {"size": "2Ti", "storageClassName": "lustre"}, **TOKEN},
        ),
    )
    return render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8))


def transformers_rung() -> list[Manifest]:
    """An 8B that fell to the last rung: `transformers serve`, vLLM's extraArgs left out."""
    mdep = model_deployment(
        "new-arch-8b",
        hub_spec(
            "example-org/NewArch-8B",
            engine={"extraArgs": ["--enable-prefix-caching"]},
        ),
    )
    return render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B, engine="transformers"))


def provider() -> list[Manifest]:
    """A paid API model: no pods, no cache, nothing at all."""
    mdep = model_deployment(
        "claude-sonnet",
        {
            "source": {
                "provider": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "apiKeySecretRef": {"name": "anthropic-api-key", "key": "api-key"},
                }
            }
        },
    )
    return render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))


def existing_claim() -> list[Manifest]:
    """An existing PVC: no PVC rendered, the download Job and pods mount the claim."""
    mdep = model_deployment(
        "llama-3-1-8b-claim",
        hub_spec("meta-llama/Llama-3.1-8B-Instruct", weightCache={"existingClaim": "hf-cache"}),
    )
    return render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))


def shared_path() -> list[Manifest]:
    """A node-mounted shared filesystem: hostPath, and the download runs on a GPU node."""
    mdep = model_deployment(
        "llama-3-1-8b-lustre",
        hub_spec(
            "meta-llama/Llama-3.1-8B-Instruct",
            weightCache={"sharedPath": "/mnt/lustre/hf", "downloadTimeout": "1h30m"},
        ),
    )
    return render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))


def surge() -> list[Manifest]:
    """A new revision surging in: the new group is rendered, the leader Service still routes to
    the old hash, and the old group is left as it is (not rendered)."""
    mdep = model_deployment(
        "llama-3-1-8b",
        hub_spec("meta-llama/Llama-3.1-8B-Instruct", weightCache={"pvc": {"size": "50Gi"}}),
    )
    old = serving_hash(mdep, PLAN_8B, OTHER_SHA, "vllm", IMAGES)
    inputs = make_inputs(
        mdep,
        PLAN_8B,
        revision=SHA,
        extra_groups=(Group(index=0, serving_hash=old),),
        active_hash=old,
        cache_owners=(("llama-3-1-8b-canary", "0b7c9d2e-1111-4a4a-9b9b-000000000001"),),
    )
    return render(mdep, PLAN_8B, inputs)


CASES: dict[str, Callable[[], list[Manifest]]] = {
    "llama-8b-single": llama_8b_single,
    "llama-70b-tp4": llama_70b_tp4,
    "llama-405b-native": llama_405b_native,
    "llama-405b-ray": llama_405b_ray,
    "transformers-rung": transformers_rung,
    "provider": provider,
    "existing-claim": existing_claim,
    "shared-path": shared_path,
    "surge": surge,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden_file(case: str) -> None:
    rendered = HEADER + to_yaml(CASES[case]())
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("DAYZERO_UPDATE_GOLDEN") == "1":
        path.write_text(rendered)
    assert path.exists(), f"{path} is missing: run with DAYZERO_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text()
    if rendered != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"golden/{case}.yaml",
                tofile="rendered",
            )
        )
        pytest.fail(f"{case} renders differently from its golden file:\n{diff}", pytrace=False)


def test_every_golden_file_has_a_case() -> None:
    stale = {p.stem for p in GOLDEN.glob("*.yaml")} - set(CASES)
    assert not stale, f"golden files without a case (delete them): {sorted(stale)}"


def test_goldens_hold_what_each_case_promises() -> None:
    kinds = {
        case: [doc["kind"] for doc in yaml.safe_load_all((GOLDEN / f"{case}.yaml").read_text())]
        for case in CASES
    }
    assert kinds["provider"] == []
    assert kinds["llama-8b-single"] == [
        "PersistentVolumeClaim",
        "Job",
        "StatefulSet",
        "Service",
        "Service",
    ]
    assert kinds["llama-70b-tp4"][-1] == "PodDisruptionBudget"
    assert kinds["llama-70b-tp4"].count("StatefulSet") == 2
    assert "PersistentVolumeClaim" not in kinds["existing-claim"]
    assert "PersistentVolumeClaim" not in kinds["shared-path"]
    assert kinds["surge"].count("StatefulSet") == 1
    assert SHA in (GOLDEN / "surge.yaml").read_text()
