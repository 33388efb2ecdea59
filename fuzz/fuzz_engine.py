"""Fuzz the whole per-file pipeline: hash, sniff by content, then every scanner that matches.

This goes through the engine's own per-file dispatcher, so members pulled out of containers are
sniffed and scanned recursively exactly as in a real scan. The engine never lets a scanner
exception escape (it records a FAILED outcome, which fails the gate); the harness turns any
FAILED outcome back into the exception the engine logged, so the fuzzer sees it as a crash.

``sniff`` uses the file name as a tie-breaker, so the name is picked from the input's last byte:
the mutator explores names and content together, and an input always replays the same way.
"""

from __future__ import annotations

import io
import logging

from fuzz._common import CaptureScannerErrors, HarnessFailure, tolerate_known
from scanners import BUILTIN_SCANNERS
from scanners.base import Artifact
from supplychain.core.model import ArtifactKind, Finding, Status
from supplychain.engine import ScanOptions, _FileScan

NAMES = (
    "model.bin",
    "model.pkl",
    "pytorch_model.bin",
    "model.pt",
    "model.safetensors",
    "model.gguf",
    "model.onnx",
    "saved_model.pb",
    "model.keras",
    "model.h5",
    "arrays.npz",
    "array.npy",
    "archive.zip",
    "archive.tar",
    "archive.tar.gz",
    "config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "train.jsonl",
    "train.csv",
    "train.parquet",
    "modeling_custom.py",
    "README.md",
    "data",
)


def name_for(data: bytes) -> str:
    """The file name this input is scanned under (deterministic, so crashes replay)."""
    return NAMES[data[-1] % len(NAMES)] if data else NAMES[0]


def scan_bytes(
    data: bytes, kind: ArtifactKind = ArtifactKind.UNKNOWN, name: str | None = None
) -> tuple[list[Finding], _FileScan]:
    """Scan ``data`` as one file through the engine; raise if any scanner outcome FAILED.

    ``kind`` other than ``UNKNOWN`` skips sniffing (the engine does the same for members whose
    kind a container already knows); ``name`` defaults to ``name_for(data)``.
    """
    capture = CaptureScannerErrors()
    logger = logging.getLogger("supplychain")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        file_scan = _FileScan([cls() for cls in BUILTIN_SCANNERS], ScanOptions())
        artifact = Artifact(
            path=name_for(data) if name is None else name,
            kind=kind,
            size=len(data),
            stream=io.BytesIO(data),
        )
        findings = list(file_scan.dispatch(artifact))
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    failed = [r for r in file_scan.out.results if r.status is Status.FAILED]
    if failed:
        first = failed[0]
        cause = capture.errors[0] if capture.errors else None
        raise HarnessFailure(
            f"{first.scanner} FAILED on {first.path}!{'!'.join(first.member)}: {first.reason}"
        ) from cause
    return findings, file_scan


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: the engine on one file."""
    try:
        scan_bytes(data)
    except HarnessFailure as exc:
        if exc.__cause__ is None:
            raise
        tolerate_known(exc.__cause__)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_engine", sys.argv[1:]))
