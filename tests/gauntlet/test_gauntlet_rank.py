"""The bakeoff's order: gates, then the non-inferiority lower bound, then latency, then cost."""

from __future__ import annotations

from dayzero.gauntlet.rank import rank
from dayzero.gauntlet.results import SuiteReport, TargetReport
from dayzero.gauntlet.spec import Provenance


def t(name: str, *, passed: bool = True, lower: float = 0.0, p95: float = 1.0,
      cost: float | None = None) -> TargetReport:  # fmt: skip
    verdict = "Pass" if passed else "Fail"
    return TargetReport(
        name=name,
        endpoint="http://127.0.0.1:1/v1",
        model=name,
        verdict=verdict,
        exit_code=0 if passed else 1,
        provenance=Provenance(),
        figures={} if cost is None else {"costUsd": cost},
        suites=[
            SuiteReport(suite="diff", verdict=verdict, figures={"differenceLower95": lower}),
            SuiteReport(suite="latency", verdict="Pass", figures={"p95Seconds": p95}),
        ],
    )


def test_a_passing_target_beats_a_better_scoring_failing_one():
    targets = [t("fails", passed=False, lower=0.5), t("passes", lower=-0.01)]
    assert rank(targets) == "passes"
    assert [x.rank for x in targets] == [2, 1]


def test_the_lower_bound_then_latency_then_cost_break_ties():
    targets = [
        t("slow", lower=0.1, p95=3.0, cost=0.01),
        t("pricey", lower=0.1, p95=1.0, cost=0.05),
        t("best", lower=0.2, p95=9.0, cost=0.09),
        t("cheap", lower=0.1, p95=1.0, cost=0.01),
    ]
    assert rank(targets) == "best"
    assert {x.name: x.rank for x in targets} == {"best": 1, "cheap": 2, "pricey": 3, "slow": 4}


def test_no_winner_when_nobody_passed_and_run_order_breaks_exact_ties():
    targets = [t("a", passed=False), t("b", passed=False)]
    assert rank(targets) is None
    assert [x.rank for x in targets] == [1, 2]
