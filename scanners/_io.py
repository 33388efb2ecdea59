"""Bounded I/O helpers: streamed hashing and spooling container members without loading them."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from typing import BinaryIO

from supplychain.core.errors import LimitExceeded

CHUNK = 1 << 20
SPOOL_IN_MEMORY = 16 * 2**20
"""Members up to this size stay in RAM; larger ones spill to a temporary file."""


def sha256_stream(stream: BinaryIO, chunk: int = CHUNK) -> tuple[str, int]:
    """Hash a stream from its start with one reused buffer; return (hex digest, bytes read).

    NOTE: the caller then rewinds the *same* handle for the scanners, so the digest in the report
    belongs to the bytes that were analysed (no reopen, no TOCTOU window).
    """
    stream.seek(0)
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            digest.update(view[:n])
        else:
            block = stream.read(chunk)
            if not block:
                break
            n = len(block)
            digest.update(block)
        total += n
    stream.seek(0)
    return digest.hexdigest(), total


def spool(chunks: Iterable[bytes], max_bytes: int, what: str = "member") -> tuple[BinaryIO, int]:
    """Copy a stream of chunks into a seekable spooled file, refusing more than ``max_bytes``.

    Memory stays bounded by ``SPOOL_IN_MEMORY`` whatever the member's size.
    """
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - caller owns it
    total = 0
    for block in chunks:
        total += len(block)
        if total > max_bytes:
            out.close()
            raise LimitExceeded(f"{what} larger than {max_bytes} bytes")
        out.write(block)
    out.seek(0)
    return out, total  # type: ignore[return-value]


def read_exact(stream: BinaryIO, size: int, what: str = "data") -> bytes:
    """Read exactly ``size`` bytes or raise ``ArtifactError`` naming what was cut short."""
    from supplychain.core.errors import ArtifactError

    pos = stream.tell()
    data = stream.read(size)
    if len(data) != size:
        raise ArtifactError(f"truncated {what}: wanted {size} bytes, got {len(data)}", pos)
    return data
