"""ModelDeployment: one model, from the Hub at a pinned revision or from a paid provider.

A Hub model becomes GPU StatefulSets sized by the planner; a provider model gets no pods, only a
gateway route. Fields are additive-only from here on: kopf has no conversion webhooks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    DURATION,
    Model,
    SecretKeyRef,
    StatusBase,
    cel,
    validations,
)
from .plan import Plan

Provider = Literal["openai", "anthropic", "gemini"]
EngineKind = Literal["auto", "vllm", "transformers"]
GpuKind = Literal["h100-80gb", "h200-141gb", "a100-80gb"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
Quantization = Literal["none", "fp8", "awq", "gptq", "bitsandbytes", "compressed-tensors"]
# A parallel size is a count, or "auto" to let the planner choose.
ParallelSize = Annotated[int, Field(ge=1, le=64)] | Literal["auto"]


class HubSource(Model):
    """A model repository on the Hugging Face Hub."""

    repo: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    """Repository id, org/name, e.g. meta-llama/Llama-3.1-8B-Instruct."""
    revision: str = Field(min_length=1, max_length=255, pattern=r"^[\w./-]+$")
    """Revision to serve: a commit SHA (preferred), branch or tag. The resolved commit SHA is
    recorded in status.resolvedRevision and is what every pod serves."""


class ProviderSource(Model):
    """A proprietary model behind a paid API. It gets no pods, only a gateway route."""

    provider: Provider
    """The API provider: openai, anthropic or gemini."""
    model: str = Field(min_length=1, max_length=200)
    """The provider's model id, e.g. claude-sonnet-4-5 or gpt-5."""
    api_key_secret_ref: SecretKeyRef
    """Secret key holding the API key. The key is never copied into a ConfigMap or a log."""
    base_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """Override of the provider's API base URL (a regional or proxy endpoint)."""


class ModelSource(Model):
    """Where the model comes from: exactly one of hub or provider."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.hub) ? 1 : 0) + (has(self.provider) ? 1 : 0) == 1",
                "exactly one of spec.source.hub and spec.source.provider must be set",
            )
        )
    )

    hub: HubSource | None = None
    """An open-weights model on the Hugging Face Hub, served on GPUs."""
    provider: ProviderSource | None = None
    """A proprietary model reached through its provider's API."""


class EnvVar(Model):
    """An environment variable for the engine container."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Variable name."""
    value: str = Field(default="", max_length=32768)
    """Variable value."""


class EngineSpec(Model):
    """Which inference engine serves the model, and how it may fall back."""

    kind: EngineKind = "auto"
    """vllm, transformers, or auto: vLLM first, stepping down the fallback ladder (vLLM native,
    vLLM with --model-impl transformers, the Transformers image) on a classified load failure."""
    image: str | None = Field(default=None, max_length=512)
    """Override of the pinned vLLM image."""
    transformers_image: str | None = Field(default=None, max_length=512)
    """Override of the pinned Transformers fallback image (transformers serve)."""
    extra_args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64
    )
    """Extra command-line flags passed to the engine, e.g. --enable-prefix-caching."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables for the engine container."""
    allow_fallback: bool = True
    """Whether the operator may step down the fallback ladder when the engine cannot load the
    model. Never taken on out-of-memory, unschedulable or gated-repo failures."""
    max_fallback_attempts: int = Field(default=3, ge=1, le=10)
    """Cap on engine attempts across the ladder before the deployment is marked failed."""
    distributed_backend: Literal["native", "ray"] = "native"
    """Multi-node launcher: vLLM's own --nnodes/--node-rank/--master-addr, or a Ray cluster."""


class ResourcesSpec(Model):
    """GPU resources. Fields left as auto are chosen by the planner from the model's metadata."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(type(self.tensorParallel) == int && type(self.pipelineParallel) == int"
                " && has(self.gpusPerNode) && has(self.nodes))"
                " || self.tensorParallel * self.pipelineParallel == self.gpusPerNode * self.nodes",
                "tensorParallel x pipelineParallel must equal gpusPerNode x nodes",
                ".tensorParallel",
            ),
            cel(
                "type(self.tensorParallel) != int || !has(self.gpusPerNode)"
                " || self.tensorParallel <= self.gpusPerNode",
                "tensorParallel must stay within one node (at most gpusPerNode)",
                ".tensorParallel",
            ),
        )
    )

    gpu_kind: GpuKind = "h100-80gb"
    """GPU kind the model is planned for and scheduled on: h100-80gb, h200-141gb or a100-80gb."""
    gpus_per_node: int | None = Field(default=None, ge=1, le=8)
    """GPUs each pod takes. Unset: chosen by the planner."""
    nodes: int | None = Field(default=None, ge=1, le=16)
    """Nodes (pods) in one replica group. More than one makes a multi-node group."""
    tensor_parallel: ParallelSize = Field(default="auto")
    """Tensor-parallel size, or auto. Must divide the attention heads and stay within a node."""
    pipeline_parallel: ParallelSize = Field(default="auto")
    """Pipeline-parallel size, or auto. Equals the node count when the model spans nodes."""
    max_model_len: int | None = Field(default=None, ge=256, le=10_485_760)
    """Maximum context length. Unset: the model's, lowered by the planner if KV cache is short."""
    dtype: Dtype = "auto"
    """Activation and weight dtype passed to the engine."""
    quantization: Quantization | None = None
    """Quantization to serve with. Unset: read from the checkpoint's quantization_config.
    fp8 on a BF16 checkpoint means online FP8 (half the weight memory)."""
    gpu_memory_utilization: float = Field(default=0.9, ge=0.1, le=0.98)
    """Fraction of each GPU's memory the engine may use."""


