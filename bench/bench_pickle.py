"""Benchmark the pickle scanner on a ~300 MB pickle of millions of small objects.

Usage: ``/work/venv/bin/python bench/bench_pickle.py [--mb 300] [--protocols 2,4] [--keep DIR]``

For each protocol it writes one pickle (a list of small dicts, tuples, floats and strings made
with ``pickle.dump`` by this script), then in the same run measures, each in a fresh child:

* the scanner (``scanners.pickle_analysis.scan_pickle`` over the file): CPU seconds and peak RSS
  from ``resource.getrusage`` inside the child;
* ``openssl dgst -sha256`` on the same file: CPU seconds of the child process.

and prints one JSON line per protocol with the ratio. The scan uses the default ``Limits``
except ``max_pickle_ops`` (the default cap of 50 M opcodes is below what a 300 MB pickle of
small objects holds, which would end the scan with GEN002 instead of walking the whole file).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import io, json, resource, sys, time
from scanners.base import Artifact, ScanContext
from scanners.pickle_analysis import scan_pickle
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind
path = sys.argv[1]
t0 = time.perf_counter()
with open(path, "rb") as fh:
    size = fh.seek(0, 2); fh.seek(0)
    art = Artifact(path=path, kind=ArtifactKind.PICKLE, size=size, stream=fh)
    ctx = ScanContext(limits=Limits(max_pickle_ops=10**10))
    findings = [f"{f.rule} {f.message}" for f in scan_pickle(art, ctx)]
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": ru.ru_utime + ru.ru_stime, "wall": wall,
                  "peak_rss_mib": ru.ru_maxrss / 1024, "findings": findings}))
"""


def make_items(count: int, seed: int = 0) -> list[object]:
    rng = random.Random(seed)
    items: list[object] = []
    for i in range(count):
        kind = i & 3
        if kind == 0:
            items.append(
                {"id": i, "name": f"user{i}", "score": rng.random(), "tags": ("a", "b"), "ok": True}
            )
        elif kind == 1:
            items.append((i, rng.random(), f"s{i}"))
        elif kind == 2:
            items.append(rng.random())
        else:
            items.append(f"string number {i}")
    return items


def write_pickle(path: Path, target_mb: int, protocol: int) -> None:
    # ~21 bytes per item on average at protocol 4 (measured on a small sample first).
    sample = pickle.dumps(make_items(40_000), protocol=protocol)
    per_item = len(sample) / 40_000
    count = int(target_mb * 2**20 / per_item)
    items = make_items(count)
    with path.open("wb") as fh:
        pickle.dump(items, fh, protocol=protocol)


def cpu_of_child(cmd: list[str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, out


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        write_pickle(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--protocols", default="2,4")
    parser.add_argument("--keep", type=Path, default=None, help="write the pickles here")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_pickle_"))
    workdir.mkdir(parents=True, exist_ok=True)
    for proto in (int(p) for p in args.protocols.split(",")):
        path = workdir / f"small_objects_p{proto}.pkl"
        if not path.exists():
            # Generate in a child: ru_maxrss survives fork+exec on Linux, so a big parent would
            # inflate the scanner child's peak RSS figure.
            gen = [sys.executable, __file__, "--generate", str(path), str(args.mb), str(proto)]
            subprocess.run(gen, check=True)
        size = path.stat().st_size
        env_cmd = [sys.executable, "-c", CHILD, str(path)]
        _, scan_out = cpu_of_child(env_cmd)
        scan = json.loads(scan_out)
        ssl_cpu, _ = cpu_of_child(["openssl", "dgst", "-sha256", str(path)])
        result = {
            "protocol": proto,
            "size_mib": round(size / 2**20, 1),
            "scan_cpu_s": round(scan["cpu"], 2),
            "scan_wall_s": round(scan["wall"], 2),
            "scan_peak_rss_mib": round(scan["peak_rss_mib"], 1),
            "openssl_sha256_cpu_s": round(ssl_cpu, 3),
            "ratio_scan_over_openssl": round(scan["cpu"] / max(ssl_cpu, 1e-3), 1),
            "scan_mib_per_s": round(size / 2**20 / max(scan["cpu"], 1e-3), 1),
            "findings": scan["findings"],
            "python": sys.version.split()[0],
            "cwd": str(root),
        }
        print(json.dumps(result))
        if args.keep is None:
            os.unlink(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
