"""Dataset checks on Ray (issue #19): throughput 1 -> 2 workers, per-worker peak memory vs rows.

Writes a synthetic text corpus as Parquet shards (a 20,000-word vocabulary so random rows share
few LSH buckets, 4 labels, 1 % planted near-duplicates), then runs
``supplychain.distributed.ray_engine.run_dataset_on_ray`` on a local cluster started for each run
with ``--workers`` CPUs. Memory: a thread samples ``VmHWM`` (the kernel's peak resident set of a
process, object-store pages it mapped included) and RssAnon (its private memory) of every Ray
worker process every 0.2 s and once more before shutdown; the driver's
peak is its own ``ru_maxrss``. CPU: the driver's own CPU time plus every worker's user+system
time read from ``/proc/PID/stat`` at the last sample.

Usage::

    python bench/bench_ray.py --rows 100000 --workers 1 2 --dir /tmp/bench-ray
    python bench/bench_ray.py --rows 100000 1000000 --workers 2 --dir /tmp/bench-ray
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SHARD_ROWS = 100_000
CLK = os.sysconf("SC_CLK_TCK")


def make_corpus(rows: int, directory: Path, seed: int = 0) -> Path:
    """Parquet shards of ``SHARD_ROWS`` rows (row groups of 16,384)."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
        for _ in range(20_000)
    ]
    labels = ["sports", "politics", "tech", "health"]
    directory.mkdir(parents=True, exist_ok=True)
    done = 0
    shard = 0
    while done < rows:
        n = min(SHARD_ROWS, rows - done)
        texts: list[str] = []
        labs: list[str] = []
        for i in range(n):
            if texts and rng.random() < 0.01:
                words = rng.choice(texts).split()
                words[rng.randrange(len(words))] = rng.choice(vocab)  # a near-duplicate
                texts.append(" ".join(words))
            else:
                texts.append(" ".join(rng.choices(vocab, k=rng.randint(12, 40))))
            labs.append(labels[(done + i) % 4])
        table = pa.table({"text": texts, "label": labs})
        pq.write_table(table, directory / f"part-{shard:05d}.parquet", row_group_size=16_384)
        done += n
        shard += 1
    return directory


class WorkerWatch:
    """Samples VmHWM and CPU ticks of Ray worker processes (``ray::`` in /proc/PID/cmdline)."""

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self.anon: dict[int, int] = {}
        """Largest sampled RssAnon (private memory, without the object store's shared pages)."""
        self.ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmd = (pid_dir / "cmdline").read_bytes()
                if not (cmd.startswith(b"ray::") or b"default_worker.py" in cmd):
                    continue
                status = (pid_dir / "status").read_text()
                stat = (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(pid_dir.name)
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak[pid] = max(self.peak.get(pid, 0), int(line.split()[1]))
                elif line.startswith("RssAnon:"):
                    self.anon[pid] = max(self.anon.get(pid, 0), int(line.split()[1]))
            self.ticks[pid] = int(stat[11]) + int(stat[12])  # utime + stime


def run(shards: Path, workers: int, temp: Path, partition_rows: int) -> dict[str, float]:
    import ray

    from supplychain import service
    from supplychain.distributed.ray_engine import run_dataset_on_ray
    from supplychain.policy import Policy

    settings = service.data_settings(Policy())
    ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False)
    watch = WorkerWatch()
    watch.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    try:
        got = run_dataset_on_ray([str(shards)], settings, partition_rows=partition_rows)
        wall = time.perf_counter() - t0
        driver_cpu = time.process_time() - cpu0
        watch.stop()
    finally:
        ray.shutdown()
    facts = {f.key: f.value for f in got.facts}
    rows = int(facts["dataset.rows"])  # type: ignore[arg-type]
    worker_cpu = sum(watch.ticks.values()) / CLK
    return {
        "rows": rows,
        "wall": wall,
        "driver_cpu": driver_cpu,
        "worker_cpu": worker_cpu,
        "worker_peak_mb": max(watch.peak.values(), default=0) / 1024,
        "worker_anon_mb": max(watch.anon.values(), default=0) / 1024,
        "workers_seen": len(watch.peak),
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "candidates": float(facts.get("dataset.duplicate_candidates", -1)),  # type: ignore[arg-type]
        "partitions": float(facts.get("dataset.partitions", -1)),  # type: ignore[arg-type]
        "findings": len(got.findings),
        "status": got.results[-1].status.value == "scanned",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dir", type=Path, default=None, help="where to write the shards")
    ap.add_argument("--partition-rows", type=int, default=16_384)
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    print(f"corpus under {base}")
    for rows in args.rows:
        shards = base / f"rows-{rows}"
        if not shards.exists():
            t = time.perf_counter()
            make_corpus(rows, shards)
            print(f"wrote {rows} rows in {time.perf_counter() - t:.1f} s")
        for workers in args.workers:
            temp = Path(tempfile.mkdtemp(prefix="rb-"))
            r = run(shards, workers, temp, args.partition_rows)
            print(
                f"rows={int(r['rows'])} workers={workers} wall={r['wall']:.1f}s "
                f"rows/s={r['rows'] / r['wall']:.0f} driver_cpu={r['driver_cpu']:.1f}s "
                f"worker_cpu={r['worker_cpu']:.1f}s "
                f"rows/cpu-s={r['rows'] / max(1e-9, r['worker_cpu'] + r['driver_cpu']):.0f} "
                f"worker_peak={r['worker_peak_mb']:.0f}MB (of {int(r['workers_seen'])} workers) "
                f"worker_anon_peak={r['worker_anon_mb']:.0f}MB "
                f"driver_peak={r['driver_peak_mb']:.0f}MB partitions={int(r['partitions'])} "
                f"dup_candidates={int(r['candidates'])} findings={int(r['findings'])} "
                f"scanned={bool(r['status'])}",
                flush=True,
            )


if __name__ == "__main__":
    main()
