"""Quality: scored answers on a small internal JSONL dataset whose sha256 goes in the report.

One item a line: ``{"id": "...", "prompt": "...", "scorer": "exact|regex|contains|json-schema",
"expected": ...}`` (``expected`` is a JSON schema for ``json-schema``; ``max_tokens`` is
optional). Each item scores 0 or 1; the mean must reach ``suites.quality.minScore``. The judge
rubric scorer needs the judge model and is a later step.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .client import ChatClient
from .results import Item, SuiteReport, excerpt
from .spec import RunSpec

SCORERS = ("exact", "regex", "contains", "json-schema")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class DatasetError(ValueError):
    """The dataset cannot be used: the message names the line."""


@dataclass(frozen=True)
class Case:
    """One dataset item."""

    id: str
    prompt: str
    scorer: str
    expected: Any
    max_tokens: int


def load(path: str | Path) -> tuple[list[Case], str]:
    """The dataset's items and the sha256 of its bytes."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}") from e
    cases: list[Case] = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"line {n}: not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise DatasetError(f"line {n}: want an object")
        case = _case(doc, n)
        if case.scorer == "regex":
            try:
                re.compile(case.expected)
            except re.error as e:
                raise DatasetError(f"line {n}: bad regex: {e}") from e
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path} has no items")
    return cases, hashlib.sha256(raw).hexdigest()


def _case(doc: dict[str, Any], n: int) -> Case:
    scorer = doc.get("scorer")
    if scorer not in SCORERS:
        raise DatasetError(
            f"line {n}: scorer {scorer!r} unknown (have {', '.join(SCORERS)}; the judge "
            "rubric is not implemented yet)"
        )
    if not isinstance(doc.get("prompt"), str) or not doc["prompt"]:
        raise DatasetError(f"line {n}: prompt must be a non-empty string")
    expected = doc.get("expected")
    if scorer == "json-schema":
        if not isinstance(expected, dict):
            raise DatasetError(f"line {n}: expected must be a JSON schema object")
        try:
            jsonschema.validators.validator_for(expected).check_schema(expected)
        except jsonschema.SchemaError as e:
            raise DatasetError(f"line {n}: expected is not a valid schema: {e.message}") from e
    elif not isinstance(expected, str):
        raise DatasetError(f"line {n}: expected must be a string for {scorer}")
    max_tokens = doc.get("max_tokens", 128)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise DatasetError(f"line {n}: max_tokens must be a positive integer")
    return Case(str(doc.get("id", f"line-{n}")), doc["prompt"], scorer, expected, max_tokens)


def score(case: Case, answer: str) -> str | None:
    """Why the answer misses; None when it scores 1."""
    text = answer.strip()
    if case.scorer == "exact":
        return None if text == case.expected.strip() else f"not exactly {case.expected!r}"
    if case.scorer == "regex":
        return None if re.search(case.expected, text) else f"no match for /{case.expected}/"
    if case.scorer == "contains":
        hit = case.expected.lower() in text.lower()
        return None if hit else f"does not contain {case.expected!r}"
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return "answer is not JSON"
    try:
        jsonschema.validate(value, case.expected)
    except jsonschema.ValidationError as e:
        return f"JSON does not match the schema: {e.message}"
    return None


async def run(client: ChatClient, spec: RunSpec) -> SuiteReport:
    """Ask every item once and score it."""
    if not spec.harness.dataset:
        return SuiteReport(suite="quality", verdict="Error", reason="no dataset given")
    cases, digest = load(spec.harness.dataset)
    sampling = spec.sampling.model_dump(exclude_none=True)
    outcomes = await client.chat_many(
        [
            {
                "messages": [{"role": "user", "content": c.prompt}],
                "max_tokens": c.max_tokens,
                **sampling,
            }
            for c in cases
        ]
    )
    items = []
    for case, o in zip(cases, outcomes, strict=True):
        miss = (o.error or f"HTTP {o.status}") if not o.ok else score(case, o.text)
        items.append(
            Item(
                name=f"{case.id} ({case.scorer})",
                passed=miss is None,
                reasons=[miss] if miss else [],
                status=o.status,
                seconds=o.total,
                answer=excerpt(o.text),
            )
        )
    mean = sum(i.passed for i in items) / len(items)
    figures = {"items": float(len(items)), "meanScore": mean}
    minimum = spec.suites.quality.min_score
    if mean >= minimum:
        return SuiteReport(suite="quality", verdict="Pass", figures=figures, items=items)
    missed = " | ".join(f"{i.name}: {i.reasons[0]}" for i in items if not i.passed)
    reason = f"mean score {mean:.2f} < {minimum:.2f} on dataset sha256:{digest[:12]}: {missed}"
    return SuiteReport(
        suite="quality", verdict="Fail", reason=reason[:600], figures=figures, items=items
    )
