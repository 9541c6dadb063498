"""The Argo CD health checks in deploy/argocd/health/, run as real Lua 5.1 (Argo CD's gopher-lua
speaks 5.1) through lupa, against statuses built with the API's own models so the field names are
the ones the operator writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from dayzero.api.v1alpha1.gauntlet import GauntletStatus
from dayzero.api.v1alpha1.lane import LaneStatus
from dayzero.api.v1alpha1.modeldeployment import ModelDeploymentStatus

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "deploy" / "argocd" / "health"
KINDS = ("ModelDeployment", "Lane", "Gauntlet")
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the kind's script as Argo CD does: `obj` global, returns {status, message}."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((HEALTH / f"dayzero.dev_{kind}.lua").read_text())
    status, message = result["status"], result["message"]
    assert status in ARGO_STATUSES
    assert isinstance(message, str)
    return status, message


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def mdep(generation: int = 2, **status: Any) -> dict[str, Any]:
    body = ModelDeploymentStatus.model_validate(status).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    return {"metadata": {"name": "m", "generation": generation}, "spec": {}, "status": body}


def lane(generation: int = 1, **status: Any) -> dict[str, Any]:
    body = LaneStatus.model_validate(status).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    return {"metadata": {"name": "chat", "generation": generation}, "spec": {}, "status": body}


def gauntlet(generation: int = 1, **status: Any) -> dict[str, Any]:
    body = GauntletStatus.model_validate(status).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    return {"metadata": {"name": "g", "generation": generation}, "spec": {}, "status": body}


READY = cond("Ready", "True", "Serving", "1/1 group(s) serving")

# -- ModelDeployment


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"metadata": {"name": "m", "generation": 1}, "spec": {}}, "Progressing"),
        (mdep(observedGeneration=1, phase="Ready", conditions=[READY]), "Progressing"),
        (mdep(observedGeneration=2, phase="Ready", conditions=[READY]), "Healthy"),
        (
            mdep(
                observedGeneration=2,
                phase="Downloading",
                conditions=[cond("Ready", "False", "Downloading", "downloading 0e9e39f249a1")],
            ),
            "Progressing",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Loading",
                conditions=[cond("Ready", "False", "Unschedulable", "waiting for the leader")],
            ),
            "Progressing",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Failed",
                conditions=[cond("Ready", "False", "GatedRepo", "meta-llama/x is gated")],
            ),
            "Degraded",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Degraded",
                conditions=[
                    cond("Ready", "False", "CrashLoop", "restarting"),
                    cond("Degraded", "True", "CrashLoop", "engine exited 1"),
                ],
            ),
            "Degraded",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Suspended",
                conditions=[
                    cond("Ready", "False", "Suspended", "no replicas: spec.suspend is true")
                ],
            ),
            "Suspended",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Suspended",
                conditions=[cond("Ready", "False", "IdleScaledToZero", "no replicas: no traffic")],
            ),
            "Suspended",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Degraded",
                conditions=[
                    READY,
                    cond("Degraded", "True", "Degraded", "surging to a new revision"),
                ],
            ),
            "Progressing",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Degraded",
                conditions=[READY, cond("Degraded", "True", "Degraded", "1/2 groups ready")],
            ),
            "Progressing",
        ),
        (
            mdep(
                observedGeneration=2,
                phase="Degraded",
                conditions=[
                    READY,
                    cond("Degraded", "True", "Degraded", "fallback engine transformers"),
                ],
            ),
            "Healthy",
        ),
    ],
    ids=[
        "no-status",
        "stale-generation",
        "ready",
        "downloading",
        "unschedulable",
        "failed",
        "crash-loop",
        "suspended",
        "idle-scaled-to-zero",
        "surging",
        "partly-ready",
        "fell-back-serving",
    ],
)
def test_modeldeployment(obj: dict[str, Any], want: str) -> None:
    assert health("ModelDeployment", obj)[0] == want


def test_modeldeployment_messages_say_why() -> None:
    _, message = health(
        "ModelDeployment",
        mdep(
            observedGeneration=2,
            phase="Failed",
            conditions=[cond("Ready", "False", "OutOfMemory", "CUDA out of memory")],
        ),
    )
    assert message == "CUDA out of memory"
    _, stale = health("ModelDeployment", mdep(generation=5, observedGeneration=4, phase="Ready"))
    assert "generation 5" in stale
    _, fell_back = health(
        "ModelDeployment",
        mdep(
            observedGeneration=2,
            phase="Degraded",
            conditions=[
                READY,
                cond("Degraded", "True", "Degraded", "fallback engine transformers"),
            ],
        ),
    )
    assert "fallback engine transformers" in fell_back


# -- Lane


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"metadata": {"name": "chat", "generation": 1}, "spec": {}}, "Progressing"),
        (
            lane(generation=3, observedGeneration=2, conditions=[cond("Ready", "True", "Routed")]),
            "Progressing",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[
                    cond("Ready", "True", "Routed", "2/3 backend(s) available"),
                    cond("Applied", "True", "GatewayLoaded", "every gateway serves abc"),
                ],
            ),
            "Healthy",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[
                    cond("Ready", "True", "Routed", "1/1 backend(s) available"),
                    cond("Applied", "False", "Pending", "a gateway still serves abc, not def"),
                ],
            ),
            "Progressing",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[
                    cond("Ready", "True", "Routed", "1/1"),
                    cond("Applied", "Unknown", "NoGateway", "no gateway reported a config hash"),
                ],
            ),
            "Healthy",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[cond("Ready", "False", "NoBackendAvailable", "qwen: not Ready")],
            ),
            "Degraded",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[cond("Ready", "False", "InvalidSpec", "spec.backends[0]: clash")],
            ),
            "Degraded",
        ),
        (
            lane(
                observedGeneration=1,
                conditions=[
                    cond("Ready", "True", "Routed", "1/1"),
                    cond("Applied", "False", "ConfigMapNotWritable", "namespace is gone"),
                ],
            ),
            "Degraded",
        ),
    ],
    ids=[
        "no-status",
        "stale",
        "routed-applied",
        "gateway-pending",
        "no-gateway",
        "no-backend",
        "invalid",
        "not-writable",
    ],
)
def test_lane(obj: dict[str, Any], want: str) -> None:
    assert health("Lane", obj)[0] == want


# -- Gauntlet


def suite(verdict: str, reason: str | None = None) -> dict[str, Any]:
    return {"target": "qwen-7b", "suite": "sanity", "verdict": verdict, "reason": reason}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"metadata": {"name": "g", "generation": 1}, "spec": {}}, "Progressing"),
        (gauntlet(observedGeneration=1, phase="Pending"), "Progressing"),
        (gauntlet(observedGeneration=1, phase="Running", jobName="g-run"), "Progressing"),
        (
            gauntlet(generation=2, observedGeneration=1, phase="Succeeded", verdict="Pass"),
            "Progressing",
        ),
        (
            gauntlet(observedGeneration=1, phase="Succeeded", verdict="Pass", promoted=True),
            "Healthy",
        ),
        (
            gauntlet(
                observedGeneration=1,
                phase="Succeeded",
                verdict="Fail",
                suites=[suite("Fail", "3/10 answers in the wrong language")],
            ),
            "Degraded",
        ),
        (
            gauntlet(
                observedGeneration=1,
                phase="Failed",
                conditions=[cond("Complete", "False", "TargetNotReady", "qwen-7b is not Ready")],
            ),
            "Degraded",
        ),
    ],
    ids=["no-status", "pending", "running", "stale", "passed", "failed-verdict", "could-not-run"],
)
def test_gauntlet(obj: dict[str, Any], want: str) -> None:
    assert health("Gauntlet", obj)[0] == want


def test_gauntlet_failure_names_the_suite() -> None:
    _, message = health(
        "Gauntlet",
        gauntlet(
            observedGeneration=1,
            phase="Succeeded",
            verdict="Fail",
            suites=[suite("Pass"), suite("Fail", "3/10 answers in the wrong language")],
        ),
    )
    assert message == "Verdict Fail; sanity on qwen-7b: 3/10 answers in the wrong language"


# -- the argocd-cm snippet


def test_argocd_cm_embeds_the_scripts_verbatim() -> None:
    cm = yaml.safe_load((ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml").read_text())
    for kind in KINDS:
        key = f"resource.customizations.health.dayzero.dev_{kind}"
        assert cm["data"][key] == (HEALTH / f"dayzero.dev_{kind}.lua").read_text(), kind
    assert set(cm["data"]) == {f"resource.customizations.health.dayzero.dev_{k}" for k in KINDS}
