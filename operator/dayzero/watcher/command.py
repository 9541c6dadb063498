"""``dayzero watcher poll``: build the run's clients from the config and flags, run it once.

Kept out of ``dayzero.cli`` so the command there is a few lines: parse flags, call :func:`poll`,
print the JSON summary, exit with its code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dayzero.kube import Kube, KubeError

from .config import WatcherConfig, WatcherConfigError, load_config
from .poll import Poller
from .sources import GitHubSource, HubSource
from .state import ConfigMapStore, FileStore, StateStore
from .webhook import Coalescer, make_server

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


def serve(
    config_path: str,
    *,
    host: str,
    port: int,
    secret_env: str,
    on_summary: Callable[[PollResult], None],
    kubeconfig: str | None = None,
    hub_endpoint: str | None = None,
    github_api: str | None = None,
) -> int:
    """Serve Hub webhooks until interrupted; each accepted event runs :func:`poll`."""
    try:
        config = load_config(config_path)
    except WatcherConfigError as e:
        on_summary(PollResult(EXIT_BAD_CONFIG, {"error": f"invalid config: {e}"}))
        return EXIT_BAD_CONFIG
    secret = os.environ.get(secret_env, "")
    if not secret:
        on_summary(PollResult(EXIT_BAD_CONFIG, {"error": f"${secret_env} is empty"}))
        return EXIT_BAD_CONFIG

    def job() -> None:
        on_summary(
            poll(
                config_path, kubeconfig=kubeconfig, hub_endpoint=hub_endpoint, github_api=github_api
            )
        )

    runs = Coalescer(job)
    server = make_server(host, port, secret=secret, orgs=config.hub.orgs, trigger=runs.trigger)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK
