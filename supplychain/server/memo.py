"""Admission's fast path: the last verdict of a model path while its files are unchanged.

The verdict cache (``--cache``) makes a re-scan cheap, but a re-scan still walks, stats, looks
up every file and judges the report in a worker. A retried or repeated admission for the same
model only needs to know that nothing changed since it was judged. ``snapshot(path)`` is that
identity: for every entry under the path (sorted), its relative name, type, device, inode, size,
mtime and ctime in nanoseconds (a write changes ctime, which no user can set back).

Kept only when it is safe to: no symbolic link anywhere in the tree (a link's target may change
without the link changing), at most ``MAX_ENTRIES`` entries, every ctime older than
``SETTLE_SECONDS`` before the scan started (a file being written now is never memoised), and the
identity taken before the scan equals the one after it. A changed, growing or unreadable tree
gives ``None``: the request goes to the queue and the full scan decides. An entry also expires
after ``TTL_SECONDS``, because the policy's verdict depends on the date (waivers expire).
"""

from __future__ import annotations

import collections
import os
import stat
import threading
import time
from pathlib import Path

from supplychain.server.scanning import ModelVerdict

MAX_ENTRIES = 1024
MAX_MEMO = 4096
SETTLE_SECONDS = 2.0
TTL_SECONDS = 600.0
"""A memoised verdict is re-judged after this long: a policy waiver may have expired since."""

Identity = tuple[tuple[str, int, int, int, int, int, int], ...]


def snapshot(path: Path, max_entries: int = MAX_ENTRIES) -> tuple[Identity, int] | None:
    """(identity, newest ctime ns) of the tree at ``path``, or ``None`` if it must not be kept."""
    entries: list[tuple[str, int, int, int, int, int, int]] = []
    newest = 0

    def add(rel: str, st: os.stat_result) -> bool:
        nonlocal newest
        if stat.S_ISLNK(st.st_mode) or len(entries) >= max_entries:
            return False
        kind = stat.S_IFMT(st.st_mode)
        entries.append(
            (rel, kind, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        )
        newest = max(newest, st.st_ctime_ns)
        return True

    try:
        top = os.lstat(path)
        if not add(".", top):
            return None
        if stat.S_ISDIR(top.st_mode):
            stack = [(str(path), "")]
            while stack:
                directory, prefix = stack.pop()
                with os.scandir(directory) as it:
                    children = sorted(it, key=lambda e: e.name)
                for child in children:
                    rel = f"{prefix}{child.name}"
                    if not add(rel, child.stat(follow_symlinks=False)):
                        return None
                    if child.is_dir(follow_symlinks=False):
                        stack.append((child.path, rel + "/"))
    except OSError:
        return None
    return tuple(entries), newest


class VerdictMemo:
    """Bounded LRU of path → (identity, verdict); thread-safe."""

    def __init__(self, max_items: int = MAX_MEMO) -> None:
        self.max_items = max_items
        self._items: collections.OrderedDict[str, tuple[Identity, ModelVerdict, float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, path: Path) -> ModelVerdict | None:
        """The memoised verdict if the tree at ``path`` is exactly as it was when judged."""
        key = str(path)
        with self._lock:
            item = self._items.get(key)
        if item is None:
            return None
        now = snapshot(path)
        expired = time.monotonic() - item[2] > TTL_SECONDS
        if expired or now is None or now[0] != item[0]:
            with self._lock:
                self._items.pop(key, None)
            return None
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            self.hits += 1
        return item[1]

    def put(
        self,
        path: Path,
        before: tuple[Identity, int] | None,
        started_ns: int,
        verdict: ModelVerdict,
    ) -> bool:
        """Keep ``verdict`` if the tree was settled and unchanged across the scan."""
        if before is None or before[1] > started_ns - int(SETTLE_SECONDS * 1e9):
            return False
        after = snapshot(path)
        if after is None or after[0] != before[0]:
            return False
        with self._lock:
            self._items[str(path)] = (before[0], verdict, time.monotonic())
            self._items.move_to_end(str(path))
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return True
