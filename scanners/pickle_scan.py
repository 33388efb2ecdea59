"""Pickle scanner: a file that is a pickle stream, analysed by ``scanners.pickle_analysis``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners.allowlist import ALLOWLIST_VERSION
from scanners.base import Artifact, ScanContext
from scanners.pickle_analysis import RULES, scan_pickle
from supplychain.core.model import ArtifactKind, Finding, Rule


class PickleScanner:
    """Analyses pickles (plain, joblib, dill/cloudpickle, stacked) without unpickling them.

    See ``Scanner.scan``. Allowlist ``scanners.allowlist.ALLOWLIST_VERSION`` judges imports.
    """

    name: ClassVar[str] = "pickle"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.PICKLE})
    rules: ClassVar[tuple[Rule, ...]] = RULES
    allowlist_version: ClassVar[str] = ALLOWLIST_VERSION

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``: walk ``artifact.stream`` from 0 to its end."""
        yield from scan_pickle(artifact, ctx)


__all__ = ["RULES", "PickleScanner", "scan_pickle"]
