"""Gauntlet reconcile: targets -> one evaluation Job -> its result -> status -> promotion.

A Gauntlet is one evaluation, like a Job: once it has finished for a generation it stays
finished, and only a change of its spec starts another run. The reconcile gathers the
ModelDeployments its targets name and the datasets' hashes, renders the run with pure functions
(``render.gauntlet``), applies it under the operator's field manager, then reads back the result
ConfigMap the harness filled (its only write permission) and the Job's state. A pass with
promotion asks the Lane controller to move the tag, through the same annotation a person would
use, so a promotion has one path and one record (the Lane's status).

A ModelDeployment's ``spec.gauntlet`` template becomes a Gauntlet owned by that deployment, once
per resolved revision, when the deployment is Ready (``ensure_from_template``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import ValidationError

from ..api.errors import field_error
from ..api.v1alpha1 import API_VERSION, Gauntlet, GauntletStatus, Lane, ModelDeployment
from ..api.v1alpha1.gauntlet import GauntletPhase, SuiteName, SuiteResult, Verdict
from ..kube import Kube, KubeError, Manifest
from ..kube.events import post_event
from ..kube.gather import job_state
from ..render import labels as common_labels
from ..render import lifecycle, names
from ..render.errors import RenderError
from ..render.gauntlet import (
    EVAL_KEY_LABEL,
    RESULT_KEY,
    Inputs,
    NotReadyError,
    Rendered,
    desired_run,
    result_configmap_name,
    target_name,
)
from ..render.modeldeployment import Images
from .lane import PROMOTE_ANNOTATION, REQUESTED_BY_ANNOTATION

log = logging.getLogger(__name__)

# Watch events wake a waiting Gauntlet (its deployments', Job's and result's); these are backstops.
BUSY, WAITING, SETTLED = 2.0, 30.0, 300.0
TEMPLATE_ANNOTATION = "dayzero.dev/template"
"""On a Gauntlet: it is only a template for ModelDeployments' ``spec.gauntlet``; it never runs."""
REVISION_LABEL = "dayzero.dev/revision"


@dataclass
class GauntletDeps:
    """What a Gauntlet reconcile needs, created once at start-up."""

    kube: Kube
    images: Images
    gauntlet_image: str
    """The image of evaluation Jobs (``--gauntlet-image``); ``spec.image`` wins over it."""
    gateway_url: str | None = None
    """The gateway's base URL, for gateway targets and the judge (the first ``--gateway``)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """nodeSelector of evaluation pods (``--gauntlet-node-selector``)."""
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """The routing base's prices, so a run can estimate each target's cost."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class _Status(lifecycle.StatusDraft[GauntletStatus]):
    """A Gauntlet's new status: its phase beside the conditions."""

    def phase(self, phase: GauntletPhase) -> None:
        self.status.phase = phase


def gauntlet_ref(namespace: str, name: str, uid: str) -> dict[str, str]:
    """The involvedObject of an Event about a Gauntlet."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Gauntlet",
        "namespace": namespace,
        "name": name,
        "uid": uid,
    }


def deployments_named(spec: Mapping[str, Any]) -> set[str]:
    """The ModelDeployments a Gauntlet's spec (as stored) names, so their events can wake it."""
    targets = [*(spec.get("targets") or []), spec.get("baseline") or {}]
    return {
        str(ref["name"])
        for t in targets
        if isinstance(t, Mapping)
        and isinstance(ref := t.get("modelDeploymentRef"), Mapping)
        and ref.get("name")
    }


# --- gather ------------------------------------------------------------------------------------


def _model_deployments(kube: Kube, namespace: str, g: Gauntlet) -> dict[str, ModelDeployment]:
    wanted = {
        t.model_deployment_ref.name
        for t in [*g.spec.targets, *([g.spec.baseline] if g.spec.baseline else [])]
        if t.model_deployment_ref is not None
    }
    found: dict[str, ModelDeployment] = {}
    for name in sorted(wanted):
        body = kube.get("ModelDeployment", namespace, name)
        if body is None:
            continue
        try:
            found[name] = ModelDeployment.model_validate(body)
        except ValidationError:
            continue  # an invalid deployment is not Ready: reported as missing
    return found


