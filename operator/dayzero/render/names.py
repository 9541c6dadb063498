"""Names of the objects a ModelDeployment becomes.

A ModelDeployment name is a DNS subdomain (up to 253 characters, dots allowed, may start with a
digit), but Services need an RFC 1035 label (63 characters, a letter first, no dots), and a
StatefulSet's name must leave room for ``-<ordinal>`` in pod names and ``-<10-char hash>`` in the
controller-revision-hash label (63 characters each). Names that do not fit are cut and given a
hash of the full name, so two long names with one prefix never collide.
"""

from __future__ import annotations

import hashlib
import re

# A StatefulSet name of at most 52 characters keeps "<name>-<revision hash>" within 63.
STATEFULSET_MAX = 52
LABEL_MAX = 63
CLUSTER_DOMAIN = "cluster.local"


def digest(text: str, length: int) -> str:
    """The first ``length`` hex characters of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_label(base: str, suffix: str = "", limit: int = LABEL_MAX) -> str:
    """``base`` + ``suffix`` as an RFC 1035 label of at most ``limit`` characters.

    ``base`` is kept verbatim when it is already valid and fits; otherwise it is cleaned, cut and
    given a 6-character hash of the original (so distinct inputs stay distinct).
    """
    clean = re.sub(r"[^a-z0-9-]", "-", base.lower())
    if not clean[:1].isalpha():
        clean = f"m-{clean}"
    room = limit - len(suffix)
    if clean != base or len(clean) > room:
        tag = f"-{digest(base, 6)}"
        clean = clean[: room - len(tag)].rstrip("-") + tag
    return clean + suffix


def statefulset_name(mdep: str, serving_hash: str, index: int) -> str:
    """``<mdep>-<hash>-<index>``: one replica group."""
    return dns_label(mdep, f"-{serving_hash}-{index}", STATEFULSET_MAX)


def headless_service_name(mdep: str, serving_hash: str, index: int) -> str:
    """The group's headless Service: the StatefulSet's own name (its serviceName)."""
    return statefulset_name(mdep, serving_hash, index)


def leader_service_name(mdep: str) -> str:
    """The ClusterIP Service the gateway routes to: the ModelDeployment's name."""
    return dns_label(mdep)


def pod_disruption_budget_name(mdep: str, serving_hash: str) -> str:
    """``<mdep>-<hash>``: the PodDisruptionBudget of one serving hash."""
    return dns_label(mdep, f"-{serving_hash}")


def leader_host(mdep: str, serving_hash: str, index: int, namespace: str) -> str:
    """Stable DNS name of a group's leader (ordinal 0), through its headless Service."""
    group = statefulset_name(mdep, serving_hash, index)
    service = headless_service_name(mdep, serving_hash, index)
    return f"{group}-0.{service}.{namespace}.svc.{CLUSTER_DOMAIN}"


def cache_pvc_name(repo: str) -> str:
    """``dz-weights-<sha8(repo)>``: the weight cache of one repository, shared by every
    ModelDeployment of it (snapshots of different revisions live side by side inside)."""
    return f"dz-weights-{digest(repo, 8)}"


def download_job_name(repo: str, revision: str, cache: str) -> str:
    """``dz-download-<sha10>`` of repo@revision and the cache it fills: a second ModelDeployment of
    the same model and cache finds the same Job (and its completed status) instead of another."""
    return f"dz-download-{digest(f'{repo}@{revision} {cache}', 10)}"
