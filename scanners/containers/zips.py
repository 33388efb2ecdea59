"""Zip walking the way PyTorch reads a zip: central directory first, every discrepancy a finding.

``scanners._zip`` parses the structures; this module judges them (``ARC`` rules), spools the
members within the caps and the tree budget, and hands each to the engine (or a handler).
"""

from __future__ import annotations

import itertools
import math
import stat
from collections.abc import Callable, Iterator
from typing import BinaryIO

from scanners import _zip
from scanners._magic import is_pickle_stream
from scanners._paths import path_escape
from scanners.base import Artifact, ScanContext
from scanners.containers.rules import (
    ARC001,
    ARC002,
    ARC003,
    ARC004,
    ARC005,
    ARC006,
    ARC007,
    ARC008,
    ARC009,
    ARC010,
)
from scanners.containers.spool import (
    PEEK_BYTES,
    MemberHandler,
    Spool,
    TreeBudget,
    Want,
    bounded_reads,
    handoff,
    member_error,
    tree_budget,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, Finding, Severity
from supplychain.core.rules import GEN002

ZIP_BENIGN_FLAGS = 0x1 | 0x2 | 0x4 | 0x8 | 0x800
"""Encryption (reported on its own), compression options, data descriptor, UTF-8 names."""


def walk_zip(
    artifact: Artifact,
    ctx: ScanContext,
    want: Callable[[_zip.ZipEntry], Want] | None = None,
    handler: MemberHandler | None = None,
    on_peek: Callable[[Artifact, _zip.ZipEntry], Iterator[Finding]] | None = None,
) -> Iterator[Finding]:
    """Check a zip the way a paranoid PyTorch would read it, then hand members on.

    The central directory is trusted (as PyTorch and miniz do); every disagreement with local
    headers, CRCs and sizes is reported as its own finding instead of stopping the walk.
    Raises ``ArtifactError`` when there is no directory to read and ``LimitExceeded`` when the
    declared content is over the caps before anything is decompressed, or when the whole tree
    of nested containers runs out of budget (``TreeBudget``).
    """
    with tree_budget(ctx, artifact) as budget:
        yield from _walk_zip(artifact, ctx, budget, want, handler, on_peek)


def _walk_zip(
    artifact: Artifact,
    ctx: ScanContext,
    budget: TreeBudget,
    want: Callable[[_zip.ZipEntry], Want] | None,
    handler: MemberHandler | None,
    on_peek: Callable[[Artifact, _zip.ZipEntry], Iterator[Finding]] | None,
) -> Iterator[Finding]:
    limits = ctx.limits
    stream = artifact.stream
    handle = handler or ctx.dispatch
    choose = want or (lambda _e: Want.READ)
    budget.check_time()
    directory = _zip.read_directory(stream, artifact.size, limits.max_archive_members)
    entries = directory.entries

    def loc(e: _zip.ZipEntry) -> Artifact:
        return artifact.child(e.name, ArtifactKind.UNKNOWN, e.size, stream)

    for problem in directory.problems:
        if "prefixed data" not in problem:
            yield artifact.finding(ARC009, f"zip: {problem}", offset=directory.eocd_offset)
    # Resolve every local header first: structure findings come before any member content.
    broken: dict[int, ArtifactError] = {}
    for e in entries:
        try:
            _zip.resolve(stream, e, artifact.size)
        except ArtifactError as exc:
            broken[e.index] = exc
    yield from _zip_prefix_and_tail(artifact, ctx, directory, broken, handle, budget)
    # Archive-wide findings before per-member ones: a flood of the latter (one per entry of a
    # bomb) must not push them past the per-file findings cap.
    yield from _zip_overlaps(artifact, entries, broken)
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.name] = seen.get(e.name, 0) + 1
        if seen[e.name] == 2:
            yield loc(e).finding(
                ARC007, f"member name {e.name!r} appears more than once", evidence=e.name
            )
        bad_name = path_escape(e.name)
        if bad_name:
            yield loc(e).finding(ARC001, f"zip member name: {bad_name}", evidence=e.name)
        yield from _zip_entry_findings(loc(e), e, broken)
    links = {e.index for e in entries if stat.S_ISLNK(e.unix_mode)}
    for e in entries:
        if e.index in links:
            # unzip and many extractors recreate these as links; the target is the member data.
            target = _link_target(stream, e, limits.max_archive_ratio)
            bad = target is None or path_escape(target) is not None
            yield loc(e).finding(
                ARC002,
                f"symbolic link member{' pointing outside the archive' if bad else ''}; "
                "not followed",
                evidence=f"{e.name} -> {target!r}",
                severity=Severity.HIGH if bad else Severity.MEDIUM,
            )

    def is_bomb(e: _zip.ZipEntry) -> bool:
        return (
            e.size > max(e.compressed_size, 1024) * limits.max_archive_ratio
            and e.size > limits.min_bomb_bytes
        )

    plan = [(e, choose(e)) for e in entries if e.index not in broken and e.index not in links]
    declared = sum(e.size for e, w in plan if w is Want.READ and not is_bomb(e))
    if declared > limits.max_archive_total_bytes:
        raise LimitExceeded(
            f"zip declares {declared} uncompressed bytes to read "
            f"(limit {limits.max_archive_total_bytes})"
        )
    if declared > budget.remaining():
        # Overlapping entries (Fifield's non-recursive bomb) and the lower levels of a
        # recursive one declare more than the whole tree may expand to: refuse up front.
        raise budget.exceed(
            f"zip declares {declared} uncompressed bytes, over the {budget.remaining()} bytes "
            "left for nested containers (decompression bomb)"
        )
    for e in entries:
        if e.index in broken:
            yield member_error(loc(e), broken[e.index])
    local_budget = limits.max_archive_total_bytes
    for e, w in plan:
        encrypted = bool(e.flags & 0x1)
        if w is Want.SKIP or (e.size == 0 and e.compressed_size == 0 and not encrypted):
            continue
        if is_bomb(e):
            yield loc(e).finding(
                GEN002,
                f"zip member declares {e.size} bytes from {e.compressed_size} "
                f"(ratio over {limits.max_archive_ratio}: zip bomb); not decompressed",
                evidence=e.name,
            )
            continue
        budget.member()
        aes = e.method == _zip.AES_METHOD  # AES without bit 0 is still AES: never readable
        cipher = _zip_really_encrypted(e) if encrypted or aes else None
        if cipher is not None:
            yield _encrypted_finding(loc(e), e, cipher)
            continue
        if w is Want.PEEK and not encrypted:
            head = _peek(stream, e, limits.max_archive_ratio)
            if head is None or not is_pickle_stream(head, strict=True):
                continue
            if on_peek is not None:
                yield from on_peek(loc(e), e)
        if local_budget <= 0:
            raise LimitExceeded(
                f"zip members expand past {limits.max_archive_total_bytes} bytes in total"
            )
        spool = Spool(budget)
        error = spool.fill(
            _zip.iter_member(
                stream,
                e,
                min(limits.max_read_bytes, local_budget),
                limits.max_archive_ratio,
                min_bomb_bytes=limits.min_bomb_bytes,
            )
        )
        local_budget -= spool.size
        if encrypted:
            why = _cipher_evidence(e, spool, error)
            if why is not None:
                spool.file.close()
                yield _encrypted_finding(loc(e), e, why)
                continue
            yield loc(e).finding(
                ARC004,
                "encryption flag set but the member data is in the clear: zipfile and torch "
                "refuse it, readers that ignore the flag load it; analysed",
                evidence=f"flags={e.flags:#06x} method={e.method}",
                offset=e.header_offset,
            )
            if w is Want.PEEK:
                head = spool.stream().read(PEEK_BYTES)
                if not is_pickle_stream(head, strict=True):
                    spool.file.close()
                    continue
                if on_peek is not None:
                    yield from on_peek(loc(e), e)
        if error is None:
            yield from _zip_content_findings(loc(e), e, spool)
        yield from handoff(artifact, e.name, spool, handle, error)
        yield from _local_view(artifact, e, ctx, budget, handle)


