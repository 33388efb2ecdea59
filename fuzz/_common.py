"""Shared harness plumbing: build artifacts the way the engine does and decide what is a bug.

A harness hands fuzzed bytes to a scanner exactly as ``supplychain.engine`` would: an
``Artifact`` over a seekable ``io.BytesIO`` and a ``ScanContext`` with default ``Limits``. The
product's own errors (``ArtifactError``, its subclass ``LimitExceeded``, ``MissingDependency``)
and ``RecursionError`` are outcomes the engine maps to GEN001/GEN002 findings or a skip, so they
are expected; any other exception escapes and the fuzzer records the input as a crash.
"""

from __future__ import annotations

import io
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scanners._io import sha256_stream
from scanners.base import Artifact, ScanContext, Scanner
from supplychain.core.errors import ArtifactError, MissingDependency
from supplychain.core.model import ArtifactKind, Finding

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ArtifactError,
    MissingDependency,
    RecursionError,
)
"""What the engine maps to a finding or a skip (``LimitExceeded`` is an ``ArtifactError``)."""


KNOWN_ISSUES_FILE = Path(__file__).resolve().parent / "known_issues.txt"


def signature(exc: BaseException) -> str:
    """``<ExceptionType> <file>:<function>`` of the innermost frame in the project's own code."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        parts = Path(frame.filename).parts
        for top in ("scanners", "supplychain"):
            if top in parts:
                rel = "/".join(parts[len(parts) - 1 - parts[::-1].index(top) :])
                where = f"{rel}:{frame.name}"
    return f"{type(exc).__name__} {where}"


def _known_issues() -> frozenset[str]:
    """Signatures of crashes already reported but not yet fixed, so a long run can go past them.

    Only the fuzzer honours this list (``FUZZ_KNOWN_ISSUES=1``, set by ``run.sh``); the replay
    tests never do, and each listed crash has its own regression test.
    """
    if os.environ.get("FUZZ_KNOWN_ISSUES") != "1" or not KNOWN_ISSUES_FILE.exists():
        return frozenset()
    lines = KNOWN_ISSUES_FILE.read_text().splitlines()
    return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


KNOWN = _known_issues()


def tolerate_known(exc: BaseException) -> None:
    """Swallow ``exc`` if it is a listed known issue; otherwise re-raise it."""
    if signature(exc) not in KNOWN:
        raise exc


class HarnessFailure(AssertionError):
    """The engine recorded a FAILED outcome: a scanner raised something it should not have."""


def drain_members(artifact: Artifact) -> Iterator[Finding]:
    """Dispatch stand-in for single-parser harnesses: read every member to its end, scan nothing.

    Reading the member runs the container's decompression and size checks, as the engine's
    hashing would, without spending fuzzing time in the member's own parser.
    """
    sha256_stream(artifact.stream)
    return iter(())


FUZZ_CTX = ScanContext(dispatch=drain_members)
"""Default ``Limits``; members are read but not parsed further."""


@dataclass(frozen=True, slots=True)
class Target:
    """One scanner entry point: which kind and file name the engine would hand it."""

    scanner: Callable[[], Scanner]
    kind: ArtifactKind
    name: str


def run_target(target: Target, data: bytes, ctx: ScanContext = FUZZ_CTX) -> list[Finding]:
    """Scan ``data`` as ``target`` would see it; expected product errors return no findings."""
    artifact = Artifact(path=target.name, kind=target.kind, size=len(data), stream=io.BytesIO(data))
    try:
        return list(target.scanner().scan(artifact, ctx))
    except EXPECTED_ERRORS:
        return []
    except Exception as exc:
        tolerate_known(exc)
        return []


def run_targets(targets: tuple[Target, ...], data: bytes, ctx: ScanContext = FUZZ_CTX) -> None:
    """Run every target on the same bytes (one harness covers a parser's several entry points)."""
    for target in targets:
        run_target(target, data, ctx)


class CaptureScannerErrors(logging.Handler):
    """Keeps the exception the engine logged when it turned a scanner crash into FAILED."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Remember the exception object so a harness can re-raise it with its traceback."""
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])
