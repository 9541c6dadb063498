"""Latency: p50, p95, max and time-to-first-token at a fixed concurrency, after warm-up, with
bootstrap confidence intervals. A request over the max gate is a hard failure on its own; the
p95 gate is judged on the point estimate (the interval is reported beside it).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from .client import ChatClient
from .results import Item, SuiteReport, excerpt
from .spec import RunSpec
from .stats import bootstrap_ci, percentile

PROMPT = "Explain in two sentences what a load balancer does."


def _p(q: float) -> Callable[[Sequence[float]], float]:
    """The q-th percentile as a statistic for the bootstrap."""

    def statistic(values: Sequence[float]) -> float:
        return percentile(values, q)

    return statistic


async def run(client: ChatClient, spec: RunSpec) -> SuiteReport:
    """Warm up, then measure ``requests`` requests with ``concurrency`` in flight."""
    suite = spec.suites.latency
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": suite.max_tokens,
        **spec.sampling.model_dump(exclude_none=True),
    }
    await client.chat_many([body] * suite.warmup)
    outcomes = await client.chat_many([body] * suite.requests)
    gates = spec.gates
    items = []
    for n, o in enumerate(outcomes):
        reasons = [] if o.ok else [o.error or f"HTTP {o.status}"]
        if o.total is not None and o.total > gates.max_seconds:
            reasons.append(f"took {o.total:.3f}s > max {gates.max_seconds:g}s")
        items.append(
            Item(
                name=f"request-{n}",
                passed=not reasons,
                reasons=reasons,
                status=o.status,
                seconds=o.total,
                answer=excerpt(o.text, 80),
            )
        )
    ok = [o for o in outcomes if o.ok and o.total is not None]
    totals = [o.total for o in ok if o.total is not None]
    if not totals:
        first = next((i.reasons[0] for i in items if i.reasons), "no answers")
        return SuiteReport(
            suite="latency", verdict="Fail", reason=f"no request succeeded: {first}", items=items
        )
    ttfts = [o.ttft for o in ok if o.ttft is not None]
    per_token = [p for o in ok if (p := o.per_token) is not None]
    h = spec.harness
    figures: dict[str, float] = {
        "requests": float(len(outcomes)),
        "succeeded": float(len(totals)),
        "concurrency": float(spec.concurrency),
        "p50Seconds": percentile(totals, 50),
        "p95Seconds": percentile(totals, 95),
        "maxSeconds": max(totals),
        "meanSeconds": statistics.fmean(totals),
    }
    for name, q in (("p50Seconds", 50), ("p95Seconds", 95)):
        low, high = bootstrap_ci(
            totals, _p(q), seed=spec.seed, resamples=h.bootstrap_resamples, level=h.confidence
        )
        figures[f"{name}Low"], figures[f"{name}High"] = low, high
    if ttfts:
        figures["ttftP50Seconds"] = percentile(ttfts, 50)
        figures["ttftP95Seconds"] = percentile(ttfts, 95)
        low, high = bootstrap_ci(
            ttfts, _p(50), seed=spec.seed, resamples=h.bootstrap_resamples, level=h.confidence
        )
        figures["ttftP50SecondsLow"], figures["ttftP50SecondsHigh"] = low, high
    if per_token:
        figures["perTokenP50Seconds"] = percentile(per_token, 50)
    reasons = []
    over = [t for t in totals if t > gates.max_seconds]
    if over:
        reasons.append(
            f"{len(over)} request(s) over the max gate {gates.max_seconds:g}s "
            f"(slowest {max(over):.3f}s): a hard failure"
        )
    if figures["p95Seconds"] > gates.p95_seconds:
        reasons.append(
            f"p95 {figures['p95Seconds']:.3f}s > gate {gates.p95_seconds:g}s "
            f"({h.confidence:.0%} CI {figures['p95SecondsLow']:.3f}"
            f"-{figures['p95SecondsHigh']:.3f}s)"
        )
    failed = len(outcomes) - len(totals)
    if failed:
        reasons.append(f"{failed}/{len(outcomes)} measured requests failed")
    return SuiteReport(
        suite="latency",
        verdict="Fail" if reasons else "Pass",
        reason="; ".join(reasons) or None,
        figures=figures,
        items=items,
        latencies=totals,
    )
