"""Labels and selectors of everything a ModelDeployment becomes.

One module so that the renderers, the gatherer and the scale subresource's status.selector agree
on the same keys; label values are shortened here because a ModelDeployment name may be longer
than the 63 characters a label value allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
MANAGED_BY = "app.kubernetes.io/managed-by"
MODEL_DEPLOYMENT = "dayzero.dev/model-deployment"
SERVING_HASH = "dayzero.dev/serving-hash"
GROUP = "dayzero.dev/group"
COMPONENT = "dayzero.dev/component"
# Set by the StatefulSet controller on every pod (Kubernetes 1.28+): the pod's ordinal.
POD_INDEX = "apps.kubernetes.io/pod-index"

APP = "dayzero-model"
MANAGER = "dayzero"

Component = Literal["serving", "download", "cache"]

_MAX_VALUE = 63


def value(text: str) -> str:
    """``text`` as a label value: unchanged when it fits 63 characters, else cut with a hash."""
    if len(text) <= _MAX_VALUE:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{text[: _MAX_VALUE - len(digest) - 1]}-{digest}"


def common(mdep: str) -> dict[str, str]:
    """Labels every child of one ModelDeployment carries."""
    return {
        NAME: APP,
        INSTANCE: value(mdep),
        MANAGED_BY: MANAGER,
        MODEL_DEPLOYMENT: value(mdep),
    }


def shared(component: Component) -> dict[str, str]:
    """Labels of an object several ModelDeployments share (the weight cache and its download)."""
    return {NAME: APP, MANAGED_BY: MANAGER, COMPONENT: component}


def serving_selector(mdep: str) -> dict[str, str]:
    """Every serving pod of a ModelDeployment, whatever its hash or group."""
    return {MODEL_DEPLOYMENT: value(mdep), COMPONENT: "serving"}


def hash_selector(mdep: str, serving_hash: str) -> dict[str, str]:
    """The serving pods of one serving hash, across its replica groups."""
    return {**serving_selector(mdep), SERVING_HASH: serving_hash}


def group_selector(mdep: str, serving_hash: str, index: int) -> dict[str, str]:
    """The pods of one replica group (one StatefulSet); immutable once the StatefulSet exists."""
    return {**hash_selector(mdep, serving_hash), GROUP: str(index)}


def leader_selector(mdep: str, serving_hash: str) -> dict[str, str]:
    """The leaders (ordinal 0) of every group of one serving hash: what the leader Service routes
    to."""
    return {**hash_selector(mdep, serving_hash), POD_INDEX: "0"}


def serving(mdep: str, serving_hash: str, index: int) -> dict[str, str]:
    """Labels of a replica group's StatefulSet, Services and pods."""
    return {**common(mdep), **group_selector(mdep, serving_hash, index)}


def selector_string(selector: Mapping[str, str]) -> str:
    """A label selector in the ``k=v,k=v`` form (the scale subresource's status.selector)."""
    return ",".join(f"{key}={selector[key]}" for key in sorted(selector))
