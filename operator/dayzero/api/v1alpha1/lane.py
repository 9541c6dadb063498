"""Lane: one routing lane of the gateway.

A Lane names the model (or tag) clients ask for and the ordered backends that can serve it. The
operator renders every Lane into the gateway's routing ConfigMap; tags moved by promotion live in
status, never in the spec, so GitOps tools never see drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from .base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    DURATION,
    LocalObjectReference,
    Model,
    SecretKeyRef,
    StatusBase,
    cel,
    validations,
)
from .modeldeployment import Provider

UrlApi = Literal["openai", "ollama"]
LaneMode = Literal["sync", "async", "shadow"]


class UrlBackend(Model):
    """A host outside the cluster speaking the OpenAI or Ollama API."""

    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    """Base URL, e.g. http://ollama-a.example:11434 or https://vllm.example/v1."""
    api: UrlApi = "openai"
    """The API the host speaks: openai (vLLM, transformers serve, ...) or ollama."""
    model: str | None = Field(default=None, max_length=200)
    """Model name to send upstream; unset sends the lane's model."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding a bearer token for the host, if it needs one."""


class ProviderBackend(Model):
    """A paid API model: the lane's paid tier, tried only under budget."""

    provider: Provider
    """openai, anthropic or gemini."""
    model: str = Field(min_length=1, max_length=200)
    """The provider's model id."""
    api_key_secret_ref: SecretKeyRef
    """Secret key holding the API key; only the reference reaches the routing ConfigMap."""
    base_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """Override of the provider's API base URL."""


class Backend(Model):
    """One backend of a lane: exactly one of modelDeploymentRef, url and provider."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.modelDeploymentRef) ? 1 : 0) + (has(self.url) ? 1 : 0)"
                " + (has(self.provider) ? 1 : 0) == 1",
                "exactly one of modelDeploymentRef, url and provider must be set",
            )
        )
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    """Name of the backend, unique within the lane; shown in status, metrics and headers."""
    model_deployment_ref: LocalObjectReference | None = None
    """A ModelDeployment in this namespace; routed to only while it is Ready."""
    url: UrlBackend | None = None
    """An external OpenAI-compatible or Ollama host."""
    provider: ProviderBackend | None = None
    """A paid provider model (the paid tier)."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Per-request timeout for this backend; on expiry the request moves to the next backend."""
    max_parameters_billions: float | None = Field(default=None, gt=0)
    """Deny rule: refuse models larger than this on this backend (a small host)."""
    maintenance: bool = False
    """Maintenance override: lift the deny rule while set."""
    keep_warm: bool = False
    """Keep the model loaded with a periodic minimal request (Ollama hosts of a fast lane)."""


class ConcurrencySpec(Model):
    """Concurrency reserved for and allowed to the lane."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.reserved <= self.max",
                "reserved concurrency must not exceed max",
                ".reserved",
            )
        )
    )

    reserved: int = Field(default=0, ge=0, le=100_000)
    """Slots that belong to this lane only and are never borrowed by others."""
    max: int = Field(default=64, ge=1, le=100_000)
    """Most requests in flight; past it requests queue for up to queueTimeoutSeconds, then 429."""
    queue_timeout_seconds: float = Field(default=10.0, ge=0, le=600)
    """How long a request may wait for a slot before a 429 with Retry-After."""


class CircuitBreakerSpec(Model):
    """Per-backend-host circuit breaker."""

    consecutive_timeouts: int = Field(default=2, ge=1, le=100)
    """Consecutive timeouts or connection errors that open the circuit."""
    open_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Cool-down before one half-open probe request is let through."""


class BudgetSpec(Model):
    """Spend limits of the paid tier, in USD."""

    daily_usd: float | None = Field(default=None, ge=0)
    """Limit per UTC day. Unset: no daily limit."""
    monthly_usd: float | None = Field(default=None, ge=0)
    """Limit per UTC month. Unset: no monthly limit."""
    hard_kill: bool = True
    """Once a limit is hit, block paid calls until the period ends or an admin resets it."""


