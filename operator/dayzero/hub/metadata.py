"""Model metadata from the Hugging Face Hub, without the weights.

One ``model_info`` call resolves the revision to a commit SHA and returns the safetensors
parameter counts by dtype; then config.json alone is fetched at that SHA, never at the revision
name, which can move between the two calls. Planning a 600 GB model costs two requests
and a few kilobytes. Every failure leaves as a :class:`HubError` whose reason the operator writes
into a condition; the token appears in no message and no log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx2
import huggingface_hub
from huggingface_hub import (
    HfApi,
    ModelInfo,
    get_session,
    get_token,
    hf_raise_for_status,
)
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from dayzero import __version__
from dayzero.planner import ModelFacts, PlanError, facts_from_config

from .errors import HubError

CONFIG_FILE = "config.json"
# What model_info returns; with ``expand`` the Hub sends only these fields, so sha is listed too.
EXPAND: list[Any] = [
    "sha",
    "safetensors",
    "gated",
    "library_name",
    "pipeline_tag",
    "tags",
    "cardData",
    "config",
    "siblings",
    "createdAt",
    "lastModified",
]
DEFAULT_TIMEOUT_S = 10.0
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# IETF RateLimit header as the Hub sends it: '"api";r=0;t=55' (r remaining, t seconds to reset).
_RATELIMIT = re.compile(r'"\w+"\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)')
# config.json of the largest models is tens of kilobytes; anything this big is not a config.
MAX_CONFIG_BYTES = 4_000_000


@dataclass(frozen=True, slots=True)
class HubMetadata:
    """What the Hub API says about a repository besides config.json: shown, not planned with."""

    gated: bool | str = False
    """False, or how access is granted: ``auto`` or ``manual``."""
    private: bool | None = None
    library_name: str | None = None
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    """From the model card's metadata, else from a ``license:`` tag."""
    architectures: tuple[str, ...] = ()
    """The Hub's summary of config.json's ``architectures``."""
    parameters: Mapping[str, int] = field(default_factory=dict)
    """safetensors parameter counts by dtype; empty when the repository has none."""
    files: tuple[str, ...] = ()
    """File names in the repository at the resolved commit."""
    created_at: datetime | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class HubModel:
    """A repository's facts at one commit: what the planner needs and what status records."""

    repo: str
    revision: str | None
    """The revision asked for (branch, tag or SHA); None for the default branch."""
    sha: str
    """The commit the revision resolved to, 40 hex digits: ``status.resolvedRevision``."""
    config: Mapping[str, Any]
    """config.json at that commit, as parsed JSON."""
    facts: ModelFacts
    metadata: HubMetadata


