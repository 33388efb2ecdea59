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
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from scanners import BUILTIN_SPECS, ScannerSpec
from scanners._io import sha256_stream
from scanners.base import SIBLING_READS, Artifact, ScanContext, Scanner
from scanners.dataset.common import DatasetOptions
from scanners.sniff import sniff
from supplychain import __version__
from supplychain.checks import ReportCheck
from supplychain.core.errors import ArtifactError, LimitExceeded, MissingDependency
from supplychain.core.limits import Limits
from supplychain.core.model import (
    EVIDENCE_LIMIT,
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Fact,
    Finding,
    Location,
    Report,
    Rule,
    ScanResult,
    Severity,
    Status,
    escape_evidence,
)
from supplychain.core.rules import GEN001, GEN002, GEN003, GEN005, GEN008, GENERIC_RULES
from supplychain.discover import Item, Name, TargetError, discover, special_kind

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from supplychain.cache import Identity, VerdictCache

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
_T = TypeVar("_T")
Executor_ = Literal["auto", "serial", "thread", "process", "ray"]

PROCESS_MIN_FILES = 4
"""Below this many files a process pool costs more to start than it saves."""
PROCESS_MIN_BYTES = 2 * 2**20
"""Below this many bytes in all, too: starting the pool (~0.17 s wall) would dominate a small
model directory that threads scan in a fraction of that. Not higher: pickles cost about 1 s of
GIL-bound CPU per MiB, so an 8 MiB tree of them on threads ran no faster than serial
(bench/README.md, issue #12)."""

FILE_PLACEHOLDER = "\x00file"
"""The path a per-file result carries before the report applies the file's name(s): a NUL
byte can never occur in a POSIX path, so no real path is mistaken for it."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How the engine runs a scan; built by ``supplychain.service`` from typed ``Settings``."""

    limits: Limits = field(default_factory=Limits)
    extra_allowed_imports: frozenset[str] = frozenset()
    jobs: int = 1
    scanners: tuple[type[Scanner], ...] | None = None
    """Scanner classes to run; ``None`` means every built-in scanner (``BUILTIN_SPECS``),
    each imported only when a file of one of its kinds turns up."""
    command: str = "scan"
    dataset: DatasetOptions = field(default_factory=DatasetOptions)
    sections: tuple[object, ...] = ()
    """Typed settings sections scanners read with ``ScanContext.settings``."""
    executor: Executor_ = "auto"
    """``auto``: processes for CPU-bound many-file trees (pickle analysis holds the GIL), else
    threads; ``serial``, ``thread`` and ``process`` force one."""
    report_checks: tuple[type[ReportCheck], ...] | None = None
    """Report-level checks run after the file scans; ``None`` means ``BUILTIN_REPORT_CHECKS``."""
    cache: VerdictCache | None = None
    """Verdict cache (``supplychain.cache``): per-file results keyed by (sha256, ``fingerprint``,
    base name); ``None`` scans everything."""
    fingerprint: str = ""
    """``Settings.fingerprint()`` of the settings these options came from (the cache key)."""
    select: Callable[[str], bool] | None = None
    """Only files whose report path this accepts are read and reported (``supplychain deps``
    wants requirement files, not gigabytes of weights); ``None`` takes every file."""


