"""Whole runs on the fake Hub and GitHub: what is new is judged once, acted on once, told once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from watcher_fakes import LLAMA_8B, MemoryKube, Receiver, fixture_config

from dayzero.watcher.command import poll
from dayzero.watcher.config import parse_config
from dayzero.watcher.poll import Poller
from dayzero.watcher.sources import GitHubSource, HubSource
from dayzero.watcher.state import ConfigMapStore, FileStore, State
from fakes import FakeHub, FakeModel, Fault
from fakes.github import FakeGitHub

FANCY = fixture_config("llama-3.1-8b") | {"architectures": ["FancyNewForCausalLM"]}


def models() -> list[FakeModel]:
    llama = fixture_config("llama-3.1-8b")
    return [
        FakeModel("acme/New-8B-Instruct", config=llama, parameters=LLAMA_8B),
        FakeModel("acme/New-8B-Base", config=llama, parameters=LLAMA_8B),
        FakeModel("acme/Secret-8B", config=llama, parameters=LLAMA_8B, gated="manual"),
        FakeModel("acme/Fancy-8B", config=FANCY, parameters=LLAMA_8B),
    ]


def config(tmp_path: Path, **extra: Any) -> Any:
    data = {
        "hub": {"orgs": ["acme"]},
        "filters": {"exclude": ["-Base$"]},
        "namespace": "models",
        "stateFile": str(tmp_path / "state.json"),
    }
    return parse_config(data | extra)


def poller(cfg: Any, hub: FakeHub, **kw: Any) -> Poller:
    store = kw.pop("store", None) or FileStore(cfg.state_file)
    return Poller(cfg, hub=HubSource(hub.url, sleep=lambda _: None), store=store, **kw)


def verdicts(summary: Any) -> dict[str, str]:
    return {m["repo"]: m["verdict"] for m in summary.models}


def test_alert_mode_tells_once(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(tmp_path, sinks={"slack": {"webhookUrl": receiver.url}})
    with FakeHub(models()) as hub:
        first = poller(cfg, hub).run()
        second = poller(cfg, hub).run()
    assert verdicts(first) == {
        "acme/New-8B-Instruct": "deployable",
        "acme/New-8B-Base": "filtered",
        "acme/Secret-8B": "gated",
        "acme/Fancy-8B": "unsupported",
    }
    assert first.alerts == [{"sink": "slack", "ok": True}]
    [message] = receiver.bodies
    for repo in ("acme/New-8B-Instruct", "acme/Secret-8B", "acme/Fancy-8B"):
        assert repo in message["text"]
    assert "New-8B-Base" not in message["text"]
    assert second.models == []
    assert second.unchanged == 4
    assert second.alerts == []


def test_a_new_commit_is_judged_again(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with FakeHub(models()) as hub:
        poller(cfg, hub).run()
        hub.add(
            FakeModel(
                "acme/New-8B-Instruct",
                config=fixture_config("llama-3.1-8b"),
                parameters=LLAMA_8B,
                sha="b" * 40,
            )
        )
        again = poller(cfg, hub).run()
    assert [(m["repo"], m["sha"]) for m in again.models] == [("acme/New-8B-Instruct", "b" * 40)]


class StaleOnce(ConfigMapStore):
    """A run that read the state before another run saved it."""

    stale = True

    def load(self) -> State:
        if self.stale:
            self.stale = False
            return State()
        return super().load()


def test_auto_mode_creates_once_even_when_runs_overlap(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="auto", stateFile=None)
    kube = MemoryKube()
    with FakeHub(models()) as hub:
        first = poller(cfg, hub, kube=kube, store=ConfigMapStore(kube, "models", "state")).run()  # type: ignore[arg-type]
        second = poller(cfg, hub, kube=kube, store=StaleOnce(kube, "models", "state")).run()  # type: ignore[arg-type]
    mdeps = [k for k in kube.objects if k[0] == "ModelDeployment"]
    assert mdeps == [("ModelDeployment", "models", "acme-new-8b-instruct")]
    assert kube.creates >= 3  # two deployment creates, the state's create (and its conflict)
    deployable = [m for s in (first, second) for m in s.models if m["verdict"] == "deployable"]
    assert [m["action"] for m in deployable] == ["created", "exists"]
    # The second run's save conflicted with the first's and merged: one state, both runs in it.
    state = json.loads(kube.objects[("ConfigMap", "models", "state")]["data"]["state.json"])
    assert state["models"]["acme/New-8B-Instruct"]["name"] == "acme-new-8b-instruct"
    assert len(state["models"]) == 4


def test_approval_mode_creates_suspended(tmp_path: Path) -> None:
    cfg = config(tmp_path, mode="approval")
    kube = MemoryKube()
    with FakeHub(models()) as hub:
        summary = poller(cfg, hub, kube=kube).run()
    [obj] = [v for k, v in kube.objects.items() if k[0] == "ModelDeployment"]
    assert obj["spec"]["suspend"] is True
    assert "suspended" in [m["action"] for m in summary.models]


def test_held_model_becomes_deployable_after_a_vllm_release(tmp_path: Path) -> None:
    cfg = config(tmp_path, github={"repos": ["vllm-project/vllm"]})
    with FakeHub(models()) as hub, FakeGitHub() as gh:
        gh.publish("vllm-project/vllm", "v0.1.0", body="old news: OldForCausalLM")
        github = GitHubSource(gh.url)
        first = poller(cfg, hub, github=github).run()
        quiet = poller(cfg, hub, github=github).run()
        gh.publish("vllm-project/vllm", "v99.0.0", body="New models: FancyNewForCausalLM (#1)")
        news = poller(cfg, hub, github=github).run()
        github.close()
    assert verdicts(first)["acme/Fancy-8B"] == "unsupported"
    assert quiet.github_checked == [
        {"repo": "vllm-project/vllm", "changed": False, "newReleases": []}
    ]
    assert quiet.models == []
    [fancy] = news.models
    assert (fancy["repo"], fancy["verdict"], fancy["previously"]) == (
        "acme/Fancy-8B",
        "deployable",
        "unsupported",
    )
    assert "v99.0.0" in fancy["reason"]


def test_one_org_failing_does_not_stop_the_others(tmp_path: Path) -> None:
    cfg = config(tmp_path, hub={"orgs": ["broken", "acme"]})
    with FakeHub(models()) as hub:
        hub.set_fault("*", Fault(status=503, times=2))  # both listings of the first org
        summary = poller(cfg, hub).run()
    assert summary.orgs_checked == ["acme"]
    assert "HubUnavailable" in summary.skipped[0]["reason"]
    assert "acme/New-8B-Instruct" in verdicts(summary)


def test_deleted_repo_is_skipped_and_judged_next_time(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    gone = Fault(status=404, headers={"X-Error-Code": "RepoNotFound"}, scope="api", times=1)
    with FakeHub(models()) as hub:
        hub.set_fault("acme/Fancy-8B", gone)
        first = poller(cfg, hub).run()
        second = poller(cfg, hub).run()
    assert "acme/Fancy-8B" not in verdicts(first)
    assert any(s["what"] == "acme/Fancy-8B" for s in first.skipped)
    assert verdicts(second) == {"acme/Fancy-8B": "unsupported"}


def test_exit_code_and_dry_run(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "watcher.yaml"
    state = tmp_path / "state.json"
    path.write_text(json.dumps({"hub": {"orgs": ["acme"]}, "stateFile": str(state)}))
    with FakeHub(models()) as hub:
        dry = poll(str(path), hub_endpoint=hub.url, dry_run=True)
        assert dry.exit_code == 0
        assert not state.exists()
        hub.set_fault("*", Fault.rate_limited(retry_after=3600))
        down = poll(str(path), hub_endpoint=hub.url)
    assert down.exit_code == 1
    assert "RateLimited" in down.summary["skipped"][0]["reason"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("hub: {orgs: []}")
    assert poll(str(bad)).exit_code == 2