class RateLimitSpec(Model):
    """Requests and tokens allowed per minute; a request over either gets 429 with Retry-After."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.requestsPerMinute) || has(self.tokensPerMinute)",
                "set requestsPerMinute, tokensPerMinute or both",
            )
        )
    )

    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000_000)
    """Requests per minute; unset: no request limit."""
    tokens_per_minute: int | None = Field(default=None, ge=1, le=100_000_000_000)
    """Tokens per minute: a request is admitted on its prompt estimate (one token per 3 bytes of
    the prompt) plus its max_tokens (4096 when unset), then counts its real usage once answered;
    unset: no token limit."""

    @model_validator(mode="after")
    def _something(self) -> RateLimitSpec:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("set requestsPerMinute, tokensPerMinute or both")
        return self


class PaidFallbackSpec(Model):
    """When the paid tier may be used."""

    enabled: bool = False
    """Allow the paid backends at all; tried only after every local backend failed or is open."""
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    """Spend limits for this lane."""


class RolloutStage(Model):
    """One stage of a staged rollout."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    """Name of the stage, e.g. preview, canary, default."""
    projects: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=256
    )
    """Projects (X-Dayzero-Project) that get the new model in this stage."""
    percent: int | None = Field(default=None, ge=0, le=100)
    """Share of the lane's traffic, sticky by project, that gets the new model."""
    soak: str = Field(default="1h", pattern=DURATION)
    """How long the stage runs before it may advance."""


class RolloutLimits(Model):
    """Metrics the new model must stay within for a stage to advance."""

    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    """Highest share of failed requests."""
    max_p95_seconds: float = Field(default=20.0, gt=0)
    """Highest p95 latency."""
    max_cost_per_request_usd: float | None = Field(default=None, ge=0)
    """Highest mean cost per request."""
    min_requests: int = Field(default=10, ge=0, le=1_000_000)
    """Requests a stage must see before it may advance (a breach needs as many to count)."""


class RolloutSpec(Model):
    """Staged rollout of a promotion: preview, then some projects or a share, then default."""

    stages: list[RolloutStage] = Field(default_factory=list, max_length=8)
    """Stages in order. Empty: a promotion takes effect at once."""
    limits: RolloutLimits = Field(default_factory=RolloutLimits)
    """Limits checked before each advance; a breach rolls back on its own."""


