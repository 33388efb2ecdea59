"""Fuzz the zip walker (``scanners._zip``) through every scanner that reads zips.

The generic archive scanner, the torch checkpoint scanner, the npz scanner and the Keras v3
scanner each parse the central directory their own way, so all four see every input."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.archive_scan import ArchiveScanner
from scanners.keras_scan import KerasScanner
from scanners.numpy_scan import NumpyScanner
from scanners.torch_scan import TorchScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(ArchiveScanner, ArtifactKind.ZIP, "archive.zip"),
    Target(TorchScanner, ArtifactKind.TORCH_ZIP, "pytorch_model.bin"),
    Target(NumpyScanner, ArtifactKind.NUMPY_NPZ, "arrays.npz"),
    Target(KerasScanner, ArtifactKind.KERAS_ZIP, "model.keras"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_zip", sys.argv[1:]))
