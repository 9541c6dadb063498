"""The ModelDeployments, plans and inputs the render tests share.

Plans are built directly (the numbers of docs/planner.md's checks), so these tests depend on the
renderer only, not on the planner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from dayzero.api.v1alpha1 import ModelDeployment, Plan
from dayzero.render import (
    EngineRung,
    Group,
    Images,
    Inputs,
    Manifest,
    desired_cache,
    desired_serving,
    serving_hash,
)

NAMESPACE = "models"
UID = "6f1c1e52-8d0a-4b7e-9c3a-2f4d5e6a7b8c"
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
OTHER_SHA = "5206a32e0bd3067aef1ce90f5528ade7d866253f"
IMAGES = Images(
    vllm="vllm/vllm-openai:v0.33.0",
    transformers="ghcr.io/dayzero-dev/transformers-serve:5.23.0",
    dayzero="ghcr.io/dayzero-dev/dayzero:0.1.0",
)
H100 = "NVIDIA-H100-80GB-HBM3"


def model_deployment(name: str, spec: dict[str, Any]) -> ModelDeployment:
    """A ModelDeployment as the API server would hold it (validated, defaults applied)."""
    return ModelDeployment.model_validate({"metadata": {"name": name}, "spec": spec})


def hub_spec(repo: str, **fields: Any) -> dict[str, Any]:
    """A spec for a Hub model at a moving revision (the inputs pin the SHA)."""
    return {"source": {"hub": {"repo": repo, "revision": "main"}}, **fields}


def make_plan(
    *,
    gpus_per_node: int = 1,
    nodes: int = 1,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    max_model_len: int = 131072,
    weights_gib: float = 14.96,
    quantization: str = "none",
    online_quantization: bool = False,
    gpu_weights_gib: float | None = None,
) -> Plan:
    """A plan with the given layout; the memory figures follow it loosely (unused by render)."""
    per_gpu = (
        gpu_weights_gib if gpu_weights_gib is not None else weights_gib / (gpus_per_node * nodes)
    )
    return Plan.model_validate(
        {
            "gpuKind": "h100-80gb",
            "gpuProduct": H100,
            "fits": True,
            "gpus": gpus_per_node * nodes,
            "nodes": nodes,
            "gpusPerNode": gpus_per_node,
            "tensorParallel": tensor_parallel,
            "pipelineParallel": pipeline_parallel,
            "maxModelLen": max_model_len,
            "quantization": quantization,
            "onlineQuantization": online_quantization,
            "parameterCount": 8_030_261_248,
            "weightsGiB": weights_gib,
            "kvCacheBytesPerToken": 131072,
            "kvCacheTokens": 448308,
            "minKvCacheTokens": 131072,
            "gpuMemoryUtilization": 0.9,
            "perGpuMemory": {
                "totalGiB": 79.65,
                "usableGiB": 71.68,
                "weightsGiB": round(per_gpu, 2),
                "overheadGiB": 2.0 if gpus_per_node * nodes == 1 else 2.5,
                "kvCacheGiB": round(71.68 - per_gpu - 2.5, 2),
            },
        }
    )


PLAN_8B = make_plan()
PLAN_70B_TP4 = make_plan(gpus_per_node=4, tensor_parallel=4, weights_gib=131.42)
PLAN_405B_2X8 = make_plan(
    gpus_per_node=8,
    nodes=2,
    tensor_parallel=8,
    pipeline_parallel=2,
    max_model_len=32768,
    weights_gib=755.96,
    gpu_weights_gib=47.25,
)


def make_inputs(
    mdep: ModelDeployment,
    plan: Plan,
    *,
    engine: EngineRung = "vllm",
    replicas: int = 1,
    revision: str = SHA,
    extra_groups: tuple[Group, ...] = (),
    active_hash: str | None = None,
    cache_owners: tuple[tuple[str, str], ...] = (),
) -> Inputs:
    """Inputs for ``replicas`` groups of the desired hash, plus any ``extra_groups``."""
    name = str(mdep.metadata["name"])
    desired = serving_hash(mdep, plan, revision, engine, IMAGES)
    return Inputs(
        namespace=NAMESPACE,
        name=name,
        uid=UID,
        resolved_revision=revision,
        engine=engine,
        images=IMAGES,
        groups=tuple(Group(index=i, serving_hash=desired) for i in range(replicas)) + extra_groups,
        active_hash=active_hash,
        cache_owners=cache_owners,
    )


def render(mdep: ModelDeployment, plan: Plan, inputs: Inputs) -> list[Manifest]:
    """Everything the controller would apply: the cache, then serving."""
    return desired_cache(mdep, plan, inputs) + desired_serving(mdep, plan, inputs)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (launch scripts, probe one-liners) as literal blocks, for review."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def to_yaml(manifests: list[Manifest]) -> str:
    """Manifests as one multi-document YAML, keys sorted (the golden format)."""
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=True, width=100)


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """The manifests of one kind, in order."""
    return [m for m in manifests if m["kind"] == kind]


def engine_container(statefulset: Manifest) -> Manifest:
    """The engine container of a serving StatefulSet's pod template."""
    container: Manifest = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "engine"
    return container


def env_of(container: Manifest) -> dict[str, Manifest]:
    """A container's env entries by name."""
    return {e["name"]: e for e in container.get("env", [])}


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, scalar) of a manifest, paths made of dict keys and list indexes."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, str(index)))
    else:
        yield path, node
