"""Verdict cache: per-file scan results in one SQLite file, keyed by content and settings.

Two tables (see ``docs/cache.md``):

- ``identity``: (device, inode) → (size, mtime_ns, ctime_ns, sha256). The cheap identity check:
  a file whose stat still matches is known to hold bytes with that digest, so an unchanged
  multi-GB model is answered without reading its content. ``--verify-cache`` skips this table
  and re-hashes (one sha256 pass, then a digest lookup).
- ``results``: (sha256, settings fingerprint, base name) → the path-free ``engine.FileResult``
  as JSON. The base name is in the key because kind sniffing breaks ties by name and scanners
  quote it in messages; the fingerprint covers tool version, scanner code, rules, limits and
  sections, so a rule-set or settings change misses.

Rows are JSON, never pickle: a cache file may be writable by whoever ran the previous CI job,
and unpickling it would run their code. Every row is validated on read; a malformed row, a file
that is not our SQLite database (garbage, truncated, another schema) or a lock held past the
timeout raises ``CacheError`` (exit 2 in the CLI): a cache problem never turns into a pass and
never silently rescans, since a malformed row is what tampering looks like.

Concurrency: WAL journal, ``busy_timeout``, each thread and each process its own connection,
short ``BEGIN IMMEDIATE`` write transactions, ``INSERT OR REPLACE`` of deterministic values,
so writers in several processes agree. A ``VerdictCache`` pickles as its path and options
(``--jobs`` worker processes reopen it).

Server use: ``service.run_scan(settings, paths, cache=VerdictCache.open(path))``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supplychain.core.errors import SupplyChainError
from supplychain.core.model import (
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Fact,
    Finding,
    Location,
    RuleId,
    ScanResult,
    Severity,
    Status,
)

SCHEMA_VERSION = 1
"""Bumped when a table or the row JSON changes shape; another version is refused, not migrated."""
APPLICATION_ID = 0x53434331  # "SCC1"
"""Stamped in the SQLite header (offset 68) so a cache file is recognised before it is opened."""
DEFAULT_TIMEOUT = 30.0
"""Seconds a connection waits for another writer's lock before the run fails (exit 2)."""
SETTLE_SECONDS = 2.0
"""A file modified this recently is not remembered by identity (git's "racy clean" problem): a
write in the same timestamp tick as the one before our read would leave size and mtime unchanged.
2 s covers coarse file systems (FAT, HFS+, some network mounts); the digest row is still kept."""
QUICK_CHECK_MAX_BYTES = 64 * 2**20
"""``PRAGMA quick_check`` on open up to this size (it reads every page); larger files rely on the
header check here and SQLite's own page checks on every read."""
_MAGIC = b"SQLite format 3\x00"
_HEADER = 100

Identity = tuple[int, int, int, int, int]
"""(device, inode, size, mtime_ns, ctime_ns) of a regular file."""


class CacheError(SupplyChainError):
    """The verdict cache cannot be used (corrupt, foreign, locked): operational, exit 2."""


@dataclass(frozen=True, slots=True)
class CachedFile:
    """One cached per-file result: the fields of ``engine.FileResult``, all paths placeholders."""

    records: tuple[ArtifactRecord, ...]
    findings: tuple[Finding, ...]
    results: tuple[ScanResult, ...]
    facts: tuple[Fact, ...]


