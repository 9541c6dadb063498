"""config.json and safetensors counts become ModelFacts; parameters are estimated when missing."""

from __future__ import annotations

import pytest

from dayzero.planner import PlanError, facts_from_config
from dayzero.planner.weights import estimate_parameters, excluded_layers, weights


@pytest.mark.parametrize(
    "name", ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b"]
)
def test_estimate_matches_the_hub_count_exactly(config, hub_parameters, name):
    facts = facts_from_config(config(name))
    assert estimate_parameters(facts).total == sum(hub_parameters[name].values())


def test_qwen3_moe_estimate_is_within_a_millionth(config):
    # Only the per-head q/k norms (256 parameters a layer) are left out.
    facts = facts_from_config(config("qwen3-30b-a3b"))
    assert estimate_parameters(facts).total == pytest.approx(30_532_122_624, rel=1e-6)


def test_estimated_plans_say_so(model):
    counted = weights(model("llama-3.1-8b"))
    estimated = weights(model("llama-3.1-8b", counted=False))
    assert not counted.estimated
    assert "counted from the safetensors metadata" in counted.parameter_reason
    assert estimated.estimated
    assert "estimated from config.json" in estimated.parameter_reason
    assert estimated.total_bytes == counted.total_bytes


def test_deepseek_facts_read_mla_moe_and_block_fp8(config):
    f = facts_from_config(config("deepseek-v3"))
    assert f.mla is not None
    assert (f.mla.kv_lora_rank, f.mla.qk_rope_head_dim, f.mla.q_lora_rank) == (512, 64, 1536)
    assert f.moe is not None
    assert f.moe.num_experts == 256
    assert f.moe.expert_intermediate_size == 2048
    assert f.moe.shared_intermediate_size == 2048
    assert f.moe.moe_layers == (False,) * 3 + (True,) * 58  # first_k_dense_replace = 3
    assert f.quantization.method == "fp8"
    assert f.quantization.weight_block_size == (128, 128)
    assert f.max_position_embeddings == 163840
    assert "yarn" in f.max_len_source


def test_multimodal_configs_are_read_from_text_config(config):
    f = facts_from_config(config("llama-4-scout"))
    assert (f.hidden_size, f.num_layers, f.num_attention_heads) == (5120, 48, 40)
    assert f.intermediate_size == 16384  # intermediate_size_mlp: the dense MLP
    assert f.moe is not None
    assert f.moe.expert_intermediate_size == 8192
    assert f.moe.shared_intermediate_size == 8192  # Llama 4's one shared expert
    # llama3 rope scaling is already reflected in max_position_embeddings.
    assert f.max_position_embeddings == 10_485_760


def test_hybrid_layers_without_attention_keep_no_kv(config):
    cfg = config("llama-3.1-8b")
    cfg["layer_types"] = ["linear_attention"] * 24 + ["full_attention"] * 8
    assert facts_from_config(cfg).attention_layers == 8
    cfg = config("llama-3.1-8b")
    cfg["attn_layer_period"], cfg["attn_layer_offset"] = 8, 4  # Jamba: one layer in 8
    assert facts_from_config(cfg).attention_layers == 4
    gpt_oss = facts_from_config(config("gpt-oss-120b"))
    assert gpt_oss.attention_layers == 36  # sliding layers still keep a cache
    assert gpt_oss.sliding_window == 128


@pytest.mark.parametrize(
    ("quantization_config", "method", "bits"),
    [
        ({"quant_method": "fbgemm_fp8"}, "fbgemm_fp8", 8.0),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq", 4 + 20 / 128),
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, "gptq", 8.0),
        ({"quant_method": "mxfp4"}, "mxfp4", 4.25),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bitsandbytes", 4.5),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bitsandbytes", 8.0),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "modelopt", 4.5),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "float-quantized",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}},
            },
            "compressed-tensors",
            8.0,
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}
                },
            },
            "compressed-tensors",
            4 + 16 / 128,
        ),
    ],
)
def test_quantization_config_sets_the_bits_of_linear_weights(
    config, quantization_config, method, bits
):
    cfg = config("llama-3.1-8b")
    cfg["quantization_config"] = quantization_config
    q = facts_from_config(cfg).quantization
    assert q.method == method
    assert q.weight_bits == pytest.approx(bits)
    assert q.known


