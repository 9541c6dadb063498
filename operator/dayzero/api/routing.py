"""The routing document: what the gateway loads, versioned apart from the CRDs.

The Lane controller renders Lane objects into this one document (``dayzero.dev/routing-v1``,
``kind: Routing``) and the gateway hot-reloads it. It uses the Lane CRD's vocabulary, but
flattens backends into one named list so that a host shared by several lanes has one circuit
breaker. Secrets appear by reference only: backend API keys as a Secret key or an environment
variable name, client keys as sha256 hashes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .v1alpha1.base import DNS_LABEL, DNS_SUBDOMAIN, Model
from .v1alpha1.lane import (
    BudgetSpec,
    CircuitBreakerSpec,
    ConcurrencySpec,
    LaneMode,
    PaidFallbackSpec,
    RateLimitSpec,
)

ROUTING_API_VERSION = "dayzero.dev/routing-v1"
ROUTING_KIND = "Routing"

BackendKind = Literal["openai", "ollama", "anthropic", "provider"]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
SHA256_HEX = r"^[0-9a-f]{64}$"
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class ApiKeyRef(Model):
    """Where a backend's API key lives: a Secret key (mounted as a file) or an env variable."""

    secret: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """Secret name; the gateway reads ``<secretsDir>/<secret>/<key>``."""
    key: str = Field(default="token", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within the Secret."""
    env: str | None = Field(default=None, max_length=253, pattern=ENV_NAME)
    """Environment variable of the gateway process that holds the key."""

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyRef:
        if (self.secret is None) == (self.env is None):
            raise ValueError("exactly one of secret and env must be set")
        return self


class RoutingBackend(Model):
    """One upstream host; lanes refer to it by name and share its circuit breaker."""

    name: Name
    """Name, unique in the document; shown in X-Dayzero-Backend, status and logs."""
    kind: BackendKind = "openai"
    """The API the host speaks: openai, ollama, anthropic, or provider (another paid API)."""
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    """Base URL, e.g. http://vllm.ns.svc:8000 (a trailing /v1 is accepted)."""
    model: ModelName | None = None
    """Model name sent upstream; unset sends the lane's model (or the client's)."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Per-request timeout; for a stream, the longest wait for the next chunk."""
    api_key_ref: ApiKeyRef | None = None
    """Bearer token for the host, by reference."""
    max_parameters_billions: float | None = Field(default=None, gt=0)
    """Deny rule of a small host (enforced by the controller when it renders the document)."""
    maintenance: bool = False
    """Maintenance override of the deny rule."""
    keep_warm: bool = False
    """Keep the model loaded with a periodic minimal request."""
    paid: bool = False
    """A paid API: tried only when the lane's paidFallback is enabled, after every local backend."""
    model_deployment: str | None = Field(
        default=None,
        max_length=317,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
    )
    """namespace/name of the ModelDeployment behind this backend: the gateway reports its last
    use there (status.lastUsedTime) and wakes it when it is scaled to zero."""
    asleep: bool = False
    """The ModelDeployment is scaled to zero: the gateway asks for a replica and waits up to the
    lane's wakeTimeoutSeconds for it to be Ready, or passes the backend over at once."""


class RoutingLane(Model):
    """One lane: the names clients ask for and the backends tried in order."""

    name: Name
    """Lane name, as in X-Dayzero-Lane."""
    model: ModelName | None = None
    """Model name that selects the lane."""
    aliases: list[ModelName] = Field(default_factory=list, max_length=32)
    """Other model names that select the lane."""
    tag: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    """Tag that selects the lane, used as a model name (e.g. preview)."""
    mode: LaneMode = "sync"
    """sync; async (sync calls get 409, /v1/async/chat/completions queues them); shadow (the
    routing decision is recorded, and the request forwarded unchanged to legacyUrl)."""
    legacy_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """The legacy path a shadow lane forwards to (required in mode shadow)."""
    legacy_endpoint_header: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9-]+$"
    )
    """Response header of the legacy path that names the endpoint it used; unset: the answer's
    model field is compared with the decided backend's model instead."""
    wake_timeout_seconds: float | None = Field(default=None, ge=0, le=3600)
    """How long a request waits for a ModelDeployment scaled to zero to wake; unset: it falls
    through to the next backend at once."""
    backends: list[Name] = Field(min_length=1, max_length=16)
    """Names of backends in the order they are tried."""
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec)
    """Reserved and maximum in-flight requests."""
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)
    """Circuit breaker of each backend host of the lane."""
    paid_fallback: PaidFallbackSpec = Field(default_factory=PaidFallbackSpec)
    """Whether paid backends may be tried, and their budget."""
    parameters_billions: float | None = Field(default=None, gt=0)
    """Size of the lane's model in billions of parameters; a backend whose
    maxParametersBillions is smaller refuses the lane (unless it is in maintenance). Unset: the
    size is unknown and no backend refuses it."""
    canary: Canary | None = None
    """A staged rollout in progress on this lane."""
    rate_limit: RateLimitSpec | None = None
    """Each project's limit on this lane (counted per project, shared by every replica through
    Redis when the gateway has --redis-url). Unset: no limit."""


