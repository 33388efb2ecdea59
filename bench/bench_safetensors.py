"""A multi-GB safetensors file: engine scan (hash + sniff + SafetensorsScanner) vs openssl.

Writes a valid safetensors file shaped like a real checkpoint (a 7B-style list of BF16 tensors,
``__metadata__`` included) with random tensor bytes streamed in 64 MiB chunks, then times, in the
same run and on a warm page cache:

* ``openssl dgst -sha256 FILE`` (the floor: every byte has to be hashed once);
* ``scan_paths([FILE], ScanOptions(scanners=(SafetensorsScanner,)))`` in a fresh subprocess
  (peak RSS from ``VmHWM``, since ``ru_maxrss`` is inherited across exec), and the scanner's
  own share (header parse and checks);
* ``supplychain scan FILE --format json`` (the CLI, with whatever scanners are registered).

The file is deleted afterwards unless ``--keep``.

``--many N`` instead writes a small file whose header lists N one-byte tensors (a ~N×70-byte
header, the worst case for the header parse) and reports the scanner's own time and peak RSS.

Usage: python bench/bench_safetensors.py --dir /work/bench-st --gb 3 [--repeat 3] [--keep]
       python bench/bench_safetensors.py --dir /work/bench-st --many 1000000
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
from pathlib import Path

CHUNK = 64 << 20

HWM = r"""
def hwm_mib():
    # VmHWM belongs to this process image; ru_maxrss is inherited from the parent across exec.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
"""

CHILD = (
    HWM
    + r"""
import io, json, sys, time
from scanners.base import Artifact, ScanContext
from scanners.safetensors_scan import SafetensorsScanner
from supplychain.engine import ScanOptions, scan_paths
from supplychain.core.model import ArtifactKind
t0 = time.perf_counter()
report = scan_paths([sys.argv[1]], ScanOptions(scanners=(SafetensorsScanner,)))
dt = time.perf_counter() - t0
size = report.files[0].size
with open(sys.argv[1], "rb") as fh:
    t1 = time.perf_counter()
    art = Artifact(path="x", kind=ArtifactKind.SAFETENSORS, size=size, stream=fh)
    extra = list(SafetensorsScanner().scan(art, ScanContext()))
    scanner_only = time.perf_counter() - t1
