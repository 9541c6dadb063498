"""Three real gateway processes sharing one redis-server: a budget raced from every replica is
never overspent and its hard kill holds on all of them until one admin reset; a circuit opened
by one replica is skipped by the others without a dial; a rate limit admits exactly its count
across all three. No control plane: loopback only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway_fleet import Fleet, Upstream, running_redis

PRICE = {"inputUsdPerMillion": 2, "outputUsdPerMillion": 10}
ACTUAL = 7 * 2 + 3 * 10
"""Micro-dollars of one fake answer: 7 prompt and 3 completion tokens."""
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
ACME = {"X-Dayzero-Project": "acme"}


def doc(local: str, paid: str, **lane: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "keys": {"enabled": False},
        "lanes": [
            {
                "name": "chat",
                "model": "chat",
                "backends": ["local", "paid"],
                "paidFallback": {"enabled": True},
                "concurrency": {"max": 512},
                **lane,
            }
        ],
        "backends": [
            {"name": "local", "url": local, "timeoutSeconds": 0.5},
            {"name": "paid", "url": paid, "model": "gpt-fake", "paid": True},
        ],
        "prices": {"gpt-fake": PRICE},
        "budgets": {"acme": {"dailyUsd": 30 * ACTUAL / 1e6}},
    }


def acme_day(fleet: Fleet, replica: int) -> dict[str, Any]:
    """Project acme's ledger of today, once no reservation is held (a call settles just after
    its answer is sent)."""
    deadline = time.monotonic() + 5
    while True:
        status, _, body = fleet.get(replica, "/v1/budgets")
        assert status == 200, body
        assert body["ledger"] == "redis"
        row: dict[str, Any] = next(
            r
            for r in body["ledgers"]
            if (r["scope"], r["name"], r["period"]) == ("project", "acme", "day")
        )
        if row["reservedUsd"] == 0 or time.monotonic() > deadline:
            return row
        time.sleep(0.01)


def test_a_budget_raced_from_three_replicas_is_never_overspent(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_closed_port()}"
    with (
        running_redis() as redis,
        Upstream("ok") as paid,
        Fleet(doc(closed, paid.url), tmp_path, redis_url=redis.url, replicas=3) as fleet,
    ):
        replies = fleet.post_many([(i % 3, "/v1/chat/completions", CHAT, ACME) for i in range(150)])
        ok = [r for r in replies if r[0] == 200]
        refused = [r for r in replies if r[0] != 200]
        # The worst case is a 12-token prompt estimate at $2 and 5 tokens at $10 a million:
        # 74 micro-dollars, against 44 spent. At most 30 answers fit; a burst refuses the
        # calls that find no room beside the reservations in flight, so at least 1320/74.
        assert 17 <= len(ok) <= 30, len(ok)
        assert len(paid.requests) == len(ok)
        assert {r[0] for r in refused} == {429}
        assert {r[1]["x-dayzero-fallback-reason"] for r in replies} == {"all_local_failed"}
        for replica in range(3):  # one ledger, whichever replica is asked
            row = acme_day(fleet, replica)
            assert round(row["spentUsd"] * 1e6) == len(ok) * ACTUAL
            assert row["reservedUsd"] == 0
        # One at a time, round the replicas, until the budget refuses: 29 answers in all
        # (29*44 + 74 > 1320), and that refusal trips the hard kill.
        served = len(ok)
        for i in range(40):
            acme_day(fleet, i % 3)  # the previous call has settled
            status, _, body = fleet.post(i % 3, "/v1/chat/completions", CHAT, ACME)
            if status != 200:
                break
            served += 1
        assert (status, served) == (429, 29), body
        assert "(hard kill now on)" in body["error"]["message"]
        # The kill is on for every replica, and one admin reset lifts it for all.
        assert acme_day(fleet, 0)["killed"] is True
        for replica in range(3):
            status, _, body = fleet.post(replica, "/v1/chat/completions", CHAT, ACME)
            assert status == 429
            assert "hard kill is on until" in body["error"]["message"]
        reset = {"scope": "project", "name": "acme", "period": "day"}
        status, _, row = fleet.post(1, "/v1/budgets/reset", reset)
        assert (status, row["killed"]) == (200, False)
        status, headers, _ = fleet.post(2, "/v1/chat/completions", CHAT, ACME)
        assert (status, headers["x-dayzero-backend"]) == (200, "paid")
        assert round(acme_day(fleet, 0)["spentUsd"] * 1e6) == ACTUAL


def test_a_circuit_opened_by_one_replica_is_open_on_all(tmp_path: Path) -> None:
    with running_redis() as redis, Upstream("slow") as slow, Upstream("ok") as paid:
        breaker = {"consecutiveTimeouts": 2, "openSeconds": 60}
        routing = doc(slow.url, paid.url, circuitBreaker=breaker)
        routing["budgets"] = {}
        with Fleet(routing, tmp_path, redis_url=redis.url, replicas=3) as fleet:
            for _ in range(2):  # two timeouts in a row, both on replica 0
                status, headers, _ = fleet.post(0, "/v1/chat/completions", CHAT, ACME)
                assert (status, headers["x-dayzero-fallback-reason"]) == (200, "timeout")
            assert len(slow.requests) == 2
            deadline = time.monotonic() + 3
            while True:
                circuits = [_circuit(fleet, replica, "local") for replica in range(3)]
                if circuits == ["open"] * 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert circuits == ["open"] * 3
            for replica in (1, 2):
                status, headers, _ = fleet.post(replica, "/v1/chat/completions", CHAT, ACME)
                assert status == 200
                assert headers["x-dayzero-fallback-reason"] == "circuit_open"
            assert len(slow.requests) == 2  # the other replicas never dialled the slow host


def test_a_rate_limit_is_one_limit_across_three_replicas(tmp_path: Path) -> None:
    with running_redis() as redis, Upstream("ok") as up:
        routing = {
            "apiVersion": "dayzero.dev/routing-v1",
            "kind": "Routing",
            "lanes": [
                {
                    "name": "chat",
                    "model": "chat",
                    "backends": ["local"],
                    "rateLimit": {"requestsPerMinute": 30},
                    "concurrency": {"max": 256},
                }
            ],
            "backends": [{"name": "local", "url": up.url}],
            "keys": {"enabled": False},
        }
        with Fleet(routing, tmp_path, redis_url=redis.url, replicas=3) as fleet:
            replies = fleet.post_many(
                [(i % 3, "/v1/chat/completions", CHAT, ACME) for i in range(90)]
            )
            statuses = [status for status, _, _ in replies]
            assert statuses.count(200) == 30, statuses
            assert statuses.count(429) == 60, statuses
            assert len(up.requests) == 30
            refused = next(body for status, _, body in replies if status == 429)
            assert (
                "project acme: 30 requests per minute on lane chat" in (refused["error"]["message"])
            )
            status, _, body = fleet.get(1, "/v1/models/status")
            assert (status, body["sharedState"]["rateLimits"]) == (200, {"store": "redis"})


def _circuit(fleet: Fleet, replica: int, backend: str) -> str:
    status, _, body = fleet.get(replica, "/v1/models/status")
    assert status == 200, body
    return str(next(b["circuit"] for b in body["backends"] if b["name"] == backend))


def _closed_port() -> int:
    from gateway_fleet import free_port  # noqa: PLC0415 - nothing listens on it after

    return free_port()