def _dataset_hashes(kube: Kube, namespace: str, g: Gauntlet) -> dict[str, str]:
    """``sha256:<hex>`` of each ConfigMap dataset, as the harness hashes the file it reads."""
    out: dict[str, str] = {}
    for i, d in enumerate(g.spec.datasets):
        if d.config_map is None:
            continue
        cm = kube.get("ConfigMap", namespace, d.config_map.name)
        where = f"spec.datasets[{i}].configMap"
        if cm is None:
            raise NotReadyError(f"{where}: ConfigMap {d.config_map.name} not found")
        text = (cm.get("data") or {}).get(d.config_map.key)
        raw = (
            text.encode()
            if text is not None
            else base64.b64decode((cm.get("binaryData") or {}).get(d.config_map.key, ""))
        )
        if text is None and not raw:
            raise RenderError(
                f"{where}.key", f"ConfigMap {d.config_map.name} has no key {d.config_map.key!r}"
            )
        out[d.name] = "sha256:" + hashlib.sha256(raw).hexdigest()
    return out


def _result(cm: Manifest | None) -> dict[str, Any] | None:
    """The harness's compact result, once it has written one."""
    text = ((cm or {}).get("data") or {}).get(RESULT_KEY)
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("verdict") else None


def _reusable(kube: Kube, namespace: str, key: str, own: str) -> tuple[str, dict[str, Any]] | None:
    """A finished evaluation with the same key in this namespace (not this run's own)."""
    for cm in kube.list("ConfigMap", namespace, f"{EVAL_KEY_LABEL}={key}"):
        name = cm["metadata"]["name"]
        result = _result(cm)
        if name != own and result is not None and result.get("verdict") in ("Pass", "Fail"):
            return name, result
    return None


# --- decide and act ----------------------------------------------------------------------------


def _record(st: _Status, result: Mapping[str, Any], report: str) -> None:
    """Copy a result into status: verdict, winner, each suite's verdict and figures."""
    verdicts = get_args(Verdict)
    verdict = result.get("verdict")
    st.status.verdict = verdict if verdict in verdicts else "Error"
    st.status.winner = result.get("winner") or None
    suites: list[SuiteResult] = []
    for raw in result.get("suites") or []:
        try:
            suites.append(SuiteResult.model_validate(raw))
        except ValidationError:
            log.warning("unreadable suite result %r", raw)
    st.status.suites = suites
    st.status.report = report
    done = result.get("completionTime")
    try:
        st.status.completion_time = datetime.fromisoformat(done) if done else st.now
    except (TypeError, ValueError):
        st.status.completion_time = st.now
    reason = str(result.get("reason") or "")
    if st.status.verdict == "Pass":
        st.phase("Succeeded")
        st.set("Complete", True, "Passed", f"every suite passed{_winner_note(st)}")
    elif st.status.verdict == "Fail":
        st.phase("Succeeded")
        st.set("Complete", True, "GatesFailed", reason or "a suite failed")
    elif st.status.verdict == "Skipped":
        st.phase("Succeeded")
        st.set("Complete", True, "Skipped", reason or "every suite was skipped")
    else:
        # Error: the harness could not run the evaluation (the endpoint never answered, ...).
        st.phase("Failed")
        st.set("Complete", False, "CouldNotRun", reason or f"verdict {verdict}")


def _winner_note(st: _Status) -> str:
    return f"; winner {st.status.winner}" if st.status.winner else ""


def _winner(g: Gauntlet, st: _Status) -> str | None:
    """The ModelDeployment a pass promotes: the winner, or the only target."""
    refs = {
        target_name(t.model_deployment_ref.name): t.model_deployment_ref.name
        for t in g.spec.targets
        if t.model_deployment_ref
    }
    only = next(iter(refs)) if len(g.spec.targets) == 1 and refs else None
    return refs.get(st.status.winner or only or "")


