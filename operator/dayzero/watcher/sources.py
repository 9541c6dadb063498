"""The watcher's two sources: the Hugging Face Hub's model listing and GitHub releases.

Hub listing goes through huggingface-hub's own session, headers, error mapping and ``ModelInfo``
parser, but not ``HfApi.list_models``: its ``http_backoff`` sleeps whatever ``Retry-After`` the
Hub sends (plus a second) up to five times, which would hold a CronJob run hostage. Here a 429 is
honoured by waiting at most ``hub.maxRetryAfterS`` a few times; a longer wait skips the org until
the next poll, which is the backoff. One org's failure never stops the others.

GitHub releases are read with ``If-None-Match``: an unchanged page answers 304 and costs nothing
against the rate limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from huggingface_hub import ModelInfo, get_session
from huggingface_hub.utils._headers import build_hf_headers

from dayzero import __version__
from dayzero.hub import HubError, fetch_model_facts

from .release import GitHubRelease, HubRelease

Sleep = Callable[[float], None]
Params = list[tuple[str, str | int | float | bool | None]]
LIST_EXPAND = (
    "sha",
    "createdAt",
    "lastModified",
    "gated",
    "library_name",
    "pipeline_tag",
    "tags",
    "cardData",
    "config",
    "safetensors",
    "siblings",
)
# Newest first by creation, then by last change: a repo made public at launch after a long
# private life has an old createdAt but a fresh lastModified.
SORTS = ("createdAt", "lastModified")
MAX_PAGES = 10
TIMEOUT_S = 10.0
_RATELIMIT = re.compile(r'"\w+"\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)')
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class SourceError(Exception):
    """A source could not be read this run; ``reason`` is PascalCase, like a condition's."""

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


@dataclass
class OrgListing:
    """What one org's listing returned, and what had to be left out of it."""

    org: str
    releases: list[HubRelease] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    """One entry per unusable listing row or failed later page: ``{"what", "reason"}``."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After``, else the IETF ``RateLimit`` header
    when it says no requests remain."""
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    match = _RATELIMIT.search(headers.get("ratelimit", ""))
    return float(match["t"]) if match and match["r"] == "0" else None


