"""Start-up CPU of ``supplychain scan`` on one small file, over ``python -c pass`` (issue #12).

CPU (user + sys of the child, from ``getrusage(RUSAGE_CHILDREN)``), not wall: wall time on a
shared machine measures the neighbours. Each command runs once to warm up (byte-compile, page
cache), then ``--repeat`` times; the median is reported. Modules are byte-compiled as in a normal
install: this development machine sets ``PYTHONDONTWRITEBYTECODE=1``, under which every module
edited since its last ``.pyc`` is compiled from source on every run (about 90 ms for a pickle
scan), so the runs use a private ``PYTHONPYCACHEPREFIX`` with writing allowed (the working tree
is not touched); ``--as-is`` measures the inherited environment instead. Targets: one small
safetensors file and one small benign pickle (whose path imports the pickle VM, the most
expensive scanner to import).

Usage: ``python bench/bench_startup.py [--repeat 30]``; ``python -X importtime -m supplychain
scan -q FILE`` shows what the difference is made of.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle  # writing a benign benchmark input only; nothing is ever loaded
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ENV: dict[str, str] | None = None
"""Environment of the measured runs (``None``: inherited)."""


def cpu_of(cmd: list[str]) -> float:
    """User + sys CPU seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.DEVNULL
    subprocess.run(cmd, stdout=out, stderr=out, check=False, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpu(cmd: list[str], repeat: int) -> float:
    """Median CPU seconds of ``repeat`` runs after one warm-up run."""
    cpu_of(cmd)
    return statistics.median(cpu_of(cmd) for _ in range(repeat))


def small_inputs(root: Path) -> dict[str, Path]:
    """A 2-float safetensors file and a small pickle of allowlisted objects."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    st = root / "small.safetensors"
    st.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    pk = root / "small.pkl"
    pk.write_bytes(pickle.dumps({"a": collections.OrderedDict(x=[1, 2, 3])}, protocol=4))
    return {"safetensors": st, "pickle": pk}


def main() -> None:
    """Print one Markdown row per target: CPU of the scan, and its excess over ``pass``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--as-is", action="store_true", help="inherit the bytecode settings")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sc-startup-"))
    if not args.as_is:
        global ENV
        ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        ENV["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    print(f"load {os.getloadavg()}; bytecode {'as inherited' if args.as_is else 'cached'}")
    empty = median_cpu([sys.executable, "-c", "pass"], args.repeat)
    print(f"| `python -c pass` | {empty * 1000:.0f} ms | |")
    for name, path in small_inputs(root).items():
        cmd = [sys.executable, "-m", "supplychain", "scan", "-q", str(path)]
        one = median_cpu(cmd, args.repeat)
        print(f"| `scan -q small.{path.suffix[1:]}` ({name}) | {one * 1000:.0f} ms | ", end="")
        print(f"{(one - empty) * 1000:.0f} ms |")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
