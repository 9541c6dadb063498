"""The planner: model facts and a GPU kind in, a serving plan with a reason for every choice out.

Pure: the caller gathers the metadata, this module only decides (cert-manager's "gather, decide,
act"). The memory model, per GPU, mirrors how vLLM carves up memory at start-up:

    usable   = gpu_memory_utilization x physical memory
    kv room  = usable - weights share - overhead
    the plan fits when kv room holds min_kv_tokens(max_model_len) tokens

Layouts are tried from the fewest GPUs up, and the first that fits wins. docs/planner.md gives the
constants and the reasoning behind them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dayzero.api.v1alpha1.plan import PerGpuMemory, Plan, PlanField, PlanReason

from .errors import PlanError
from .gpus import DEFAULT_GPU_KIND, GIB, GpuKind, get_gpu_kind
from .metadata import ModelFacts
from .weights import Weights, weights

# vLLM's default --gpu-memory-utilization; the rest is CUDA context and fragmentation slack.
GPU_MEMORY_UTILIZATION = 0.9
# Per GPU: vLLM's profiled activation peak at its default 8192 batched tokens, the sampler's
# logits, cuBLAS workspaces and the CUDA-graph memory pool.
ACTIVATION_OVERHEAD_GIB = 2.0
# Per GPU when the model spans GPUs: NCCL buffers and vLLM's custom all-reduce buffers.
COMMUNICATION_OVERHEAD_GIB = 0.5
# kv_cache_dtype=auto keeps the cache in the activation dtype (BF16/FP16), FP8 weights or not.
KV_CACHE_BYTES = 2
# A context lowered for lack of KV cache never goes below this (or the model's own maximum).
MAX_MODEL_LEN_FLOOR = 4096
# Short contexts must still batch: the KV cache holds this many full sequences, up to
# BATCH_TOKENS; a long context needs just one (vLLM's own start-up check).
BATCH_SEQUENCES = 4
BATCH_TOKENS = 32768
# Lowered lengths are rounded down to a multiple of this.
LENGTH_STEP = 1024
DEFAULT_MAX_NODES = 4
# KV tokens reported for models without attention layers (pure state-space models).
UNBOUNDED_TOKENS = 2**31 - 1


def min_kv_tokens(max_model_len: int) -> int:
    """Tokens the KV cache must hold: one full sequence, and up to 4 when that is short."""
    return max(max_model_len, min(BATCH_SEQUENCES * max_model_len, BATCH_TOKENS))


def longest_len(kv_tokens: int, target: int) -> int:
    """The longest max_model_len up to ``target`` whose min_kv_tokens fits in ``kv_tokens``."""
    if min_kv_tokens(target) <= kv_tokens:
        return target
    # Past BATCH_TOKENS one sequence suffices; below it the length is a quarter of the cache.
    length = kv_tokens if kv_tokens >= BATCH_TOKENS else kv_tokens // BATCH_SEQUENCES
    return min(target, length // LENGTH_STEP * LENGTH_STEP)


def kv_cache_bytes_per_token(facts: ModelFacts) -> int:
    """KV-cache bytes of one token across every attention layer of the model."""
    if facts.mla is not None:
        # MLA caches one compressed latent plus the rope key per layer, not K and V per head.
        latent = facts.mla.kv_lora_rank + facts.mla.qk_rope_head_dim
        return facts.attention_layers * latent * KV_CACHE_BYTES
    return 2 * facts.attention_layers * facts.num_kv_heads * facts.head_dim * KV_CACHE_BYTES


def kv_bytes_per_token_per_gpu(facts: ModelFacts, tensor_parallel: int, pipeline: int) -> int:
    """KV-cache bytes of one token on the most loaded GPU."""
    # Uneven pipeline splits put ceil(layers / stages) on some stage; hybrid models may place
    # all their attention layers there.
    layers = min(facts.attention_layers, -(-facts.num_layers // pipeline))
    if facts.mla is not None:
        # vLLM replicates the MLA latent cache on every tensor-parallel rank.
        return layers * (facts.mla.kv_lora_rank + facts.mla.qk_rope_head_dim) * KV_CACHE_BYTES
    # With more ranks than KV heads, vLLM replicates the heads: each rank keeps at least one.
    heads = max(1, facts.num_kv_heads // tensor_parallel)
    return 2 * layers * heads * facts.head_dim * KV_CACHE_BYTES


def tensor_parallel_problem(facts: ModelFacts, tp: int) -> str | None:
    """Why vLLM cannot shard this model ``tp`` ways, or None when it can."""
    heads, kv = facts.num_attention_heads, facts.num_kv_heads
    if tp < 1:
        return "must be at least 1"
    if heads % tp:
        return f"{tp} does not divide the {heads} attention heads"
    if kv % tp and tp % kv:
        return f"{tp} neither divides the {kv} KV heads nor is a multiple of them"
    block = facts.quantization.weight_block_size
    if block is not None and tp > 1:
        for size in _block_checked_sizes(facts):
            shard = size // tp
            if size % tp or shard % block[0] or shard % block[1]:
                return (
                    f"{tp} splits the {size}-wide MLP into {size / tp:g}-wide shards, not whole"
                    f" {block[0]}x{block[1]} blocks of the block-wise FP8 weights"
                )
    return None


def _block_checked_sizes(facts: ModelFacts) -> list[int]:
    """MLP widths that tensor parallel splits, for the block-wise FP8 check."""
    if facts.moe is None:
        return [facts.intermediate_size]
    sizes = [facts.moe.expert_intermediate_size]
    if not all(facts.moe.moe_layers):
        sizes.append(facts.intermediate_size)
    if facts.moe.shared_intermediate_size:
        sizes.append(facts.moe.shared_intermediate_size)
    return sizes


def _powers_of_two(limit: int) -> list[int]:
    return [1 << i for i in range(limit.bit_length()) if 1 << i <= limit]


@dataclass(frozen=True, slots=True)
class Layout:
    """How one replica group is split: tensor x pipeline = nodes x GPUs per node."""

    tensor_parallel: int
    pipeline_parallel: int
    nodes: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        """GPUs of the replica group."""
        return self.nodes * self.gpus_per_node

    def describe(self) -> str:
        """E.g. ``2 nodes x 8 GPUs (TP8 x PP2)``."""
        where = (
            f"{self.gpus_per_node} GPU{'s' if self.gpus_per_node > 1 else ''}"
            if self.nodes == 1
            else f"{self.nodes} nodes x {self.gpus_per_node} GPUs"
        )
        return f"{where} (TP{self.tensor_parallel} x PP{self.pipeline_parallel})"


@dataclass(frozen=True, slots=True)
class Memory:
    """Memory of the most loaded GPU of a layout, in bytes."""

    total: int
    usable: int
    weights: int
    overhead: int
    kv_per_token: int

    @property
    def kv_room(self) -> int:
        """What is left for the KV cache; negative when the weights alone overflow."""
        return self.usable - self.weights - self.overhead

    @property
    def kv_tokens(self) -> int:
        """Tokens the KV cache holds."""
        if self.kv_per_token == 0:
            return UNBOUNDED_TOKENS
        return max(self.kv_room, 0) // self.kv_per_token


@dataclass(frozen=True, slots=True)
class Choices:
    """The user's explicit choices; None leaves a value to the planner."""

    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None

    def explicit(self) -> list[PlanField]:
        """The fields the user set, spelled as on the wire."""
        named: list[tuple[PlanField, int | None]] = [
            ("tensorParallel", self.tensor_parallel),
            ("pipelineParallel", self.pipeline_parallel),
            ("gpusPerNode", self.gpus_per_node),
            ("nodes", self.nodes),
        ]
        return [name for name, value in named if value is not None]


