"""The diff: a candidate against the baseline on the same prompts (the rotation runbook's
differential test).

Both ran the same suites, so their items pair by name. The decision is a non-inferiority test on
the quality items' scores: the lower bound of the paired-bootstrap interval of (candidate -
baseline) must be above ``-gates.nonInferiorityMargin``. Beside it: the exact McNemar test on the
pass/fail pairs, the minimum detectable effect the dataset allows, tool-call pass/fail on both,
paired latency differences, estimated cost, and (with a judge) pairwise preferences asked in both
orders, where a win counts only when both orders agree.
"""

from __future__ import annotations

import asyncio
import math
import statistics

from dayzero.api.v1alpha1.gauntlet import Verdict

from .judge import Judge
from .quality import Case, load
from .results import Item, SuiteReport, TargetReport
from .review import Why
from .spec import RunSpec
from .stats import mcnemar_exact, min_detectable_effect, non_inferiority, paired_bootstrap

PAIRED_SUITES = ("sanity", "compliance", "quality", "toolCalls")
"""Suites whose items are the same prompts on both sides, for paired latency."""
DEFAULT_RUBRIC = "A correct, complete and direct answer to the question."


def _items(t: TargetReport, suite: str) -> dict[str, Item]:
    for r in t.suites:
        if r.suite == suite:
            return {i.name: i for i in r.items}
    return {}


async def run(
    spec: RunSpec, target: TargetReport, base: TargetReport, judge: Judge | None
) -> SuiteReport:
    """Compare ``target`` with ``base``; with a judge, ask it for pairwise preferences first."""
    pairwise: list[Item] = []
    if judge is not None and spec.harness.dataset:
        cases, _ = load(spec.harness.dataset)
        mine, theirs = _items(target, "quality"), _items(base, "quality")
        judge.target = target.name
        pairwise = list(
            await asyncio.gather(
                *(
                    _compare(judge, c, mine[c.name], theirs[c.name])
                    for c in cases
                    if c.name in mine
                    and c.name in theirs
                    and mine[c.name].full_answer is not None
                    and theirs[c.name].full_answer is not None
                )
            )
        )
    return decide(spec, target, base, pairwise)


async def _compare(judge: Judge, case: Case, mine: Item, theirs: Item) -> Item:
    candidate, baseline = mine.full_answer or "", theirs.full_answer or ""
    c = await judge.compare(
        case.prompt, candidate, baseline, case.rubric or DEFAULT_RUBRIC, case.reference
    )
    item = Item(
        name=f"pairwise {case.name}",
        passed=c.outcome != "baseline",
        outcome=c.outcome,
        decided_by="judge",
        answer=f"{c.outcome}",
    )
    if c.flipped or c.abstained:
        why: Why = "flip" if c.flipped else "abstain"
        item.review = judge.queue(
            kind="pairwise",
            why=why,
            suite="diff",
            case=case.name,
            prompt=case.prompt,
            answers={"candidate": candidate, "baseline": baseline},
            judge=list(c.raw),
            provisional="tie",
        )
        item.reasons = [
            (
                "the judge flipped when the answers swapped places"
                if c.flipped
                else "the judge abstained"
            )
            + f": a tie until review {item.review}"
        ]
    elif c.outcome == "baseline":
        item.reasons = ["the judge preferred the baseline in both orders"]
    return item


