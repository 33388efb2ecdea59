"""Archive bombs across nesting (issue #9.5): limits hold for the whole tree of containers.

Every bomb here stays under the per-member caps at each level (no member is both over the
ratio and over ``min_bomb_bytes``), so only a budget shared by the whole tree of nested
containers (expanded bytes, members, time: ``scanners.containers.TreeBudget``) can stop it.
Each scan must end with a GEN002 finding, fail the default gate, and finish well inside a hang guard
(``HANG_GUARD`` seconds: generous on purpose, this is not a speed benchmark). Default limits.
"""

from __future__ import annotations

import functools
import gzip
import io
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from scanners.archive_scan import ArchiveScanner
from scanners.base import Artifact, ScanContext
from scanners.containers import TreeBudget, tree_budget
from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import ContainerTally, Limits
from supplychain.core.model import ArtifactKind, Report
from supplychain.engine import ScanOptions, scan_paths
from supplychain.policy import Policy, apply

HANG_GUARD = 10.0
LEAF = b"\x00" * (16 << 20)
"""16 MiB of zeros: under ``min_bomb_bytes`` (64 MiB), so no single member is a bomb."""


@functools.lru_cache(maxsize=8)
def _packed(data: bytes, method: int) -> tuple[bytes, int]:
    """Compressed body and CRC-32 of ``data``; cached, since bombs repeat one blob many times."""
    if method == zipfile.ZIP_STORED:
        return data, zlib.crc32(data)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush(), zlib.crc32(data)


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A plain zip (what ``zipfile`` writes), built from cached member bodies."""
    body = bytearray()
    central = bytearray()
    for name, data in members:
        raw = name.encode()
        packed, crc = _packed(data, method)
        head = (20, 0, method, 0, 0x21, crc, len(packed), len(data), len(raw))
        offset = len(body)
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", *head, 0) + raw + packed
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, *head, 0, 0, 0, 0, 0, offset
        )
        central += raw
    n = len(members)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), len(body), 0)
    return bytes(body + central + eocd)


def _lie_about_sizes(data: bytes) -> bytes:
    """Set every central-directory uncompressed size to 1: no up-front check can refuse it."""
    buf = bytearray(data)
    pos = buf.find(b"PK\x01\x02")
    while pos >= 0:
        struct.pack_into("<I", buf, pos + 24, 1)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def recursive_zip(levels: int, copies: int, lie: bool = False) -> bytes:
    """42.zip-style: each level holds ``copies`` copies of the level below; leaves are zeros."""
    layer = _zip([(f"{i}.bin", LEAF) for i in range(copies)])
    for depth in range(levels - 1):
        if lie:
            layer = _lie_about_sizes(layer)
        layer = _zip([(f"l{depth}_{i}.zip", layer) for i in range(copies)])
    return _lie_about_sizes(layer) if lie else layer


def overlapping_zip(entries: int, lie: bool = False) -> bytes:
    """Non-recursive bomb (after Fifield): many central entries share one compressed kernel."""
    kernel = _zip([("kernel.bin", LEAF)])
    cd_at = kernel.find(b"PK\x01\x02")
    (nlen,) = struct.unpack_from("<H", kernel, cd_at + 28)
    record = bytearray(kernel[cd_at : cd_at + 46 + nlen])
    body = kernel[:cd_at]
    central = bytearray()
    for i in range(entries):
        name = f"k{i:05d}.bin".encode()[:nlen].ljust(nlen, b"_")
        entry = bytearray(record)
        entry[46 : 46 + nlen] = name
        if lie:
            struct.pack_into("<I", entry, 24, 1)
        central += entry
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, entries, entries, len(central), len(body), 0
    )
    return bytes(body + central + eocd)


def quoted_overlap_zip(entries: int, lie: bool = False) -> bytes:
    """Fifield's construction: distinct local headers, each quoted by the previous member.

    Member i's data is a non-final stored deflate block that quotes member i+1's local header,
    then member i+1's data, down to one shared compressed kernel. Every member is a valid
    deflate stream that outputs the later headers plus the whole kernel, so ``entries`` members
    of ~16 MiB share one ~16 KiB kernel. CRCs are left zero (torch ignores them).
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = comp.compress(LEAF) + comp.flush()
    names = [f"f{i:05d}.bin".encode() for i in range(entries)]

    def local_header(name: bytes, csize: int, usize: int) -> bytes:
        fields = (b"PK\x03\x04", 20, 0, 8, 0, 0x21, 0, csize, usize, len(name), 0)
        return struct.pack("<4sHHHHHIIIHH", *fields) + name

    # Build from the last member back: sizes of member i depend on everything after it.
    tail = kernel
    usize = len(LEAF)
    headers: list[bytes] = []
    sizes: list[tuple[int, int]] = []
    for i in reversed(range(entries)):
        header = local_header(names[i], len(tail), usize)
        headers.append(header)
        sizes.append((len(tail), usize))
        if i:
            quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF) + header
            tail = quote + tail
            usize += len(header)
    headers.reverse()
    sizes.reverse()
    body = bytearray()
    offsets: list[int] = []
    for i in range(entries):
        offsets.append(len(body))
        body += headers[i]
        if i + 1 < entries:
            body += b"\x00" + struct.pack("<HH", len(headers[i + 1]), len(headers[i + 1]) ^ 0xFFFF)
    body += kernel
    central = bytearray()
    for i in range(entries):
        csize, size = sizes[i]
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0x21,
            0,
            csize,
            1 if lie else size,
            len(names[i]),
            0,
            0,
            0,
            0,
            0,
            offsets[i],
        )
        central += names[i]
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, entries, entries, len(central), len(body), 0
    )
    return bytes(body + central + eocd)


def tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def scan_timed(tmp_path: Path, name: str, data: bytes) -> tuple[Report, float]:
    path = tmp_path / name
    path.write_bytes(data)
    started = time.perf_counter()
    report = scan_paths([path])
    return report, time.perf_counter() - started


def assert_stopped(report: Report, seconds: float) -> None:
    assert seconds < HANG_GUARD, f"took {seconds:.1f}s"
    limit_hits = [f for f in report.findings if f.rule == "GEN002"]
    assert limit_hits, {f.rule for f in report.findings}
    verdict = apply(report, Policy()).verdict
    assert verdict is not None and not verdict.passed


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lie", [False, True], ids=["honest-sizes", "lying-sizes"])
def test_recursive_nested_zip_bomb_ends_with_a_limit_finding(tmp_path: Path, lie: bool) -> None:
    data = recursive_zip(levels=4, copies=16, lie=lie)
    assert len(data) < 4 << 20  # ~16 TiB once fully expanded
    report, seconds = scan_timed(tmp_path, "42.zip", data)
    assert_stopped(report, seconds)
    assert any("container tree" in f.message for f in report.findings if f.rule == "GEN002")


@pytest.mark.parametrize("lie", [False, True], ids=["honest-sizes", "lying-sizes"])
def test_overlapping_entry_zip_bomb_ends_with_a_limit_finding(tmp_path: Path, lie: bool) -> None:
    data = overlapping_zip(entries=1000, lie=lie)
    report, seconds = scan_timed(tmp_path, "zbsm.zip", data)
    assert_stopped(report, seconds)
    assert "ARC010" in {f.rule for f in report.findings}


def test_quoted_overlap_construction_is_a_valid_zip() -> None:
    """The bomb is real: zipfile reads a member (CRC aside) as headers plus the kernel."""
    data = quoted_overlap_zip(entries=3)
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.infolist()[0]
    with zf.open(info) as fh:
        fh._expected_crc = None  # type: ignore[attr-defined]  # CRCs are left zero
        out = fh.read()
    assert len(out) == info.file_size > len(LEAF)
    assert out.endswith(LEAF[:4096])


@pytest.mark.parametrize("lie", [False, True], ids=["honest-sizes", "lying-sizes"])
def test_quoted_overlap_zip_bomb_ends_with_a_limit_finding(tmp_path: Path, lie: bool) -> None:
    data = quoted_overlap_zip(entries=250, lie=lie)
    assert len(data) < 64 << 10  # 250 × 16 MiB from a few dozen KiB
    report, seconds = scan_timed(tmp_path, "zbsm.zip", data)
    assert_stopped(report, seconds)
    assert "ARC010" in {f.rule for f in report.findings}


def test_tar_in_gzip_in_zip_chain_bomb(tmp_path: Path) -> None:
    """zip → 6 × .tar.gz → tar of 3 × 16 MiB: every gzip stream is under the bomb floor."""
    inner = tar_gz([(f"w{i}.bin", LEAF) for i in range(3)])
    data = _zip([(f"shard{i}.tar.gz", inner) for i in range(6)], method=zipfile.ZIP_STORED)
    report, seconds = scan_timed(tmp_path, "bundle.zip", data)
    assert_stopped(report, seconds)
    chains = {f.location.member for f in report.findings if f.rule == "GEN002"}
    assert any(len(chain) >= 1 for chain in chains)


def test_7z_holding_nested_zips_bomb(tmp_path: Path) -> None:
    import py7zr

    inner = _zip([(f"{i}.bin", LEAF) for i in range(3)])
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for i in range(16):
            z.writef(io.BytesIO(inner), f"part{i}.zip")
    report, seconds = scan_timed(tmp_path, "model.7z", buf.getvalue())
    assert_stopped(report, seconds)


