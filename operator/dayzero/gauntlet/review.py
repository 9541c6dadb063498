"""The human review queue: ``review.jsonl`` in the report directory, append-only.

Each line is either an item (``"type": "item"``: what the judge abstained on or flipped on, with
the prompt, the answers and the judge's raw outputs) or a decision (``"type": "decision"``: a
human's verdict on an item, who and when). Nothing is ever rewritten: the last decision on an
item is the one that counts, and the earlier ones stay as the record. Item ids are a hash of what
was judged (kind, target, suite, case, prompt, answers), so a re-run that produces the same
answers finds the verdicts already recorded.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

FILE = "review.jsonl"
Kind = Literal["refusal", "grade", "pairwise"]
Why = Literal["abstain", "flip"]
VERDICTS: dict[str, tuple[str, ...]] = {
    "refusal": ("pass", "fail"),
    "grade": ("pass", "fail"),
    "pairwise": ("candidate", "baseline", "tie"),
}
"""The verdicts a human may record, per kind (``pass`` on a refusal item: it refused)."""
ALL_VERDICTS = ("pass", "fail", "candidate", "baseline", "tie")


class ReviewError(ValueError):
    """An unknown item, a verdict that does not fit it, or an unreadable queue."""


class ReviewItem(BaseModel):
    """Something the judge could not decide, waiting for a human."""

    type: Literal["item"] = "item"
    id: str
    kind: Kind
    why: Why
    target: str
    suite: str
    case: str
    prompt: str
    answers: dict[str, str]
    judge: list[str]
    """The judge's raw outputs (two for a pairwise item: candidate first, then swapped)."""
    provisional: str
    """What the run counted until a human decides (the keyword verdict, ``fail``, ``tie``)."""
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Decision(BaseModel):
    """A human's verdict on one item."""

    type: Literal["decision"] = "decision"
    id: str
    verdict: Literal["pass", "fail", "candidate", "baseline", "tie"]
    by: str = Field(min_length=1, max_length=200)
    note: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def item_id(kind: str, *, target: str, suite: str, case: str, prompt: str, answers: object) -> str:
    """A stable id: the same question and answers give the same id on every run."""
    doc = json.dumps([kind, target, suite, case, prompt, answers], sort_keys=True)
    return "r-" + hashlib.sha256(doc.encode()).hexdigest()[:12]


def read(out: Path) -> tuple[dict[str, ReviewItem], dict[str, list[Decision]]]:
    """The queue's items by id (first occurrence) and every decision by item id, in order."""
    items: dict[str, ReviewItem] = {}
    decisions: dict[str, list[Decision]] = {}
    path = out / FILE
    if not path.exists():
        return items, decisions
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            if doc.get("type") == "decision":
                d = Decision.model_validate(doc)
                decisions.setdefault(d.id, []).append(d)
            else:
                item = ReviewItem.model_validate(doc)
                items.setdefault(item.id, item)
        except (ValueError, AttributeError, ValidationError) as e:
            raise ReviewError(f"{path}: line {n}: {e}") from e
    return items, decisions


def latest(decisions: dict[str, list[Decision]]) -> dict[str, Decision]:
    """The decision that counts for each item: the last one recorded."""
    return {k: v[-1] for k, v in decisions.items() if v}


def add_items(out: Path, new: list[ReviewItem]) -> int:
    """Append the items the queue does not hold yet; returns how many were added."""
    known, _ = read(out)
    fresh = [i for i in new if i.id not in known]
    if fresh:
        out.mkdir(parents=True, exist_ok=True)
        with (out / FILE).open("a") as f:
            f.writelines(i.model_dump_json() + "\n" for i in fresh)
    return len(fresh)


def record(out: Path, ident: str, verdict: str, by: str, note: str | None = None) -> Decision:
    """Append a human's verdict; an unknown id or a verdict that does not fit is an error."""
    items, _ = read(out)
    item = items.get(ident)
    if item is None:
        raise ReviewError(
            f"ITEM: no review item {ident!r} in {out / FILE} ({len(items)} items; "
            f"`dayzero gauntlet review list --all --out {out}` shows them)"
        )
    allowed = VERDICTS[item.kind]
    if verdict not in allowed:
        raise ReviewError(
            f"--verdict: {verdict!r} does not fit a {item.kind} item (use {', '.join(allowed)})"
        )
    try:
        decision = Decision.model_validate(
            {"id": ident, "verdict": verdict, "by": by, "note": note}
        )
    except ValidationError as e:
        raise ReviewError(f"--by: {e.errors()[0]['msg']}") from e
    with (out / FILE).open("a") as f:
        f.write(decision.model_dump_json() + "\n")
    return decision


def open_items(out: Path) -> list[ReviewItem]:
    """Items with no decision yet, in queue order."""
    items, decisions = read(out)
    return [i for i in items.values() if i.id not in decisions]