def _promote(  # noqa: PLR0911 - one return per reason a tag does not move
    deps: GauntletDeps, g: Gauntlet, namespace: str, name: str, st: _Status
) -> float:
    """Move the Lane's tag on a pass, through the Lane controller's annotation; say why not."""
    promotion = g.spec.promotion
    lane_name = promotion.lane
    if st.status.verdict != "Pass":
        if st.reason("Promoted") != "NotPassed":
            st.status.promoted = False
            where = f"tag {promotion.tag} of Lane {lane_name} stays; " if lane_name else ""
            complete = next((c for c in st.status.conditions if c.type == "Complete"), None)
            why = complete.message[:500] if complete else ""
            st.set("Promoted", False, "NotPassed", f"{where}verdict {st.status.verdict}: {why}")
        return SETTLED
    if not promotion.enabled or lane_name is None:
        st.status.promoted = False
        why = (
            "spec.promotion.enabled is false" if not promotion.enabled else "no spec.promotion.lane"
        )
        st.set("Promoted", False, "NotRequested", why)
        return SETTLED
    mdep = _winner(g, st)
    if mdep is None:
        st.status.promoted = False
        st.set(
            "Promoted",
            False,
            "WinnerNotAModelDeployment",
            f"the winner {st.status.winner or '(none)'} is not a modelDeploymentRef target; "
            "a Lane's tag points at a ModelDeployment",
        )
        return SETTLED
    body = deps.kube.get("Lane", namespace, lane_name)
    if body is None:
        st.status.promoted = False
        st.set(
            "Promoted", False, "LaneNotFound", f"spec.promotion.lane: Lane {lane_name} not found"
        )
        return WAITING * 6
    tag, by = promotion.tag, f"gauntlet/{name}"
    try:
        lane_status = Lane.model_validate(body).status
    except ValidationError:
        lane_status = None
    records = lane_status.promotions if lane_status else []
    mine = next((p for p in records if p.tag == tag and p.model_deployment == mdep), None)
    if mine is not None:
        if st.reason("Promoted") != "Promoted":
            st.status.promoted = True
            st.set("Promoted", True, "Promoted", f"tag {tag} of Lane {lane_name} -> {mdep}")
        return SETTLED
    annotations = body["metadata"].get("annotations") or {}
    if st.reason("Promoted") == "Requested":
        if annotations.get(PROMOTE_ANNOTATION) == f"{tag}={mdep}":
            return BUSY  # the Lane controller has not consumed it yet
        st.status.promoted = False
        st.set(
            "Promoted",
            False,
            "NotApplied",
            f"Lane {lane_name} consumed the request but records no promotion of {tag} to {mdep}",
        )
        return SETTLED
    if st.reason("Promoted") in ("Promoted", "NotApplied"):
        return SETTLED  # once: a later rollback is a person's decision, not undone here
    ask = {PROMOTE_ANNOTATION: f"{tag}={mdep}", REQUESTED_BY_ANNOTATION: by}
    deps.kube.patch("Lane", namespace, lane_name, {"metadata": {"annotations": ask}})
    st.status.promoted = None
    st.set("Promoted", None, "Requested", f"asked Lane {lane_name} to move {tag} to {mdep}")
    return BUSY


def _follow(
    deps: GauntletDeps, namespace: str, job_name: str, result_name: str, st: _Status
) -> float | None:
    """Read one run's result and Job; None once the run has finished."""
    result = _result(deps.kube.get("ConfigMap", namespace, result_name))
    if result is not None:
        _record(st, result, f"configmap/{result_name}/{RESULT_KEY}")
        return None
    job = deps.kube.get("Job", namespace, job_name)
    state, detail = job_state(job)
    if state == "Failed":
        st.phase("Failed")
        st.status.completion_time = st.now
        st.set("Complete", False, "JobFailed", f"Job {job_name} failed without a result: {detail}")
        return None
    if state == "Succeeded":
        st.phase("Failed")
        st.status.completion_time = st.now
        st.set(
            "Complete",
            False,
            "NoResult",
            f"Job {job_name} completed but wrote no result to ConfigMap {result_name}",
        )
        return None
    if state == "Missing":
        st.phase("Failed")
        st.set("Complete", False, "JobMissing", f"Job {job_name} is gone and left no result")
        return None
    st.phase("Running")
    st.set("Complete", False, "Running", f"Job {job_name}: {detail}")
    return WAITING


