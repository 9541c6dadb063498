"""The quality suite: a JSONL dataset, its hash in the report, four scorers, bad lines named."""

from __future__ import annotations

import hashlib
import json

import pytest
from gauntlet_fakes import serve

from dayzero.cli import main

ITEMS = [
    {"id": "contains", "prompt": "Capital of France?", "scorer": "contains", "expected": "paris"},
    {"id": "regex", "prompt": "Capital?", "scorer": "regex", "expected": r"capital of \w+"},
    {"id": "exact", "prompt": "Capital of France?", "scorer": "exact", "expected": "Paris"},
    {
        "id": "json",
        "prompt": "Answer in JSON with city and country.",
        "scorer": "json-schema",
        "expected": {
            "type": "object",
            "properties": {"city": {"const": "Paris"}, "country": {"type": "string"}},
            "required": ["city", "country"],
        },
    },
]  # fmt: skip


def write(tmp_path, items) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return str(path)


def quality(tmp_path, items, *extra: str) -> tuple[int, dict]:
    dataset = write(tmp_path, items)
    with serve() as fake:
        argv = ["gauntlet", "run", "--endpoint", fake.url, "--model", "fake", "--suites"]
        argv += ["quality", "--dataset", dataset, "--out", str(tmp_path / "out")]
        code = main([*argv, *extra])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())


def test_scores_and_the_dataset_hash_are_reported(tmp_path):
    code, results = quality(tmp_path, ITEMS, "--spec", str(spec_min(tmp_path, 0.7)))
    digest = hashlib.sha256((tmp_path / "data.jsonl").read_bytes()).hexdigest()
    assert results["provenance"]["dataset_hash"] == f"sha256:{digest}"
    suite = results["results"][0]
    assert suite["figures"]["meanScore"] == 0.75
    passed = {i["name"]: i["passed"] for i in suite["items"]}
    assert passed == {
        "contains (contains)": True,
        "regex (regex)": True,
        "exact (exact)": False,
        "json (json-schema)": True,
    }
    assert code == 0


def test_a_mean_below_min_score_fails_naming_the_misses(tmp_path):
    code, results = quality(tmp_path, ITEMS, "--spec", str(spec_min(tmp_path, 0.9)))
    assert code == 1
    reason = results["results"][0]["reason"]
    assert reason.startswith("mean score 0.75 < 0.90 on dataset sha256:")
    assert "exact (exact): not exactly 'Paris'" in reason


def spec_min(tmp_path, minimum: float):
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps({"suites": {"quality": {"enabled": True, "minScore": minimum}}}))
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "--dataset: line 1: not JSON"),
        ([json.dumps({"prompt": "x", "scorer": "rubric", "expected": "y"})],
         "--dataset: line 1: scorer 'rubric' unknown"),
        ([json.dumps({"prompt": "x", "scorer": "judge", "reference": "y"})],
         "--dataset: line 1: rubric must be a non-empty string for judge"),
        ([json.dumps({"prompt": "x", "scorer": "judge", "rubric": "r", "reference": "y"})],
         "--dataset: items with scorer judge need a judge"),
        (["", json.dumps({"prompt": "x", "scorer": "regex", "expected": "("})],
         "--dataset: line 2: bad regex"),
        ([json.dumps({"prompt": "x", "scorer": "json-schema", "expected": {"type": 3}})],
         "--dataset: line 1: expected is not a valid schema"),
        ([], "has no items"),
    ],
)  # fmt: skip
def test_a_bad_dataset_exits_2_naming_the_line(tmp_path, capsys, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    argv = ["gauntlet", "run", "--endpoint", "http://127.0.0.1:1", "--model", "m"]
    assert main([*argv, "--suites", "quality", "--dataset", str(path), "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_quality_without_a_dataset_is_bad_input(tmp_path, capsys):
    argv = ["gauntlet", "run", "--endpoint", "http://127.0.0.1:1", "--model", "m"]
    assert main([*argv, "--suites", "quality", "--out", str(tmp_path)]) == 2
    assert "--dataset: the quality suite needs a JSONL dataset" in capsys.readouterr().err
