"""Model metadata: a Hub repo's config.json and safetensors counts, parsed into typed facts.

config.json is free-form and each architecture spells things its own way (``n_embd`` or
``hidden_size``, ``num_local_experts`` or ``n_routed_experts``), so every key is read here, once,
and the rest of the planner works on :class:`ModelFacts`. Pure: the caller supplies the dicts
(from the Hub API, or from local files through ``files.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PlanError

# Bits per element of each safetensors dtype; the Hub counts packed int4 as I32/U8 elements.
DTYPE_BITS: dict[str, int] = {
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F32": 32,
    "I32": 32,
    "U32": 32,
    "F16": 16,
    "BF16": 16,
    "I16": 16,
    "U16": 16,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I8": 8,
    "U8": 8,
    "BOOL": 8,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
}
# Dtypes of unquantized weights; anything else in a checkpoint means quantized storage.
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})

# Keys vLLM reads the context length from; it takes the smallest one present.
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# vLLM's own fallback when config.json names no context length.
DEFAULT_MAX_LEN = 2048
# Rope types whose factor is already reflected in max_position_embeddings.
_ROPE_TYPES_NOT_SCALING = frozenset({"su", "longrope", "llama3", "mrope", "default"})
# Architectures with a plain two-matrix MLP (up, down) instead of a gated three-matrix one.
_NON_GATED_MODEL_TYPES = frozenset(
    {"gpt2", "gpt_neox", "gpt_bigcode", "gptj", "starcoder2", "phi", "falcon", "opt", "bloom"}
)


@dataclass(frozen=True, slots=True)
class MoE:
    """Mixture-of-experts layout. Every expert counts: all of them stay resident in memory."""

    num_experts: int
    expert_intermediate_size: int
    # Per layer, whether it holds experts (True) or a dense MLP (False).
    moe_layers: tuple[bool, ...]
    # Intermediate size of the always-active shared experts, summed; 0 without them.
    shared_intermediate_size: int = 0
    experts_per_token: int | None = None


@dataclass(frozen=True, slots=True)
class MLA:
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): the KV cache holds one latent."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None


@dataclass(frozen=True, slots=True)
class Quantization:
    """How the checkpoint's weights are quantized, as read from config.json or the dtypes."""

    method: str = "none"
    """vLLM's name for it (fp8, fbgemm_fp8, awq, gptq, compressed-tensors, mxfp4, ...)."""
    weight_bits: float = 16.0
    """Bits per quantized linear weight, scales and zero points included."""
    bits: int | None = None
    group_size: int | None = None
    weight_block_size: tuple[int, int] | None = None
    """Block-wise FP8 (DeepSeek, Qwen FP8): tensor parallel must keep whole blocks per rank."""
    excluded: tuple[str, ...] = ()
    """Module patterns left unquantized (modules_to_not_convert, ignore, ...)."""
    source: str = "none"
    """Where it was read: quantization_config, safetensors dtypes, or none."""
    known: bool = True
    """Whether the planner knows the method's bits; unknown methods are sized as 16-bit."""


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the planner needs to know about a model, whatever its config.json looked like."""

    architectures: tuple[str, ...]
    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    """The context length vLLM derives: the smallest length key, times rope scaling."""
    max_len_source: str
    """How max_position_embeddings was derived, for the reasons."""
    attention_layers: int
    """Layers that keep a KV cache (hybrid models have fewer than num_layers)."""
    tie_word_embeddings: bool = False
    gated_mlp: bool = True
    attention_bias: bool = False
    sliding_window: int | None = None
    moe: MoE | None = None
    mla: MLA | None = None
    quantization: Quantization = field(default_factory=Quantization)
    parameters: Mapping[str, int] = field(default_factory=dict)
    """Parameter counts by safetensors dtype; empty when unknown (then they are estimated)."""
    torch_dtype: str = "bfloat16"

    @property
    def parameter_count(self) -> int | None:
        """Counted parameters, or None when only an estimate is possible."""
        return sum(self.parameters.values()) if self.parameters else None


def _get(cfg: Mapping[str, Any], *keys: str) -> tuple[str, Any] | None:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return key, value
    return None


def _opt_int(cfg: Mapping[str, Any], *keys: str, signed: bool = False) -> int | None:
    found = _get(cfg, *keys)
    if found is None:
        return None
    key, value = found
    # bool is an int to Python but never a size in config.json.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise PlanError(f"config.{key}", f"expected an integer, got {value!r}")
    if value < 0 and not signed:
        raise PlanError(f"config.{key}", f"expected a non-negative integer, got {value!r}")
    return int(value)


def _int(cfg: Mapping[str, Any], *keys: str) -> int:
    value = _opt_int(cfg, *keys)
    if value is None:
        raise PlanError(f"config.{keys[0]}", "missing from config.json")
    if value == 0:
        raise PlanError(f"config.{keys[0]}", "must be positive")
    return value


def _text_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The language model's config; multimodal models nest it under ``text_config``."""
    text = config.get("text_config")
    if isinstance(text, Mapping):
        return {**config, **text}
    return dict(config)


