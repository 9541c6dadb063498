"""``dayzero gauntlet run``: flags (or a spec file) to a ``RunSpec``, one run, three report files.

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
from typing import Any

import yaml
from pydantic import ValidationError

from . import quality
from .report import write_all
from .run import EXIT_USAGE, run
from .spec import ALL_SUITES, IMPLEMENTED, RunSpec

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
        # The API enables suites this harness lacks by default; without a choice, run what it has.
        default = [n for n in IMPLEMENTED if n != "quality" or args.dataset]
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
    for dotted, value in values.items():
        _set(doc, dotted, value)
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env: ${args.api_key_env} is not set")
        doc["api_key"] = key
    for field in ("endpoint", "model"):
        if not doc.get(field):
            raise UsageError(f"{FLAGS[field]} is required (or {field} in --spec)")
    try:
        spec = RunSpec.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        name = FLAGS.get(where, f"field {where}")
        raise UsageError(f"{name}: {first['msg']}") from e
    if "quality" in spec.enabled():
        if not spec.harness.dataset:
            raise UsageError("--dataset: the quality suite needs a JSONL dataset")
        try:
            _, digest = quality.load(spec.harness.dataset)
        except quality.DatasetError as e:
            raise UsageError(f"--dataset: {e}") from e
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
    return spec


def main(args: argparse.Namespace) -> int:
    """Run the gauntlet and write the reports; the exit code is the verdict's."""
    try:
        spec = build_spec(args)
    except UsageError as e:
        sys.stderr.write(f"dayzero gauntlet run: error: {e}\n")
        return EXIT_USAGE
    report = asyncio.run(run(spec))
    paths = write_all(report, Path(args.out))
    lines = []
    for r in report.results:
        key = {k: round(v, 3) for k, v in r.figures.items() if k in _SHOWN}
        line = f"{r.suite:10} {r.verdict:7} {json.dumps(key)}"
        lines.append(line + (f"\n           {r.reason}" if r.reason else ""))
    lines.append(f"verdict    {report.verdict} (exit {report.exit_code})")
    if report.reason:
        lines.append(f"           {report.reason}")
    lines.append("reports    " + " ".join(str(p) for p in paths))
    sys.stdout.write("\n".join(lines) + "\n")
    return report.exit_code


_SHOWN = {
    "passRate",
    "p50Seconds",
    "p95Seconds",
    "maxSeconds",
    "ttftP50Seconds",
    "perTokenP50Seconds",
    "throttled",
    "badPeriods",
}
