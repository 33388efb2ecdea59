"""Cost of pulling a model over the OCI API before scanning it (issue #15, Harbor adapter).

A fake registry (``tests/fake_registry.py``, a real HTTP server on 127.0.0.1 in this process)
serves a ModelPack artifact: one safetensors layer of ``--mib`` MiB (random data) plus a small
config layer. Measured, median of ``--repeat`` runs, on the calling thread only (the registry's
threads are excluded with ``RUSAGE_THREAD``):

1. ``run_scan`` of the same files already on local disk (the baseline);
2. ``supplychain.oci.scan_artifact``: manifest, streamed download with the digest checked as it
   arrives, layout in a temp dir, then the same scan.

Usage: ``python bench/bench_oci.py [--mib 512] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from supplychain.oci import scan_artifact  # noqa: E402
from supplychain.service import run_scan  # noqa: E402
from tests.fake_registry import WEIGHT_RAW, fake_registry  # noqa: E402


def safetensors_of(mib: int) -> bytes:
    n = mib * 2**20 // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + os.urandom(n * 4)


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_THREAD)
    fn()
    r1 = resource.getrusage(resource.RUSAGE_THREAD)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return time.perf_counter() - t0, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    weights = safetensors_of(args.mib)
    config = b'{"architectures": ["BertModel"], "model_type": "bert"}'
    with tempfile.TemporaryDirectory() as tmp, fake_registry() as registry:
        local = Path(tmp) / "model"
        local.mkdir()
        (local / "model.safetensors").write_bytes(weights)
        (local / "config.json").write_bytes(config)
        digest = registry.push_model(
            "ml/bench",
            [("model.safetensors", weights, WEIGHT_RAW), ("config.json", config, WEIGHT_RAW)],
        )
        rows: dict[str, list[tuple[float, float]]] = {"local scan": [], "OCI pull + scan": []}
        for _ in range(args.repeat):
            rows["local scan"].append(measure(lambda: run_scan([local])))
            rows["OCI pull + scan"].append(
                measure(lambda: scan_artifact(registry.url, "ml/bench", digest, workdir=tmp))
            )
            report = scan_artifact(registry.url, "ml/bench", digest, workdir=tmp).report
            assert report.verdict is not None and report.verdict.passed, report.findings
    size_mb = len(weights) / 1e6
    print(f"artifact: {size_mb:.0f} MB safetensors + config, median of {args.repeat}")
    base_wall = statistics.median(w for w, _ in rows["local scan"])
    base_cpu = statistics.median(c for _, c in rows["local scan"])
    for name, samples in rows.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(
            f"{name:16s} wall {wall:6.2f} s ({size_mb / wall:6.0f} MB/s)  "
            f"CPU {cpu:6.2f} s  wall x{wall / base_wall:4.2f}  CPU x{cpu / base_cpu:4.2f}"
        )


if __name__ == "__main__":
    main()