ENCRYPTED_ENTROPY = 7.2
"""Bits per byte above which flagged member data is taken to be ciphertext. Pickles, JSON,
source and most tensors stay well below; ciphertext (and random bytes) sit near 8."""


def _zip_really_encrypted(e: _zip.ZipEntry) -> str | None:
    """Why a flagged member is encrypted from its headers alone, or ``None`` to look at data."""
    tags = _zip.extra_tags(e.extra) | _zip.extra_tags(e.local_extra)
    if e.method == _zip.AES_METHOD or _zip.AES_EXTRA in tags:
        return "WinZip AES record (method 99 / extra field 0x9901)"
    if e.flags & 0x40:
        return "strong-encryption flag (bit 6)"
    if e.flags & 0x2000:
        return "central directory encryption flag (bit 13)"
    return None


def _entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    counts = [0] * 256
    for b in data:
        counts[b] += 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def _cipher_evidence(e: _zip.ZipEntry, spool: Spool, error: ArtifactError | None) -> str | None:
    """Decide from the bytes whether a member flagged as encrypted really is.

    The data is taken to be in the clear only when it reads as plain member data: a CRC-32
    that matches what was read, a complete pickle at its start, or (CRC zeroed or wrong, as
    torch tolerates) data that fills exactly the declared size without the 12-byte ZipCrypto
    header and is not ciphertext-random. Anything else fails closed as encrypted.
    """
    if error is not None and not isinstance(error, LimitExceeded):
        return f"data does not read as plain member data ({error})"
    if error is None and spool.size and spool.crc == e.crc:
        return None
    head = spool.stream().read(PEEK_BYTES)
    if is_pickle_stream(head, strict=True):
        # Ciphertext never walks as a stack-consistent pickle that imports something; a reader
        # that ignores the flag would run it.
        return None
    if e.method == _zip.STORED and e.compressed_size == e.size + 12:
        return "ZipCrypto: 12-byte encryption header before the data"
    if error is None and spool.size != e.size:
        return f"read {spool.size} bytes where {e.size} are declared"
    if _entropy(head) > ENCRYPTED_ENTROPY:
        return f"data is random like ciphertext ({_entropy(head):.2f} bits/byte)"
    return None


