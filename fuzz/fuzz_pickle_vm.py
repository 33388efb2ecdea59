"""Fuzz the symbolic pickle machine (``scanners.pickle_vm``) through ``PickleScanner``.

The C batch skimmer, when built, runs here too: a crash inside it kills the process, which
libFuzzer reports as a deadly signal."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.pickle_scan import PickleScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (Target(PickleScanner, ArtifactKind.PICKLE, "model.pkl"),)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_pickle_vm", sys.argv[1:]))
