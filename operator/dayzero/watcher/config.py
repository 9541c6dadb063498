"""The watcher's configuration: one YAML file the CronJob mounts, validated before any request.

camelCase keys and unknown keys rejected, like the API types: a typo in a filter must fail the run
at once, naming the field, rather than silently let every model through.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dayzero.api.v1alpha1.base import DNS_LABEL, DNS_SUBDOMAIN
from dayzero.api.v1alpha1.modeldeployment import GauntletTemplate, GpuKind

Mode = Literal["alert", "auto", "approval", "gitops"]
_REPO = r"^[A-Za-z0-9][\w.-]*/[\w.-]+$"


class WatcherConfigError(Exception):
    """An invalid watcher config; the message names the field."""


class _Config(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )


class HubConfig(_Config):
    """Which Hugging Face orgs to list, and how."""

    orgs: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][\w.-]*$")]] = Field(min_length=1)
    """Whitelisted authors, e.g. [meta-llama, mistralai, Qwen]."""
    endpoint: str | None = Field(default=None, pattern=r"^https?://")
    """Hub URL; unset: --hub-endpoint, $HF_ENDPOINT, else huggingface.co."""
    token_env: str = "HF_TOKEN"  # noqa: S105 - the name of a variable, not a secret
    """Environment variable holding the Hub token (gated repos need one with access)."""
    list_limit: int = Field(default=50, ge=1, le=1000)
    """Newest repos listed per org and per sort order (createdAt, then lastModified)."""
    max_retry_after_s: float = Field(default=60.0, ge=0, le=900)
    """Longest Retry-After the run waits for; a longer one skips the org until the next poll."""
    rate_limit_retries: int = Field(default=3, ge=0, le=10)
    """429 retries per request before the org is skipped."""
    transformers_fallback: bool = False
    """Judge an architecture unknown to vLLM deployable when the repo is a transformers model
    (the operator's Transformers fallback serves it, slower). Off: such a repo is held."""


class GitHubConfig(_Config):
    """GitHub repositories whose releases are news."""

    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://")
    """GitHub REST API base URL (GitHub Enterprise, or a fake in tests)."""
    token_env: str = "GITHUB_TOKEN"  # noqa: S105 - the name of a variable, not a secret
    """Environment variable holding a GitHub token (optional; raises the rate limit)."""
    repos: list[Annotated[str, Field(pattern=_REPO)]] = Field(default_factory=list)
    """owner/name of each watched repository, e.g. vllm-project/vllm."""
    vllm_repo: str = Field(default="vllm-project/vllm", pattern=_REPO)
    """The repository whose new releases re-judge held models and may announce architectures."""


class Filters(_Config):
    """Which releases are worth judging at all."""

    min_params_b: float = Field(default=0.0, ge=0)
    """Smallest size, in billions of parameters."""
    max_params_b: float | None = Field(default=None, gt=0)
    """Largest size, in billions of parameters; unset: no limit (the GPU budget still applies)."""
    include: list[str] = Field(default_factory=list)
    """Regexes; when set, a repo name must match one (searched in the name after the org)."""
    exclude: list[str] = Field(default_factory=list)
    """Regexes; a repo name matching one is skipped, e.g. ["-Base$", "-GGUF$", "-AWQ$"]."""
    licenses: list[str] = Field(default_factory=list)
    """Allowed licenses (the card's license, lower case); empty: any."""

    @field_validator("include", "exclude")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"entry {i}: invalid regex {pattern!r}: {e}") from None
        return patterns

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.max_params_b is not None and self.max_params_b < self.min_params_b:
            raise ValueError("maxParamsB must not be below minParamsB")
        return self


class Budget(_Config):
    """The cluster's GPUs a new model may take."""

    gpu_kind: GpuKind = "h100-80gb"
    """GPU kind models are planned for."""
    max_gpus: int = Field(default=8, ge=1, le=1024)
    """A plan needing more GPUs than this is judged too_large."""


class SlackSink(_Config):
    webhook_url: str = Field(pattern=r"^https?://")
    """Slack incoming-webhook URL."""