def _encrypted_finding(here: Artifact, e: _zip.ZipEntry, why: str) -> Finding:
    return here.finding(
        ARC005,
        "member is encrypted and cannot be analysed",
        evidence=f"flags={e.flags:#06x} method={e.method}: {why}",
        offset=e.header_offset,
    )


def _local_view(
    artifact: Artifact,
    e: _zip.ZipEntry,
    ctx: ScanContext,
    budget: TreeBudget,
    handle: MemberHandler,
) -> Iterator[Finding]:
    """Analyse a member as a streaming reader sees it when its local header disagrees.

    torch (miniz) and zipfile take method and sizes from the central directory; readers that
    stream the file (no central directory) take them from the local header. When the two
    describe different bytes, both versions are analysed and the difference is a finding.
    """
    if e.local_method < 0 or e.local_flags & 0x8 or e.local_flags & 0x1:
        return
    if (e.local_method, e.local_compressed_size) == (e.method, e.compressed_size):
        return
    if e.local_compressed_size <= 0:
        return
    view = _zip.ZipEntry(
        name=e.name,
        method=e.local_method,
        flags=e.local_flags,
        crc=e.local_crc,
        compressed_size=e.local_compressed_size,
        size=e.local_size,
        header_offset=e.header_offset,
        data_offset=e.data_offset,
        index=e.index,
    )
    limits = ctx.limits
    spool = Spool(budget)
    error = spool.fill(
        _zip.iter_member(
            artifact.stream,
            view,
            min(limits.max_read_bytes, max(budget.remaining(), 1)),
            limits.max_archive_ratio,
            min_bomb_bytes=limits.min_bomb_bytes,
        )
    )
    here = artifact.child(e.name, ArtifactKind.UNKNOWN, e.size, artifact.stream)
    yield here.finding(
        ARC009,
        "local header describes other member data than the central directory "
        "(streaming readers load that version); both are analysed",
        evidence=f"central method={e.method} csize={e.compressed_size}; "
        f"local method={e.local_method} csize={e.local_compressed_size}",
        offset=e.header_offset,
        severity=Severity.HIGH,
    )
    yield from handoff(artifact, f"{e.name} <local header view>", spool, handle, error)


def _link_target(stream: BinaryIO, e: _zip.ZipEntry, max_ratio: int) -> str | None:
    if e.index < 0 or e.data_offset < 0:
        return None
    head = _peek(stream, e, max_ratio)
    return None if head is None else head[:4096].decode("utf-8", "replace")


