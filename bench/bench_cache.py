"""Verdict cache (issue #15): uncached scan vs cached re-scan vs ``--verify-cache`` re-scan.

Builds a model directory of ``--gb`` GiB of safetensors shards (``bench_verify.make_safetensors``)
plus a few pickles and a config, waits until the files have settled (the cache does not trust the
identity of a file changed in the last 2 s), warms the page cache, then times the real CLI in a
subprocess (wall, and CPU of the child from ``getrusage``), best of ``--repeat``:

- ``scan DIR --no-cache`` (every byte hashed and scanned);
- ``scan DIR --cache DB`` once to fill the cache (not in the ratio), then again: the re-scan,
  answered by (device, inode, size, mtime, ctime) → sha256 → stored result, no content read;
- ``scan DIR --cache DB --verify-cache``: every file re-hashed, verdicts from the cache.

It checks the three JSON reports are identical apart from timings, and that the re-scans were
answered from the cache for every file.

Usage: python bench/bench_cache.py --dir /tmp/sc-cache --gb 3
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_verify import make_safetensors  # noqa: E402

PERF = shutil.which("perf")


def run(args: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, CPU seconds and the JSON report of one CLI run.

    CPU is ``perf stat``'s task-clock when perf is installed (it counts the forkserver workers
    ``RUSAGE_CHILDREN`` never sees); without perf, the scan process's own user + sys.
    """
    with tempfile.NamedTemporaryFile(suffix=".perf") as stat_out:
        cmd = [sys.executable, "-m", "supplychain", "scan", *args, "-q", "-f", "json"]
        if PERF:
            cmd = [PERF, "stat", "-x,", "-e", "task-clock", "-o", stat_out.name, *cmd]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if PERF:
            rows = [r.split(",") for r in Path(stat_out.name).read_text().splitlines()]
            cpu = next(float(r[0]) / 1000 for r in rows if len(r) > 2 and "task-clock" in r[2])
    return wall, cpu, json.loads(proc.stdout)


def norm(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in ("started_at", "timings")}
    out["outcomes"] = [{k: v for k, v in o.items() if k != "seconds"} for o in doc["outcomes"]]
    return out


def best(args: list[str], repeat: int) -> tuple[float, float, dict[str, Any]]:
    runs = [run(args) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--gb", type=float, default=3.0)
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--pickles", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    root = args.dir / "model"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shard = int(args.gb * 2**30 / args.shards)
    for i in range(args.shards):
        make_safetensors(root / f"model-{i:05d}-of-{args.shards:05d}.safetensors", shard)
    for i in range(args.pickles):  # benign pickles (written here, never loaded)
        state = {f"layer{j}.weight": [float(k) for k in range(2000)] for j in range(20)}
        (root / f"optimizer-{i}.pkl").write_bytes(pickle.dumps(state, protocol=2))
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    files = sorted(p for p in root.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    time.sleep(2.5)  # settle: see supplychain.cache.SETTLE_SECONDS
    for p in files:  # warm the page cache
        with p.open("rb") as fh:
            while fh.read(64 << 20):
                pass

    db = args.dir / "verdicts.sqlite"
    for leftover in args.dir.glob("verdicts.sqlite*"):
        leftover.unlink()
    jobs = ["-j", str(args.jobs)]
    plain = best([str(root), "--no-cache", *jobs], args.repeat)
    fill = run([str(root), "--cache", str(db), *jobs])
    cached = best([str(root), "--cache", str(db), *jobs], args.repeat)
    verify = best([str(root), "--cache", str(db), "--verify-cache", *jobs], args.repeat)

    assert norm(plain[2]) == norm(fill[2]) == norm(cached[2]) == norm(verify[2])
    assert fill[2]["timings"]["cache_hits"] == 0
    assert cached[2]["timings"]["cache_hits"] == len(files), cached[2]["timings"]
    assert verify[2]["timings"]["cache_hits"] == len(files), verify[2]["timings"]

    gib = total / 2**30
    print(f"files={len(files)} size={gib:.2f} GiB jobs={args.jobs} repeat={args.repeat}")
    print("| run | wall | CPU | wall ratio to uncached |")
    print("| --- | --- | --- | --- |")
    for label, (wall, cpu, _) in (
        ("uncached `--no-cache`", plain),
        ("first `--cache` run (fills it)", fill),
        ("cached re-scan", cached),
        ("`--verify-cache` re-scan", verify),
    ):
        print(f"| {label} | {wall:.2f} s | {cpu:.2f} s | {wall / plain[0]:.3f}x |")
    print(f"cache file: {db.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
