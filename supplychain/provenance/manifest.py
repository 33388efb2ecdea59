"""What a source says the files are (``Manifest``), what is on disk, and the comparison of the two.

A source is a Hub commit, a lock file or a cached tree; each becomes a ``Manifest`` of expected
digests. ``compare`` checks local files against it with the two hash rules of the Hub: an LFS
file by the sha256 of its content, any other file by its git blob sha1. The sha256 the engine
already computed while scanning is the one compared (no second read of big files); the git sha1
of small non-LFS files takes one more streamed pass.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from supplychain.core.model import ArtifactRecord, Confidence, Finding, Location, Rule
from supplychain.provenance.rules import PRV101, PRV102, PRV103, PRV104, PRV113

CHUNK = 1 << 20
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"
LFS_POINTER_MAX = 1024
"""Real pointers are ~130 bytes; anything bigger is content."""
IGNORED_PREFIXES = (".git/", ".cache/huggingface/")
"""Never part of a repo's file set (what ``verify_repo_checksums`` ignores too)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

STATES = ("verified", "mismatch", "missing", "extra", "unverifiable")


@dataclass(frozen=True, slots=True)
class ExpectedFile:
    """One file of a source: size and the digest(s) it is known by."""

    path: str
    size: int | None = None
    sha256: str | None = None
    """Content sha256 (LFS files on the Hub, every file in a lock)."""
    git_oid: str | None = None
    """Git blob sha1 of the content (non-LFS Hub files)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """Expected files of one source (``hf:org/name@commit``, ``lock:path``, ``hf-cache``)."""

    source: str
    files: Mapping[str, ExpectedFile]
    repo: str | None = None
    repo_type: str = "model"
    commit: str | None = None


@dataclass(frozen=True, slots=True)
class FileState:
    """The verification state of one path, as the JSON report carries it."""

    path: str
    state: str
    algorithm: str = ""
    expected: str = ""
    actual: str = ""
    reason: str = ""


@dataclass(slots=True)
class LocalFile:
    """A file under the verified root; digests are filled lazily and cached."""

    path: str
    real: Path
    size: int
    sha256: str | None = None
    git_oid: str | None = None
    error: str = ""
    _head: bytes | None = field(default=None, repr=False)

    def head(self) -> bytes:
        """The first bytes (pointer detection)."""
        if self._head is None:
            try:
                with self.real.open("rb") as fh:
                    self._head = fh.read(LFS_POINTER_MAX + 1)
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                self._head = b""
        return self._head

    def digest(self, algorithm: str) -> str | None:
        """``sha256`` or ``git-sha1`` of the content, streamed; ``None`` if unreadable."""
        if algorithm == "sha256" and self.sha256 is not None:
            return self.sha256
        if algorithm == "git-sha1" and self.git_oid is not None:
            return self.git_oid
        try:
            h = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1()  # noqa: S324 - git blob ids
            if algorithm != "sha256":
                h.update(b"blob %d\0" % self.size)
            seen = 0
            with self.real.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    seen += len(chunk)
            if seen != self.size:
                self.error = "file changed size while it was hashed"
                return None
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return None
        value = h.hexdigest()
        if algorithm == "sha256":
            self.sha256 = value
        else:
            self.git_oid = value
        return value


def is_lfs_pointer(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) is a Git LFS pointer."""
    return len(head) <= LFS_POINTER_MAX and head.startswith(LFS_POINTER_PREFIX)


def ignored(path: str, extra: Sequence[str] = ()) -> bool:
    """Paths that are never part of a repo's file set."""
    return path.startswith(IGNORED_PREFIXES) or path in extra


