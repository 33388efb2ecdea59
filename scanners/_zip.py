"""A tolerant ZIP reader that trusts the central directory the way PyTorch's loader does.

We do not use ``zipfile`` for analysis: it refuses archives that ``torch.load`` accepts (bad CRC,
local/central name mismatch: CVE-2025-1944, CVE-2025-10156), which turned "zipfile raised" into
"skipped" in other scanners. Here every oddity is reported as data (``ZipEntry.problems``) and the
caller decides what finding it is.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import BinaryIO

from supplychain.core.errors import ArtifactError, LimitExceeded

EOCD_SIG = b"PK\x05\x06"
EOCD64_LOC_SIG = b"PK\x06\x07"
CDH_SIG = b"PK\x01\x02"
LFH_SIG = b"PK\x03\x04"
MAX_COMMENT = 0xFFFF
STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
ZLIB_DECOMPRESSOR = type(zlib.decompressobj())
"""``zlib._Decompress`` exists only in typeshed; this is the runtime class."""


@dataclass(slots=True)
class ZipEntry:
    """One central-directory entry, with what its local header says where that differs."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int = -1
    """Start of the member's data, from the local header; -1 until ``resolve`` has run."""
    local_name: str | None = None
    local_flags: int = -1
    """General-purpose flags from the local header; -1 until ``resolve`` has run."""
    index: int = 0
    """Position in the central directory (names can repeat; the index never does)."""
    unix_mode: int = 0
    """``st_mode`` from the external attributes when written on Unix (symlinks live here)."""
    extra: bytes = b""
    """The central-directory extra field (zip64 sizes, AES encryption records)."""
    local_extra: bytes = b""
    """The local header's extra field; empty until ``resolve`` has run."""
    local_method: int = -1
    local_crc: int = -1
    local_compressed_size: int = -1
    local_size: int = -1
    """What the local header declares; -1 until ``resolve`` has run. Streaming readers (which
    never see the central directory) go by these."""
    problems: list[str] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        """Directory entries carry no data."""
        return self.name.endswith("/")


@dataclass(slots=True)
class ZipDirectory:
    """The entries of an archive plus archive-level oddities."""

    entries: list[ZipEntry]
    problems: list[str] = field(default_factory=list)
    prefix_bytes: int = 0
    """Bytes before the first local header (a polyglot or self-extracting prefix)."""
    eocd_offset: int = 0
    """Where the end-of-central-directory record starts."""
    cd_start: int = 0
    """Where the central directory really starts (declared offset plus any prefix shift)."""
    trailing_bytes: int = 0
    """Bytes after the EOCD record and its comment (data appended to the archive)."""


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    if offset < 0 or size < 0:
        # Hostile offsets (minus a prefix shift) can point before the start of the file.
        raise ArtifactError(f"zip: offset {offset} points outside the file", max(offset, 0))
    stream.seek(offset)
    return stream.read(size)


def find_eocd(stream: BinaryIO, file_size: int) -> int:
    """Offset of the end-of-central-directory record, or -1 when there is none."""
    window = min(file_size, MAX_COMMENT + 22)
    if window < 22:
        return -1
    tail = _read_at(stream, file_size - window, window)
    pos = tail.rfind(EOCD_SIG)
    while pos >= 0:
        if pos + 22 <= len(tail):
            return file_size - window + pos
        pos = tail.rfind(EOCD_SIG, 0, pos)
    return -1