def fetch_model_facts(
    repo: str,
    revision: str | None = None,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> HubModel:
    """Resolve ``revision`` of ``repo`` to a commit and read its metadata and config.json.

    ``endpoint`` defaults to huggingface-hub's (``HF_ENDPOINT`` at import, else huggingface.co);
    ``token`` None lets huggingface-hub use ``HF_TOKEN`` or a stored login. No weight file is
    requested. Raises :class:`HubError`.
    """
    api = HfApi(endpoint=endpoint, token=token, library_name="dayzero", library_version=__version__)
    where = f"{repo}@{revision}" if revision else repo
    with _hub_errors(where):
        info = api.model_info(repo, revision=revision, expand=EXPAND, timeout=timeout)
    sha = info.sha
    if not isinstance(sha, str) or not _COMMIT_SHA.match(sha):
        raise HubError("InvalidMetadata", f"{where}: the Hub returned no commit SHA ({sha!r})")
    metadata = _metadata(info, where)
    at = f"{repo}@{sha}"
    with _hub_errors(at):
        raw = _download_config(api, repo, sha, token, timeout)
    config = parse_config(raw, at)
    try:
        facts = facts_from_config(config, dict(metadata.parameters) or None)
    except PlanError as e:
        raise HubError("InvalidMetadata", f"{at}: {CONFIG_FILE}: {e}") from e
    return HubModel(
        repo=repo, revision=revision, sha=sha, config=config, facts=facts, metadata=metadata
    )


def _download_config(api: HfApi, repo: str, sha: str, token: str | None, timeout: float) -> bytes:
    """config.json at ``sha``: one GET, no retries, no cache.

    Not ``hf_hub_download``: it retries a 429 or a 5xx up to five times, sleeping Retry-After
    plus a second each time, which would hold a reconcile worker for minutes; the operator
    requeues with backoff instead. The request is otherwise the one it makes, through
    huggingface-hub's own session and error mapping.
    """
    # Built here, not by hf_hub_url, which keys on the endpoint read at import time.
    url = f"{api.endpoint.rstrip('/')}/{repo}/resolve/{sha}/{CONFIG_FILE}"
    headers = {"user-agent": f"dayzero/{__version__}; hf_hub/{huggingface_hub.__version__}"}
    bearer = token if token is not None else get_token()
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
        hf_raise_for_status(response)
        served = response.headers.get("x-repo-commit")
        if served and served != sha:
            raise HubError(
                "InvalidMetadata", f"{repo}@{sha}: {CONFIG_FILE} was served from commit {served}"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_CONFIG_BYTES:
                break
            chunks.append(chunk)
    if size > MAX_CONFIG_BYTES:
        raise HubError(
            "InvalidMetadata", f"{repo}@{sha}: {CONFIG_FILE} is over {MAX_CONFIG_BYTES} bytes"
        )
    return b"".join(chunks)


def parse_config(raw: bytes, where: str = CONFIG_FILE) -> dict[str, Any]:
    """config.json bytes as a JSON object, or InvalidMetadata."""
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError("InvalidMetadata", f"{where}: {CONFIG_FILE} is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise HubError("InvalidMetadata", f"{where}: {CONFIG_FILE} is not a JSON object")
    return config


def _metadata(info: ModelInfo, where: str) -> HubMetadata:
    parameters: dict[str, int] = {}
    if info.safetensors is not None:
        counts: Any = info.safetensors.parameters
        if not isinstance(counts, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in counts.items()
        ):
            raise HubError("InvalidMetadata", f"{where}: safetensors.parameters is malformed")
        parameters = dict(counts)
    tags = tuple(str(t) for t in info.tags or ())
    card_license = getattr(info.card_data, "license", None) if info.card_data else None
    if not isinstance(card_license, str):
        licenses = (t.removeprefix("license:") for t in tags if t.startswith("license:"))
        card_license = next(licenses, None)
    summary = info.config if isinstance(info.config, Mapping) else {}
    architectures = summary.get("architectures")
    return HubMetadata(
        gated=info.gated if isinstance(info.gated, bool | str) else False,
        private=info.private,
        library_name=info.library_name,
        pipeline_tag=info.pipeline_tag,
        tags=tags,
        license=card_license,
        architectures=tuple(str(a) for a in architectures)
        if isinstance(architectures, list)
        else (),
        parameters=parameters,
        files=tuple(s.rfilename for s in info.siblings or ()),
        created_at=info.created_at,
        last_modified=info.last_modified,
    )


@contextmanager
def _hub_errors(where: str) -> Iterator[None]:
    """Turn whatever huggingface-hub or its HTTP client raised into a HubError."""
    try:
        yield
    except HubError:
        raise
    except (HfHubHTTPError, OfflineModeIsEnabled) as e:
        raise _classify(e, where) from e
    except httpx2.TransportError as e:
        raise HubError("HubUnavailable", f"{where}: cannot reach the Hub: {e}") from e
    except HFValidationError as e:
        raise HubError("RepoNotFound", f"{where}: not a valid repository id: {e}") from e
    except (ValueError, KeyError, TypeError) as e:
        # Raised while parsing a response body: malformed JSON, or fields of the wrong shape.
        raise HubError("InvalidMetadata", f"{where}: malformed Hub response: {e}") from e


def _classify(error: BaseException, where: str) -> HubError:  # noqa: PLR0911 - one return per reason
    """The HubError for one of huggingface-hub's exceptions (hf_raise_for_status's classes)."""
    detail = _detail(error)
    if isinstance(error, GatedRepoError):
        return HubError("GatedRepo", f"{where}: gated repository; the token lacks access: {detail}")
    if isinstance(error, RepositoryNotFoundError | DisabledRepoError):
        return HubError("RepoNotFound", f"{where}: repository not found or private: {detail}")
    if isinstance(error, RevisionNotFoundError):
        return HubError("RevisionNotFound", f"{where}: revision not found: {detail}")
    if isinstance(error, RemoteEntryNotFoundError):
        return HubError("InvalidMetadata", f"{where}: the repository has no {CONFIG_FILE}")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status == 429:
            retry_after = _retry_after(error.response.headers)
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            return HubError(
                "RateLimited", f"{where}: rate limited by the Hub{wait}", retry_after=retry_after
            )
        if status in (401, 403):
            return HubError("GatedRepo", f"{where}: access denied (HTTP {status}): {detail}")
        if status == 404:
            return HubError("RepoNotFound", f"{where}: not found (HTTP 404): {detail}")
        return HubError("HubUnavailable", f"{where}: the Hub answered HTTP {status}: {detail}")
    return HubError("HubUnavailable", f"{where}: cannot reach the Hub: {detail}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: ``Retry-After`` (delay-seconds), else the IETF ``RateLimit`` header."""
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    match = _RATELIMIT.search(headers.get("ratelimit", ""))
    return float(match["t"]) if match and match["r"] == "0" else None


def _detail(error: BaseException) -> str:
    """The server's own message, else the first lines of huggingface-hub's (which run on)."""
    server = getattr(error, "server_message", None)
    if isinstance(server, str) and server.strip():
        return " ".join(server.split())
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(error).__name__
