"""What a suite found: its verdict, key figures and the items behind them.

``SuiteReport.status`` gives the API's ``SuiteResult``, so a controller can copy the verdicts
into a Gauntlet's status without knowing the harness.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from dayzero.api.v1alpha1.gauntlet import SuiteName, SuiteResult, Verdict


class Item(BaseModel):
    """One checked request (a prompt, a tool case) and why it failed, if it did."""

    name: str
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    status: int = 0
    seconds: float | None = None
    answer: str = ""
    """The answer's first characters, for the report."""


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
