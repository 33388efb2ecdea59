"""Fuzz the dataset readers (``scanners.dataset.readers``) and the text checks behind them.

The ``DatasetScanner`` runs on JSONL, CSV, Parquet and Arrow: the readers, then every check but
near-duplicates (regex-heavy text checks are where a slow input would show). The near-duplicate
check costs ~75-150 ms per file whatever its size (its LSH banding), which took this harness from
hundreds of inputs per second to 6 on the shared machine; ``fuzz_engine`` still runs it.
"""

from __future__ import annotations

from dataclasses import replace

from fuzz._common import FUZZ_CTX, Target, run_targets
from scanners.base import ScanContext
from scanners.dataset.common import DatasetOptions
from scanners.dataset.dups import NearDuplicateCheck
from scanners.dataset.runner import DATASET_CHECKS, DatasetScanner
from supplychain.core.model import ArtifactKind

CTX: ScanContext = replace(
    FUZZ_CTX,
    dataset=DatasetOptions(
        checks=frozenset(c.name for c in DATASET_CHECKS if c is not NearDuplicateCheck)
    ),
)

TARGETS: tuple[Target, ...] = (
    Target(DatasetScanner, ArtifactKind.DATASET_JSONL, "train.jsonl"),
    Target(DatasetScanner, ArtifactKind.DATASET_CSV, "train.csv"),
    Target(DatasetScanner, ArtifactKind.DATASET_PARQUET, "train.parquet"),
    Target(DatasetScanner, ArtifactKind.DATASET_ARROW, "train.arrow"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data, CTX)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_dataset_readers", sys.argv[1:]))