def _check_choices(facts: ModelFacts, kind: GpuKind, c: Choices, max_nodes: int) -> None:
    """Reject explicit choices that no layout can honour, naming the field."""
    per_node = kind.gpus_per_node
    if max_nodes < 1:
        raise PlanError("maxNodes", "must be at least 1")
    if c.gpus_per_node is not None and not 1 <= c.gpus_per_node <= per_node:
        raise PlanError(
            "gpusPerNode", f"must be between 1 and {per_node}, the GPUs of one {kind.id} node"
        )
    if c.nodes is not None and c.nodes < 1:
        raise PlanError("nodes", "must be at least 1")
    if c.pipeline_parallel is not None and not 1 <= c.pipeline_parallel <= facts.num_layers:
        raise PlanError(
            "pipelineParallel", f"must be between 1 and the model's {facts.num_layers} layers"
        )
    if c.tensor_parallel is not None:
        _check_tensor_parallel(facts, c.tensor_parallel, c.gpus_per_node, per_node)
        if c.pipeline_parallel is not None:
            _check_gpu_count(c, c.tensor_parallel * c.pipeline_parallel, per_node)


def _check_tensor_parallel(
    facts: ModelFacts, tp: int, gpus_per_node: int | None, per_node: int
) -> None:
    problem = tensor_parallel_problem(facts, tp)
    if problem:
        raise PlanError("tensorParallel", problem)
    node = gpus_per_node or per_node
    if tp > node:
        raise PlanError(
            "tensorParallel",
            f"{tp} exceeds the {node} GPUs of one node; tensor parallel must stay within a node",
        )
    if gpus_per_node is not None and gpus_per_node % tp:
        raise PlanError(
            "tensorParallel",
            f"{tp} does not divide gpusPerNode {gpus_per_node}; a tensor-parallel group must"
            " stay within a node",
        )