class LaneSpec(Model):
    """Desired state of a Lane."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.model) ? 1 : 0) + (has(self.tag) ? 1 : 0) == 1",
                "exactly one of spec.model and spec.tag must be set",
            ),
            cel(
                "self.mode != 'shadow' || has(self.legacyUrl)",
                "a lane in mode shadow needs spec.legacyUrl",
                ".legacyUrl",
            ),
            cel(
                "self.backends.all(b, self.backends.exists_one(c, c.name == b.name))",
                "backend names must be unique within the lane",
                ".backends",
            ),
        )
    )

    model: str | None = Field(default=None, max_length=200)
    """Model name clients ask for (the OpenAI model field or Ollama model)."""
    tag: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    """Tag this lane serves, e.g. preview, light, heavy, candidate."""
    aliases: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=32
    )
    """Other model names that select this lane."""
    backends: list[Backend] = Field(min_length=1, max_length=16)
    """Backends in the order they are tried."""
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec)
    """Reserved and maximum concurrency."""
    mode: LaneMode = "sync"
    """sync; async (sync calls get 409 naming the async endpoint); shadow (decide, record, and
    forward unchanged to legacyUrl)."""
    legacy_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """The legacy path a shadow lane forwards to."""
    legacy_endpoint_header: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9-]+$"
    )
    """Response header in which the legacy path names the endpoint it used, compared with the
    shadow decision's backend; unset: the answer's model field is compared with its model."""
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)
    """Circuit breaker of each backend host."""
    paid_fallback: PaidFallbackSpec = Field(default_factory=PaidFallbackSpec)
    """Paid tier and its budget."""
    rate_limit: RateLimitSpec | None = None
    """Each project's requests and tokens per minute on this lane (shared by every gateway
    replica through Redis when the gateway has one). Unset: no limit."""
    wake_timeout_seconds: float | None = Field(default=None, ge=0, le=3600)
    """Wait this long for a ModelDeployment scaled to zero to wake; unset: fall through."""
    tags: dict[
        Annotated[str, Field(max_length=63, pattern=DNS_LABEL)],
        Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN)],
    ] = Field(default_factory=dict, max_length=64)
    """Pinned tags: tag -> ModelDeployment name. A pin wins over a promotion."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    """How promotions roll out."""


class ResolvedBackend(Model):
    """A backend as the operator resolved it."""

    name: str
    """Backend name."""
    kind: Literal["modelDeployment", "url", "provider"]
    """What the backend is."""
    endpoint: str | None = None
    """URL the gateway routes to; unset while unavailable."""
    available: bool = False
    """Whether the gateway may route to it."""
    reason: str | None = None
    """Why it is unavailable."""


class RolloutSample(Model):
    """The gateway's counters for a model when a rollout stage started (its baseline)."""

    requests: int = Field(default=0, ge=0)
    """Requests the model's backend was tried for."""
    errors: int = Field(default=0, ge=0)
    """Of those, the ones it failed (timeouts, connection errors, 5xx, broken streams)."""
    cost_usd: float = Field(default=0.0, ge=0)
    """Cost of its answers."""
    latency_buckets: dict[str, int] = Field(default_factory=dict)
    """Cumulative latency histogram buckets (upper bound in seconds -> count)."""


class PromotionRecord(Model):
    """A tag moved by promotion."""

    tag: str
    """The tag."""
    model_deployment: str
    """The ModelDeployment it points to."""
    previous: str | None = None
    """What it pointed to before, restored by a rollback."""
    stage: str | None = None
    """Current rollout stage."""
    stage_started: datetime | None = None
    """When the current stage started soaking."""
    by: str | None = None
    """Who or what promoted it, e.g. gauntlet/qwen3-eval."""
    rollout_complete: bool = False
    """Every rollout stage has soaked within limits: the model leads the lane's backends."""
    baseline: RolloutSample | None = None
    """The gateway's counters for the model when the current stage started."""


class RollbackRecord(Model):
    """The last rollback of a promotion, manual or automatic."""

    tag: str
    """The tag that moved back."""
    from_model_deployment: str
    """What the tag pointed to before the rollback."""
    to_model_deployment: str | None = None
    """What it points to now (unset: the promotion was removed)."""
    by: str
    """Who asked: the field manager that set the annotation, or rollout/<stage> when automatic."""
    reason: str = ""
    """Why: the annotation's value, or the limit the rollout breached."""
    time: datetime | None = None
    """When it happened."""


class LaneStatus(StatusBase):
    """Observed state of a Lane."""

    backends: list[ResolvedBackend] = Field(default_factory=list)
    """Resolved backends and whether each is available."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tag map in force (pins merged over promotions)."""
    promotions: list[PromotionRecord] = Field(default_factory=list)
    """Tags moved by promotion, with the previous value for one-step rollback."""
    config_hash: str | None = None
    """Hash of the routing document written for this lane."""
    applied_config_hash: str | None = None
    """Hash the gateway reports it has loaded; equal to configHash once applied."""
    last_rollback: RollbackRecord | None = None
    """The last rollback, with who asked and why."""


class Lane(Model):
    """A routing lane of the dayzero gateway."""

    api_version: Literal["dayzero.dev/v1alpha1"] = "dayzero.dev/v1alpha1"
    """APIVersion of this object."""
    kind: Literal["Lane"] = "Lane"
    """Kind of this object."""
    metadata: dict[str, object] = Field(default_factory=dict)
    """Standard object metadata."""
    spec: LaneSpec
    """Desired state."""
    status: LaneStatus | None = None
    """Observed state, written by the operator."""
