"""The scan engine: walk inputs, hash once, sniff by content, dispatch to scanners, build a Report.

Data flows one way: discover files → detect kind from bytes → scanners → findings. The engine
prints nothing and decides no verdict (that is ``policy.apply``).
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from scanners import BUILTIN_SCANNERS
from scanners._io import sha256_stream
from scanners.base import (
    GEN001,
    GEN002,
    GEN003,
    GEN005,
    GEN008,
    GENERIC_RULES,
    Artifact,
    ScanContext,
    Scanner,
)
from scanners.dataset_base import DatasetOptions
from scanners.sniff import sniff
from supplychain import __version__
from supplychain.discover import Item, Name, TargetError, discover, special_kind
from supplychain.errors import ArtifactError, LimitExceeded, MissingDependency
from supplychain.limits import Limits
from supplychain.model import (
    EVIDENCE_LIMIT,
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Finding,
    Location,
    Report,
    Rule,
    ScanResult,
    Severity,
    Status,
    escape_evidence,
)

log = logging.getLogger("supplychain")

NO_ANALYSIS_REASONS: dict[ArtifactKind, str] = {
    ArtifactKind.UNKNOWN: "unrecognised format",
    ArtifactKind.TEXT: "plain text: no analysis applies",
    ArtifactKind.TFLITE: "TFLite recognised; not analysed yet",
    ArtifactKind.COREML: "Core ML recognised; not analysed yet",
    ArtifactKind.FLAX_MSGPACK: "Flax msgpack recognised; not analysed yet",
    ArtifactKind.LLAMAFILE: "llamafile recognised; not analysed yet",
}
BENIGN_SKIP_KINDS = frozenset({ArtifactKind.TEXT})
"""Kinds whose skip is expected; ``--strict`` still fails on every other skipped kind."""

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to run a scan; built by the CLI from flags and the policy file."""

    limits: Limits = field(default_factory=Limits)
    extra_allowed_imports: frozenset[str] = frozenset()
    jobs: int = 1
    scanners: tuple[type[Scanner], ...] | None = None
    """Scanner classes to run; ``None`` means ``BUILTIN_SCANNERS``."""
    command: str = "scan"
    dataset: DatasetOptions = field(default_factory=DatasetOptions)


