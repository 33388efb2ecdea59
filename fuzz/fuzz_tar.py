"""Fuzz the tar walker and the other non-zip containers (7z, gzip, bzip2, xz, zlib, lz4).

Legacy torch checkpoints are tars, so the torch scanner's tar path runs on every input too."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.archive_scan import ArchiveScanner
from scanners.torch_scan import TorchScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(ArchiveScanner, ArtifactKind.TAR, "archive.tar"),
    Target(TorchScanner, ArtifactKind.TORCH_TAR, "model.tar"),
    Target(ArchiveScanner, ArtifactKind.SEVEN_ZIP, "archive.7z"),
    Target(ArchiveScanner, ArtifactKind.GZIP, "archive.tar.gz"),
    Target(ArchiveScanner, ArtifactKind.BZIP2, "archive.tar.bz2"),
    Target(ArchiveScanner, ArtifactKind.XZ, "archive.tar.xz"),
    Target(ArchiveScanner, ArtifactKind.ZLIB, "blob.zz"),
    Target(ArchiveScanner, ArtifactKind.LZ4, "blob.lz4"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_tar", sys.argv[1:]))
