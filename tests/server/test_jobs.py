"""The bounded job queue: bounds, dedup by key, failures kept, graceful drain loses nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from supplychain.server.jobs import (
    JobFailed,
    JobNotFinished,
    JobQueue,
    JobStatus,
    QueueFull,
    ShuttingDown,
    UnknownJob,
)


def test_result_and_status() -> None:
    q = JobQueue(max_queued=4, workers=1)
    q.start()
    job = q.submit(lambda a, b: a + b, 2, 3)
    assert q.wait(job, 5).status is JobStatus.DONE
    assert q.result(job) == 5
    q.shutdown()


def test_full_queue_raises_and_counts() -> None:
    gate = threading.Event()
    q = JobQueue(max_queued=2, workers=1)
    q.start()
    first = q.submit(gate.wait, 10)
    deadline = time.monotonic() + 5
    while q.status(first) is not JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    q.submit(gate.wait, 10)
    q.submit(gate.wait, 10)
    with pytest.raises(QueueFull):
        q.submit(gate.wait, 10)
    assert q.depth == 2 and q.rejected == 1
    with pytest.raises(JobNotFinished):
        q.result(first)
    gate.set()
    q.shutdown()
    assert q.completed == 3


def test_same_key_shares_one_job() -> None:
    gate = threading.Event()
    q = JobQueue(max_queued=4, workers=1)
    q.start()
    a = q.submit(gate.wait, 10, key="scan:x")
    b = q.submit(gate.wait, 10, key="scan:x")
    assert a == b
    gate.set()
    q.wait(a, 5)
    c = q.submit(gate.wait, 10, key="scan:x")  # finished: a new scan
    assert c != a
    q.shutdown()


def test_failure_is_kept_as_failed() -> None:
    def boom() -> None:
        raise RuntimeError("disk on fire")

    q = JobQueue(workers=1)
    q.start()
    job = q.submit(boom)
    assert q.wait(job, 5).status is JobStatus.FAILED
    with pytest.raises(JobFailed, match="disk on fire"):
        q.result(job)
    q.shutdown()


def test_shutdown_drains_every_accepted_job() -> None:
    done: list[int] = []
    q = JobQueue(max_queued=50, workers=2)
    q.start()
    ids = [q.submit(lambda n: (time.sleep(0.01), done.append(n)), n) for n in range(30)]
    q.shutdown(drain=True)
    assert sorted(done) == list(range(30))
    assert all(q.status(i) is JobStatus.DONE for i in ids)
    with pytest.raises(ShuttingDown):
        q.submit(print)


def test_forgotten_after_keep_finished() -> None:
    q = JobQueue(workers=1, keep_finished=2)
    q.start()
    ids = [q.submit(int, "1") for _ in range(4)]
    for i in ids[-1:]:
        q.wait(i, 5)
    q.shutdown()
    with pytest.raises(UnknownJob):
        q.status(ids[0])
    assert q.result(ids[-1]) == 1


def test_wait_async_times_out_without_cancelling_the_job() -> None:
    gate = threading.Event()
    q = JobQueue(workers=1)
    q.start()
    job = q.submit(lambda: gate.wait(10) and "ok")

    async def main() -> JobStatus:
        snap = await q.wait_async(job, 0.05)
        return snap.status

    assert asyncio.run(main()) in (JobStatus.QUEUED, JobStatus.RUNNING)
    gate.set()
    assert q.wait(job, 5).status is JobStatus.DONE
    assert q.result(job) == "ok"
    q.shutdown()


def test_forget_drops_a_finished_job_only() -> None:
    gate = threading.Event()
    q = JobQueue(workers=1)
    q.start()
    running = q.submit(gate.wait, 10)
    q.forget(running)  # not finished: kept
    assert q.status(running) in (JobStatus.QUEUED, JobStatus.RUNNING)
    gate.set()
    q.wait(running, 5)
    q.forget(running)
    with pytest.raises(UnknownJob):
        q.status(running)
    q.shutdown()
