"""fetch_model_facts: the real huggingface-hub client against the fake Hub on loopback."""

from __future__ import annotations

import logging

import pytest
from huggingface_hub import constants

from dayzero.hub import HUB_ERROR_REASONS, HubError, fetch_model_facts
from fakes import FakeHub, FakeModel, Fault


def test_resolves_the_revision_and_reads_config_without_weights(hub: FakeHub, llama: FakeModel):
    model = fetch_model_facts(llama.repo, "main", endpoint=hub.url)

    assert model.sha == llama.sha
    assert model.revision == "main"
    assert model.facts.architectures == ("LlamaForCausalLM",)
    assert model.facts.parameters == {"BF16": 8_030_261_248}
    assert model.config["hidden_size"] == 4096
    # One metadata call at the revision, then config.json at the resolved SHA, nothing else.
    assert [(r.method, r.path) for r in hub.requests] == [
        ("GET", f"/api/models/{llama.repo}/revision/main"),
        ("GET", f"/{llama.repo}/resolve/{llama.sha}/config.json"),
    ]
    assert hub.requested_files() == ["config.json"]
    assert not hub.requested_files(".safetensors")


def test_records_the_hub_metadata(hub: FakeHub, llama: FakeModel):
    meta = fetch_model_facts(llama.repo, "v1.0", endpoint=hub.url).metadata

    assert meta.gated is False
    assert meta.library_name == "transformers"
    assert meta.pipeline_tag == "text-generation"
    assert meta.license == "llama3.1"
    assert "conversational" in meta.tags
    assert meta.architectures == ("LlamaForCausalLM",)
    assert meta.parameters == {"BF16": 8_030_261_248}
    assert set(meta.files) == {"config.json", "model.safetensors"}
    assert meta.created_at is not None
    expand = hub.requests[0].query["expand"]
    assert {"sha", "safetensors", "gated", "config", "cardData"} <= set(expand)


def test_a_commit_sha_resolves_to_itself(hub: FakeHub, llama: FakeModel):
    model = fetch_model_facts(llama.repo, llama.sha, endpoint=hub.url)
    assert model.sha == llama.sha
    assert hub.paths()[0] == f"/api/models/{llama.repo}/revision/{llama.sha}"


def test_no_revision_reads_the_default_branch(hub: FakeHub, llama: FakeModel):
    model = fetch_model_facts(llama.repo, endpoint=hub.url)
    assert model.sha == llama.sha
    assert model.revision is None
    assert hub.paths()[0] == f"/api/models/{llama.repo}"


def test_without_safetensors_counts_the_planner_estimates(hub: FakeHub):
    hub.add(FakeModel("acme/bin-only", config=hub.model("acme/gated-llama").config))
    model = fetch_model_facts("acme/bin-only", endpoint=hub.url)
    assert model.metadata.parameters == {}
    assert model.facts.parameter_count is None