@dataclass(slots=True)
class _Collector:
    """Everything one file produced (a file and its members are handled by one worker)."""

    records: list[ArtifactRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    results: list[ScanResult] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file's scan produced, relative to the file: every path is ``FILE_PLACEHOLDER``.

    Computed from the bytes (plus the name as a sniffing hint and the settings), so a verdict
    cache can key it by (sha256, settings fingerprint); the report applies the file's name(s)
    with ``apply_names``. Picklable frozen data, so worker processes can hand it back.
    """

    records: tuple[ArtifactRecord, ...] = ()
    findings: tuple[Finding, ...] = ()
    results: tuple[ScanResult, ...] = ()
    facts: tuple[Fact, ...] = ()


def _set(obj: _T, name: str, value: object) -> _T:
    """A copy of a frozen, already-validated object with one field changed (no re-escaping)."""
    out = copy.copy(obj)
    object.__setattr__(out, name, value)
    return out


def _relative(got: _Collector, rel: str) -> FileResult:
    """Strip the scanned name out of one file's output (see ``FileResult``)."""

    def loc(location: Location) -> Location:
        return replace(location, path=FILE_PLACEHOLDER) if location.path == rel else location

    findings = []
    for f in got.findings:
        out = f
        if f.location.path == rel:
            out = _set(out, "location", loc(f.location))
        if f.group is not None and rel in f.group:
            out = _set(out, "group", f.group.replace(rel, FILE_PLACEHOLDER))
        findings.append(out)
    return FileResult(
        records=tuple(
            replace(r, path=FILE_PLACEHOLDER) if r.path == rel else r for r in got.records
        ),
        findings=tuple(findings),
        results=tuple(
            replace(r, path=FILE_PLACEHOLDER) if r.path == rel else r for r in got.results
        ),
        facts=tuple(_set(f, "location", loc(f.location)) for f in got.facts),
    )


def _renamed(finding: Finding, name: Name) -> Finding:
    """The finding reported under one name of the file (link target in the evidence).

    Built with ``copy`` + ``object.__setattr__`` so already-escaped text is not escaped twice.
    """
    out = copy.copy(finding)
    object.__setattr__(out, "location", replace(finding.location, path=name.rel))
    if finding.group is not None and FILE_PLACEHOLDER in finding.group:
        object.__setattr__(out, "group", finding.group.replace(FILE_PLACEHOLDER, name.rel))
    if name.link is not None:
        via = escape_evidence(f" [symlink -> {name.link}]")
        if len(finding.evidence) + len(via) <= EVIDENCE_LIMIT:
            object.__setattr__(out, "evidence", (finding.evidence + via).lstrip())
        else:  # long payload evidence is kept whole; the message carries the link instead
            object.__setattr__(out, "message", finding.message + via)
    return out


def apply_names(result: FileResult, names: Sequence[Name]) -> _Collector:
    """Report one file's result under every name of that file (see ``discover``)."""
    out = _Collector()
    for name in names:
        for f in result.findings:
            if f.location.path == FILE_PLACEHOLDER:
                out.findings.append(_renamed(f, name))
            else:
                out.findings.append(f)
        for r in result.records:
            out.records.append(replace(r, path=name.rel) if r.path == FILE_PLACEHOLDER else r)
        for o in result.results:
            out.results.append(replace(o, path=name.rel) if o.path == FILE_PLACEHOLDER else o)
        for fact in result.facts:
            place = fact.location
            if place.path == FILE_PLACEHOLDER:
                fact = _set(fact, "location", replace(place, path=name.rel))
            out.facts.append(fact)
    return out


class _Scanners:
    """The scanners of one file scan, instantiated (and their modules imported) on first need."""

    def __init__(self, specs: Sequence[ScannerSpec]) -> None:
        self.specs = specs
        self.loaded: dict[ScannerSpec, Scanner] = {}

    def for_kind(self, kind: ArtifactKind) -> list[Scanner]:
        out = []
        for spec in self.specs:
            if kind in spec.kinds:
                if spec not in self.loaded:
                    self.loaded[spec] = spec.load()()
                out.append(self.loaded[spec])
        return out


class _FileScan:
    """Scans one file and every member pulled out of it, collecting into one ``_Collector``."""

    def __init__(self, scanner_objs: Sequence[Scanner] | _Scanners, options: ScanOptions) -> None:
        self.scanners = scanner_objs
        self.options = options
        self.out = _Collector()
        self.digest: str | None = None
        """sha256 of the file's content, once hashed."""
        self.identity: Identity | None = None
        """The file's identity, when it was stable across the scan and old enough to trust."""
        self.hit: FileResult | None = None
        """A cached result found by digest after hashing (then nothing was scanned)."""
        self.ctx = ScanContext(
            limits=options.limits,
            extra_allowed_imports=options.extra_allowed_imports,
            dispatch=self.dispatch,
            dataset=options.dataset,
            sections=options.sections,
        )

    def _matching(self, kind: ArtifactKind) -> list[Scanner]:
        if isinstance(self.scanners, _Scanners):
            return self.scanners.for_kind(kind)
        return [s for s in self.scanners if kind in s.kinds]

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
            started_ns = time.time_ns()
            try:
                digest, size = sha256_stream(fh)
                self.digest = digest
                if self.options.cache is not None and self._cached(
                    item, fh.fileno(), before, started_ns
                ):
                    return self.out
                kind = sniff(fh, size, item.rel)
                fh.seek(0)
            except OSError as exc:
                return self._unreadable(item, GEN005, f"read error: {exc.strerror or exc}")
            self.out.records.append(ArtifactRecord(item.rel, kind, size, digest))
            artifact = Artifact(
                path=item.rel, kind=kind, size=size, stream=fh, fs_path=item.fs_path, root=item.root
            )
            self.out.findings.extend(self._run_scanners(artifact))
            self.out.facts.extend(self.ctx.facts)
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
            elif self.options.cache is not None:
                self.identity = _stable_identity(
                    fh.fileno(), before, self.options.cache, started_ns
                )
        return self.out

    def _cached(self, item: Item, fd: int, before: os.stat_result, started_ns: int) -> bool:
        """After hashing: a stored result for these bytes (and the file did not change)."""
        cache, digest = self.options.cache, self.digest
        assert cache is not None and digest is not None
        found = cache.get(digest, self.options.fingerprint, _base_name(item.rel))
        if found is None or _changed(item, before) is not None:
            return False
        self.hit = FileResult(found.records, found.findings, found.results, found.facts)
        self.identity = _stable_identity(fd, before, cache, started_ns)
        return True

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
        matching = self._matching(artifact.kind)
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
            first_fact = len(self.ctx.facts)
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
            for i in range(first_fact, len(self.ctx.facts)):
                fact = self.ctx.facts[i]
                if not fact.scanner:  # facts of nested members already carry their scanner
                    self.ctx.facts[i] = _set(fact, "scanner", scanner.name)
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


def _base_name(rel: str) -> str:
    """The part of a file's name its per-file result may depend on (sniffing, messages)."""
    return rel.rsplit("/", 1)[-1]


def _stable_identity(
    fd: int, before: os.stat_result, cache: VerdictCache, started_ns: int
) -> Identity | None:
    """The file's identity if it did not change while it was read and had settled before."""
    from supplychain.cache import identity_of

    try:
        after = identity_of(os.fstat(fd))
    except OSError:
        return None
    ident = identity_of(before)
    if after != ident or not cache.settled(ident, started_ns):
        return None
    return ident


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


def _picklable(classes: Sequence[type[object]]) -> bool:
    """Whether worker processes can import these classes by name (no test-local classes)."""
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        if "<locals>" in cls.__qualname__ or getattr(module, cls.__qualname__, None) is not cls:
            return False
    return True


def _main_is_reimportable() -> bool:
    """Whether worker processes can start without re-running the host's ``__main__``.

    forkserver/spawn workers re-import the main module. That is harmless for ``python -m
    supplychain`` (a package ``__main__``, which multiprocessing skips) and for console scripts
    and programs whose entry point is guarded by ``if __name__ == "__main__"``; an unguarded
    script (or code fed on stdin) would be re-run in every worker. ``auto`` then uses threads;
    ``executor="process"`` is the caller's explicit promise.
    """
    main = sys.modules.get("__main__")
    if main is None:
        return False
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return True
    path = getattr(main, "__file__", None)
    if not path:
        return True  # interactive: nothing to re-run
    try:
        head = Path(path).read_bytes()[: 1 << 16]
    except OSError:
        return False
    return b"__name__ == '__main__'" in head or b'__name__ == "__main__"' in head


def _scan_item(item: Item, options: ScanOptions) -> FileResult:
    """One file, relative to itself."""
    return _scan_outcome(item, options).result


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A worker's answer: the file's result and what the parent stores in the verdict cache."""

    result: FileResult
    digest: str | None = None
    identity: Identity | None = None
    store: bool = False
    """A fresh result that may be cached (see ``_cacheable``)."""
    hit: bool = False
    """Served from the cache by digest after hashing."""


_NEVER_CACHED = frozenset({GEN003.id, GEN005.id, GEN008.id})
"""Operational findings: the file changed, could not be read, or was swapped for a special file."""


def _cacheable(result: FileResult, sibling_reads: Sequence[str]) -> bool:
    """Whether a per-file result depends only on the bytes, the base name and the settings.

    Not cached: results that consulted anything beside the file (``note_sibling_read``), failed
    outcomes, skips for a missing optional dependency (the install may change), operational
    findings, and limit findings above INFO (time budgets depend on the machine's load).
    """
    if sibling_reads:
        return False
    for outcome in result.results:
        if outcome.status is Status.FAILED:
            return False
        if outcome.status is Status.SKIPPED and outcome.reason.startswith("missing dependency"):
            return False
    for finding in result.findings:
        if finding.rule in _NEVER_CACHED:
            return False
        if finding.rule == GEN002.id and finding.severity > Severity.INFO:
            return False
    return True


def _scan_outcome(item: Item, options: ScanOptions) -> _Outcome:
    """One file, relative to itself (the worker function; module-level so processes can run it)."""
    if options.scanners is None:
        scanner_set: Sequence[Scanner] | _Scanners = _Scanners(BUILTIN_SPECS)
    else:
        # Scanners hold no state between calls, but each file gets its own instances anyway.
        scanner_set = [cls() for cls in options.scanners]
    reads: list[str] = []
    token = SIBLING_READS.set(reads)
    try:
        file_scan = _FileScan(scanner_set, options)
        got = file_scan.run(item)
    finally:
        SIBLING_READS.reset(token)
    if file_scan.hit is not None:
        return _Outcome(file_scan.hit, file_scan.digest, file_scan.identity, hit=True)
    result = _relative(got, item.rel)
    if options.cache is None or file_scan.digest is None or not _cacheable(result, reads):
        return _Outcome(result)
    return _Outcome(result, file_scan.digest, file_scan.identity, store=True)


def _identity_hit(item: Item, options: ScanOptions) -> FileResult | None:
    """A cached result for a file whose stat still matches a stored identity (nothing read)."""
    from supplychain.cache import identity_of

    cache = options.cache
    if cache is None or cache.verify:
        return None
    try:
        st = item.real.stat(follow_symlinks=False)
    except OSError:
        return None  # the worker opens it and says why
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (item.device, item.inode):
        return None
    digest = cache.digest_for(identity_of(st))
    if digest is None:
        return None
    found = cache.get(digest, options.fingerprint, _base_name(item.rel))
    if found is None:
        return None
    return FileResult(found.records, found.findings, found.results, found.facts)


def _without_cache_files(
    items: list[Item], cache: VerdictCache, results: list[ScanResult]
) -> list[Item]:
    """Leave this run's own cache file (and its WAL) out of the scan, as visible skips.

    A cache kept inside the scanned tree (``[cache] path`` beside the policy) is written while
    the scan runs, so scanning it would report it as changed during the scan (GEN003).
    """
    try:
        base = cache.path.resolve()
    except (OSError, RuntimeError):
        return items
    own = {base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal"))}
    kept = []
    for item in items:
        if item.real not in own:
            kept.append(item)
            continue
        reason = "the verdict cache of this run (docs/cache.md): not scanned"
        results.extend(
            ScanResult("engine", name.rel, Status.SKIPPED, reason, expected=True)
            for name in item.names
        )
    return kept


def _store(options: ScanOptions, item: Item, outcome: _Outcome) -> None:
    """Record a worker's fresh result (or a digest hit's identity) in the verdict cache."""
    from supplychain.cache import CachedFile

    cache = options.cache
    if cache is None or outcome.digest is None:
        return
    if outcome.store:
        r = outcome.result
        cached = CachedFile(r.records, r.findings, r.results, r.facts)
        name = _base_name(item.rel)
        cache.put(outcome.digest, options.fingerprint, name, cached, outcome.identity)
    elif outcome.hit and outcome.identity is not None:
        cache.remember(outcome.identity, outcome.digest)


def _executor(options: ScanOptions, files: int, total_bytes: int | None = None) -> Executor | None:
    """The pool for this run, or ``None`` for serial (one job, or one file).

    ``total_bytes`` (``None``: unknown, treated as large) keeps small trees on threads.
    """
    jobs = max(1, options.jobs)
    choice = options.executor
    if choice == "ray" and files:
        # scan --engine ray: a Ray task per file (RAY_ADDRESS, else a local cluster of --jobs CPUs)
        from supplychain.distributed.ray_executor import RayExecutor

        return RayExecutor(num_workers=jobs)
    if choice == "serial" or jobs == 1 or files <= 1:
        return None
    if choice == "auto":
        classes: list[type[object]] = list(options.scanners or ())
        classes += list(options.report_checks or ())
        big = total_bytes is None or total_bytes >= PROCESS_MIN_BYTES
        process = (
            files >= PROCESS_MIN_FILES and big and _picklable(classes) and _main_is_reimportable()
        )
        choice = "process" if process else "thread"
    # Imported here: a one-file scan (a per-file CI hook) never pays for the pool machinery.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if choice == "process":
        # NOTE: forkserver, not fork: the parent may run threads (progress bar, a host app), and
        # forking a threaded process can deadlock on a lock another thread held. Workers import
        # the engine once (preload) and then each scanner module on first need.
        method = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["supplychain.engine"])
        return ProcessPoolExecutor(max_workers=min(jobs, files), mp_context=context)
    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="supplychain-scan")


def _total_bytes(items: Sequence[Item]) -> int:
    """Bytes the run will read (a file that cannot be stat'ed counts as nothing)."""
    total = 0
    for item in items:
        try:
            total += item.real.stat().st_size
        except OSError:
            continue
    return total


def _rules_seen(
    options: ScanOptions, kinds: set[ArtifactKind], findings: Sequence[Finding]
) -> tuple[Rule, ...]:
    """Rules of the scanners that could have run: every kind seen, every rule id emitted.

    Only those scanner modules are imported, so a one-file scan stays cheap; if a finding names
    a rule no loaded scanner declares, every scanner is loaded so its documentation is found.
    """
    if options.scanners is not None:
        return rules_for(options.scanners)
    classes = [spec.load() for spec in BUILTIN_SPECS if spec.kinds & kinds]
    rules = rules_for(classes)
    known = {r.id for r in rules}
    if any(f.rule not in known for f in findings):
        rules = rules_for([spec.load() for spec in BUILTIN_SPECS])
    return rules


def scan_paths(
    paths: Sequence[str | Path],
    options: ScanOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Scan files and directories and return an unevaluated ``Report`` (no verdict yet).

    Each file is scanned relative to itself (``FileResult``) and its name(s) are applied here,
    when the report is assembled; then the report-level checks run over every record and fact.
    """
    from supplychain.checks import BUILTIN_REPORT_CHECKS, ReportView, run_checks

    options = options or ScanOptions()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    found = discover(paths)
    items, findings, results = found.items, found.findings, found.results
    if options.select is not None:
        keep = options.select
        items = [i for i in items if keep(i.rel)]
        findings = [f for f in findings if keep(f.location.path)]
        results = [r for r in results if keep(r.path)]
    if options.cache is not None:
        items = _without_cache_files(items, options.cache, results)
    records: list[ArtifactRecord] = []
    facts: list[Fact] = []

    # Identity hits are answered here, before any pool starts: an unchanged tree reads nothing.
    got: list[FileResult | None] = [_identity_hit(item, options) for item in items]
    cache_hits = sum(r is not None for r in got)
    done = 0
    for item, hit in zip(items, got, strict=True):
        if hit is not None:
            done += 1
            if progress is not None:
                progress(done, len(items), item.rel)
    todo = [i for i, r in enumerate(got) if r is None]
    misses = [items[i] for i in todo]
    pool = _executor(options, len(misses), _total_bytes(misses))
    if pool is None:
        outcomes: Iterator[_Outcome] = (_scan_outcome(item, options) for item in misses)
    else:
        outcomes = pool.map(_scan_outcome, misses, [options] * len(misses))
    try:
        for index, outcome in zip(todo, outcomes, strict=True):
            _store(options, items[index], outcome)
            cache_hits += outcome.hit
            got[index] = outcome.result
            done += 1
            if progress is not None:
                progress(done, len(items), items[index].rel)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for item, result in zip(items, got, strict=True):
        assert result is not None
        named = apply_names(result, item.names)
        records.extend(named.records)
        findings.extend(named.findings)
        results.extend(named.results)
        facts.extend(named.facts)
    checks = BUILTIN_REPORT_CHECKS if options.report_checks is None else options.report_checks
    view = ReportView(
        files=tuple(records),
        facts=tuple(facts),
        opened={name.rel: item.real for item in items for name in item.names},
        named=frozenset(item.rel for item in items if item.top_level),
        sections=options.sections,
    )
    check_findings, check_results, check_rules = run_checks(checks, view)
    facts.extend(view.emitted)  # facts a report-level check adds (dependency audit)
    findings.extend(check_findings)
    results.extend(check_results)
    rules = {
        r.id: r for r in (*_rules_seen(options, {r.kind for r in records}, findings), *check_rules)
    }
    return Report(
        tool_version=__version__,
        target=tuple(str(p) for p in paths),
        started_at=started_at,
        seconds=round(time.perf_counter() - t0, 3),
        files=tuple(sorted(records, key=lambda r: (r.path, r.member))),
        findings=tuple(sorted(findings, key=Finding.sort_key)),
        results=tuple(sorted(results, key=lambda r: (r.path, r.member, r.scanner, r.status.value))),
        rules=tuple(sorted(rules.values(), key=lambda r: r.id)),
        command=options.command,
        facts=tuple(sorted(facts, key=Fact.sort_key)),
        cache_hits=cache_hits,
    )


__all__ = [
    "FILE_PLACEHOLDER",
    "GEN001",
    "GEN002",
    "FileResult",
    "ScanOptions",
    "apply_names",
    "discover",
    "rules_for",
    "scan_paths",
]