def identity_of(st: os.stat_result) -> Identity:
    """The identity a stat gives (inode numbers may use all 64 bits; stored signed)."""
    return (
        _signed(st.st_dev),
        _signed(st.st_ino),
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS identity ("
    " dev INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " PRIMARY KEY (dev, inode)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS results ("
    " sha256 TEXT NOT NULL, fingerprint TEXT NOT NULL, name TEXT NOT NULL,"
    " result TEXT NOT NULL, stored_at INTEGER NOT NULL,"
    " PRIMARY KEY (sha256, fingerprint, name)) WITHOUT ROWID",
)


class VerdictCache:
    """A handle on one cache file; thread-safe (one SQLite connection per thread).

    ``verify``: ignore the identity table and re-hash every file (``--verify-cache``).
    ``settle_seconds``: see ``SETTLE_SECONDS`` (tests lower it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool = False,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.verify = verify
        self.settle_seconds = settle_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool = False,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> VerdictCache:
        """Open (creating if absent) and check the cache file; ``CacheError`` if unusable."""
        if timeout <= 0:
            raise CacheError(f"verdict cache {path}: timeout must be positive")
        cache = cls(path, timeout=timeout, verify=verify, settle_seconds=settle_seconds)
        cache._check_header()
        with cache._errors("cannot open"):
            conn = cache._connection()
            cache._init_schema(conn)
            if cache.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if rows != [("ok",)]:
                    detail = "; ".join(str(r[0]) for r in rows[:3])
                    raise CacheError(f"verdict cache {cache.path} is corrupt: {detail}")
        return cache

    def __reduce__(self) -> tuple[Any, tuple[str, float, bool, float]]:
        """Worker processes get the path and options and reuse one handle per process."""
        return (_reopen, (str(self.path), self.timeout, self.verify, self.settle_seconds))

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.path)!r}, verify={self.verify})"

    def close(self) -> None:
        """Close every connection this handle opened (any thread)."""
        with self._lock:
            conns, self._connections = self._connections, {}
        for _, conn in conns.values():
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -------------------------------------------------------------------------------

    def _check_header(self) -> None:
        """Refuse garbage, truncation and foreign databases before SQLite parses anything."""
        try:
            with self.path.open("rb") as fh:
                head = fh.read(_HEADER)
                size = os.fstat(fh.fileno()).st_size
        except FileNotFoundError:
            parent = self.path.parent if str(self.path.parent) else Path()
            if not parent.is_dir():
                raise CacheError(
                    f"verdict cache {self.path}: directory {parent} does not exist"
                ) from None
            return
        except OSError as exc:
            raise CacheError(f"verdict cache {self.path}: {exc.strerror or exc}") from None
        if size == 0:
            return  # an empty file is a new database (e.g. made by mktemp)
        if len(head) < _HEADER or not head.startswith(_MAGIC):
            raise CacheError(
                f"verdict cache {self.path} is not a supplychain cache (not an SQLite database"
                + (", or truncated)" if len(head) < _HEADER else ")")
                + "; delete it or choose another --cache path"
            )
        (page,) = struct.unpack(">H", head[16:18])
        page_size = 65536 if page == 1 else page
        if page_size < 512 or page_size & (page_size - 1):
            raise CacheError(f"verdict cache {self.path} is corrupt: bad page size {page}")
        change, pages = struct.unpack(">I", head[24:28])[0], struct.unpack(">I", head[28:32])[0]
        valid_for = struct.unpack(">I", head[92:96])[0]
        wal = Path(f"{self.path}-wal")
        wal_pending = wal.exists() and wal.stat().st_size > 0
        if not wal_pending and (
            size % page_size or (change == valid_for and size < pages * page_size)
        ):
            raise CacheError(f"verdict cache {self.path} is corrupt: truncated")
        (app,) = struct.unpack(">I", head[68:72])
        if app not in (0, APPLICATION_ID):
            raise CacheError(
                f"verdict cache {self.path} is not a supplychain cache (application id {app:#x})"
            )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            # A long-lived host (the server) runs many thread pools: close the connections of
            # threads that have ended instead of keeping one per thread forever.
            for ident, (thread, old) in list(self._connections.items()):
                if not thread.is_alive():
                    old.close()
                    del self._connections[ident]
            self._connections[threading.get_ident()] = (threading.current_thread(), conn)
        self._local.conn = conn
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        (app,) = conn.execute("PRAGMA application_id").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app == 0 and not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (app,) = conn.execute("PRAGMA application_id").fetchone()
                if app == 0:  # nobody initialised it while we waited for the lock
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            (app,) = conn.execute("PRAGMA application_id").fetchone()
        if app != APPLICATION_ID:
            raise CacheError(
                f"verdict cache {self.path} is not a supplychain cache (an SQLite database with "
                "other tables); choose another --cache path"
            )
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None:
            raise CacheError(f"verdict cache {self.path} has no schema version: corrupt")
        if row[0] != str(SCHEMA_VERSION):
            raise CacheError(
                f"verdict cache {self.path} has schema version {row[0]!s:.20}, this supplychain "
                f"uses {SCHEMA_VERSION}: delete it or choose another --cache path"
            )

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Every SQLite error becomes one ``CacheError`` line naming the file."""
        try:
            yield
        except CacheError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise CacheError(
                    f"verdict cache {self.path} is locked by another process "
                    f"(waited {self.timeout:g} s)"
                ) from None
            raise CacheError(f"verdict cache {self.path}: {doing}: {text}") from None
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"verdict cache {self.path} is corrupt: {exc}") from None
        except OSError as exc:
            raise CacheError(f"verdict cache {self.path}: {exc.strerror or exc}") from None

    # -- lookups and stores --------------------------------------------------------------------

    def digest_for(self, identity: Identity) -> str | None:
        """The sha256 stored for a file with exactly this identity, if any."""
        with self._errors("lookup"):
            row = (
                self._connection()
                .execute(
                    "SELECT size, mtime_ns, ctime_ns, sha256 FROM identity"
                    " WHERE dev = ? AND inode = ?",
                    identity[:2],
                )
                .fetchone()
            )
        if row is None:
            return None
        if tuple(row[:3]) != identity[2:]:
            return None
        digest = row[3]
        if not _is_digest(digest):
            raise CacheError(
                f"verdict cache {self.path}: malformed identity row (digest {digest!r:.80}); "
                "treated as tampering: delete the cache file"
            )
        return str(digest)

    def get(self, digest: str, fingerprint: str, name: str) -> CachedFile | None:
        """The stored result for these bytes, settings and base name, validated; or ``None``."""
        with self._errors("lookup"):
            row = (
                self._connection()
                .execute(
                    "SELECT result FROM results WHERE sha256 = ? AND fingerprint = ? AND name = ?",
                    (digest, fingerprint, name),
                )
                .fetchone()
            )
        if row is None:
            return None
        try:
            return decode(row[0], digest)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            raise CacheError(
                f"verdict cache {self.path}: malformed result row for sha256 {digest[:16]}…: "
                f"{str(exc)[:120]}; treated as tampering: delete the cache file"
            ) from None

    def put(
        self,
        digest: str,
        fingerprint: str,
        name: str,
        result: CachedFile,
        identity: Identity | None = None,
    ) -> None:
        """Store a result (and the identity that maps a file to ``digest``) in one transaction."""
        text = encode(result)
        with self._errors("store"):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                    (digest, fingerprint, name, text, int(time.time())),
                )
                if identity is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO identity VALUES (?, ?, ?, ?, ?, ?)",
                        (*identity, digest),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def remember(self, identity: Identity, digest: str) -> None:
        """Store only the identity → digest row (a digest hit after re-hashing)."""
        with self._errors("store"):
            self._connection().execute(
                "INSERT OR REPLACE INTO identity VALUES (?, ?, ?, ?, ?, ?)", (*identity, digest)
            )

    def settled(self, identity: Identity, started_ns: int) -> bool:
        """Whether a file last changed well before ``started_ns`` (its identity is trustworthy)."""
        margin = int(self.settle_seconds * 1e9)
        return max(identity[3], identity[4]) < started_ns - margin


