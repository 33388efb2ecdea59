"""A multi-GB torch.save-format checkpoint: whole engine scan vs ``openssl dgst -sha256``.

Builds ``archive/data.pkl`` (a protocol-2 pickle of ``{name: _rebuild_tensor_v2(persistent
storage id, ...)}``, exactly the shape torch.save writes) plus big stored ``archive/data/<n>``
members of random bytes, then times, in the same run and on a warm page cache:

* ``openssl dgst -sha256 FILE`` (the floor: every byte has to be hashed once);
* ``scan_paths([FILE])`` with the container scanners (+ the real pickle scanner when present),
  in a fresh subprocess so its peak RSS can be read.

Usage: python bench/bench_torch.py --dir /work/bench-torch --gb 2.5 [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

CHUNK = 64 << 20

CHILD = r"""
import json, resource, sys, time
from scanners.archive_scan import ArchiveScanner
from scanners.numpy_scan import NumpyScanner
from scanners.torch_scan import TorchScanner
from supplychain.engine import ScanOptions, scan_paths
classes = [TorchScanner, ArchiveScanner, NumpyScanner]
try:
    from scanners.pickle_scan import PickleScanner
    classes.append(PickleScanner)
except ImportError:
    pass
t0 = time.perf_counter()
report = scan_paths([sys.argv[1]], ScanOptions(scanners=tuple(classes)))
dt = time.perf_counter() - t0
print(json.dumps({
    "seconds": dt,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "findings": [f"{f.rule} {f.location.describe()} {f.message}" for f in report.findings],
    "members": len(report.files) - 1,
    "scanners": [c.__name__ for c in classes],
    "failed": [r.reason for r in report.failed],
}))
"""


def data_pkl(storages: list[int]) -> bytes:
    """``{"layer<i>.weight": tensor}`` as torch.save pickles it (persistent ids → storages)."""
    out = bytearray(b"\x80\x02}q\x00(")
    for i, numel in enumerate(storages):
        key = f"layer{i}.weight".encode()
        sid = str(i).encode()
        out += b"X" + struct.pack("<I", len(key)) + key
        out += b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
        out += b"X" + struct.pack("<I", len(sid)) + sid + b"X\x03\x00\x00\x00cpu"
        out += b"J" + struct.pack("<i", numel) + b"tQ"
        out += b"K\x00J" + struct.pack("<i", numel) + b"\x85K\x01\x85\x89"
        out += b"ccollections\nOrderedDict\n)RtR"
    out += b"u."
    return bytes(out)


def build(path: Path, total: int, parts: int) -> None:
    size = total // parts // 4 * 4
    block = os.urandom(CHUNK)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("archive/data.pkl", data_pkl([size // 4] * parts))
        zf.writestr("archive/byteorder", b"little")
        for i in range(parts):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as fh:
                left = size
                while left > 0:
                    n = min(left, CHUNK)
                    # Vary each chunk a little so no two storages are identical.
                    fh.write(block[:n] if left % 3 else os.urandom(n))
                    left -= n
        zf.writestr("archive/version", b"3\n")
        zf.writestr("archive/.data/serialization_id", b"0123456789")


def time_openssl(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    return time.perf_counter() - t0


def time_engine(path: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/work/bench-torch"))
    ap.add_argument("--gb", type=float, default=2.5)
    ap.add_argument("--parts", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "pytorch_model.bin"
    t0 = time.perf_counter()
    build(path, int(args.gb * 1e9), args.parts)
    print(f"built {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f}s")
    try:
        time_openssl(path)  # warm the page cache for both contenders
        ssl = min(time_openssl(path) for _ in range(args.repeat))
        runs = [time_engine(path) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
        eng = float(best["seconds"])  # type: ignore[arg-type]
        gb = path.stat().st_size / 1e9
        print(f"openssl dgst -sha256 : {ssl:.2f}s ({gb / ssl:.2f} GB/s)")
        print(f"supplychain engine   : {eng:.2f}s ({gb / eng:.2f} GB/s)  ratio {eng / ssl:.2f}x")
        print(f"peak RSS (engine)    : {max(float(r['peak_rss_mib']) for r in runs):.0f} MiB")  # type: ignore[arg-type]
        print(f"scanners             : {best['scanners']}")
        print(f"members dispatched   : {best['members']}")
        print(f"findings             : {best['findings']}")
        print(f"failed               : {best['failed']}")
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
