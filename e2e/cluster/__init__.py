"""The local Kubernetes control plane that dayzero's e2e tests run against.

Why a package: the pytest fixtures (`e2e/conftest.py`) and the `python -m e2e.cluster` command share
one harness; this module re-exports its small public surface.
"""

from .controlplane import (
    GPU_PRODUCT_LABEL,
    H100_PRODUCT,
    ApiError,
    ControlPlane,
    ControlPlaneError,
    Kubectl,
    KubectlError,
    NodeSpec,
    build_binaries,
    cpu_node,
    default_nodes,
    h100_node,
    is_loopback,
    pinned_versions,
    wait_until,
)

__all__ = [
    "GPU_PRODUCT_LABEL",
    "H100_PRODUCT",
    "ApiError",
    "ControlPlane",
    "ControlPlaneError",
    "Kubectl",
    "KubectlError",
    "NodeSpec",
    "build_binaries",
    "cpu_node",
    "default_nodes",
    "h100_node",
    "is_loopback",
    "pinned_versions",
    "wait_until",
]
