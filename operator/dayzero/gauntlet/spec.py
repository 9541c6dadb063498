"""What one harness run is asked to do: the Gauntlet API's suites and gates, plus the knobs the
API does not (yet) carry.

The suite and gate vocabulary is the API's own (``dayzero.api.v1alpha1.gauntlet``), so a
Gauntlet's spec maps onto a run without translation. What the API lacks lives here under
``harness`` (request timeout, sanity's language and token budget, stability's load, bootstrap
settings) and under ``provenance`` (what the report records about the model under test).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dayzero.api.v1alpha1.base import DNS_LABEL
from dayzero.api.v1alpha1.gauntlet import Gates, SuiteName, Suites

IMPLEMENTED: tuple[SuiteName, ...] = (
    "sanity",
    "compliance",
    "quality",
    "latency",
    "toolCalls",
    "stability",
    "diff",
)
"""Suites this harness can run, in the order it runs them (stability last: it reads the whole
run's timeline; diff after every target ran: it pairs their items)."""
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


def http_base(value: str) -> str:
    """An http(s) base URL ending in ``/v1`` (appended when the path lacks it)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"want an http(s) URL, got {value!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


FAMILIES = (
    ("smollm", "smollm"),
    ("llama", "llama"),
    ("qwen", "qwen"),
    ("mixtral", "mistral"),
    ("mistral", "mistral"),
    ("ministral", "mistral"),
    ("gemma", "gemma"),
    ("phi", "phi"),
    ("gpt", "gpt"),
    ("claude", "claude"),
    ("deepseek", "deepseek"),
    ("granite", "granite"),
    ("olmo", "olmo"),
    ("falcon", "falcon"),
    ("command", "cohere"),
)
"""Substrings of a model name and the family they mean, most specific first."""


def infer_family(model: str) -> str | None:
    """The family a model name belongs to (``Qwen/Qwen2.5-7B`` -> ``qwen``), None if unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    for needle, family in FAMILIES:
        if re.search(rf"(?:^|[^a-z]){needle}", name):
            return family
    return None


class _Endpoint(_Strict):
    """What a target and the judge share: an OpenAI-compatible endpoint and a model family."""

    if TYPE_CHECKING:  # the fields themselves, with their docs, are the subclasses'
        endpoint: str
        model: str
        family: str | None

    @field_validator("endpoint", check_fields=False)
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_base(value)

    def resolved_family(self) -> str | None:
        """``family`` when set, else inferred from the model name."""
        return (self.family or "").lower() or infer_family(self.model)


class TargetSpec(_Endpoint):
    """One model to evaluate: a candidate of a bakeoff, or the baseline."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    """Name in the reports and in the API's ``SuiteResult.target``."""
    endpoint: str = Field(min_length=1, max_length=2048)
    """OpenAI-compatible base URL; ``/v1`` is appended when the path lacks it."""
    model: str = Field(min_length=1, max_length=200)
    """Model name to send: a served name, or a lane or tag at the gateway."""
    family: str | None = Field(default=None, max_length=63)
    """Model family (llama, qwen, ...); inferred from ``model`` when unset."""
    api_key_env: str | None = Field(default=None, max_length=253)
    """Environment variable holding this target's key (sent as a bearer token)."""
    provenance: Provenance = Field(default_factory=Provenance)
    """What the report records about this model."""
    api_key: str | None = Field(default=None, exclude=True, repr=False)
    """Read from ``api_key_env`` by the CLI; never written anywhere."""


class JudgeTarget(_Endpoint):
    """The judge: a trusted older model, usually the gateway with a lane, tag or alias."""

    endpoint: str = Field(min_length=1, max_length=2048)
    """OpenAI-compatible base URL (the gateway's)."""
    model: str = Field(min_length=1, max_length=200)
    """Lane, tag or alias of the judge at the gateway (or a served name)."""
    family: str | None = Field(default=None, max_length=63)
    """The judge's model family; inferred from ``model`` when unset. Must differ from every
    target's family."""
    api_key_env: str | None = Field(default=None, max_length=253)
    """Environment variable holding the judge's key."""
    api_key: str | None = Field(default=None, exclude=True, repr=False)


class Price(_Strict):
    """What a model's tokens cost, for the estimated cost of a run."""

    input_usd_per_million: float = Field(ge=0)
    output_usd_per_million: float = Field(ge=0)


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
    """One run of the harness: one or more targets (a bakeoff), an optional baseline and judge.

    Without ``targets``, the top-level ``endpoint`` and ``model`` (the flags) are the single
    target, named ``candidate``.
    """

    endpoint: str | None = Field(default=None, min_length=1, max_length=2048)
    """Base URL of the single target; ``/v1`` is appended when the path does not end in it."""
    model: str | None = Field(default=None, min_length=1, max_length=200)
    """Model name of the single target: a served name, or a lane or tag at the gateway."""
    family: str | None = Field(default=None, max_length=63)
    """Family of the single target (inferred from ``model`` when unset)."""
    api_key: str | None = Field(default=None, exclude=True, repr=False)
    targets: list[TargetSpec] = Field(default_factory=list, max_length=16)
    """Candidates, run in order against the same baseline (a bakeoff when more than one)."""
    baseline: TargetSpec | None = None
    """The model in service today: the diff suite compares every target with it."""
    judge: JudgeTarget | None = None
    """Judge of refusals, rubric items and pairwise comparisons."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Per model name (as sent), for the estimated cost of each target."""
    suites: Suites = Field(default_factory=Suites)
    gates: Gates = Field(default_factory=Gates)
    concurrency: int = Field(default=4, ge=1, le=1024)
    seed: int = Field(default=0, ge=0)
    sampling: Sampling = Field(default_factory=Sampling)
    provenance: Provenance = Field(default_factory=Provenance)
    """Provenance of the single target (each of ``targets`` carries its own)."""
    harness: HarnessSettings = Field(default_factory=HarnessSettings)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_base(value)

    @model_validator(mode="after")
    def _one_way_to_name_targets(self) -> RunSpec:
        if not self.targets and not (self.endpoint and self.model):
            raise ValueError("give endpoint and model, or targets")
        names = [t.name for t in self.targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"targets: duplicate name(s) {', '.join(dup)}")
        if self.baseline and self.baseline.name in names:
            raise ValueError(f"baseline: name {self.baseline.name!r} is also a target's")
        return self

    def resolved_targets(self) -> list[TargetSpec]:
        """``targets``, or the single target the top-level fields describe."""
        if self.targets:
            return list(self.targets)
        if not self.endpoint or not self.model:
            raise ValueError("give endpoint and model, or targets")
        return [
            TargetSpec(
                name="candidate",
                endpoint=self.endpoint,
                model=self.model,
                family=self.family,
                provenance=self.provenance,
                api_key=self.api_key,
            )
        ]

    def for_target(self, target: TargetSpec) -> RunSpec:
        """This spec as the suites see it for one target (its endpoint, model, provenance)."""
        return self.model_copy(
            update={
                "endpoint": target.endpoint,
                "model": target.model,
                "family": target.family,
                "api_key": target.api_key,
                "provenance": target.provenance.model_copy(
                    update={
                        "dataset_hash": self.provenance.dataset_hash
                        or target.provenance.dataset_hash
                    }
                ),
            }
        )

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
