"""The diff, the bakeoff and the judge end to end through `dayzero gauntlet run`: fake models with
a known quality gap on an arithmetic dataset, and a fake judge that answers in JSON (fair,
garbage, or order-dependent)."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from gauntlet_fakes import Behaviour, arithmetic, serve
from prometheus_client.parser import text_string_to_metric_families

from dayzero.cli import main
from dayzero.gauntlet.command import map_urls, parse_url_map
from dayzero.gauntlet.results import RunReport
from dayzero.gauntlet.spec import RunSpec

ITEMS = 20
SMALL = 10


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "arithmetic.jsonl"
    path.write_text("".join(json.dumps(arithmetic(n)) + "\n" for n in range(ITEMS)))
    return path


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Ten items: enough to rank a 40% and a 90% model, at half the requests."""
    path = tmp_path / "arithmetic-10.jsonl"
    path.write_text("".join(json.dumps(arithmetic(n)) + "\n" for n in range(SMALL)))
    return path


def target(name: str, url: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "endpoint": url, "model": model, **extra}


def gauntlet(
    tmp_path: Path,
    dataset: Path,
    candidates: list[Behaviour],
    baseline: Behaviour,
    *,
    judge: str | None = None,
    suites: str = "quality,diff",
    extra: dict[str, Any] | None = None,
) -> tuple[int, RunReport, str]:
    """Serve every model (and the judge), run the CLI, return (exit code, report, stdout)."""
    out = tmp_path / "out"
    with ExitStack() as stack:
        fakes = [stack.enter_context(serve(b)) for b in candidates]
        base = stack.enter_context(serve(baseline))
        doc: dict[str, Any] = {
            "targets": [
                target(f"cand-{n}", f.url, f"qwen-cand-{n}", provenance={"modelSha": f"sha{n}"})
                for n, f in enumerate(fakes)
            ],
            "baseline": target("base", base.url, "llama-base"),
            "prices": {"qwen-cand-0": {"inputUsdPerMillion": 1, "outputUsdPerMillion": 2},
                       "llama-base": {"inputUsdPerMillion": 3, "outputUsdPerMillion": 6}},
        }  # fmt: skip
        if judge:
            fake_judge = stack.enter_context(serve(Behaviour(judge=judge)))
            doc["judge"] = {"endpoint": fake_judge.url, "model": "judge", "family": "gemma"}
        doc |= extra or {}
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(doc))
        argv = ["gauntlet", "run", "--spec", str(spec), "--dataset", str(dataset)]
        argv += ["--suites", suites, "--out", str(out), "--timeout", "2", "--concurrency", "8"]
        code = main(argv)
    report = RunReport.model_validate_json((out / "results.json").read_text())
    return code, report, str(out)


def test_an_inferior_candidate_fails_non_inferiority(tmp_path, dataset, capsys):
    code, report, _ = gauntlet(tmp_path, dataset, [Behaviour(accuracy=0.4)],
                               Behaviour(accuracy=0.9))  # fmt: skip
    assert code == 1
    d = report.targets[0].suite("diff")
    assert d.verdict == "Fail"
    assert d.decision == "inferior"
    assert d.figures["candidateMean"] == pytest.approx(0.4)
    assert d.figures["baselineMean"] == pytest.approx(0.9)
    assert d.figures["meanDifference"] == pytest.approx(-0.5)
    assert d.figures["differenceUpper95"] < -0.05
    # The 40% model is right on a subset of the 90% model's items: 10 discordant, all one way.
    assert (d.figures["mcnemarCandidateOnly"], d.figures["mcnemarBaselineOnly"]) == (0, 10)
    assert d.figures["mcnemarP"] == pytest.approx(2 / 2**10)
    assert 0 < d.figures["minDetectableEffect"] < 1
    assert report.winner is None
    assert report.verdict == "Fail"
    out = capsys.readouterr().out
    assert "decision: inferior" in out
    assert "minimum detectable effect" in out


def test_a_better_candidate_passes_and_wins(tmp_path, dataset):
    code, report, _ = gauntlet(tmp_path, dataset, [Behaviour(accuracy=0.9)],
                               Behaviour(accuracy=0.4))  # fmt: skip
    assert code == 0
    d = report.targets[0].suite("diff")
    assert (d.verdict, d.decision) == ("Pass", "better")
    assert d.figures["differenceLower95"] > 0
    assert report.winner == "cand-0"
    assert report.verdict == "Pass"
    # Cost: both sides ran the same prompts; the baseline's tokens cost three times as much.
    assert d.figures["baselineCostUsd"] > d.figures["candidateCostUsd"] > 0
    assert "latencyMeanDifferenceSeconds" in d.figures


def test_two_equal_models_are_not_separated(tmp_path, dataset):
    # Same accuracy, different mistakes: 4 discordant pairs each way.
    code, report, _ = gauntlet(tmp_path, dataset, [Behaviour(accuracy=0.8, offset=5)],
                               Behaviour(accuracy=0.8))  # fmt: skip
    d = report.targets[0].suite("diff")
    assert (d.figures["mcnemarCandidateOnly"], d.figures["mcnemarBaselineOnly"]) == (4, 4)
    assert d.figures["mcnemarP"] == 1.0
    assert d.figures["meanDifference"] == 0
    assert d.decision == "inconclusive"  # 20 items cannot show non-inferiority at 0.05
    assert d.decision != "inferior"
    assert "minimum detectable effect" in (d.reason or "")
    assert code == 1


def test_identical_models_are_non_inferior(tmp_path, dataset):
    code, report, _ = gauntlet(tmp_path, dataset, [Behaviour(accuracy=0.9)],
                               Behaviour(accuracy=0.9))  # fmt: skip
    d = report.targets[0].suite("diff")
    assert (d.verdict, d.decision) == ("Pass", "non-inferior")
    assert d.figures["mcnemarP"] == 1.0
    assert code == 0


def test_the_fair_judge_counts_wins_only_when_both_orders_agree(tmp_path, small_dataset):
    code, report, out = gauntlet(tmp_path, small_dataset, [Behaviour(accuracy=0.9)],
                                 Behaviour(accuracy=0.4), judge="fair")  # fmt: skip
    d = report.targets[0].suite("diff")
    assert (d.figures["judgeWins"], d.figures["judgeLosses"], d.figures["judgeTies"]) == (5, 0, 5)
    assert d.figures["judgeReview"] == 0
    assert not (Path(out) / "review.jsonl").exists()
    assert report.judge is not None
    assert report.judge.family == "gemma"
    assert code == 0


def test_an_order_dependent_judge_flips_into_ties_and_the_review_queue(tmp_path, small_dataset):
    _, report, out = gauntlet(tmp_path, small_dataset, [Behaviour(accuracy=0.9)],
                              Behaviour(accuracy=0.4), judge="first")  # fmt: skip
    d = report.targets[0].suite("diff")
    assert d.figures["judgeTies"] == SMALL
    assert d.figures["judgeWins"] == 0
    lines = [json.loads(x) for x in (Path(out) / "review.jsonl").read_text().splitlines()]
    assert len(lines) == SMALL
    assert {x["why"] for x in lines} == {"flip"}
    assert {x["kind"] for x in lines} == {"pairwise"}
    first = lines[0]
    assert set(first["answers"]) == {"candidate", "baseline"}
    assert len(first["judge"]) == 2
    assert first["prompt"].startswith("Q")
    assert report.review_open == SMALL


def test_a_garbage_judge_abstains_into_the_review_queue(tmp_path, small_dataset):
    _, report, out = gauntlet(tmp_path, small_dataset, [Behaviour(accuracy=0.9)],
                              Behaviour(accuracy=0.4), judge="garbage")  # fmt: skip
    d = report.targets[0].suite("diff")
    assert d.figures["judgeTies"] == SMALL
    whys = {json.loads(x)["why"] for x in (Path(out) / "review.jsonl").read_text().splitlines()}
    assert whys == {"abstain"}
    # The judge does not decide the non-inferiority test: the scorer's items do.
    assert d.decision == "better"


