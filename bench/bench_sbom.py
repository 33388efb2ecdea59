"""AI-BOM (issue #14): what the BOM costs on top of the scan it is built from.

Builds a model directory: a model card with front matter, ``config.json``, a ``requirements.txt``
of ``--pins`` pinned requirements, a safetensors file and ``--files`` small files (each one a
file component with its sha256), then times the real CLI in a subprocess (wall, and CPU of the
child from ``getrusage``), best of ``--repeat``:

- ``supplychain scan DIR -f json -q -j 1``: the scan alone, its JSON report rendered;
- ``supplychain sbom DIR -q -j 1 -o BOM``: the same scan, then the BOM built with
  cyclonedx-python-lib, the model card and data blocks added, and the whole document validated
  strictly (CycloneDX 1.6).

Also in-process: ``sbom.build`` on an already judged report, first call (imports the library and
compiles the schema) and a second call.

Usage: python bench/bench_sbom.py --files 2000 --pins 300 --repeat 3
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

CARD = """---
license: apache-2.0
base_model: google-bert/bert-base-uncased
datasets: [stanfordnlp/imdb]
pipeline_tag: text-classification
model-index:
- name: bench
  results:
  - task: {type: text-classification}
    dataset: {name: IMDB, type: stanfordnlp/imdb}
    metrics:
    - {type: accuracy, value: 0.93}
---
# bench
"""


def build_dir(root: Path, files: int, pins: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    root.mkdir(parents=True)
    (root / "README.md").write_text(CARD)
    (root / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForSequenceClassification"]})
    )
    (root / "requirements.txt").write_text(
        "".join(f"package-{i}=={i % 7}.{i % 11}.{i % 13}\n" for i in range(pins))
    )
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(root / "model.safetensors"))
    extra = root / "assets"
    extra.mkdir()
    for i in range(files):
        (extra / f"asset_{i:05d}.txt").write_text(f"asset {i}\n")


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and child CPU seconds of one CLI run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "supplychain", *argv],
        cwd=ROOT,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(argv: list[str], repeat: int) -> tuple[float, float]:
    runs = [run(argv) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--pins", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        build_dir(model, args.files, args.pins)
        bom = Path(tmp) / "bom.cdx.json"
        scan = best(["scan", str(model), "-f", "json", "-q", "-j", "1"], args.repeat)
        sbom_run = best(["sbom", str(model), "-q", "-j", "1", "-o", str(bom)], args.repeat)
        size = bom.stat().st_size

        from sbom import build
        from supplychain import service

        report = service.run_scan([model])
        t0 = time.process_time()
        build(report)
        first = time.process_time() - t0
        t0 = time.process_time()
        build(report)
        second = time.process_time() - t0
    total = args.files + 4
    print(f"model: {total} files, {args.pins} pinned requirements; BOM {size / 1e6:.2f} MB")
    print("| measurement | wall | CPU (child) |")
    print("| --- | --- | --- |")
    print(f"| `supplychain scan -f json` | {scan[0]:.2f} s | {scan[1]:.2f} s |")
    print(f"| `supplychain sbom` | {sbom_run[0]:.2f} s | {sbom_run[1]:.2f} s |")
    print(f"| in-process `sbom.build`, first call | | {first:.2f} s |")
    print(f"| in-process `sbom.build`, second call | | {second:.2f} s |")


if __name__ == "__main__":
    main()