@dataclass(slots=True)
class _Collector:
    """Everything one file produced (a file and its members are handled by one worker)."""

    records: list[ArtifactRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    results: list[ScanResult] = field(default_factory=list)


def _renamed(finding: Finding, name: Name) -> Finding:
    """The same finding reported under another name of the file (link target in the evidence).

    Built with ``copy`` + ``object.__setattr__`` so already-escaped text is not escaped twice.
    """
    out = copy.copy(finding)
    object.__setattr__(out, "location", replace(finding.location, path=name.rel))
    if name.link is not None:
        via = escape_evidence(f" [symlink -> {name.link}]")
        if len(finding.evidence) + len(via) <= EVIDENCE_LIMIT:
            object.__setattr__(out, "evidence", (finding.evidence + via).lstrip())
        else:  # long payload evidence is kept whole; the message carries the link instead
            object.__setattr__(out, "message", finding.message + via)
    return out


def _attribute(got: _Collector, item: Item) -> _Collector:
    """Report what one scan of a file found under every name of that file (see discover)."""
    if len(item.names) == 1 and item.names[0].link is None:
        return got
    primary = item.rel
    out = _Collector()
    for name in item.names:
        out.findings.extend(
            _renamed(f, name) if f.location.path == primary else f for f in got.findings
        )
        out.records.extend(
            replace(r, path=name.rel) if r.path == primary else r for r in got.records
        )
        out.results.extend(
            replace(r, path=name.rel) if r.path == primary else r for r in got.results
        )
    return out


class _FileScan:
    """Scans one file and every member pulled out of it, collecting into one ``_Collector``."""

    def __init__(self, scanner_objs: Sequence[Scanner], options: ScanOptions) -> None:
        self.scanners = scanner_objs
        self.options = options
        self.out = _Collector()
        self.ctx = ScanContext(
            limits=options.limits,
            extra_allowed_imports=options.extra_allowed_imports,
            dispatch=self.dispatch,
            dataset=options.dataset,
        )

    def _unreadable(self, item: Item, rule: Rule, what: str) -> _Collector:
        """A file that cannot be analysed: operational for a named target, else a finding."""
        if item.top_level:
            raise TargetError(f"cannot scan {item.fs_path}: {what}")
        self.out.findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                confidence=Confidence.HIGH,
                message=what,
                location=Location(path=item.rel),
            )
        )
        self.out.results.append(ScanResult("engine", item.rel, Status.FAILED, what))
        return self.out

    def run(self, item: Item) -> _Collector:
        """Open the discovered file once (never blocking, never through a swapped-in link)."""
        try:
            # NOTE: O_NONBLOCK so a FIFO swapped in after discovery cannot hang the open;
            # O_NOFOLLOW so a link swapped in for the resolved path is refused (TOCTOU).
            fd = os.open(item.real, _OPEN_FLAGS)
        except OSError as exc:
            reason = "vanished before it was opened" if exc.errno == errno.ENOENT else None
            return self._unreadable(item, GEN005, f"cannot open file: {reason or exc.strerror}")
        fh = os.fdopen(fd, "rb")
        with fh:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                what = special_kind(before.st_mode)
                return self._unreadable(item, GEN008, f"replaced by a {what} during the scan")
            if (before.st_dev, before.st_ino) != (item.device, item.inode):
                return self._unreadable(item, GEN003, "replaced between discovery and open")
            try:
                digest, size = sha256_stream(fh)
                kind = sniff(fh, size, item.rel)
                fh.seek(0)
            except OSError as exc:
                return self._unreadable(item, GEN005, f"read error: {exc.strerror or exc}")
            self.out.records.append(ArtifactRecord(item.rel, kind, size, digest))
            artifact = Artifact(
                path=item.rel, kind=kind, size=size, stream=fh, fs_path=item.fs_path, root=item.root
            )
            self.out.findings.extend(self._run_scanners(artifact))
            change = _changed(item, before)
            if change is not None:
                if item.top_level and change.startswith("vanished"):
                    raise TargetError(f"{item.fs_path} {change}")
                self.out.findings.append(
                    Finding(
                        rule=GEN003.id,
                        severity=GEN003.severity,
                        confidence=Confidence.HIGH,
                        message=f"file {change}",
                        location=Location(path=item.rel),
                    )
                )
        return self.out

    def dispatch(self, artifact: Artifact) -> Iterator[Finding]:
        """See ``ScanContext.dispatch``: hash and sniff a member, then run its scanners."""
        if artifact.depth > self.options.limits.max_nesting:
            yield artifact.finding(
                GEN002,
                f"container nesting deeper than {self.options.limits.max_nesting} levels",
                evidence="!".join(artifact.member),
            )
            return
        digest, size = sha256_stream(artifact.stream)
        kind = artifact.kind
        if kind is ArtifactKind.UNKNOWN:
            kind = sniff(artifact.stream, size, artifact.name)
        artifact.stream.seek(0)
        artifact = replace(artifact, kind=kind, size=size)
        self.out.records.append(
            ArtifactRecord(artifact.path, kind, size, digest, member=artifact.member)
        )
        yield from self._run_scanners(artifact)

    def _run_scanners(self, artifact: Artifact) -> Iterator[Finding]:
        matching = [s for s in self.scanners if artifact.kind in s.kinds]
        if not matching:
            reason = NO_ANALYSIS_REASONS.get(artifact.kind, f"no scanner for {artifact.kind.value}")
            self.out.results.append(
                ScanResult(
                    "engine",
                    artifact.path,
                    Status.SKIPPED,
                    reason,
                    artifact.member,
                    expected=artifact.kind in BENIGN_SKIP_KINDS,
                )
            )
            return
        cap = self.options.limits.max_findings_per_file
        for scanner in matching:
            started = time.perf_counter()
            status, reason = Status.SCANNED, ""
            emitted = 0
            dropped = 0
            try:
                artifact.stream.seek(0)
                for finding in scanner.scan(artifact, self.ctx):
                    if emitted >= cap:
                        dropped += 1
                        continue
                    emitted += 1
                    yield finding
            except LimitExceeded as exc:
                reason = f"limit: {exc}"
                yield artifact.finding(GEN002, str(exc), offset=exc.offset)
            except ArtifactError as exc:
                reason = f"malformed: {exc}"
                yield artifact.finding(GEN001, f"{artifact.kind.value}: {exc}", offset=exc.offset)
            except MissingDependency as exc:
                status, reason = Status.SKIPPED, f"missing dependency: {exc}"
            except RecursionError:
                reason = "nesting too deep to analyse"
                yield artifact.finding(GEN002, "structure nested too deeply to analyse")
            except MemoryError:
                status, reason = Status.FAILED, "out of memory"
            except Exception as exc:
                log.debug("scanner %s failed on %s", scanner.name, artifact.path, exc_info=True)
                status, reason = Status.FAILED, f"{type(exc).__name__}: {exc}"
            if dropped:
                yield artifact.finding(
                    GEN002,
                    f"{dropped} more findings from {scanner.name} not recorded",
                    severity=Severity.INFO,
                )
            self.out.results.append(
                ScanResult(
                    scanner.name,
                    artifact.path,
                    status,
                    reason,
                    artifact.member,
                    time.perf_counter() - started,
                )
            )


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