def _start(deps: GauntletDeps, g: Gauntlet, meta: Manifest, st: _Status) -> float | None:
    """Render and start a run (or reuse a finished one); None once there is a result."""
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    # A new generation is a new evaluation: nothing of the last one's outcome carries over.
    st.status.job_name, st.status.report, st.status.verdict = None, None, None
    st.status.winner, st.status.suites = None, []
    st.status.completion_time, st.status.promoted = None, None
    st.status.conditions = [c for c in st.status.conditions if c.type != "Promoted"]
    try:
        inputs = Inputs(
            namespace=namespace,
            name=name,
            uid=uid,
            images=deps.images,
            gauntlet_image=deps.gauntlet_image,
            model_deployments=_model_deployments(deps.kube, namespace, g),
            gateway_url=deps.gateway_url,
            dataset_hashes=_dataset_hashes(deps.kube, namespace, g),
            node_selector=deps.node_selector,
            prices=deps.prices,
        )
        rendered = desired_run(g, inputs)
    except NotReadyError as exc:
        st.phase("Pending")
        st.set("TargetsReady", False, "TargetNotReady", str(exc))
        st.set("Complete", False, "Pending", "waiting for the targets")
        return WAITING
    except RenderError as exc:
        st.phase("Failed")
        st.set("Complete", False, "InvalidSpec", str(exc))
        return None
    st.set("TargetsReady", True, "Resolved", _targets_note(rendered))
    if rendered.eval_key and not g.spec.force:
        found = _reusable(deps.kube, namespace, rendered.eval_key, rendered.result_configmap)
        if found is not None:
            source, result = found
            _record(st, result, f"configmap/{source}/{RESULT_KEY}")
            st.events.append(
                (
                    "Normal",
                    "Reused",
                    f"the same evaluation (key {rendered.eval_key[:12]}) already ran: ConfigMap "
                    f"{source}; set spec.force to run it again",
                )
            )
            return None
    for obj in rendered.objects:
        deps.kube.apply(obj)
    st.status.job_name = rendered.job
    st.events.append(
        ("Normal", "JobCreated", f"Job {rendered.job} evaluates {_targets_note(rendered)}")
    )
    return _follow(deps, namespace, rendered.job, rendered.result_configmap, st)


def _targets_note(rendered: Rendered) -> str:
    return ", ".join(f"{t.name} ({t.model} at {t.endpoint})" for t in rendered.targets)


def _run_of(job_name: str) -> str:
    """The run id a Job's name ends with (``<gauntlet>-<run>``)."""
    return job_name.rsplit("-", 1)[-1]


def _reconcile(deps: GauntletDeps, g: Gauntlet, meta: Manifest, st: _Status) -> float:
    namespace, name = meta["namespace"], meta["name"]
    previous = st.previous
    same_generation = previous.observed_generation == st.generation
    if (meta.get("annotations") or {}).get(TEMPLATE_ANNOTATION):
        st.phase("Pending")
        st.set("Complete", False, "Template", f"a template ({TEMPLATE_ANNOTATION}): never run")
        return SETTLED
    finished = same_generation and previous.phase in ("Succeeded", "Failed")
    if not finished:
        if same_generation and previous.job_name:
            job = previous.job_name
            wait = _follow(deps, namespace, job, result_configmap_name(name, _run_of(job)), st)
        else:
            wait = _start(deps, g, meta, st)
        if wait is not None:
            return wait
    if st.status.verdict is None:
        return SETTLED  # could not run: nothing to promote
    return _promote(deps, g, namespace, name, st)


