"""What the sources saw, as plain data: a Hub repository at one commit, a GitHub release.

The sources fill these in; the judge reads them. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dayzero.planner import ModelFacts


@dataclass(frozen=True, slots=True)
class HubRelease:
    """A repository as the Hub listed it, plus its config.json facts once fetched."""

    repo: str
    sha: str
    gated: bool | str = False
    """False, or how access is granted (auto/manual), as listed."""
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    architectures: tuple[str, ...] = ()
    """From the listing's config summary; replaced by config.json's once fetched."""
    parameters: Mapping[str, int] = field(default_factory=dict)
    """safetensors parameter counts by dtype (empty: no safetensors weights listed)."""
    files: tuple[str, ...] = ()
    created_at: str | None = None
    facts: ModelFacts | None = None
    """The planner's facts from config.json at ``sha``; None until fetched (or when gated)."""
    access_denied: bool = False
    """Our token could not read the repository's files (a gated repo)."""
    invalid: str | None = None
    """Why the repository's metadata or config.json is unusable, when it is."""

    @property
    def name(self) -> str:
        """The repo name after the org."""
        return self.repo.split("/", 1)[-1]

    @property
    def parameter_count(self) -> int | None:
        if self.parameters:
            return sum(self.parameters.values())
        return self.facts.parameter_count if self.facts is not None else None


@dataclass(frozen=True, slots=True)
class GitHubRelease:
    """One release of a watched GitHub repository."""

    repo: str
    tag: str
    name: str = ""
    body: str = ""
    published_at: str | None = None
    prerelease: bool = False
