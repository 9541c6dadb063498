"""Acting on a deployable release: a ModelDeployment on the cluster, or a commit for GitOps.

The name is a function of the repo id alone, so every run (and every concurrent run) proposes
the same object, and ``create`` answering 409 Conflict means "already done": the API server, not
a lock, is what keeps a model from being deployed twice. Labels and annotations trace the object
to the release that caused it. The user owns the spec afterwards: a later commit of the same
repo is reported, never written over it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from dayzero.api.v1alpha1 import ModelDeployment
from dayzero.kube import Kube, KubeError

from .config import WatcherConfig

MAX_NAME = 45
"""Short enough for the operator's child names (``<name>-g0-0``, ``<name>-cache``) to stay
within a 63-character DNS label."""
MANAGED_BY = "dayzero-watcher"
LABEL_REPO_HASH = "dayzero.dev/watcher-repo"
ANNOTATION_REPO = "dayzero.dev/source-repo"
ANNOTATION_SHA = "dayzero.dev/source-sha"
ANNOTATION_DETECTED = "dayzero.dev/detected-at"
ANNOTATION_VERDICT = "dayzero.dev/verdict"
GIT_TIMEOUT_S = 60.0
_PUSH_ATTEMPTS = 3

ActionKind = Literal["created", "suspended", "exists", "committed", "unchanged", "failed", "none"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    name: str | None = None
    detail: str = ""


def repo_hash(repo: str) -> str:
    return hashlib.sha256(repo.encode()).hexdigest()[:10]


def deployment_name(repo: str) -> str:
    """A DNS-1123 label from ``org/name``: lower case, runs of other characters as one ``-``;
    past MAX_NAME characters, cut and suffixed with a hash of the repo id so that two long
    names sharing a prefix stay apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-") or "model"
    if len(slug) <= MAX_NAME:
        return slug
    return f"{slug[: MAX_NAME - 11].rstrip('-')}-{repo_hash(repo)[:10]}"


def desired_deployment(
    config: WatcherConfig, repo: str, sha: str, detected_at: str, reason: str
) -> dict[str, Any]:
    """The ModelDeployment manifest for ``repo`` at ``sha`` (pure; validated by the API model)."""
    spec: dict[str, Any] = {
        "source": {"hub": {"repo": repo, "revision": sha}},
        "resources": {"gpuKind": config.budget.gpu_kind},
        "tags": list(config.deployment.tags),
        "suspend": config.mode == "approval",
    }
    if config.deployment.hf_token_secret:
        spec["weightCache"] = {"hfTokenSecretRef": {"name": config.deployment.hf_token_secret}}
    if config.gauntlet is not None:
        spec["gauntlet"] = config.gauntlet.to_wire()
    metadata = {
        "name": deployment_name(repo),
        "namespace": config.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_REPO_HASH: repo_hash(repo),
        },
        "annotations": {
            ANNOTATION_REPO: repo,
            ANNOTATION_SHA: sha,
            ANNOTATION_DETECTED: detected_at,
            ANNOTATION_VERDICT: reason[:1000],
        },
    }
    return ModelDeployment.model_validate({"metadata": metadata, "spec": spec}).to_wire()


def create_deployment(kube: Kube, manifest: dict[str, Any]) -> Action:
    """``kube.create``; a conflict is the deployment another run (or person) already made."""
    meta = manifest["metadata"]
    name = meta["name"]
    try:
        kube.create(manifest)
    except KubeError as e:
        if not e.conflict:
            return Action("failed", name, str(e))
        existing = kube.get("ModelDeployment", meta["namespace"], name) or {}
        annotations = existing.get("metadata", {}).get("annotations") or {}
        owner = annotations.get(ANNOTATION_REPO)
        if owner not in (None, meta["annotations"][ANNOTATION_REPO]):
            return Action("failed", name, f"the name is taken by a deployment of {owner}")
        return Action("exists", name, f"sha {annotations.get(ANNOTATION_SHA, '?')[:12]}")
    suspended = manifest["spec"].get("suspend", False)
    return Action("suspended" if suspended else "created", name)


# -- gitops ------------------------------------------------------------------------------------


class GitError(Exception):
    pass


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - git with our own arguments, no shell
            ["git", *args],  # noqa: S607 - git from PATH, as any user runs it
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            env=_git_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GitError(f"git {args[0]}: {e}") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _git_env() -> dict[str, str]:
    # Never prompt for credentials in a CronJob; a missing credential fails the push instead.
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


def commit_deployment(config: WatcherConfig, manifest: dict[str, Any]) -> Action:
    """Write ``<dir>/<name>.yaml`` on the configured branch and push it.

    A fresh clone each time keeps runs independent; a push rejected because another run pushed
    first is retried on top of the new tip. An identical file already there is ``unchanged``.
    """
    gitops = config.gitops
    if gitops is None:
        raise GitError("gitops: not configured")
    name = manifest["metadata"]["name"]
    meta = manifest["metadata"]
    body = yaml.safe_dump(manifest, sort_keys=False)
    message = (
        f"dayzero watcher: deploy {meta['annotations'][ANNOTATION_REPO]}\n\n"
        f"sha {meta['annotations'][ANNOTATION_SHA]}, detected "
        f"{meta['annotations'][ANNOTATION_DETECTED]}\n"
        f"{meta['annotations'][ANNOTATION_VERDICT]}\n"
    )
    identity = ["-c", f"user.name={gitops.author_name}", "-c", f"user.email={gitops.author_email}"]
    with tempfile.TemporaryDirectory(prefix="dayzero-gitops-") as tmp:
        work = Path(tmp) / "repo"
        _git("clone", "--quiet", gitops.repo, str(work))
        last = ""
        for _ in range(_PUSH_ATTEMPTS):
            _checkout(work, gitops.branch)
            path = work / gitops.dir / f"{name}.yaml"
            relative = str(path.relative_to(work))
            if path.exists() and path.read_text(encoding="utf-8") == body:
                return Action("unchanged", name, f"{gitops.branch}:{relative}")
            if path.exists():
                # A person may have edited it in review: the watcher never writes over it.
                return Action("exists", name, f"{gitops.branch}:{relative} differs; left alone")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            _git("add", relative, cwd=work)
            _git(*identity, "commit", "--quiet", "-m", message, cwd=work)
            try:
                _git("push", "--quiet", "origin", f"HEAD:refs/heads/{gitops.branch}", cwd=work)
            except GitError as e:
                last = str(e)
                _git("fetch", "--quiet", "origin", cwd=work)
                continue
            sha = _git("rev-parse", "HEAD", cwd=work).strip()
            return Action("committed", name, f"{gitops.branch}:{relative} @ {sha[:12]}")
        return Action("failed", name, f"push kept being rejected: {last}")


def _checkout(work: Path, branch: str) -> None:
    """Check out ``branch`` as the remote has it, else start it from the cloned default branch
    (or as the first commit of an empty repository)."""
    if _git("ls-remote", "--heads", "origin", branch, cwd=work).strip():
        _git("fetch", "--quiet", "origin", branch, cwd=work)
        _git("checkout", "--quiet", "-B", branch, "FETCH_HEAD", cwd=work)
    elif _has_commit(work):
        _git("checkout", "--quiet", "-B", branch, cwd=work)
    else:
        _git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=work)


def _has_commit(work: Path) -> bool:
    try:
        _git("rev-parse", "--verify", "--quiet", "HEAD", cwd=work)
    except GitError:
        return False
    return True
