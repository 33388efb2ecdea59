"""Report-level checks: questions only the whole set of scanned files can answer.

A file scanner sees one artifact; some problems live between files (a shard index naming a shard
that is absent or outside the model directory, a config naming code that is missing, external
data no graph claims, a lock file out of step). These checks run once per scan, after every file
was scanned and before the policy, on the file records and facts. They never open a file by a
name of their own: ``ReportView.read`` returns the bytes of a file the scan recorded, and only
when they still hash to the digest the report carries (so a check judges the scanned bytes).

Registry: the explicit ``BUILTIN_REPORT_CHECKS`` tuple, like the scanners.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

from scanners._paths import path_escape
from supplychain.core.model import (
    ArtifactRecord,
    Confidence,
    Fact,
    Finding,
    Location,
    Rule,
    ScanResult,
    Severity,
    Status,
)
from supplychain.core.rules import make_rule
from supplychain.deps.audit import DependencyAudit

_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class ReportView:
    """What a report-level check may consult: every file record and fact of the run."""

    files: tuple[ArtifactRecord, ...]
    facts: tuple[Fact, ...] = ()
    opened: Mapping[str, Path] = field(default_factory=dict)
    """Report path → the regular file the engine scanned under that name."""
    named: frozenset[str] = frozenset()
    """Report paths of files named on the command line (their siblings were not in scope)."""
    sections: tuple[object, ...] = ()
    """The run's typed settings sections (``Settings.sections``), read with ``settings``."""
    emitted: list[Fact] = field(default_factory=list)
    """Facts the checks add (``emit``); the engine puts them in the report."""

    def settings(self, section: type[_S]) -> _S:
        """This run's settings section of type ``section``, or its defaults."""
        for candidate in self.sections:
            if isinstance(candidate, section):
                return candidate
        return section()

    def emit(self, fact: Fact) -> None:
        """Add a fact to the report (e.g. the dependency audit's ``dependency.vulnerability``)."""
        self.emitted.append(fact)

    def read(self, record: ArtifactRecord, limit: int) -> bytes | None:
        """The bytes of a scanned top-level file, if at most ``limit`` and unchanged since.

        ``None`` when the file is a member, too big, unreadable or no longer hashes to
        ``record.sha256``: a check then says it could not judge instead of judging other bytes.
        """
        real = self.opened.get(record.path)
        if real is None or record.member or record.size > limit:
            return None
        try:
            with real.open("rb") as fh:
                data = fh.read(limit + 1)
        except OSError:
            return None
        if len(data) > limit or hashlib.sha256(data).hexdigest() != record.sha256:
            return None
        return data

    def facts_for(self, path: str, key: str) -> tuple[Fact, ...]:
        """Facts with ``key`` about the top-level file ``path``."""
        return tuple(
            f
            for f in self.facts
            if f.key == key and f.location.path == path and not f.location.member
        )


class ReportCheck(Protocol):
    """One check over the whole run (see the module docstring)."""

    name: ClassVar[str]
    rules: ClassVar[tuple[Rule, ...]]

    def check(self, view: ReportView) -> Iterator[Finding]:
        """Yield findings about relations between the scanned files."""
        ...


PRV001 = make_rule(
    "PRV001",
    "Shard index points outside the model directory",
    Severity.HIGH,
    "A ``*.index.json`` weight map names a shard by an absolute path or with ``..``. Loaders join "
    "these names to the model directory, so the model loads a file nobody reviewed from "
    "elsewhere on the host (a pickle shard there runs code).",
    "Rewrite the weight map to plain file names beside the index, or reject the model.",
    cwe=22,
)
PRV002 = make_rule(
    "PRV002",
    "Shard index names a shard that was not scanned",
    Severity.MEDIUM,
    "The weight map names a shard that is not in the scanned directory. A loader given this "
    "directory fails, and one given the repo id fetches the missing shard from the hub, where "
    "nothing here has checked it. A missing pickle shard (``.bin``, ``.pt``) is HIGH: it is code "
    "the loader would run unchecked.",
    "Download the complete model (every shard the index names) and scan it again.",
)
PRV003 = make_rule(
    "PRV003",
    "Weights file not named by the shard index",
    Severity.LOW,
    "A weights file of the indexed format sits beside a shard index that does not name it. "
    "``from_pretrained`` ignores it, but loaders that glob ``*.safetensors`` or ``*.bin`` load it, "
    "so what runs depends on the loader. Leftover or smuggled weights deserve a look.",
    "Remove weights the index does not use, or add them to the index.",
)
PRV004 = make_rule(
    "PRV004",
    "Shard index could not be read",
    Severity.HIGH,
    "A ``*.index.json`` beside the weights is not a readable JSON weight map (or changed since it "
    "was scanned), so the set of shards a loader opens is unknown.",
    "Re-download the index from a trusted source and scan again.",
    cwe=20,
)

