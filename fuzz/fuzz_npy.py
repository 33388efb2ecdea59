"""Fuzz the ``.npy`` header parser and object-array pickle hand-off (``scanners.numpy_scan``)."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.numpy_scan import NumpyScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (Target(NumpyScanner, ArtifactKind.NUMPY_NPY, "array.npy"),)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_npy", sys.argv[1:]))
