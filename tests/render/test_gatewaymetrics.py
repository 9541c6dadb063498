"""The gateway's /metrics as a rollout reads them (pure)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dayzero.api.v1alpha1.lane import RolloutLimits
from dayzero.render.gatewaymetrics import GatewayMetrics, scrape


def exposition(ok: int, five_xx: int, failures: int, slow: int = 0) -> str:
    reg = CollectorRegistry()
    req = Counter(
        "dayzero_gateway_requests",
        "r",
        ["project", "lane", "model", "status"],
        registry=reg,
    )
    fail = Counter(
        "dayzero_gateway_backend_failures", "f", ["lane", "backend", "reason"], registry=reg
    )
    lat = Histogram(
        "dayzero_gateway_request_duration_seconds",
        "l",
        ["lane", "endpoint", "model"],
        buckets=(0.1, 1, 10, 30),
        registry=reg,
    )
    req.labels("p", "chat", "new-1", "200").inc(ok)
    req.labels("p", "chat", "new-1", "502").inc(five_xx)
    req.labels("p", "chat", "old", "200").inc(100)
    fail.labels("chat", "chat-new-1", "timeout").inc(failures)
    for _ in range(ok):
        lat.labels("chat", "chat/completions", "new-1").observe(0.05)
    for _ in range(slow):
        lat.labels("chat", "chat/completions", "new-1").observe(25)
    return generate_latest(reg).decode()


def test_attempts_count_answers_and_failures_that_moved_on() -> None:
    stats = scrape(exposition(ok=90, five_xx=4, failures=6)).stats("chat", "new-1", "chat-new-1")
    assert (stats.requests, stats.errors) == (100, 10)
    assert stats.error_rate == 0.1
    assert stats.p95_seconds == 0.1


def test_breaches_name_the_limit_and_need_enough_requests() -> None:
    limits = RolloutLimits(max_error_rate=0.05, min_requests=10)
    bad = scrape(exposition(ok=90, five_xx=4, failures=6)).stats("chat", "new-1", "chat-new-1")
    assert "maxErrorRate" in (bad.breach(limits) or "")
    few = scrape(exposition(ok=2, five_xx=3, failures=0)).stats("chat", "new-1", "chat-new-1")
    assert few.breach(limits) is None
    slow = scrape(exposition(ok=80, five_xx=0, failures=0, slow=20)).stats(
        "chat", "new-1", "chat-new-1"
    )
    assert "maxP95Seconds" in (slow.breach(RolloutLimits(max_p95_seconds=5)) or "")


def test_a_stage_counts_from_its_baseline_and_a_restart_from_zero() -> None:
    before = scrape(exposition(ok=50, five_xx=5, failures=5)).stats("chat", "new-1", "chat-new-1")
    after = scrape(exposition(ok=150, five_xx=5, failures=5)).stats("chat", "new-1", "chat-new-1")
    delta = after.since(before.sample())
    assert (delta.requests, delta.errors) == (100, 0)
    restarted = scrape(exposition(ok=3, five_xx=0, failures=0)).stats("chat", "new-1", "chat-new-1")
    assert restarted.since(before.sample()).requests == 3


def test_gateways_are_summed() -> None:
    total = GatewayMetrics()
    total.add(scrape(exposition(ok=10, five_xx=0, failures=1)))
    total.add(scrape(exposition(ok=20, five_xx=1, failures=0)))
    stats = total.stats("chat", "new-1", "chat-new-1")
    assert (stats.requests, stats.errors) == (32, 2)