def _check_gpu_count(c: Choices, gpus: int, per_node: int) -> None:
    """tensorParallel x pipelineParallel GPUs must make up the nodes the user asked for."""
    if c.gpus_per_node is not None and c.nodes is not None:
        if gpus != c.gpus_per_node * c.nodes:
            raise PlanError(
                "tensorParallel",
                f"tensorParallel x pipelineParallel ({c.tensor_parallel} x"
                f" {c.pipeline_parallel} = {gpus}) must equal gpusPerNode x nodes"
                f" ({c.gpus_per_node} x {c.nodes} = {c.gpus_per_node * c.nodes})",
            )
    elif c.nodes is not None and (gpus % c.nodes or gpus // c.nodes > per_node):
        raise PlanError(
            "nodes",
            f"{gpus} GPUs (tensorParallel x pipelineParallel) do not split evenly into"
            f" {c.nodes} nodes of at most {per_node} GPUs",
        )
    elif c.gpus_per_node is not None and gpus % c.gpus_per_node:
        raise PlanError(
            "gpusPerNode",
            f"{gpus} GPUs (tensorParallel x pipelineParallel) do not fill whole nodes of"
            f" {c.gpus_per_node}",
        )


def _node_sizes(kind: GpuKind, c: Choices, nodes: int) -> list[int]:
    if c.gpus_per_node is not None:
        return [c.gpus_per_node]
    if nodes > 1:
        tp, pp = c.tensor_parallel, c.pipeline_parallel
        # Both pinned: the GPUs are fixed and the nodes share them evenly.
        return [tp * pp // nodes] if tp and pp and tp * pp % nodes == 0 else [kind.gpus_per_node]
    sizes = set(_powers_of_two(kind.gpus_per_node)) | {kind.gpus_per_node}
    if c.tensor_parallel is not None:
        # A non-power-of-two TP (6 for 48 heads) gets a node share of its own size.
        sizes |= set(range(c.tensor_parallel, kind.gpus_per_node + 1, c.tensor_parallel))
    return sorted(sizes)


def layouts(facts: ModelFacts, kind: GpuKind, choices: Choices, max_nodes: int) -> Iterator[Layout]:
    """Candidate layouts, fewest GPUs first, that honour the user's choices.

    Within a node the planner picks the widest valid tensor parallel for the GPUs at hand (TP
    is faster than PP inside a node); across nodes, TP fills a node and PP spans the nodes.
    """
    valid = [
        t for t in _powers_of_two(kind.gpus_per_node) if tensor_parallel_problem(facts, t) is None
    ]
    node_counts = [choices.nodes] if choices.nodes is not None else range(1, max_nodes + 1)
    for n in node_counts:
        for size in _node_sizes(kind, choices, n):
            gpus = n * size
            if choices.tensor_parallel is not None:
                tp = choices.tensor_parallel
            elif choices.pipeline_parallel is not None:
                tp = gpus // choices.pipeline_parallel
                if gpus % choices.pipeline_parallel or tensor_parallel_problem(facts, tp):
                    continue
            else:
                tp = max(t for t in valid if size % t == 0)
            if size % tp:
                continue
            pp = gpus // tp
            if pp > facts.num_layers or choices.pipeline_parallel not in (None, pp):
                continue
            yield Layout(tp, pp, n, size)


def memory(
    facts: ModelFacts, w: Weights, kind: GpuKind, layout: Layout, utilization: float
) -> Memory:
    """Memory of the most loaded GPU of ``layout``."""
    tp, pp = layout.tensor_parallel, layout.pipeline_parallel
    overhead = ACTIVATION_OVERHEAD_GIB + (COMMUNICATION_OVERHEAD_GIB if layout.gpus > 1 else 0)
    return Memory(
        total=kind.memory_bytes,
        usable=int(kind.memory_bytes * utilization),
        weights=-(-w.stage_bytes(pp, facts.num_layers) // tp),
        overhead=int(overhead * GIB),
        kv_per_token=kv_bytes_per_token_per_gpu(facts, tp, pp),
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A layout with its memory."""

    layout: Layout
    memory: Memory


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen layout and context length, and what the choice was weighed against."""

    chosen: Candidate
    max_model_len: int
    fits: bool
    lowered: bool
    # The largest layout below the chosen one that was tried and rejected, if any.
    rejected: Candidate | None


def decide(candidates: list[Candidate], target: int, floor: int, *, lower: bool) -> Decision:
    """Pick the layout and max_model_len.

    The first layout, fewest GPUs first, that holds the KV cache for ``target`` tokens wins. When
    the context may be lowered, the planner first finds how many nodes the weights need (the
    first layout holding ``floor``); it spends more GPUs within that node count to keep the full
    context, but never another node: past that, it lowers the context instead.
    """

    def full(c: Candidate) -> bool:
        return c.memory.kv_tokens >= min_kv_tokens(target)

    def before(c: Candidate) -> Candidate | None:
        earlier = [e for e in candidates if e.layout.gpus < c.layout.gpus]
        return earlier[-1] if earlier else None

    pool = candidates
    if lower:
        nodes = next(
            (
                c.layout.nodes
                for c in candidates
                if longest_len(c.memory.kv_tokens, target) >= floor
            ),
            None,
        )
        if nodes is None:
            return Decision(candidates[-1], target, fits=False, lowered=False, rejected=None)
        pool = [c for c in candidates if c.layout.nodes == nodes]
    for c in pool:
        if full(c):
            return Decision(c, target, fits=True, lowered=False, rejected=before(c))
    if not lower:
        return Decision(candidates[-1], target, fits=False, lowered=False, rejected=None)
    best = pool[0]
    for c in pool[1:]:
        if longest_len(c.memory.kv_tokens, target) > longest_len(best.memory.kv_tokens, target):
            best = c
    length = longest_len(best.memory.kv_tokens, target)
    return Decision(best, length, fits=True, lowered=True, rejected=None)


def _gib(n: float) -> float:
    return round(n / GIB, 2)


def _kv_formula(facts: ModelFacts, per_token: int) -> str:
    if facts.mla is not None:
        m = facts.mla
        text = (
            f"{per_token:,} = {facts.attention_layers} layers x ({m.kv_lora_rank} latent +"
            f" {m.qk_rope_head_dim} rope) x {KV_CACHE_BYTES} bytes: MLA caches one latent per"
            " token, replicated on every tensor-parallel rank"
        )
    else:
        text = (
            f"{per_token:,} = 2 (K and V) x {facts.attention_layers} layers x"
            f" {facts.num_kv_heads} KV heads x {facts.head_dim} head dim x {KV_CACHE_BYTES} bytes"
            " (the cache is BF16/FP16)"
        )
    if facts.attention_layers < facts.num_layers:
        text += f"; the other {facts.num_layers - facts.attention_layers} layers keep no KV cache"
    if facts.sliding_window:
        text += (
            f"; sliding-window layers (window {facts.sliding_window}) are counted as full"
            " attention, erring large"
        )
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _shortfall(c: Candidate, target: int) -> str:
    m = c.memory
    if m.kv_room <= 0:
        return (
            f"{c.layout.describe()} puts {_gib(m.weights):.2f} GiB of weights and"
            f" {_gib(m.overhead):.2f} GiB of overhead on each GPU, over the"
            f" {_gib(m.usable):.2f} GiB usable"
        )
    need = min_kv_tokens(target) * m.kv_per_token
    return (
        f"{c.layout.describe()} leaves {_gib(m.kv_room):.2f} GiB per GPU for the KV cache"
        f" ({m.kv_tokens:,} tokens), short of the {_gib(need):.2f} GiB that"
        f" {min_kv_tokens(target):,} tokens need"
    )


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything the reasons are written from."""

    facts: ModelFacts
    kind: GpuKind
    weights: Weights
    choices: Choices
    decision: Decision
    target: int
    floor: int
    max_nodes: int
    utilization: float
    explicit_len: bool

    @property
    def layout(self) -> Layout:
        return self.decision.chosen.layout


def _gpus_reason(ctx: _Context) -> str:
    layout, d = ctx.layout, ctx.decision
    explicit = ctx.choices.explicit()
    said = f"; honours {', '.join(explicit)} as set" if explicit else ""
    split = f"tensorParallel {layout.tensor_parallel} x pipelineParallel {layout.pipeline_parallel}"
    if d.lowered:
        return (
            f"{layout.gpus} = {split}: no layout holds the full context, so the plan takes the"
            f" most GPUs of the {_plural(layout.nodes, 'node')} the weights need, for the longest"
            f" context{said}"
        )
    smaller = f"; {_shortfall(d.rejected, ctx.target)}" if d.rejected else ""
    return f"{layout.gpus} = {split}: the fewest GPUs that fit{said}{smaller}"


def _tensor_parallel_reason(ctx: _Context) -> str:
    layout = ctx.layout
    heads = f"the {ctx.facts.num_attention_heads} attention heads"
    if ctx.choices.tensor_parallel is not None:
        return f"{layout.tensor_parallel}: set explicitly; it divides {heads}"
    if layout.nodes > 1:
        return (
            f"{layout.tensor_parallel}: the model spans nodes, so tensor parallel fills a node"
            f" ({layout.gpus_per_node} GPUs) and divides {heads}"
        )
    return (
        f"{layout.tensor_parallel}: the widest tensor parallel that divides {heads} and the"
        f" {_plural(layout.gpus_per_node, 'GPU')} of the layout"
    )


def _pipeline_parallel_reason(ctx: _Context) -> str:
    layout = ctx.layout
    pp = layout.pipeline_parallel
    if ctx.choices.pipeline_parallel is not None:
        return f"{pp}: set explicitly"
    if pp == 1:
        return "1: one tensor-parallel group holds the whole model"
    if layout.nodes > 1 and pp == layout.nodes:
        return f"{pp}: one pipeline stage per node, since the model needs {layout.nodes} nodes"
    return (
        f"{pp}: tensor parallel stops at {layout.tensor_parallel}, so the rest of the GPUs form"
        " pipeline stages"
    )


def _nodes_reason(ctx: _Context) -> str:
    layout, kind = ctx.layout, ctx.kind
    if ctx.choices.nodes is not None:
        return f"{layout.nodes}: set explicitly"
    if layout.nodes == 1:
        return f"1: the model fits within one node of {kind.gpus_per_node} {kind.id} GPUs"
    return (
        f"{layout.nodes}: {_plural(layout.nodes - 1, 'node')} of {kind.gpus_per_node} {kind.id}"
        " GPUs cannot hold the weights and KV cache"
    )


def _gpus_per_node_reason(ctx: _Context) -> str:
    layout = ctx.layout
    if ctx.choices.gpus_per_node is not None:
        return f"{layout.gpus_per_node}: set explicitly"
    if layout.nodes == 1:
        return f"{layout.gpus_per_node}: the single pod takes every GPU of the layout"
    return f"{layout.gpus_per_node}: each pod takes a whole node, one tensor-parallel group"


def _length_reason(ctx: _Context) -> str:
    facts, d, target = ctx.facts, ctx.decision, ctx.target
    if ctx.explicit_len:
        return (
            f"{target}: set explicitly (the model allows {facts.max_position_embeddings}, from"
            f" {facts.max_len_source})"
        )
    if not d.lowered:
        return f"{target}: the model's context length, from {facts.max_len_source}"
    m = d.chosen.memory
    allowed = " the explicit choices allow" if ctx.choices.explicit() else ""
    why = f"the most GPUs{allowed} on the nodes the weights need; no node is added for context"
    return (
        f"{d.max_model_len}: lowered from the model's {target}: {d.chosen.layout.describe()}"
        f" ({why}) holds KV cache for {m.kv_tokens:,} tokens, short of the"
        f" {min_kv_tokens(target):,} a full-length sequence needs. It is the longest length"
        f" whose minimum KV cache fits, rounded down to a multiple of {LENGTH_STEP}, never below"
        f" {ctx.floor}. Set maxModelLen, or give it more GPUs, to change it"
    )


def _fits_reason(ctx: _Context) -> str:
    c, m = ctx.decision.chosen, ctx.decision.chosen.memory
    if ctx.decision.fits:
        return (
            f"per GPU {_gib(m.weights):.2f} GiB weights + {_gib(m.overhead):.2f} GiB overhead"
            f" + {_gib(m.kv_room):.2f} GiB KV cache = {_gib(m.usable):.2f} GiB usable"
            f" ({ctx.utilization:g} of {_gib(m.total):.2f} GiB)"
        )
    explicit = ctx.choices.explicit()
    scope = (
        f"the layout set by {', '.join(explicit)}"
        if explicit
        else f"even {_plural(ctx.max_nodes, 'node')} of {ctx.kind.gpus_per_node} {ctx.kind.id} GPUs"
    )
    return (
        f"does not fit: on {scope}, {_shortfall(c, ctx.decision.max_model_len)}. Allow more"
        " nodes (maxNodes), choose a GPU kind with more memory, a quantized checkpoint or"
        " quantization fp8, or a shorter maxModelLen"
    )


def _kv_tokens_reason(ctx: _Context) -> str:
    m, length = ctx.decision.chosen.memory, ctx.decision.max_model_len
    return (
        f"{m.kv_tokens:,} tokens: {_gib(max(m.kv_room, 0)):.2f} GiB per GPU at"
        f" {m.kv_per_token:,} bytes per token per GPU; at least {min_kv_tokens(length):,}"
        f" needed (one full {length}-token sequence, and {BATCH_SEQUENCES} of them up to"
        f" {BATCH_TOKENS:,} tokens)"
    )


def _reasons(ctx: _Context, per_token: int) -> list[PlanReason]:
    w = ctx.weights
    texts: list[tuple[PlanField, str]] = [
        ("parameterCount", w.parameter_reason),
        ("quantization", w.quantization_reason),
        ("weightsGiB", f"{_gib(w.total_bytes):.2f} GiB of weights as served ({w.quantization})"),
        ("kvCacheBytesPerToken", _kv_formula(ctx.facts, per_token)),
    ]
    if ctx.decision.fits:
        texts += [
            ("gpus", _gpus_reason(ctx)),
            ("tensorParallel", _tensor_parallel_reason(ctx)),
            ("pipelineParallel", _pipeline_parallel_reason(ctx)),
            ("nodes", _nodes_reason(ctx)),
            ("gpusPerNode", _gpus_per_node_reason(ctx)),
            ("maxModelLen", _length_reason(ctx)),
        ]
    texts += [("fits", _fits_reason(ctx)), ("kvCacheTokens", _kv_tokens_reason(ctx))]
    return [PlanReason(field=field, reason=reason) for field, reason in texts]


def plan(
    facts: ModelFacts,
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
    """Plan how to serve ``facts`` on ``gpu_kind`` GPUs with vLLM.

    Explicit choices are honoured and validated (a :class:`PlanError` names the offending
    field). A model that does not fit even ``max_nodes`` nodes gives a plan with ``fits=False``
    and the reason, not an error.
    """
    kind = get_gpu_kind(gpu_kind)
    if not 0 < gpu_memory_utilization <= 1:
        raise PlanError("gpuMemoryUtilization", "must be in (0, 1]")
    model_max = facts.max_position_embeddings
    if max_model_len is not None and not 1 <= max_model_len <= model_max:
        raise PlanError(
            "maxModelLen",
            f"{max_model_len} is outside 1..{model_max}, the model's context length (from"
            f" {facts.max_len_source}); vLLM refuses a longer one",
        )
    choices = Choices(tensor_parallel, pipeline_parallel, gpus_per_node, nodes)
    _check_choices(facts, kind, choices, max_nodes)
    w = weights(facts, quantization)
    target = max_model_len or model_max
    floor = min(MAX_MODEL_LEN_FLOOR, model_max)
    candidates = [
        Candidate(layout, memory(facts, w, kind, layout, gpu_memory_utilization))
        for layout in layouts(facts, kind, choices, max_nodes)
    ]
    if not candidates:
        explicit = choices.explicit()
        values = {
            "tensorParallel": tensor_parallel,
            "pipelineParallel": pipeline_parallel,
            "gpusPerNode": gpus_per_node,
            "nodes": nodes,
        }
        asked = ", ".join(f"{name}={values[name]}" for name in explicit) or "the model"
        raise PlanError(
            explicit[0] if explicit else "maxNodes",
            f"no layout of at most {_plural(max_nodes, 'node')} of {kind.gpus_per_node}"
            f" {kind.id} GPUs honours {asked}",
        )
    d = decide(candidates, target, floor, lower=max_model_len is None)
    ctx = _Context(
        facts=facts,
        kind=kind,
        weights=w,
        choices=choices,
        decision=d,
        target=target,
        floor=floor,
        max_nodes=max_nodes,
        utilization=gpu_memory_utilization,
        explicit_len=max_model_len is not None,
    )
    layout, m = d.chosen.layout, d.chosen.memory
    per_token = kv_cache_bytes_per_token(facts)
    return Plan(
        gpu_kind=kind.id,
        gpu_product=kind.product,
        fits=d.fits,
        gpus=layout.gpus,
        nodes=layout.nodes,
        gpus_per_node=layout.gpus_per_node,
        tensor_parallel=layout.tensor_parallel,
        pipeline_parallel=layout.pipeline_parallel,
        max_model_len=d.max_model_len,
        quantization=w.quantization,
        online_quantization=w.online,
        parameter_count=w.parameter_count,
        parameters_estimated=w.estimated,
        weights_gib=_gib(w.total_bytes),
        kv_cache_bytes_per_token=per_token,
        kv_cache_tokens=m.kv_tokens,
        min_kv_cache_tokens=min_kv_tokens(d.max_model_len),
        gpu_memory_utilization=gpu_memory_utilization,
        per_gpu_memory=PerGpuMemory(
            total_gib=_gib(m.total),
            usable_gib=_gib(m.usable),
            weights_gib=_gib(m.weights),
            overhead_gib=_gib(m.overhead),
            kv_cache_gib=_gib(m.kv_room),
        ),
        reasons=_reasons(ctx, per_token),
    )
