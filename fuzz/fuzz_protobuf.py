"""Fuzz the protobuf walker (``scanners._protobuf``) through the ONNX and SavedModel scanners."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.onnx_scan import OnnxScanner
from scanners.tf_scan import SavedModelScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(OnnxScanner, ArtifactKind.ONNX, "model.onnx"),
    Target(SavedModelScanner, ArtifactKind.TF_SAVEDMODEL, "saved_model.pb"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_protobuf", sys.argv[1:]))