class EmailSink(_Config):
    host: str = Field(min_length=1)
    """SMTP server."""
    port: int = Field(default=25, ge=1, le=65535)
    """SMTP port."""
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    """Sender address."""
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    """Recipients."""
    starttls: bool = False
    """Upgrade the connection with STARTTLS before sending."""
    username_env: str | None = None
    """Environment variable with the SMTP user (login only when set)."""
    password_env: str | None = None
    """Environment variable with the SMTP password."""


class WebhookSink(_Config):
    url: str = Field(pattern=r"^https?://")
    """Generic CI/CD webhook: receives every verdict as JSON (e.g. to trigger a pipeline)."""
    header_env: dict[str, str] = Field(default_factory=dict)
    """Extra headers, name -> environment variable holding the value (a CI token)."""


class Sinks(_Config):
    slack: SlackSink | None = None
    email: EmailSink | None = None
    webhook: WebhookSink | None = None


class GitOps(_Config):
    """Where gitops mode commits ModelDeployment YAML."""

    repo: str = Field(min_length=1)
    """Anything `git clone` takes: a local path, file://, ssh or https URL."""
    branch: str = Field(default="dayzero/models", pattern=r"^[\w./-]+$")
    """Branch the commits land on (created from the default branch when missing)."""
    dir: str = Field(default="models", pattern=r"^[\w./-]*$")
    """Folder inside the repository for `<name>.yaml`."""
    author_name: str = "dayzero-watcher"
    author_email: str = "dayzero-watcher@localhost"


class Deployment(_Config):
    """What auto, approval and gitops modes put in a new ModelDeployment."""

    tags: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]] = Field(
        default_factory=lambda: ["candidate"]
    )
    """Gateway tags of the new deployment."""
    hf_token_secret: str | None = Field(default=None, pattern=DNS_SUBDOMAIN)
    """Secret (key `token`) the operator downloads gated weights with."""


class WatcherConfig(_Config):
    """The whole config file."""

    hub: HubConfig
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    filters: Filters = Field(default_factory=Filters)
    budget: Budget = Field(default_factory=Budget)
    mode: Mode = "alert"
    """alert: notify only; auto: create the ModelDeployment; approval: create it suspended;
    gitops: commit its YAML to a branch."""
    namespace: str = Field(default="default", pattern=DNS_LABEL)
    """Namespace of new ModelDeployments and of the state ConfigMap."""
    gauntlet: GauntletTemplate | None = None
    """Gauntlet template put in each new ModelDeployment's spec.gauntlet."""
    deployment: Deployment = Field(default_factory=Deployment)
    sinks: Sinks = Field(default_factory=Sinks)
    gitops: GitOps | None = None
    """Required in gitops mode."""
    state_config_map: str = Field(default="dayzero-watcher-state", pattern=DNS_SUBDOMAIN)
    """ConfigMap holding the seen-set (repo -> sha, verdict) and the GitHub ETags."""
    state_file: str | None = None
    """A local JSON file instead of the ConfigMap (runs without a cluster)."""

    @model_validator(mode="after")
    def _mode_needs(self) -> WatcherConfig:
        if self.mode == "gitops" and self.gitops is None:
            raise ValueError("gitops: required when mode is gitops")
        return self


def parse_config(data: object) -> WatcherConfig:
    """Validate parsed YAML; WatcherConfigError names each bad field (camelCase, dotted)."""
    if not isinstance(data, dict):
        raise WatcherConfigError("the config must be a mapping (with at least hub.orgs)")
    try:
        return WatcherConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "config"
            problems.append(f"{where}: {err['msg']}")
        raise WatcherConfigError("; ".join(problems)) from None


def load_config(path: str | Path) -> WatcherConfig:
    """Read and validate the YAML file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise WatcherConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WatcherConfigError(f"{path}: not YAML: {e}") from None
    try:
        return parse_config(data)
    except WatcherConfigError as e:
        raise WatcherConfigError(f"{path}: {e}") from None