def local_files(root: Path, records: Sequence[ArtifactRecord] = ()) -> dict[str, LocalFile]:
    """Every file under ``root`` (links to files count under their names, as in an HF snapshot).

    The sha256 of a scanned file comes from its record: the digest of the bytes the scanners
    judged, so what is verified is what was scanned.
    """
    known = {r.path: r for r in records if not r.member}
    out: dict[str, LocalFile] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        if rel_dir == ".":  # a clone's .git (LFS objects: gigabytes) is never part of the set
            dirnames[:] = [d for d in dirnames if d != ".git"]
        dirnames.sort()
        names = list(filenames) + [d for d in dirnames if (base / d).is_symlink()]
        for name in sorted(names):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            real = base / name
            try:
                size = real.stat().st_size
                regular = real.is_file()
            except OSError as exc:
                out[rel] = LocalFile(rel, real, 0, error=exc.strerror or str(exc))
                continue
            lf = LocalFile(rel, real, size)
            if not regular:
                lf.error = "not a regular file"
            record = known.get(rel)
            if record is not None and record.size == size and _SHA256.match(record.sha256):
                lf.sha256 = record.sha256  # else (no digest recorded) it is hashed here
            out[rel] = lf
    return out


def _finding(rule: Rule, path: str, message: str, evidence: str = "") -> Finding:
    return Finding(
        rule=rule.id,
        severity=rule.severity,
        confidence=Confidence.HIGH,
        message=message,
        location=Location(path=path),
        evidence=evidence,
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Findings and per-file states of one comparison."""

    findings: tuple[Finding, ...]
    states: tuple[FileState, ...]


def compare(
    manifest: Manifest,
    local: Mapping[str, LocalFile],
    *,
    ignore: Sequence[str] = (),
    on_verified: Callable[[str, LocalFile], None] | None = None,
) -> Comparison:
    """Check every local file against ``manifest``: modified, missing, extra, LFS pointer."""
    findings: list[Finding] = []
    states: list[FileState] = []
    src = manifest.source
    for path in sorted(manifest.files):
        exp = manifest.files[path]
        lf = local.get(path)
        if lf is None:
            findings.append(_finding(PRV102, path, f"{path} is in {src} but not here", src))
            states.append(FileState(path, "missing", reason=f"listed by {src}"))
            continue
        for f, s in _check_one(exp, lf, src):
            if f is not None:
                findings.append(f)
            states.append(s)
            if s.state == "verified" and on_verified is not None:
                on_verified(path, lf)
    for path in sorted(set(local) - set(manifest.files)):
        if ignored(path, ignore):
            continue
        lf = local[path]
        sha = lf.digest("sha256") or ""
        findings.append(_finding(PRV103, path, f"{path} is not part of {src}", sha[:16]))
        states.append(FileState(path, "extra", "sha256", "", sha, f"not listed by {src}"))
    return Comparison(tuple(findings), tuple(states))


def _check_one(
    exp: ExpectedFile, lf: LocalFile, src: str
) -> Iterator[tuple[Finding | None, FileState]]:
    path = lf.path
    if lf.error:
        msg = f"{path} could not be read: {lf.error}"
        yield _finding(PRV113, path, msg), FileState(path, "unverifiable", reason=lf.error)
        return
    if exp.sha256 is not None:
        algorithm, want = "sha256", exp.sha256
    elif exp.git_oid is not None:
        algorithm, want = "git-sha1", exp.git_oid
    else:
        reason = f"{src} gives no digest for it"
        yield (
            _finding(PRV113, path, f"{path}: {reason}"),
            FileState(path, "unverifiable", reason=reason),
        )
        return
    got = lf.digest(algorithm)
    if got is None:
        reason = lf.error or "could not be hashed"  # type: ignore[redundant-expr]  # set by digest()
        yield (
            _finding(PRV113, path, f"{path}: {reason}"),
            FileState(path, "unverifiable", reason=reason),
        )
        return
    if got == want.lower():
        yield None, FileState(path, "verified", algorithm, want, got)
        return
    if is_lfs_pointer(lf.head()):
        msg = f"{path} is a Git LFS pointer, not the {exp.size or '?'}-byte file of {src}"
        yield (
            _finding(PRV104, path, msg, lf.head()[:120].decode("utf-8", "replace")),
            FileState(path, "mismatch", algorithm, want, got, "git-lfs pointer instead of content"),
        )
        return
    size_note = "" if exp.size in (None, lf.size) else f" (size {lf.size}, expected {exp.size})"
    msg = f"{path} differs from {src}{size_note}: {algorithm} {got[:16]}…, expected {want[:16]}…"
    yield (
        _finding(PRV101, path, msg, f"expected {algorithm} {want}"),
        FileState(path, "mismatch", algorithm, want, got, f"content differs from {src}"),
    )
