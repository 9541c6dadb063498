"""Async lanes: a request accepted now (202 and an id) and answered later (``GET``).

Why: work that takes minutes (a 14B model on a busy host, a deep analysis) should hold neither a
client connection nor a sync slot. The client gets an id at once and polls. In memory the jobs
live as long as the process; with Redis the queue and the results are shared by every replica,
so work outlives the replica that accepted it: a worker holds a lease on its job and renews it
while it runs, and a job whose lease lapses (the replica crashed or restarted) is put back on
the queue for any replica to take. A job whose attempt fails is retried from the lane's next
backend, so a host that broke one attempt is not the first tried by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed"]
ASYNC_PATH = "/v1/async/chat/completions"
RESULT_PATH = "/v1/async/"
REDIS_PREFIX = "dayzero:async:"
CLAIM_POLL_SECONDS = 0.1


@dataclass
class Job:
    """One queued request and what became of it."""

    id: str
    lane: str
    project: str
    request: dict[str, Any]
    """The OpenAI chat request, as the client sent it."""
    status: JobStatus = "queued"
    attempts: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    backend: str | None = None
    """The backend that answered (or the last one that failed)."""
    result_status: int | None = None
    result: Any = None
    """The answer's JSON (a chat completion, or an OpenAI error body)."""
    error: str | None = None
    history: list[str] = field(default_factory=list)
    """Why each earlier attempt ended (``attempt 1 on gw-a: ...``)."""
    replica: str | None = None
    """The replica that holds (or last held) the job."""

    def wire(self) -> dict[str, Any]:
        """What ``GET /v1/async/{id}`` shows."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "async.job",
            "status": self.status,
            "lane": self.lane,
            "attempts": self.attempts,
            "created": int(self.created),
            "updated": int(self.updated),
            "backend": self.backend,
        }
        if self.status in ("succeeded", "failed"):
            out["resultStatus"] = self.result_status
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        if self.history:
            out["history"] = self.history
        return out

    def dumps(self) -> str:
        """The job as stored in Redis."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | bytes) -> Job:
        """A job read back from Redis."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


@dataclass(frozen=True)
class Attempt:
    """What one run of a job through its lane gave."""

    status: int
    body: bytes
    backend: str | None
    error: str | None = None

    @property
    def retryable(self) -> bool:
        """Another attempt might succeed: every backend failed, timed out, was open, or the lane
        was full. A 2xx is done and any other 4xx is the request's own fault."""
        return self.status in (429, 499) or self.status >= 500


class StoreUnavailableError(Exception):
    """The job store (Redis) did not answer: the client should retry shortly."""


Runner = Callable[[Job], Awaitable[Attempt]]
"""Runs a job once through its lane, starting at backend ``(attempts - 1) % len(backends)``."""


class Store(Protocol):
    """Where jobs, the queue and the leases live."""

    shared: bool

    async def put(self, job: Job) -> None:
        """Store a new job and queue it."""

    async def get(self, job_id: str) -> Job | None:
        """A job by id (None: unknown or expired)."""

    async def save(self, job: Job) -> None:
        """Write back a job's progress."""

    async def claim(self, replica: str, wait: float) -> Job | None:
        """The next queued job, leased to this replica, or None after ``wait`` seconds."""

    async def renew(self, job: Job) -> None:
        """Extend this replica's lease on a job it runs."""

    async def finish(self, job: Job) -> None:
        """Store the final state (kept for the TTL) and drop the lease."""

    async def reap(self) -> int:
        """Put back jobs whose lease lapsed; how many."""


