"""Verdicts by OCI manifest digest: Harbor-adapter scans record them, admission reads them.

``record(digest, passed, reason, rules=())`` stores (or replaces) the verdict for a digest;
``lookup(digest)`` returns the ``StoredVerdict`` or ``None`` ("not yet scanned": admission
denies). Backed by one SQLite file (WAL, safe across threads and processes) or, without a
path, by an in-memory database of this process. A digest is ``sha256:`` plus 64 lower-case hex
digits; anything else is refused on record and never found on lookup. A store that cannot be
read raises ``VerdictStoreError``: the caller denies, it never turns into a pass.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from supplychain.core.errors import SupplyChainError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_REASON = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    digest TEXT PRIMARY KEY,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rules TEXT NOT NULL,
    recorded_at REAL NOT NULL
)
"""


class VerdictStoreError(SupplyChainError):
    """The store could not be opened, read or written."""


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    digest: str
    passed: bool
    reason: str
    rules: tuple[str, ...]
    recorded_at: float


def valid_digest(digest: object) -> bool:
    return isinstance(digest, str) and DIGEST.match(digest) is not None


class VerdictStore:
    """A digest → verdict table (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            if path is None:
                self._db = sqlite3.connect(":memory:", check_same_thread=False)
            else:
                self._db = sqlite3.connect(str(path), timeout=5.0, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as exc:
            raise VerdictStoreError(f"verdict store {path}: {exc}") from None

    def record(
        self, digest: str, passed: bool, reason: str, rules: tuple[str, ...] | list[str] = ()
    ) -> None:
        """Store the verdict for ``digest`` (replacing an older one)."""
        if not valid_digest(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        row = (digest, int(bool(passed)), reason[:MAX_REASON], ",".join(rules), time.time())
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)", row)
                self._db.commit()
        except sqlite3.Error as exc:
            raise VerdictStoreError(f"verdict store: {exc}") from None

    def lookup(self, digest: str) -> StoredVerdict | None:
        """The recorded verdict for ``digest``, or ``None`` if it was never scanned."""
        if not valid_digest(digest):
            return None
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT digest, passed, reason, rules, recorded_at FROM verdicts"
                    " WHERE digest = ?",
                    (digest,),
                ).fetchone()
        except sqlite3.Error as exc:
            raise VerdictStoreError(f"verdict store: {exc}") from None
        if row is None:
            return None
        rules = tuple(r for r in str(row[3]).split(",") if r)
        return StoredVerdict(str(row[0]), bool(row[1]), str(row[2]), rules, float(row[4]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