def _peek(stream: BinaryIO, e: _zip.ZipEntry, max_ratio: int) -> bytes | None:
    chunks = _zip.iter_member(stream, e, PEEK_BYTES, max_ratio, chunk=PEEK_BYTES)
    try:
        return next(chunks, b"")[:PEEK_BYTES]
    except ArtifactError:
        return None
    finally:
        chunks.close()


def _zip_prefix_and_tail(
    artifact: Artifact,
    ctx: ScanContext,
    directory: _zip.ZipDirectory,
    broken: dict[int, ArtifactError],
    handle: MemberHandler,
    budget: TreeBudget | None = None,
) -> Iterator[Finding]:
    starts = [e.header_offset for e in directory.entries if e.index not in broken]
    first = min([*starts, directory.cd_start, directory.eocd_offset])
    if first > 0:
        # NOTE: a pickle with a zip glued after it (or a fake EOCD in its tail) loads as a pickle
        # in torch (it checks for "PK\x03\x04" at offset 0) while looking like a zip here.
        yield artifact.finding(
            ARC008,
            f"{first} bytes before the first zip member (prefixed or polyglot file)",
            offset=0,
        )
        artifact.stream.seek(0)
        spool = Spool(budget)
        error = spool.fill(bounded_reads(artifact.stream, first, ctx.limits.max_read_bytes))
        yield from handoff(artifact, "<data before zip>", spool, handle, error)
    if directory.trailing_bytes:
        yield artifact.finding(
            ARC008,
            f"{directory.trailing_bytes} bytes after the end of the zip",
            offset=artifact.size - directory.trailing_bytes,
            severity=Severity.LOW,
        )


def _zip_entry_findings(
    here: Artifact, e: _zip.ZipEntry, broken: dict[int, ArtifactError]
) -> Iterator[Finding]:
    odd = e.flags & ~ZIP_BENIGN_FLAGS & 0xFFFF
    if odd:
        yield here.finding(
            ARC004,
            f"unusual general-purpose flag bits {odd:#06x} set",
            evidence=f"flags={e.flags:#06x}",
            offset=e.header_offset,
        )
    if e.index in broken:
        if e.flags & 0x1:
            yield here.finding(
                ARC005, "member is encrypted and cannot be analysed", offset=e.header_offset
            )
        return
    if e.local_name is not None and e.local_name != e.name:
        yield here.finding(
            ARC003,
            "local header names a different file than the central directory",
            evidence=f"central={e.name!r} local={e.local_name!r}",
            offset=e.header_offset,
        )
    if e.local_flags >= 0 and e.local_flags != e.flags:
        yield here.finding(
            ARC004,
            "local and central flags differ",
            evidence=f"central={e.flags:#06x} local={e.local_flags:#06x}",
            offset=e.header_offset,
        )
    for problem in e.problems:
        if problem.startswith(("local header method", "local header sizes", "member data extends")):
            yield here.finding(ARC009, problem, offset=e.header_offset)


def _zip_overlaps(
    artifact: Artifact, entries: list[_zip.ZipEntry], broken: dict[int, ArtifactError]
) -> Iterator[Finding]:
    spans = sorted(
        (
            (e.header_offset, e.data_offset + e.compressed_size, e)
            for e in entries
            if e.index not in broken
        ),
        key=lambda span: (span[0], span[1]),
    )
    reported = 0
    for (_s1, end1, e1), (s2, _end2, e2) in itertools.pairwise(spans):
        if s2 < end1 and reported < 10:
            reported += 1
            yield artifact.child(e2.name, ArtifactKind.UNKNOWN, e2.size, artifact.stream).finding(
                ARC010,
                f"member data overlaps member {e1.name!r}",
                evidence=f"{e1.name!r} ends at {end1}, {e2.name!r} starts at {s2}",
                offset=s2,
            )


def _zip_content_findings(here: Artifact, e: _zip.ZipEntry, spool: Spool) -> Iterator[Finding]:
    if spool.size != e.size:
        yield here.finding(
            ARC009,
            f"member holds {spool.size} bytes but the directory declares {e.size}",
            offset=e.data_offset,
        )
    if spool.crc != e.crc:
        yield here.finding(
            ARC006,
            "CRC-32 does not match the member's content",
            evidence=f"stored={e.crc:08x} actual={spool.crc:08x}",
            offset=e.header_offset,
            severity=Severity.LOW if e.crc == 0 else None,
            confidence=Confidence.MEDIUM if e.crc == 0 else Confidence.HIGH,
        )
