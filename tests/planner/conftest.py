"""Fixtures of the planner tests: real architectures' config.json and their Hub parameter counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dayzero.planner import ModelFacts, facts_from_config

FIXTURES = Path(__file__).parent / "fixtures"

# safetensors parameter counts by dtype, as the Hub API's ``safetensors.parameters`` gives them.
# The FP8 405B counts follow Meta's FP8 checkpoint: FP8 MLPs in layers 1-124 with one F32 scale
# per output row, attention, first and last MLPs, embeddings and head in BF16.
HUB_PARAMETERS: dict[str, dict[str, int]] = {
    "llama-3.1-8b": {"BF16": 8_030_261_248},
    "llama-3.1-70b": {"BF16": 70_553_706_496},
    "llama-3.1-405b": {"BF16": 405_853_388_800},
    "llama-3.1-405b-fp8": {
        "BF16": 81_314_922_496,
        "F8_E4M3": 324_538_466_304,
        "F32": 15_237_120,
    },
    "mixtral-8x7b": {"BF16": 46_702_792_704},
    "qwen3-30b-a3b": {"BF16": 30_532_122_624},
}


def read_config(name: str) -> dict[str, Any]:
    """One fixture's config.json as a dict."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.fixture
def hub_parameters() -> dict[str, dict[str, int]]:
    """The Hub parameter counts of the fixtures that have them."""
    return HUB_PARAMETERS


@pytest.fixture
def config() -> Callable[[str], dict[str, Any]]:
    """Read a fixture's config.json."""
    return read_config


@pytest.fixture
def model() -> Callable[..., ModelFacts]:
    """ModelFacts of a fixture, with its Hub counts unless ``counted=False`` (then estimated)."""

    def load(name: str, *, counted: bool = True) -> ModelFacts:
        counts = HUB_PARAMETERS.get(name) if counted else None
        return facts_from_config(read_config(name), counts)

    return load
