"""7z walking through py7zr (the ``archives`` extra) into bounded spools, never to disk."""

from __future__ import annotations

import lzma
from collections.abc import Iterator
from typing import Any

from scanners._extras import dependency_error, require
from scanners._paths import path_escape
from scanners.base import Artifact, ScanContext
from scanners.containers.rules import ARC001, ARC002, ARC005, ARC007
from scanners.containers.spool import MemberHandler, Spool, TreeBudget, handoff, tree_budget
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity


class _SevenZipWriter:
    """py7zr writer target: spools one member with a size cap, never touching the filesystem."""

    def __init__(self, name: str, cap: int, budget: TreeBudget | None = None) -> None:
        self.name = name
        self.cap = cap
        self.spool = Spool(budget)

    def write(self, s: bytes | bytearray) -> int:
        if self.spool.size + len(s) > self.cap:
            raise LimitExceeded(f"7z member {self.name!r} larger than {self.cap} bytes")
        self.spool.write(bytes(s))
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.spool.size

    def close(self) -> None:
        return None


def walk_7z(
    artifact: Artifact, ctx: ScanContext, handler: MemberHandler | None = None
) -> Iterator[Finding]:
    """List a 7z archive, check it, then decompress members into bounded spools."""
    with tree_budget(ctx, artifact) as tree:
        yield from _walk_7z(artifact, ctx, tree, handler)


def _walk_7z(
    artifact: Artifact, ctx: ScanContext, tree: TreeBudget, handler: MemberHandler | None
) -> Iterator[Finding]:
    require("archives", ("py7zr",))
    try:
        import py7zr
        from py7zr.io import WriterFactory
    except ImportError as exc:
        raise dependency_error("archives", ["py7zr"]) from exc
    limits = ctx.limits
    handle = handler or ctx.dispatch
    writers: list[_SevenZipWriter] = []
    cap = min(limits.max_read_bytes, limits.max_archive_total_bytes)

    class Factory(WriterFactory):
        def create(self, filename: str) -> Any:
            tree.member()
            writer = _SevenZipWriter(filename, cap, tree)
            writers.append(writer)
            return writer

    artifact.stream.seek(0)
    error: ArtifactError | None = None
    try:
        archive = py7zr.SevenZipFile(artifact.stream, mode="r")
    except py7zr.exceptions.PasswordRequired:
        yield artifact.finding(ARC005, "7z archive headers are encrypted; nothing can be analysed")
        return
    except Exception as exc:  # py7zr raises assorted types (struct, index, key) on bad headers
        raise ArtifactError(f"7z: {type(exc).__name__}: {exc}") from exc
    with archive:
        try:
            infos = archive.list()
        except Exception as exc:  # same: a header py7zr cannot list is malformed
            raise ArtifactError(f"7z: {type(exc).__name__}: {exc}") from exc
        if len(infos) > limits.max_archive_members:
            raise LimitExceeded(f"7z has {len(infos)} members (limit {limits.max_archive_members})")
        if archive.needs_password():
            yield artifact.finding(ARC005, "7z member data is encrypted; cannot be analysed")
            return
        targets: list[str] = []
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            here = artifact.child(name, ArtifactKind.UNKNOWN, info.uncompressed, artifact.stream)
            if name in seen:
                yield here.finding(ARC007, f"member name {name!r} appears more than once")
            seen.add(name)
            problem = path_escape(name)
            if problem:
                yield here.finding(
                    ARC001, f"7z member name: {problem}; not extracted", evidence=name
                )
                continue
            if info.is_symlink:
                yield here.finding(
                    ARC002,
                    "symbolic link member; not followed",
                    evidence=name,
                    severity=Severity.MEDIUM,
                )
                continue
            if info.is_directory:
                continue
            targets.append(name)
        declared = sum(i.uncompressed for i in infos)
        if declared > limits.max_archive_total_bytes:
            raise LimitExceeded(f"7z declares {declared} uncompressed bytes")
        if declared > tree.remaining():
            raise tree.exceed(
                f"7z declares {declared} uncompressed bytes, over the {tree.remaining()} bytes "
                "left for nested containers (decompression bomb)"
            )
        if (
            declared > max(artifact.size, 1024) * limits.max_archive_ratio
            and declared > limits.min_bomb_bytes
        ):
            raise LimitExceeded(
                f"7z expands {declared} bytes from {artifact.size} "
                f"(ratio over {limits.max_archive_ratio}: decompression bomb)"
            )
        archive.max_extract_size = cap
        if targets:
            try:
                archive.extract(targets=targets, factory=Factory())
            except ArtifactError as exc:
                error = exc
            except (py7zr.exceptions.ArchiveError, lzma.LZMAError, EOFError, OSError) as exc:
                error = ArtifactError(f"7z: {exc}")
            except Exception as exc:  # py7zr raises assorted errors on bad input
                error = ArtifactError(f"7z: {type(exc).__name__}: {exc}")
    for writer in writers:
        yield from handoff(artifact, writer.name, writer.spool, handle, None)
    if error is not None:
        raise error
