"""Lanes and ModelDeployments -> the routing document (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from dayzero.api.routing import Routing
from dayzero.api.v1alpha1 import Lane, ModelDeployment
from dayzero.api.v1alpha1.lane import PromotionRecord
from dayzero.render.routing import (
    DEFAULT_PROVIDER_URLS,
    LaneInput,
    Target,
    backend_name,
    parse_document,
    render_routing,
    target_of,
)

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def lane(name: str = "chat", **spec: Any) -> Lane:
    body: dict[str, Any] = {
        "model": name,
        "backends": [
            {"name": "llama", "modelDeploymentRef": {"name": "llama-8b"}, "timeoutSeconds": 20},
            {"name": "qwen", "modelDeploymentRef": {"name": "qwen-7b"}},
            {"name": "ext", "url": {"url": "http://10.1.2.3:11434", "api": "ollama"}},
        ],
    } | spec
    return Lane.model_validate({"metadata": {"name": name}, "spec": body})


def up(name: str) -> Target:
    return Target(name, available=True, url=f"http://{name}.ns.svc:8000/v1", model=name)


def down(name: str) -> Target:
    return Target(name, available=False, reason="not Ready (Loading: waiting)")


def item(lane_: Lane, name: str = "chat", *promos: PromotionRecord) -> LaneInput:
    return LaneInput(namespace="ns", name=name, lane=lane_, promotions=promos)


def doc_of(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    Routing.model_validate(data)  # what the gateway will load
    return data


def test_only_ready_deployments_and_external_urls_are_routed() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "qwen-7b": down("qwen-7b")}}
    out = render_routing([item(lane())], targets)
    doc = doc_of(out.text)
    assert doc["lanes"][0]["backends"] == ["chat-llama", "chat-ext"]
    by_name = {b["name"]: b for b in doc["backends"]}
    assert by_name["chat-llama"]["url"] == "http://llama-8b.ns.svc:8000/v1"
    assert by_name["chat-llama"]["model"] == "llama-8b"
    assert by_name["chat-llama"]["timeoutSeconds"] == 20
    assert by_name["chat-ext"]["kind"] == "ollama"
    result = out.lanes[("ns", "chat")]
    assert [(b.name, b.available) for b in result.backends] == [
        ("llama", True),
        ("qwen", False),
        ("ext", True),
    ]
    assert "qwen" in result.notes[0]
    assert "Loading" in result.notes[0]


def test_rendering_is_deterministic_and_order_independent() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "qwen-7b": up("qwen-7b")}}
    a = render_routing([item(lane("b"), "b"), item(lane("a"), "a")], targets)
    b = render_routing([item(lane("a"), "a"), item(lane("b"), "b")], targets)
    assert a.text == b.text
    assert a.hash == b.hash
    assert len(a.hash) == 16


def test_provider_backends_reference_their_secret_only() -> None:
    spec_backends = [
        {
            "name": "claude",
            "provider": {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "apiKeySecretRef": {"name": "anthropic-key", "key": "api-key"},
            },
        }
    ]
    out = render_routing([item(lane(backends=spec_backends))], {})
    doc = doc_of(out.text)
    backend = doc["backends"][0]
    assert backend["kind"] == "anthropic"
    assert backend["paid"] is True
    assert backend["url"] == DEFAULT_PROVIDER_URLS["anthropic"]
    assert backend["apiKeyRef"] == {"secret": "anthropic-key", "key": "api-key"}
    assert "sk-" not in out.text


def test_a_lane_with_nothing_available_is_left_out_with_a_reason() -> None:
    targets = {"ns": {"llama-8b": down("llama-8b")}}
    backends = [{"name": "llama", "modelDeploymentRef": {"name": "llama-8b"}}]
    out = render_routing([item(lane(backends=backends))], targets)
    assert doc_of(out.text)["lanes"] == []
    result = out.lanes[("ns", "chat")]
    assert result.lane is None
    assert result.error is None
    assert any("no backend is available" in n for n in result.notes)


def test_pins_win_over_promotions_and_promotions_need_not_be_in_the_spec() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "qwen-7b": up("qwen-7b"), "new-1": up("new-1")}}
    promos = (
        PromotionRecord(tag="preview", model_deployment="new-1"),
        PromotionRecord(tag="light", model_deployment="qwen-7b"),
    )
    out = render_routing([item(lane(tags={"light": "llama-8b"}), "chat", *promos)], targets)
    doc = doc_of(out.text)
    assert doc["tags"]["light"] == {"lane": "chat", "backend": "chat-llama"}
    assert doc["tags"]["preview"] == {"lane": "chat", "backend": "chat-new-1"}
    # The promoted model serves its tag, not the lane's default traffic.
    assert "chat-new-1" not in doc["lanes"][0]["backends"]
    assert out.lanes[("ns", "chat")].tags == {"light": "llama-8b", "preview": "new-1"}


def test_a_tag_on_an_unready_deployment_is_left_out() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "new-1": down("new-1")}}
    promo = PromotionRecord(tag="preview", model_deployment="new-1")
    out = render_routing([item(lane(), "chat", promo)], targets)
    assert "preview" not in doc_of(out.text)["tags"]
    assert any("tag preview -> new-1: unavailable" in n for n in out.lanes[("ns", "chat")].notes)


def test_rollout_stage_with_projects_is_a_canary_and_a_finished_rollout_leads() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "new-1": up("new-1")}}
    rollout = {
        "stages": [
            {"name": "preview", "soak": "1m"},
            {"name": "canary", "projects": ["team-a"], "percent": 10, "soak": "1m"},
            {"name": "default", "soak": "0s"},
        ]
    }
    canary = PromotionRecord(tag="preview", model_deployment="new-1", stage="canary")
    out = render_routing([item(lane(rollout=rollout), "chat", canary)], targets)
    doc_lane = doc_of(out.text)["lanes"][0]
    assert doc_lane["canary"] == {"backend": "chat-new-1", "projects": ["team-a"], "percent": 10}
    # A finished rollout, and the last stage (the lane's default, soaking at full traffic),
    # both lead the lane.
    for done in (
        PromotionRecord(tag="preview", model_deployment="new-1", rollout_complete=True),
        PromotionRecord(tag="preview", model_deployment="new-1", stage="default"),
    ):
        out = render_routing([item(lane(rollout=rollout), "chat", done)], targets)
        doc_lane = doc_of(out.text)["lanes"][0]
        assert doc_lane["backends"] == ["chat-new-1", "chat-llama", "chat-ext"]
        assert "canary" not in doc_lane


def test_an_invalid_lane_keeps_its_last_good_fragment_and_names_the_field() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "qwen-7b": up("qwen-7b")}}
    good = render_routing([item(lane()), item(lane("other"), "other")], targets)
    # "other" now claims the model name "chat" already selecting lane chat.
    clash = lane("other", model="chat")
    out = render_routing(
        [item(lane()), item(clash, "other")], targets, previous=parse_document(good.text)
    )
    result = out.lanes[("ns", "other")]
    assert result.error is not None
    assert "'chat' already selects" in result.error
    assert result.stale
    doc = doc_of(out.text)
    assert [x["name"] for x in doc["lanes"]] == ["chat", "other"]
    assert doc["lanes"][1]["model"] == "other"  # the last good version
    assert out.text == good.text


def test_a_lane_name_taken_in_another_namespace_is_refused() -> None:
    targets = {"a": {"llama-8b": up("llama-8b")}, "b": {"llama-8b": up("llama-8b")}}
    inputs = [
        LaneInput(namespace="b", name="chat", lane=lane()),
        LaneInput(namespace="a", name="chat", lane=lane()),
    ]
    out = render_routing(inputs, targets)
    assert out.lanes[("a", "chat")].error is None
    assert "already served from a" in (out.lanes[("b", "chat")].error or "")


def test_base_settings_are_kept_and_long_names_stay_labels() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b")}}
    base = {"keys": {"enabled": False}, "sharedConcurrency": 32, "lanes": ["ignored"]}
    out = render_routing([item(lane())], targets, base=base)
    doc = doc_of(out.text)
    assert doc["keys"] == {"enabled": False}
    assert doc["sharedConcurrency"] == 32
    long = backend_name("a" * 40, "b" * 40)
    assert len(long) == 63
    assert long != backend_name("a" * 40, "b" * 39 + "c")


def test_target_of_reads_the_ready_condition_and_provider_source() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Serving"}
    hub = ModelDeployment.model_validate(
        {
            "spec": {"source": {"hub": {"repo": "org/m", "revision": "main"}}},
            "status": {"conditions": [ready], "endpoint": "http://m.ns.svc:8000/v1"},
        }
    )
    assert target_of(hub, "m", DEFAULT_PROVIDER_URLS).url == "http://m.ns.svc:8000/v1"
    loading = hub.model_copy(deep=True)
    assert loading.status is not None
    loading.status.conditions[0].status = "False"
    assert not target_of(loading, "m", DEFAULT_PROVIDER_URLS).available
    provider = ModelDeployment.model_validate(
        {
            "spec": {
                "source": {
                    "provider": {
                        "provider": "openai",
                        "model": "gpt-5",
                        "apiKeySecretRef": {"name": "oa", "key": "k"},
                    }
                }
            },
            "status": {"conditions": [ready]},
        }
    )
    t = target_of(provider, "gpt", {"openai": "http://127.0.0.1:1/v1"})
    assert (t.kind, t.url, t.model, t.paid) == ("provider", "http://127.0.0.1:1/v1", "gpt-5", True)


def test_a_lane_rate_limit_is_rendered_for_the_gateway() -> None:
    targets = {"ns": {"llama-8b": up("llama-8b"), "qwen-7b": up("qwen-7b")}}
    limited = lane(rateLimit={"requestsPerMinute": 120, "tokensPerMinute": 200_000})
    doc = doc_of(render_routing([item(limited)], targets).text)
    assert doc["lanes"][0]["rateLimit"] == {"requestsPerMinute": 120, "tokensPerMinute": 200_000}
    assert "rateLimit" not in doc_of(render_routing([item(lane())], targets).text)["lanes"][0]