def test_a_bakeoff_ranks_the_targets_and_every_report_covers_them(tmp_path, small_dataset):
    code, report, out = gauntlet(
        tmp_path, small_dataset, [Behaviour(accuracy=0.4), Behaviour(accuracy=0.9)],
        Behaviour(accuracy=0.9), suites="quality,toolCalls,diff",
    )  # fmt: skip
    assert code == 0
    assert report.winner == "cand-1"
    assert [t.rank for t in report.targets] == [2, 1]
    assert [t.verdict for t in report.targets] == ["Fail", "Pass"]
    assert report.model == "qwen-cand-1"  # the primary target is the winner
    assert report.provenance.model_sha == "sha1"
    assert all(t.provenance.dataset_hash for t in report.targets)
    assert report.targets[0].provenance.model_sha == "sha0"
    results = report.suite_results()
    assert {(r.target, r.suite) for r in results} == {
        (t, s) for t in ("cand-0", "cand-1") for s in ("quality", "toolCalls", "diff")
    }
    tools = report.targets[1].suite("diff").figures
    assert tools["toolCallsCandidatePassed"] == tools["toolCallsBaselinePassed"] == 5
    cases = [i for i in report.targets[1].suite("diff").items if i.name.startswith("toolCalls ")]
    assert len(cases) == 5
    assert {i.answer for i in cases} == {"candidate pass, baseline pass"}
    root = ET.parse(Path(out) / "junit.xml").getroot()  # noqa: S314 - the report we just wrote
    names = {s.get("name") for s in root.findall("testsuite")}
    assert {"cand-0/diff", "cand-1/diff", "base/quality"} <= names
    props = {
        p.get("name"): p.get("value")
        for s in root.findall("testsuite")
        if s.get("name") == "cand-1/quality"
        for p in s.iter("property")
    }
    assert props["model_sha"] == "sha1"
    assert props["dataset_hash"].startswith("sha256:")
    assert props["sampling"] == '{"temperature": 0.0}'
    page = (Path(out) / "report.html").read_text()
    assert "Ranking" in page
    assert page.count("<svg") >= 4  # quality, toolCalls, diff comparisons and cost
    assert "estimated cost" in page
    metrics = (Path(out) / "metrics.prom").read_text()
    ranks = {
        s.labels["target"]: s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "dayzero_gauntlet_rank"
    }
    assert ranks == {"cand-0": 2, "cand-1": 1}


