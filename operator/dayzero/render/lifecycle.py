"""Pure decisions about a ModelDeployment's life: why an engine died, whether to step down the
fallback ladder, and conditions that keep their transition time while nothing changes (for every
kind's status).

The controller gathers pods and Jobs, then asks these functions; nothing here talks to the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from ..api.v1alpha1 import Condition
from ..api.v1alpha1.base import StatusBase

EngineRung = Literal["vllm", "vllm-transformers", "transformers"]
LADDER: tuple[EngineRung, ...] = ("vllm", "vllm-transformers", "transformers")

FailureReason = Literal[
    "UnsupportedArchitecture",
    "MissingKernel",
    "EngineLoadCrash",
    "OutOfMemory",
    "CrashLoop",
]

# Tell-tale messages of a model the engine cannot load; only these justify the next rung.
_LOAD_FAILURES: tuple[tuple[FailureReason, tuple[str, ...]], ...] = (
    (
        "UnsupportedArchitecture",
        (
            r"[Mm]odel architectures? \[.*\] (are|is) not supported",
            r"architectures? .* (are|is) not supported",
            r"Unrecognized configuration class",
            r"does not recognize this architecture",
            r"[Nn]o model (class|implementation) (found )?for",
            r"requires you to execute the configuration file",
        ),
    ),
    (
        "MissingKernel",
        (
            r"No module named '(flash_attn|flashinfer|vllm\._\w+|\w+_C|triton\w*)'",
            r"undefined symbol",
            r"no kernel image is available for execution",
            r"[Kk]ernel .* (is )?not (available|implemented|supported)",
            r"NotImplementedError: .*(kernel|attention)",
        ),
    ),
    (
        "EngineLoadCrash",
        (
            r"Error in model execution",
            r"Failed to load (the )?model",
            r"(KeyError|RuntimeError): .*(weight|state_dict|parameter)",
            r"size mismatch for",
        ),
    ),
)
_OOM = (r"CUDA out of memory", r"OutOfMemoryError", r"torch\.cuda\.OutOfMemory", r"OOMKilled")
STEP_DOWN: frozenset[str] = frozenset(
    {"UnsupportedArchitecture", "MissingKernel", "EngineLoadCrash"}
)


@dataclass(frozen=True)
class Failure:
    """A classified engine failure."""

    reason: FailureReason
    message: str

    @property
    def steps_down(self) -> bool:
        """Whether the next rung of the ladder may load the model where this one could not."""
        return self.reason in STEP_DOWN


def _first_line_matching(text: str, pattern: str) -> str | None:
    for line in text.splitlines():
        if re.search(pattern, line):
            return line.strip()[:500]
    return None


def classify_termination(
    *, reason: str | None, message: str | None, exit_code: int | None
) -> Failure:
    """Classify a terminated engine container from its termination message and exit code.

    Out-of-memory is never a reason to step down: a slower engine needs at least as much memory.
    An unrecognised crash is a CrashLoop, surfaced as such rather than guessed at.
    """
    text = message or ""
    if reason == "OOMKilled" or any(re.search(p, text) for p in _OOM):
        line = next((m for p in _OOM if (m := _first_line_matching(text, p))), None)
        return Failure("OutOfMemory", line or f"container OOMKilled (exit code {exit_code})")
    for failure, patterns in _LOAD_FAILURES:
        for pattern in patterns:
            line = _first_line_matching(text, pattern)
            if line:
                return Failure(failure, line)
    last = text.strip().splitlines()[-1][:500] if text.strip() else ""
    detail = f": {last}" if last else ""
    return Failure("CrashLoop", f"engine exited with code {exit_code}{detail}")


def first_rung(kind: str) -> EngineRung:
    """Where the ladder starts for spec.engine.kind."""
    return "transformers" if kind == "transformers" else "vllm"


def next_rung(
    current: EngineRung,
    failure: Failure,
    *,
    kind: str,
    allow_fallback: bool,
    attempts: int,
    max_attempts: int,
    nodes: int,
) -> tuple[EngineRung | None, str]:
    """The rung to try after ``failure`` on ``current``, or None, with the reason either way."""
    if not failure.steps_down:
        return None, f"{failure.reason} is not a load failure another engine could fix"
    if kind != "auto" or not allow_fallback:
        return None, f"fallback is off (engine.kind={kind}, allowFallback={allow_fallback})"
    if attempts >= max_attempts:
        return None, f"gave up after {attempts} engine attempts (maxFallbackAttempts)"
    index = LADDER.index(current)
    if index + 1 >= len(LADDER):
        return None, "no engine is left on the fallback ladder"
    candidate = LADDER[index + 1]
    if candidate == "transformers" and nodes > 1:
        return None, (
            f"the Transformers engine serves on one node, and the plan needs {nodes} nodes"
        )
    return candidate, f"{current} could not load the model ({failure.reason}); trying {candidate}"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """The condition list with ``type_`` set; the transition time moves only when status does."""
    value: Literal["True", "False", "Unknown"] = (
        "Unknown" if status is None else ("True" if status else "False")
    )
    previous = next((c for c in conditions if c.type == type_), None)
    since = (
        previous.last_transition_time
        if previous is not None and previous.status == value and previous.last_transition_time
        else now
    )
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:32768],
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]


S = TypeVar("S", bound=StatusBase)


class StatusDraft(Generic[S]):
    """The status a reconcile builds on the previous one; conditions keep their transition times,
    and the events it decides on wait in ``events`` until the status is written."""

    def __init__(self, previous: S, generation: int, now: datetime) -> None:
        self.previous = previous
        self.status: S = previous.model_copy(deep=True)
        self.status.observed_generation = generation
        self.generation = generation
        self.now = now
        self.events: list[tuple[str, str, str]] = []

    def set(self, type_: str, ok: bool | None, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            ok,
            reason,
            message,
            generation=self.generation,
            now=self.now,
        )

    def reason(self, type_: str) -> str | None:
        """The reason of condition ``type_`` as set so far, or None when it is not set."""
        found = next((c for c in self.status.conditions if c.type == type_), None)
        return found.reason if found else None


def condition_changes(before: list[Condition], after: list[Condition]) -> list[Condition]:
    """Conditions whose status or reason changed: each deserves an Event."""
    old = {c.type: (c.status, c.reason) for c in before}
    return [c for c in after if old.get(c.type) != (c.status, c.reason)]
