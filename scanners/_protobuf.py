"""A streaming protobuf wire-format walker shared by the ONNX and TensorFlow scanners.

Nothing is decoded into objects and no message is ever held whole: the walker reads field headers
through a small window and hands back positions, so a caller descends only into the messages it
cares about (graphs, nodes, attributes) and everything else (tensor bytes, packed values) is
skipped by seeking. That keeps memory flat on multi-GB files, past the 2 GB where the protobuf
library itself must give up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from supplychain.core.errors import ArtifactError, LimitExceeded

VARINT, I64, LEN, I32 = 0, 1, 2, 5
WINDOW = 64 * 1024
"""Bytes fetched per refill of the header window."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its number, wire type and where its payload lives in the stream."""

    number: int
    wire: int
    value: int
    """The varint or fixed-width value, or the payload length for a length-delimited field."""
    offset: int
    """Absolute offset of the payload (for LEN) or of the value (other wire types)."""

    @property
    def end(self) -> int:
        """Offset just past this field's payload."""
        if self.wire == LEN:
            return self.offset + self.value
        if self.wire == I64:
            return self.offset + 8
        if self.wire == I32:
            return self.offset + 4
        return self.offset


class ProtoReader:
    """Random-access reads of protobuf fields from a seekable stream, through a bounded window."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self._buf = b""
        self._buf_start = 0

    def _get(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` (fewer only at end of stream); ``n`` must be small."""
        rel = pos - self._buf_start
        if rel >= 0 and rel + n <= len(self._buf):
            return self._buf[rel : rel + n]
        self.stream.seek(pos)
        self._buf = self.stream.read(max(n, WINDOW))
        self._buf_start = pos
        return self._buf[:n]

    def _varint(self, pos: int) -> tuple[int, int]:
        """Decode a varint at ``pos``; return (value, position after it)."""
        raw = self._get(pos, 10)
        result = 0
        for i, b in enumerate(raw):
            result |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return result, pos + i + 1
        if len(raw) < 10:
            raise ArtifactError("protobuf: truncated varint", pos)
        raise ArtifactError("protobuf: varint longer than 10 bytes", pos)

    def fields(self, start: int, end: int) -> Iterator[Field]:
        """Fields of the message stored in ``[start, end)``, in stream order.

        The caller may descend into a field's payload or ignore it: iteration always resumes
        after the payload. A payload that runs past ``end`` or the stream is malformed input.
        """
        if end > self.size:
            raise ArtifactError(
                f"protobuf: message ends at {end}, past end of file ({self.size})", start
            )
        pos = start
        while pos < end:
            key, pos_after = self._varint(pos)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ArtifactError("protobuf: field number 0", pos)
            if wire == VARINT:
                value, nxt = self._varint(pos_after)
                field = Field(number, wire, value, pos_after)
            elif wire == LEN:
                length, data_at = self._varint(pos_after)
                nxt = data_at + length
                field = Field(number, wire, length, data_at)
            elif wire == I64:
                nxt = pos_after + 8
                field = Field(number, wire, _fixed(self._get(pos_after, 8)), pos_after)
            elif wire == I32:
                nxt = pos_after + 4
                field = Field(number, wire, _fixed(self._get(pos_after, 4)), pos_after)
            else:
                # NOTE: groups (3/4) are not used by ONNX or TensorFlow; 6/7 are invalid.
                raise ArtifactError(f"protobuf: unsupported wire type {wire}", pos)
            if nxt > end:
                raise ArtifactError(
                    f"protobuf: field {number} ends at {nxt}, past its message end {end}", pos
                )
            yield field
            pos = nxt

    def read(self, field: Field, limit: int, what: str = "field") -> bytes:
        """The whole payload of a length-delimited field, refusing more than ``limit`` bytes."""
        if field.wire != LEN:
            raise ArtifactError(f"protobuf: {what} is not length-delimited", field.offset)
        if field.value > limit:
            raise LimitExceeded(f"{what} of {field.value} bytes over the {limit}-byte limit")
        if field.value <= WINDOW:
            data = self._get(field.offset, field.value)
        else:
            self.stream.seek(field.offset)
            data = self.stream.read(field.value)
        if len(data) != field.value:
            raise ArtifactError(f"protobuf: truncated {what}", field.offset)
        return data

    def head(self, field: Field, limit: int) -> bytes:
        """At most ``limit`` leading bytes of a length-delimited payload (for names and paths)."""
        if field.wire != LEN:
            return b""
        n = min(field.value, limit)
        if n <= WINDOW:
            return self._get(field.offset, n)
        self.stream.seek(field.offset)
        return self.stream.read(n)

    def text(self, field: Field, limit: int = 4096) -> str:
        """A string field, cut to ``limit`` bytes and decoded leniently (it is evidence)."""
        return self.head(field, limit).decode("utf-8", "replace")


def _fixed(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def top_level_numbers(reader: ProtoReader, max_fields: int = 64) -> list[tuple[int, int]]:
    """(number, wire) of the first fields of the top-level message, for format decisions."""
    out: list[tuple[int, int]] = []
    for f in reader.fields(0, reader.size):
        out.append((f.number, f.wire))
        if len(out) >= max_fields:
            break
    return out