class ScalingSpec(Model):
    """Replica bounds and idle scale-to-zero."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "minReplicas must not exceed maxReplicas",
                ".minReplicas",
            )
        )
    )

    min_replicas: int = Field(default=0, ge=0, le=64)
    """Lowest replica count the operator or gateway may scale to."""
    max_replicas: int = Field(default=4, ge=1, le=64)
    """Highest replica count the gateway's wake-up or an autoscaler may ask for."""
    idle_after: str | None = Field(default=None, pattern=DURATION)
    """Scale to zero after this long without traffic (e.g. 30m). Unset: never. The gateway reports
    last use; the operator records the effective replicas in status and never writes the spec."""


class PvcCache(Model):
    """A PersistentVolumeClaim the operator creates for the weights."""

    storage_class_name: str | None = Field(default=None, max_length=253)
    """Storage class; unset uses the cluster default. ReadWriteMany lets replicas share it."""
    size: str = Field(default="500Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")
    """Requested capacity."""
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = "ReadWriteMany"
    """Access mode of the claim."""


class WeightCacheSpec(Model):
    """Where downloaded weights are cached. The cache key is (repo, resolved SHA), so a second
    ModelDeployment of the same model reuses it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.pvc) ? 1 : 0) + (has(self.existingClaim) ? 1 : 0)"
                " + (has(self.sharedPath) ? 1 : 0) <= 1",
                "set at most one of pvc, existingClaim and sharedPath",
            )
        )
    )

    pvc: PvcCache | None = None
    """Create a PVC for the cache."""
    existing_claim: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """Use an existing PVC by name."""
    shared_path: str | None = Field(default=None, max_length=4096, pattern=r"^/")
    """A shared filesystem path mounted on every GPU node (hostPath), e.g. /mnt/lustre/hf."""
    hf_token_secret_ref: SecretKeyRef | None = None
    """Secret key holding the Hugging Face token for gated repos. Never logged or rendered."""
    download_timeout: str = Field(default="2h", pattern=DURATION)
    """Deadline of the download Job."""
    download_retries: int = Field(default=3, ge=0, le=20)
    """Retries (the download Job's backoffLimit)."""


class GauntletTemplate(Model):
    """A Gauntlet to run against this deployment once it is Ready."""

    name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of an existing Gauntlet to use as the template; its targets are replaced by this
    deployment. Unset: the suites below with their defaults."""
    suites: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=16)
    """Suites to run when no template Gauntlet is named, e.g. [sanity, latency]."""
    promote_to_lane: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """Lane whose tag a pass promotes this deployment to."""
    promote_tag: str = Field(default="preview", max_length=63, pattern=DNS_LABEL)
    """Tag a pass moves to this deployment."""


class ModelDeploymentSpec(Model):
    """Desired state of a ModelDeployment."""

    source: ModelSource
    """The model to serve."""
    engine: EngineSpec = Field(default_factory=EngineSpec)
    """Inference engine and fallback policy."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """GPU kind and parallelism."""
    replicas: int = Field(default=1, ge=0, le=64)
    """Replica groups to run. 0 unloads the model; this is the scale subresource."""
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    """Replica bounds and idle scale-to-zero."""
    weight_cache: WeightCacheSpec = Field(default_factory=WeightCacheSpec)
    """Weight cache and Hub token."""
    priority_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    """PriorityClass of the serving pods, e.g. to preempt research jobs."""
    tags: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]] = Field(
        default_factory=list, max_length=16
    )
    """Tags or aliases this model answers to in the gateway, e.g. light, heavy, candidate."""
    gauntlet: GauntletTemplate | None = None
    """Evaluation to run when the deployment becomes Ready."""
    suspend: bool = False
    """Hold the deployment: nothing is scheduled until set to false (the watcher's approval
    mode creates deployments suspended)."""


Phase = Literal["Pending", "Downloading", "Loading", "Ready", "Degraded", "Failed", "Suspended"]


class ModelDeploymentStatus(StatusBase):
    """Observed state of a ModelDeployment."""

    phase: Phase | None = None
    """Summary of the lifecycle: Pending, Downloading, Loading, Ready, Degraded, Failed or
    Suspended."""
    endpoint: str | None = None
    """In-cluster OpenAI-compatible URL the gateway routes to (leader Service), or the provider's
    API URL."""
    engine: str | None = None
    """Engine in use: vllm, vllm-transformers (vLLM with --model-impl transformers),
    transformers, or the provider name."""
    engine_attempts: int | None = Field(default=None, ge=0)
    """Engine attempts made on the fallback ladder."""
    resolved_revision: str | None = None
    """Commit SHA the revision resolved to; every pod serves exactly this."""
    plan: Plan | None = None
    """The planner's sizing and the reason for each choice."""
    replicas: int | None = Field(default=None, ge=0)
    """Replica groups that exist (the scale subresource's status)."""
    ready_replicas: int | None = Field(default=None, ge=0)
    """Replica groups whose leader is ready."""
    selector: str | None = None
    """Label selector of the serving pods, for the scale subresource."""
    last_used_time: datetime | None = None
    """Last time the gateway routed a request here, for idle scale-to-zero."""


class ModelDeployment(Model):
    """A model served on GPUs with vLLM (falling back to Transformers), or a paid API model."""

    api_version: Literal["dayzero.dev/v1alpha1"] = "dayzero.dev/v1alpha1"
    """APIVersion of this object."""
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    """Kind of this object."""
    metadata: dict[str, object] = Field(default_factory=dict)
    """Standard object metadata."""
    spec: ModelDeploymentSpec
    """Desired state."""
    status: ModelDeploymentStatus | None = None
    """Observed state, written by the operator."""
