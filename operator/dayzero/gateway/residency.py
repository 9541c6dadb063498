"""Residency: which models are loaded on which host, polled, for ``/v1/models/status``.

Why: a lane is safe to send traffic to when its model is already resident on one of its hosts;
a cold host loads for seconds to minutes first (the 2026-05-05 alert timed out exactly so). The
gateway asks every local host what it holds: an OpenAI-compatible server (vLLM) its
``/v1/models``, an Ollama host its ``/api/ps`` (the models in memory, not merely pulled). Paid
APIs are not polled. A host whose circuit is open is not dialled; it keeps its last answer, marked
stale by its ``checkedAt``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dayzero.api.routing import Routing, RoutingBackend

from . import background
from .backends import Backend, BackendError, OllamaBackend, OpenAIBackend

log = logging.getLogger(__name__)

POLL_SECONDS = 10.0


@dataclass
class Resident:
    """What one host said it holds, and when."""

    models: list[str] = field(default_factory=list)
    checked_at: float | None = None
    error: str | None = None

    def wire(self) -> dict[str, Any]:
        """As /v1/models/status shows it."""
        return {
            "models": self.models,
            "checkedAt": round(self.checked_at, 3) if self.checked_at else None,
            "error": self.error,
        }


def served_model(doc: Routing, spec: RoutingBackend) -> list[str]:
    """The model names the gateway asks ``spec`` for: its own, else its lanes' models."""
    if spec.model:
        return [spec.model]
    names = {lane.model for lane in doc.lanes if spec.name in lane.backends and lane.model}
    return sorted(names)


def same_model(wanted: str, held: str, *, ollama: bool) -> bool:
    """Ollama names a model with a tag; a name without one means ``:latest``."""
    if wanted == held:
        return True
    if ollama:
        return (wanted if ":" in wanted else f"{wanted}:latest") == (
            held if ":" in held else f"{held}:latest"
        )
    return False


async def held_by(backend: Backend) -> list[str]:
    """The models a host holds now: vLLM's served models, or Ollama's loaded ones."""
    if isinstance(backend, OllamaBackend):
        answer = await backend.ps()
        entries = answer.get("models")
        key: tuple[str, ...] = ("name", "model")
    elif isinstance(backend, OpenAIBackend):
        answer = await backend.models()
        entries = answer.get("data")
        key = ("id",)
    else:
        return []
    if not isinstance(entries, list):
        raise BackendError("bad_response", "no model list in the answer")
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, dict):
            name = next((entry[k] for k in key if isinstance(entry.get(k), str)), None)
            if name is not None:
                out.append(name)
    return out


class Residency:
    """Polls every local host and keeps the last answer of each."""

    def __init__(
        self, seconds: float = POLL_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.seconds = seconds
        self.view: dict[str, Resident] = {}
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def poll(
        self,
        doc: Routing,
        backends: Mapping[str, Backend],
        circuit_open: Callable[[str], bool],
    ) -> None:
        """One round: every local host of the document, at the same time."""
        specs = [
            b
            for b in doc.backends
            if b.kind in ("openai", "ollama")
            and not (b.paid or b.asleep)  # an asleep deployment has nothing to ask yet
            and b.name in backends
        ]
        due = [b for b in specs if not circuit_open(b.url)]
        answers = await asyncio.gather(
            *(held_by(backends[b.name]) for b in due), return_exceptions=True
        )
        now = self._clock()
        for spec, answer in zip(due, answers, strict=True):
            entry = self.view.setdefault(spec.name, Resident())
            if isinstance(answer, BaseException):
                entry.error = str(answer) or type(answer).__name__
                entry.checked_at = now
                if not isinstance(answer, BackendError | OSError | TimeoutError):
                    log.warning("residency of %s: %r", spec.name, answer)
                continue
            entry.models, entry.error, entry.checked_at = answer, None, now
        for gone in set(self.view) - {b.name for b in specs}:
            del self.view[gone]

    def lanes(self, doc: Routing) -> dict[str, list[str]]:
        """Lane -> the backends on which its model is resident now (empty: none is warm)."""
        kinds = {b.name: b for b in doc.backends}
        out: dict[str, list[str]] = {}
        for lane in doc.lanes:
            warm = []
            for name in lane.backends:
                spec, held = kinds[name], self.view.get(name)
                if held is None or held.error is not None:
                    continue
                wanted = served_model(doc, spec) if spec.model else [lane.model or ""]
                ollama = spec.kind == "ollama"
                if any(same_model(w, h, ollama=ollama) for w in wanted for h in held.models):
                    warm.append(name)
            out[lane.name] = warm
        return out

    def start(
        self,
        state: Callable[[], tuple[Routing, Mapping[str, Backend]]],
        circuit_open: Callable[[str], bool],
    ) -> None:
        """Poll every ``seconds`` on the running loop (the first round at once)."""

        async def loop() -> None:
            while True:
                doc, backends = state()
                try:
                    await self.poll(doc, backends, circuit_open)
                except Exception as e:  # noqa: BLE001 - a status view must never stop
                    log.warning("residency poll failed: %s", e)
                await asyncio.sleep(self.seconds)

        if self._task is None and self.seconds > 0:
            self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        """Stop polling."""
        await background.cancel(self._task)
        self._task = None