def read_directory(stream: BinaryIO, file_size: int, max_entries: int) -> ZipDirectory:
    """Parse the central directory; raise ``ArtifactError`` only when there is none to parse."""
    eocd = find_eocd(stream, file_size)
    if eocd < 0:
        raise ArtifactError("zip: no end-of-central-directory record")
    rec = _read_at(stream, eocd, 22)
    (_, _disk, _cd_disk, _n_disk, n_total, cd_size, cd_offset, _clen) = struct.unpack(
        "<4sHHHHIIH", rec
    )
    problems: list[str] = []
    comment_len = rec[20] | (rec[21] << 8)
    trailing = max(file_size - (eocd + 22 + comment_len), 0)
    cd_end = eocd  # where the central directory should end: the EOCD or the zip64 record
    loc = _read_at(stream, eocd - 20, 20) if eocd >= 20 else b""
    if len(loc) == 20 and loc[:4] == EOCD64_LOC_SIG:
        # NOTE: a zip64 record sits between the central directory and the EOCD; without
        # accounting for it every multi-GB checkpoint would look "prefixed" and be misread.
        (eocd64_off,) = struct.unpack("<Q", loc[8:16])
        rec64 = _read_at(stream, eocd64_off, 56) if eocd64_off < eocd else b""
        if len(rec64) == 56 and rec64[:4] == b"PK\x06\x06":
            cd_end = eocd64_off
            if n_total == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
                n_total, cd_size, cd_offset = struct.unpack("<QQQ", rec64[32:56])
        else:
            # A prefix also shifts the zip64 record: look for it right before the locator.
            rec64 = _read_at(stream, eocd - 20 - 56, 56) if eocd >= 76 else b""
            if len(rec64) == 56 and rec64[:4] == b"PK\x06\x06":
                cd_end = eocd - 76
                if n_total == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
                    n_total, cd_size, cd_offset = struct.unpack("<QQQ", rec64[32:56])
            else:
                problems.append("zip64 locator points to no zip64 record")
    # A prefix (self-extracting stub, polyglot) shifts every offset; detect and compensate.
    expected_cd_end = cd_offset + cd_size
    shift = 0
    if expected_cd_end != cd_end and cd_end - cd_size >= 0:
        shift = cd_end - cd_size - cd_offset
        problems.append(f"central directory offset off by {shift} bytes (prefixed data)")
    if n_total > max_entries:
        raise LimitExceeded(f"zip declares {n_total} members (limit {max_entries})", eocd)
    if cd_size > 64 * 2**20 or cd_offset + shift < 0:
        raise ArtifactError("zip: implausible central directory", eocd)
    cd = _read_at(stream, cd_offset + shift, cd_size)
    entries: list[ZipEntry] = []
    pos = 0
    while pos + 46 <= len(cd) and cd[pos : pos + 4] == CDH_SIG:
        (
            _sig,
            vmade,
            _vneed,
            flags,
            method,
            _mtime,
            _mdate,
            crc,
            csize,
            usize,
            nlen,
            xlen,
            clen,
            _disk,
            _iattr,
            eattr,
            hoff,
        ) = struct.unpack("<4sHHHHHHIIIHHHHHII", cd[pos : pos + 46])
        raw_name = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + xlen]
        if 0xFFFFFFFF in (csize, usize, hoff):
            usize, csize, hoff = _zip64_sizes(extra, usize, csize, hoff)
        entries.append(
            ZipEntry(
                name=raw_name.decode("utf-8", "replace"),
                method=method,
                flags=flags,
                crc=crc,
                compressed_size=csize,
                size=usize,
                header_offset=hoff + shift,
                unix_mode=(eattr >> 16) if vmade >> 8 == 3 else 0,
                extra=bytes(extra),
                index=len(entries),
            )
        )
        if len(entries) > max_entries:
            raise LimitExceeded(f"zip has more than {max_entries} members", eocd)
        pos += 46 + nlen + xlen + clen
    if len(entries) != n_total:
        problems.append(f"central directory lists {len(entries)} entries, EOCD says {n_total}")
    return ZipDirectory(
        entries=entries,
        problems=problems,
        prefix_bytes=max(shift, 0),
        eocd_offset=eocd,
        cd_start=cd_offset + shift,
        trailing_bytes=trailing,
    )


