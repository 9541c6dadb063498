"""``dayzero gauntlet run``: flags (or a spec file) to a ``RunSpec``, one run, four report files
and the review queue; ``dayzero gauntlet review``: list, record and apply human verdicts.

Bad input exits 2 and names the flag or field; the other exit codes are the run's
(``dayzero.gauntlet.run``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from . import quality, review
from .judge import Judge
from .rejudge import rejudge
from .report import read_report, write_all
from .results import RunReport
from .run import EXIT_USAGE, run
from .spec import ALL_SUITES, IMPLEMENTED, JudgeTarget, RunSpec, TargetSpec

# Where a RunSpec field comes from on the command line, for error messages. Paths are the
# API's camelCase: the API's models read only their aliases.
FLAGS = {
    "endpoint": "--endpoint",
    "model": "--model",
    "concurrency": "--concurrency",
    "seed": "--seed",
    "suites.latency.requests": "--requests",
    "suites.latency.warmup": "--warmup",
    "suites.latency.maxTokens": "--max-tokens",
    "gates.p95Seconds": "--p95-seconds",
    "gates.maxSeconds": "--max-seconds",
    "harness.timeoutSeconds": "--timeout",
    "harness.stabilityRequests": "--stability-requests",
    "sampling.temperature": "--temperature",
    "harness.dataset": "--dataset",
}


class UsageError(Exception):
    """Bad input: the message names the flag or field."""


def _set(doc: dict[str, Any], dotted: str, value: object) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[leaf] = value


def _load(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--spec`` file (or nothing) with ``--suites`` applied."""
    doc: dict[str, Any] = {}
    if args.spec:
        try:
            loaded = yaml.safe_load(Path(args.spec).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UsageError(f"--spec: cannot read {args.spec}: {e}") from e
        if not isinstance(loaded, dict):
            raise UsageError(f"--spec: {args.spec} is not a mapping")
        doc = loaded
    if args.suites is not None or "suites" not in doc:
        # The API enables suites this harness lacks by default; without a choice, run what it
        # has: quality with a dataset, diff with a dataset and a baseline.
        default = [
            n
            for n in IMPLEMENTED
            if (n != "quality" or args.dataset)
            and (n != "diff" or (args.dataset and doc.get("baseline")))
        ]
        chosen = args.suites if args.suites is not None else ",".join(default)
        names = [s.strip() for s in chosen.split(",") if s.strip()]
        unknown = [n for n in names if n not in ALL_SUITES]
        if unknown:
            raise UsageError(
                f"--suites: unknown suite(s) {', '.join(unknown)}; known: {', '.join(ALL_SUITES)}"
            )
        # Only `enabled` changes: thresholds from --spec stay.
        suites = doc.setdefault("suites", {})
        if not isinstance(suites, dict):
            raise UsageError("--spec: suites must be a mapping")
        for name in ALL_SUITES:
            entry = suites.setdefault(name, {})
            if isinstance(entry, dict):
                entry["enabled"] = name in names
    return doc


def build_spec(args: argparse.Namespace) -> RunSpec:
    """The run's spec: the ``--spec`` file if any, then the flags over it."""
    doc = _load(args)
    values = {
        "endpoint": args.endpoint,
        "model": args.model,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "suites.latency.requests": args.requests,
        "suites.latency.warmup": args.warmup,
        "suites.latency.maxTokens": args.max_tokens,
        "gates.p95Seconds": args.p95_seconds,
        "gates.maxSeconds": args.max_seconds,
        "harness.timeoutSeconds": args.timeout,
        "harness.stabilityRequests": args.stability_requests,
        "sampling.temperature": args.temperature,
        "harness.dataset": args.dataset,
        "provenance.modelSha": args.model_sha,
        "provenance.engine": args.engine,
        "provenance.image": args.image,
        "provenance.chatTemplateHash": args.chat_template_hash,
    }
    if doc.get("targets"):
        # These describe the single target; with targets each carries its own.
        single = {
            "--endpoint": args.endpoint,
            "--model": args.model,
            "--api-key-env": args.api_key_env,
            "--model-sha": args.model_sha,
            "--engine": args.engine,
            "--image": args.image,
            "--chat-template-hash": args.chat_template_hash,
        }
        given = [flag for flag, value in single.items() if value]
        if given:
            raise UsageError(
                f"{given[0]}: the spec has targets; set it on each target in --spec instead"
            )
    for dotted, value in values.items():
        _set(doc, dotted, value)
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env: ${args.api_key_env} is not set")
        doc["api_key"] = key
    if not doc.get("targets"):
        for field in ("endpoint", "model"):
            if not doc.get(field):
                raise UsageError(f"{FLAGS[field]} is required (or {field} or targets in --spec)")
    try:
        spec = RunSpec.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        name = FLAGS.get(where, f"field {where}" if where else "--spec")
        raise UsageError(f"{name}: {first['msg']}") from e
    spec = map_urls(spec, parse_url_map(args.url_map or []))
    _read_keys(spec)
    _check_judge(spec)
    _check_suites(spec)
    return spec


def _check_suites(spec: RunSpec) -> None:
    """What the suites need: a baseline and quality for diff, a dataset (and a judge for its
    judge items) for quality, gates the API's CEL rule allows."""
    enabled = spec.enabled()
    if "diff" in enabled and spec.baseline is None:
        raise UsageError("baseline: the diff suite needs a baseline (baseline in --spec)")
    if "diff" in enabled and "quality" not in enabled:
        raise UsageError("--suites: the diff suite pairs quality items: enable quality too")
    if "quality" in enabled:
        if not spec.harness.dataset:
            raise UsageError("--dataset: the quality suite needs a JSONL dataset")
        try:
            cases, digest = quality.load(spec.harness.dataset)
        except quality.DatasetError as e:
            raise UsageError(f"--dataset: {e}") from e
        if quality.needs_judge(cases) and spec.judge is None:
            raise UsageError("--dataset: items with scorer judge need a judge (judge in --spec)")
        spec.provenance.dataset_hash = f"sha256:{digest}"
    if spec.gates.p95_seconds > spec.gates.max_seconds:
        # The API's CEL rule, which only an API server enforces.
        raise UsageError("--p95-seconds: must not exceed --max-seconds")
    missing = spec.not_implemented()
    if missing:
        raise UsageError(
            f"--suites: {', '.join(missing)} not implemented yet (implemented: "
            f"{', '.join(IMPLEMENTED)})"
        )
    if not spec.enabled():
        raise UsageError("--suites: no suite enabled")


def parse_url_map(pairs: list[str]) -> list[tuple[str, str]]:
    """``FROM=TO`` pairs of ``scheme://host[:port]`` prefixes; a bad pair names the flag."""
    out = []
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep:
            raise UsageError(f"--url-map: {pair!r} is not FROM=TO")
        for side in (src, dst):
            parts = urlsplit(side)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                raise UsageError(
                    f"--url-map: {side!r} in {pair!r} is not scheme://host[:port] (http or https)"
                )
        out.append((src.rstrip("/"), dst.rstrip("/")))
    return out


def _rewrite(url: str, pairs: list[tuple[str, str]]) -> str:
    for src, dst in pairs:
        if url == src or url.startswith(src + "/"):
            return dst + url[len(src) :]
    return url


_Endpoint = TypeVar("_Endpoint", TargetSpec, JudgeTarget)


def map_urls(spec: RunSpec, pairs: list[tuple[str, str]]) -> RunSpec:
    """Every endpoint of the spec (top level, targets, baseline, judge) with its prefix
    rewritten by the first matching pair."""
    if not pairs:
        return spec

    def moved(x: _Endpoint) -> _Endpoint:
        return x.model_copy(update={"endpoint": _rewrite(x.endpoint, pairs)})

    return spec.model_copy(
        update={
            "endpoint": _rewrite(spec.endpoint, pairs) if spec.endpoint else None,
            "targets": [moved(t) for t in spec.targets],
            "baseline": moved(spec.baseline) if spec.baseline else None,
            "judge": moved(spec.judge) if spec.judge else None,
        }
    )


def _read_keys(spec: RunSpec) -> None:
    """Each target's, the baseline's and the judge's key from the variable it names."""
    named: list[tuple[str, Any]] = [(f"targets[{n}]", t) for n, t in enumerate(spec.targets)]
    named += [("baseline", spec.baseline), ("judge", spec.judge)]
    for where, x in named:
        if x is None or not x.api_key_env:
            continue
        key = os.environ.get(x.api_key_env)
        if not key:
            raise UsageError(f"{where}.apiKeyEnv: ${x.api_key_env} is not set")
        x.api_key = key


def _check_judge(spec: RunSpec) -> None:
    """The judge must be known, and of another family than every candidate."""
    if spec.judge is None:
        return
    family = spec.judge.resolved_family()
    if family is None:
        raise UsageError(
            f"judge.family: cannot infer the family of judge model {spec.judge.model!r}; set it "
            "(the judge must not be a candidate's family)"
        )
    for t in spec.resolved_targets():
        if t.resolved_family() == family:
            raise UsageError(
                f"judge.family: the judge is {family}, the same family as target {t.name!r} "
                f"({t.model}); a model must not judge its own family"
            )


def main(args: argparse.Namespace) -> int:
    """Run the gauntlet and write the reports; the exit code is the verdict's."""
    try:
        spec = build_spec(args)
    except UsageError as e:
        sys.stderr.write(f"dayzero gauntlet run: error: {e}\n")
        return EXIT_USAGE
    out = Path(args.out)
    judge = (
        Judge(spec.judge, concurrency=spec.concurrency, timeout=spec.harness.timeout_seconds)
        if spec.judge
        else None
    )
    report = asyncio.run(_run(spec, judge))
    if judge is not None:
        review.add_items(out, judge.reviews)
    # Verdicts a human recorded earlier on the same items count in this run too.
    _, decisions = review.read(out)
    report = rejudge(report, review.latest(decisions), open_ids=_open(out))
    paths = write_all(report, out)
    sys.stdout.write(summary(report, paths))
    return report.exit_code


async def _run(spec: RunSpec, judge: Judge | None) -> RunReport:
    try:
        return await run(spec, judge=judge)
    finally:
        if judge is not None:
            await judge.aclose()


def _open(out: Path) -> set[str]:
    return {i.id for i in review.open_items(out)}


def summary(report: RunReport, paths: list[Path]) -> str:
    """What the console shows: each target's suites, the ranking and the verdict."""
    lines = []
    many = len(report.targets) > 1 or report.baseline is not None
    for t in report.targets:
        if many:
            cost = t.figures.get("costUsd")
            lines.append(
                f"target     {t.name} ({t.model}): {t.verdict}, rank {t.rank}"
                + (f", estimated cost ${cost:.6f}" if cost is not None else "")
            )
        for r in t.suites:
            key = {k: round(v, 3) for k, v in r.figures.items() if k in _SHOWN}
            line = f"{r.suite:10} {r.verdict:7} {json.dumps(key)}"
            if r.decision:
                line += f"\n           decision: {r.decision}"
            lines.append(line + (f"\n           {_flat(r.reason, 300)}" if r.reason else ""))
    if many:
        lines.append(f"winner     {report.winner or 'none'}")
    if report.review_open:
        lines.append(f"review     {report.review_open} item(s) open: dayzero gauntlet review list")
    lines.append(f"verdict    {report.verdict} (exit {report.exit_code})")
    if report.reason:
        lines.append(f"           {_flat(report.reason, 300)}")
    lines.append("reports    " + " ".join(str(p) for p in paths))
    return "\n".join(lines) + "\n"


def review_main(args: argparse.Namespace) -> int:
    """``dayzero gauntlet review list|record|apply``: 0 done, 2 bad input."""
    out = Path(args.out)
    try:
        if args.review_action == "list":
            items, decisions = review.read(out)
            shown = [i for i in items.values() if args.all or i.id not in decisions]
            for i in shown:
                last = review.latest(decisions).get(i.id)
                state = f"{last.verdict} by {last.by}" if last else f"open ({i.provisional})"
                lines = [
                    f"{i.id}  {i.kind:8} {i.why:7} {i.target}/{i.suite}/{i.case}: {state}",
                    f"    prompt: {_flat(i.prompt)}",
                    *(f"    {k}: {_flat(v)}" for k, v in i.answers.items()),
                    *(f"    judge: {_flat(j)}" for j in i.judge),
                ]
                sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.write(f"{len(shown)} item(s){'' if args.all else ' open'}\n")
            return 0
        if args.review_action == "record":
            d = review.record(out, args.item, args.verdict, args.by, args.note)
            sys.stdout.write(f"recorded {d.verdict} on {d.id} by {d.by} at {d.at.isoformat()}\n")
            return 0
        report = read_report(out)
        _, decisions = review.read(out)
        report = rejudge(report, review.latest(decisions), open_ids=_open(out))
        sys.stdout.write(summary(report, write_all(report, out)))
    except review.ReviewError as e:
        sys.stderr.write(f"dayzero gauntlet review {args.review_action}: error: {e}\n")
        return EXIT_USAGE
    except FileNotFoundError as e:
        sys.stderr.write(f"dayzero gauntlet review: error: --out: {e.filename} not found\n")
        return EXIT_USAGE
    return report.exit_code


def _flat(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_SHOWN = {
    "passRate",
    "p50Seconds",
    "p95Seconds",
    "maxSeconds",
    "ttftP50Seconds",
    "perTokenP50Seconds",
    "throttled",
    "badPeriods",
    "refusalRate",
    "judgeDecided",
    "keywordDecided",
    "humanDecided",
    "meanScore",
    "meanDifference",
    "differenceLower95",
    "mcnemarP",
    "minDetectableEffect",
    "judgeWins",
    "judgeLosses",
    "judgeTies",
}
