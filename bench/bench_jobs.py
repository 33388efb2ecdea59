"""Jobs scaling on a CPU-bound many-file tree (issue #12).

Builds ``--files`` benign pickles (each ``--items`` allowlisted calls the pickle VM models in
Python, so the work is CPU-bound, not I/O), then times
``supplychain scan DIR -q -f json --jobs J`` for each J: median of ``--repeat`` runs of wall
time and of CPU (the scan and every process it starts, with ``perf``). A pure-Python CPU burn
on 1 vs 2 processes, before and after, is the ceiling the machine allows right now. Start-up
CPU of a one-file scan is ``bench/bench_startup.py``.

Usage: ``python bench/bench_jobs.py [--dir DIR] [--files 100] [--items 5000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import pickle  # writing benign benchmark inputs only; nothing is ever loaded
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_tree(root: Path, files: int, items: int) -> None:
    """Benign pickles of allowlisted objects (``OrderedDict`` of ``datetime.date``): every item
    is a call the pickle VM models in Python, so the scan is CPU-bound (as for checkpoints)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        rows = [
            collections.OrderedDict([(f"k{i}-{j}", datetime.date(2020, 1, 1 + j % 28))])
            for j in range(items)
        ]
        (root / f"shard-{i:04d}.pkl").write_bytes(pickle.dumps(rows, protocol=4))


PERF = shutil.which("perf")


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run.

    CPU is ``perf stat``'s task-clock when perf is installed: it counts every descendant,
    including forkserver workers, which ``RUSAGE_CHILDREN`` never sees (the forkserver, not
    the scan, reaps them). Without perf it is the scan process's own user + sys only.
    """
    with tempfile.NamedTemporaryFile(suffix=".perf") as out:
        full = [PERF, "stat", "-x,", "-e", "task-clock", "-o", out.name, *cmd] if PERF else cmd
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if PERF:
            rows = [r.split(",") for r in Path(out.name).read_text().splitlines()]
            cpu = next(float(r[0]) / 1000 for r in rows if len(r) > 2 and "task-clock" in r[2])
    return wall, cpu


def median_of(cmd: list[str], repeat: int) -> tuple[float, float]:
    run(cmd)  # warm-up: byte-compile, page cache
    walls, cpus = zip(*(run(cmd) for _ in range(repeat)), strict=True)
    return statistics.median(walls), statistics.median(cpus)


def _burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def ceiling(n: int = 6_000_000) -> float:
    """Speed-up of a pure-Python CPU burn from 1 to 2 processes: what the machine allows now.

    On a shared machine other workers' load caps any scaling; the scan's ratio is read
    against this one, measured in the same run.
    """
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    for _ in range(4):
        _burn(n)
    serial = time.perf_counter() - t0
    with ProcessPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(_burn, [n] * 4))
        parallel = time.perf_counter() - t0
    return serial / parallel


def main() -> None:
    """Print the jobs table as Markdown rows, between two ceiling measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", default="1,2")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="sc-jobs-"))
    tree = root / "tree"
    if not tree.exists():
        build_tree(tree, args.files, args.items)
    size = sum(p.stat().st_size for p in tree.iterdir())
    print(f"tree: {args.files} pickles, {size / 2**20:.1f} MiB; load {os.getloadavg()}")
    print(f"ceiling: a pure-Python CPU burn runs {ceiling():.2f}x faster on 2 processes")
    scan = [sys.executable, "-m", "supplychain", "scan", "-q", "-f", "json"]
    base_wall = None
    for jobs in (int(j) for j in args.jobs.split(",")):
        wall, cpu = median_of([*scan, "--jobs", str(jobs), str(tree)], args.repeat)
        base_wall = base_wall or wall
        print(f"| --jobs {jobs} | {wall:.2f} s | {cpu:.2f} s | {base_wall / wall:.2f}x |")
    print(f"ceiling again: {ceiling():.2f}x; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
