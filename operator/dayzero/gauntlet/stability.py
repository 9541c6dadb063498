"""Stability: a sliding window over the whole run's timeline; a window in which 503s and 429s
("no healthy worker", "slow down") exceed the allowed share fails the suite.

It runs last and adds its own steady load, so it judges every request the run made: a
deployment that flaps during the latency suite fails here even if its p95 looked fine.
"""

from __future__ import annotations

from typing import Any

from .client import THROTTLED, ChatClient, Outcome
from .results import SuiteReport
from .spec import RunSpec

PROMPT = "Say OK."


def bad_periods(
    outcomes: list[Outcome], window: float, max_rate: float, min_requests: int
) -> list[tuple[float, float, int, int]]:
    """Periods ``(start, end, throttled, total)`` in which 503/429 exceed ``max_rate``.

    A window opens at each request and spans ``window`` seconds of start times. Every window over
    the rate contributes the span from its first to its last throttled request; overlapping
    spans merge into one period."""
    timeline = sorted(outcomes, key=lambda o: o.started)
    spans: list[tuple[float, float]] = []
    for i, first in enumerate(timeline):
        inside = [o for o in timeline[i:] if o.started < first.started + window]
        throttled = [o.started for o in inside if o.status in THROTTLED]
        if len(inside) >= min_requests and len(throttled) / len(inside) > max_rate:
            spans.append((throttled[0], throttled[-1]))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    periods = []
    for start, end in merged:
        inside = [o for o in timeline if start <= o.started <= end]
        periods.append((start, end, sum(o.status in THROTTLED for o in inside), len(inside)))
    return periods


async def run(client: ChatClient, spec: RunSpec) -> SuiteReport:
    """Add ``harness.stability_requests`` to the run, then judge its whole timeline."""
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 8,
        **spec.sampling.model_dump(exclude_none=True),
    }
    await client.chat_many([body] * spec.harness.stability_requests)
    suite = spec.suites.stability
    outcomes = list(client.outcomes)
    throttled = [o for o in outcomes if o.status in THROTTLED]
    periods = bad_periods(
        outcomes,
        suite.window_seconds,
        suite.max_error_rate_in_window,
        spec.harness.stability_min_window_requests,
    )
    figures = {
        "requests": float(len(outcomes)),
        "throttled": float(len(throttled)),
        "otherErrors": float(sum(not o.ok and o.status not in THROTTLED for o in outcomes)),
        "badPeriods": float(len(periods)),
        "throttledSeconds": sum(end - start for start, end, _, _ in periods),
    }
    if not outcomes:
        return SuiteReport(suite="stability", verdict="Fail", reason="no requests", figures=figures)
    if not periods:
        return SuiteReport(suite="stability", verdict="Pass", figures=figures)
    codes = sorted({o.status for o in throttled})
    start, end, bad, total = max(periods, key=lambda p: p[2])
    reason = (
        f"sustained {'/'.join(map(str, codes))}: {bad}/{total} requests throttled between "
        f"{start:.2f}s and {end:.2f}s of the run (over {suite.max_error_rate_in_window:.0%} "
        f"in a {suite.window_seconds:g}s window)"
    )
    return SuiteReport(suite="stability", verdict="Fail", reason=reason, figures=figures)