class MemoryStore:
    """Jobs in this process only: lost when it stops (documented; use Redis to keep them)."""

    shared = False

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._jobs: dict[str, Job] = {}
        self._expires: dict[str, float] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._ttl = ttl_seconds
        self._clock = clock

    async def put(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._queue.put_nowait(job.id)

    async def get(self, job_id: str) -> Job | None:
        self._expire()
        return self._jobs.get(job_id)

    async def save(self, job: Job) -> None:
        self._jobs[job.id] = job

    async def claim(self, replica: str, wait: float) -> Job | None:
        try:
            job_id = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None
        job = self._jobs.get(job_id)
        if job is not None:
            job.replica = replica
        return job

    async def renew(self, job: Job) -> None:
        return None

    async def finish(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._expires[job.id] = self._clock() + self._ttl
        self._expire()

    async def reap(self) -> int:
        self._expire()
        return 0

    def _expire(self) -> None:
        now = self._clock()
        for job_id in [j for j, at in self._expires.items() if at <= now]:
            self._expires.pop(job_id, None)
            self._jobs.pop(job_id, None)


class RedisStore:
    """Jobs shared by every replica: ``job:<id>`` (JSON), ``queue`` (ids, oldest at the right),
    ``processing`` (ids taken), ``lease:<id>`` (the holder, expiring unless renewed)."""

    shared = True

    def __init__(
        self, redis: Redis, *, ttl_seconds: float, lease_seconds: float, prefix: str = REDIS_PREFIX
    ) -> None:
        self._r = redis
        self._ttl = max(1, int(ttl_seconds))
        self._lease_ms = max(100, int(lease_seconds * 1000))
        self._p = prefix
        self._unleased: dict[str, float] = {}

    def _job(self, job_id: str) -> str:
        return f"{self._p}job:{job_id}"

    def _lease(self, job_id: str) -> str:
        return f"{self._p}lease:{job_id}"

    async def put(self, job: Job) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._job(job.id), job.dumps())
            pipe.lpush(f"{self._p}queue", job.id)
            await pipe.execute()

    async def get(self, job_id: str) -> Job | None:
        raw = await self._r.get(self._job(job_id))
        return None if raw is None else Job.loads(raw)

    async def save(self, job: Job) -> None:
        await self._r.set(self._job(job.id), job.dumps())

    async def claim(self, replica: str, wait: float) -> Job | None:
        # Polled, not BLMOVE: the shared client's socket timeout is shorter than a useful block.
        deadline = time.monotonic() + wait
        while True:
            raw = await self._r.lmove(f"{self._p}queue", f"{self._p}processing", "RIGHT", "LEFT")
            if raw is not None:
                break
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(CLAIM_POLL_SECONDS)
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        await self._r.set(self._lease(job_id), replica, px=self._lease_ms)
        job = await self.get(job_id)
        if job is None:  # expired or deleted under us: nothing to run
            await self._r.lrem(f"{self._p}processing", 0, job_id)
            return None
        job.replica = replica
        return job

    async def renew(self, job: Job) -> None:
        await self._r.set(self._lease(job.id), job.replica or "-", px=self._lease_ms)

    async def finish(self, job: Job) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._job(job.id), job.dumps(), ex=self._ttl)
            pipe.lrem(f"{self._p}processing", 0, job.id)
            pipe.delete(self._lease(job.id))
            await pipe.execute()

    async def reap(self) -> int:
        """Requeue taken jobs without a lease. A job is reaped only once its lease has been
        missing for a whole lease period (a claim sets it just after taking the id), and only by
        the replica whose LREM removed it, so two reapers never queue it twice."""
        now = time.monotonic()
        grace = self._lease_ms / 1000
        taken = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in await self._r.lrange(f"{self._p}processing", 0, -1)
        ]
        requeued = 0
        for job_id in taken:
            if await self._r.exists(self._lease(job_id)):
                self._unleased.pop(job_id, None)
                continue
            first = self._unleased.setdefault(job_id, now)
            if now - first < grace:
                continue
            self._unleased.pop(job_id, None)
            if await self._r.lrem(f"{self._p}processing", 1, job_id):
                await self._r.rpush(f"{self._p}queue", job_id)
                requeued += 1
                log.info("async job %s lost its worker; queued again", job_id)
        for job_id in set(self._unleased) - set(taken):
            self._unleased.pop(job_id, None)
        return requeued


