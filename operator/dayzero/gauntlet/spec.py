"""What one harness run is asked to do: the Gauntlet API's suites and gates, plus the knobs the
API does not (yet) carry.

The suite and gate vocabulary is the API's own (``dayzero.api.v1alpha1.gauntlet``), so a
Gauntlet's spec maps onto a run without translation. What the API lacks lives here under
``harness`` (request timeout, sanity's language and token budget, stability's load, bootstrap
settings) and under ``provenance`` (what the report records about the model under test).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from dayzero.api.v1alpha1.gauntlet import Gates, SuiteName, Suites

IMPLEMENTED: tuple[SuiteName, ...] = (
    "sanity",
    "compliance",
    "quality",
    "latency",
    "toolCalls",
    "stability",
)
"""Suites this harness can run, in the order it runs them (stability last: it reads the whole
run's timeline)."""
ALL_SUITES: tuple[SuiteName, ...] = (
    "sanity",
    "compliance",
    "latency",
    "stability",
    "toolCalls",
    "quality",
    "diff",
)
_FIELD = {"toolCalls": "tool_calls"}


class _Strict(BaseModel):
    """Unknown fields are errors; fields read in the API's camelCase or in snake_case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Sampling(_Strict):
    """Sampling parameters sent with every request, and recorded in the report."""

    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)


class Provenance(_Strict):
    """What is known about the model under test; every report carries it."""

    model_sha: str | None = None
    engine: str | None = None
    image: str | None = None
    chat_template_hash: str | None = None
    dataset_hash: str | None = None


class HarnessSettings(_Strict):
    """Knobs the Gauntlet API does not carry (yet)."""

    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Bound on one request, from sending to the stream's end."""
    sanity_max_tokens: int = Field(default=64, ge=1, le=32768)
    """max_tokens of sanity prompts: room to finish a sentence, so `length` is a real failure."""
    language: str = Field(default="en", min_length=2, max_length=3)
    """Language every sanity answer must be identified as (ISO 639-1, as langid reports it)."""
    min_language_confidence: float = Field(default=0.5, ge=0, le=1)
    """Lowest normalized langid probability of ``language`` for an answer to count."""
    stability_requests: int = Field(default=20, ge=0, le=100_000)
    """Requests the stability suite adds to the run's timeline before judging it."""
    stability_min_window_requests: int = Field(default=3, ge=1)
    """A window with fewer requests than this is too thin to fail the run."""
    dataset: str | None = Field(default=None, max_length=4096)
    """JSONL file of the quality suite (where the Job mounts the API's DatasetRef)."""
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class RunSpec(_Strict):
    """One run of the harness against one OpenAI-compatible endpoint."""

    endpoint: str = Field(min_length=1, max_length=2048)
    """Base URL; ``/v1`` is appended when the path does not already end in it."""
    model: str = Field(min_length=1, max_length=200)
    """Model name to send: a served name, or a lane or tag at the gateway."""
    api_key: str | None = Field(default=None, exclude=True, repr=False)
    suites: Suites = Field(default_factory=Suites)
    gates: Gates = Field(default_factory=Gates)
    concurrency: int = Field(default=4, ge=1, le=1024)
    seed: int = Field(default=0, ge=0)
    sampling: Sampling = Field(default_factory=Sampling)
    provenance: Provenance = Field(default_factory=Provenance)
    harness: HarnessSettings = Field(default_factory=HarnessSettings)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"want an http(s) URL, got {value!r}")
        path = parts.path.rstrip("/")
        if not path.endswith("/v1"):
            path += "/v1"
        return f"{parts.scheme}://{parts.netloc}{path}"

    def enabled(self) -> list[SuiteName]:
        """Names of the enabled suites this harness implements, in run order."""
        return [n for n in IMPLEMENTED if getattr(self.suites, _FIELD.get(n, n)).enabled]

    def not_implemented(self) -> list[SuiteName]:
        """Enabled suites this harness cannot run yet."""
        return [
            n
            for n in ALL_SUITES
            if n not in IMPLEMENTED and getattr(self.suites, _FIELD.get(n, n)).enabled
        ]


def only(suites: list[str]) -> Suites:
    """A ``Suites`` with exactly these suites enabled (API names), the rest off."""
    unknown = [s for s in suites if s not in ALL_SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(ALL_SUITES)}")
    base = Suites()
    update = {
        _FIELD.get(n, n): getattr(base, _FIELD.get(n, n)).model_copy(
            update={"enabled": n in suites}
        )
        for n in ALL_SUITES
    }
    return base.model_copy(update=update)