def test_gated_repo_without_token(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/gated-llama", endpoint=hub.url)
    assert info.value.reason == "GatedRepo"
    assert not info.value.transient
    # Metadata of a gated repo is public; the file is what is refused.
    assert [r.status for r in hub.requests] == [200, 401]


def test_gated_repo_with_a_token_lacking_access(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/gated-llama", token="hf_not_on_the_list", endpoint=hub.url)  # noqa: S106 - a fake token
    assert info.value.reason == "GatedRepo"
    assert hub.requests[-1].status == 403


def test_gated_repo_with_access(hub: FakeHub, token: str):
    model = fetch_model_facts("acme/gated-llama", token=token, endpoint=hub.url)
    assert model.facts.architectures == ("LlamaForCausalLM",)
    assert all(r.token == token for r in hub.requests)


def test_missing_repo(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/nope", "main", endpoint=hub.url)
    assert info.value.reason == "RepoNotFound"
    assert "acme/nope" in info.value.message


def test_private_repo_without_access_reads_as_missing(hub: FakeHub, llama: FakeModel, token: str):
    hub.add(FakeModel("acme/private", config=llama.config, private=True))
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/private", endpoint=hub.url)
    assert info.value.reason == "RepoNotFound"
    assert fetch_model_facts("acme/private", token=token, endpoint=hub.url).sha


def test_invalid_repo_id(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("not a repo//id", endpoint=hub.url)
    assert info.value.reason == "RepoNotFound"
    assert hub.requests == []


def test_missing_revision(hub: FakeHub, llama: FakeModel):
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, "no-such-branch", endpoint=hub.url)
    assert info.value.reason == "RevisionNotFound"
    assert "no-such-branch" in info.value.message


@pytest.mark.parametrize("scope", ["api", "resolve"])
def test_rate_limited_with_retry_after(hub: FakeHub, llama: FakeModel, scope):
    hub.set_fault(llama.repo, Fault.rate_limited(retry_after=42, scope=scope))
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert info.value.reason == "RateLimited"
    assert info.value.retry_after == 42
    assert info.value.transient
    # No retries inside: the operator requeues with backoff rather than sleeping in a worker.
    assert [r.status for r in hub.requests].count(429) == 1


def test_rate_limited_by_the_ratelimit_header_alone(hub: FakeHub, llama: FakeModel):
    headers = {"RateLimit": '"api";r=0;t=17', "RateLimit-Policy": '"fixed window";"api";q=5;w=300'}
    hub.set_fault(llama.repo, Fault(status=429, headers=headers))
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert (info.value.reason, info.value.retry_after) == ("RateLimited", 17)


def test_rate_limited_without_a_hint(hub: FakeHub, llama: FakeModel):
    hub.set_fault(llama.repo, Fault(status=429))
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert (info.value.reason, info.value.retry_after) == ("RateLimited", None)


@pytest.mark.parametrize(("status", "scope"), [(500, "api"), (503, "api"), (502, "resolve")])
def test_server_errors_are_hub_unavailable(hub: FakeHub, llama: FakeModel, status, scope):
    hub.set_fault(llama.repo, Fault.server_error(status, scope=scope))
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert info.value.reason == "HubUnavailable"
    assert info.value.transient
    assert str(status) in info.value.message


def test_fault_that_clears_itself(hub: FakeHub, llama: FakeModel):
    hub.set_fault(llama.repo, Fault(status=503, times=1))
    with pytest.raises(HubError):
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert fetch_model_facts(llama.repo, endpoint=hub.url).sha == llama.sha


def test_unreachable_hub_is_hub_unavailable(llama: FakeModel):
    with FakeHub([llama]) as fake:
        url = fake.url
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=url)
    assert info.value.reason == "HubUnavailable"


def test_malformed_api_json_is_invalid_metadata(hub: FakeHub, llama: FakeModel):
    hub.set_fault(llama.repo, Fault.malformed_json())
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"


def test_malformed_config_json_is_invalid_metadata(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/broken", endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"
    assert "config.json is not JSON" in info.value.message


def test_config_the_planner_cannot_read_is_invalid_metadata(hub: FakeHub):
    hub.add(FakeModel("acme/odd", config={"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/odd", endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"
    assert "config.hidden_size" in info.value.message


def test_config_that_is_not_an_object_is_invalid_metadata(hub: FakeHub):
    hub.add(FakeModel("acme/list", raw_config=b"[1, 2]"))
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/list", endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"


def test_repo_without_config_json_is_invalid_metadata(hub: FakeHub):
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/no-config", endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"
    assert "no config.json" in info.value.message


def test_malformed_parameter_counts_are_invalid_metadata(hub: FakeHub, llama: FakeModel):
    hub.add(FakeModel("acme/fp99", config=llama.config, parameters={"FP99": 10}))
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/fp99", endpoint=hub.url)
    assert info.value.reason == "InvalidMetadata"
    assert "FP99" in info.value.message


def test_the_token_is_sent_but_never_logged_nor_in_messages(
    hub: FakeHub, caplog: pytest.LogCaptureFixture
):
    secret = "hf_secret_token_never_to_be_printed"  # noqa: S105 - a fake token
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubError) as info:
        fetch_model_facts("acme/gated-llama", token=secret, endpoint=hub.url)
    assert hub.requests[-1].token == secret
    assert secret not in str(info.value)
    assert secret not in caplog.text


def test_reasons_are_the_condition_reasons():
    assert HUB_ERROR_REASONS == (
        "GatedRepo",
        "RepoNotFound",
        "RevisionNotFound",
        "RateLimited",
        "HubUnavailable",
        "InvalidMetadata",
    )


def test_offline_mode_is_hub_unavailable(hub: FakeHub, llama: FakeModel, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError) as info:
        fetch_model_facts(llama.repo, endpoint=hub.url)
    assert info.value.reason == "HubUnavailable"
    assert hub.requests == []
