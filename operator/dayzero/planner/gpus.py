"""The GPU kinds the planner knows: how much memory each has and how nodes of it are built.

Memory is what the driver reports (nvidia-smi's MiB), not the marketing number, because vLLM's
``gpu_memory_utilization`` is a fraction of exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

from dayzero.api.v1alpha1.plan import GpuKindId

from .errors import PlanError

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class GpuKind:
    """One GPU kind and the standard node built from it."""

    id: GpuKindId
    name: str
    memory_bytes: int
    gpus_per_node: int
    # Value of the nvidia.com/gpu.product label GPU feature discovery puts on the node.
    product: str

    @property
    def memory_gib(self) -> float:
        """Physical memory in GiB."""
        return self.memory_bytes / GIB


GPU_KINDS: dict[str, GpuKind] = {
    kind.id: kind
    for kind in (
        GpuKind("h100-80gb", "NVIDIA H100 80GB HBM3", 81559 * MIB, 8, "NVIDIA-H100-80GB-HBM3"),
        GpuKind("h200-141gb", "NVIDIA H200 141GB HBM3e", 143771 * MIB, 8, "NVIDIA-H200"),
        GpuKind("a100-80gb", "NVIDIA A100-SXM4-80GB", 81920 * MIB, 8, "NVIDIA-A100-SXM4-80GB"),
    )
}

DEFAULT_GPU_KIND = "h100-80gb"


def get_gpu_kind(kind_id: str) -> GpuKind:
    """The GPU kind with this id; a PlanError naming ``gpuKind`` when unknown."""
    try:
        return GPU_KINDS[kind_id]
    except KeyError:
        known = ", ".join(GPU_KINDS)
        raise PlanError("gpuKind", f"unknown GPU kind {kind_id!r}; known: {known}") from None
