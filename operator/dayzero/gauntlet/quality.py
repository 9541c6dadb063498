"""Quality: scored answers on a small internal JSONL dataset whose sha256 goes in the report.

One item a line: ``{"id": "...", "prompt": "...", "scorer": "exact|regex|contains|json-schema",
"expected": ...}`` (``expected`` is a JSON schema for ``json-schema``; ``max_tokens`` is
optional), or ``{"id", "prompt", "scorer": "judge", "rubric": "...", "reference": "..."}``: the
judge grades the answer against the rubric with the reference answer, and its score (0..1)
counts. The other scorers score 0 or 1; the mean must reach ``suites.quality.minScore``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .client import ChatClient, Outcome
from .judge import Judge
from .results import Item, SuiteReport, excerpt
from .spec import RunSpec

SCORERS = ("exact", "regex", "contains", "json-schema", "judge")
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
    rubric: str = ""
    reference: str = ""

    @property
    def name(self) -> str:
        """The item's name in the reports (and the key that pairs it across targets)."""
        return f"{self.id} ({self.scorer})"


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
        raise DatasetError(f"line {n}: scorer {scorer!r} unknown (have {', '.join(SCORERS)})")
    if not isinstance(doc.get("prompt"), str) or not doc["prompt"]:
        raise DatasetError(f"line {n}: prompt must be a non-empty string")
    expected = doc.get("expected")
    if scorer == "judge":
        for key in ("rubric", "reference"):
            if not isinstance(doc.get(key), str) or not doc[key].strip():
                raise DatasetError(f"line {n}: {key} must be a non-empty string for judge")
    elif scorer == "json-schema":
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
    return Case(
        str(doc.get("id", f"line-{n}")),
        doc["prompt"],
        scorer,
        expected,
        max_tokens,
        rubric=str(doc.get("rubric") or ""),
        reference=str(doc.get("reference") or (expected if isinstance(expected, str) else "")),
    )


def needs_judge(cases: list[Case]) -> bool:
    """Whether any item is scored by the judge."""
    return any(c.scorer == "judge" for c in cases)


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


async def run(client: ChatClient, spec: RunSpec, judge: Judge | None = None) -> SuiteReport:
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
    items = await asyncio.gather(
        *(_item(c, o, judge) for c, o in zip(cases, outcomes, strict=True))
    )
    return decide(list(items), spec.suites.quality.min_score, digest)


async def _item(case: Case, o: Outcome, judge: Judge | None) -> Item:
    item = Item(
        name=case.name,
        passed=False,
        status=o.status,
        seconds=o.total,
        answer=excerpt(o.text),
        full_answer=o.text,
        decided_by=case.scorer,
    )
    if not o.ok:
        item.reasons = [o.error or f"HTTP {o.status}"]
        return item
    if case.scorer != "judge":
        miss = score(case, o.text)
        item.passed, item.reasons = miss is None, [miss] if miss else []
        return item
    if judge is None:
        item.reasons = ["the judge scorer needs a judge"]
        return item
    v = await judge.grade(case.prompt, o.text, case.rubric, case.reference)
    if v.abstained:
        item.score = 0.0
        item.review = judge.queue(
            kind="grade",
            why="abstain",
            suite="quality",
            case=case.name,
            prompt=case.prompt,
            answers={"answer": o.text},
            judge=[v.raw],
            provisional="fail",
        )
        item.reasons = [f"judge {v.reason}; counted as fail until review {item.review}"]
        return item
    item.passed = v.verdict == "pass"
    item.score = v.score if v.score is not None else float(item.passed)
    item.reasons = [] if item.passed else [f"judge: {v.reason or 'fail'}"]
    return item


def decide(items: list[Item], minimum: float, digest: str | None = None) -> SuiteReport:
    """The suite's verdict from its items (also after a human decided some of them)."""
    mean = sum(i.value for i in items) / len(items) if items else 0.0
    figures = {"items": float(len(items)), "meanScore": mean}
    if any(i.decided_by in ("judge", "human") or i.review for i in items):
        figures["reviewItems"] = float(sum(i.review is not None for i in items))
    if items and mean >= minimum:
        return SuiteReport(suite="quality", verdict="Pass", figures=figures, items=items)
    missed = " | ".join(f"{i.name}: {i.reasons[0]}" for i in items if not i.passed and i.reasons)
    on = f" on dataset sha256:{digest[:12]}" if digest else ""
    reason = f"mean score {mean:.2f} < {minimum:.2f}{on}: {missed}"
    return SuiteReport(
        suite="quality", verdict="Fail", reason=reason[:600], figures=figures, items=items
    )
