"""The watcher config: a bad field fails the run at once, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dayzero.watcher.config import WatcherConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "watcher" / "config.yaml"


def test_minimal_defaults() -> None:
    config = parse_config({"hub": {"orgs": ["meta-llama"]}})
    assert config.mode == "alert"
    assert config.state_config_map == "dayzero-watcher-state"
    assert config.budget.gpu_kind == "h100-80gb"
    assert config.deployment.tags == ["candidate"]


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.hub.orgs
    assert "vllm-project/vllm" in config.github.repos


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "hub"),
        ({"hub": {"orgs": []}}, "hub.orgs"),
        ({"hub": {"orgs": ["a"]}, "mode": "yolo"}, "mode"),
        ({"hub": {"orgs": ["a"]}, "filters": {"exclude": ["(unclosed"]}}, "filters.exclude"),
        ({"hub": {"orgs": ["a"]}, "filters": {"minParamsB": 10, "maxParamsB": 1}}, "filters"),
        ({"hub": {"orgs": ["a"]}, "budget": {"gpuKind": "tpu"}}, "budget.gpuKind"),
        ({"hub": {"orgs": ["a"]}, "budget": {"maxGpus": 0}}, "budget.maxGpus"),
        ({"hub": {"orgs": ["a"]}, "sinks": {"slack": {"webhookUrl": "ftp://x"}}}, "webhookUrl"),
        ({"hub": {"orgs": ["a"]}, "sinks": {"email": {"host": "h", "to": ["x@y"]}}}, "from"),
        ({"hub": {"orgs": ["a"]}, "mode": "gitops"}, "gitops"),
        ({"hub": {"orgs": ["a"]}, "namespace": "Bad_NS"}, "namespace"),
        ({"hub": {"orgs": ["a"]}, "github": {"repos": ["no-slash"]}}, "github.repos.0"),
        ({"hub": {"orgs": ["a"], "typo": 1}}, "hub.typo"),
    ],
)
def test_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(WatcherConfigError, match=field.replace(".", r"\.")):
        parse_config(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WatcherConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hub: [unclosed")
    with pytest.raises(WatcherConfigError, match="not YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n")
    with pytest.raises(WatcherConfigError, match="must be a mapping"):
        load_config(listy)