def test_unknown_quantization_is_sized_as_16_bit_and_says_so(config):
    cfg = config("llama-3.1-8b")
    cfg["quantization_config"] = {"quant_method": "mystery"}
    w = weights(facts_from_config(cfg))
    assert w.quantization == "mystery"
    assert w.total_bytes == 8_030_261_248 * 2
    assert "unknown" in w.quantization_reason


def test_quantization_is_read_from_safetensors_dtypes_without_a_config(config):
    counts = {"BF16": 1_000, "F8_E4M3": 9_000}
    f = facts_from_config(config("llama-3.1-8b"), counts)
    assert f.quantization.method == "fp8"
    assert f.quantization.source == "safetensors dtypes"
    # The stored widths price the weights: 1000 x 2 + 9000 x 1 bytes.
    assert weights(f).total_bytes == 11_000


def test_gptq_packed_int4_is_priced_by_its_stored_dtypes(config):
    cfg = config("llama-3.1-8b")
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    counts = {"I32": 800_000_000, "F16": 1_300_000_000}
    w = weights(facts_from_config(cfg, counts))
    assert w.total_bytes == 800_000_000 * 4 + 1_300_000_000 * 2
    assert "each stored dtype at its own width" in w.quantization_reason


def test_fp32_checkpoints_are_served_in_16_bit(config):
    w = weights(facts_from_config(config("llama-3.1-8b"), {"F32": 1_000}))
    assert w.total_bytes == 2_000
    assert "FP32" in w.quantization_reason


def test_exclusion_patterns_match_whole_module_paths():
    attn, mlp = excluded_layers(("model.layers.1.self_attn", "model.layers.2.mlp.down_proj"), 12)
    assert attn == {1}
    assert mlp == {2}
    # A router pattern is not the MLP's linear weights; layers.1 is not layers.11.
    attn, mlp = excluded_layers(("model.layers.3.mlp.gate", "re:.*mlp.gate$", "lm_head"), 12)
    assert (attn, mlp) == (set(), set())
    attn, mlp = excluded_layers(("model.layers.*.self_attn",), 4)
    assert (attn, mlp) == ({0, 1, 2, 3}, set())
    attn, mlp = excluded_layers(("self_attn",), 3)
    assert attn == {0, 1, 2}


def test_requested_quantization_must_suit_the_checkpoint(model):
    with pytest.raises(PlanError) as e:
        weights(model("llama-3.1-70b-awq", counted=False), "fp8")
    assert e.value.field == "quantization"
    assert "already quantized with awq" in str(e.value)
    with pytest.raises(PlanError, match="cannot be served unquantized"):
        weights(model("llama-3.1-70b-awq", counted=False), "none")
    with pytest.raises(PlanError, match="fp8 or bitsandbytes"):
        weights(model("llama-3.1-8b"), "gptq")
    same = weights(model("llama-3.1-70b-awq", counted=False), "awq")
    assert not same.online
    bnb = weights(model("llama-3.1-8b"), "bitsandbytes")
    assert bnb.online
    assert bnb.total_bytes < weights(model("llama-3.1-8b"), "fp8").total_bytes


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": None}, "config.hidden_size"),
        ({"num_hidden_layers": True}, "config.num_hidden_layers"),
        ({"num_attention_heads": "32"}, "config.num_attention_heads"),
        ({"num_key_value_heads": 5}, "config.num_key_value_heads"),
        ({"vocab_size": 0}, "config.vocab_size"),
    ],
)
def test_unusable_config_names_the_key(config, change, field):
    cfg = config("llama-3.1-8b")
    cfg.update(change)
    with pytest.raises(PlanError) as e:
        facts_from_config(cfg)
    assert e.value.field == field


def test_unknown_safetensors_dtype_is_rejected(config):
    with pytest.raises(PlanError, match="unknown safetensors dtype 'Q3'") as e:
        facts_from_config(config("llama-3.1-8b"), {"Q3": 1})
    assert e.value.field == "parameters"


def test_context_length_follows_vllm_derivation(config):
    cfg = config("llama-3.1-8b")
    cfg["rope_scaling"] = {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    assert facts_from_config(cfg).max_position_embeddings == 131072
    cfg["rope_scaling"] = {"type": "linear", "factor": 2.0}
    assert facts_from_config(cfg).max_position_embeddings == 262144
    cfg["rope_scaling"] = None
    cfg["seq_length"] = 8192  # vLLM takes the smallest length key
    assert facts_from_config(cfg).max_position_embeddings == 8192
    del cfg["max_position_embeddings"], cfg["seq_length"]
    assert facts_from_config(cfg).max_position_embeddings == 2048  # vLLM's default
