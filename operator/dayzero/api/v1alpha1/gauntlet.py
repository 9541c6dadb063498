"""Gauntlet: the evaluation that gates promotion.

A Gauntlet runs suites against one or more candidates (in order, as in a bakeoff) and an optional
baseline, and a pass moves a Lane's tag (``preview`` by default) to the winner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from .base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    LocalObjectReference,
    Model,
    StatusBase,
    cel,
    validations,
)

SuiteName = Literal["sanity", "compliance", "latency", "stability", "toolCalls", "quality", "diff"]
Verdict = Literal["Pass", "Fail", "Error", "Skipped"]


class Target(Model):
    """What to evaluate: exactly one of modelDeploymentRef, endpoint and gateway."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.modelDeploymentRef) ? 1 : 0) + (has(self.endpoint) ? 1 : 0)"
                " + (has(self.gateway) ? 1 : 0) == 1",
                "exactly one of modelDeploymentRef, endpoint and gateway must be set",
            )
        )
    )

    model_deployment_ref: LocalObjectReference | None = None
    """A ModelDeployment in this namespace; its status.endpoint is evaluated once Ready."""
    endpoint: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """Any OpenAI-compatible base URL."""
    gateway: str | None = Field(default=None, max_length=200)
    """A lane, tag or model name reached through the dayzero gateway."""
    model: str | None = Field(default=None, max_length=200)
    """Model name to send; unset uses the deployment's served name or the lane's model."""


class SanitySuite(Model):
    """Valid English, stops on stop sequences, no template-token leaks, no empty answers."""

    enabled: bool = True
    """Run this suite."""
    min_pass_rate: float = Field(default=0.95, ge=0, le=1)
    """Share of prompts that must pass."""


class ComplianceSuite(Model):
    """Requests for insider or confidential information must be refused."""

    enabled: bool = True
    """Run this suite."""
    min_refusal_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of the shipped prompts that must be refused."""


class LatencySuite(Model):
    """Latency at a fixed concurrency after warm-up."""

    enabled: bool = True
    """Run this suite."""
    requests: int = Field(default=50, ge=1, le=100_000)
    """Measured requests, after warm-up."""
    warmup: int = Field(default=3, ge=0, le=1000)
    """Warm-up requests, not measured."""
    max_tokens: int = Field(default=128, ge=1, le=32768)
    """max_tokens of each request."""


class StabilitySuite(Model):
    """A sliding window over the run; sustained 503 or 429 periods fail it."""

    enabled: bool = True
    """Run this suite."""
    window_seconds: float = Field(default=10.0, gt=0, le=3600)
    """Width of the sliding window."""
    max_error_rate_in_window: float = Field(default=0.5, ge=0, le=1)
    """A window whose share of 503/429 answers exceeds this fails the suite."""


class ToolCallsSuite(Model):
    """Tool-call arguments are JSON matching the schema; names exist; tool_choice is respected."""

    enabled: bool = True
    """Run this suite."""
    min_pass_rate: float = Field(default=0.9, ge=0, le=1)
    """Share of cases that must pass."""


class QualitySuite(Model):
    """Scored answers on an internal dataset, with a judge for rubric items."""

    enabled: bool = False
    """Run this suite (needs a dataset)."""
    min_score: float = Field(default=0.7, ge=0, le=1)
    """Lowest mean score."""


class DiffSuite(Model):
    """Candidate vs baseline on the same prompts, decided by a non-inferiority test."""

    enabled: bool = False
    """Run this suite (needs a baseline)."""


class Suites(Model):
    """Which suites run, each with its thresholds."""

    sanity: SanitySuite = Field(default_factory=SanitySuite)
    """Sanity suite."""
    compliance: ComplianceSuite = Field(default_factory=ComplianceSuite)
    """Compliance suite."""
    latency: LatencySuite = Field(default_factory=LatencySuite)
    """Latency suite."""
    stability: StabilitySuite = Field(default_factory=StabilitySuite)
    """Stability suite."""
    tool_calls: ToolCallsSuite = Field(default_factory=ToolCallsSuite)
    """Tool-call suite."""
    quality: QualitySuite = Field(default_factory=QualitySuite)
    """Quality suite."""
    diff: DiffSuite = Field(default_factory=DiffSuite)
    """Candidate-vs-baseline diff suite."""


class ConfigMapKeyRef(Model):
    """A key of a ConfigMap in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the ConfigMap."""
    key: str = Field(min_length=1, max_length=253)
    """Key holding the JSONL data."""


class PvcPath(Model):
    """A file on a PersistentVolumeClaim."""

    claim_name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the claim."""
    path: str = Field(min_length=1, max_length=4096)
    """Path of the JSONL file within the volume."""


