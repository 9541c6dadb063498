"""The bakeoff's order: gate results first, then the non-inferiority lower bound (or the quality
score), then latency, then cost; the winner is the best target that passed every suite.

Pure: it reads the targets' reports and writes only their ``rank``.
"""

from __future__ import annotations

import math

from .results import TargetReport


def _figure(t: TargetReport, suite: str, name: str) -> float | None:
    for r in t.suites:
        if r.suite == suite and name in r.figures:
            return r.figures[name]
    return None


def key(t: TargetReport) -> tuple[float, ...]:
    """Smaller is better: (failed?, suites not passed, -quality, p95, cost)."""
    failed = float(t.verdict != "Pass")
    not_passed = float(sum(r.verdict != "Pass" for r in t.suites))
    quality = _figure(t, "diff", "differenceLower95")
    if quality is None:
        quality = _figure(t, "quality", "meanScore")
    p95 = _figure(t, "latency", "p95Seconds")
    cost = t.figures.get("costUsd")
    return (
        failed,
        not_passed,
        -(quality if quality is not None else 0.0),
        p95 if p95 is not None else math.inf,
        cost if cost is not None else math.inf,
    )


def rank(targets: list[TargetReport]) -> str | None:
    """Number the targets 1.. (ties keep run order) and return the winner's name, or None when
    no target passed."""
    ordered = sorted(enumerate(targets), key=lambda it: (*key(it[1]), it[0]))
    for place, (_, t) in enumerate(ordered, 1):
        t.rank = place
    best = ordered[0][1] if ordered else None
    return best.name if best is not None and best.verdict == "Pass" else None
