"""The scanner seam: what a scanner is given, what it declares and what it yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol, TypeVar

from scanners.dataset_base import DatasetOptions
from supplychain.limits import ContainerTally, Limits
from supplychain.model import (
    ArtifactKind,
    Confidence,
    Fact,
    FactValue,
    Finding,
    Location,
    Rule,
    RuleId,
    Severity,
)

SUPPLY_CHAIN = ("LLM03",)
"""OWASP LLM Top 10 (2025): supply chain."""
POISONING = ("LLM04",)
"""OWASP LLM Top 10 (2025): data and model poisoning."""
ATLAS_CODE_IN_MODEL = ("AML.T0010", "AML.T0011")
"""ML supply chain compromise; user execution of an unsafe ML artifact."""
ATLAS_POISONING = ("AML.T0020",)
"""Poison training data."""


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
    """Typed settings sections (frozen dataclasses) from ``supplychain.settings.Settings``; a
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


def make_rule(
    rule_id: str,
    title: str,
    severity: Severity,
    explanation: str,
    remediation: str,
    *,
    cwe: int | None = None,
    owasp_llm: tuple[str, ...] = SUPPLY_CHAIN,
    atlas: tuple[str, ...] = ATLAS_CODE_IN_MODEL,
    references: tuple[str, ...] = (),
) -> Rule:
    """Shorthand for a ``Rule`` with the supply-chain taxonomy as default."""
    return Rule(
        id=RuleId(rule_id),
        title=title,
        severity=severity,
        explanation=explanation,
        remediation=remediation,
        cwe=cwe,
        owasp_llm=owasp_llm,
        atlas=atlas,
        references=references,
    )


GEN001 = make_rule(
    "GEN001",
    "Malformed artifact",
    Severity.HIGH,
    "The file claims a known format but does not parse. Loaders are often more lenient than "
    "parsers, and attackers break streams right after a payload (nullifAI), so a file we cannot "
    "analyse is never treated as clean.",
    "Re-download the artifact from a trusted source, or convert it to a safe format "
    "(safetensors) in an isolated environment.",
    cwe=20,
)
GEN002 = make_rule(
    "GEN002",
    "Resource limit exceeded",
    Severity.HIGH,
    "Analysis stopped at a resource cap (size, member count, compression ratio, nesting, opcode "
    "count). Bombs and deeply nested containers are used to exhaust scanners and hide payloads "
    "past the point where analysis stops.",
    "Inspect the artifact by hand; raise the limit in the policy only if the artifact is trusted.",
    cwe=400,
)
GEN003 = make_rule(
    "GEN003",
    "File changed during scan",
    Severity.HIGH,
    "The file's size or modification time changed while it was being scanned, so the digest and "
    "the findings may not describe the same bytes.",
    "Scan a stable copy of the artifact.",
    cwe=367,
)
GEN004 = make_rule(
    "GEN004",
    "Symlink leaves the scan root",
    Severity.HIGH,
    "A symbolic link points outside the scanned directory, so its target was not scanned. "
    "Loaders follow links, so a model directory can pull in files that were never reviewed, or "
    "read secrets from the host. (Links from a Hugging Face cache snapshot into the same repo's "
    "blobs/ are followed and scanned, wherever the scan starts.)",
    "Replace the link by the file it should contain, or remove it; or scan the directory that "
    "holds both the link and its target.",
    cwe=59,
)
GEN005 = make_rule(
    "GEN005",
    "Unreadable file",
    Severity.HIGH,
    "The file could not be read, so it could not be analysed.",
    "Check permissions and that the file is complete, then scan again.",
)
GEN006 = make_rule(
    "GEN006",
    "Broken symbolic link",
    Severity.HIGH,
    "A symbolic link is dangling or loops. Nothing was scanned under its name, yet a loader "
    "opens that name: whoever can later create the missing target decides what gets loaded.",
    "Replace the link by the file it should contain, or remove it (re-download an incomplete "
    "Hugging Face cache entry).",
    cwe=59,
)
GEN007 = make_rule(
    "GEN007",
    "Unreadable directory",
    Severity.HIGH,
    "A directory inside the scan could not be listed, so none of its files were analysed. "
    "A loader running with other permissions may still read them.",
    "Check permissions, then scan again.",
)
GEN008 = make_rule(
    "GEN008",
    "Special file (FIFO, socket or device)",
    Severity.HIGH,
    "A FIFO, socket or device sits where a loader may open it. It is never opened by the scan "
    "(a read could block forever), and its content is whatever a writer feeds the reader at load "
    "time, so no scan can vouch for it. Model directories hold regular files only.",
    "Replace it with the regular file it should be, or remove it.",
)
GENERIC_RULES: tuple[Rule, ...] = (GEN001, GEN002, GEN003, GEN004, GEN005, GEN006, GEN007, GEN008)
"""Rules the engine itself emits."""