def test_url_map_points_in_cluster_urls_at_loopback(tmp_path, dataset):
    with serve(Behaviour(accuracy=0.9)) as fake:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump({
            "targets": [target("a", "http://gateway.dayzero.svc:8080", "qwen-a")],
        }))  # fmt: skip
        argv = ["gauntlet", "run", "--spec", str(spec), "--out", str(tmp_path / "out"),
                "--suites", "toolCalls",
                "--url-map", f"http://gateway.dayzero.svc:8080={fake.url}"]  # fmt: skip
        assert main(argv) == 0
    report = RunReport.model_validate_json((tmp_path / "out" / "results.json").read_text())
    assert report.targets[0].endpoint == f"{fake.url}/v1"
    assert fake.bodies[0]["model"] == "qwen-a"


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ({"model": "qwen-judge"}, "judge.family: the judge is qwen, the same family as target"),
        ({"model": "judge", "family": "QWEN"}, "judge.family: the judge is qwen"),
        ({"model": "judge"}, "judge.family: cannot infer the family of judge model 'judge'"),
    ],
)
def test_a_judge_of_a_candidates_family_is_refused(tmp_path, judge, message, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "targets": [target("a", "http://127.0.0.1:1", "Qwen/Qwen2.5-7B-Instruct")],
        "judge": {"endpoint": "http://127.0.0.1:1", **judge},
    }))  # fmt: skip
    assert main(["gauntlet", "run", "--spec", str(spec), "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_baseline_cannot_flatter_the_candidate(tmp_path, dataset, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening
        with serve(Behaviour(accuracy=0.4)) as fake:
            spec = tmp_path / "spec.yaml"
            spec.write_text(yaml.safe_dump({
                "targets": [target("a", fake.url, "qwen-a")],
                "baseline": target("base", closed, "llama-base"),
            }))  # fmt: skip
            argv = ["gauntlet", "run", "--spec", str(spec), "--dataset", str(dataset),
                    "--suites", "quality,diff", "--out", str(tmp_path / "out"),
                    "--timeout", "2"]  # fmt: skip
            code = main(argv)
    assert code == 3
    report = RunReport.model_validate_json((tmp_path / "out" / "results.json").read_text())
    d = report.targets[0].suite("diff")
    assert d.verdict == "Error"
    assert "the baseline could not run: the endpoint never answered" in (d.reason or "")
    assert report.winner is None


def test_a_bakeoff_target_that_never_answers_stays_error_and_another_wins(tmp_path, dataset):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening
        with serve(Behaviour(accuracy=0.9)) as good, serve(Behaviour(accuracy=0.9)) as base:
            spec = tmp_path / "spec.yaml"
            spec.write_text(yaml.safe_dump({
                "targets": [target("down", closed, "qwen-down"), target("up", good.url, "qwen-up")],
                "baseline": target("base", base.url, "llama-base"),
            }))  # fmt: skip
            argv = ["gauntlet", "run", "--spec", str(spec), "--dataset", str(dataset),
                    "--suites", "quality,diff", "--out", str(tmp_path / "out"),
                    "--timeout", "2"]  # fmt: skip
            code = main(argv)
    assert code == 0
    report = RunReport.model_validate_json((tmp_path / "out" / "results.json").read_text())
    down = report.target("down")
    assert (down.verdict, down.exit_code, down.rank) == ("Error", 3, 2)
    assert "the endpoint never answered" in (down.reason or "")
    assert report.winner == "up"


def test_tool_calls_are_compared_case_by_case(tmp_path, small_dataset):
    _, report, _ = gauntlet(
        tmp_path, small_dataset, [Behaviour(accuracy=0.9, bad_tools=True)],
        Behaviour(accuracy=0.9), suites="quality,toolCalls,diff",
    )  # fmt: skip
    d = report.targets[0].suite("diff")
    assert d.figures["toolCallsBaselinePassed"] == 5
    assert d.figures["toolCallsCandidatePassed"] < 5
    failing = [i for i in d.items if i.name.startswith("toolCalls ") and not i.passed]
    assert failing
    assert failing[0].reasons[0].startswith("candidate fail, baseline pass: ")
    # The quality decision is separate: equal answers stay non-inferior.
    assert d.decision == "non-inferior"


def test_url_map_rewrites_every_endpoint_of_the_spec():
    spec = RunSpec.model_validate({
        "targets": [target("a", "http://gateway.dayzero.svc:8080/v1", "qwen-a"),
                    target("b", "https://api.example.com", "gpt-b")],
        "baseline": target("base", "http://gateway.dayzero.svc:8080", "llama"),
        "judge": {"endpoint": "http://judge.dayzero.svc:80", "model": "j", "family": "gemma"},
    })  # fmt: skip
    pairs = parse_url_map([
        "http://gateway.dayzero.svc:8080=http://127.0.0.1:18080",
        "http://gateway.dayzero.svc:8080=http://127.0.0.1:9",  # the first match wins
        "http://judge.dayzero.svc:80/=http://127.0.0.1:18081",
    ])  # fmt: skip
    mapped = map_urls(spec, pairs)
    assert [t.endpoint for t in mapped.targets] == [
        "http://127.0.0.1:18080/v1",
        "https://api.example.com/v1",  # no pair matches: untouched
    ]
    assert mapped.baseline is not None
    assert mapped.baseline.endpoint == "http://127.0.0.1:18080/v1"
    assert mapped.judge is not None
    assert mapped.judge.endpoint == "http://127.0.0.1:18081/v1"
    assert spec.targets[0].endpoint == "http://gateway.dayzero.svc:8080/v1"  # a copy, not edited


@pytest.mark.parametrize("flag", ["--endpoint", "--model", "--model-sha", "--engine"])
def test_single_target_flags_with_targets_in_the_spec_are_refused(tmp_path, flag, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"targets": [target("a", "http://127.0.0.1:1", "qwen-a")]}))
    value = "http://127.0.0.1:2" if flag == "--endpoint" else "x"
    argv = ["gauntlet", "run", "--spec", str(spec), "--out", str(tmp_path), flag, value]
    assert main(argv) == 2
    assert f"{flag}: the spec has targets" in capsys.readouterr().err


def test_a_targets_bad_field_is_named(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"targets": [target("Not_A_Label", "ftp://x", "m")]}))
    assert main(["gauntlet", "run", "--spec", str(spec), "--out", str(tmp_path)]) == 2
    assert "field targets.0.name: String should match pattern" in capsys.readouterr().err
