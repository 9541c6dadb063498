"""A rollout judges a promoted model by the name the gateway labels its answers with."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from dayzero.api.v1alpha1.lane import PromotionRecord
from dayzero.controller import lane as lane_controller
from dayzero.render.gatewaymetrics import scrape
from dayzero.render.routing import Target


def test_a_provider_model_is_counted_under_its_provider_model_id() -> None:
    reg = CollectorRegistry()
    requests = Counter("dayzero_gateway_requests", "r", ["lane", "model", "status"], registry=reg)
    requests.labels("chat", "claude-sonnet-4-5", "200").inc(12)
    requests.labels("chat", "llama-8b", "200").inc(5)
    metrics = scrape(generate_latest(reg).decode())
    body = {
        "metadata": {"name": "chat", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {
            "model": "chat",
            "backends": [{"name": "llama", "modelDeploymentRef": {"name": "llama-8b"}}],
        },
    }
    st = lane_controller._state(body)
    targets = {
        "claude": Target(
            "claude", True, kind="anthropic", url="http://127.0.0.1:1", model="claude-sonnet-4-5"
        ),
        "llama-8b": Target("llama-8b", True, url="http://127.0.0.1:2/v1", model="llama-8b"),
    }
    provider = PromotionRecord(tag="preview", model_deployment="claude")
    assert lane_controller._stats(metrics, st, provider, targets).requests == 12
    hub = PromotionRecord(tag="light", model_deployment="llama-8b")
    assert lane_controller._stats(metrics, st, hub, targets).requests == 5
