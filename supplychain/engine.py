"""The scan engine: walk inputs, hash once, sniff by content, dispatch to scanners, build a Report.

Data flows one way: discover files → detect kind from bytes → scanners → findings. The engine
prints nothing and decides no verdict (that is ``policy.apply``).
"""

from __future__ import annotations

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
    GEN004,
    GEN005,
    GENERIC_RULES,
    Artifact,
    ScanContext,
    Scanner,
)
from scanners.dataset_base import DatasetOptions
from scanners.sniff import sniff
from supplychain import __version__
from supplychain.errors import ArtifactError, ConfigError, LimitExceeded, MissingDependency
from supplychain.limits import Limits
from supplychain.model import (
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


@dataclass(frozen=True, slots=True)
class _Item:
    """One file to scan, with the path the report will show."""

    fs_path: Path
    rel: str
    root: Path


@dataclass(slots=True)
class _Collector:
    """Everything one file produced (a file and its members are handled by one worker)."""

    records: list[ArtifactRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    results: list[ScanResult] = field(default_factory=list)


def discover(paths: Sequence[str | Path]) -> tuple[list[_Item], list[Finding], list[ScanResult]]:
    """Walk the targets in a stable order; never follow a symlink out of its root.

    Raises ``ConfigError`` for a target that does not exist (exit code 2).
    """
    items: list[_Item] = []
    findings: list[Finding] = []
    results: list[ScanResult] = []
    single_dir = len(paths) == 1
    for raw in paths:
        target = Path(raw)
        if not target.exists() and not target.is_symlink():
            raise ConfigError(f"no such file or directory: {raw}")
        if target.is_dir():
            root = target.resolve()
            prefix = "" if single_dir else target.name + "/"
            for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
                dirnames.sort()
                here = Path(dirpath)
                for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
                    fs_path = here / name
                    rel = prefix + fs_path.relative_to(target).as_posix()
                    _classify(fs_path, rel, root, items, findings, results)
        else:
            root = target.resolve().parent
            _classify(target, target.name, root, items, findings, results)
    return items, findings, results


def _classify(
    fs_path: Path,
    rel: str,
    root: Path,
    items: list[_Item],
    findings: list[Finding],
    results: list[ScanResult],
) -> None:
    if fs_path.is_symlink():
        try:
            resolved = fs_path.resolve(strict=True)
        except (OSError, RuntimeError):
            results.append(ScanResult("engine", rel, Status.SKIPPED, "dangling symlink"))
            return
        if not resolved.is_relative_to(root):
            findings.append(
                Finding(
                    rule=GEN004.id,
                    severity=GEN004.severity,
                    confidence=Confidence.HIGH,
                    message=f"symlink points outside the scan root to {resolved}",
                    location=Location(path=rel),
                    evidence=str(fs_path.readlink()),
                )
            )
            results.append(ScanResult("engine", rel, Status.SKIPPED, "symlink out of root"))
            return
        target_rel = resolved.relative_to(root).as_posix()
        results.append(
            ScanResult(
                "engine",
                rel,
                Status.SKIPPED,
                f"symlink to {target_rel} (scanned there)",
                expected=True,
            )
        )
        return
    try:
        mode = fs_path.stat().st_mode
    except OSError as exc:
        results.append(ScanResult("engine", rel, Status.FAILED, f"cannot stat: {exc.strerror}"))
        return
    if not stat.S_ISREG(mode):
        # NOTE: never open FIFOs or devices: a read would block or never end.
        results.append(ScanResult("engine", rel, Status.SKIPPED, "not a regular file"))
        return
    items.append(_Item(fs_path=fs_path, rel=rel, root=root))


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

    def run(self, item: _Item) -> _Collector:
        try:
            fh = item.fs_path.open("rb")
        except OSError as exc:
            self.out.findings.append(
                Finding(
                    rule=GEN005.id,
                    severity=GEN005.severity,
                    confidence=Confidence.HIGH,
                    message=f"cannot open file: {exc.strerror}",
                    location=Location(path=item.rel),
                )
            )
            self.out.results.append(
                ScanResult("engine", item.rel, Status.FAILED, f"cannot open: {exc.strerror}")
            )
            return self.out
        with fh:
            try:
                before = os.fstat(fh.fileno())
                digest, size = sha256_stream(fh)
                kind = sniff(fh, size, item.rel)
                fh.seek(0)
            except OSError as exc:
                self.out.results.append(
                    ScanResult("engine", item.rel, Status.FAILED, f"read error: {exc}")
                )
                return self.out
            self.out.records.append(ArtifactRecord(item.rel, kind, size, digest))
            artifact = Artifact(
                path=item.rel, kind=kind, size=size, stream=fh, fs_path=item.fs_path, root=item.root
            )
            self.out.findings.extend(self._run_scanners(artifact))
            try:
                after = item.fs_path.stat()
                changed = (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)
            except OSError:
                changed = True
            if changed:
                self.out.findings.append(
                    Finding(
                        rule=GEN003.id,
                        severity=GEN003.severity,
                        confidence=Confidence.HIGH,
                        message="file changed or vanished while it was being scanned",
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
    items, findings, results = discover(paths)
    records: list[ArtifactRecord] = []

    def work(item: _Item) -> _Collector:
        # Scanners hold no state between calls, but each worker gets its own instances anyway.
        return _FileScan([cls() for cls in classes], options).run(item)

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
