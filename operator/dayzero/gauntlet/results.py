"""What a run found: per target, each suite's verdict, key figures and the items behind them.

``RunReport.suite_results`` (and ``SuiteReport.status``) give the API's ``SuiteResult``, so a
controller can copy the verdicts into a Gauntlet's status without knowing the harness.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

import dayzero
from dayzero.api.v1alpha1.gauntlet import Gates, SuiteName, SuiteResult, Suites, Verdict

from .spec import HarnessSettings, Provenance, Sampling


class Item(BaseModel):
    """One checked request (a prompt, a tool case) and why it failed, if it did."""

    name: str
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    status: int = 0
    seconds: float | None = None
    answer: str = ""
    """The answer's first characters, for the report."""
    score: float | None = None
    """A graded score in [0, 1] (the judge's rubric); None: 1 when passed, else 0."""
    decided_by: str | None = None
    """Who decided: ``keyword``, ``judge``, ``human`` or the scorer's name."""
    review: str | None = None
    """The review-queue item id when the judge abstained or flipped on it."""
    outcome: str | None = None
    """A pairwise outcome (``candidate``, ``baseline``, ``tie``), for the diff suite."""
    full_answer: str | None = Field(default=None, exclude=True, repr=False)
    """The whole answer, kept in memory for the judge; never written."""

    @property
    def value(self) -> float:
        """The item's score: ``score`` when graded, else 1 or 0."""
        return self.score if self.score is not None else float(self.passed)


class SuiteReport(BaseModel):
    """A suite's verdict for one target, with the evidence."""

    suite: SuiteName
    verdict: Verdict
    reason: str | None = None
    """Why it failed (or could not run), in one line."""
    figures: dict[str, float] = Field(default_factory=dict)
    items: list[Item] = Field(default_factory=list)
    latencies: list[float] = Field(default_factory=list)
    """Measured total latencies, for the histogram."""
    decision: str | None = None
    """The diff suite's non-inferiority decision: ``better``, ``non-inferior``,
    ``inconclusive`` or ``inferior``."""

    def status(self, target: str) -> SuiteResult:
        """The API's view of this result."""
        return SuiteResult(
            target=target,
            suite=self.suite,
            verdict=self.verdict,
            reason=self.reason,
            figures=self.figures,
        )


def excerpt(text: str, limit: int = 160) -> str:
    """The start of an answer, one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def pass_rate_report(suite: SuiteName, items: list[Item], min_pass_rate: float) -> SuiteReport:
    """Pass when the share of passing items reaches ``min_pass_rate``; the reason quotes the
    first failures."""
    passed = sum(i.passed for i in items)
    rate = passed / len(items) if items else 0.0
    figures = {"passRate": rate, "items": float(len(items)), "failed": float(len(items) - passed)}
    if items and rate >= min_pass_rate:
        return SuiteReport(suite=suite, verdict="Pass", figures=figures, items=items)
    failing = [f"{i.name}: {'; '.join(i.reasons)}" for i in items if not i.passed]
    reason = (
        f"pass rate {rate:.0%} < {min_pass_rate:.0%} ({len(items) - passed}/{len(items)} failed): "
        + " | ".join(failing[:3])
        if items
        else "no items ran"
    )
    return SuiteReport(suite=suite, verdict="Fail", reason=reason, figures=figures, items=items)


class TargetReport(BaseModel):
    """One target's verdict over its suites, and what it ran against."""

    name: str
    endpoint: str
    model: str
    family: str | None = None
    verdict: Verdict
    reason: str | None = None
    exit_code: int
    provenance: Provenance
    figures: dict[str, float] = Field(default_factory=dict)
    """Run-level figures: requests, passRate, promptTokens, completionTokens, costUsd."""
    suites: list[SuiteReport] = Field(default_factory=list)
    rank: int | None = None
    """1 for the best target of the run; None for the baseline."""

    def suite(self, name: SuiteName) -> SuiteReport:
        """The result of one suite (KeyError when it did not run)."""
        for r in self.suites:
            if r.suite == name:
                return r
        raise KeyError(name)


class JudgeInfo(BaseModel):
    """Which judge ran, for the report (never its key)."""

    endpoint: str
    model: str
    family: str | None = None


class RunReport(BaseModel):
    """Everything a run found, and what it ran against: the JSON results file.

    ``targets`` holds every candidate in run order; ``endpoint``, ``model``, ``provenance`` and
    ``results`` repeat the primary target (the winner, else the first), so a single-target
    results.json reads as it always did.
    """

    harness_version: str = dayzero.__version__
    endpoint: str
    model: str
    verdict: Verdict
    reason: str | None = None
    exit_code: int
    started_at: datetime
    duration_seconds: float
    concurrency: int
    seed: int
    sampling: Sampling
    provenance: Provenance
    gates: Gates
    suites_config: Suites
    harness: HarnessSettings
    figures: dict[str, float] = Field(default_factory=dict)
    results: list[SuiteReport] = Field(default_factory=list)
    targets: list[TargetReport] = Field(default_factory=list)
    baseline: TargetReport | None = None
    winner: str | None = None
    """The best-ranked target that passed every enabled suite; None when none did."""
    judge: JudgeInfo | None = None
    review_open: int = 0
    """Review-queue items that still wait for a human verdict."""

    def suite(self, name: SuiteName) -> SuiteReport:
        """The primary target's result of one suite (KeyError when it did not run)."""
        for r in self.results:
            if r.suite == name:
                return r
        raise KeyError(name)

    def target(self, name: str) -> TargetReport:
        """One target's report by name (KeyError when there is none)."""
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    def suite_results(self) -> list[SuiteResult]:
        """Every target's suites as the API's ``SuiteResult`` (target = the target's name), in
        run order: what a controller copies into ``Gauntlet.status.suites``."""
        return [r.status(t.name) for t in self.targets for r in t.suites]
