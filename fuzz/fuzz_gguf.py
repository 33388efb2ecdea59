"""Fuzz the GGUF header, metadata and tensor-info reader (``scanners.gguf_scan``)."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.gguf_scan import GgufScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (Target(GgufScanner, ArtifactKind.GGUF, "model.gguf"),)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_gguf", sys.argv[1:]))
