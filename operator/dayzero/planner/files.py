"""Model metadata from local files: the only planner code that reads the disk.

``dayzero plan ./config.json`` or ``dayzero plan ./checkout/`` lands here. Only config.json and
the JSON headers of safetensors files are read (an 8-byte length, then that many bytes of JSON),
never the weights, so planning a 400 GB checkout reads a few megabytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dayzero.api.v1alpha1.plan import Plan

from .errors import PlanError
from .gpus import DEFAULT_GPU_KIND
from .metadata import ModelFacts, facts_from_config
from .plan import DEFAULT_MAX_NODES, GPU_MEMORY_UTILIZATION, plan

# The safetensors format caps its header at 100 MB; anything larger is not a safetensors file.
MAX_HEADER_BYTES = 100_000_000


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, without reading any tensor data."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) != 8:
            raise PlanError("path", f"{path} is too short to be a safetensors file")
        (size,) = struct.unpack("<Q", prefix)
        if size > MAX_HEADER_BYTES:
            raise PlanError("path", f"{path}: header of {size} bytes; not a safetensors file")
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanError("path", f"{path}: the safetensors header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise PlanError("path", f"{path}: the safetensors header is not a JSON object")
    return header


def count_parameters(header: Mapping[str, Any]) -> dict[str, int]:
    """Parameters by dtype in one safetensors header (pure)."""
    counts: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(tensor, Mapping) or not isinstance(tensor.get("shape"), list):
            raise PlanError("path", f"tensor {name!r} has no shape in the safetensors header")
        elements = 1
        for dim in tensor["shape"]:
            elements *= int(dim)
        dtype = str(tensor.get("dtype"))
        counts[dtype] = counts.get(dtype, 0) + elements
    return counts


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PlanError("path", f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise PlanError("path", f"{path} is not a JSON object")
    return data


def _shards(directory: Path) -> list[Path] | None:
    """The checkpoint's safetensors files, or None when some are missing (counts would lie)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            return None
        files = [directory / str(name) for name in sorted(set(weight_map.values()))]
        return files if all(f.is_file() for f in files) else None
    files = sorted(directory.glob("*.safetensors"))
    return files or None


def load_facts(path: str | Path) -> ModelFacts:
    """ModelFacts from a config.json file, or a directory with one and its safetensors files."""
    path = Path(path)
    if path.is_dir():
        config = _read_json(path / "config.json")
        shards = _shards(path)
        parameters: dict[str, int] = {}
        for shard in shards or []:
            for dtype, n in count_parameters(read_safetensors_header(shard)).items():
                parameters[dtype] = parameters.get(dtype, 0) + n
        return facts_from_config(config, parameters or None)
    if not path.is_file():
        raise PlanError("path", f"{path} is neither a config.json file nor a directory")
    return facts_from_config(_read_json(path))


def plan_from_path(
    path: str | Path,
    gpu_kind: str = DEFAULT_GPU_KIND,
    *,
    max_model_len: int | None = None,
    tensor_parallel: int | None = None,
    pipeline_parallel: int | None = None,
    gpus_per_node: int | None = None,
    nodes: int | None = None,
    quantization: str | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
) -> Plan:
    """Plan a model from local files (see :func:`load_facts`); for ``dayzero plan``."""
    return plan(
        load_facts(path),
        gpu_kind,
        max_model_len=max_model_len,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        gpus_per_node=gpus_per_node,
        nodes=nodes,
        quantization=quantization,
        max_nodes=max_nodes,
        gpu_memory_utilization=gpu_memory_utilization,
    )
