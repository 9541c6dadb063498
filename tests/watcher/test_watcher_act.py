"""Acting: deterministic names, traceable manifests, conflict-safe creates, a real git commit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from watcher_fakes import MemoryKube

from dayzero.watcher.act import (
    ANNOTATION_REPO,
    ANNOTATION_SHA,
    MAX_NAME,
    commit_deployment,
    create_deployment,
    deployment_name,
    desired_deployment,
)
from dayzero.watcher.config import parse_config

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SHA = "a" * 40


@pytest.mark.parametrize(
    ("repo", "name"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3-1-8b-instruct"),
        ("Qwen/Qwen3-235B-A22B", "qwen-qwen3-235b-a22b"),
        ("a_b/C..D", "a-b-c-d"),
    ],
)
def test_names_are_dns_labels_from_the_repo(repo: str, name: str) -> None:
    assert deployment_name(repo) == name
    assert deployment_name(repo) == deployment_name(repo)


def test_long_names_are_cut_and_hashed() -> None:
    a = deployment_name("some-organization/" + "very-long-model-name-" * 4 + "A")
    b = deployment_name("some-organization/" + "very-long-model-name-" * 4 + "B")
    assert a != b
    for name in (a, b):
        assert len(name) <= MAX_NAME
        assert DNS_LABEL.match(name)


def config(mode: str = "auto", **extra: Any) -> Any:
    return parse_config(
        {
            "hub": {"orgs": ["acme"]},
            "mode": mode,
            "namespace": "models",
            "gauntlet": {"suites": ["sanity"], "promoteToLane": "chat"},
            **extra,
        }
    )


def test_manifest_traces_to_the_release() -> None:
    manifest = desired_deployment(config(), "acme/M-8B", SHA, "2026-01-01T00:00:00Z", "ok")
    meta = manifest["metadata"]
    assert meta["name"] == "acme-m-8b"
    assert meta["namespace"] == "models"
    assert meta["annotations"][ANNOTATION_REPO] == "acme/M-8B"
    assert meta["annotations"][ANNOTATION_SHA] == SHA
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "dayzero-watcher"
    spec = manifest["spec"]
    assert spec["source"]["hub"] == {"repo": "acme/M-8B", "revision": SHA}
    assert spec["suspend"] is False
    assert spec["gauntlet"]["suites"] == ["sanity"]
    suspended = desired_deployment(config("approval"), "acme/M-8B", SHA, "t", "ok")
    assert suspended["spec"]["suspend"] is True


def test_create_twice_is_one_object() -> None:
    kube = MemoryKube()
    manifest = desired_deployment(config(), "acme/M-8B", SHA, "t", "ok")
    assert create_deployment(kube, manifest).kind == "created"  # type: ignore[arg-type]
    again = create_deployment(kube, manifest)  # type: ignore[arg-type]
    assert again.kind == "exists"
    assert len(kube.objects) == 1


def test_a_name_taken_by_another_repo_is_a_failure() -> None:
    kube = MemoryKube()
    create_deployment(kube, desired_deployment(config(), "acme/M.8B", SHA, "t", "ok"))  # type: ignore[arg-type]
    clash = create_deployment(kube, desired_deployment(config(), "acme/M-8B", SHA, "t", "ok"))  # type: ignore[arg-type]
    assert clash.kind == "failed"
    assert "acme/M.8B" in clash.detail


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    ).stdout


@pytest.mark.timeout(10)
def test_gitops_commit_lands_in_a_real_repo(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", str(remote), cwd=tmp_path)
    cfg = config("gitops", gitops={"repo": str(remote), "branch": "dayzero/models", "dir": "apps"})
    manifest = desired_deployment(cfg, "acme/M-8B", SHA, "t", "ok")
    done = commit_deployment(cfg, manifest)
    assert done.kind == "committed", done.detail
    shown = git("show", "dayzero/models:apps/acme-m-8b.yaml", cwd=remote)
    assert yaml.safe_load(shown) == manifest
    log = git("log", "--format=%an %s", "dayzero/models", cwd=remote)
    assert log.strip() == "dayzero-watcher dayzero watcher: deploy acme/M-8B"
    assert commit_deployment(cfg, manifest).kind == "unchanged"
    other = desired_deployment(cfg, "acme/Other-8B", SHA, "t", "ok")
    assert commit_deployment(cfg, other).kind == "committed"
    files = git("ls-tree", "--name-only", "dayzero/models", "apps/", cwd=remote).split()
    assert files == ["apps/acme-m-8b.yaml", "apps/acme-other-8b.yaml"]
