"""What the gateway's /metrics say about one backend of a lane, for staged rollouts.

Pure: Prometheus text in, counters out. A rollout judges the promoted model by the backend that
serves it: every request that backend was tried for is an attempt (an answer is counted under the
model's name in ``dayzero_gateway_requests_total``, a failure that moved the request on under the
backend's name in ``dayzero_gateway_backend_failures_total``), and a failure is either. Counters
are cumulative, so a stage looks at the difference from the sample taken when it started; a
gateway restart (counters going down) starts the difference from zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from ..api.v1alpha1.lane import RolloutLimits, RolloutSample

REQUESTS = "dayzero_gateway_requests"
FAILURES = "dayzero_gateway_backend_failures"
COST = "dayzero_gateway_cost_usd"
LATENCY = "dayzero_gateway_request_duration_seconds"


@dataclass
class GatewayMetrics:
    """The parsed counters of one or more gateways (summed)."""

    answered: dict[tuple[str, str, bool], float] = field(default_factory=lambda: defaultdict(float))
    """(lane, model, failed) -> requests answered by that model; failed: status >= 500."""
    failures: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    """(lane, backend) -> failures that moved a request on."""
    cost: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    """(lane, model) -> USD."""
    buckets: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    """(lane, model) -> le -> cumulative count, when the gateway labels latency by model."""

    def add(self, other: GatewayMetrics) -> None:
        """Sum another gateway's counters into these."""
        for k, v in other.answered.items():
            self.answered[k] += v
        for k2, v in other.failures.items():
            self.failures[k2] += v
        for k2, v in other.cost.items():
            self.cost[k2] += v
        for k2, b in other.buckets.items():
            mine = self.buckets.setdefault(k2, {})
            for le, n in b.items():
                mine[le] = mine.get(le, 0.0) + n

    def stats(self, lane: str, model: str, backend: str) -> ModelStats:
        """The counters of one promoted model behind one backend of a lane."""
        ok = self.answered.get((lane, model, False), 0.0)
        bad = self.answered.get((lane, model, True), 0.0)
        failed = self.failures.get((lane, backend), 0.0)
        return ModelStats(
            requests=int(ok + bad + failed),
            errors=int(bad + failed),
            cost_usd=self.cost.get((lane, model), 0.0),
            buckets={le: int(n) for le, n in self.buckets.get((lane, model), {}).items()},
        )


def scrape(text: str) -> GatewayMetrics:
    """Parse one gateway's /metrics."""
    out = GatewayMetrics()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if s.name == REQUESTS + "_total":
                failed = labels.get("status", "0").isdigit() and int(labels["status"]) >= 500
                out.answered[(labels.get("lane", ""), labels.get("model", ""), failed)] += s.value
            elif s.name == FAILURES + "_total":
                out.failures[(labels.get("lane", ""), labels.get("backend", ""))] += s.value
            elif s.name == COST + "_total":
                out.cost[(labels.get("lane", ""), labels.get("model", ""))] += s.value
            elif s.name == LATENCY + "_bucket" and "model" in labels:
                key = (labels.get("lane", ""), labels["model"])
                bucket = out.buckets.setdefault(key, {})
                bucket[labels["le"]] = bucket.get(labels["le"], 0.0) + s.value
    return out


@dataclass(frozen=True)
class ModelStats:
    """Attempts, failures, cost and latency of one promoted model."""

    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    buckets: dict[str, int] = field(default_factory=dict)

    def sample(self) -> RolloutSample:
        """The baseline a stage keeps in the Lane's status."""
        return RolloutSample(
            requests=self.requests,
            errors=self.errors,
            cost_usd=self.cost_usd,
            latency_buckets=dict(self.buckets),
        )

    def since(self, base: RolloutSample | None) -> ModelStats:
        """What happened after ``base``; from zero if the gateway restarted in between."""
        if base is None or self.requests < base.requests:
            return self
        return ModelStats(
            requests=self.requests - base.requests,
            errors=max(0, self.errors - base.errors),
            cost_usd=max(0.0, self.cost_usd - base.cost_usd),
            buckets={
                le: max(0, n - base.latency_buckets.get(le, 0)) for le, n in self.buckets.items()
            },
        )

    @property
    def error_rate(self) -> float:
        """Failed share of attempts (0 without attempts)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_seconds(self) -> float | None:
        """The 95th percentile's bucket bound, or None without a labelled histogram."""
        bounds = sorted(
            ((math.inf if le == "+Inf" else float(le)), n) for le, n in self.buckets.items()
        )
        if not bounds or bounds[-1][1] == 0:
            return None
        want = 0.95 * bounds[-1][1]
        return next(le for le, n in bounds if n >= want)

    def breach(self, limits: RolloutLimits) -> str | None:
        """The limit this breaks, in words; None when within limits or too few requests."""
        if self.requests < max(1, limits.min_requests):
            return None
        if self.error_rate > limits.max_error_rate:
            return (
                f"error rate {self.error_rate:.3f} > maxErrorRate {limits.max_error_rate} "
                f"({self.errors}/{self.requests} requests)"
            )
        p95 = self.p95_seconds
        if p95 is not None and p95 > limits.max_p95_seconds:
            return f"p95 latency {p95:g}s > maxP95Seconds {limits.max_p95_seconds:g}"
        cap = limits.max_cost_per_request_usd
        if cap is not None and self.cost_usd / self.requests > cap:
            return (
                f"cost per request {self.cost_usd / self.requests:.6f} USD > "
                f"maxCostPerRequestUsd {cap}"
            )
        return None

    def summary(self) -> str:
        """One line for an Event."""
        p95 = self.p95_seconds
        return (
            f"{self.requests} requests, error rate {self.error_rate:.3f}"
            + (f", p95 <= {p95:g}s" if p95 is not None else "")
            + (f", {self.cost_usd:.4f} USD" if self.cost_usd else "")
        )
