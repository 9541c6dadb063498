"""Breaker, concurrency, auth and header units, without sockets."""

import asyncio
import hashlib
import hmac

import pytest

from dayzero.api.routing import KeyEntry
from dayzero.api.v1alpha1.lane import ConcurrencySpec
from dayzero.gateway import auth
from dayzero.gateway.app import _UsageScanner
from dayzero.gateway.breaker import Breaker
from dayzero.gateway.concurrency import Limiter
from dayzero.gateway.errors import GatewayError
from dayzero.gateway.headers import clean, trace_from


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_breaker_opens_after_two_and_half_opens_with_one_probe():
    clock = Clock()
    b = Breaker(clock=clock)
    b.failure(2, "timeout")
    assert b.state == "closed"
    assert b.allow(30)
    b.failure(2, "timeout")
    assert b.state == "open"
    assert not b.allow(30)
    clock.now += 30
    assert b.allow(30)  # the probe
    assert b.state == "half_open"
    assert not b.allow(30)  # exactly one
    b.failure(2, "timeout", probe=True)
    assert b.state == "open"
    assert not b.allow(30)
    clock.now += 30
    assert b.allow(30)
    b.success()
    assert b.state == "closed"
    assert b.allow(30)


def test_breaker_abandoned_probe_lets_another_probe():
    clock = Clock()
    b = Breaker(clock=clock)
    b.failure(1, "connect")
    clock.now += 5
    assert b.allow(5)
    b.abandon()
    assert b.allow(5)


def test_success_resets_the_count():
    b = Breaker()
    b.failure(2, "timeout")
    b.success()
    b.failure(2, "timeout")
    assert b.state == "closed"


def test_limiter_reserved_slots_are_not_borrowed():
    async def scenario():
        limiter = Limiter(shared=1)
        limiter.configure(
            1,
            {
                "a": ConcurrencySpec(reserved=1, max=3, queue_timeout_seconds=0),
                "b": ConcurrencySpec(reserved=0, max=3, queue_timeout_seconds=0),
            },
        )
        async with limiter.slot("a"), limiter.slot("a"):  # reserved, then the shared one
            with pytest.raises(GatewayError) as e:
                async with limiter.slot("b"):
                    pass
            assert e.value.status == 429
            assert e.value.headers["Retry-After"] == "1"
        async with limiter.slot("b"):
            assert limiter.in_flight("b") == 1
            async with limiter.slot("a"):  # a's reserved slot is still a's
                pass

    asyncio.run(scenario())


def test_limiter_queues_until_a_slot_frees():
    async def scenario():
        limiter = Limiter(shared=10)
        limiter.configure(10, {"a": ConcurrencySpec(reserved=0, max=1, queue_timeout_seconds=1)})
        order = []

        async def hold():
            async with limiter.slot("a"):
                order.append("first")
                await asyncio.sleep(0.05)

        async def wait():
            await asyncio.sleep(0.01)
            async with limiter.slot("a"):
                order.append("second")

        await asyncio.gather(hold(), wait())
        assert order == ["first", "second"]
        assert limiter.in_flight("a") == 0
        assert limiter.shared_used == 0

    asyncio.run(scenario())


def test_auth_compares_every_entry_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    entries = [
        KeyEntry(sha256=hashlib.sha256(k.encode()).hexdigest(), project=p, lanes=lanes)
        for k, p, lanes in [("k1", "one", ["chat"]), ("k2", "two", ["*"]), ("k3", "three", [])]
    ]
    table = auth.KeyTable(entries)
    principal = table.authenticate("k1")
    assert principal.project == "one"
    assert principal.may_use("chat")
    assert not principal.may_use("fast")
    assert len(calls) == 3  # no early exit on the first match
    assert table.authenticate("k2").may_use("anything")
    with pytest.raises(GatewayError) as e:
        table.authenticate("nope")
    assert e.value.status == 401
    with pytest.raises(GatewayError):
        table.authenticate(None)
    assert auth.KeyTable([], enabled=False).authenticate(None).project == "local"


def test_bearer():
    assert auth.bearer("Bearer abc", None) == "abc"
    assert auth.bearer("Basic abc", "xyz") == "xyz"
    assert auth.bearer(None, None) is None


def test_clean_header_values():
    assert clean("team-a") == "team-a"
    assert clean("a\r\nSet-Cookie: x=<script>") == "aSet-Cookie:xscript"
    assert clean("x" * 200) == "x" * 64
    assert clean("\n\n") is None


def test_traceparent_kept_or_generated():
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    t = trace_from(f"00-{tid}-00f067aa0ba902b7-01")
    assert t.trace_id == tid
    assert t.span_id != "00f067aa0ba902b7"
    for bad in (None, "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01"):
        t = trace_from(bad)
        assert len(t.trace_id) == 32
        assert t.trace_id != "0" * 32


def test_usage_scanner_across_chunk_boundaries():
    s = _UsageScanner()
    s.feed(b'data: {"choices":[]}\n\ndata: {"choices":[],"us')
    s.feed(b'age":{"prompt_tokens":5,"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    assert s.usage == {"prompt_tokens": 5, "completion_tokens": 2}
