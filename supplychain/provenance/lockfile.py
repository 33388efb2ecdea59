"""``supplychain.lock``: each file's path, size and sha256, and the source repo and commit.

The format is JSON with one file per line, sorted by path, so a ``git diff`` of two locks shows
exactly the files that changed::

    {"format": "supplychain-lock", "version": 1,
     "source": {"repo": "org/name", "repo_type": "model", "commit": "<40 hex>", "revision": "main"},
     "files": [
      {"path": "config.json", "size": 41, "sha256": "…"},
      {"path": "model.safetensors", "size": 2064, "sha256": "…"}
     ]}

``source`` is ``null`` for a lock of a plain directory. Verifying against a lock is offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from scanners._paths import path_escape
from supplychain.provenance.manifest import ExpectedFile, LocalFile, Manifest, ignored

LOCK_NAME = "supplychain.lock"
FORMAT = "supplychain-lock"
VERSION = 1
LOCK_LIMIT = 64 * 2**20
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class LockError(Exception):
    """The lock file is missing, unreadable or not a valid lock."""


def render(local: Mapping[str, LocalFile], source: Mapping[str, str] | None = None) -> str:
    """The lock text for ``local`` (every file hashed with sha256)."""
    lines = []
    for path in sorted(local):
        lf = local[path]
        if ignored(path, (LOCK_NAME,)):
            continue
        sha = lf.digest("sha256")
        if sha is None:
            raise LockError(f"cannot hash {path}: {lf.error}")
        entry = {"path": path, "size": lf.size, "sha256": sha}
        lines.append(" " + json.dumps(entry, ensure_ascii=False))
    head = {"format": FORMAT, "version": VERSION, "source": dict(source) if source else None}
    head_text = json.dumps(head, ensure_ascii=False)[:-1]
    body = ",\n".join(lines)
    return f'{head_text}, "files": [\n{body}\n]}}\n'


def write(path: Path, local: Mapping[str, LocalFile], source: Mapping[str, str] | None) -> None:
    """Write the lock for ``local`` to ``path``."""
    path.write_text(render(local, source), encoding="utf-8")


def read(path: Path) -> Manifest:
    """The lock at ``path`` as a manifest; ``LockError`` says why it is unusable."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(LOCK_LIMIT + 1)
    except OSError as exc:
        raise LockError(f"cannot read lock file {path.name}: {exc.strerror or exc}") from None
    if len(raw) > LOCK_LIMIT:
        raise LockError(f"lock file {path.name} is larger than {LOCK_LIMIT} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise LockError(f"lock file {path.name} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LockError(f"{path.name} is not a supplychain lock file")
    if doc.get("version") != VERSION:
        raise LockError(f"lock file version {doc.get('version')!r} is not supported")
    entries = doc.get("files")
    if not isinstance(entries, list):
        raise LockError("lock file has no files list")
    files: dict[str, ExpectedFile] = {}
    for e in entries:
        if not isinstance(e, dict):
            raise LockError("lock file entry is not an object")
        p, size, sha = e.get("path"), e.get("size"), e.get("sha256")
        if not isinstance(p, str) or not p or path_escape(p) is not None:
            raise LockError(f"lock file entry has a bad path: {p!r:.80}")
        if not isinstance(size, int) or not isinstance(sha, str) or not HEX64.match(sha):
            raise LockError(f"lock file entry for {p!r:.80} has no valid size and sha256")
        if p in files:
            raise LockError(f"lock file lists {p!r:.80} twice")
        files[p] = ExpectedFile(p, size, sha256=sha)
    source = doc.get("source") if isinstance(doc.get("source"), dict) else None
    repo = str(source["repo"]) if source and "repo" in source else None
    commit = str(source["commit"]) if source and "commit" in source else None
    return Manifest(
        f"lock:{path.name}",
        files,
        repo,
        str(source.get("repo_type", "model")) if source else "model",
        commit,
    )
