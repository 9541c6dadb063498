"""A ModelDeployment scaled to zero is routed as an asleep backend the gateway wakes, with the
namespace/name it reports last use to; a suspended one is not."""

from __future__ import annotations

from test_routing import lane

from dayzero.api.v1alpha1 import ModelDeployment
from dayzero.render.routing import (
    DEFAULT_PROVIDER_URLS,
    LaneInput,
    render_lane,
    target_of,
)


def mdep(reason: str, *, suspend: bool = False) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "spec": {
                "source": {"hub": {"repo": "org/m", "revision": "main"}},
                "replicas": 0,
                "suspend": suspend,
            },
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": reason}]},
        }
    )


def test_scaled_to_zero_is_asleep_and_suspended_is_not() -> None:
    for reason in ("ScaledToZero", "IdleScaledToZero"):
        t = target_of(mdep(reason), "llama-8b", DEFAULT_PROVIDER_URLS, "team")
        assert t.available
        assert t.asleep
        assert t.model_deployment == "team/llama-8b"
        assert t.url == "http://llama-8b.team.svc:8000/v1"
    assert not target_of(mdep("ScaledToZero"), "m", DEFAULT_PROVIDER_URLS).available  # no ns
    assert not target_of(mdep("Suspended", suspend=True), "m", DEFAULT_PROVIDER_URLS, "t").available
    assert not target_of(mdep("Loading"), "m", DEFAULT_PROVIDER_URLS, "t").available


def test_the_document_carries_the_asleep_backend_and_the_wait() -> None:
    asleep = target_of(mdep("IdleScaledToZero"), "llama-8b", DEFAULT_PROVIDER_URLS, "ns")
    out = render_lane(
        LaneInput(namespace="ns", name="chat", lane=lane(wakeTimeoutSeconds=90)),
        {"llama-8b": asleep},
        DEFAULT_PROVIDER_URLS,
    )
    assert out.error is None
    assert out.lane is not None
    assert out.lane.wake_timeout_seconds == 90
    llama = next(b for b in out.routing_backends if b.name == "chat-llama")
    assert llama.asleep
    assert llama.model_deployment == "ns/llama-8b"
    assert out.backends[0].reason == "scaled to zero: the gateway wakes it on demand"
