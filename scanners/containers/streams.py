"""Single-stream compression (gzip, zlib, bzip2, xz/lzma, lz4): bounded, concatenation-aware."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from scanners._extras import dependency_error, require
from scanners._io import CHUNK
from scanners._magic import BZIP2_MAGIC, GZIP_MAGIC, LZ4_MAGIC, XZ_MAGIC
from scanners._zip import ZLIB_DECOMPRESSOR
from scanners.base import ScanContext
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind

COMPRESSED_KINDS = frozenset(
    {
        ArtifactKind.GZIP,
        ArtifactKind.BZIP2,
        ArtifactKind.XZ,
        ArtifactKind.ZLIB,
        ArtifactKind.LZ4,
    }
)
"""Kinds that wrap exactly one payload stream."""


def _codec(kind: ArtifactKind) -> tuple[Callable[[], Any], bytes]:
    """A factory for a fresh decompressor and the magic that starts a concatenated stream."""
    match kind:
        case ArtifactKind.GZIP:
            return (lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)), GZIP_MAGIC
        case ArtifactKind.ZLIB:
            return (lambda: zlib.decompressobj(zlib.MAX_WBITS)), b"\x78"
        case ArtifactKind.BZIP2:
            return bz2.BZ2Decompressor, BZIP2_MAGIC
        case ArtifactKind.XZ:
            # FORMAT_AUTO also reads legacy .lzma ("alone"), which joblib's 'lzma' compressor uses.
            return (lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO)), XZ_MAGIC
        case ArtifactKind.LZ4:
            require("archives", ("lz4",))
            try:
                import lz4.frame
            except ImportError as exc:
                raise dependency_error("archives", ["lz4"]) from exc
            return lz4.frame.LZ4FrameDecompressor, LZ4_MAGIC
        case _:
            raise ArtifactError(f"no decompressor for {kind.value}")


def _drain(d: Any, data: bytes) -> Iterator[bytes]:
    """All output ``data`` produces, in chunks of at most ``CHUNK`` (a bomb never lands at once)."""
    if isinstance(d, ZLIB_DECOMPRESSOR):
        while True:
            out = d.decompress(data, CHUNK)
            if out:
                yield out
            tail = d.unconsumed_tail
            if d.eof or (not tail and len(out) < CHUNK) or (tail == data and not out):
                return
            data = tail
    else:
        out = d.decompress(data, CHUNK)
        if out:
            yield out
        while not d.eof and not d.needs_input:
            out = d.decompress(b"", CHUNK)
            if not out:
                return
            yield out


def _strip_joblib_zf(data: bytes) -> bytes:
    """joblib < 0.10 wrote each zlib block behind ``ZF`` and a space-padded hex length."""
    if data.startswith(b"ZF0x"):
        start = data.find(b"\x78", 4, 48)
        if start > 0 and not data[4:start].strip(b"0123456789abcdefABCDEF L"):
            return data[start:]
    return data


def decompressed(
    stream: BinaryIO, kind: ArtifactKind, ctx: ScanContext, trailing: list[int]
) -> Iterator[bytes]:
    """Decompress a single-stream wrapper in bounded chunks, following concatenated streams.

    Appends the offset of any non-stream data after the last stream to ``trailing``. Raises
    ``LimitExceeded`` past the read cap or the compression ratio, ``ArtifactError`` when the
    stream is corrupt or cut short.
    """
    limits = ctx.limits
    make, magic = _codec(kind)
    cap = min(limits.max_read_bytes, limits.max_archive_total_bytes)
    d = make()
    consumed = produced = 0
    errors: tuple[type[BaseException], ...] = (zlib.error, OSError, EOFError, lzma.LZMAError)
    if kind is ArtifactKind.LZ4:
        errors = (*errors, RuntimeError)
    stream.seek(0)
    data = b""
    first = True
    while True:
        if not data:
            data = stream.read(CHUNK)
            if not data:
                break
            consumed += len(data)
        if first and kind is ArtifactKind.ZLIB:
            data = _strip_joblib_zf(data)
        first = False
        try:
            for out in _drain(d, data):
                produced += len(out)
                if produced > cap:
                    raise LimitExceeded(f"{kind.value} stream expands past {cap} bytes")
                if (
                    produced > max(consumed, 1024) * limits.max_archive_ratio
                    and produced > limits.min_bomb_bytes
                ):
                    raise LimitExceeded(
                        f"{kind.value} stream expands more than {limits.max_archive_ratio}x "
                        "(decompression bomb)",
                        consumed,
                    )
                yield out
        except errors as exc:
            raise ArtifactError(f"{kind.value}: corrupt data ({exc})", consumed) from exc
        data = b""
        if d.eof:
            rest = d.unused_data
            if not rest:
                rest = stream.read(CHUNK)
                consumed += len(rest)
            if not rest:
                return
            if kind is ArtifactKind.ZLIB:
                rest = _strip_joblib_zf(rest)
            if rest.startswith(magic):
                d = make()
                data = rest
                continue
            if rest.strip(b"\x00"):
                trailing.append(consumed - len(rest))
            return
    if not d.eof:
        raise ArtifactError(f"{kind.value}: stream cut short", consumed)


def inner_name(name: str, kind: ArtifactKind) -> str:
    """The member name for a wrapper's payload: the file name without its compression suffix."""
    lower = name.lower()
    for suffix, repl in (
        (".tgz", ".tar"),
        (".gz", ""),
        (".bz2", ""),
        (".xz", ""),
        (".lzma", ""),
        (".lz4", ""),
        (".zlib", ""),
        (".z", ""),
    ):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + repl
    return f"<{kind.value} payload>"
