"""Pure renderers: typed spec + plan + gathered inputs -> manifest dicts. No kopf, no I/O.

The controller gathers the world into ``Inputs``, calls ``desired_cache`` and ``desired_serving``,
and applies what they return; ``names`` and ``labels`` tell it how to find the children again.
"""

from . import labels, names
from .errors import RenderError
from .modeldeployment import (
    EngineRung,
    Group,
    Images,
    Inputs,
    Manifest,
    cache_key,
    desired_cache,
    desired_serving,
    endpoint,
    serving_hash,
)

__all__ = [
    "EngineRung",
    "Group",
    "Images",
    "Inputs",
    "Manifest",
    "RenderError",
    "cache_key",
    "desired_cache",
    "desired_serving",
    "endpoint",
    "labels",
    "names",
    "serving_hash",
]
