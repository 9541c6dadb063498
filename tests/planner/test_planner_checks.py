"""The plans the issue fixes, and more real models: layout, context and memory, exactly."""

from __future__ import annotations

import pytest

from dayzero.planner import plan


def layout(p):
    return (p.gpus, p.nodes, p.gpus_per_node, p.tensor_parallel, p.pipeline_parallel)


def test_llama_8b_bf16_takes_one_gpu(model):
    p = plan(model("llama-3.1-8b"))
    assert p.fits
    assert layout(p) == (1, 1, 1, 1, 1)
    assert p.max_model_len == 131072
    assert p.weights_gib == pytest.approx(14.96, abs=0.01)
    assert p.kv_cache_bytes_per_token == 131072  # 2 x 32 layers x 8 KV heads x 128 x 2 bytes
    assert p.per_gpu_memory.overhead_gib == 2.0  # no communication buffers on a single GPU
    assert p.per_gpu_memory.kv_cache_gib == pytest.approx(54.73, abs=0.01)


def test_llama_70b_bf16_takes_four_gpus_tp4(model):
    p = plan(model("llama-3.1-70b"))
    assert p.fits
    assert layout(p) == (4, 1, 4, 4, 1)
    assert p.weights_gib == pytest.approx(131.42, abs=0.01)
    assert p.kv_cache_bytes_per_token == 327680
    assert p.per_gpu_memory.weights_gib == pytest.approx(32.85, abs=0.01)
    assert p.per_gpu_memory.overhead_gib == 2.5
    # TP2 would hold the weights but leave 3.47 GiB of KV per GPU: 20 GiB are needed for 128k.
    gpus = next(r.reason for r in p.reasons if r.field == "gpus")
    assert "2 GPUs (TP2 x PP1) leaves 3.47 GiB" in gpus
    assert "20.00 GiB" in gpus


def test_llama_405b_bf16_spans_two_nodes_tp8_pp2(model):
    p = plan(model("llama-3.1-405b"))
    assert p.fits
    assert layout(p) == (16, 2, 8, 8, 2)
    assert p.max_model_len == 131072
    assert p.weights_gib == pytest.approx(755.96, abs=0.01)
    assert p.kv_cache_bytes_per_token == 516096
    # One pipeline stage holds 63 of the 126 layers plus the embedding (or the head).
    assert p.per_gpu_memory.weights_gib == pytest.approx(47.25, abs=0.01)
    assert p.per_gpu_memory.kv_cache_gib == pytest.approx(21.94, abs=0.01)


def test_llama_405b_fp8_fits_one_node_of_eight(model):
    p = plan(model("llama-3.1-405b-fp8"))
    assert p.fits
    assert layout(p) == (8, 1, 8, 8, 1)
    assert p.quantization == "fbgemm_fp8"
    assert not p.online_quantization
    assert p.weights_gib == pytest.approx(453.77, abs=0.01)
    assert p.per_gpu_memory.weights_gib == pytest.approx(56.72, abs=0.01)
    assert p.per_gpu_memory.kv_cache_gib == pytest.approx(12.46, abs=0.01)
    assert p.kv_cache_tokens >= p.min_kv_cache_tokens == 131072


def test_llama_405b_fp8_estimated_from_config_honours_the_unconverted_modules(model):
    # Without counts the estimate keeps attention and the first/last MLPs in BF16 as listed in
    # modules_to_not_convert, landing within 0.1 GiB of the counted checkpoint.
    p = plan(model("llama-3.1-405b-fp8", counted=False))
    assert p.parameters_estimated
    assert p.weights_gib == pytest.approx(453.71, abs=0.01)
    assert layout(p) == (8, 1, 8, 8, 1)


def test_deepseek_v3_fp8_mla_fits_one_h200_node_or_two_h100_nodes(model):
    facts = model("deepseek-v3")
    h200 = plan(facts, "h200-141gb")
    h100 = plan(facts, "h100-80gb")
    assert h200.parameter_count == 671_026_404_352  # all 256 experts of 58 layers count
    assert h200.weights_gib == pytest.approx(626.77, abs=0.01)
    assert h200.kv_cache_bytes_per_token == 61 * (512 + 64) * 2
    assert h200.max_model_len == 163840  # yarn: 4096 x 40
    assert layout(h200) == (8, 1, 8, 8, 1)
    assert h200.per_gpu_memory.weights_gib == pytest.approx(78.35, abs=0.01)
    assert layout(h100) == (16, 2, 8, 8, 2)
    assert h100.fits
    assert h100.per_gpu_memory.weights_gib == pytest.approx(39.81, abs=0.01)


def test_mixtral_counts_every_expert_and_takes_two_h100s(model):
    p = plan(model("mixtral-8x7b"))
    assert p.parameter_count == 46_702_792_704
    assert p.weights_gib == pytest.approx(86.99, abs=0.01)
    assert layout(p) == (2, 1, 2, 2, 1)
    assert p.max_model_len == 32768


def test_qwen3_moe_bf16_on_one_gpu_and_block_fp8_keeps_tp_within_whole_blocks(model):
    bf16 = plan(model("qwen3-30b-a3b"))
    assert layout(bf16) == (1, 1, 1, 1, 1)
    assert bf16.weights_gib == pytest.approx(56.87, abs=0.01)
    fp8 = plan(model("qwen3-30b-a3b-fp8", counted=False), max_model_len=4096)
    assert fp8.quantization == "fp8"
    # Routers listed in modules_to_not_convert must not unquantize the experts.
    assert fp8.weights_gib == pytest.approx(29.03, abs=0.01)
    assert layout(fp8) == (1, 1, 1, 1, 1)