class HubSource:
    """Lists orgs and fetches config.json facts through huggingface-hub, with bounded backoff."""

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        list_limit: int = 50,
        max_retry_after_s: float = 60.0,
        rate_limit_retries: int = 3,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.list_limit = list_limit
        self.max_retry_after_s = max_retry_after_s
        self.rate_limit_retries = rate_limit_retries
        self.sleep = sleep
        self.waited_s = 0.0
        """Seconds spent honouring rate limits in this run."""

    # -- backoff -------------------------------------------------------------------------------

    def _wait(self, error: SourceError | HubError, attempt: int) -> bool:
        """Sleep as a 429 asked, when that is within bounds; False: give up on this request."""
        wait = error.retry_after if error.retry_after is not None else 2.0**attempt
        if attempt >= self.rate_limit_retries or wait > self.max_retry_after_s:
            return False
        self.sleep(wait)
        self.waited_s += wait
        return True

    # -- listing -------------------------------------------------------------------------------

    def list_org(self, org: str) -> OrgListing:
        """The org's newest repos (both sort orders, deduplicated). Raises SourceError only when
        nothing at all could be listed; a failure after some pages is recorded as skipped."""
        listing = OrgListing(org)
        seen: set[str] = set()
        failures: list[SourceError] = []
        for sort in SORTS:
            try:
                for row in self._rows(org, sort):
                    release = self._release(row, listing)
                    if release is not None and release.repo not in seen:
                        seen.add(release.repo)
                        listing.releases.append(release)
            except SourceError as e:
                failures.append(e)
                listing.skipped.append({"what": f"{org} (sort={sort})", "reason": str(e)})
        if len(failures) == len(SORTS) and not listing.releases:
            raise failures[0]
        return listing

    def _rows(self, org: str, sort: str) -> Iterator[Any]:
        params: Params = [
            ("author", org),
            ("sort", sort),
            ("direction", "-1"),
            ("limit", str(self.list_limit)),
            *(("expand", e) for e in LIST_EXPAND),
        ]
        url: str | None = f"{self.endpoint}/api/models"
        count = 0
        for page_number in range(MAX_PAGES):
            if url is None or count >= self.list_limit:
                return
            page, url = self._page(url, params if page_number == 0 else None, org)
            for row in page:
                if count >= self.list_limit:
                    return
                count += 1
                yield row

    def _page(self, url: str, params: Params | None, org: str) -> tuple[list[Any], str | None]:
        for attempt in range(self.rate_limit_retries + 1):
            try:
                return self._get_page(url, params, org)
            except SourceError as e:
                if e.reason != "RateLimited" or not self._wait(e, attempt):
                    raise
        raise SourceError("RateLimited", f"{org}: still rate limited")  # pragma: no cover

    def _get_page(self, url: str, params: Params | None, org: str) -> tuple[list[Any], str | None]:
        headers = build_hf_headers(
            token=self.token, library_name="dayzero-watcher", library_version=__version__
        )
        try:
            response = get_session().get(url, params=params, headers=headers, timeout=TIMEOUT_S)
        except httpx2.TransportError as e:
            raise SourceError("HubUnavailable", f"{org}: cannot reach the Hub: {e}") from None
        status = response.status_code
        if status == 429:
            wait = retry_after(response.headers)
            raise SourceError("RateLimited", f"{org}: rate limited", retry_after=wait)
        if status >= 500:
            raise SourceError("HubUnavailable", f"{org}: the Hub answered HTTP {status}")
        if status != 200:
            raise SourceError("HubError", f"{org}: the Hub answered HTTP {status}")
        try:
            page = response.json()
        except ValueError as e:
            raise SourceError("InvalidMetadata", f"{org}: listing is not JSON: {e}") from None
        if not isinstance(page, list):
            raise SourceError("InvalidMetadata", f"{org}: listing is not a JSON list")
        next_url = response.links.get("next", {}).get("url")
        return page, next_url

    def _release(self, row: object, listing: OrgListing) -> HubRelease | None:
        """A listing row as a HubRelease; a malformed row is skipped with its reason."""
        try:
            return _parse_row(row)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            what = row.get("id", "?") if isinstance(row, dict) else "?"
            listing.skipped.append({"what": str(what), "reason": f"InvalidMetadata: {e}"})
            return None

    # -- fetching ------------------------------------------------------------------------------

    def fetch(self, release: HubRelease) -> HubRelease:
        """``release`` with its config.json facts at the listed sha, or marked gated / invalid.

        Raises SourceError when the repo cannot be judged this run (deleted since the listing,
        the Hub down, rate limited past the bound): it is then judged on the next poll.
        """
        for attempt in range(self.rate_limit_retries + 1):
            try:
                model = fetch_model_facts(
                    release.repo, release.sha, token=self.token, endpoint=self.endpoint
                )
            except HubError as e:
                if e.reason == "GatedRepo":
                    return _replace(release, access_denied=True)
                if e.reason == "InvalidMetadata":
                    return _replace(release, invalid=e.message)
                if e.reason in ("RepoNotFound", "RevisionNotFound"):
                    why = f"deleted or moved between listing and fetch: {e.message}"
                    raise SourceError(e.reason, why) from None
                if e.reason == "RateLimited" and self._wait(e, attempt):
                    continue
                raise SourceError(e.reason, e.message) from None
            meta = model.metadata
            return _replace(
                release,
                facts=model.facts,
                architectures=model.facts.architectures,
                parameters=dict(meta.parameters) or dict(release.parameters),
                files=meta.files or release.files,
                gated=meta.gated,
                license=meta.license or release.license,
            )
        raise SourceError("RateLimited", f"{release.repo}: still rate limited")  # pragma: no cover


def _replace(release: HubRelease, **changes: Any) -> HubRelease:
    values = {name: getattr(release, name) for name in release.__slots__}
    return HubRelease(**(values | changes))


