"""PyTorch checkpoints: find every pickle by content and hand it to the engine.

A ``torch.save`` zip is read the way PyTorch reads it (central directory first; CRCs and local
header names ignored), and every way in which it differs from what ``zipfile`` would accept is a
finding, never a skip (CVE-2025-1944, CVE-2025-1945, CVE-2025-10156). Every member except raw
tensor storages is dispatched, whatever its name (CVE-2025-1889): ``data.pkl``, ``constants.pkl``,
TorchScript ``code/`` sources and ``.debug_pkl`` files, extra members, and members under any top
directory. Storages (``<root>/data/<n>``) are raw numbers that torch never unpickles; only their
first 64 KiB are read, and a storage that starts with a pickle is dispatched too.

Legacy tar checkpoints (torch < 0.4) keep pickles in ``sys_info`` and ``pickle`` and interleave
pickles with raw storage bytes in ``storages`` and ``tensors``; those are cut into their pickles.

Legacy stream checkpoints (``torch.save(..., _use_new_zipfile_serialization=False)``, the only
format before torch 1.6, ``TORCH_LEGACY``) are parsed as their layout: five pickles (magic
number, protocol version, sys info, the object with persistent ids, the storage keys), then one
raw record per storage key (int64 element count, then count × element size bytes). torch.load
runs all five pickles, so all five are analysed; storage records are skipped by the sizes the
persistent ids declare, so their bytes are never read as a stacked pickle. Whatever does not fit
the layout (a missing or resized record, data after the last record) is a finding, and bytes
that could not be placed are analysed as a potential pickle.
"""

from __future__ import annotations

import dataclasses
import io
import pickletools
import re
import struct
import warnings
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from scanners import _zip
from scanners.archive_scan import (
    ARC011,
    ARC013,
    ARC_RULES,
    Spool,
    Want,
    handoff,
    looks_like_pickle,
    walk_tar,
    walk_zip,
)
from scanners.base import Artifact, ScanContext
from scanners.pickle_scan import scan_pickle
from scanners.pickle_vm import Global, Persistent, PickleMachine, Stop, StreamError
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

_STORAGE = re.compile(r"(?:^|/)data/\d+$")
"""A tensor storage record: ``<root>/data/<key>`` (raw bytes, never unpickled by torch)."""

ARC012 = make_rule(
    "ARC012",
    "Members outside the checkpoint root",
    Severity.LOW,
    "A torch zip has members under more than one top-level directory. torch.load reads only the "
    "directory of the first member, so the others are invisible to it but are loaded by other "
    "tools and can be swapped in by renaming. Every member is scanned here.",
    "Rebuild the checkpoint with torch.save so it has a single root directory.",
    cwe=436,
)
ARC014 = make_rule(
    "ARC014",
    "Data after the last legacy storage record",
    Severity.HIGH,
    "A legacy (pre-1.6) torch.save stream goes on after its last storage record. torch.save "
    "never writes anything there and torch.load never reads it, but a loader that reads stacked "
    "pickles (or a second stage) can run it; it is analysed as a potential pickle.",
    "Rebuild the checkpoint with torch.save, or convert it to safetensors in an isolated "
    "environment.",
    cwe=506,
)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""``torch.serialization.MAGIC_NUMBER``: the first pickle of a legacy stream."""
LEGACY_PROTOCOL = 1001
"""``torch.serialization.PROTOCOL_VERSION``: the second pickle."""
LEGACY_HEADER_PICKLES = 5
PICKLE_SEGMENT_MAX = 1 << 20
"""Largest header pickle expected inside legacy ``storages``/``tensors`` (they are tiny)."""
_ELEMENT_SIZE = {
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


def is_legacy_torch(head: bytes) -> bool:
    """Whether ``head`` starts with the legacy torch magic-number pickle (any protocol).

    This is what torch.load checks after its zip and tar tests fail: the first pickle must
    load as ``MAGIC_NUMBER``. Meant for identification (``scanners.sniff``).
    """
    window = head[:64]
    values: list[object] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, arg, _pos in pickletools.genops(io.BytesIO(window)):
                if op.name == "STOP":
                    return values == [LEGACY_MAGIC]
                if op.name not in ("PROTO", "FRAME"):
                    values.append(arg)
        except Exception:  # not a complete pickle in the window
            return False
    return False


class TorchScanner:
    """``torch.save`` zip and legacy tar checkpoints, and TorchScript archives."""

    name: ClassVar[str] = "torch"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.TORCH_ZIP, ArtifactKind.TORCH_TAR, ArtifactKind.TORCH_LEGACY}
    )
    rules: ClassVar[tuple[Rule, ...]] = (*ARC_RULES, ARC011, ARC012, ARC013, ARC014)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Check the container and dispatch every pickle (and TorchScript source) in it."""
        if artifact.kind is ArtifactKind.TORCH_LEGACY:
            yield from scan_legacy_stream(artifact, ctx)
            return
        if artifact.kind is ArtifactKind.TORCH_TAR:
            yield from walk_tar(artifact, ctx, handler=lambda m: legacy_member(m, ctx))
            return
        roots: dict[str, None] = {}

        def want(e: _zip.ZipEntry) -> Want:
            roots.setdefault(e.name.split("/", 1)[0] if "/" in e.name else "", None)
            return Want.PEEK if _STORAGE.search(e.name) else Want.READ

        def stash(here: Artifact, e: _zip.ZipEntry) -> Iterator[Finding]:
            yield here.finding(
                ARC011,
                "tensor storage record starts with a pickle",
                evidence=e.name,
                offset=e.data_offset,
            )

        yield from walk_zip(artifact, ctx, want=want, on_peek=stash)
        if len(roots) > 1:
            yield artifact.finding(
                ARC012,
                f"members under {len(roots)} top-level directories; torch.load reads only the "
                "first",
                evidence=", ".join(repr(r) for r in list(roots)[:8]),
                confidence=Confidence.MEDIUM,
            )


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
            if module == "torch" and attr in _ELEMENT_SIZE:
                return _ELEMENT_SIZE[attr]
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


