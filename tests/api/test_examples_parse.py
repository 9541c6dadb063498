"""Every shipped example parses with the model of its kind: examples and types never diverge."""

from pathlib import Path

import pytest
import yaml

from dayzero.api.v1alpha1 import RESOURCES

ROOT = Path(__file__).resolve().parents[2]
MODELS = {r.kind: r.model for r in RESOURCES}
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples_of_every_kind():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES}
    assert kinds == set(MODELS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path):
    doc = yaml.safe_load(path.read_text())
    obj = MODELS[doc["kind"]].model_validate(doc)
    # Round trip: what the model writes back is what the example said, plus defaults.
    wire = obj.to_wire()
    assert wire["metadata"]["name"] == doc["metadata"]["name"]
    assert wire["spec"].keys() >= doc["spec"].keys()
