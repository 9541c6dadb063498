"""The planner's rules: explicit choices, KV-cache sizing, context lowering, and invariants that
hold for every plan."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from dayzero.api.v1alpha1.plan import Plan
from dayzero.planner import GPU_KINDS, PlanError, facts_from_config, min_kv_tokens, plan
from dayzero.planner.plan import (
    BATCH_TOKENS,
    kv_bytes_per_token_per_gpu,
    longest_len,
    tensor_parallel_problem,
)


def test_min_kv_tokens_is_one_sequence_and_four_short_ones_up_to_32k():
    assert min_kv_tokens(131072) == 131072
    assert min_kv_tokens(32768) == 32768
    assert min_kv_tokens(16384) == BATCH_TOKENS
    assert min_kv_tokens(4096) == 16384
    assert min_kv_tokens(2048) == 8192


@pytest.mark.parametrize(
    ("kv_tokens", "target", "length"),
    [
        (500_000, 131072, 131072),  # the full context fits
        (100_000, 131072, 99328),  # past 32k one sequence is enough: 100000 rounded to 1024
        (22_770, 131072, 5120),  # below 32k four sequences must fit: 22770 / 4 rounded down
        (16_383, 131072, 3072),  # below the 4096 floor: the caller rejects it
        (40_000, 8192, 8192),  # never longer than the target
    ],
)
def test_longest_len(kv_tokens, target, length):
    assert longest_len(kv_tokens, target) == length
    if length:
        assert min_kv_tokens(length) <= kv_tokens


def test_kv_heads_are_replicated_once_tensor_parallel_exceeds_them(model):
    facts = model("llama-3.1-70b")  # 8 KV heads, 80 layers, head dim 128
    per_head_layer = 2 * 128 * 2
    assert kv_bytes_per_token_per_gpu(facts, 1, 1) == 80 * 8 * per_head_layer
    assert kv_bytes_per_token_per_gpu(facts, 8, 1) == 80 * 1 * per_head_layer
    # Qwen3-MoE has 4 KV heads: TP8 keeps one head on every rank, not half a head.
    qwen = model("qwen3-30b-a3b")
    assert kv_bytes_per_token_per_gpu(qwen, 8, 1) == kv_bytes_per_token_per_gpu(qwen, 4, 1)
    # Pipeline stages split the layers, rounding up: 126 layers over 4 stages is 32 a stage.
    big = model("llama-3.1-405b")
    assert kv_bytes_per_token_per_gpu(big, 8, 4) == 32 * 1 * per_head_layer


def test_mla_latent_cache_is_replicated_not_split_by_tensor_parallel(model):
    facts = model("deepseek-v3")
    assert kv_bytes_per_token_per_gpu(facts, 8, 1) == kv_bytes_per_token_per_gpu(facts, 1, 1)
    assert kv_bytes_per_token_per_gpu(facts, 8, 2) == 31 * 576 * 2


def test_models_without_attention_layers_need_no_kv_cache(config):
    cfg = config("llama-3.1-8b")
    cfg["layer_types"] = ["mamba"] * 32
    p = plan(facts_from_config(cfg))
    assert p.kv_cache_bytes_per_token == 0
    assert p.kv_cache_tokens == 2**31 - 1
    assert (p.fits, p.gpus, p.max_model_len) == (True, 1, 131072)


def test_tensor_parallel_must_divide_attention_heads_and_suit_kv_heads(config):
    cfg = config("llama-3.1-8b")
    cfg.update(num_attention_heads=28, num_key_value_heads=4)  # Qwen2.5-7B's heads
    facts = facts_from_config(cfg)
    assert tensor_parallel_problem(facts, 4) is None
    assert "does not divide the 28 attention heads" in str(tensor_parallel_problem(facts, 8))
    cfg.update(num_attention_heads=48, num_key_value_heads=12)
    assert "12 KV heads" in str(tensor_parallel_problem(facts_from_config(cfg), 8))


def test_heads_that_stop_tensor_parallel_short_of_a_node_use_pipeline_stages(config):
    # 28 heads allow TP4 at most; the other GPUs of the node become pipeline stages.
    cfg = config("llama-3.1-70b")
    cfg.update(num_attention_heads=28, num_key_value_heads=4, hidden_size=7168)
    p = plan(facts_from_config(cfg, {"BF16": 200_000_000_000}))  # 372.53 GiB: > 4 GPUs
    assert (p.tensor_parallel, p.pipeline_parallel, p.gpus) == (4, 2, 8)
    pp = next(r.reason for r in p.reasons if r.field == "pipelineParallel")
    assert "tensor parallel stops at 4" in pp


@pytest.mark.parametrize(
    ("choices", "field", "message"),
    [
        ({"tensor_parallel": 3}, "tensorParallel", "does not divide the 64 attention heads"),
        ({"tensor_parallel": 16}, "tensorParallel", "must stay within a node"),
        ({"tensor_parallel": 0}, "tensorParallel", "at least 1"),
        ({"tensor_parallel": 8, "gpus_per_node": 4}, "tensorParallel", "exceeds the 4 GPUs"),
        (
            {"tensor_parallel": 4, "pipeline_parallel": 2, "gpus_per_node": 4, "nodes": 1},
            "tensorParallel",
            "(4 x 2 = 8) must equal gpusPerNode x nodes (4 x 1 = 4)",
        ),
        (
            {"tensor_parallel": 8, "pipeline_parallel": 3, "nodes": 2},
            "nodes",
            "do not split evenly into 2 nodes",
        ),
        (
            {"tensor_parallel": 2, "pipeline_parallel": 3, "gpus_per_node": 4},
            "gpusPerNode",
            "do not fill whole nodes of 4",
        ),
        ({"gpus_per_node": 16}, "gpusPerNode", "between 1 and 8"),
        ({"nodes": 0}, "nodes", "at least 1"),
        ({"pipeline_parallel": 81}, "pipelineParallel", "the model's 80 layers"),
        ({"pipeline_parallel": 3, "max_nodes": 2}, "pipelineParallel", "pipelineParallel=3"),
        ({"max_model_len": 131073}, "maxModelLen", "outside 1..131072"),
        ({"max_nodes": 0}, "maxNodes", "at least 1"),
        ({"quantization": "gptq"}, "quantization", "unquantized"),
        ({"gpu_kind": "b200"}, "gpuKind", "unknown GPU kind 'b200'"),
        ({"gpu_memory_utilization": 1.5}, "gpuMemoryUtilization", "(0, 1]"),
    ],
)
def test_invalid_explicit_choices_name_the_field(model, choices, field, message):
    with pytest.raises(PlanError) as e:
        plan(model("llama-3.1-70b"), **choices)
    assert e.value.field == field
    assert message in str(e.value)


def test_block_fp8_rejects_tensor_parallel_that_splits_blocks(model):
    with pytest.raises(PlanError) as e:
        plan(model("qwen3-30b-a3b-fp8"), tensor_parallel=4)
    assert e.value.field == "tensorParallel"
    assert "768-wide MLP into 192-wide shards" in str(e.value)
    assert plan(model("qwen3-30b-a3b-fp8"), tensor_parallel=2).tensor_parallel == 2


def test_explicit_layouts_are_honoured(model):
    p = plan(model("llama-3.1-8b"), tensor_parallel=2, pipeline_parallel=2, nodes=2)
    assert (p.gpus, p.nodes, p.gpus_per_node, p.tensor_parallel, p.pipeline_parallel) == (
        4,
        2,
        2,
        2,
        2,
    )
    assert p.fits
    pinned = plan(model("llama-3.1-405b"), nodes=4)
    assert (pinned.nodes, pinned.tensor_parallel, pinned.pipeline_parallel) == (4, 8, 4)
    # Only tensor parallel pinned: pipeline stages grow to hold the model.
    tp_only = plan(model("llama-3.1-405b"), tensor_parallel=8)
    assert (tp_only.nodes, tp_only.pipeline_parallel) == (2, 2)
    reason = next(r.reason for r in tp_only.reasons if r.field == "tensorParallel")
    assert reason.startswith("8: set explicitly")


def test_every_field_of_a_fitting_plan_has_a_reason(model):
    p = plan(model("llama-3.1-405b"))
    fields = {r.field for r in p.reasons}
    assert fields == {
        "parameterCount",
        "quantization",
        "weightsGiB",
        "kvCacheBytesPerToken",
        "gpus",
        "tensorParallel",
        "pipelineParallel",
        "nodes",
        "gpusPerNode",
        "maxModelLen",
        "fits",
        "kvCacheTokens",
    }


def test_plan_serializes_camel_case_and_round_trips(model):
    p = plan(model("deepseek-v3"), "h200-141gb")
    wire = p.to_wire()
    assert wire["gpuKind"] == "h200-141gb"
    assert wire["kvCacheBytesPerToken"] == 70272
    assert wire["weightsGiB"] == p.weights_gib
    assert wire["perGpuMemory"]["kvCacheGiB"] == p.per_gpu_memory.kv_cache_gib
    assert wire["reasons"][0] == {"field": "parameterCount", "reason": p.reasons[0].reason}
    assert Plan.model_validate(json.loads(json.dumps(wire))) == p
    with pytest.raises(ValueError, match="extra"):
        Plan.model_validate({**wire, "surprise": 1})


def test_plan_schema_is_plain_enough_for_a_structural_crd():
    schema = json.dumps(Plan.model_json_schema(by_alias=True))
    assert '"additionalProperties": true' not in schema
    for name in ("kvCacheBytesPerToken", "gpusPerNode", "perGpuMemory", "maxModelLen"):
        assert f'"{name}"' in schema
    props = Plan.model_json_schema(by_alias=True)["properties"]
    assert all(prop.get("description") for prop in props.values())


MODELS = sorted(p.stem for p in (Path(__file__).parent / "fixtures").glob("*.json"))
# Every GPU kind, with and without a context, on one node or four.
SETTINGS = list(itertools.product(sorted(GPU_KINDS), [None, 4096, 32768], [1, 4]))


@pytest.mark.parametrize("name", MODELS)
def test_invariants_hold_for_every_plan(config, hub_parameters, name):
    facts = facts_from_config(config(name), hub_parameters.get(name))
    for kind, length, max_nodes in SETTINGS:
        if length is not None and length > facts.max_position_embeddings:
            continue
        p = plan(facts, kind, max_model_len=length, max_nodes=max_nodes)
        where = (name, kind, length, max_nodes)
        assert facts.num_attention_heads % p.tensor_parallel == 0, where
        assert p.tensor_parallel * p.pipeline_parallel == p.gpus == p.nodes * p.gpus_per_node
        assert p.gpus_per_node <= GPU_KINDS[kind].gpus_per_node, where
        assert p.gpus_per_node % p.tensor_parallel == 0, where  # TP stays within a node
        assert p.nodes <= max_nodes, where
        assert p.max_model_len <= facts.max_position_embeddings, where
        if p.fits:
            assert p.kv_cache_tokens >= p.min_kv_cache_tokens == min_kv_tokens(p.max_model_len)
            memory = p.per_gpu_memory
            used = memory.weights_gib + memory.overhead_gib + memory.kv_cache_gib
            assert used == pytest.approx(memory.usable_gib, abs=0.02), where
            assert p.max_model_len >= min(4096, facts.max_position_embeddings), where
            if length is not None:
                assert p.max_model_len == length, where
        if p.nodes > 1:
            assert p.gpus_per_node == GPU_KINDS[kind].gpus_per_node
            assert p.pipeline_parallel % p.nodes == 0, where


def test_the_grid_covers_plans_that_fit_and_plans_that_do_not(config, hub_parameters):
    # Guards the invariants test against passing vacuously.
    outcomes = {
        plan(facts_from_config(config(name), hub_parameters.get(name)), max_nodes=1).fits
        for name in MODELS
    }
    assert outcomes == {True, False}
