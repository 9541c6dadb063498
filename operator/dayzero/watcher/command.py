"""``dayzero watcher poll``: build the run's clients from the config and flags, run it once.

Kept out of ``dayzero.cli`` so the command there is a few lines: parse flags, call :func:`poll`,
print the JSON summary, exit with its code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dayzero.kube import Kube, KubeError

from .config import WatcherConfig, WatcherConfigError, load_config
from .poll import Poller
from .sources import GitHubSource, HubSource
from .state import ConfigMapStore, FileStore, StateStore

DEFAULT_HUB = "https://huggingface.co"
EXIT_OK = 0
EXIT_NOTHING_CHECKED = 1
EXIT_BAD_CONFIG = 2


@dataclass(frozen=True)
class PollResult:
    exit_code: int
    summary: dict[str, Any]


def poll(
    config_path: str,
    *,
    kubeconfig: str | None = None,
    hub_endpoint: str | None = None,
    github_api: str | None = None,
    dry_run: bool = False,
) -> PollResult:
    """One run. Exit 0 when anything was checked, 1 when nothing could be, 2 on a bad config."""
    try:
        config = load_config(config_path)
    except WatcherConfigError as e:
        return PollResult(EXIT_BAD_CONFIG, {"error": f"invalid config: {e}"})
    kube: Kube | None = None
    needs_kube = config.mode in ("auto", "approval") or config.state_file is None
    if needs_kube:
        try:
            kube = Kube.from_config(kubeconfig)
        except KubeError as e:
            return PollResult(EXIT_NOTHING_CHECKED, {"error": f"no cluster: {e.message}"})
    github = None
    if config.github.repos:
        github = GitHubSource(
            github_api or config.github.api_url, token=_env(config.github.token_env)
        )
    try:
        poller = Poller(
            config,
            hub=_hub(config, hub_endpoint),
            store=_store(config, kube),
            github=github,
            kube=kube,
            dry_run=dry_run,
        )
        summary = poller.run()
    finally:
        if github is not None:
            github.close()
        if kube is not None:
            kube.close()
    code = EXIT_OK if summary.checked_anything else EXIT_NOTHING_CHECKED
    return PollResult(code, summary.to_json())


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _hub(config: WatcherConfig, flag: str | None) -> HubSource:
    endpoint = flag or config.hub.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB
    return HubSource(
        endpoint,
        token=_env(config.hub.token_env),
        list_limit=config.hub.list_limit,
        max_retry_after_s=config.hub.max_retry_after_s,
        rate_limit_retries=config.hub.rate_limit_retries,
    )


def _store(config: WatcherConfig, kube: Kube | None) -> StateStore:
    if config.state_file is not None:
        return FileStore(config.state_file)
    if kube is None:  # pragma: no cover - needs_kube is true whenever state_file is unset
        raise KubeError(0, "NoConfig", "the state ConfigMap needs a cluster")
    return ConfigMapStore(kube, config.namespace, config.state_config_map)