def _max_len(cfg: Mapping[str, Any]) -> tuple[int, str]:
    """The context length as vLLM derives it (``_get_and_verify_max_len``)."""
    found = [(key, _opt_int(cfg, key)) for key in _MAX_LEN_KEYS]
    present = [(key, value) for key, value in found if value]
    if not present:
        return (
            DEFAULT_MAX_LEN,
            f"config.json names no context length; vLLM's default {DEFAULT_MAX_LEN}",
        )
    key, length = min(present, key=lambda kv: kv[1])
    source = f"config {key}"
    rope = cfg.get("rope_scaling")
    if isinstance(rope, Mapping) and "gemma3" not in str(cfg.get("model_type", "")):
        rope_type = str(rope.get("rope_type", rope.get("type", "default")))
        factor = rope.get("factor")
        if rope_type not in _ROPE_TYPES_NOT_SCALING and isinstance(factor, int | float):
            original = _opt_int(rope, "original_max_position_embeddings")
            if rope_type == "yarn" and original:
                length = original
                source = "rope_scaling original_max_position_embeddings"
            length = int(length * factor)
            source += f" x {rope_type} rope factor {factor:g}"
    return length, source


def _attention_layers(cfg: Mapping[str, Any], num_layers: int) -> int:
    """Layers with a per-token KV cache; linear-attention, Mamba and conv layers have none."""
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return sum(1 for t in layer_types if "attention" in str(t) and "linear" not in str(t))
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        return pattern.count("*")
    period = _opt_int(cfg, "attn_layer_period")
    if period:
        offset = _opt_int(cfg, "attn_layer_offset") or 0
        return sum(1 for i in range(num_layers) if i % period == offset)
    return num_layers


def _moe(cfg: Mapping[str, Any], num_layers: int, intermediate: int) -> MoE | None:
    experts = _opt_int(
        cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"
    )
    if not experts or experts < 2:
        return None
    expert_size = _opt_int(cfg, "moe_intermediate_size") or intermediate
    if "intermediate_size_mlp" in cfg:
        # Llama 4: intermediate_size is the expert (and shared expert) size.
        shared = intermediate
    else:
        shared = _opt_int(cfg, "shared_expert_intermediate_size") or (
            (_opt_int(cfg, "n_shared_experts", "num_shared_experts") or 0) * expert_size
        )
    explicit = cfg.get("moe_layers")
    first_dense = _opt_int(cfg, "first_k_dense_replace") or 0
    dense_only = cfg.get("mlp_only_layers") or []
    step = _opt_int(cfg, "decoder_sparse_step", "interleave_moe_layer_step") or 1
    freq = _opt_int(cfg, "moe_layer_freq") or 1
    layers = []
    for i in range(num_layers):
        if isinstance(explicit, list):
            layers.append(i in explicit)
        else:
            layers.append(
                i >= first_dense and i not in dense_only and (i + 1) % step == 0 and i % freq == 0
            )
    return MoE(
        num_experts=experts,
        expert_intermediate_size=expert_size,
        moe_layers=tuple(layers),
        shared_intermediate_size=shared,
        experts_per_token=_opt_int(cfg, "num_experts_per_tok", "experts_per_token", "moe_topk"),
    )


def _mla(cfg: Mapping[str, Any], head_dim: int) -> MLA | None:
    rank = _opt_int(cfg, "kv_lora_rank")
    if not rank:
        return None
    return MLA(
        kv_lora_rank=rank,
        qk_rope_head_dim=_opt_int(cfg, "qk_rope_head_dim") or 64,
        qk_nope_head_dim=_opt_int(cfg, "qk_nope_head_dim") or head_dim,
        v_head_dim=_opt_int(cfg, "v_head_dim") or head_dim,
        q_lora_rank=_opt_int(cfg, "q_lora_rank"),
    )