def test_llama_70b_awq_4bit_halves_the_gpus(model):
    p = plan(model("llama-3.1-70b-awq", counted=False))
    assert p.quantization == "awq"
    # 4 bits plus a 16-bit scale and a 4-bit zero per 128 weights; embeddings stay 16-bit.
    assert p.weights_gib == pytest.approx(37.04, abs=0.01)
    assert layout(p) == (2, 1, 2, 2, 1)


def test_h200_holds_llama_70b_bf16_on_two_gpus(model):
    facts = model("llama-3.1-70b")
    h200 = plan(facts, "h200-141gb")
    assert layout(h200) == (2, 1, 2, 2, 1)
    assert h200.gpu_product == "NVIDIA-H200"
    assert h200.per_gpu_memory.usable_gib == pytest.approx(126.36, abs=0.01)
    assert h200.per_gpu_memory.kv_cache_gib == pytest.approx(58.15, abs=0.01)
    # A single H200 cannot: 131.42 GiB of weights exceed its 126.36 usable GiB.
    gpus = next(r.reason for r in h200.reasons if r.field == "gpus")
    assert "131.42 GiB of weights" in gpus
    a100 = plan(facts, "a100-80gb")
    assert layout(a100) == (4, 1, 4, 4, 1)
    assert a100.gpu_product == "NVIDIA-A100-SXM4-80GB"


def test_online_fp8_shrinks_linear_weights_but_not_embeddings(model):
    p = plan(model("llama-3.1-70b"), quantization="fp8")
    assert p.quantization == "fp8"
    assert p.online_quantization
    # (70.55B - 2.10B embedding, head and norms) x 1 byte + 2.10B x 2 bytes.
    assert p.weights_gib == pytest.approx(67.67, abs=0.01)
    assert layout(p) == (2, 1, 2, 2, 1)


@pytest.mark.parametrize(
    ("max_model_len", "gpus"),
    [
        (None, 4),  # 131072 tokens need 20 GiB of KV per GPU on TP2; only 3.47 GiB are left
        (8192, 4),  # short contexts must batch: 4 x 8192 = 32768 tokens need 5 GiB on TP2
        (4096, 2),  # 4 x 4096 = 16384 tokens need 2.5 GiB: TP2 holds them
    ],
)
def test_max_model_len_sets_the_kv_cache_the_gpus_must_hold(model, max_model_len, gpus):
    p = plan(model("llama-3.1-70b"), max_model_len=max_model_len)
    assert p.gpus == gpus
    assert p.max_model_len == (max_model_len or 131072)
    assert p.kv_cache_tokens >= p.min_kv_cache_tokens


def test_awq_70b_with_a_32k_context_fits_one_gpu(model):
    p = plan(model("llama-3.1-70b-awq", counted=False), max_model_len=32768)
    assert layout(p) == (1, 1, 1, 1, 1)
    assert p.kv_cache_tokens == 106_974


def test_context_is_lowered_rather_than_spending_nodes_on_it(model):
    # Llama 4 Scout claims 10M tokens; a full node of H100s holds 1.9M, and the planner does not
    # take more nodes for context alone.
    p = plan(model("llama-4-scout"))
    assert p.fits
    assert layout(p) == (8, 1, 8, 8, 1)
    assert p.max_model_len == 1_926_144
    assert p.max_model_len % 1024 == 0
    assert p.kv_cache_tokens >= p.max_model_len
    reason = next(r.reason for r in p.reasons if r.field == "maxModelLen")
    assert reason.startswith("1926144: lowered from the model's 10485760")


def test_context_is_lowered_on_an_explicit_layout_to_what_it_holds(model):
    p = plan(model("llama-3.1-70b"), tensor_parallel=2, pipeline_parallel=1)
    assert layout(p) == (2, 1, 2, 2, 1)
    # 22,770 tokens of KV fit: under 32768, so 4 sequences of 5120 tokens.
    assert p.kv_cache_tokens == 22_770
    assert p.max_model_len == 5120


def test_an_explicit_context_is_never_lowered(model):
    p = plan(model("llama-3.1-70b"), max_model_len=131072, tensor_parallel=2, pipeline_parallel=1)
    assert not p.fits
    assert p.max_model_len == 131072
    fits = next(r.reason for r in p.reasons if r.field == "fits")
    assert "tensorParallel, pipelineParallel" in fits


def test_sliding_window_layers_count_as_full_attention(model):
    # gpt-oss-120b: MXFP4 experts, BF16 attention; half its layers use a 128-token window but
    # are sized as full attention, which tips it just past one H100 at 128k context.
    p = plan(model("gpt-oss-120b"))
    assert p.quantization == "mxfp4"
    assert p.weights_gib == pytest.approx(60.69, abs=0.01)
    assert p.kv_cache_bytes_per_token == 2 * 36 * 8 * 64 * 2
    assert layout(p) == (2, 1, 2, 2, 1)
    pinned = plan(model("gpt-oss-120b"), tensor_parallel=1, pipeline_parallel=1)
    assert pinned.max_model_len == 130048


def test_a_model_too_large_for_max_nodes_does_not_fit(model):
    p = plan(model("llama-3.1-405b"), max_nodes=1)
    assert not p.fits
    assert layout(p) == (8, 1, 8, 8, 1)  # the largest layout tried
    assert p.kv_cache_tokens == 0
    assert p.per_gpu_memory.kv_cache_gib < 0
    fits = next(r.reason for r in p.reasons if r.field == "fits")
    assert "even 1 node of 8 h100-80gb GPUs" in fits
    assert "94.50 GiB of weights" in fits
    assert "maxNodes" in fits
    # DeepSeek-V3 does not fit one A100 node either.
    assert not plan(model("deepseek-v3"), "a100-80gb", max_nodes=1).fits
