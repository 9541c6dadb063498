"""Parameters and weight memory.

Counts come from the safetensors metadata when known; otherwise they are estimated from
config.json, layer by layer, so that quantization can price attention, MLP (every MoE expert) and
embeddings differently, as checkpoints do. Bytes follow the quantization the model is *served*
with: the checkpoint's own, or one vLLM applies while loading (fp8, bitsandbytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from .errors import PlanError
from .metadata import DTYPE_BITS, FLOAT_DTYPES, ModelFacts, Quantization

# vLLM's dtype=auto serves unquantized weights in BF16/FP16, casting FP32 checkpoints down.
SERVE_BITS = 16
# Quantizations vLLM applies to an unquantized checkpoint while loading it, and their bits.
ONLINE_QUANTIZATIONS: dict[str, float] = {"fp8": 8.0, "bitsandbytes": 4.5}

# Linear modules each layer part may hold, under the names checkpoints use; an exclusion
# pattern that matches any of them leaves that part unquantized.
_ATTENTION_NAMES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "self_attn.qkv_proj",
    "self_attn.q_a_proj",
    "self_attn.q_b_proj",
    "self_attn.kv_a_proj_with_mqa",
    "self_attn.kv_b_proj",
)
_MLP_NAMES = (
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "mlp.experts.0.gate_proj",
    "mlp.experts.0.down_proj",
    "mlp.experts.gate_up_proj",
    "mlp.experts.down_proj",
    "mlp.shared_experts.gate_proj",
    "mlp.shared_expert.gate_proj",
    "block_sparse_moe.experts.0.w1",
    "block_sparse_moe.experts.0.w2",
    "feed_forward.gate_proj",
    "feed_forward.experts.gate_up_proj",
    "feed_forward.shared_expert.gate_proj",
)
_PREFIXES = ("model.", "model.language_model.", "language_model.model.")
_LAYER_INDEX = re.compile(r"layers\.(\d+)\.")


@dataclass(frozen=True, slots=True)
class LayerParameters:
    """Parameters of one decoder layer, split by how quantization treats them."""

    attention: int
    mlp: int
    # Norms, biases and MoE routers: checkpoints keep them in 16 bits.
    other: int


@dataclass(frozen=True, slots=True)
class ParameterEstimate:
    """Parameters estimated from config.json."""

    embedding: int
    lm_head: int
    final_norm: int
    layers: tuple[LayerParameters, ...]

    @property
    def outside_layers(self) -> int:
        """Embedding, output head and final norm."""
        return self.embedding + self.lm_head + self.final_norm

    @property
    def total(self) -> int:
        """All parameters, every expert included."""
        return self.outside_layers + sum(lp.attention + lp.mlp + lp.other for lp in self.layers)

    @property
    def unquantized(self) -> int:
        """Parameters no weight quantization touches: embeddings, head, norms, routers."""
        return self.outside_layers + sum(lp.other for lp in self.layers)


def _attention(f: ModelFacts) -> tuple[int, int]:
    """(linear, other) parameters of one attention block."""
    h, heads = f.hidden_size, f.num_attention_heads
    norms = 2 * h  # the layer's input and post-attention norms
    if f.mla is not None:
        m = f.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank * heads * qk
            norms += m.q_lora_rank
        else:
            q = h * heads * qk
        kv = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv += m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim)
        return q + kv + heads * m.v_head_dim * h, norms + m.kv_lora_rank
    q_out, kv_out = heads * f.head_dim, f.num_kv_heads * f.head_dim
    bias = q_out + 2 * kv_out if f.attention_bias else 0
    return h * q_out + 2 * h * kv_out + q_out * h, norms + bias


def _mlp(f: ModelFacts, moe_layer: bool) -> tuple[int, int]:
    """(linear, other) parameters of one MLP or MoE block."""
    matrices = 3 if f.gated_mlp else 2
    h = f.hidden_size
    if moe_layer and f.moe is not None:
        experts = f.moe.num_experts * matrices * h * f.moe.expert_intermediate_size
        shared = matrices * h * f.moe.shared_intermediate_size
        return experts + shared, h * f.moe.num_experts  # the router
    return matrices * h * f.intermediate_size, 0


def estimate_parameters(facts: ModelFacts) -> ParameterEstimate:
    """Parameters from the architecture; exact for Llama- and Mixtral-style checkpoints."""
    attention, attention_other = _attention(facts)
    moe_layers = facts.moe.moe_layers if facts.moe else (False,) * facts.num_layers
    layers = []
    for is_moe in moe_layers:
        mlp, mlp_other = _mlp(facts, is_moe)
        layers.append(LayerParameters(attention, mlp, attention_other + mlp_other))
    embedding = facts.vocab_size * facts.hidden_size
    return ParameterEstimate(
        embedding=embedding,
        lm_head=0 if facts.tie_word_embeddings else embedding,
        final_norm=facts.hidden_size,
        layers=tuple(layers),
    )


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    if any(c in pattern for c in "*?["):
        return fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*")
    # A whole dotted component sequence: "layers.1.mlp" must not match "layers.11.mlp".
    return f".{pattern}." in f".{name}."


def _part_matches(patterns: Iterable[str], layer: int, names: tuple[str, ...]) -> bool:
    return any(
        _matches(p, f"{prefix}layers.{layer}.{n}")
        for p in patterns
        for prefix in _PREFIXES
        for n in names
    )


# Cached: a checkpoint lists hundreds of patterns and the planner prices many layouts.
@lru_cache(maxsize=64)
def excluded_layers(
    patterns: tuple[str, ...], num_layers: int
) -> tuple[frozenset[int], frozenset[int]]:
    """Layers whose (attention, MLP) linear weights the exclusion patterns leave unquantized."""
    attention: set[int] = set()
    mlp: set[int] = set()
    for pattern in patterns:
        plain = not pattern.startswith("re:") and not any(c in pattern for c in "*?[")
        index = _LAYER_INDEX.search(pattern) if plain else None
        if index is not None:
            candidates: Iterable[int] = (
                [int(index.group(1))] if int(index.group(1)) < num_layers else []
            )
        elif plain:
            # A plain pattern without a layer index means the same thing in every layer.
            candidates = range(num_layers) if num_layers and _any_part(pattern, 0) else []
        else:
            candidates = range(num_layers)
        for layer in candidates:
            if _part_matches([pattern], layer, _ATTENTION_NAMES):
                attention.add(layer)
            if _part_matches([pattern], layer, _MLP_NAMES):
                mlp.add(layer)
    return frozenset(attention), frozenset(mlp)


def _any_part(pattern: str, layer: int) -> bool:
    return _part_matches([pattern], layer, _ATTENTION_NAMES + _MLP_NAMES)


@dataclass(frozen=True, slots=True)
class Weights:
    """The weights as served: count, bytes, and how a pipeline stage's share is made up."""

    parameter_count: int
    estimated: bool
    total_bytes: int
    layer_bytes: int
    """Bytes of all decoder layers together; pipeline stages split these."""
    stage_extra_bytes: int
    """The most one pipeline stage holds besides its layers: the embedding or the output head."""
    quantization: str
    online: bool
    parameter_reason: str
    quantization_reason: str

    def stage_bytes(self, pipeline_parallel: int, num_layers: int) -> int:
        """Bytes on the most loaded pipeline stage (uneven splits round layers up)."""
        if pipeline_parallel == 1:
            return self.total_bytes
        layers_per_stage = -(-num_layers // pipeline_parallel)
        return self.stage_extra_bytes + self.layer_bytes * layers_per_stage // num_layers


def _served(facts: ModelFacts, requested: str | None) -> tuple[Quantization, bool]:
    """The quantization weights are served with, and whether vLLM applies it while loading."""
    ckpt = facts.quantization
    if requested is None or requested == ckpt.method:
        return ckpt, False
    if requested == "none":
        raise PlanError(
            "quantization",
            f"the checkpoint is quantized with {ckpt.method}; it cannot be served unquantized",
        )
    if ckpt.method != "none":
        raise PlanError(
            "quantization",
            f"the checkpoint is already quantized with {ckpt.method}; vLLM refuses a different"
            f" --quantization {requested}",
        )
    if requested not in ONLINE_QUANTIZATIONS:
        online = " or ".join(ONLINE_QUANTIZATIONS)
        raise PlanError(
            "quantization",
            f"{requested} needs a checkpoint quantized with it and this one is unquantized;"
            f" vLLM quantizes an unquantized checkpoint while loading only with {online}",
        )
    bits = ONLINE_QUANTIZATIONS[requested]
    return Quantization(method=requested, weight_bits=bits, source="requested"), True


def _bytes(bits: float) -> str:
    n = bits / 8
    return f"{n:.4g} byte{'' if n == 1 else 's'}"


def _count_reason(facts: ModelFacts, count: int) -> str:
    by_dtype = ", ".join(f"{d} {n:,}" for d, n in sorted(facts.parameters.items()))
    return f"{count:,} parameters counted from the safetensors metadata ({by_dtype})"


def _estimate_reason(facts: ModelFacts, est: ParameterEstimate) -> str:
    what = f"{facts.num_layers} layers of hidden size {facts.hidden_size}"
    if facts.moe is not None:
        moe_layers = sum(facts.moe.moe_layers)
        what += (
            f", {moe_layers} of them with {facts.moe.num_experts} experts of intermediate size"
            f" {facts.moe.expert_intermediate_size} (every expert counted: all stay resident)"
        )
    if facts.mla is not None:
        what += f", MLA attention with KV rank {facts.mla.kv_lora_rank}"
    return (
        f"{est.total:,} parameters estimated from config.json ({what}, vocabulary"
        f" {facts.vocab_size}); no safetensors counts were given"
    )


def _bytes_by_layer(facts: ModelFacts, est: ParameterEstimate, q: Quantization) -> tuple[int, int]:
    """(layer bytes, outside-layer bytes) of an estimate priced with quantization ``q``."""
    attention_kept, mlp_kept = excluded_layers(q.excluded, facts.num_layers)
    bits = 0.0
    for i, lp in enumerate(est.layers):
        bits += lp.attention * (SERVE_BITS if i in attention_kept else q.weight_bits)
        bits += lp.mlp * (SERVE_BITS if i in mlp_kept else q.weight_bits)
        bits += lp.other * SERVE_BITS
    return int(bits) // 8, est.outside_layers * SERVE_BITS // 8


def weights(facts: ModelFacts, requested: str | None = None) -> Weights:
    """Price the weights in bytes under the served quantization."""
    q, online = _served(facts, requested)
    est = estimate_parameters(facts)
    outside = est.outside_layers * SERVE_BITS // 8
    extra = max(est.embedding, est.lm_head) * SERVE_BITS // 8
    counts = facts.parameters
    stored_quantized = any(d not in FLOAT_DTYPES for d in counts)
    if counts:
        count = sum(counts.values())
        parameter_reason = _count_reason(facts, count)
        if q.method == "none":
            total = count * SERVE_BITS // 8
            how = "unquantized: every parameter at 2 bytes (BF16/FP16"
            how += ", cast down from FP32)" if "F32" in counts else ")"
        elif stored_quantized and not online:
            total = sum(n * DTYPE_BITS[d] for d, n in counts.items()) // 8
            how = f"{q.method} from {q.source}: each stored dtype at its own width"
        else:
            # Quantized at load time: linear weights shrink, embeddings, norms, routers do not.
            kept = min(est.unquantized, count)
            total = int((count - kept) * q.weight_bits) // 8 + kept * SERVE_BITS // 8
            how = (
                f"{q.method} applied by vLLM while loading: linear weights at"
                f" {_bytes(q.weight_bits)}, embeddings, norms and routers at 2"
            )
        layer_total = max(total - outside, 0)
    else:
        count = est.total
        parameter_reason = _estimate_reason(facts, est)
        if q.method == "none":
            layer_total = (count - est.outside_layers) * SERVE_BITS // 8
            how = "unquantized: every parameter at 2 bytes (BF16/FP16)"
        else:
            layer_total, _ = _bytes_by_layer(facts, est, q)
            how = (
                f"{q.method} from {q.source}: linear weights at {_bytes(q.weight_bits)}"
                " (excluded modules and embeddings at 2)"
            )
        total = layer_total + outside
    if not q.known and (online or not stored_quantized):
        how += f"; the bits of {q.method} are unknown, so its linear weights are sized as 16-bit"
    return Weights(
        parameter_count=count,
        estimated=not counts,
        total_bytes=total,
        layer_bytes=layer_total,
        stage_extra_bytes=extra,
        quantization=q.method,
        online=online,
        parameter_reason=parameter_reason,
        quantization_reason=how,
    )
