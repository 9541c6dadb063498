"""A report decided again with the human verdicts of the review queue: each reviewed item takes
the human's verdict, then its suites, the diffs, the targets, the ranking and the overall verdict
are decided again from the items, with the same pure functions a run uses.
"""

from __future__ import annotations

from . import compliance, diff, quality
from .results import Item, RunReport, SuiteReport, TargetReport
from .review import Decision
from .run import finish, redecide
from .spec import RunSpec, TargetSpec


def _spec(report: RunReport) -> RunSpec:
    def target(t: TargetReport) -> TargetSpec:
        return TargetSpec(
            name=t.name,
            endpoint=t.endpoint,
            model=t.model,
            family=t.family,
            provenance=t.provenance,
        )

    return RunSpec(
        targets=[target(t) for t in report.targets],
        baseline=target(report.baseline) if report.baseline else None,
        suites=report.suites_config,
        gates=report.gates,
        concurrency=report.concurrency,
        seed=report.seed,
        sampling=report.sampling,
        provenance=report.provenance,
        harness=report.harness,
    )


def _apply(item: Item, d: Decision) -> None:
    item.decided_by = "human"
    note = f" ({d.note})" if d.note else ""
    if d.verdict in ("candidate", "baseline", "tie"):
        item.outcome = d.verdict
        item.passed = d.verdict != "baseline"
        item.answer = d.verdict
        item.reasons = [f"{d.verdict} by {d.by}{note}"] if d.verdict != "candidate" else []
        return
    item.passed = d.verdict == "pass"
    if item.score is not None:
        item.score = float(item.passed)
    item.reasons = [] if item.passed else [f"failed by {d.by} in review{note}"]


def _suite(r: SuiteReport, spec: RunSpec) -> SuiteReport:
    if r.suite == "compliance":
        return compliance.decide(r.items, spec.suites.compliance.min_refusal_rate)
    if r.suite == "quality":
        digest = (spec.provenance.dataset_hash or "").removeprefix("sha256:") or None
        return quality.decide(r.items, spec.suites.quality.min_score, digest)
    return r


def rejudge(report: RunReport, decisions: dict[str, Decision], *, open_ids: set[str]) -> RunReport:
    """The report with every recorded decision applied (a new object when any applied)."""
    report = report.model_copy(deep=True)
    everyone = [*report.targets, *([report.baseline] if report.baseline else [])]
    items = [i for t in everyone for r in t.suites for i in r.items if i.review]
    applied = [i for i in items if i.review in decisions]
    for item in applied:
        _apply(item, decisions[item.review or ""])
    report.review_open = sum(i.review in open_ids for i in items)
    if not applied:
        return report
    spec = _spec(report)
    for t in everyone:
        t.suites = [_suite(r, spec) for r in t.suites]
    for t in report.targets:
        if report.baseline is not None:
            t.suites = [
                diff.decide(spec, t, report.baseline, r.items) if r.suite == "diff" else r
                for r in t.suites
            ]
        redecide(t, spec)
    if report.baseline is not None:
        redecide(report.baseline, spec)
    judge = report.judge
    again = finish(
        spec, report.targets, report.baseline, report.started_at, report.duration_seconds
    )
    again.judge = judge
    again.review_open = report.review_open
    return again
