"""Supported architectures: parsed from vLLM's registry source, shipped as data, drift-checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from dayzero.planner import archdata
from dayzero.planner.archdata import (
    ArchDataError,
    architectures_from_registry_source,
    render,
)
from dayzero.planner.support import (
    architecture_support,
    model_support,
    removed_in,
    supported_by_vllm,
    vllm_architectures,
    vllm_version,
)

FIXTURES = Path(__file__).parent / "fixtures"

# A small registry in the shape of vllm/model_executor/models/registry.py.
REGISTRY = """
import sys
logger = init_logger(__name__)

_TEXT_GENERATION_MODELS = {
    # [Decoder-only]
    "LlamaForCausalLM": ("llama", "LlamaForCausalLM"),
    "MistralForCausalLM": ("llama", "LlamaForCausalLM"),
    "Qwen3ForCausalLM": ("qwen3", "Qwen3ForCausalLM"),
}

_EMBEDDING_MODELS = {
    "BertModel": ("bert", "BertEmbeddingModel"),
    **{
        k: (mod, arch)
        for k, (mod, arch) in _TEXT_GENERATION_MODELS.items()
        if arch == "LlamaForCausalLM"
    },
    "Qwen3ForCausalLM": ("qwen3", "Qwen3ForCausalLM"),
}

_MULTIMODAL_MODELS: dict[str, tuple[str, str]] = {
    "Llama4ForConditionalGeneration": ("mllama4", "Llama4ForConditionalGeneration"),
}

_TRANSFORMERS_SUPPORTED_MODELS = {
    "OlmoForCausalLM": ("transformers", "TransformersForCausalLM"),
}

_TRANSFORMERS_BACKEND_MODELS = {
    "TransformersForCausalLM": ("transformers", "TransformersForCausalLM"),
}

_UNUSED_MODELS = {"NotRegistered": ("x", "X")}

_VLLM_MODELS = {
    **_TEXT_GENERATION_MODELS,
    **_EMBEDDING_MODELS,
    **_MULTIMODAL_MODELS,
    **_TRANSFORMERS_SUPPORTED_MODELS,
    **_TRANSFORMERS_BACKEND_MODELS,
}

_PREVIOUSLY_SUPPORTED_MODELS = {"MPTForCausalLM": "0.28.0"}
"""


def test_parses_the_registry_tables():
    data = architectures_from_registry_source(REGISTRY)
    assert data == {
        "text_generation": ["LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"],
        "multimodal": ["Llama4ForConditionalGeneration"],
        "transformers_backend": ["OlmoForCausalLM"],
        # Categories are disjoint: the embedding copies of Llama and Qwen3 stay text generation.
        "other": ["BertModel", "TransformersForCausalLM"],
        "previously_supported": {"MPTForCausalLM": "0.28.0"},
    }


def test_comprehension_filters_are_evaluated():
    source = """
