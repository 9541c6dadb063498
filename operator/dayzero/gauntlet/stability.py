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
    """Merged periods ``(start, end, throttled, total)`` whose windows exceed ``max_rate``.

    A window starts at each request and spans ``window`` seconds of request start times."""
    timeline = sorted(outcomes, key=lambda o: o.started)
    periods: list[tuple[float, float, int, int]] = []
    for i, first in enumerate(timeline):
        inside = [o for o in timeline[i:] if o.started < first.started + window]
        throttled = [o for o in inside if o.status in THROTTLED]
        if len(inside) < min_requests or len(throttled) / len(inside) <= max_rate:
            continue
        start, end = throttled[0].started, throttled[-1].started
        if periods and start <= periods[-1][1]:
            p = periods[-1]
            ids = {id(o) for o in timeline if p[0] <= o.started <= max(end, p[1])}
            merged = [o for o in timeline if id(o) in ids]
            periods[-1] = (
                p[0],
                max(end, p[1]),
                sum(o.status in THROTTLED for o in merged),
                len(merged),
            )
        else:
            periods.append((start, end, len(throttled), len(inside)))
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
