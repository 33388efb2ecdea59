"""Test doubles that satisfy the Scanner protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners.base import Artifact, ScanContext
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity
from supplychain.core.rules import make_rule

TST001 = make_rule("TST001", "Marker found", Severity.HIGH, "test rule", "none")
TST002 = make_rule("TST002", "Low note", Severity.LOW, "test rule", "none")


class MarkerScanner:
    """Flags text files that contain MARKER; raises on BOOM, ArtifactError on BROKEN."""

    name: ClassVar[str] = "marker"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.TEXT})
    rules: ClassVar[tuple[Rule, ...]] = (TST001, TST002)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        data = artifact.stream.read(1 << 20)
        if b"BOOM" in data:
            raise RuntimeError("scanner bug")
        if b"BROKEN" in data:
            yield artifact.finding(TST002, "seen before the break")
            raise ArtifactError("cannot parse", offset=data.index(b"BROKEN"))
        if b"LIMIT" in data:
            raise LimitExceeded("too big")
        if b"MARKER" in data:
            yield artifact.finding(
                TST001, "marker", evidence="MARKER\x1b[31m", offset=data.index(b"MARKER")
            )
        if b"NOTE" in data:
            yield artifact.finding(TST002, "note")