def _parse_row(row: object) -> HubRelease:
    if not isinstance(row, dict):
        raise TypeError("not a JSON object")
    info = ModelInfo(**row)  # type: ignore[no-untyped-call]  # its __init__ takes **kwargs, untyped
    repo = info.id
    sha = info.sha
    if not isinstance(repo, str) or "/" not in repo:
        raise ValueError(f"bad id {repo!r}")
    if not isinstance(sha, str) or not _COMMIT_SHA.match(sha):
        raise ValueError(f"{repo}: no commit sha ({sha!r})")
    return _from_info(info, repo, sha)


def _from_info(info: ModelInfo, repo: str, sha: str) -> HubRelease:
    tags = tuple(str(t) for t in info.tags or ())
    card_license = getattr(info.card_data, "license", None) if info.card_data else None
    if not isinstance(card_license, str):
        card_license = next((t.removeprefix("license:") for t in tags if "license:" in t), None)
    parameters: dict[str, int] = {}
    if info.safetensors is not None and isinstance(info.safetensors.parameters, Mapping):
        parameters = {
            str(k): v
            for k, v in info.safetensors.parameters.items()
            if isinstance(v, int) and not isinstance(v, bool)
        }
    summary = info.config if isinstance(info.config, Mapping) else {}
    architectures = summary.get("architectures")
    return HubRelease(
        repo=repo,
        sha=sha,
        gated=info.gated if isinstance(info.gated, bool | str) else False,
        pipeline_tag=info.pipeline_tag,
        library_name=info.library_name,
        tags=tags,
        license=card_license,
        architectures=tuple(str(a) for a in architectures)
        if isinstance(architectures, list)
        else (),
        parameters=parameters,
        files=tuple(s.rfilename for s in info.siblings or ()),
        created_at=info.created_at.isoformat() if info.created_at else None,
    )


# -- GitHub ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleasesPage:
    """One poll of a repository's releases."""

    changed: bool
    """False: 304 Not Modified, the ETag still matches."""
    etag: str | None
    releases: tuple[GitHubRelease, ...] = ()


class GitHubSource:
    """``GET /repos/{owner}/{repo}/releases`` with If-None-Match."""

    def __init__(
        self, api_url: str, *, token: str | None = None, client: httpx.Client | None = None
    ) -> None:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"dayzero-watcher/{__version__}",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.Client(timeout=TIMEOUT_S)
        self._base = api_url.rstrip("/")
        self._headers = headers

    def close(self) -> None:
        self._client.close()

    def releases(self, repo: str, etag: str | None = None) -> ReleasesPage:
        """The newest releases of ``repo``, or ``changed=False`` when ``etag`` still matches."""
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        url = f"{self._base}/repos/{repo}/releases"
        try:
            response = self._client.get(url, params={"per_page": "30"}, headers=headers)
        except httpx.TransportError as e:
            raise SourceError("GitHubUnavailable", f"{repo}: cannot reach GitHub: {e}") from None
        if response.status_code == 304:
            return ReleasesPage(changed=False, etag=etag)
        remaining = response.headers.get("x-ratelimit-remaining")
        if response.status_code == 429 or (response.status_code == 403 and remaining == "0"):
            raise SourceError(
                "RateLimited",
                f"{repo}: GitHub rate limit",
                retry_after=retry_after(response.headers),
            )
        if response.status_code != 200:
            raise SourceError("GitHubError", f"{repo}: GitHub answered {response.status_code}")
        try:
            rows = response.json()
        except ValueError:
            raise SourceError("InvalidMetadata", f"{repo}: releases are not JSON") from None
        if not isinstance(rows, list):
            raise SourceError("InvalidMetadata", f"{repo}: releases are not a JSON list")
        releases = tuple(
            GitHubRelease(
                repo=repo,
                tag=str(row["tag_name"]),
                name=str(row.get("name") or ""),
                body=str(row.get("body") or ""),
                published_at=row.get("published_at"),
                prerelease=bool(row.get("prerelease")),
            )
            for row in rows
            if isinstance(row, dict) and row.get("tag_name") and not row.get("draft")
        )
        return ReleasesPage(changed=True, etag=response.headers.get("etag"), releases=releases)
