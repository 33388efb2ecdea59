"""Fuzz the safetensors header and layout checks (``scanners.safetensors_scan``)."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.safetensors_scan import SafetensorsScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(SafetensorsScanner, ArtifactKind.SAFETENSORS, "model.safetensors"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_safetensors", sys.argv[1:]))