_BASE = {
    "A": ("llama", "LlamaForCausalLM"),
    "B": ("llama", "Other"),
    "C": ("qwen", "LlamaForCausalLM"),
    "D": ("bert", "Bert"),
}
_TEXT_GENERATION_MODELS = {}
_EMBEDDING_MODELS = {
    **{k: v for k, (mod, arch) in _BASE.items() if arch == "LlamaForCausalLM" and mod != "qwen"},
    **{k: v for k, v in _BASE.items() if k in ("D",) or not k},
}
_VLLM_MODELS = {**_TEXT_GENERATION_MODELS, **_EMBEDDING_MODELS}
"""
    assert architectures_from_registry_source(source)["other"] == ["A", "D"]


@pytest.mark.parametrize(
    ("before", "after", "match"),
    [
        ("_VLLM_MODELS = {", "_ALL = {", "_VLLM_MODELS not found"),
        ("**_TRANSFORMERS_BACKEND_MODELS,", "**load_more(),", "expected only"),
        ('"BertModel": ("bert"', '**plugins(), "BertModel": ("bert"', "spreads a Call"),
        (
            'if arch == "LlamaForCausalLM"',
            'if arch.startswith("Llama")',
            "a filter the parser does not know",
        ),
        ("**_TRANSFORMERS_BACKEND_MODELS,", "**_LATER_MODELS,", "_LATER_MODELS"),
    ],
)
def test_an_unknown_construct_fails_loudly(before, after, match):
    with pytest.raises(ArchDataError, match=match):
        architectures_from_registry_source(REGISTRY.replace(before, after, 1))


def _wheel(path: Path, version: str = "0.99.0", registry: str = REGISTRY) -> Path:
    wheel = path / f"vllm-{version}-cp38-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"vllm-{version}.dist-info/METADATA", f"Name: vllm\nVersion: {version}\n")
        zf.writestr(archdata.REGISTRY, registry)
    return wheel


def test_write_then_check_a_wheel(tmp_path, capsys):
    wheel, data = _wheel(tmp_path), tmp_path / "out" / "vllm_architectures.json"
    assert archdata.main([str(wheel), "--write", "--data", str(data)]) == 0
    written = json.loads(data.read_text())
    assert written["vllm"] == "0.99.0"
    assert written["source"] == archdata.REGISTRY
    assert written["wheel"] == wheel.name
    assert len(written["wheel_sha256"]) == 64
    assert archdata.main([str(wheel), "--check", "--data", str(data)]) == 0
    assert "matches vllm 0.99.0" in capsys.readouterr().out


def test_check_reports_drift(tmp_path, capsys):
    data = tmp_path / "vllm_architectures.json"
    assert archdata.main([str(_wheel(tmp_path)), "--write", "--data", str(data)]) == 0
    newer = REGISTRY.replace(
        '"Qwen3ForCausalLM": ("qwen3", "Qwen3ForCausalLM"),\n}',
        '"Qwen3ForCausalLM": ("qwen3", "Qwen3ForCausalLM"),\n    "NewForCausalLM": ("n", "N"),\n}',
        1,
    )
    (tmp_path / "next").mkdir()
    wheel = _wheel(tmp_path / "next", version="0.100.0", registry=newer)
    assert archdata.main([str(wheel), "--check", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert "vllm: '0.99.0' -> '0.100.0'" in err
    assert "text_generation: +1 NewForCausalLM" in err
    assert "make archdata" in err


def test_not_a_vllm_wheel(tmp_path):
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other-1.0.dist-info/METADATA", "Version: 1.0\n")
    with pytest.raises(ArchDataError, match="not a vllm wheel"):
        archdata.archdata_from_wheel(wheel)


def test_shipped_data_comes_from_the_pinned_wheel():
    text = archdata.DATA_FILE.read_text()
    data = json.loads(text)
    assert data["vllm"] == vllm_version() == "0.33.0"
    assert data["source"] == "vllm/model_executor/models/registry.py"
    assert data["wheel"].startswith("vllm-0.33.0-")
    assert render(data) == text  # written by archdata, not by hand
    for category in archdata.CATEGORIES:
        assert data[category] == sorted(set(data[category]))
    every = [a for category in archdata.CATEGORIES for a in data[category]]
    assert len(every) == len(set(every))  # disjoint
    for arch in (
        "LlamaForCausalLM",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "MixtralForCausalLM",
        "DeepseekV3ForCausalLM",
        "GptOssForCausalLM",
    ):
        assert arch in data["text_generation"]
    assert "Llama4ForConditionalGeneration" in data["multimodal"]
    assert len(data["text_generation"]) > 100


def test_supported_by_vllm():
    assert supported_by_vllm("LlamaForCausalLM")
    assert supported_by_vllm("Llama4ForConditionalGeneration")
    assert not supported_by_vllm("NoSuchModelForCausalLM")
    assert architecture_support("DeepseekV3ForCausalLM") == "text_generation"
    assert architecture_support("NoSuchModelForCausalLM") == "unknown"


def test_transformers_backend_and_removed_architectures():
    data = vllm_architectures()
    backend = next(iter(sorted(data.transformers_backend)))
    assert architecture_support(backend) == "transformers_backend"
    assert supported_by_vllm(backend)
    gone, version = next(iter(sorted(data.previously_supported.items())))
    assert architecture_support(gone) == "previously_supported"
    assert not supported_by_vllm(gone)
    assert removed_in(gone) == version
    assert removed_in("LlamaForCausalLM") is None


def test_model_support_takes_the_first_served_architecture():
    assert model_support(["NoSuchModel", "Qwen3ForCausalLM"]) == "text_generation"
    assert model_support(["NoSuchModel"]) == "unknown"
    assert model_support([]) == "unknown"


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_every_planner_fixture_is_served_by_the_pinned_vllm(fixture):
    architectures = json.loads((FIXTURES / f"{fixture}.json").read_text())["architectures"]
    assert model_support(architectures) in ("text_generation", "multimodal")


def test_check_against_the_pin_without_a_wheel(tmp_path, capsys):
    data = tmp_path / "vllm_architectures.json"
    assert archdata.main([str(_wheel(tmp_path)), "--write", "--data", str(data)]) == 0
    check = ["--check", "--data", str(data), "--expect-version"]
    assert archdata.main([*check, "0.99.0"]) == 0
    assert "not re-derived" in capsys.readouterr().out
    assert archdata.main([*check, "0.100.0"]) == 1
    assert "the pin is 0.100.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        archdata.main(["--check", "--data", str(data)])
