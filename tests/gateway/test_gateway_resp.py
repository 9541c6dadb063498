"""The budget scripts' own Redis connection (dayzero.gateway.resp): replies split anywhere,
many calls in flight on one connection each get their own answer, a Redis that lost its scripts
gets the body, and a Redis that is down or silent fails the call fast (the paid tier then fails
closed). Against a real redis-server; the silent one is a loopback socket that never answers."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from dayzero.gateway.budget import RedisLedger
from dayzero.gateway.resp import ReplyError, RespError, Script, ScriptConnection, pack, parse
from dayzero.gateway.shared import redis_client

ECHO = Script("return {ARGV[1], tonumber(ARGV[2]), KEYS[1], redis.call('INCR', KEYS[1])}")


def test_a_reply_split_anywhere_parses_once_whole():
    wire = b"*4\r\n$3\r\nabc\r\n:-12\r\n+OK\r\n*2\r\n$-1\r\n$0\r\n\r\n-ERR boom\r\n"
    whole, end = parse(wire)
    assert whole == [b"abc", -12, "OK", [None, b""]]
    error, after = parse(wire, end)
    assert isinstance(error, ReplyError)
    assert str(error) == "ERR boom"
    assert after == len(wire)
    for cut in range(end):  # every prefix is "not yet", never a wrong value
        assert parse(wire[:cut]) is None
    assert pack("GET", "k", 5) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n5\r\n"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_two_hundred_calls_in_flight_each_get_their_own_answer(loop, redis_server):
    async def scenario():
        conn = ScriptConnection("127.0.0.1", redis_server.port)
        try:
            replies = await asyncio.gather(
                *(conn.evalsha(ECHO, ["dz:{t}:n"], [f"call-{i}", i]) for i in range(200))
            )
        finally:
            conn.close()
        assert [r[:3] for r in replies] == [
            [f"call-{i}".encode(), i, b"dz:{t}:n"] for i in range(200)
        ]
        assert sorted(r[3] for r in replies) == list(range(1, 201))  # each ran exactly once

    # The gateway runs on uvloop (whose transports are not asyncio.Transport), the tests on both.
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())


def test_a_redis_that_lost_the_script_gets_its_body_and_errors_are_raised(run, redis_server):
    async def scenario():
        conn = ScriptConnection("127.0.0.1", redis_server.port)
        try:
            assert (await conn.evalsha(ECHO, ["dz:{t}:a"], ["x", 1]))[3] == 1
            redis_server.kill()
            redis_server.start()  # empty: no scripts cached, and the old connection is gone
            with pytest.raises(RespError):
                await conn.evalsha(ECHO, ["dz:{t}:a"], ["x", 1])
            assert (await conn.evalsha(ECHO, ["dz:{t}:a"], ["x", 1]))[3] == 1  # dialled again
            bad = Script("return redis.call('NOSUCHCOMMAND')")
            with pytest.raises(ReplyError, match=r"NOSUCHCOMMAND|Unknown"):
                await conn.evalsha(bad, [], [])
            assert (await conn.evalsha(ECHO, ["dz:{t}:a"], ["x", 1]))[3] == 2  # still usable
        finally:
            conn.close()

    run(scenario())


def test_a_silent_redis_fails_every_waiting_call_within_the_timeout(run):
    async def scenario():
        accepted = []

        async def silent(reader, writer):
            accepted.append(writer)
            await reader.read()  # never answers

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = ScriptConnection("127.0.0.1", port, timeout=0.2)
        try:
            start = time.monotonic()
            results = await asyncio.gather(
                *(conn.evalsha(ECHO, ["k"], ["x", 1]) for _ in range(5)), return_exceptions=True
            )
            waited = time.monotonic() - start
            assert all(isinstance(r, RespError) for r in results), results
            assert "did not answer in 0.2s" in str(results[0])
            assert waited < 1.0
            assert len(accepted) == 1  # five calls, one connection
            with pytest.raises(RespError):
                await conn.evalsha(ECHO, ["k"], ["x", 1])
            assert len(accepted) == 2  # a timed-out connection is not reused
        finally:
            conn.close()
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    run(scenario())


def test_a_redis_that_is_down_refuses_at_once_and_the_ledger_fails_closed(run, redis_server):
    async def scenario():
        client = redis_client(redis_server.url)
        ledger = RedisLedger(client)
        assert ledger.fast is not None  # plain TCP: reserve and settle take the own connection
        redis_server.kill()
        try:
            start = time.monotonic()
            with pytest.raises(RespError, match="cannot connect to redis"):
                await ledger.fast.evalsha(ECHO, ["k"], ["x", 1])
            assert time.monotonic() - start < 1.0
        finally:
            ledger.close()
            await client.aclose()

    run(scenario())
