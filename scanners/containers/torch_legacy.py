"""Legacy tar checkpoints (torch < 0.4): ``storages``/``tensors`` members cut into their pickles.

torch.load opens any tar holding these names whatever their order, so both the archive scanner
(plain tars) and the torch scanner (``sys_info`` first) hand tar members to ``legacy_member``.
"""

from __future__ import annotations

import io
import pickletools
import struct
import warnings
from collections.abc import Iterator
from typing import BinaryIO

from scanners.base import Artifact, ScanContext
from scanners.containers.rules import ARC013
from scanners.containers.spool import Spool, handoff
from supplychain.core.errors import ArtifactError
from supplychain.core.model import Finding

PICKLE_SEGMENT_MAX = 1 << 20
"""Largest header pickle expected inside legacy ``storages``/``tensors`` (they are tiny)."""
ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}
"""Element size per storage class name (``torch.storage._dtype_to_storage_type_map``); the
legacy loader maps any ``*Storage`` name it knows, whatever the module, to its dtype."""


def legacy_member(member: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Legacy tar members: ``storages``/``tensors`` are split into their pickles.

    torch.load opens any tar holding these names, whatever their order, so the archive scanner
    uses this handler for plain tars too; a member that does not start with a pickle is
    dispatched whole as usual.
    """
    base = member.member[-1] if member.member else ""
    if base in ("storages", "tensors"):
        member.stream.seek(0)
        head = member.stream.read(2)
        member.stream.seek(0)
        if head[:1] == b"\x80":
            yield from _split_legacy(member, ctx, base)
            return
    yield from ctx.dispatch(member)


def _pickle_end(data: bytes) -> tuple[int, list[tuple[str, object]]] | None:
    """Length of the pickle at the start of ``data`` and its opcodes, or ``None`` if cut short."""
    ops: list[tuple[str, object]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools warns on odd string escapes
        try:
            for op, arg, pos in pickletools.genops(io.BytesIO(data)):
                ops.append((op.name, arg))
                if op.name == "STOP":
                    return (pos or 0) + 1, ops
        except Exception:  # not a (complete) pickle within the window
            return None
    return None


def _small_int(ops: list[tuple[str, object]]) -> int | None:
    """The value of a pickle that is just one integer (legacy record counts)."""
    values = [arg for name, arg in ops if name not in ("PROTO", "FRAME", "STOP")]
    if len(values) == 1 and isinstance(values[0], int) and not isinstance(values[0], bool):
        return values[0]
    return None


def _storage_element_size(ops: list[tuple[str, object]]) -> int | None:
    for name, arg in ops:
        if name == "GLOBAL" and isinstance(arg, str):
            module, _, attr = arg.partition(" ")
            if module == "torch" and attr in ELEMENT_SIZE:
                return ELEMENT_SIZE[attr]
    return None


def _split_legacy(member: Artifact, ctx: ScanContext, base: str) -> Iterator[Finding]:
    """Walk ``storages``/``tensors`` the way ``torch.serialization._legacy_load`` does.

    Layout: count pickle; per record an args pickle then raw bytes (storages: int64 element
    count then data; tensors: ndim, padding, sizes, strides, offset); then trailing pickles.
    """
    stream = member.stream
    size = member.size
    pos = 0
    count: int | None = None
    records = 0
    while pos < size:
        stream.seek(pos)
        window = stream.read(min(PICKLE_SEGMENT_MAX, size - pos))
        parsed = _pickle_end(window)
        if parsed is None:
            # Hand on what is there (a broken payload is still a payload), then report.
            yield from _dispatch_slice(member, ctx, pos, window)
            yield member.finding(
                ARC013,
                f"no complete pickle at offset {pos} of legacy {base!r}",
                offset=pos,
            )
            return
        length, ops = parsed
        yield from _dispatch_slice(member, ctx, pos, window[:length])
        pos += length
        if count is None:
            count = _small_int(ops)
            if count is None or count < 0 or count > size:
                yield member.finding(
                    ARC013, f"legacy {base!r} does not start with a record count", offset=0
                )
                return
            continue
        if records >= count:
            continue  # trailing pickles (storage views): dispatched above
        records += 1
        try:
            pos = _skip_raw(stream, pos, size, base, ops)
        except ArtifactError as exc:
            yield member.finding(ARC013, f"legacy {base!r}: {exc}", offset=exc.offset)
            return


def _skip_raw(
    stream: BinaryIO, pos: int, size: int, base: str, ops: list[tuple[str, object]]
) -> int:
    """Offset after the raw bytes that follow one record's args pickle."""
    read = stream.read
    stream.seek(pos)
    if base == "storages":
        elsize = _storage_element_size(ops)
        if elsize is None:
            raise ArtifactError("storage record names no known torch storage type", pos)
        head = read(8)
        if len(head) < 8:
            raise ArtifactError("storage record cut short", pos)
        numel = int(struct.unpack("<q", head)[0])
        end = pos + 8 + numel * elsize
    else:
        head = read(8)
        if len(head) < 8:
            raise ArtifactError("tensor record cut short", pos)
        (ndim,) = struct.unpack("<i", head[:4])
        if not 0 <= ndim <= 64:
            raise ArtifactError(f"tensor record with {ndim} dimensions", pos)
        end = pos + 8 + 16 * ndim + 8
    if end < pos or end > size:
        raise ArtifactError("record data runs past the end of the member", pos)
    return end


def _dispatch_slice(member: Artifact, ctx: ScanContext, pos: int, data: bytes) -> Iterator[Finding]:
    spool = Spool()
    spool.write(data)
    yield from handoff(member, f"@{pos}", spool, ctx.dispatch, None)
