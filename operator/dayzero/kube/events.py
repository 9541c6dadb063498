"""Kubernetes Events: one per status transition, so `kubectl describe` tells the story."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from .client import Kube, KubeError

log = logging.getLogger(__name__)
COMPONENT = "dayzero-operator"


def post_event(kube: Kube, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
    """Record an Event about ``involved``; failing to record one never fails a reconcile."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(f"{involved['uid']}{reason}{message}{now}".encode()).hexdigest()[:10]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{involved['name'][:200]}.{digest}",
            "namespace": involved["namespace"],
        },
        "involvedObject": involved,
        "type": type_,
        "reason": reason[:128],
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        kube.create(event)
    except KubeError as exc:
        log.warning("could not record event %s on %s: %s", reason, involved["name"], exc)
