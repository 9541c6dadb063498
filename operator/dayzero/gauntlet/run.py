"""One harness run: the enabled suites in order against one endpoint, then the overall verdict.

Exit codes: 0 every suite passed, 1 a suite failed, 2 bad input (the CLI), 3 could not run
(the endpoint never answered, or a suite broke).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, Field

import dayzero
from dayzero.api.v1alpha1.gauntlet import Gates, SuiteName, Suites, Verdict

from . import compliance, latency, quality, sanity, stability, toolcalls
from .client import ChatClient
from .results import SuiteReport
from .spec import HarnessSettings, Provenance, RunSpec, Sampling

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNRUNNABLE = 0, 1, 2, 3
CHECKED = frozenset({"sanity", "compliance", "toolCalls"})
"""Suites whose items count towards ``gates.minPassRate``."""

Suite = Callable[[ChatClient, RunSpec], Awaitable[SuiteReport]]
SUITES: dict[SuiteName, Suite] = {
    "sanity": sanity.run,
    "compliance": compliance.run,
    "quality": quality.run,
    "latency": latency.run,
    "toolCalls": toolcalls.run,
    "stability": stability.run,
}


class RunReport(BaseModel):
    """Everything a run found, and what it ran against: the JSON results file."""

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

    def suite(self, name: SuiteName) -> SuiteReport:
        """The result of one suite (KeyError when it did not run)."""
        for r in self.results:
            if r.suite == name:
                return r
        raise KeyError(name)


async def run(spec: RunSpec, *, transport: httpx.AsyncBaseTransport | None = None) -> RunReport:
    """Run the enabled suites (stability last, over the whole timeline) and decide."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    results: list[SuiteReport] = []
    async with ChatClient(
        spec.endpoint,
        spec.model,
        api_key=spec.api_key,
        concurrency=spec.concurrency,
        timeout=spec.harness.timeout_seconds,
        transport=transport,
    ) as client:
        for name in spec.enabled():
            try:
                results.append(await SUITES[name](client, spec))
            except Exception as e:  # noqa: BLE001 - one broken suite is reported, the rest run
                results.append(
                    SuiteReport(
                        suite=name,
                        verdict="Error",
                        reason=f"the suite broke: {type(e).__name__}: {e}",
                    )
                )
        outcomes = client.outcomes
    verdict, reason, code = _decide(results)
    if outcomes and all(o.status == 0 for o in outcomes):
        verdict, code = "Error", EXIT_UNRUNNABLE
        reason = f"the endpoint never answered: {outcomes[0].error}"
    # The overall gate counts pass/fail checks; quality is scored against its own minScore and
    # latency and stability judge distributions, not items.
    items = [i for r in results if r.suite in CHECKED for i in r.items]
    figures = {"requests": float(len(outcomes))}
    if items:
        figures["passRate"] = sum(i.passed for i in items) / len(items)
        if code == EXIT_PASS and figures["passRate"] < spec.gates.min_pass_rate:
            verdict, code = "Fail", EXIT_FAIL
            reason = (
                f"overall pass rate {figures['passRate']:.0%} < gate {spec.gates.min_pass_rate:.0%}"
            )
    return RunReport(
        endpoint=spec.endpoint,
        model=spec.model,
        verdict=verdict,
        reason=reason,
        exit_code=code,
        started_at=started_at,
        duration_seconds=time.monotonic() - clock,
        concurrency=spec.concurrency,
        seed=spec.seed,
        sampling=spec.sampling,
        provenance=spec.provenance,
        gates=spec.gates,
        suites_config=spec.suites,
        harness=spec.harness,
        figures=figures,
        results=results,
    )


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