def _zip64_sizes(extra: bytes, usize: int, csize: int, hoff: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 1:
            vals = [struct.unpack("<Q", body[i : i + 8])[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if hoff == 0xFFFFFFFF:
                hoff = next(it, hoff)
        pos += 4 + length
    return usize, csize, hoff


def resolve(stream: BinaryIO, entry: ZipEntry, file_size: int) -> None:
    """Read the local header: find the data offset and record how it disagrees with the CD."""
    lfh = _read_at(stream, entry.header_offset, 30)
    if len(lfh) < 30 or lfh[:4] != LFH_SIG:
        raise ArtifactError(f"zip member {entry.name!r}: no local header", entry.header_offset)
    (_sig, _v, lflags, lmethod, _t, _d, lcrc, lcs, lus, nlen, xlen) = struct.unpack(
        "<4sHHHHHIIIHH", lfh
    )
    local_name = _read_at(stream, entry.header_offset + 30, nlen).decode("utf-8", "replace")
    entry.local_name = local_name
    entry.local_flags = lflags
    entry.local_extra = _read_at(stream, entry.header_offset + 30 + nlen, xlen)
    if 0xFFFFFFFF in (lcs, lus):
        lus, lcs, _ = _zip64_sizes(entry.local_extra, lus, lcs, 0)
    entry.local_method = lmethod
    entry.local_crc = lcrc
    entry.local_compressed_size = lcs
    entry.local_size = lus
    entry.data_offset = entry.header_offset + 30 + nlen + xlen
    if local_name != entry.name:
        entry.problems.append(f"local header name {local_name!r} differs from central directory")
    if lmethod != entry.method:
        entry.problems.append(f"local header method {lmethod} differs from central {entry.method}")
    if lflags != entry.flags:
        entry.problems.append(
            f"local header flags {lflags:#06x} differ from central {entry.flags:#06x}"
        )
    if not lflags & 0x8 and (lcrc, lcs, lus) != (entry.crc, entry.compressed_size, entry.size):
        # With bit 3 (data descriptor) the local fields are zero by design; without it they
        # must agree, or a streaming reader reads other bytes than torch/zipfile do.
        entry.problems.append(
            f"local header sizes/CRC (csize={lcs} size={lus} crc={lcrc:08x}) differ from "
            f"central (csize={entry.compressed_size} size={entry.size} crc={entry.crc:08x})"
        )
    if entry.flags & 0x1:
        entry.problems.append("encrypted flag set")
    if entry.data_offset + entry.compressed_size > file_size:
        entry.problems.append("member data extends past end of file")


AES_EXTRA = 0x9901
"""WinZip AES encryption record in an extra field."""
AES_METHOD = 99
"""Compression method that stands for "AES-encrypted; real method in the 0x9901 record"."""


def extra_tags(extra: bytes) -> set[int]:
    """Header ids present in a zip extra field (malformed tails are ignored)."""
    tags: set[int] = set()
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        tags.add(tag)
        pos += 4 + length
    return tags


def iter_member(
    stream: BinaryIO,
    entry: ZipEntry,
    max_bytes: int,
    max_ratio: int,
    chunk: int = 1 << 20,
    min_bomb_bytes: int = 64 * 2**20,
) -> Generator[bytes, None, None]:
    """Yield a member's uncompressed bytes in chunks, ignoring the CRC as PyTorch does.

    Raises ``LimitExceeded`` past ``max_bytes`` or past ``max_ratio`` (a zip bomb), and
    ``ArtifactError`` on an unsupported method or corrupt compressed data.
    """
    if entry.data_offset < 0:
        raise ArtifactError(f"zip member {entry.name!r} not resolved")
    remaining = entry.compressed_size
    stream.seek(entry.data_offset)
    if entry.method == STORED:
        produced = 0
        while remaining > 0:
            block = stream.read(min(chunk, remaining))
            if not block:
                raise ArtifactError(f"zip member {entry.name!r} truncated", entry.data_offset)
            remaining -= len(block)
            produced += len(block)
            if produced > max_bytes:
                raise LimitExceeded(f"zip member {entry.name!r} over {max_bytes} bytes")
            yield block
        return
    decomp: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor
    if entry.method == DEFLATED:
        decomp = zlib.decompressobj(-15)
    elif entry.method == BZIP2:
        decomp = bz2.BZ2Decompressor()
    elif entry.method == LZMA:
        # NOTE: zip's LZMA has a 4-byte version/size prefix before raw LZMA1 properties.
        header = stream.read(4)
        remaining -= 4
        if len(header) < 4:
            raise ArtifactError(f"zip member {entry.name!r}: truncated LZMA header")
        (psize,) = struct.unpack("<H", header[2:4])
        props = stream.read(psize)
        remaining -= psize
        try:
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
            decomp = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        except (lzma.LZMAError, ValueError) as exc:
            raise ArtifactError(f"zip member {entry.name!r}: bad LZMA properties ({exc})") from exc
    else:
        raise ArtifactError(f"zip member {entry.name!r}: unsupported compression {entry.method}")
    produced = 0
    consumed = 0

    def check(out: bytes) -> None:
        nonlocal produced
        produced += len(out)
        if produced > max_bytes:
            raise LimitExceeded(f"zip member {entry.name!r} over {max_bytes} bytes")
        if produced > max(consumed, 1024) * max_ratio and produced > min_bomb_bytes:
            raise LimitExceeded(
                f"zip member {entry.name!r} expands more than {max_ratio}x (zip bomb)"
            )

    try:
        while remaining > 0:
            block = stream.read(min(chunk, remaining))
            if not block:
                raise ArtifactError(f"zip member {entry.name!r} truncated", entry.data_offset)
            remaining -= len(block)
            consumed += len(block)
            # Bounded output per call: a bomb never expands into memory in one piece.
            if isinstance(decomp, ZLIB_DECOMPRESSOR):
                data = block
                while data:
                    out = decomp.decompress(data, chunk)
                    check(out)
                    if out:
                        yield out
                    data = decomp.unconsumed_tail
            else:
                out = decomp.decompress(block, chunk)
                check(out)
                if out:
                    yield out
                while not decomp.eof and not decomp.needs_input:
                    out = decomp.decompress(b"", chunk)
                    check(out)
                    if not out:
                        break
                    yield out
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise ArtifactError(f"zip member {entry.name!r}: corrupt data ({exc})") from exc