# --------------------------------------------------------------------------------------------
# legacy stream layout (torch < 1.6 default; ``_use_new_zipfile_serialization=False``)


@dataclasses.dataclass(slots=True)
class _Header:
    """One of the five leading pickles: where it is and what it evaluates to."""

    start: int
    end: int
    result: object
    persistent: list[object]
    broken: str | None


def _walk_header(stream: BinaryIO, ctx: ScanContext, start: int) -> _Header:
    """Walk one pickle symbolically (never loaded) to find its end, value and persistent ids."""
    machine = PickleMachine(stream, ctx.limits, start=start, stacked=False)
    result: object = None
    persistent: list[object] = []
    broken: str | None = None
    for ev in machine.walk():
        if isinstance(ev, Persistent):
            if len(persistent) < ctx.limits.max_archive_members * 4:
                persistent.append(ev.pid)
        elif isinstance(ev, Stop):
            result = ev.result
        elif isinstance(ev, StreamError):
            broken = ev.message
    end = machine.position if broken is None else start
    return _Header(start, end, result, persistent, broken)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return None


def _storage_sizes(persistent: list[object]) -> dict[object, tuple[int, int, str]]:
    """Root key → (element size, element count, type name), first occurrence wins (as torch)."""
    sizes: dict[object, tuple[int, int, str]] = {}
    for pid in persistent:
        if not isinstance(pid, tuple) or len(pid) < 5 or _text(pid[0]) != "storage":
            continue
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(key, str | bytes | int) or key in sizes:
            continue
        name = storage_type.name if isinstance(storage_type, Global) else ""
        # ``torch.cuda.FloatStorage`` and the like resolve to the same dtype as the CPU class.
        elsize = _ELEMENT_SIZE.get(name.rsplit(".", 1)[-1], 0) if "Storage" in name else 0
        count = numel if isinstance(numel, int) and not isinstance(numel, bool) else -1
        sizes[key] = (elsize, count, name or repr(storage_type))
    return sizes


def _relocated(findings: Iterator[Finding], shift: int) -> Iterator[Finding]:
    """Findings of a walk started at ``shift``, with offsets made absolute in the file."""
    for f in findings:
        if f.location.offset is not None and shift:
            loc = dataclasses.replace(f.location, offset=f.location.offset + shift)
            yield dataclasses.replace(f, location=loc)
        else:
            yield f


def _analyse_range(
    artifact: Artifact, ctx: ScanContext, start: int, end: int | None
) -> Iterator[Finding]:
    as_pickle = dataclasses.replace(artifact, kind=ArtifactKind.PICKLE)
    yield from _relocated(scan_pickle(as_pickle, ctx, start=start, end=end), start)


