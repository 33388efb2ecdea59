"""``supplychain explain FILE``: the decompiled trace of every pickle in a file, never executed.

A generator of printable lines (the trace quotes attacker-controlled strings, so every line is
escaped here and the CLI only prints). Torch/zip checkpoints are explained member by member, an
object-dtype ``.npy`` from its pickle payload. Memory stays bounded whatever the size: a zip
member is streamed into a spool (RAM up to ``SPOOL_IN_MEMORY``, then a temporary file) and a
file is walked in place through a window, never read whole. The pickle machine seeks back for
memo constants, so it gets a seekable stream, not a pipe.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, cast

from scanners import _zip
from scanners.containers import Spool
from scanners.numpy_scan import parse_header
from scanners.pickle_vm import explain as trace
from scanners.sniff import sniff
from supplychain.core.errors import ArtifactError
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, escape_evidence

MAX_TRACED_BYTES = 256 * 2**20
"""Most bytes of one pickle (member or payload) that are traced."""
NPY_HEAD_BYTES = 1 << 20
LINE_LIMIT = 4000
"""Longest line printed (evidence escaping and truncation)."""
ZIP_KINDS = frozenset({ArtifactKind.TORCH_ZIP, ArtifactKind.ZIP, ArtifactKind.NUMPY_NPZ})


class Window(io.RawIOBase):
    """A read-only, seekable view of ``stream[start:end]`` whose offsets start at 0."""

    def __init__(self, stream: BinaryIO, start: int, end: int) -> None:
        super().__init__()
        self._stream = stream
        self._start = start
        self._size = max(end - start, 0)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self._size - self._pos
        if left <= 0:
            return b""
        want = left if size is None or size < 0 else min(size, left)
        self._stream.seek(self._start + self._pos)
        data = self._stream.read(want)
        self._pos += len(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def explain_file(
    stream: BinaryIO, size: int, name: str, limits: Limits | None = None
) -> Iterator[str]:
    """Escaped trace lines for the pickle(s) in ``stream`` (seekable, ``size`` bytes).

    Raises ``ArtifactError`` when a zip has no directory to read (nothing can be explained).
    """
    limits = limits or Limits()
    kind = sniff(stream, size, name)
    stream.seek(0)
    if kind in ZIP_KINDS:
        yield from _explain_zip(stream, size, limits)
        return
    if kind is ArtifactKind.NUMPY_NPY:
        start = npy_payload_start(stream, size)
        if start is None:
            yield "# not an object array: no pickle inside"
            return
        window = Window(stream, start, min(size, start + MAX_TRACED_BYTES))
        yield from _lines(cast(BinaryIO, window), limits)
        return
    if kind is not ArtifactKind.PICKLE:
        yield f"# {name} is {kind.value}, not a pickle; tracing it anyway"
    stream.seek(0)
    yield from _lines(stream, limits)


def _explain_zip(stream: BinaryIO, size: int, limits: Limits) -> Iterator[str]:
    directory = _zip.read_directory(stream, size, limits.max_archive_members)
    for entry in directory.entries:
        if entry.is_dir or entry.name.split("/")[-2:-1] == ["data"]:
            continue  # tensor storages are raw numbers, not pickles
        shown = escape_evidence(entry.name)
        spool = Spool()
        try:
            _zip.resolve(stream, entry, size)
            error = spool.fill(
                _zip.iter_member(stream, entry, MAX_TRACED_BYTES, limits.max_archive_ratio)
            )
            if error is not None:
                yield f"# member {shown}: {error}"
                continue
            member = spool.stream()
            if member.read(1) == b"\x80" or entry.name.endswith((".pkl", ".npy")):
                yield f"# member {shown}"
                start: int | None = 0
                if entry.name.endswith(".npy"):
                    start = npy_payload_start(member, spool.size)
                if start is not None:
                    yield from _lines(cast(BinaryIO, Window(member, start, spool.size)), limits)
        except ArtifactError as exc:
            yield f"# member {shown}: {exc}"
        finally:
            spool.file.close()


def _lines(stream: BinaryIO, limits: Limits) -> Iterator[str]:
    for line in trace(stream, limits):
        yield escape_evidence(line, limit=LINE_LIMIT)


def npy_payload_start(stream: BinaryIO, size: int) -> int | None:
    """Offset of the pickle inside an object-dtype ``.npy``, else ``None``."""
    stream.seek(0)
    head = stream.read(min(size, NPY_HEAD_BYTES))
    try:
        header, start = parse_header(io.BytesIO(head), len(head))
    except ArtifactError:
        return None
    return start if "O" in str(header.get("descr", "")) else None


__all__ = ["explain_file", "npy_payload_start"]
