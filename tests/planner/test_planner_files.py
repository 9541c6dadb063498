"""Planning from local files: config.json, and safetensors headers read without the weights."""

from __future__ import annotations

import json
import struct

import pytest

from dayzero.planner import PlanError, load_facts, plan_from_path
from dayzero.planner.files import count_parameters, read_safetensors_header


def write_safetensors(path, tensors, *, data=True):
    """A safetensors file; with ``data=False`` only the header, as if the weights were cut off."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    widths = {"BF16": 2, "F8_E4M3": 1, "F32": 4}
    for name, (dtype, shape) in tensors.items():
        size = widths[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + (b"\0" * offset if data else b""))


@pytest.fixture
def checkout(tmp_path, config):
    """A Llama 3.1 8B checkout whose two shards hold a few small tensors."""
    (tmp_path / "config.json").write_text(json.dumps(config("llama-3.1-8b")))
    write_safetensors(
        tmp_path / "model-00001-of-00002.safetensors",
        {"a": ("BF16", [4, 8]), "b": ("F8_E4M3", [16, 16])},
    )
    # The weights of the second shard are missing: only its header is ever read.
    write_safetensors(
        tmp_path / "model-00002-of-00002.safetensors",
        {"c": ("BF16", [1024, 1024, 1024]), "d": ("F32", [16])},
        data=False,
    )
    index = {
        "metadata": {"total_size": 0},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors",
            "d": "model-00002-of-00002.safetensors",
        },
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    return tmp_path


def test_a_checkout_is_counted_by_dtype_from_the_headers(checkout):
    facts = load_facts(checkout)
    assert dict(facts.parameters) == {"BF16": 32 + 1024**3, "F8_E4M3": 256, "F32": 16}
    assert facts.hidden_size == 4096


def test_an_index_naming_a_missing_shard_falls_back_to_the_estimate(checkout):
    (checkout / "model-00002-of-00002.safetensors").unlink()
    facts = load_facts(checkout)
    assert not facts.parameters
    assert plan_from_path(checkout).parameters_estimated


def test_shards_without_an_index_are_found_by_name(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config("llama-3.1-8b")))
    write_safetensors(tmp_path / "model.safetensors", {"w": ("BF16", [8_030_261_248])}, data=False)
    p = plan_from_path(tmp_path, "h200-141gb", max_model_len=8192)
    assert p.parameter_count == 8_030_261_248
    assert not p.parameters_estimated
    assert (p.gpu_kind, p.gpus, p.max_model_len) == ("h200-141gb", 1, 8192)


def test_a_config_file_alone_is_planned_from_the_estimate(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config("llama-3.1-70b")))
    p = plan_from_path(path, tensor_parallel=8)
    assert p.parameters_estimated
    assert p.parameter_count == 70_553_706_496
    assert p.tensor_parallel == 8


def test_count_parameters_skips_metadata_and_multiplies_shapes():
    header = {
        "__metadata__": {"format": "pt"},
        "x": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
        "y": {"dtype": "BF16", "shape": [], "data_offsets": [12, 14]},
    }
    assert count_parameters(header) == {"BF16": 7}
    with pytest.raises(PlanError, match="no shape"):
        count_parameters({"z": {"dtype": "BF16"}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10**12), "not a safetensors file"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_bad_safetensors_headers_are_plan_errors(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(PlanError, match=message) as e:
        read_safetensors_header(path)
    assert e.value.field == "path"


def test_missing_or_unreadable_paths_are_plan_errors(tmp_path):
    with pytest.raises(PlanError, match=r"neither a config\.json file nor a directory"):
        load_facts(tmp_path / "nope")
    with pytest.raises(PlanError, match="cannot read"):
        load_facts(tmp_path)  # a directory without config.json
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(PlanError, match="not a JSON object"):
        load_facts(tmp_path / "config.json")
