"""One harness run: every target (and the baseline) through the enabled suites in order, then the
diff against the baseline, the ranking and the overall verdict.

Exit codes: 0 the winner (or the single target) passed every suite, 1 no target passed, 2 bad
input (the CLI), 3 could not run (every target's endpoint never answered, or a suite broke).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from dayzero.api.v1alpha1.gauntlet import SuiteName, Verdict

from . import compliance, diff, latency, quality, sanity, stability, toolcalls
from .client import ChatClient, Outcome
from .judge import Judge
from .rank import rank
from .results import JudgeInfo, RunReport, SuiteReport, TargetReport
from .spec import RunSpec, TargetSpec

__all__ = ["EXIT_FAIL", "EXIT_PASS", "EXIT_UNRUNNABLE", "EXIT_USAGE", "RunReport", "run"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNRUNNABLE = 0, 1, 2, 3
CHECKED = frozenset({"sanity", "compliance", "toolCalls"})
"""Suites whose items count towards ``gates.minPassRate``."""

Suite = Callable[[ChatClient, RunSpec, Judge | None], Awaitable[SuiteReport]]
SUITES: dict[SuiteName, Suite] = {
    "sanity": lambda c, s, _j: sanity.run(c, s),
    "compliance": compliance.run,
    "quality": quality.run,
    "latency": lambda c, s, _j: latency.run(c, s),
    "toolCalls": lambda c, s, _j: toolcalls.run(c, s),
    "stability": lambda c, s, _j: stability.run(c, s),
}


async def run(
    spec: RunSpec,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    judge: Judge | None = None,
) -> RunReport:
    """Run the baseline (when the diff needs it), then each target in order; diff, rank and
    decide. ``judge`` defaults to one built from ``spec.judge``; its review items stay on it."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    own_judge = judge is None and spec.judge is not None
    if own_judge and spec.judge:
        judge = Judge(
            spec.judge,
            concurrency=spec.concurrency,
            timeout=spec.harness.timeout_seconds,
            transport=transport,
        )
    try:
        names: list[SuiteName] = [n for n in spec.enabled() if n != "diff"]
        base = None
        if spec.baseline is not None and "diff" in spec.enabled():
            base = await _run_target(spec, spec.baseline, names, judge, transport)
        reports = [
            await _run_target(spec, t, names, judge, transport) for t in spec.resolved_targets()
        ]
        if base is not None:
            for t in reports:
                t.suites.append(await diff.run(spec, t, base, judge))
                _decide_target(t, spec)
    finally:
        if own_judge and judge is not None:
            await judge.aclose()
    return finish(spec, reports, base, started_at, time.monotonic() - clock)


def finish(
    spec: RunSpec,
    reports: list[TargetReport],
    base: TargetReport | None,
    started_at: datetime,
    duration: float,
) -> RunReport:
    """Rank the targets, name the winner and build the report (also after a review is applied)."""
    winner = rank(reports)
    primary = next((t for t in reports if t.name == winner), reports[0])
    if winner is not None:
        verdict: Verdict = "Pass"
        reason, code = None, EXIT_PASS
    elif all(t.exit_code == EXIT_UNRUNNABLE for t in reports):
        verdict, code = "Error", EXIT_UNRUNNABLE
        reason = "; ".join(f"{t.name}: {t.reason}" for t in reports)
    else:
        verdict, code = "Fail", EXIT_FAIL
        reason = (
            primary.reason
            if len(reports) == 1
            else "no target passed: " + "; ".join(f"{t.name}: {t.reason}" for t in reports)
        )
    figures = dict(primary.figures)
    figures["targets"] = float(len(reports))
    return RunReport(
        endpoint=primary.endpoint,
        model=primary.model,
        verdict=verdict,
        reason=reason,
        exit_code=code,
        started_at=started_at,
        duration_seconds=duration,
        concurrency=spec.concurrency,
        seed=spec.seed,
        sampling=spec.sampling,
        provenance=primary.provenance,
        gates=spec.gates,
        suites_config=spec.suites,
        harness=spec.harness,
        figures=figures,
        results=primary.suites,
        targets=reports,
        baseline=base,
        winner=winner,
        judge=(
            JudgeInfo(
                endpoint=spec.judge.endpoint,
                model=spec.judge.model,
                family=spec.judge.resolved_family(),
            )
            if spec.judge
            else None
        ),
    )