def scan_legacy_stream(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Analyse a legacy torch stream as its layout (see the module docstring).

    Each of the five pickles is analysed on its own (torch loads each with a fresh unpickler);
    storage records are skipped by the sizes declared in the object pickle's persistent ids.
    Where the layout stops making sense, the rest of the stream is analysed as stacked pickles
    (a loader would run whatever is there) and the break is an ``ARC013`` finding.
    """
    stream = artifact.stream
    size = artifact.size
    pos = 0
    headers: list[_Header] = []
    for index in range(LEGACY_HEADER_PICKLES):
        header = _walk_header(stream, ctx, pos)
        if header.broken is not None:
            # torch stops here; everything before (and the broken pickle) is analysed.
            yield from _analyse_range(artifact, ctx, pos, None)
            yield artifact.finding(
                ARC013,
                f"legacy torch pickle #{index + 1} does not parse: {header.broken}",
                offset=pos,
            )
            return
        yield from _analyse_range(artifact, ctx, pos, header.end)
        headers.append(header)
        pos = header.end
    magic, protocol, _sys_info, obj, keys_pickle = headers
    problems: list[str] = []
    if magic.result != LEGACY_MAGIC:
        problems.append("first pickle is not the legacy magic number")
    if protocol.result != LEGACY_PROTOCOL:
        problems.append(f"protocol version {protocol.result!r} is not {LEGACY_PROTOCOL}")
    keys = keys_pickle.result
    if not isinstance(keys, list) or not all(isinstance(k, str | bytes | int) for k in keys):
        problems.append("storage key list is not a list of keys")
    for problem in problems:
        yield artifact.finding(ARC013, f"legacy torch stream: {problem}", offset=0)
    if problems or not isinstance(keys, list):
        yield from _unplaced(artifact, ctx, pos, "after the legacy header pickles")
        return
    sizes = _storage_sizes(obj.persistent)
    for key in keys:
        info = sizes.get(key)
        if info is None or info[0] <= 0 or info[1] < 0:
            why = (
                f"storage key {key!r} has no storage persistent id"
                if info is None
                else f"storage {key!r} of type {info[2]} has no known element size or count"
            )
            yield artifact.finding(ARC013, f"legacy torch stream: {why}", offset=pos)
            yield from _unplaced(artifact, ctx, pos, f"at the record of storage {key!r}")
            return
        elsize, numel, _name = info
        stream.seek(pos)
        head = stream.read(8)
        if len(head) < 8:
            yield artifact.finding(
                ARC013,
                f"legacy torch stream ends before the record of storage {key!r}",
                offset=pos,
            )
            return
        (count,) = struct.unpack("<q", head)
        if count != numel:
            yield artifact.finding(
                ARC013,
                f"record of storage {key!r} holds {count} elements where its persistent id "
                f"declares {numel} (torch refuses it, after running every pickle)",
                offset=pos,
            )
            yield from _unplaced(artifact, ctx, pos, f"at the record of storage {key!r}")
            return
        end = pos + 8 + numel * elsize
        if end > size:
            yield artifact.finding(
                ARC013,
                f"record of storage {key!r} runs past the end of the stream "
                f"({numel} × {elsize} bytes)",
                offset=pos,
            )
            return
        yield from _storage_stash(artifact, ctx, pos + 8, end, key)
        pos = end
    if pos < size:
        yield artifact.finding(
            ARC014,
            f"{size - pos} bytes after the last storage record",
            offset=pos,
        )
        yield from _unplaced(artifact, ctx, pos, "after the last storage record")


CARVE_BYTES = 256 * 2**20
"""How far into bytes the layout could not place we look for embedded pickles."""
CARVE_CANDIDATES = 20_000
CARVE_PICKLES = 32


def _unplaced(artifact: Artifact, ctx: ScanContext, pos: int, where: str) -> Iterator[Finding]:
    """Bytes the layout could not place, analysed as a loader other than torch might read them.

    First as stacked pickles from ``pos``; then every complete pickle embedded further on
    (a ``PROTO`` byte pair that starts a stack-consistent pickle with an import) is analysed
    too, since junk in front of a payload would stop a plain walk.
    """
    if pos >= artifact.size:
        return
    yield from _analyse_range(artifact, ctx, pos, None)
    stream = artifact.stream
    end = min(artifact.size, pos + CARVE_BYTES)
    at = pos + 1
    checked = found = 0
    while at < end and checked < CARVE_CANDIDATES and found < CARVE_PICKLES:
        stream.seek(at)
        block = stream.read(min(1 << 20, end - at))
        if not block:
            return
        i = block.find(b"\x80")
        while i >= 0 and checked < CARVE_CANDIDATES:
            if i + 1 < len(block) and 2 <= block[i + 1] <= 5:
                checked += 1
                stream.seek(at + i)
                if looks_like_pickle(stream.read(64 * 1024)):
                    found += 1
                    yield artifact.finding(
                        ARC013,
                        f"complete pickle embedded in bytes {where}",
                        offset=at + i,
                        severity=Severity.HIGH,
                    )
                    yield from _analyse_range(artifact, ctx, at + i, None)
            i = block.find(b"\x80", i + 1)
        at += max(len(block) - 1, 1)


def _storage_stash(
    artifact: Artifact, ctx: ScanContext, start: int, end: int, key: object
) -> Iterator[Finding]:
    """A storage record that starts with a real pickle is a stash (``ARC011``): analyse it."""
    stream = artifact.stream
    stream.seek(start)
    head = stream.read(min(end - start, 64 * 1024))
    if not looks_like_pickle(head):
        return
    yield artifact.finding(
        ARC011,
        f"raw record of storage {key!r} starts with a pickle",
        evidence=str(key)[:80],
        offset=start,
    )
    yield from _analyse_range(artifact, ctx, start, end)