def _patterns(qc: Mapping[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for key in ("modules_to_not_convert", "ignore", "ignored_layers", "exclude_modules"):
        value = qc.get(key)
        if isinstance(value, list):
            out.extend(str(v) for v in value)
    return tuple(out)


def _group_bits(bits: int, group_size: int | None, *, zero_point: bool = True) -> float:
    """Bits per weight of group-wise integer quantization: a 16-bit scale (and a zero) per
    group."""
    if not group_size or group_size <= 0:
        return float(bits)
    return bits + (16 + (bits if zero_point else 0)) / group_size


def _compressed_tensors(qc: Mapping[str, Any]) -> tuple[float, int | None, int | None, bool]:
    """(weight bits, bits, group size, known) of a compressed-tensors config's first group."""
    groups = qc.get("config_groups")
    weights: Mapping[str, Any] = {}
    if isinstance(groups, Mapping):
        for group in groups.values():
            if isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping):
                weights = group["weights"]
                break
    bits = _opt_int(weights, "num_bits")
    group = _opt_int(weights, "group_size", signed=True)
    if bits is None:
        return 16.0, None, None, False
    if "nvfp4" in str(qc.get("format", "")) or (bits == 4 and weights.get("type") == "float"):
        # NVFP4: 4-bit values with an FP8 scale per 16.
        return 4.5, bits, group or 16, True
    if weights.get("type") == "float":
        return float(bits), bits, group, True
    return (
        _group_bits(bits, group, zero_point=not weights.get("symmetric", True)),
        bits,
        group,
        True,
    )


def _from_config(qc: Mapping[str, Any]) -> Quantization:
    method = str(qc.get("quant_method", "")).lower() or "unknown"
    excluded = _patterns(qc)
    block = qc.get("weight_block_size")
    block_size = (
        (int(block[0]), int(block[1]))
        if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) for b in block)
        else None
    )
    bits = _opt_int(qc, "bits", "w_bit", "weight_bits")
    # GPTQ writes group_size -1 for one scale per output channel.
    group = _opt_int(qc, "group_size", "q_group_size", signed=True)
    known = True
    if method in {"fp8", "fbgemm_fp8", "ptpc_fp8", "fp_quant"}:
        weight_bits: float = 8.0
        bits = 8
    elif method == "mxfp4":
        # 4-bit values with an 8-bit shared exponent per 32.
        weight_bits, bits = 4.25, 4
    elif method in {"modelopt", "modelopt_fp4"}:
        algo = str(qc.get("quant_algo", "FP8")).upper()
        weight_bits, bits = (4.5, 4) if "FP4" in algo else (8.0, 8)
    elif method == "bitsandbytes":
        if qc.get("load_in_8bit"):
            weight_bits, bits = 8.0, 8
        else:
            # NF4/FP4 with an FP32 absmax per 64 weights (double quantization only shrinks it).
            weight_bits, bits = 4.5, 4
    elif method == "compressed-tensors":
        weight_bits, bits, group, known = _compressed_tensors(qc)
    elif method in {"awq", "gptq", "awq_marlin", "gptq_marlin", "auto-round"} and bits:
        weight_bits = _group_bits(bits, group)
    elif bits:
        weight_bits = float(bits)
    else:
        weight_bits, known = 16.0, False
    return Quantization(
        method=method,
        weight_bits=weight_bits,
        bits=bits,
        group_size=group,
        weight_block_size=block_size,
        excluded=excluded,
        source="quantization_config",
        known=known,
    )


def _from_dtypes(parameters: Mapping[str, int]) -> Quantization:
    quantized = {d for d, n in parameters.items() if n and d not in FLOAT_DTYPES}
    if not quantized:
        return Quantization()
    if any(d.startswith("F8") for d in quantized):
        return Quantization(method="fp8", weight_bits=8.0, bits=8, source="safetensors dtypes")
    # Packed integers without a config: the bytes are known from the counts, the method is not.
    return Quantization(method="int", weight_bits=4.0, source="safetensors dtypes", known=False)


def _parameters(parameters: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for dtype, count in (parameters or {}).items():
        if dtype not in DTYPE_BITS:
            raise PlanError("parameters", f"unknown safetensors dtype {dtype!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PlanError("parameters", f"count of {dtype} must be a non-negative integer")
        if count:
            out[dtype] = count
    return out


def facts_from_config(
    config: Mapping[str, Any], parameters: Mapping[str, int] | None = None
) -> ModelFacts:
    """Parse config.json (and the safetensors parameter counts by dtype, if known)."""
    cfg = _text_config(config)
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = _int(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads")
    if cfg.get("multi_query") is True:
        kv_heads = 1
    else:
        kv_heads = _opt_int(cfg, "num_key_value_heads", "num_kv_heads", "n_kv_heads") or heads
    if heads % kv_heads:
        raise PlanError(
            "config.num_key_value_heads",
            f"{kv_heads} KV heads do not divide {heads} attention heads",
        )
    head_dim = _opt_int(cfg, "head_dim") or hidden // heads
    intermediate = _opt_int(cfg, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    counts = _parameters(parameters)
    qc = config.get("quantization_config") or cfg.get("quantization_config")
    quant = _from_config(qc) if isinstance(qc, Mapping) else _from_dtypes(counts)
    max_len, max_len_source = _max_len(cfg)
    window = cfg.get("sliding_window")
    use_window = cfg.get("use_sliding_window", True) is not False
    architectures = config.get("architectures")
    if not isinstance(architectures, list):
        architectures = []
    return ModelFacts(
        architectures=tuple(str(a) for a in architectures),
        model_type=str(cfg.get("model_type", "")),
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_opt_int(cfg, "intermediate_size_mlp") or intermediate,
        vocab_size=_int(cfg, "vocab_size", "padded_vocab_size"),
        max_position_embeddings=max_len,
        max_len_source=max_len_source,
        attention_layers=_attention_layers(cfg, layers),
        # Absent reads as untied: an estimate then counts the output head too, erring large.
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        gated_mlp=str(cfg.get("model_type", "")) not in _NON_GATED_MODEL_TYPES,
        attention_bias=bool(cfg.get("attention_bias", False) or cfg.get("qkv_bias", False)),
        sliding_window=window if isinstance(window, int) and window > 0 and use_window else None,
        moe=_moe(cfg, layers, intermediate),
        mla=_mla(cfg, head_dim),
        quantization=quant,
        parameters=counts,
        torch_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"),
    )