async def _run_target(
    spec: RunSpec,
    target: TargetSpec,
    names: list[SuiteName],
    judge: Judge | None,
    transport: httpx.AsyncBaseTransport | None,
) -> TargetReport:
    """One target through the suites (one broken suite is reported, the rest run)."""
    own = spec.for_target(target)
    results: list[SuiteReport] = []
    async with ChatClient(
        target.endpoint,
        target.model,
        api_key=target.api_key,
        concurrency=spec.concurrency,
        timeout=spec.harness.timeout_seconds,
        transport=transport,
    ) as client:
        if judge is not None:
            judge.target = target.name
        for name in names:
            try:
                results.append(await SUITES[name](client, own, judge))
            except Exception as e:  # noqa: BLE001 - one broken suite is reported, the rest run
                results.append(
                    SuiteReport(
                        suite=name,
                        verdict="Error",
                        reason=f"the suite broke: {type(e).__name__}: {e}",
                    )
                )
        outcomes = client.outcomes
    report = TargetReport(
        name=target.name,
        endpoint=target.endpoint,
        model=target.model,
        family=target.resolved_family(),
        verdict="Error",
        exit_code=EXIT_UNRUNNABLE,
        provenance=own.provenance,
        figures={
            "requests": float(len(outcomes)),
            "answered": float(sum(o.status != 0 for o in outcomes)),
            **usage(outcomes, spec, target.model),
        },
        suites=results,
    )
    _decide_target(report, spec)
    if outcomes and all(o.status == 0 for o in outcomes):
        report.verdict, report.exit_code = "Error", EXIT_UNRUNNABLE
        report.reason = f"the endpoint never answered: {outcomes[0].error}"
    return report


def usage(outcomes: list[Outcome], spec: RunSpec, model: str) -> dict[str, float]:
    """Tokens used (the server's usage when sent, else estimated) and their estimated cost."""
    prompt = sum(o.prompt_tokens for o in outcomes)
    completion = sum(o.output_tokens for o in outcomes)
    figures = {"promptTokens": float(prompt), "completionTokens": float(completion)}
    price = spec.prices.get(model)
    if price is not None:
        figures["costUsd"] = (
            prompt * price.input_usd_per_million + completion * price.output_usd_per_million
        ) / 1e6
    return figures


def _decide_target(report: TargetReport, spec: RunSpec) -> None:
    """The target's verdict from its suites, then the overall pass-rate gate."""
    if report.figures.get("requests") and not report.figures.get("answered"):
        return  # never answered: it stays Error, whatever its suites say
    verdict, reason, code = _decide(report.suites)
    # The overall gate counts pass/fail checks; quality is scored against its own minScore and
    # latency and stability judge distributions, not items.
    items = [i for r in report.suites if r.suite in CHECKED for i in r.items]
    if items:
        report.figures["passRate"] = sum(i.passed for i in items) / len(items)
        if code == EXIT_PASS and report.figures["passRate"] < spec.gates.min_pass_rate:
            verdict, code = "Fail", EXIT_FAIL
            reason = (
                f"overall pass rate {report.figures['passRate']:.0%} < gate "
                f"{spec.gates.min_pass_rate:.0%}"
            )
    report.verdict, report.reason, report.exit_code = verdict, reason, code


def redecide(report: TargetReport, spec: RunSpec) -> None:
    """Decide a target again after its items changed (a recorded review verdict)."""
    _decide_target(report, spec)


def _decide(results: list[SuiteReport]) -> tuple[Verdict, str | None, int]:
    if not results:
        return "Error", "no suite ran", EXIT_UNRUNNABLE
    broken = [r for r in results if r.verdict == "Error"]
    if broken:
        return "Error", f"{broken[0].suite}: {broken[0].reason}", EXIT_UNRUNNABLE
    failed = [r for r in results if r.verdict == "Fail"]
    if failed:
        return "Fail", "; ".join(f"{r.suite}: {r.reason}" for r in failed), EXIT_FAIL
    return "Pass", None, EXIT_PASS