def _changed(item: Item, before: os.stat_result) -> str | None:
    """Why the file on disk no longer matches what was scanned, or ``None``."""
    try:
        after = item.real.lstat()
    except FileNotFoundError:
        return "vanished while it was being scanned"
    except OSError as exc:
        return f"could no longer be read after the scan ({exc.strerror})"
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        return "was replaced while it was being scanned"
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        return "changed while it was being scanned"
    if item.fs_path != item.real and not item.top_level:
        try:
            if item.fs_path.resolve(strict=True) != item.real:
                return "link was retargeted while it was being scanned"
        except (OSError, RuntimeError):
            return "link vanished while it was being scanned"
    return None


def rules_for(scanner_classes: Sequence[type[Scanner]]) -> tuple[Rule, ...]:
    """Every rule the engine and these scanners can emit, sorted by id, without duplicates."""
    seen: dict[str, Rule] = {r.id: r for r in GENERIC_RULES}
    for cls in scanner_classes:
        for r in cls.rules:
            seen.setdefault(r.id, r)
    return tuple(sorted(seen.values(), key=lambda r: r.id))


def scan_paths(
    paths: Sequence[str | Path],
    options: ScanOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Scan files and directories and return an unevaluated ``Report`` (no verdict yet)."""
    options = options or ScanOptions()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    classes = options.scanners if options.scanners is not None else BUILTIN_SCANNERS
    found = discover(paths)
    items, findings, results = found.items, found.findings, found.results
    records: list[ArtifactRecord] = []

    def work(item: Item) -> _Collector:
        # Scanners hold no state between calls, but each worker gets its own instances anyway.
        return _attribute(_FileScan([cls() for cls in classes], options).run(item), item)

    done = 0
    jobs = max(1, options.jobs)
    if jobs == 1 or len(items) <= 1:
        outcomes: Iterator[_Collector] = map(work, items)
        pool = None
    else:
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="supplychain-scan")
        outcomes = pool.map(work, items)
    try:
        for item, got in zip(items, outcomes, strict=True):
            records.extend(got.records)
            findings.extend(got.findings)
            results.extend(got.results)
            done += 1
            if progress is not None:
                progress(done, len(items), item.rel)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return Report(
        tool_version=__version__,
        target=tuple(str(p) for p in paths),
        started_at=started_at,
        seconds=round(time.perf_counter() - t0, 3),
        files=tuple(sorted(records, key=lambda r: (r.path, r.member))),
        findings=tuple(sorted(findings, key=Finding.sort_key)),
        results=tuple(sorted(results, key=lambda r: (r.path, r.member, r.scanner, r.status.value))),
        rules=rules_for(classes),
        command=options.command,
    )


__all__ = ["GEN001", "GEN002", "ScanOptions", "discover", "rules_for", "scan_paths"]