INDEX_LIMIT = 64 * 2**20
"""Largest shard index read (real ones are a few MB for thousands of tensors)."""
PICKLE_SHARD_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ShardIndexCheck:
    """``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` against the files."""

    name: ClassVar[str] = "shard-index"
    rules: ClassVar[tuple[Rule, ...]] = (PRV001, PRV002, PRV003, PRV004)

    def check(self, view: ReportView) -> Iterator[Finding]:
        """See ``ReportCheck.check``."""
        on_disk = {r.path for r in view.files if not r.member}
        for record in view.files:
            if record.member or not record.path.endswith(".index.json"):
                continue
            yield from self._one(view, record, on_disk)

    def _one(self, view: ReportView, index: ArtifactRecord, on_disk: set[str]) -> Iterator[Finding]:
        here = Location(path=index.path)

        def finding(
            rule: Rule, message: str, evidence: str, severity: Severity | None = None
        ) -> Finding:
            return Finding(
                rule=rule.id,
                severity=rule.severity if severity is None else severity,
                confidence=Confidence.HIGH,
                message=message,
                location=here,
                evidence=evidence,
            )

        data = view.read(index, INDEX_LIMIT)
        weight_map = None
        if data is not None:
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError):
                doc = None
            weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
        if not isinstance(weight_map, dict):
            if data is None or _claims_weight_map(index.path):
                why = (
                    "changed since it was scanned, or too big" if data is None else "no weight_map"
                )
                yield finding(PRV004, f"shard index not usable: {why}", index.path)
            return
        directory = posixpath.dirname(index.path)
        shards = sorted({v for v in weight_map.values() if isinstance(v, str)})
        if any(not isinstance(v, str) for v in weight_map.values()):
            yield finding(PRV004, "weight_map has a non-string shard name", index.path)
        named: set[str] = set()
        for shard in shards:
            if _escapes(shard):
                yield finding(PRV001, f"weight map names {shard!r} outside the directory", shard)
                continue
            path = posixpath.normpath(posixpath.join(directory, shard)) if directory else shard
            named.add(path)
            if index.path in view.named or path in on_disk:
                continue
            pickle_shard = shard.lower().endswith(PICKLE_SHARD_SUFFIXES)
            yield finding(
                PRV002,
                f"weight map names shard {shard!r}, which is not in the scanned directory",
                shard,
                Severity.HIGH if pickle_shard else None,
            )
        if index.path in view.named:
            return
        suffix = _weights_suffix([s for s in shards if not _escapes(s)])
        if suffix is None:
            return
        for path in sorted(on_disk):
            if posixpath.dirname(path) == directory and path.endswith(suffix) and path not in named:
                yield finding(
                    PRV003,
                    f"{posixpath.basename(path)} is not named by {posixpath.basename(index.path)}",
                    posixpath.basename(path),
                )


def _claims_weight_map(path: str) -> bool:
    name = posixpath.basename(path).lower()
    return name.endswith((".safetensors.index.json", ".bin.index.json"))


def _escapes(shard: str) -> bool:
    """Absolute, drive-qualified, backslashed or ``..``-climbing shard names (judged by the one
    path-escape test, ``scanners._paths.path_escape``; a shard name has no use for ``\\`` or ``:``).
    """
    if not shard or "\\" in shard or (len(shard) > 1 and shard[1] == ":"):
        return True
    return path_escape(shard) is not None


def _weights_suffix(shards: list[str]) -> str | None:
    """The one weights suffix the index's shards share (``.safetensors``, ``.bin``), if any."""
    suffixes = {posixpath.splitext(s)[1].lower() for s in shards}
    if len(suffixes) == 1:
        (suffix,) = suffixes
        if suffix in (".safetensors", *PICKLE_SHARD_SUFFIXES):
            return suffix
    return None


BUILTIN_REPORT_CHECKS: tuple[type[ReportCheck], ...] = (ShardIndexCheck, DependencyAudit)
"""Every built-in report-level check, in run order."""


def run_checks(
    checks: tuple[type[ReportCheck], ...], view: ReportView
) -> tuple[list[Finding], list[ScanResult], tuple[Rule, ...]]:
    """Run ``checks`` over ``view``: findings, one outcome per check, and their rules.

    A check that raises is a FAILED outcome (fails the gate), never a silent pass.
    """
    findings: list[Finding] = []
    results: list[ScanResult] = []
    rules: list[Rule] = []
    for cls in checks:
        rules.extend(cls.rules)
        try:
            findings.extend(cls().check(view))
        except Exception as exc:
            results.append(
                ScanResult(
                    f"check:{cls.name}", "(report)", Status.FAILED, f"{type(exc).__name__}: {exc}"
                )
            )
    return findings, results, tuple(rules)


__all__ = [
    "BUILTIN_REPORT_CHECKS",
    "PRV001",
    "PRV002",
    "PRV003",
    "PRV004",
    "ReportCheck",
    "ReportView",
    "ShardIndexCheck",
    "run_checks",
]