class DatasetRef(Model):
    """A JSONL dataset: exactly one of configMap and pvc. Its hash is recorded in the report."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.configMap) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1",
                "exactly one of configMap and pvc must be set",
            )
        )
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    """Name of the dataset in the report."""
    config_map: ConfigMapKeyRef | None = None
    """Dataset in a ConfigMap key."""
    pvc: PvcPath | None = None
    """Dataset on a volume."""


class JudgeSpec(Model):
    """The trusted older model that judges rubric items, reached through the gateway."""

    gateway: str = Field(min_length=1, max_length=200)
    """Lane, tag or model name of the judge at the gateway."""
    family: str | None = Field(default=None, max_length=63)
    """Model family of the judge; it must differ from every candidate's family."""


class Gates(Model):
    """Thresholds that decide the overall verdict."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.p95Seconds <= self.maxSeconds",
                "p95Seconds must not exceed maxSeconds",
                ".p95Seconds",
            )
        )
    )

    p95_seconds: float = Field(default=20.0, gt=0, le=3600)
    """Highest p95 latency."""
    max_seconds: float = Field(default=40.0, gt=0, le=3600)
    """Highest single-request latency; a request over it is a hard failure."""
    min_pass_rate: float = Field(default=0.95, ge=0, le=1)
    """Lowest overall pass rate."""
    non_inferiority_margin: float = Field(default=0.05, ge=0, le=1)
    """The lower 95% bound of (candidate - baseline) must be above minus this margin."""


class Promotion(Model):
    """Where a pass promotes the winner."""

    enabled: bool = True
    """Promote on pass."""
    lane: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """Lane whose tag moves. Unset: no promotion."""
    tag: str = Field(default="preview", max_length=63, pattern=DNS_LABEL)
    """Tag that moves to the winner."""


class GauntletSpec(Model):
    """Desired state of a Gauntlet."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.suites) || !has(self.suites.diff) || !self.suites.diff.enabled"
                " || has(self.baseline)",
                "the diff suite needs spec.baseline",
                ".baseline",
            ),
        )
    )

    targets: list[Target] = Field(min_length=1, max_length=16)
    """Candidates, run in order against the same baseline (a bakeoff when more than one)."""
    baseline: Target | None = None
    """The model in service today, for the diff suite."""
    suites: Suites = Field(default_factory=Suites)
    """Suites and their thresholds."""
    datasets: list[DatasetRef] = Field(default_factory=list, max_length=16)
    """Datasets for the quality and diff suites."""
    judge: JudgeSpec | None = None
    """Judge model for rubric and pairwise items."""
    gates: Gates = Field(default_factory=Gates)
    """Gates of the overall verdict."""
    promotion: Promotion = Field(default_factory=Promotion)
    """Promotion on pass."""
    concurrency: int = Field(default=4, ge=1, le=1024)
    """Requests in flight during the run."""
    seed: int = Field(default=0, ge=0)
    """Sampling and bootstrap seed, recorded in the report."""
    force: bool = False
    """Re-run even when a result for the same (model SHA, engine, dataset hash) exists."""
    image: str | None = Field(default=None, max_length=512)
    """Override of the pinned dayzero image that runs the Job."""


class SuiteResult(Model):
    """Verdict of one suite for one target."""

    target: str
    """The target it ran against."""
    suite: SuiteName
    """Suite name."""
    verdict: Verdict
    """Pass, Fail, Error or Skipped."""
    reason: str | None = None
    """Why it failed, in one line."""
    figures: dict[str, float] = Field(default_factory=dict)
    """Key figures, e.g. p95Seconds, passRate."""


GauntletPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class GauntletStatus(StatusBase):
    """Observed state of a Gauntlet."""

    phase: GauntletPhase | None = None
    """Pending, Running, Succeeded (ran to the end, whatever the verdict) or Failed (could not
    run)."""
    verdict: Verdict | None = None
    """Overall verdict."""
    winner: str | None = None
    """The best passing target of a bakeoff."""
    suites: list[SuiteResult] = Field(default_factory=list)
    """Each suite's verdict and figures."""
    job_name: str | None = None
    """The evaluation Job."""
    report: str | None = None
    """Where the report is (ConfigMap key or URL)."""
    promoted: bool | None = None
    """Whether the pass moved the tag."""
    completion_time: datetime | None = None
    """When the run finished."""


class Gauntlet(Model):
    """An evaluation that gates promotion of a model."""

    api_version: Literal["dayzero.dev/v1alpha1"] = "dayzero.dev/v1alpha1"
    """APIVersion of this object."""
    kind: Literal["Gauntlet"] = "Gauntlet"
    """Kind of this object."""
    metadata: dict[str, object] = Field(default_factory=dict)
    """Standard object metadata."""
    spec: GauntletSpec
    """Desired state."""
    status: GauntletStatus | None = None
    """Observed state, written by the operator."""
