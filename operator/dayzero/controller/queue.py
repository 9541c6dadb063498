"""A work queue in the controller-runtime mould: deduplicated keys, a worker pool, requeue-after
and per-key exponential backoff.

Why not kopf daemons or timers: kopf puts a finalizer on every object that has one, so deleting a
ModelDeployment would hang whenever the operator is down. Watch events (which need no finalizer)
feed this queue instead, and each reconcile says when it wants to look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
Worker = Callable[[Key], float | None]

RECONCILE_SECONDS = Histogram(
    "dayzero_reconcile_seconds",
    "Duration of one reconcile.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("dayzero_reconcile_errors_total", "Reconciles that raised.", ["kind"])
QUEUE_DEPTH = Gauge("dayzero_queue_depth", "Keys waiting to be reconciled.")
MAX_BACKOFF = 60.0


class WorkQueue:
    """Keys wait until due; a key is never processed by two workers at once."""

    def __init__(self, worker: Worker, workers: int = 8) -> None:
        self._worker = worker
        self._workers = workers
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._busy: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._wake = asyncio.Event()
        self.durations: list[float] = []

    def add(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` after ``delay`` seconds (sooner if it is already due sooner)."""
        if key in self._busy and delay == 0.0:
            self._dirty.add(key)
            return
        due = time.monotonic() + delay
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        QUEUE_DEPTH.set(len(self._due))
        self._wake.set()

    def forget(self, key: Key) -> None:
        """Drop a deleted object's key and its backoff state."""
        self._due.pop(key, None)
        self._failures.pop(key, None)
        QUEUE_DEPTH.set(len(self._due))

    def __len__(self) -> int:
        return len(self._due)

    async def _next(self) -> Key:
        while True:
            now = time.monotonic()
            while self._heap:
                due, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # superseded by an earlier add, or forgotten
                    continue
                if due > now:
                    break
                heapq.heappop(self._heap)
                if key in self._busy:
                    # Due while a worker holds it: run it again as soon as that worker is done.
                    del self._due[key]
                    self._dirty.add(key)
                    continue
                del self._due[key]
                QUEUE_DEPTH.set(len(self._due))
                return key
            self._wake.clear()
            timeout = max(0.0, self._heap[0][0] - now) if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _run_one(self, key: Key) -> None:
        self._busy.add(key)
        began = time.perf_counter()
        try:
            requeue = await asyncio.to_thread(self._worker, key)
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            RECONCILE_ERRORS.labels(key[0]).inc()
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
            log.exception("reconcile of %s/%s/%s failed; retrying in %.1fs", *key, delay)
            requeue = delay
        else:
            self._failures.pop(key, None)
        finally:
            elapsed = time.perf_counter() - began
            RECONCILE_SECONDS.labels(key[0]).observe(elapsed)
            self.durations.append(elapsed)
            if len(self.durations) > 100_000:
                del self.durations[:50_000]
            self._busy.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        elif requeue is not None:
            self.add(key, requeue)

    async def run(self) -> None:
        """Process keys until cancelled."""
        slots = asyncio.Semaphore(self._workers)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                key = await self._next()
                self._busy.add(key)
                task = asyncio.create_task(self._run_one(key))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in tasks:
                task.cancel()
