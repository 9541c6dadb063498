"""The pure planner: model metadata and a GPU kind in, a vLLM serving plan out.

``plan()`` decides; ``facts_from_config()`` parses what the Hub API returns; ``plan_from_path()``
is the one entry that reads local files, for ``dayzero plan``. See docs/planner.md.
"""

from .errors import PlanError
from .files import load_facts, plan_from_path
from .gpus import DEFAULT_GPU_KIND, GPU_KINDS, GpuKind, get_gpu_kind
from .metadata import ModelFacts, facts_from_config
from .plan import kv_cache_bytes_per_token, min_kv_tokens, plan

__all__ = [
    "DEFAULT_GPU_KIND",
    "GPU_KINDS",
    "GpuKind",
    "ModelFacts",
    "PlanError",
    "facts_from_config",
    "get_gpu_kind",
    "kv_cache_bytes_per_token",
    "load_facts",
    "min_kv_tokens",
    "plan",
    "plan_from_path",
]
