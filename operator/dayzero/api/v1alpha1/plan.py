"""Plan: how many GPUs a model needs, how it is split across them, and why.

The planner computes it from the model's metadata; the ModelDeployment status embeds it so that
``kubectl get -o yaml`` shows the sizing and the reason for every choice. It lives in ``api``, the
lowest layer, because the status type needs it; it holds only plain scalars and lists so that it
turns into a Kubernetes structural schema unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Model

GpuKindId = Literal["h100-80gb", "h200-141gb", "a100-80gb"]

# The plan fields a reason can explain, spelled as they appear on the wire. Sizes in GiB keep the
# unit's spelling (weightsGiB), hence explicit aliases where to_camel would write weightsGib.
PlanField = Literal[
    "fits",
    "gpus",
    "nodes",
    "gpusPerNode",
    "tensorParallel",
    "pipelineParallel",
    "maxModelLen",
    "quantization",
    "parameterCount",
    "weightsGiB",
    "kvCacheBytesPerToken",
    "kvCacheTokens",
]


class PlanReason(Model):
    """Why the planner chose the value of one field."""

    field: PlanField
    """The plan field this reason explains, e.g. tensorParallel."""
    reason: str = Field(max_length=2048)
    """The reason, in a sentence that names the numbers it compared."""


class PerGpuMemory(Model):
    """Memory of the most loaded GPU of the plan, in GiB (2^30 bytes)."""

    total_gib: float = Field(ge=0, alias="totalGiB")
    """Physical memory of one GPU."""
    usable_gib: float = Field(ge=0, alias="usableGiB")
    """What the engine may use: total times gpuMemoryUtilization."""
    weights_gib: float = Field(ge=0, alias="weightsGiB")
    """This GPU's share of the weights (the first or last pipeline stage when they differ)."""
    overhead_gib: float = Field(ge=0, alias="overheadGiB")
    """Reserved for activations, CUDA graphs and communication buffers."""
    kv_cache_gib: float = Field(alias="kvCacheGiB")
    """Left for the KV cache: usable minus weights minus overhead. Negative when it does not
    fit."""


class Plan(Model):
    """GPU sizing of a model served with vLLM: layout, memory and the reason for each choice."""

    gpu_kind: GpuKindId
    """GPU kind planned for: h100-80gb, h200-141gb or a100-80gb."""
    gpu_product: str = Field(max_length=253)
    """Value of the nvidia.com/gpu.product node label of that GPU kind."""
    fits: bool
    """Whether the model fits on the layout below; when false, reasons says why."""
    gpus: int = Field(ge=1)
    """GPUs in one replica group: tensorParallel x pipelineParallel = nodes x gpusPerNode."""
    nodes: int = Field(ge=1)
    """Nodes (pods) in one replica group."""
    gpus_per_node: int = Field(ge=1)
    """GPUs each pod requests."""
    tensor_parallel: int = Field(ge=1)
    """Tensor-parallel size (--tensor-parallel-size); divides the attention heads, within a
    node."""
    pipeline_parallel: int = Field(ge=1)
    """Pipeline-parallel size (--pipeline-parallel-size); equals the node count when the model
    spans nodes."""
    max_model_len: int = Field(ge=1)
    """Context length to serve (--max-model-len)."""
    quantization: str = Field(max_length=64)
    """Weight quantization planned for, as vLLM names it (fp8, awq, gptq, compressed-tensors,
    mxfp4, ...), or none."""
    online_quantization: bool = False
    """Whether vLLM quantizes the weights while loading them (e.g. fp8 on a BF16 checkpoint)."""
    parameter_count: int = Field(ge=0)
    """Parameters of the checkpoint, every MoE expert included."""
    parameters_estimated: bool = False
    """Whether parameterCount was estimated from config.json rather than counted from the
    safetensors files."""
    weights_gib: float = Field(ge=0, alias="weightsGiB")
    """Memory of all the weights as loaded, in GiB."""
    kv_cache_bytes_per_token: int = Field(ge=0)
    """KV-cache bytes one token takes across all layers of the whole model."""
    kv_cache_tokens: int = Field(ge=0)
    """Tokens the KV cache holds with this layout (0 when the model does not fit)."""
    min_kv_cache_tokens: int = Field(ge=0)
    """Tokens the KV cache must hold for the plan to fit: one full maxModelLen sequence, and
    more for short contexts so that requests can batch."""
    gpu_memory_utilization: float = Field(gt=0, le=1)
    """Fraction of each GPU's memory the engine may use (--gpu-memory-utilization)."""
    per_gpu_memory: PerGpuMemory
    """Memory of the most loaded GPU."""
    reasons: list[PlanReason] = Field(default_factory=list, max_length=32)
    """The reason for each choice, one entry per field explained."""