def reconcile(deps: GauntletDeps, namespace: str, name: str) -> float | None:
    """Bring one Gauntlet's run and status in line; seconds to the next look, None when gone."""
    body = deps.kube.get("Gauntlet", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    meta = body["metadata"]
    uid, generation = meta["uid"], int(meta.get("generation", 1))
    try:
        previous = GauntletStatus.model_validate(body.get("status") or {})
    except ValidationError:
        previous = GauntletStatus()
    st = _Status(previous, generation, deps.now())
    try:
        g = Gauntlet.model_validate(body)
    except ValidationError as exc:
        st.phase("Failed")
        st.set("Complete", False, "InvalidSpec", field_error(exc))
        requeue: float = SETTLED
    else:
        try:
            requeue = _reconcile(deps, g, meta, st)
        except KubeError as exc:
            if exc.status != 403:  # a missing permission is a condition, not a retry loop
                raise
            st.set("Complete", False, "Forbidden", exc.message)
            requeue = SETTLED
    _write_status(deps.kube, namespace, name, previous, st.status)
    ref = gauntlet_ref(namespace, name, uid)
    for type_, reason, message in st.events:
        post_event(deps.kube, ref, type_, reason, message)
    for changed in lifecycle.condition_changes(previous.conditions, st.status.conditions):
        good = changed.status == "True" or changed.reason in ("Running", "Requested", "Pending")
        post_event(
            deps.kube,
            ref,
            "Normal" if good else "Warning",
            changed.reason or changed.type,
            f"{changed.type}={changed.status}: {changed.message}",
        )
    return requeue


def _write_status(
    kube: Kube, namespace: str, name: str, previous: GauntletStatus, status: GauntletStatus
) -> None:
    if status == previous:
        return
    body = {
        "apiVersion": API_VERSION,
        "kind": "Gauntlet",
        "metadata": {"name": name, "namespace": namespace},
        "status": status.to_wire(),
    }
    try:
        kube.apply(body, subresource="status")
    except KubeError as exc:
        if not exc.not_found:
            raise


# --- ModelDeployment.spec.gauntlet -------------------------------------------------------------


def template_gauntlet_name(mdep: str, revision: str) -> str:
    """``<mdep>-<revision[:8]>``: one Gauntlet per resolved revision of a deployment."""
    return names.dns_label(mdep, f"-{revision[:8]}")


def ensure_from_template(  # noqa: PLR0911 - one return per reason nothing is created
    deps: GauntletDeps, namespace: str, name: str
) -> float | None:
    """Create the Gauntlet a Ready ModelDeployment's ``spec.gauntlet`` asks for, once per
    resolved revision (a provider model: once per model id). Never rewrites one that exists."""
    body = deps.kube.get("ModelDeployment", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    try:
        mdep = ModelDeployment.model_validate(body)
    except ValidationError:
        return None
    template = mdep.spec.gauntlet
    status = mdep.status
    if template is None or status is None or status.phase != "Ready":
        return None
    provider = mdep.spec.source.provider
    revision = status.resolved_revision or (
        names.digest(f"{provider.provider}/{provider.model}", 8) if provider else None
    )
    if not revision:
        return None
    gname = template_gauntlet_name(name, revision)
    if deps.kube.get("Gauntlet", namespace, gname) is not None:
        return None
    ref = {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "namespace": namespace,
        "name": name,
        "uid": body["metadata"]["uid"],
    }
    try:
        spec = _template_spec(deps.kube, namespace, mdep, name)
    except RenderError as exc:
        post_event(deps.kube, ref, "Warning", "InvalidGauntletTemplate", str(exc))
        return WAITING * 6
    obj = {
        "apiVersion": API_VERSION,
        "kind": "Gauntlet",
        "metadata": {
            "name": gname,
            "namespace": namespace,
            "labels": {
                common_labels.MANAGED_BY: common_labels.MANAGER,
                common_labels.MODEL_DEPLOYMENT: common_labels.value(name),
                REVISION_LABEL: revision[:63],
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelDeployment",
                    "name": name,
                    "uid": body["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
    try:
        deps.kube.create(obj)
    except KubeError as exc:
        if exc.conflict:
            return None
        if exc.status in (400, 422):
            post_event(deps.kube, ref, "Warning", "InvalidGauntletTemplate", exc.message)
            return WAITING * 6
        raise
    post_event(
        deps.kube, ref, "Normal", "GauntletCreated", f"Gauntlet {gname} evaluates {revision[:12]}"
    )
    return None


def _template_spec(kube: Kube, namespace: str, mdep: ModelDeployment, name: str) -> Manifest:
    """The Gauntlet spec: the named template's (targets replaced) or the listed suites."""
    template = mdep.spec.gauntlet
    assert template is not None  # noqa: S101 - checked by the caller
    target = [{"modelDeploymentRef": {"name": name}}]
    if template.name:
        body = kube.get("Gauntlet", namespace, template.name)
        if body is None:
            raise RenderError("spec.gauntlet.name", f"Gauntlet {template.name} not found")
        try:
            spec = Gauntlet.model_validate(body).spec.to_wire()
        except ValidationError as exc:
            raise RenderError(
                "spec.gauntlet.name", f"Gauntlet {template.name}: {field_error(exc)}"
            ) from None
        spec["targets"] = target
    else:
        known = get_args(SuiteName)
        for i, suite in enumerate(template.suites):
            if suite not in known:
                raise RenderError(
                    f"spec.gauntlet.suites[{i}]",
                    f"unknown suite {suite!r}; known: {', '.join(known)}",
                )
        spec = {"targets": target}
        if template.suites:
            spec["suites"] = {s: {"enabled": s in template.suites} for s in known}
    if template.promote_to_lane:
        spec["promotion"] = {
            "enabled": True,
            "lane": template.promote_to_lane,
            "tag": template.promote_tag,
        }
    return spec