print(json.dumps({
    "seconds": dt,
    "scanner_seconds": scanner_only,
    "peak_rss_mib": hwm_mib(),
    "kind": report.files[0].kind.value,
    "findings": [f"{f.rule} {f.location.describe()} {f.message}" for f in report.findings],
    "results": [f"{r.scanner}:{r.status.value}" for r in report.results],
}))
"""
)


def layout(total: int) -> list[tuple[str, list[int]]]:
    """Tensor names and BF16 shapes of a Llama-style model scaled to about ``total`` bytes."""
    hidden, inter, vocab = 4096, 11008, 32000
    per_layer = [
        ("self_attn.q_proj.weight", [hidden, hidden]),
        ("self_attn.k_proj.weight", [hidden, hidden]),
        ("self_attn.v_proj.weight", [hidden, hidden]),
        ("self_attn.o_proj.weight", [hidden, hidden]),
        ("mlp.gate_proj.weight", [inter, hidden]),
        ("mlp.up_proj.weight", [inter, hidden]),
        ("mlp.down_proj.weight", [hidden, inter]),
        ("input_layernorm.weight", [hidden]),
        ("post_attention_layernorm.weight", [hidden]),
    ]
    tensors: list[tuple[str, list[int]]] = [("model.embed_tokens.weight", [vocab, hidden])]
    used = vocab * hidden * 2
    layer = 0
    while True:
        size = sum(2 * _numel(s) for _, s in per_layer)
        if used + size > total:
            break
        tensors.extend((f"model.layers.{layer}.{n}", s) for n, s in per_layer)
        used += size
        layer += 1
    tensors.append(("model.norm.weight", [hidden]))
    return tensors


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def build(path: Path, total: int) -> int:
    """Write the file; return its size."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in layout(total):
        nbytes = 2 * _numel(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((-len(raw)) % 8)
    block = os.urandom(CHUNK)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        left = offset
        while left > 0:
            n = min(left, CHUNK)
            fh.write(block[:n] if left % 3 else os.urandom(n))
            left -= n
    return path.stat().st_size


MANY_CHILD = (
    HWM
    + r"""
import json, sys, time
from scanners.base import Artifact, ScanContext
from scanners.safetensors_scan import SafetensorsScanner
from supplychain.core.model import ArtifactKind
import os
size = os.path.getsize(sys.argv[1])
before = hwm_mib()
with open(sys.argv[1], "rb") as fh:
    t0 = time.perf_counter()
    art = Artifact(path="x", kind=ArtifactKind.SAFETENSORS, size=size, stream=fh)
    found = list(SafetensorsScanner().scan(art, ScanContext()))
    dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_before_mib": before,
                  "peak_rss_mib": hwm_mib(),
                  "findings": len(found)}))
"""
)


def build_many(path: Path, count: int) -> int:
    """A file whose header lists ``count`` one-byte U8 tensors; return its size."""
    parts = [b'{"__metadata__":{"format":"pt"}']
    for i in range(count):
        parts.append(
            b',"model.layers.%d.weight":{"dtype":"U8","shape":[1],"data_offsets":[%d,%d]}'
            % (i, i, i + 1)
        )
    parts.append(b"}")
    raw = b"".join(parts)
    raw += b" " * ((-len(raw)) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.write(b"\0" * count)
    return path.stat().st_size


def time_openssl(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    return time.perf_counter() - t0


def time_engine(path: Path, root: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def time_cli(path: Path, root: Path) -> tuple[float, int]:
    cli = Path(sys.executable).with_name("supplychain")
    cmd = [str(cli), "scan", str(path), "--format", "json", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=False)
    return time.perf_counter() - t0, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/work/bench-st"))
    ap.add_argument("--gb", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--many", type=int, default=0, help="header-stress mode: N tiny tensors")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "model.safetensors"
    if args.many:
        try:
            size = build_many(path, args.many)
            out = subprocess.run(
                [sys.executable, "-c", MANY_CHILD, str(path)],
                check=True,
                capture_output=True,
                text=True,
                cwd=root,
            )
            res = json.loads(out.stdout)
            print(f"{args.many} tensors, header {(size - args.many - 8) / 1e6:.1f} MB")
            print(f"  scanner alone : {res['seconds']:.2f}s, findings {res['findings']}")
            print(
                f"  peak RSS      : {res['peak_rss_mib']:.0f} MiB "
                f"(after imports {res['rss_before_mib']:.0f} MiB)"
            )
        finally:
            if not args.keep:
                shutil.rmtree(args.dir, ignore_errors=True)
        return 0
    t0 = time.perf_counter()
    size = build(path, int(args.gb * 1e9))
    print(f"built {path} ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f}s")
    try:
        time_openssl(path)  # warm the page cache for every contender
        # Interleave the contenders so they share whatever else the machine is doing.
        ssl_runs: list[float] = []
        runs: list[dict[str, object]] = []
        clis: list[tuple[float, int]] = []
        for _ in range(args.repeat):
            ssl_runs.append(time_openssl(path))
            runs.append(time_engine(path, root))
            clis.append(time_cli(path, root))
        ssl = min(ssl_runs)
        best = min(runs, key=lambda r: float(str(r["seconds"])))
        eng = float(str(best["seconds"]))
        cli = min(t for t, _ in clis)
        rounds = sorted(float(str(r["seconds"])) / s for r, s in zip(runs, ssl_runs, strict=True))
        gb = size / 1e9
        rss = max(float(str(r["peak_rss_mib"])) for r in runs)
        print(f"openssl dgst -sha256       : {ssl:.2f}s ({gb / ssl:.2f} GB/s)")
        print(
            f"engine (SafetensorsScanner): {eng:.2f}s ({gb / eng:.2f} GB/s)  ratio {eng / ssl:.2f}x"
        )
        print(f"  per-round ratios         : {', '.join(f'{x:.2f}' for x in rounds)}")
        print(f"  scanner alone            : {float(str(best['scanner_seconds'])) * 1000:.1f} ms")
        print(f"  peak RSS                 : {rss:.0f} MiB")
        print(f"  kind / results           : {best['kind']} {best['results']}")
        print(f"  findings                 : {best['findings']}")
        print(f"supplychain scan (CLI)     : {cli:.2f}s  ratio {cli / ssl:.2f}x  exit {clis[0][1]}")
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
