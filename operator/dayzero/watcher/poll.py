"""One watcher run: gather (state, GitHub, Hub), judge, act, alert, remember.

Every step that can fail for one source is recorded in the summary and the run goes on; the run
fails only when nothing at all could be checked. Re-running is safe: judged commits are in the
state, and a ModelDeployment that exists already answers the create with a conflict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dayzero.kube import Kube, KubeError

from .act import Action, GitError, commit_deployment, create_deployment, desired_deployment
from .config import WatcherConfig
from .judge import HELD, Verdict, announced_architectures, judge, prefilter
from .release import HubRelease
from .sinks import Alert, deliver
from .sources import GitHubSource, HubSource, SourceError
from .state import SeenModel, SeenReleases, State, StateStore

PLAN_FIELDS = (
    "fits",
    "gpus",
    "nodes",
    "gpusPerNode",
    "gpuKind",
    "tensorParallel",
    "pipelineParallel",
    "maxModelLen",
    "weightsGiB",
)


@dataclass
class Summary:
    """What a run saw and did; printed as JSON by ``dayzero watcher poll``."""

    started_at: str
    mode: str
    dry_run: bool
    orgs_checked: list[str] = field(default_factory=list)
    github_checked: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rate_limit_wait_s: float = 0.0
    duration_s: float = 0.0
    error: str | None = None

    @property
    def checked_anything(self) -> bool:
        return bool(self.orgs_checked or self.github_checked)

    def to_json(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at,
            "durationSeconds": round(self.duration_s, 3),
            "mode": self.mode,
            "dryRun": self.dry_run,
            "checked": {"orgs": self.orgs_checked, "github": self.github_checked},
            "models": self.models,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "alerts": self.alerts,
            "rateLimitWaitSeconds": round(self.rate_limit_wait_s, 3),
            "error": self.error,
        }


def plan_summary(verdict: Verdict) -> dict[str, Any] | None:
    if verdict.plan is None:
        return None
    wire = verdict.plan.to_wire()
    return {k: wire[k] for k in PLAN_FIELDS if k in wire}


class Poller:
    """The run's collaborators, created by the caller (the CLI) and passed in."""

    def __init__(
        self,
        config: WatcherConfig,
        *,
        hub: HubSource,
        store: StateStore,
        github: GitHubSource | None = None,
        kube: Kube | None = None,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        self.hub = hub
        self.store = store
        self.github = github
        self.kube = kube
        self.dry_run = dry_run

    def run(self) -> Summary:
        began = time.monotonic()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        summary = Summary(started_at=now, mode=self.config.mode, dry_run=self.dry_run)
        try:
            state = self.store.load()
        except (KubeError, OSError) as e:
            summary.error = f"cannot read the watcher state: {e}"
            summary.duration_s = time.monotonic() - began
            return summary
        vllm_news = self._github(state, summary)
        alerts: list[Alert] = []
        for org in self.config.hub.orgs:
            try:
                listing = self.hub.list_org(org)
            except SourceError as e:
                summary.skipped.append({"what": f"hub org {org}", "reason": str(e)})
                continue
            summary.orgs_checked.append(org)
            summary.skipped.extend(listing.skipped)
            for release in listing.releases:
                alert = self._one(release, state, summary, now, vllm_news=vllm_news)
                if alert is not None:
                    alerts.append(alert)
        summary.rate_limit_wait_s = self.hub.waited_s
        if not self.dry_run:
            summary.alerts = deliver(self.config.sinks, alerts)
            try:
                self.store.save(state)
            except (KubeError, OSError) as e:
                summary.skipped.append({"what": "state", "reason": f"not saved: {e}"})
        summary.duration_s = time.monotonic() - began
        return summary

    # -- GitHub --------------------------------------------------------------------------------

    def _github(self, state: State, summary: Summary) -> bool:
        """Poll watched repos; True when vLLM news may make held models deployable."""
        if self.github is None:
            return False
        news = False
        vllm = self.config.github.vllm_repo
        for repo in self.config.github.repos:
            seen = state.github.get(repo)
            try:
                page = self.github.releases(repo, seen.etag if seen else None)
            except SourceError as e:
                summary.skipped.append({"what": f"github {repo}", "reason": str(e)})
                continue
            if not page.changed:
                summary.github_checked.append({"repo": repo, "changed": False, "newReleases": []})
                continue
            tags = [r.tag for r in page.releases]
            new = [t for t in tags if seen is not None and t not in seen.tags]
            known = set(seen.tags if seen else [])
            state.github[repo] = SeenReleases(page.etag, sorted(known | set(tags)))
            entry: dict[str, Any] = {"repo": repo, "changed": True, "newReleases": new}
            if repo == vllm:
                announced = announced_architectures(page.releases)
                grown = {a: t for a, t in announced.items() if a not in state.announced}
                state.announced.update(grown)
                entry["announcedArchitectures"] = grown
                news = news or bool(new) or bool(grown)
            summary.github_checked.append(entry)
        return news

    # -- one repository ------------------------------------------------------------------------

    def _one(
        self, release: HubRelease, state: State, summary: Summary, now: str, *, vllm_news: bool
    ) -> Alert | None:
        config = self.config
        seen = state.models.get(release.repo)
        rejudge = vllm_news and seen is not None and seen.verdict in HELD
        if seen is not None and seen.sha == release.sha and not rejudge:
            summary.unchanged += 1
            return None
        verdict = prefilter(release, config.filters)
        if verdict is None:
            try:
                release = self.hub.fetch(release)
            except SourceError as e:
                summary.skipped.append({"what": release.repo, "reason": str(e)})
                return None
            verdict = judge(
                release,
                config.filters,
                config.budget,
                announced=state.announced,
                transformers_fallback=config.hub.transformers_fallback,
            )
        action = self._act(release, verdict, now) if verdict.deployable else Action("none")
        entry: dict[str, Any] = {
            "repo": release.repo,
            "sha": release.sha,
            "verdict": verdict.kind,
            "reason": verdict.reason,
            "plan": plan_summary(verdict),
            "action": action.kind,
        }
        if action.name:
            entry["name"] = action.name
        if action.detail:
            entry["detail"] = action.detail
        if seen is not None and rejudge:
            entry["previously"] = seen.verdict
        summary.models.append(entry)
        if action.kind == "failed":
            # Not remembered: the next run tries again.
            return self._alert(release, verdict, action)
        if not self.dry_run:
            state.models[release.repo] = SeenModel(
                sha=release.sha,
                verdict=verdict.kind,
                reason=verdict.reason,
                name=action.name,
                judged_at=now,
            )
        if verdict.kind == "filtered":
            return None
        if seen is not None and seen.sha == release.sha and seen.verdict == verdict.kind:
            return None
        return self._alert(release, verdict, action)

    def _alert(self, release: HubRelease, verdict: Verdict, action: Action) -> Alert:
        return Alert(
            repo=release.repo,
            sha=release.sha,
            verdict=verdict.kind,
            reason=verdict.reason,
            plan=plan_summary(verdict),
            action=action.kind if not action.detail else f"{action.kind} ({action.detail})",
            name=action.name,
            mode=self.config.mode,
        )

    def _act(self, release: HubRelease, verdict: Verdict, now: str) -> Action:
        config = self.config
        if config.mode == "alert":
            return Action("none")
        manifest = desired_deployment(config, release.repo, release.sha, now, verdict.reason)
        name = manifest["metadata"]["name"]
        if self.dry_run:
            return Action("none", name, f"dry run: would {config.mode}")
        if config.mode == "gitops":
            try:
                return commit_deployment(config, manifest)
            except GitError as e:
                return Action("failed", name, str(e))
        if self.kube is None:
            return Action("failed", name, "no cluster connection")
        return create_deployment(self.kube, manifest)