def decide(
    spec: RunSpec, target: TargetReport, base: TargetReport, pairwise: list[Item]
) -> SuiteReport:
    """The diff's verdict from both targets' items (also after a human decided some). Its items
    are the pairwise judgements, then one per tool-call case with both sides' results."""
    pairwise = [i for i in pairwise if i.outcome is not None]
    items = pairwise + _tool_items(target, base)
    mine, theirs = _items(target, "quality"), _items(base, "quality")
    # A request the baseline failed says nothing about quality; counted as 0 it would flatter
    # the candidate, so that pair is left out (and counted).
    names = [n for n in mine if n in theirs and theirs[n].status == 200]
    if not names:
        return SuiteReport(
            suite="diff",
            verdict="Error",
            reason=f"no quality items to pair with baseline {base.name}"
            + (f" (the baseline could not run: {base.reason})" if base.exit_code == 3 else ""),
            items=items,
        )
    margin = spec.gates.non_inferiority_margin
    h = spec.harness
    diffs = [mine[n].value - theirs[n].value for n in names]
    mean, low, high = paired_bootstrap(
        diffs, seed=spec.seed, resamples=h.bootstrap_resamples, level=h.confidence
    )
    b = sum(mine[n].passed and not theirs[n].passed for n in names)
    c = sum(theirs[n].passed and not mine[n].passed for n in names)
    p = mcnemar_exact(b, c)
    n = len(names)
    sd = statistics.pstdev(diffs) if n > 1 else 0.0
    # With no observed disagreement, the smallest spread the data could show: one discordant pair.
    mde = min_detectable_effect(n, sd or math.sqrt(1 / n), alpha=1 - h.confidence)
    decision = non_inferiority(low, high, margin)
    figures = {
        "pairs": float(n),
        "baselineFailedRequests": float(sum(theirs[x].status != 200 for x in mine if x in theirs)),
        "candidateMean": statistics.fmean(mine[x].value for x in names),
        "baselineMean": statistics.fmean(theirs[x].value for x in names),
        "meanDifference": mean,
        "differenceLower95": low,
        "differenceUpper95": high,
        "nonInferiorityMargin": margin,
        "mcnemarCandidateOnly": float(b),
        "mcnemarBaselineOnly": float(c),
        "mcnemarP": p,
        "minDetectableEffect": mde,
    }
    figures |= _tools(target, base) | _latency(spec, target, base) | _cost(target, base)
    figures |= _pairwise(pairwise)
    summary = (
        f"candidate - baseline {base.name} = {mean:+.3f} ({h.confidence:.0%} CI {low:+.3f}.."
        f"{high:+.3f}) over {n} pairs, margin -{margin:g}, McNemar p={p:.3g} "
        f"({b} candidate-only, {c} baseline-only), minimum detectable effect {mde:.3f}"
    )
    verdict: Verdict = "Pass" if decision in ("better", "non-inferior") else "Fail"
    reason = None if verdict == "Pass" else f"{decision}: {summary}"
    return SuiteReport(
        suite="diff",
        verdict=verdict,
        reason=reason,
        figures=figures,
        items=items,
        decision=decision,
    )


def _tools(target: TargetReport, base: TargetReport) -> dict[str, float]:
    mine, theirs = _items(target, "toolCalls"), _items(base, "toolCalls")
    names = [n for n in mine if n in theirs]
    if not names:
        return {}
    b = sum(mine[n].passed and not theirs[n].passed for n in names)
    c = sum(theirs[n].passed and not mine[n].passed for n in names)
    return {
        "toolCallsCandidatePassed": float(sum(mine[n].passed for n in names)),
        "toolCallsBaselinePassed": float(sum(theirs[n].passed for n in names)),
        "toolCallsCases": float(len(names)),
        "toolCallsMcnemarP": mcnemar_exact(b, c),
    }


def _tool_items(target: TargetReport, base: TargetReport) -> list[Item]:
    """Each tool-call case on both sides: it passes when the candidate's call passed."""
    mine, theirs = _items(target, "toolCalls"), _items(base, "toolCalls")
    out = []
    for name, item in mine.items():
        other = theirs.get(name)
        if other is None:
            continue
        both = (
            f"candidate {'pass' if item.passed else 'fail'}, "
            f"baseline {'pass' if other.passed else 'fail'}"
        )
        out.append(
            Item(
                name=f"toolCalls {name}",
                passed=item.passed,
                reasons=[] if item.passed else [f"{both}: {'; '.join(item.reasons)}"],
                answer=both,
            )
        )
    return out


def _latency(spec: RunSpec, target: TargetReport, base: TargetReport) -> dict[str, float]:
    diffs = []
    for suite in PAIRED_SUITES:
        mine, theirs = _items(target, suite), _items(base, suite)
        for name, item in mine.items():
            other = theirs.get(name)
            if other and item.seconds is not None and other.seconds is not None:
                diffs.append(item.seconds - other.seconds)
    if not diffs:
        return {}
    h = spec.harness
    mean, low, high = paired_bootstrap(
        diffs, seed=spec.seed, resamples=h.bootstrap_resamples, level=h.confidence
    )
    return {
        "latencyPairs": float(len(diffs)),
        "latencyMedianDifferenceSeconds": statistics.median(diffs),
        "latencyMeanDifferenceSeconds": mean,
        "latencyDifferenceLower95": low,
        "latencyDifferenceUpper95": high,
    }


def _cost(target: TargetReport, base: TargetReport) -> dict[str, float]:
    mine, theirs = target.figures.get("costUsd"), base.figures.get("costUsd")
    out = {}
    if mine is not None:
        out["candidateCostUsd"] = mine
    if theirs is not None:
        out["baselineCostUsd"] = theirs
    if mine is not None and theirs is not None:
        out["costDifferenceUsd"] = mine - theirs
    return out


def _pairwise(items: list[Item]) -> dict[str, float]:
    if not items:
        return {}
    return {
        "judgeWins": float(sum(i.outcome == "candidate" for i in items)),
        "judgeLosses": float(sum(i.outcome == "baseline" for i in items)),
        "judgeTies": float(sum(i.outcome == "tie" for i in items)),
        "judgeReview": float(sum(i.review is not None and i.decided_by != "human" for i in items)),
    }
