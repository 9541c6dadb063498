"""The only Kubernetes I/O: gather, server-side apply, delete, and the project's error type."""

from .client import FIELD_MANAGER, KINDS, Kube, KubeError, Manifest

__all__ = ["FIELD_MANAGER", "KINDS", "Kube", "KubeError", "Manifest"]
