"""Fuzz the dataset readers (``scanners.dataset_io``) and the text checks behind them.

The full ``DatasetScanner`` runs on JSONL and CSV (readers, then every check: regex-heavy text
checks are where a slow input would show); Parquet and Arrow go through pyarrow's readers."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.dataset_scan import DatasetScanner
from supplychain.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(DatasetScanner, ArtifactKind.DATASET_JSONL, "train.jsonl"),
    Target(DatasetScanner, ArtifactKind.DATASET_CSV, "train.csv"),
    Target(DatasetScanner, ArtifactKind.DATASET_PARQUET, "train.parquet"),
    Target(DatasetScanner, ArtifactKind.DATASET_ARROW, "train.arrow"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_dataset_readers", sys.argv[1:]))
