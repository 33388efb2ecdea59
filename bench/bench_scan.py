"""Whole-scan throughput vs the hashing floor, and CLI start-up time.

1. Builds a directory of large benign artifacts (safetensors, a raw .npy, a torch-style zip with
   big stored storages) totalling ``--gb`` GB, then times ``supplychain scan DIR`` against
   ``openssl dgst -sha256`` over the same files in the same run (best of ``--repeat``).
2. Times ``supplychain scan ONE_SMALL_FILE`` against ``python -c pass`` (median of 15 runs).

Usage: python bench/bench_scan.py --dir /tmp/sc-bench --gb 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

CHUNK = 64 << 20


def _write_random(fh: object, size: int) -> None:
    block = os.urandom(CHUNK)
    left = size
    while left > 0:
        n = min(left, CHUNK)
        fh.write(block[:n])  # type: ignore[attr-defined]
        left -= n


def make_safetensors(path: Path, size: int) -> None:
    n = size // 4
    header = {"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        _write_random(fh, n * 4)


def make_npy(path: Path, size: int) -> None:
    n = size // 8
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({n},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with path.open("wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        _write_random(fh, n * 8)


def make_torch_zip(path: Path, size: int, parts: int = 4) -> None:
    # data.pkl: a dict whose values are persistent-id storage references, like torch.save.
    pkl = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01X\x04\x00\x00\x00dataq\x02u."
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", b"3\n")
        for i in range(parts):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as member:
                _write_random(member, size // parts)


def build(directory: Path, gb: float) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    total = int(gb * 2**30)
    files = [
        (directory / "model-00001.safetensors", make_safetensors, total * 3 // 8),
        (directory / "model-00002.safetensors", make_safetensors, total * 3 // 8),
        (directory / "embeddings.npy", make_npy, total // 8),
        (directory / "pytorch_model.bin", make_torch_zip, total // 8),
    ]
    for path, maker, size in files:
        if not path.exists() or abs(path.stat().st_size - size) > 2**20:
            maker(path, size)
    (directory / "config.json").write_text('{"model_type": "bert"}')
    return sorted(p for p in directory.iterdir() if p.is_file())


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one command."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sc-bench"))
    ap.add_argument("--gb", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    exe = shutil.which("supplychain") or f"{sys.executable} -m supplychain"
    files = build(args.dir, args.gb)
    size = sum(p.stat().st_size for p in files)
    # Warm the page cache once so both sides read from memory.
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
    floor = min(
        timed(["openssl", "dgst", "-sha256", *map(str, files)])[0] for _ in range(args.repeat)
    )
    results = {}
    for jobs in (1, os.cpu_count() or 1):
        cmd = [*exe.split(), "scan", str(args.dir), "-f", "json", "-q", "--jobs", str(jobs)]
        results[jobs] = min(timed(cmd)[0] for _ in range(args.repeat))
    print(f"bytes: {size / 2**30:.2f} GiB in {len(files)} files")
    print(f"openssl dgst -sha256: {floor:.2f} s ({size / floor / 2**30:.2f} GiB/s)")
    for jobs, wall in results.items():
        print(f"supplychain scan --jobs {jobs}: {wall:.2f} s  ratio {wall / floor:.2f}x")

    small = args.dir / "config.json"
    # A normal install has byte-compiled modules: allow .pyc writing, warm once, then measure.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    timed([*exe.split(), "scan", str(small), "-q"], env)
    base = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(15)]
    scan = [timed([*exe.split(), "scan", str(small), "-q"], env)[0] for _ in range(15)]
    print(
        f"start-up: python -c pass {statistics.median(base) * 1000:.0f} ms, "
        f"supplychain scan one small file {statistics.median(scan) * 1000:.0f} ms, "
        f"difference {(statistics.median(scan) - statistics.median(base)) * 1000:.0f} ms"
    )
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
