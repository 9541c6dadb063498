"""Sources against local servers: the real huggingface-hub client on the fake Hub, and GitHub
releases with ETags on a fake GitHub."""

from __future__ import annotations

import pytest
from watcher_fakes import LLAMA_8B, fixture_config

from dayzero.watcher.sources import GitHubSource, HubSource, SourceError, retry_after
from fakes import FakeHub, FakeModel, Fault
from fakes.github import FakeGitHub


def model(repo: str, **kw: object) -> FakeModel:
    return FakeModel(repo, config=fixture_config("llama-3.1-8b"), parameters=LLAMA_8B, **kw)  # type: ignore[arg-type]


def source(hub: FakeHub, waits: list[float], **kw: object) -> HubSource:
    return HubSource(hub.url, sleep=waits.append, **kw)  # type: ignore[arg-type]


def test_listing_has_what_the_judge_needs() -> None:
    with FakeHub([model("acme/A"), model("acme/B", gated="manual"), model("other/C")]) as hub:
        listing = source(hub, []).list_org("acme")
        sorts = [r.query["sort"] for r in hub.requests if r.path == "/api/models"]
    assert sorted(r.repo for r in listing.releases) == ["acme/A", "acme/B"]
    a = next(r for r in listing.releases if r.repo == "acme/A")
    assert a.sha == hub.model("acme/A").sha
    assert a.parameters == LLAMA_8B
    assert a.architectures == ("LlamaForCausalLM",)
    assert a.license == "apache-2.0"
    assert sorts == [("createdAt",), ("lastModified",)]


def test_fetch_reads_config_at_the_listed_sha_and_marks_gated() -> None:
    with FakeHub([model("acme/A"), model("acme/B", gated="manual")]) as hub:
        hubsrc = source(hub, [])
        a, b = sorted(hubsrc.list_org("acme").releases, key=lambda r: r.repo)
        fetched = hubsrc.fetch(a)
        gated = hubsrc.fetch(b)
        assert fetched.facts is not None
        assert fetched.facts.hidden_size == 4096
        assert any(a.sha in p for p in hub.paths("GET"))
    assert gated.access_denied
    assert not hub.requested_files(".safetensors")


def test_a_429_is_honoured_within_bounds() -> None:
    waits: list[float] = []
    with FakeHub([model("acme/A")]) as hub:
        hub.set_fault("*", Fault(status=429, headers={"Retry-After": "7"}, times=1))
        listing = source(hub, waits).list_org("acme")
    assert [r.repo for r in listing.releases] == ["acme/A"]
    assert waits == [7.0]


def test_a_429_past_the_bound_skips_without_sleeping() -> None:
    waits: list[float] = []
    with FakeHub([model("acme/A")]) as hub:
        hub.set_fault("*", Fault.rate_limited(retry_after=3600))
        with pytest.raises(SourceError) as caught:
            source(hub, waits, max_retry_after_s=60).list_org("acme")
    assert caught.value.reason == "RateLimited"
    assert caught.value.retry_after == 3600
    assert waits == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(Fault.server_error(503), "HubUnavailable"), (Fault.malformed_json(), "InvalidMetadata")],
)
def test_listing_faults_raise_with_a_reason(fault: Fault, reason: str) -> None:
    with FakeHub([model("acme/A")]) as hub:
        hub.set_fault("*", fault)
        with pytest.raises(SourceError) as caught:
            source(hub, []).list_org("acme")
    assert caught.value.reason == reason


def test_deleted_between_list_and_fetch() -> None:
    with FakeHub([model("acme/A")]) as hub:
        hubsrc = source(hub, [])
        [a] = hubsrc.list_org("acme").releases
        hub.remove("acme/A")
        with pytest.raises(SourceError, match="between listing and fetch"):
            hubsrc.fetch(a)


def test_pages_are_followed_up_to_the_limit() -> None:
    models = [model(f"acme/M{i}") for i in range(5)]
    with FakeHub(models, page_size=2) as hub:
        listing = source(hub, [], list_limit=3).list_org("acme")
    assert len(listing.releases) >= 3


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": "12"}) == 12.0
    assert retry_after({"ratelimit": '"api";r=0;t=55'}) == 55.0
    assert retry_after({"ratelimit": '"api";r=3;t=55'}) is None


def test_github_etag_flow() -> None:
    with FakeGitHub() as gh:
        gh.publish("vllm-project/vllm", "v0.1.0")
        github = GitHubSource(gh.url)
        try:
            first = github.releases("vllm-project/vllm")
            same = github.releases("vllm-project/vllm", first.etag)
            gh.publish("vllm-project/vllm", "v0.2.0", body="FooForCausalLM")
            moved = github.releases("vllm-project/vllm", first.etag)
            gh.fail_with = 503
            with pytest.raises(SourceError, match="503"):
                github.releases("vllm-project/vllm", moved.etag)
        finally:
            github.close()
        sent = [r.if_none_match for r in gh.requests]
    assert first.changed
    assert first.etag
    assert [r.tag for r in first.releases] == ["v0.1.0"]
    assert not same.changed
    assert moved.changed
    assert [r.tag for r in moved.releases] == ["v0.2.0", "v0.1.0"]
    assert sent[:3] == [None, first.etag, first.etag]