class Canary(Model):
    """A rollout stage in progress: some of the lane's own traffic goes to a new backend first."""

    backend: Name
    """The backend under rollout."""
    projects: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=256
    )
    """Projects whose requests go to it first."""
    percent: int = Field(default=0, ge=0, le=100)
    """Share of the other projects (sticky by project) whose requests go to it first."""


class TagTarget(Model):
    """Where a tag points: a lane, optionally pinned to one of its backends."""

    lane: Name
    """The lane that serves the tag."""
    backend: Name | None = None
    """Only this backend of the lane (e.g. the promoted ModelDeployment)."""


class Price(Model):
    """Price of a model, USD per million tokens."""

    input_usd_per_million: float = Field(ge=0)
    """Prompt tokens."""
    output_usd_per_million: float = Field(ge=0)
    """Completion tokens."""


class KeyEntry(Model):
    """A client API key, by its sha256 hash."""

    sha256: str = Field(pattern=SHA256_HEX)
    """Lower-case hex sha256 of the key."""
    project: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][-._A-Za-z0-9]*$")
    """Project the key belongs to (the project label of metrics and logs)."""
    lanes: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default_factory=lambda: ["*"], max_length=256
    )
    """Lanes the key may use; "*" for every lane."""
    admin: bool = False
    """May read /v1/models/status."""
    rate_limit: RateLimitSpec | None = None
    """This key's limit on each lane it uses (counted per key and lane), on top of the lane's
    per-project rateLimit. Unset: no limit of its own."""


class KeysSpec(Model):
    """Client authentication."""

    enabled: bool = True
    """Require a key. Off only for local use: every request is then project "local"."""
    file: str | None = Field(default=None, max_length=4096)
    """YAML or JSON file (a mounted Secret) holding a list of key entries."""
    entries: list[KeyEntry] = Field(default_factory=list, max_length=10_000)
    """Key entries inline (hashes only)."""


class Routing(Model):
    """The gateway's routing document."""

    api_version: Literal["dayzero.dev/routing-v1"]
    """Version of the document."""
    kind: Literal["Routing"]
    """Kind of the document."""
    lanes: list[RoutingLane] = Field(default_factory=list, max_length=1000)
    """Lanes (none is valid: every request then gets 404, e.g. while no backend is Ready)."""
    backends: list[RoutingBackend] = Field(default_factory=list, max_length=1000)
    """Backends the lanes refer to."""
    tags: dict[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)], TagTarget] = Field(
        default_factory=dict
    )
    """Tag -> lane (and backend) it selects."""
    prices: dict[ModelName, Price] = Field(default_factory=dict)
    """Upstream model -> price, for cost in logs and budgets."""
    budgets: dict[Annotated[str, Field(min_length=1, max_length=64)], BudgetSpec] = Field(
        default_factory=dict
    )
    """Project -> paid-tier spend limits."""
    keys: KeysSpec = Field(default_factory=KeysSpec)
    """Client API keys."""
    shared_concurrency: int = Field(default=256, ge=1, le=1_000_000)
    """Slots shared by every lane above its reserved ones."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    """Largest request body; a larger one gets 413."""
    secrets_dir: str = Field(default="/etc/dayzero/secrets", min_length=1, max_length=4096)
    """Where Secrets named by apiKeyRef.secret are mounted."""
    log_prompts: bool = False
    """Debug only: put request bodies in the request log."""

    @model_validator(mode="after")
    def _references(self) -> Routing:
        backends = {b.name: b for b in self.backends}
        if len(backends) != len(self.backends):
            raise ValueError("backends: names must be unique")
        lanes = {lane.name: lane for lane in self.lanes}
        if len(lanes) != len(self.lanes):
            raise ValueError("lanes: names must be unique")
        claimed: dict[str, str] = {}

        def claim(name: str, where: str) -> None:
            if name in claimed:
                raise ValueError(f"{where}: {name!r} already selects {claimed[name]}")
            claimed[name] = where

        for i, lane in enumerate(self.lanes):
            if lane.model is None and lane.tag is None:
                raise ValueError(f"lanes[{i}]: at least one of model and tag must be set")
            for j, ref in enumerate(lane.backends):
                if ref not in backends:
                    raise ValueError(f"lanes[{i}].backends[{j}]: no backend named {ref!r}")
            if lane.mode == "shadow" and lane.legacy_url is None:
                raise ValueError(f"lanes[{i}].legacyUrl: a lane in mode shadow needs legacyUrl")
            if lane.canary is not None and lane.canary.backend not in backends:
                raise ValueError(
                    f"lanes[{i}].canary.backend: no backend named {lane.canary.backend!r}"
                )
            for name in [n for n in (lane.model, lane.tag) if n is not None] + lane.aliases:
                claim(name, f"lanes[{i}] ({lane.name})")
        for tag, target in self.tags.items():
            if target.lane not in lanes:
                raise ValueError(f"tags.{tag}.lane: no lane named {target.lane!r}")
            # A tag may pin a backend outside the lane's order: a promoted model serves its tag
            # (with the lane's limits) before it takes any of the lane's default traffic.
            if target.backend is not None and target.backend not in backends:
                raise ValueError(f"tags.{tag}.backend: no backend named {target.backend!r}")
            claim(tag, f"tags.{tag}")
        return self
