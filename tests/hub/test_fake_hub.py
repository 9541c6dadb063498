"""The fake Hub itself: what the operator e2e, the watcher and the demo rely on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from dayzero.hub import HubError, fetch_model_facts
from fakes import FakeHub, FakeModel, Fault, fake_sha, models_from_config_dir

FIXTURES = Path(__file__).resolve().parents[1] / "planner" / "fixtures"


def _org(n: int, author: str = "acme") -> list[FakeModel]:
    return [
        FakeModel(f"{author}/model-{i}", created_at=f"2026-01-{i + 1:02d}T00:00:00.000Z")
        for i in range(n)
    ]


def test_listing_newest_first_follows_link_pagination():
    with FakeHub([*_org(5), *_org(2, author="other")], page_size=2) as hub:
        api = HfApi(endpoint=hub.url)
        listed = list(api.list_models(author="acme", sort="created_at", expand=["sha", "gated"]))
        pages = [r for r in hub.requests if r.path == "/api/models"]

    assert [m.id for m in listed] == [f"acme/model-{i}" for i in (4, 3, 2, 1, 0)]
    assert all(m.sha == fake_sha(m.id) and m.gated is False for m in listed)
    assert len(pages) == 3
    assert pages[0].query["sort"] == ("createdAt",)
    assert pages[1].query["cursor"] == ("2",)


def test_listing_limit_stops_after_one_page():
    with FakeHub(_org(5), page_size=100) as hub:
        listed = list(
            HfApi(endpoint=hub.url).list_models(author="acme", sort="created_at", limit=2)
        )
        assert [m.id for m in listed] == ["acme/model-4", "acme/model-3"]
        assert hub.requests[0].query["limit"] == ("2",)
        assert len(hub.requests) == 1


def test_listing_ascending_and_expand_keeps_only_what_was_asked():
    with FakeHub(_org(3)) as hub:
        rows = httpx.get(
            f"{hub.url}/api/models",
            params=[
                ("author", "acme"),
                ("sort", "createdAt"),
                ("direction", "1"),
                ("expand[]", "createdAt"),
            ],
        ).json()
    assert [r["id"] for r in rows] == ["acme/model-0", "acme/model-1", "acme/model-2"]
    assert set(rows[0]) == {"_id", "id", "createdAt"}


def test_a_model_published_while_running_is_listed():
    with FakeHub(_org(1)) as hub:
        api = HfApi(endpoint=hub.url)
        assert len(list(api.list_models(author="acme"))) == 1
        hub.add(FakeModel("acme/new", created_at="2027-01-01T00:00:00.000Z"))
        assert next(iter(api.list_models(author="acme", sort="created_at"))).id == "acme/new"


def test_listing_fault_applies_to_every_request():
    with FakeHub(_org(1), faults={"*": Fault(status=404, times=1)}) as hub:
        assert httpx.get(f"{hub.url}/api/models").status_code == 404
        assert httpx.get(f"{hub.url}/api/models").status_code == 200


def test_file_headers_are_what_hf_hub_download_needs(tmp_path):
    model = FakeModel("acme/tiny", config={"architectures": ["LlamaForCausalLM"]})
    with FakeHub([model]) as hub:
        head = httpx.head(f"{hub.url}/acme/tiny/resolve/main/config.json")
        path = HfApi(endpoint=hub.url).hf_hub_download(
            "acme/tiny", "config.json", cache_dir=tmp_path
        )
    assert head.headers["x-repo-commit"] == model.sha
    assert head.headers["etag"].startswith('"')
    assert int(head.headers["content-length"]) == len(model.file_bytes()["config.json"])
    assert Path(path).read_bytes() == model.file_bytes()["config.json"]


def test_missing_file_and_unknown_path():
    with FakeHub([FakeModel("acme/tiny", config={})]) as hub:
        missing = httpx.get(f"{hub.url}/acme/tiny/resolve/main/model.safetensors")
        unknown = httpx.get(f"{hub.url}/api/spaces")
    assert missing.status_code == 404
    assert missing.headers["x-error-code"] == "EntryNotFound"
    assert unknown.status_code == 404
    assert "x-error-code" not in unknown.headers


def test_the_log_tells_which_files_were_downloaded():
    model = FakeModel("acme/tiny", config={}, parameters={"BF16": 1})
    with FakeHub([model]) as hub:
        httpx.head(f"{hub.url}/acme/tiny/resolve/main/model.safetensors")
        httpx.get(f"{hub.url}/acme/tiny/resolve/main/config.json")
        assert hub.requested_files() == ["model.safetensors", "config.json"]
        assert hub.requested_files(".safetensors") == ["model.safetensors"]
        assert hub.downloaded_files() == ["config.json"]
        hub.clear_log()
        assert hub.requests == []


def test_models_from_config_dir_and_the_planner_fixtures():
    counts = {"llama-3.1-70b": {"BF16": 70_553_706_496}}
    models = models_from_config_dir(FIXTURES, org="fixtures", parameters=counts)
    by_repo = {m.repo: m for m in models}
    assert "fixtures/deepseek-v3" in by_repo
    assert by_repo["fixtures/llama-3.1-70b"].parameters == counts["llama-3.1-70b"]
    with FakeHub.from_config_dir(FIXTURES, org="fixtures", parameters=counts) as hub:
        model = fetch_model_facts("fixtures/llama-3.1-70b", endpoint=hub.url)
    assert model.facts.parameter_count == 70_553_706_496


def test_url_needs_a_running_hub():
    hub = FakeHub()
    with pytest.raises(RuntimeError, match="not running"):
        _ = hub.url


def test_sha_must_be_a_commit():
    with pytest.raises(ValueError, match="40 hex"):
        FakeModel("acme/x", sha="main")


def test_unknown_repo_is_repo_not_found_everywhere():
    with FakeHub() as hub:
        resolve = httpx.get(f"{hub.url}/acme/none/resolve/main/config.json")
        with pytest.raises(HubError) as info:
            fetch_model_facts("acme/none", endpoint=hub.url)
    assert resolve.headers["x-error-code"] == "RepoNotFound"
    assert info.value.reason == "RepoNotFound"