_PROCESS_HANDLES: dict[tuple[str, float, bool, float], VerdictCache] = {}
_PROCESS_LOCK = threading.Lock()


def _reopen(path: str, timeout: float, verify: bool, settle_seconds: float) -> VerdictCache:
    """Unpickle a handle: one per process and options (each task of a pool carries one)."""
    key = (path, timeout, verify, settle_seconds)
    with _PROCESS_LOCK:
        handle = _PROCESS_HANDLES.get(key)
        if handle is None:
            handle = VerdictCache(
                path, timeout=timeout, verify=verify, settle_seconds=settle_seconds
            )
            _PROCESS_HANDLES[key] = handle
        return handle


# -- (de)serialisation ---------------------------------------------------------------------------

_ROW_VERSION = 1


def encode(result: CachedFile) -> str:
    """Compact, deterministic JSON of one per-file result."""

    def loc(location: Location) -> list[object]:
        return [location.path, list(location.member), location.offset, list(location.rows)]

    def value(v: object) -> object:
        return list(v) if isinstance(v, tuple) else v

    doc = {
        "v": _ROW_VERSION,
        "records": [
            [r.path, r.kind.value, r.size, r.sha256, list(r.member)] for r in result.records
        ],
        "findings": [
            [
                f.rule,
                int(f.severity),
                int(f.confidence),
                f.message,
                loc(f.location),
                f.evidence,
                f.group,
            ]
            for f in result.findings
        ],
        "results": [
            [r.scanner, r.path, r.status.value, r.reason, list(r.member), r.seconds, r.expected]
            for r in result.results
        ],
        "facts": [[f.key, value(f.value), loc(f.location), f.scanner] for f in result.facts],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _is_digest(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return tuple(_str(v) for v in value)


def _ints(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return tuple(_int(v) for v in value)


def _fields(value: object, count: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"expected {count} fields")
    return value


def _frozen(cls: type[Any], **values: object) -> Any:
    """Build a frozen model object without ``__post_init__``: stored text is already escaped
    (escaping again would double backslashes and change finding fingerprints)."""
    obj = object.__new__(cls)
    for name, v in values.items():
        object.__setattr__(obj, name, v)
    return obj


def _location(value: object) -> Location:
    path, member, offset, rows = _fields(value, 4)
    return Location(
        path=_str(path),
        member=_strs(member),
        offset=None if offset is None else _int(offset),
        rows=_ints(rows),
    )


def _fact_value(value: object) -> str | int | float | bool | tuple[str, ...]:
    if isinstance(value, list):
        return _strs(value)
    if isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"fact value of type {type(value).__name__}")


def decode(text: str, digest: str) -> CachedFile:
    """Validate and rebuild a stored result; raises ``ValueError``/``TypeError`` if malformed.

    The outermost record must be the placeholder file with ``digest``: a row copied under
    another key is refused like any other malformed row.
    """
    from supplychain.engine import FILE_PLACEHOLDER

    doc = json.loads(text)
    if not isinstance(doc, dict) or set(doc) != {"v", "records", "findings", "results", "facts"}:
        raise ValueError("not a result document")
    if doc["v"] != _ROW_VERSION:
        raise ValueError(f"row version {doc['v']!r}")
    for key in ("records", "findings", "results", "facts"):
        if not isinstance(doc[key], list):
            raise TypeError(f"{key} is not a list")
    records = []
    for raw in doc["records"]:
        path, kind, size, sha, member = _fields(raw, 5)
        if not _is_digest(sha):
            raise ValueError("record digest")
        if _int(size) < 0:
            raise ValueError("record size")
        records.append(
            ArtifactRecord(_str(path), ArtifactKind(kind), size, _str(sha), member=_strs(member))
        )
    outer = [r for r in records if r.path == FILE_PLACEHOLDER and not r.member]
    if len(outer) != 1 or outer[0].sha256 != digest:
        raise ValueError("the outermost record does not match the key")
    findings = []
    for raw in doc["findings"]:
        rule, severity, confidence, message, location, evidence, group = _fields(raw, 7)
        findings.append(
            _frozen(
                Finding,
                rule=RuleId(_str(rule)),
                severity=Severity(_int(severity)),
                confidence=Confidence(_int(confidence)),
                message=_str(message),
                location=_location(location),
                evidence=_str(evidence),
                group=_opt_str(group),
                suppressed=None,
            )
        )
    results = []
    for raw in doc["results"]:
        scanner, path, status, reason, member, seconds, expected = _fields(raw, 7)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise TypeError("seconds")
        if not isinstance(expected, bool):
            raise TypeError("expected")
        results.append(
            ScanResult(
                _str(scanner),
                _str(path),
                Status(status),
                _str(reason),
                _strs(member),
                float(seconds),
                expected,
            )
        )
    facts = []
    for raw in doc["facts"]:
        key, value, location, scanner = _fields(raw, 4)
        facts.append(
            _frozen(
                Fact,
                key=_str(key),
                value=_fact_value(value),
                location=_location(location),
                scanner=_str(scanner),
            )
        )
    return CachedFile(tuple(records), tuple(findings), tuple(results), tuple(facts))


def resolve_path(
    flag: str | Path | None, *, no_cache: bool, policy_path: str | None
) -> Path | None:
    """Which cache file a run uses: ``--no-cache`` > ``--cache`` > ``SUPPLYCHAIN_CACHE`` > policy.

    None of them set means no cache: tests and one-off scans must never write to ``$HOME``
    behind the user's back, and a cache is a trust decision (whoever can write it can forge
    verdicts), so CI opts in by naming a path it controls.
    """
    if no_cache:
        return None
    if flag is not None:
        return Path(flag)
    env = os.environ.get("SUPPLYCHAIN_CACHE")
    if env:
        return Path(env).expanduser()
    if policy_path:
        return Path(policy_path)
    return None


__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "CacheError",
    "CachedFile",
    "VerdictCache",
    "decode",
    "encode",
    "identity_of",
    "resolve_path",
]