def test_member_explosion_without_amplification_is_bounded(tmp_path: Path) -> None:
    """Nested stored zips: no ratio to catch, but the tree's member count is capped."""
    layer = _zip([("a.txt", b"x")], method=zipfile.ZIP_STORED)
    for _ in range(5):
        layer = _zip([(f"copy{i}.zip", layer) for i in range(8)], method=zipfile.ZIP_STORED)
    path = tmp_path / "many.zip"
    path.write_bytes(layer)
    started = time.perf_counter()
    report = scan_paths([path], ScanOptions(limits=Limits(max_container_members=500)))
    assert_stopped(report, time.perf_counter() - started)
    assert any("members across nested containers" in f.message for f in report.findings)


def test_benign_nested_archive_stays_within_budget(tmp_path: Path) -> None:
    """A real-looking bundle (zip → tar.gz → small files) is walked whole, no limit finding."""
    inner = tar_gz([("model/config.json", b'{"a": 1}' * 100), ("model/README.md", b"hi " * 999)])
    data = _zip([("bundle.tar.gz", inner), ("notes.txt", b"plain text " * 50)])
    report, _ = scan_timed(tmp_path, "ok.zip", data)
    assert "GEN002" not in {f.rule for f in report.findings}


# --------------------------------------------------------------------------------------------
# the budget object itself


def test_tree_budget_is_shared_by_every_container_of_one_file() -> None:
    """Nested and sibling containers of one file (one scan context) draw on one tally."""
    ctx = ScanContext()
    outer = Artifact(path="x", kind=ArtifactKind.ZIP, size=1000, stream=io.BytesIO(b""))
    with tree_budget(ctx, outer) as first:
        first.charge(10)
        inner = outer.child("m", ArtifactKind.ZIP, 10, io.BytesIO())
        with tree_budget(ctx, inner) as second:
            second.member()
    with tree_budget(ctx, outer) as later:
        assert (later.tally.expanded, later.tally.members) == (10, 1)
    assert ScanContext().containers.expanded == 0  # another file starts from zero


def test_sibling_payload_containers_of_one_file_share_the_budget() -> None:
    """Many small bombs side by side (e.g. pickle payloads) are one tree, not fresh budgets."""
    ctx = ScanContext(limits=Limits(min_bomb_bytes=1 << 20, max_archive_ratio=2))
    one = _zip([("z.bin", b"\x00" * (600 << 10))])
    hits = 0
    for i in range(4):
        art = Artifact(
            path="p.pkl",
            kind=ArtifactKind.ZIP,
            size=len(one),
            stream=io.BytesIO(one),
            member=(f"payload{i}",),
            depth=1,
        )
        found = []
        try:
            found = list(ArchiveScanner().scan(art, ctx))
        except LimitExceeded:
            hits += 1
        hits += sum(f.rule == "GEN002" for f in found)
    assert hits >= 2  # the 1 MiB allowance is spent by the second payload, and stays spent


def test_tree_budget_caps_members_bytes_and_time() -> None:
    budget = TreeBudget(Limits(max_container_members=2), ContainerTally(base=10))
    budget.member()
    budget.member()
    with pytest.raises(LimitExceeded, match="members across nested containers"):
        budget.member()
    with pytest.raises(LimitExceeded):
        budget.charge(1)  # spent budgets stay spent: every level above stops at once
    small = TreeBudget(Limits(min_bomb_bytes=100, max_archive_ratio=2), ContainerTally(base=10))
    small.charge(100)
    with pytest.raises(LimitExceeded, match="expand past 100 bytes"):
        small.charge(1)
    old = ContainerTally(base=10, started=time.monotonic() - 5)
    with pytest.raises(LimitExceeded, match="took over 1 s"):
        TreeBudget(Limits(max_container_seconds=1), old).check_time()


def test_limits_reject_non_positive_tree_caps() -> None:
    for name in ("max_container_members", "max_container_seconds"):
        with pytest.raises(ValueError, match=name):
            Limits(**{name: 0})


def test_policy_limits_table_reaches_the_tree_caps() -> None:
    from supplychain.policy import parse_policy

    policy = parse_policy({"limits": {"max_container_members": 7, "max_container_seconds": 9}}, "t")
    assert policy.limits.max_container_members == 7
    assert policy.limits.max_container_seconds == 9


def test_archive_scanner_alone_raises_the_tree_limit() -> None:
    """Without the engine: the walker itself refuses a declared expansion past the budget."""
    data = overlapping_zip(entries=100)
    art = Artifact(path="b.zip", kind=ArtifactKind.ZIP, size=len(data), stream=io.BytesIO(data))
    with pytest.raises(LimitExceeded, match="container tree"):
        list(ArchiveScanner().scan(art, ScanContext()))
