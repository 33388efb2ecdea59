"""Dependency audit (issue #14): parsing cost offline, and lookup throughput against a local OSV.

Builds a directory with a ``uv.lock`` of ``--packages`` packages (each with an sdist hash) and a
``requirements.txt`` of as many hashed pins (one continuation line each), then times the real CLI
in a subprocess (wall, and CPU of the child from ``getrusage``), best of ``--repeat``:

- ``supplychain deps DIR --offline -f json -q``: both files parsed, every static check, facts;
- floor: a bare script that ``tomllib``-loads the lock and ``packaging``-parses every pin (the
  least any parser must do), in a subprocess too;
- ``supplychain deps DIR --osv-url http://127.0.0.1:PORT/v1/query``: every pin looked up (each
  (name, version) once) in the tests' fake OSV server running in this process, which answers
  ``{}`` (no advisory), so the figure is the client's per-query cost, not OSV's.

Usage: python bench/bench_deps.py --packages 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.deps.fakeosv import FakeOsv  # noqa: E402

FLOOR = """
import sys, tomllib
from packaging.requirements import Requirement
root = sys.argv[1]
with open(root + "/uv.lock", "rb") as fh:
    doc = tomllib.load(fh)
n = len(doc["package"])
with open(root + "/requirements.txt") as fh:
    for line in fh:
        line = line.strip().rstrip("\\\\").strip()
        if line and not line.startswith("--"):
            Requirement(line); n += 1
print(n)
"""


def build(root: Path, packages: int) -> None:
    lock = ["version = 1", ""]
    reqs = []
    for i in range(packages):
        name = f"package-{i:05d}"
        digest = f"{i:064x}"
        lock += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "1.{i % 50}.{i % 7}"',
            'source = { registry = "https://pypi.org/simple" }',
            f'sdist = {{ url = "https://files.example/{name}.tar.gz", hash = "sha256:{digest}" }}',
            "",
        ]
        reqs.append(f"{name}==1.{i % 50}.{i % 7} \\\n    --hash=sha256:{digest}\n")
    (root / "uv.lock").write_text("\n".join(lock))
    (root / "requirements.txt").write_text("".join(reqs))


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def best(cmd: list[str], repeat: int) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    runs = [timed(cmd) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="sc-deps-") as tmp:
        root = Path(tmp)
        build(root, args.packages)
        size = sum(p.stat().st_size for p in root.iterdir())
        floor = best([py, "-c", FLOOR, str(root)], args.repeat)
        offline = best(
            [py, "-m", "supplychain", "deps", str(root), "--offline", "-f", "json", "-q"],
            args.repeat,
        )
        report = json.loads(offline[2].stdout)
        facts = sum(f["key"] == "dependency.requirement" for f in report["facts"])
        osv = FakeOsv().start()
        try:
            online = best(
                [
                    py,
                    "-m",
                    "supplychain",
                    "deps",
                    str(root / "requirements.txt"),
                    "--osv-url",
                    osv.url,
                    "-f",
                    "json",
                    "-q",
                ],
                args.repeat,
            )
            queries = len(osv.requests) // args.repeat
        finally:
            osv.stop()
        assert online[2].returncode == 0, online[2].stderr
    print(f"{args.packages} packages in uv.lock + {args.packages} hashed pins, {size / 1e6:.2f} MB")
    print(f"requirement facts: {facts}")
    print(f"floor (tomllib + packaging only): {floor[0]:.3f} s wall, {floor[1]:.3f} s CPU")
    print(
        f"deps --offline: {offline[0]:.3f} s wall, {offline[1]:.3f} s CPU "
        f"({offline[0] / floor[0]:.2f}x floor)"
    )
    print(
        f"deps online (requirements.txt, {queries} queries, 4 in flight): {online[0]:.3f} s wall, "
        f"{online[1]:.3f} s CPU, {queries / online[0]:.0f} queries/s"
    )


if __name__ == "__main__":
    main()
