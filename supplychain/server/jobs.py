"""A bounded in-process job queue: fixed worker threads, never an unbounded backlog.

The API (used by ``/v1/scan``, ``/v1/admission`` and the Harbor adapter)::

    queue = JobQueue(max_queued=64, workers=2)
    queue.start()
    job_id = queue.submit(fn, *args, key="scan:models/a")   # QueueFull when full,
                                                            # ShuttingDown after shutdown()
    queue.status(job_id)        # JobStatus.QUEUED|RUNNING|DONE|FAILED (UnknownJob if not known)
    queue.wait(job_id, 2.0)     # the Job snapshot once finished, or as it stands after 2 s
    await queue.wait_async(job_id, 2.0)   # the same from an event loop (never blocks it)
    queue.result(job_id)        # fn's return value; JobNotFinished while queued/running;
                                # JobFailed (with the error text) if fn raised
    queue.job(job_id)           # Job snapshot: id, key, status, error, submitted/started/finished
    queue.forget(job_id)        # drop a finished job and its result now (no-op otherwise)
    queue.depth                 # jobs queued, not yet running
    queue.shutdown(drain=True)  # refuse new jobs, finish every accepted one, join the workers

- ``key`` deduplicates: while a job with the same key is queued or running, ``submit`` returns
  its id instead of queueing a second one (a retried admission request waits on the first scan).
- ``fn`` runs in a worker thread; what it returns is kept as the result, what it raises is kept
  as ``FAILED`` with ``"<Type>: <message>"`` (never a pass).
- Finished jobs are kept for ``keep_finished`` jobs (oldest dropped first) and then forgotten
  (``UnknownJob``); callers that need a result longer store it themselves.
- An accepted job is never lost: ``shutdown(drain=True)`` runs every queued job before the
  workers exit (graceful shutdown); ``drain=False`` marks queued jobs ``FAILED`` ("shut down").
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import enum
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


class QueueFull(Exception):
    """The queue holds ``max_queued`` jobs: the caller answers 429/503 with ``Retry-After``."""


class ShuttingDown(Exception):
    """The queue no longer accepts jobs (the server is stopping)."""


class UnknownJob(KeyError):
    """No such job id (never submitted, or forgotten after ``keep_finished`` newer ones)."""


class JobNotFinished(Exception):
    """``result`` was asked for a job that is still queued or running."""


class JobFailed(Exception):
    """The job's function raised; the message is its error text."""


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one job (the queue keeps the live record)."""

    id: str
    key: str | None
    status: JobStatus
    submitted: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None


@dataclass
class _Entry:
    job: Job
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    result: Any = None
    done: concurrent.futures.Future[None] | None = None


class JobQueue:
    """Fixed worker threads over a bounded FIFO of jobs (see the module docstring)."""

    def __init__(self, max_queued: int = 64, workers: int = 2, keep_finished: int = 1024) -> None:
        if max_queued < 1 or workers < 1 or keep_finished < 1:
            raise ValueError("max_queued, workers and keep_finished must be at least 1")
        self.max_queued = max_queued
        self.workers = workers
        self.keep_finished = keep_finished
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: collections.deque[str] = collections.deque()
        self._entries: dict[str, _Entry] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._by_key: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._running = 0
        self._seq = itertools.count()
        self.accepted = 0
        self.rejected = 0
        self.completed = 0
        self.failed = 0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        with self._lock:
            if self._threads:
                return
            for n in range(self.workers):
                t = threading.Thread(target=self._work, name=f"supplychain-job-{n}", daemon=True)
                self._threads.append(t)
                t.start()

    def shutdown(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new jobs; with ``drain`` finish every accepted job, then join the workers."""
        with self._lock:
            self._closed = True
            if not drain:
                while self._pending:
                    self._finish(self._pending.popleft(), None, "ShuttingDown: server stopped")
            self._wake.notify_all()
            threads = list(self._threads)
            if not threads:  # never started: run what was accepted here, nothing is lost
                pending = list(self._pending)
                self._pending.clear()
            else:
                pending = []
        for job_id in pending:
            self._run(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- submitting and reading ------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> str:
        """Queue ``fn(*args)``; its id. ``QueueFull`` when full, ``ShuttingDown`` when closed."""
        with self._lock:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if key is not None:
                existing = self._by_key.get(key)
                if existing is not None:
                    return existing
            if len(self._pending) >= self.max_queued:
                self.rejected += 1
                raise QueueFull(f"{len(self._pending)} jobs queued")
            job_id = f"{next(self._seq):x}-{secrets.token_hex(8)}"
            entry = _Entry(
                Job(job_id, key, JobStatus.QUEUED, time.time()),
                fn,
                args,
                done=concurrent.futures.Future(),
            )
            self._entries[job_id] = entry
            if key is not None:
                self._by_key[key] = job_id
            self._pending.append(job_id)
            self.accepted += 1
            self._wake.notify()
            return job_id

    def job(self, job_id: str) -> Job:
        with self._lock:
            return self._entry(job_id).job

    def status(self, job_id: str) -> JobStatus:
        return self.job(job_id).status

    def result(self, job_id: str) -> Any:
        with self._lock:
            entry = self._entry(job_id)
            if entry.job.status is JobStatus.FAILED:
                raise JobFailed(entry.job.error or "failed")
            if entry.job.status is not JobStatus.DONE:
                raise JobNotFinished(job_id)
            return entry.result

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block up to ``timeout`` seconds for the job to finish; its snapshot either way."""
        with self._lock:
            event = self._entry(job_id).done
        if event is not None:
            concurrent.futures.wait([event], timeout)
        return self.job(job_id)

    async def wait_async(self, job_id: str, timeout: float | None = None) -> Job:
        """``wait`` for an event loop: awaits without holding a thread."""
        with self._lock:
            done = self._entry(job_id).done
        if done is not None and not done.done():
            waiter = asyncio.wrap_future(done)
            try:
                # NOTE: shield, or a timeout would cancel the shared future for every waiter.
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except TimeoutError:
                pass
        return self.job(job_id)

    def forget(self, job_id: str) -> None:
        """Drop a finished job and its result (a caller that has read it frees the memory)."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None and entry.job.status.finished:
                del self._entries[job_id]
                try:
                    self._finished.remove(job_id)
                except ValueError:
                    pass

    @property
    def depth(self) -> int:
        """Jobs accepted and not yet started."""
        with self._lock:
            return len(self._pending)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    # -- internals ---------------------------------------------------------------------------
    def _entry(self, job_id: str) -> _Entry:
        entry = self._entries.get(job_id)
        if entry is None:
            raise UnknownJob(job_id)
        return entry

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:  # closed and drained
                    return
                job_id = self._pending.popleft()
            self._run(job_id)

    def _run(self, job_id: str) -> None:
        with self._lock:
            entry = self._entries[job_id]
            entry.job = replace(entry.job, status=JobStatus.RUNNING, started=time.time())
            self._running += 1
        try:
            value = entry.fn(*entry.args)
        except BaseException as exc:
            with self._lock:
                self._running -= 1
                self._finish(job_id, None, f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            self._running -= 1
            self._finish(job_id, value, None)

    def _finish(self, job_id: str, value: Any, error: str | None) -> None:
        """Record the outcome (lock held) and forget the oldest finished jobs past the cap."""
        entry = self._entries[job_id]
        status = JobStatus.FAILED if error is not None else JobStatus.DONE
        entry.job = replace(entry.job, status=status, finished=time.time(), error=error)
        entry.result = value
        entry.fn, entry.args = _done, ()
        if status is JobStatus.FAILED:
            self.failed += 1
        else:
            self.completed += 1
        key = entry.job.key
        if key is not None and self._by_key.get(key) == job_id:
            del self._by_key[key]
        self._finished.append(job_id)
        while len(self._finished) > self.keep_finished:
            self._entries.pop(self._finished.popleft(), None)
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(None)


def _done() -> None:
    """Placeholder for a finished job's function (drops references to its arguments)."""
