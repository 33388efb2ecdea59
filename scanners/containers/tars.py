"""Tar walking: members in order as bounded streams; never extracted, links never followed."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import IO, BinaryIO

from scanners._io import CHUNK
from scanners._paths import path_escape
from scanners.base import Artifact, ScanContext
from scanners.containers.rules import ARC001, ARC002, ARC007, ARC008
from scanners.containers.spool import MemberHandler, Spool, TreeBudget, handoff, tree_budget
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.core.rules import GEN002


class _CappedReads:
    """File wrapper for ``tarfile``: one ``read`` may not ask for more than ``cap`` bytes.

    ``tarfile`` reads GNU long-name and pax headers whole; a hostile header declaring gigabytes
    would otherwise be loaded into memory.
    """

    def __init__(self, raw: BinaryIO, cap: int) -> None:
        self.raw = raw
        self.cap = cap

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.cap:
            raise LimitExceeded(f"tar header or read of {size} bytes over the cap {self.cap}")
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


def walk_tar(
    artifact: Artifact, ctx: ScanContext, handler: MemberHandler | None = None
) -> Iterator[Finding]:
    """Walk a (decompressed) tar's members in order; never extract, never follow a link."""
    with tree_budget(ctx, artifact) as tree:
        yield from _walk_tar(artifact, ctx, tree, handler)


def _walk_tar(
    artifact: Artifact, ctx: ScanContext, tree: TreeBudget, handler: MemberHandler | None
) -> Iterator[Finding]:
    limits = ctx.limits
    handle = handler or ctx.dispatch
    raw = _CappedReads(artifact.stream, min(limits.max_header_bytes, 64 * 2**20))
    try:
        tf = tarfile.open(fileobj=raw, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as exc:
        raise ArtifactError(f"tar: {exc}") from exc
    seen: set[str] = set()
    count = 0
    budget = limits.max_archive_total_bytes
    error: ArtifactError | None = None
    with tf:
        while True:
            try:
                info = tf.next()
            except tarfile.TarError as exc:
                error = ArtifactError(f"tar: {exc}", raw.tell())
                break
            except LimitExceeded as exc:
                error = exc
                break
            if info is None:
                break
            count += 1
            if count > limits.max_archive_members:
                raise LimitExceeded(f"tar has more than {limits.max_archive_members} members")
            name = info.name
            here = artifact.child(name, ArtifactKind.UNKNOWN, info.size, artifact.stream)
            if name in seen:
                yield here.finding(ARC007, f"member name {name!r} appears more than once")
            seen.add(name)
            problem = path_escape(name)
            if problem:
                yield here.finding(ARC001, f"tar member name: {problem}", evidence=name)
            if info.issym() or info.islnk():
                target = info.linkname
                bad = path_escape(target) is not None
                what = "symbolic link" if info.issym() else "hard link"
                yield here.finding(
                    ARC002,
                    f"{what} member{' pointing outside the archive' if bad else ''}; not followed",
                    evidence=f"{name} -> {target}",
                    severity=Severity.HIGH if bad else Severity.MEDIUM,
                )
                continue
            if info.isdev() or info.isfifo():
                yield here.finding(
                    ARC002,
                    "device or FIFO member; skipped",
                    evidence=name,
                    severity=Severity.MEDIUM,
                )
                continue
            if not info.isreg() or info.size == 0:
                continue
            if info.size > min(limits.max_read_bytes, budget):
                yield here.finding(
                    GEN002,
                    f"tar member of {info.size} bytes over the read caps; not analysed",
                    evidence=name,
                )
                continue
            tree.member()
            fh = tf.extractfile(info)
            if fh is None:
                continue
            # Tar members are plain copies of the tar's own bytes (no overlap, no compression):
            # the tar was charged when it was expanded, or sits on disk. Count members only.
            spool = Spool()
            member_error = spool.fill(_tar_chunks(fh))
            budget -= spool.size
            yield from handoff(artifact, name, spool, handle, member_error)
        end = raw.tell()
    yield from _tar_tail(artifact, end)
    if error is not None:
        raise error


def _tar_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield block
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"tar member truncated: {exc}") from exc


def _tar_tail(artifact: Artifact, end: int) -> Iterator[Finding]:
    """Non-zero bytes after the last header ``tarfile`` accepted are data no extractor shows."""
    stream = artifact.stream
    pos = max(end, 0)
    stream.seek(pos)
    checked = 0
    while pos + checked < artifact.size and checked < 16 * CHUNK:
        block = stream.read(CHUNK)
        if not block:
            break
        stripped = block.lstrip(b"\x00")
        if stripped:
            off = pos + checked + len(block) - len(stripped)
            yield artifact.finding(
                ARC008,
                "data after the end of the tar archive (ignored by tar readers)",
                offset=off,
            )
            return
        checked += len(block)
