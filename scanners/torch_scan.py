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
import re
import struct
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from scanners import _zip
from scanners._magic import LEGACY_MAGIC, LEGACY_PROTOCOL, is_pickle_stream
from scanners.base import Artifact, ScanContext
from scanners.containers import (
    ARC011,
    ARC013,
    ARC_RULES,
    ELEMENT_SIZE,
    Want,
    legacy_member,
    walk_tar,
    walk_zip,
)
from scanners.pickle_analysis import scan_pickle
from scanners.pickle_vm import Global, Persistent, PickleMachine, Stop, StreamError
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
LEGACY_HEADER_PICKLES = 5


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
        elsize = ELEMENT_SIZE.get(name.rsplit(".", 1)[-1], 0) if "Storage" in name else 0
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
                if is_pickle_stream(stream.read(64 * 1024), strict=True):
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
    if not is_pickle_stream(head, strict=True):
        return
    yield artifact.finding(
        ARC011,
        f"raw record of storage {key!r} starts with a pickle",
        evidence=str(key)[:80],
        offset=start,
    )
    yield from _analyse_range(artifact, ctx, start, end)
