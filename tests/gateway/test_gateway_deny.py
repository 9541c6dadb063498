"""The size deny rule: a backend whose maxParametersBillions is below the lane's model size is
skipped without a dial (fallback reason ``denied_size``), unless it is in maintenance."""

import json
import logging

import pytest
from gateway_fakes import CHAT, FakeOllama, document, fakes, ollama_backend, serve

from dayzero.api.routing import RoutingBackend, RoutingLane
from dayzero.gateway.routing import size_denial


def lane(size):
    return RoutingLane.model_validate(
        {"name": "chat", "model": "chat", "backends": ["a"], "parametersBillions": size}
    )


def backend(limit, maintenance=False):
    return RoutingBackend.model_validate(
        {
            "name": "a",
            "url": "http://127.0.0.1:1",
            "maxParametersBillions": limit,
            "maintenance": maintenance,
        }
    )


@pytest.mark.parametrize(
    ("size", "limit", "maintenance", "denied"),
    [
        (70, 8, False, True),
        (70, 8, True, False),  # maintenance overrides the rule
        (8, 8, False, False),  # the limit itself is allowed
        (7.6, 8, False, False),
        (None, 8, False, False),  # unknown size: nothing to deny on
        (70, None, False, False),  # no limit
    ],
)
def test_size_denial(size, limit, maintenance, denied):
    reason = size_denial(lane(size), backend(limit, maintenance))
    assert (reason is not None) == denied
    if denied:
        assert reason == "a 70B model is over its limit of 8B parameters"


def test_lane_size_is_validated():
    with pytest.raises(ValueError, match="greater than 0"):
        lane(0)


def two_hosts(small, big, **small_extra):
    return document(
        [
            ollama_backend("small", small.url, maxParametersBillions=8, **small_extra),
            ollama_backend("big", big.url, maxParametersBillions=80),
        ],
        lanes=[
            {
                "name": "chat",
                "model": "chat",
                "backends": ["small", "big"],
                "parametersBillions": 70,
            }
        ],
    )


def test_a_small_host_is_skipped_without_a_dial(run, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dayzero.gateway.access")

    async def scenario():
        async with (
            fakes(FakeOllama(), FakeOllama()) as (small, big),
            serve(two_hosts(small, big), tmp_path) as gw,
        ):
            status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
            assert (status, headers["x-dayzero-backend"]) == (200, "big")
            assert small.requests == []
            line = json.loads(caplog.records[-1].getMessage())
            assert line["fallback_reason"] == "denied_size"
            _, metrics = await gw.get("/metrics")
            assert 'backend="small",lane="chat",reason="denied_size"} 1.0' in metrics
            _, status_doc = await gw.get("/v1/models/status")
            assert status_doc["lanes"][0]["parametersBillions"] == 70
            assert status_doc["backends"][0]["maxParametersBillions"] == 8

    run(scenario())


def test_maintenance_lets_the_small_host_serve(run, tmp_path):
    async def scenario():
        async with (
            fakes(FakeOllama(), FakeOllama()) as (small, big),
            serve(two_hosts(small, big, maintenance=True), tmp_path) as gw,
        ):
            status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
            assert (status, headers["x-dayzero-backend"]) == (200, "small")
            assert big.requests == []

    run(scenario())


def test_every_host_too_small_is_502_naming_the_rule(run, tmp_path):
    async def scenario():
        async with fakes(FakeOllama()) as (small,):
            doc = document(
                [ollama_backend("small", small.url, maxParametersBillions=8)],
                lanes=[
                    {
                        "name": "chat",
                        "model": "chat",
                        "backends": ["small"],
                        "parametersBillions": 70,
                    }
                ],
            )
            async with serve(doc, tmp_path) as gw:
                status, _, body = await gw.post("/v1/chat/completions", CHAT)
                assert status == 502
                assert "small: denied_size: a 70B model is over" in body["error"]["message"]
                status, _, body = await gw.post(
                    "/api/chat", {"model": "chat", "messages": CHAT["messages"]}
                )
                assert status == 502
                assert "denied_size" in body["error"]
                assert small.requests == []

    run(scenario())
