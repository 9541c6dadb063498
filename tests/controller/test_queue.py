"""The work queue: dedupe, requeue-after, backoff, one worker per key."""

import asyncio
import threading
import time

import pytest

from dayzero.controller.queue import WorkQueue

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def run_for(queue: WorkQueue, seconds: float) -> None:
    async def main() -> None:
        task = asyncio.create_task(queue.run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_duplicate_adds_run_once():
    seen: list[tuple[str, str, str]] = []
    queue = WorkQueue(seen.append, workers=2)
    for _ in range(5):
        queue.add(("K", "ns", "a"))
    queue.add(("K", "ns", "b"))
    run_for(queue, 0.2)
    assert sorted(seen) == [("K", "ns", "a"), ("K", "ns", "b")]


def test_requeue_after_and_stop_on_none():
    calls: list[float] = []

    def work(key):
        calls.append(time.monotonic())
        return 0.1 if len(calls) < 3 else None

    queue = WorkQueue(work)
    queue.add(("K", "ns", "a"))
    run_for(queue, 0.6)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.09


def test_errors_back_off_and_do_not_stop_others():
    attempts = {"bad": 0, "good": 0}

    def work(key):
        attempts[key[2]] += 1
        if key[2] == "bad":
            raise RuntimeError("boom")

    queue = WorkQueue(work)
    queue.add(("K", "ns", "bad"))
    queue.add(("K", "ns", "good"))
    run_for(queue, 0.9)
    # 0 s, +0.5 s, then +1 s: two tries in 0.9 s, not a hot loop.
    assert attempts == {"bad": 2, "good": 1}


def test_a_key_never_runs_twice_at_once():
    active: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()

    def work(key):
        with lock:
            if key[2] in active:
                overlaps.append(key[2])
            active.add(key[2])
        time.sleep(0.05)
        with lock:
            active.discard(key[2])

    queue = WorkQueue(work, workers=4)

    async def main() -> None:
        task = asyncio.create_task(queue.run())
        for _ in range(10):
            queue.add(("K", "ns", "a"))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert overlaps == []