class AsyncJobs:
    """Accepts jobs, and runs them with a few workers on this replica."""

    def __init__(
        self,
        store: Store,
        runner: Runner,
        *,
        replica: str,
        workers: int = 4,
        lease_seconds: float = 30.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.counter = Counter(
            "dayzero_gateway_async_jobs",
            "Async jobs by what happened: queued, retried, succeeded, failed (this replica's).",
            ["lane", "status"],
            registry=registry,
        )
        self.replica = replica
        self._runner = runner
        self._workers = workers
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def new_id() -> str:
        """An unguessable job id."""
        return f"job-{uuid.uuid4().hex}"

    async def submit(self, lane: str, project: str, request: dict[str, Any]) -> Job:
        """Queue a request; it runs on whichever replica takes it first. StoreUnavailableError
        when the store (Redis) cannot take it."""
        job = Job(id=self.new_id(), lane=lane, project=project, request=request)
        try:
            await self.store.put(job)
        except Exception as e:  # noqa: BLE001 - redis-py raises several kinds; all mean "down"
            raise StoreUnavailableError(str(e) or type(e).__name__) from None
        self.counter.labels(lane, "queued").inc()
        return job

    async def get(self, job_id: str) -> Job | None:
        """A job by id; StoreUnavailableError when the store cannot be read."""
        try:
            return await self.store.get(job_id)
        except Exception as e:  # noqa: BLE001 - as in submit
            raise StoreUnavailableError(str(e) or type(e).__name__) from None

    def start(self) -> None:
        """Start the workers (and, with a shared store, the reaper) on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(loop.create_task(self._reap()))

    async def stop(self) -> None:
        """Stop the workers. A job they held keeps its lease until it lapses, then another
        replica (or this one, restarted) takes it."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self._lease / 3))
            try:
                await self.store.reap()
            except Exception as e:  # noqa: BLE001 - a Redis blip must not stop the reaper
                log.warning("async reaper: %s", e)

    async def _work(self) -> None:
        while True:
            try:
                job = await self.store.claim(self.replica, wait=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a Redis blip: wait and try again
                log.warning("async worker cannot claim: %s", e)
                await asyncio.sleep(1.0)
                continue
            if job is not None:
                await self.run(job)

    async def run(self, job: Job) -> None:
        """Run a job to its end: attempts until one is final or ``max_attempts`` are spent."""
        renewing = asyncio.get_running_loop().create_task(self._renew(job))
        try:
            while True:
                job.attempts += 1
                job.status = "running"
                job.updated = time.time()
                await self.store.save(job)
                attempt = await self._runner(job)
                job.backend = attempt.backend
                job.updated = time.time()
                if not attempt.retryable or job.attempts >= self._max_attempts:
                    job.status = "succeeded" if 200 <= attempt.status < 300 else "failed"
                    job.result_status = attempt.status
                    job.result = _json(attempt.body)
                    job.error = attempt.error
                    await self.store.finish(job)
                    self.counter.labels(job.lane, job.status).inc()
                    return
                job.history.append(
                    f"attempt {job.attempts} on {attempt.backend or '-'}: "
                    f"HTTP {attempt.status} {attempt.error or ''}".rstrip()
                )
                self.counter.labels(job.lane, "retried").inc()
                await asyncio.sleep(self._backoff * 2 ** (job.attempts - 1))
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, job: Job) -> None:
        while True:
            await asyncio.sleep(max(0.05, self._lease / 3))
            with contextlib.suppress(Exception):
                await self.store.renew(job)


def rotated(order: tuple[str, ...], attempt: int) -> tuple[str, ...]:
    """The lane's order for attempt ``attempt`` (1-based): each retry starts one backend on."""
    if not order:
        return order
    k = (attempt - 1) % len(order)
    return order[k:] + order[:k]


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
