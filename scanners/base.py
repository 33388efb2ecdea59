"""The scanner seam: what a scanner is given, what it declares and what it yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol, TypeVar

from scanners.dataset.common import DatasetOptions
from supplychain.core.limits import ContainerTally, Limits
from supplychain.core.model import (
    ArtifactKind,
    Confidence,
    Fact,
    FactValue,
    Finding,
    Location,
    Rule,
    Severity,
)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One stream to scan: a file on disk or a member pulled out of a container.

    ``stream`` is seekable, positioned at 0, and holds exactly the bytes that were hashed; a
    scanner must never reopen ``fs_path`` to read content (that would open a TOCTOU gap).
    """

    path: str
    """POSIX path relative to the scan root (of the outermost file)."""
    kind: ArtifactKind
    size: int
    stream: BinaryIO
    member: tuple[str, ...] = ()
    """Archive member chain, outermost first; empty for a file on disk."""
    fs_path: Path | None = None
    """The real file, for scanners that must resolve siblings (ONNX external data, auto_map)."""
    root: Path | None = None
    """The scan root directory, for "does this stay inside the model directory" checks."""
    depth: int = 0
    """Container nesting depth (0 for a file on disk)."""

    @property
    def name(self) -> str:
        """Base name of the innermost member or file."""
        last = self.member[-1] if self.member else self.path
        return last.rsplit("/", 1)[-1]

    def location(self, offset: int | None = None, rows: tuple[int, ...] = ()) -> Location:
        """A ``Location`` inside this artifact."""
        return Location(path=self.path, member=self.member, offset=offset, rows=rows)

    def finding(
        self,
        rule: Rule,
        message: str,
        *,
        evidence: str = "",
        offset: int | None = None,
        rows: tuple[int, ...] = (),
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
        group: str | None = None,
    ) -> Finding:
        """Build a finding for ``rule`` here, at its default severity unless told otherwise."""
        return Finding(
            rule=rule.id,
            severity=rule.severity if severity is None else severity,
            confidence=confidence,
            message=message,
            location=self.location(offset, rows),
            evidence=evidence,
            group=group,
        )

    def fact(self, key: str, value: FactValue) -> Fact:
        """A fact about this artifact (the engine fills in which scanner emitted it)."""
        return Fact(key=key, value=value, location=self.location())

    def child(self, member: str, kind: ArtifactKind, size: int, stream: BinaryIO) -> Artifact:
        """An artifact for a member of this one (one level deeper)."""
        return replace(
            self,
            member=(*self.member, member),
            kind=kind,
            size=size,
            stream=stream,
            fs_path=None,
            depth=self.depth + 1,
        )


Dispatch = Callable[[Artifact], Iterator[Finding]]
"""Engine callback: sniff a member's kind if ``UNKNOWN``, record it, run every matching scanner."""


def _no_dispatch(artifact: Artifact) -> Iterator[Finding]:
    """Default for contexts built without an engine (unit tests): scan nothing further."""
    return iter(())


SectionT = TypeVar("SectionT")

SIBLING_READS: ContextVar[list[str] | None] = ContextVar("supplychain_sibling_reads", default=None)
"""Set by the engine around one file's scan; ``note_sibling_read`` appends to it."""


def note_sibling_read(what: str) -> None:
    """Declare that this file's result consulted something beside the file (a sibling file, the
    directory listing): the verdict then depends on more than the file's bytes, so the engine
    never serves it from the verdict cache (``docs/cache.md``). Call it before looking."""
    seen = SIBLING_READS.get()
    if seen is not None:
        seen.append(what)


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Everything a scanner may consult, passed to every scanner the same way."""

    limits: Limits = field(default_factory=Limits)
    extra_allowed_imports: frozenset[str] = frozenset()
    """Policy additions to the pickle import allowlist (``module.name`` or ``module.*``)."""
    dispatch: Dispatch = _no_dispatch
    """Hand a container member back to the engine so every scanner sees it (archives, npz…)."""
    dataset: DatasetOptions = field(default_factory=DatasetOptions)
    """Field choices and check selection for dataset scanners."""
    containers: ContainerTally = field(default_factory=ContainerTally)
    """Running cost of every container in the file being scanned (one context per top-level
    file): nested archives share one budget for bytes, members and time (``Limits``)."""
    sections: tuple[object, ...] = ()
    """Typed settings sections (frozen dataclasses) from ``supplychain.core.settings.Settings``; a
    scanner that declares ``settings_type`` reads its own with ``ctx.settings(...)``."""
    facts: list[Fact] = field(default_factory=list)
    """Where ``emit`` puts facts; the engine moves them into the per-file result."""

    def settings(self, section: type[SectionT]) -> SectionT:
        """This run's settings section of type ``section``, or its defaults.

        Scanners read their own typed section here instead of a per-feature context field, so a
        new option never needs threading through the CLI, options and context by hand.
        """
        for candidate in self.sections:
            if isinstance(candidate, section):
                return candidate
        if isinstance(self.dataset, section):  # compatibility: ``dataset`` is a section too
            return self.dataset
        return section()

    def emit(self, fact: Fact) -> None:
        """Record a fact about an artifact (see ``Fact``); never affects the verdict."""
        self.facts.append(fact)


class Scanner(Protocol):
    """One artifact family or analysis.

    ``scan`` yields findings and raises ``ArtifactError``/``LimitExceeded`` on bad input (the
    engine turns them into GEN001/GEN002 findings) or ``MissingDependency`` (a skip with reason).
    Anything else it raises makes the outcome FAILED, which fails the verdict.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[ArtifactKind]]
    rules: ClassVar[tuple[Rule, ...]]
    # Optional class attributes read with ``getattr`` (so existing scanners need not declare them):
    # ``version: ClassVar[str]`` (bumped when verdicts change; part of the settings fingerprint)
    # and ``settings_type: ClassVar[type]`` (the typed section it reads with ``ctx.settings``).

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Analyse one artifact without executing or deserializing it."""
        ...
