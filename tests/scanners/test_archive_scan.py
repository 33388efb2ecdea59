"""ArchiveScanner: zip/tar/7z/compression wrappers are walked as bounded streams and every member
reaches the engine. Also holds the container test helpers the torch/numpy/bypass tests import.

Payloads are harmless: if anything ever loaded them they would call ``print("system")``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanners._magic import is_pickle_stream
from scanners.archive_scan import ArchiveScanner
from scanners.base import Artifact, ScanContext
from scanners.containers import decompressed, inner_name
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Report, Rule, Severity
from supplychain.core.rules import make_rule
from supplychain.engine import ScanOptions, scan_paths

# --------------------------------------------------------------------------------------------
# helpers shared with test_torch_scan, test_numpy_scan and test_bypasses_containers

PAYLOAD = b"\x80\x02cbuiltins\nprint\nq\x00X\x06\x00\x00\x00systemq\x01\x85q\x02Rq\x03."
"""A protocol-2 pickle equivalent to ``print("system")``: harmless, and marked for the double."""
PAYLOAD_P0 = b"cbuiltins\nprint\n(Vsystem\ntR."
"""The same call as a protocol-0 pickle (no PROTO byte, text-only)."""
BENIGN = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."
"""``{"a": 1}`` as a protocol-2 pickle."""

FAKE001 = make_rule("TST901", "Pickle marker", Severity.HIGH, "test double", "none")


class FakePickleScanner:
    """Test double for the pickle scanner: flags a PICKLE stream that contains ``system``."""

    name: ClassVar[str] = "fake-pickle"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.PICKLE})
    rules: ClassVar[tuple[Rule, ...]] = (FAKE001,)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        data = artifact.stream.read(1 << 20)
        if b"system" in data:
            yield artifact.finding(FAKE001, "payload marker", offset=data.index(b"system"))


def container_scanners() -> tuple[type, ...]:
    from scanners.numpy_scan import NumpyScanner
    from scanners.torch_scan import TorchScanner

    return (TorchScanner, ArchiveScanner, NumpyScanner, FakePickleScanner)


def scan_file(tmp_path: Path, name: str, data: bytes, limits: Limits | None = None) -> Report:
    """Write ``data`` as ``name`` in a fresh directory and scan it through the engine."""
    root = tmp_path / "scan"
    root.mkdir(exist_ok=True)
    (root / name).write_bytes(data)
    opts = ScanOptions(scanners=container_scanners(), limits=limits or Limits())
    return scan_paths([root], opts)


def flagged(report: Report) -> set[tuple[str, ...]]:
    """Member chains where the pickle double fired."""
    return {f.location.member for f in report.findings if f.rule == FAKE001.id}


def rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def make_zip(
    members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED, prefix: bytes = b""
) -> bytes:
    """A zip built by ``zipfile`` (duplicates allowed), optionally with bytes glued in front."""
    buf = io.BytesIO()
    buf.write(prefix)
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate names are wanted in some tests
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def central_offsets(data: bytes, name: str) -> list[int]:
    """Offsets of central-directory headers for ``name``."""
    out = []
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        (nlen,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46 : pos + 46 + nlen] == name.encode():
            out.append(pos)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return out


def local_offsets(data: bytes, name: str) -> list[int]:
    """Offsets of local headers for ``name``."""
    out = []
    pos = data.find(b"PK\x03\x04")
    while pos >= 0:
        (nlen,) = struct.unpack_from("<H", data, pos + 26)
        if data[pos + 30 : pos + 30 + nlen] == name.encode():
            out.append(pos)
        pos = data.find(b"PK\x03\x04", pos + 4)
    return out


def patch_zip(
    data: bytes,
    name: str,
    *,
    crc: int | None = None,
    flags: int | None = None,
    local_flags: int | None = None,
    local_name: str | None = None,
) -> bytes:
    """Rewrite header fields of member ``name`` in place (the hostile edits of the advisories)."""
    buf = bytearray(data)
    (cd,) = central_offsets(data, name)
    (lh,) = local_offsets(data, name)
    if crc is not None:
        struct.pack_into("<I", buf, cd + 16, crc)
        struct.pack_into("<I", buf, lh + 14, crc)
    if flags is not None:
        struct.pack_into("<H", buf, cd + 8, flags)
        struct.pack_into("<H", buf, lh + 6, flags if local_flags is None else local_flags)
    elif local_flags is not None:
        struct.pack_into("<H", buf, lh + 6, local_flags)
    if local_name is not None:
        raw = local_name.encode()
        assert len(raw) == len(name.encode()), "same length keeps offsets valid"
        buf[lh + 30 : lh + 30 + len(raw)] = raw
    return bytes(buf)


def make_tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def direct_scan(kind: ArtifactKind, data: bytes, limits: Limits | None = None) -> list[Finding]:
    """Run ArchiveScanner on bytes without the engine (members are not dispatched)."""
    art = Artifact(path="x", kind=kind, size=len(data), stream=io.BytesIO(data))
    return list(ArchiveScanner().scan(art, ScanContext(limits=limits or Limits())))


# --------------------------------------------------------------------------------------------
# zip


def test_zip_member_pickle_is_dispatched_whatever_its_name(tmp_path: Path) -> None:
    data = make_zip([("readme.txt", b"hello"), ("weights/params.json", PAYLOAD)])
    report = scan_file(tmp_path, "bundle.zip", data)
    assert flagged(report) == {("weights/params.json",)}
    kinds = {r.member: r.kind for r in report.files}
    assert kinds[("weights/params.json",)] is ArtifactKind.PICKLE
    assert kinds[("readme.txt",)] is ArtifactKind.TEXT
    assert rules(report) == {FAKE001.id}


def test_deflate_bzip2_and_lzma_members_are_read(tmp_path: Path) -> None:
    for i, method in enumerate((zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)):
        data = make_zip([("a.bin", PAYLOAD * 50)], method=method)
        (tmp_path / str(i)).mkdir()
        report = scan_file(tmp_path / str(i), "a.zip", data)
        assert flagged(report) == {("a.bin",)}, method
        assert not rules(report) - {FAKE001.id}, method


def test_nested_zip_in_zip_is_walked_with_member_chain(tmp_path: Path) -> None:
    inner = make_zip([("deep/model.bin", PAYLOAD)], method=zipfile.ZIP_DEFLATED)
    outer = make_zip([("inner.zip", inner)])
    report = scan_file(tmp_path, "outer.zip", outer)
    assert flagged(report) == {("inner.zip", "deep/model.bin")}


def test_nesting_is_bounded_by_the_engine(tmp_path: Path) -> None:
    data = make_zip([("p.pkl", PAYLOAD)])
    for i in range(6):
        data = make_zip([(f"l{i}.zip", data)])
    report = scan_file(tmp_path, "deep.zip", data, Limits(max_nesting=3))
    assert "GEN002" in rules(report)
    assert not flagged(report)


def test_zip_bomb_member_is_a_limit_finding_and_siblings_still_scanned(tmp_path: Path) -> None:
    bomb = make_zip(
        [("zeros.bin", b"\x00" * (8 << 20)), ("evil.pkl", PAYLOAD)], method=zipfile.ZIP_DEFLATED
    )
    report = scan_file(
        tmp_path, "bomb.zip", bomb, Limits(max_archive_ratio=50, min_bomb_bytes=1 << 20)
    )
    gen2 = [f for f in report.findings if f.rule == "GEN002"]
    assert gen2 and gen2[0].location.member == ("zeros.bin",)
    assert flagged(report) == {("evil.pkl",)}


def test_zip_bomb_that_lies_about_its_size_is_stopped_while_decompressing(tmp_path: Path) -> None:
    data = make_zip([("zeros.bin", b"\x00" * (8 << 20))], method=zipfile.ZIP_DEFLATED)
    (cd,) = central_offsets(data, "zeros.bin")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd + 24, 10)  # declared uncompressed size: 10 bytes
    report = scan_file(
        tmp_path, "liar.zip", bytes(buf), Limits(max_archive_ratio=50, min_bomb_bytes=1 << 20)
    )
    assert any(
        f.rule == "GEN002" and "zip bomb" in f.message and f.location.member == ("zeros.bin",)
        for f in report.findings
    )


def test_total_declared_size_over_cap_is_refused_before_reading() -> None:
    data = make_zip([("a", b"x" * 5000), ("b", b"y" * 5000)])
    with pytest.raises(LimitExceeded):
        direct_scan(ArtifactKind.ZIP, data, Limits(max_archive_total_bytes=8000))


def test_too_many_members_is_a_limit() -> None:
    data = make_zip([(f"m{i}", b"x") for i in range(30)])
    with pytest.raises(LimitExceeded):
        direct_scan(ArtifactKind.ZIP, data, Limits(max_archive_members=10))


def test_overlapping_members_are_reported() -> None:
    data = make_zip([("a.bin", b"A" * 100), ("b.bin", b"B" * 100)])
    (cd_b,) = central_offsets(data, "b.bin")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd_b + 42, 0)  # b's central entry points at a's local header
    got = {f.rule for f in direct_scan(ArtifactKind.ZIP, bytes(buf))}
    assert "ARC010" in got


def test_zip_without_directory_is_malformed() -> None:
    with pytest.raises(ArtifactError):
        direct_scan(ArtifactKind.ZIP, b"PK\x03\x04" + b"\x00" * 100)


def test_traversal_and_absolute_names_in_zip() -> None:
    data = make_zip([("../../etc/cron.d/x", b"a"), ("/abs/path", b"b"), ("ok/file", b"c")])
    found = [f for f in direct_scan(ArtifactKind.ZIP, data) if f.rule == "ARC001"]
    assert {f.location.member for f in found} == {("../../etc/cron.d/x",), ("/abs/path",)}


def test_local_header_missing_is_a_member_finding_not_a_crash(tmp_path: Path) -> None:
    data = make_zip([("a.pkl", PAYLOAD), ("b.pkl", PAYLOAD)])
    (lh,) = local_offsets(data, "a.pkl")
    buf = bytearray(data)
    buf[lh : lh + 4] = b"XXXX"
    report = scan_file(tmp_path, "broken.zip", bytes(buf))
    assert any(f.rule == "GEN001" and f.location.member == ("a.pkl",) for f in report.findings)
    assert flagged(report) == {("b.pkl",)}


def test_trailing_data_after_zip_is_reported() -> None:
    data = make_zip([("a", b"x")]) + b"hidden tail"
    assert "ARC008" in {f.rule for f in direct_scan(ArtifactKind.ZIP, data)}


def test_zip64_end_record_is_not_mistaken_for_a_prefix(tmp_path: Path) -> None:
    """A zip64 EOCD sits between the central directory and the EOCD (every >4 GiB checkpoint)."""
    data = make_zip([("a.pkl", PAYLOAD)])
    eocd = data.rfind(b"PK\x05\x06")
    _, _, _, n_disk, n_total, cd_size, cd_off, _ = struct.unpack_from("<4sHHHHIIH", data, eocd)
    z64 = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk, n_total, cd_size, cd_off
    )
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    new_eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    report = scan_file(tmp_path, "z64.zip", data[:eocd] + z64 + loc + new_eocd)
    assert flagged(report) == {("a.pkl",)}
    assert rules(report) == {FAKE001.id}


# --------------------------------------------------------------------------------------------
# tar


def test_tar_members_dispatched_and_links_reported(tmp_path: Path) -> None:
    sym = tarfile.TarInfo("config.json")
    sym.type = tarfile.SYMTYPE
    sym.linkname = "/home/user/.ssh/id_rsa"
    hard = tarfile.TarInfo("weights.bin")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "model.pkl"
    dev = tarfile.TarInfo("dev0")
    dev.type = tarfile.CHRTYPE
    data = make_tar([("model.pkl", PAYLOAD), sym, hard, dev, ("../escape.txt", b"x")])
    report = scan_file(tmp_path, "m.tar", data)
    assert flagged(report) == {("model.pkl",)}
    by_rule = {(f.rule, f.location.member) for f in report.findings}
    assert ("ARC002", ("config.json",)) in by_rule
    assert ("ARC002", ("weights.bin",)) in by_rule
    assert ("ARC002", ("dev0",)) in by_rule
    assert ("ARC001", ("../escape.txt",)) in by_rule
    sev = {f.location.member: f.severity for f in report.findings if f.rule == "ARC002"}
    assert sev[("config.json",)] is Severity.HIGH and sev[("weights.bin",)] is Severity.MEDIUM


def test_tar_gz_is_unwrapped_then_walked(tmp_path: Path) -> None:
    data = gzip.compress(make_tar([("dir/a.pt", PAYLOAD)]))
    report = scan_file(tmp_path, "m.tar.gz", data)
    assert flagged(report) == {("m.tar", "dir/a.pt")}


def test_tar_duplicate_names_and_trailing_data() -> None:
    data = make_tar([("a", b"1"), ("a", b"2")]) + b"NOT ZERO" * 100
    got = {f.rule for f in direct_scan(ArtifactKind.TAR, data)}
    assert {"ARC007", "ARC008"} <= got


def test_truncated_tar_member_is_a_finding(tmp_path: Path) -> None:
    data = make_tar([("a.pkl", PAYLOAD + b"\x00" * 4000)])
    report = scan_file(tmp_path, "t.tar", data[:1200])
    assert any(f.rule == "GEN001" for f in report.findings)


def test_huge_pax_header_is_refused_without_loading_it() -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 10 * 2**30
    raw = header.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(ArtifactError):  # LimitExceeded is an ArtifactError
        direct_scan(ArtifactKind.TAR, raw + b"x" * 2048, Limits(max_header_bytes=1024))


# --------------------------------------------------------------------------------------------
# compression wrappers


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("m.joblib", lambda b: gzip.compress(b)),
        ("m.pkl.bz2", lambda b: bz2.compress(b)),
        ("m.pkl.xz", lambda b: lzma.compress(b)),
        ("m.z", lambda b: zlib.compress(b)),
    ],
)
def test_compressed_pickles_reach_the_pickle_scanner(
    tmp_path: Path, name: str, wrap: object
) -> None:
    report = scan_file(tmp_path, name, wrap(PAYLOAD))  # type: ignore[operator]
    assert len(flagged(report)) == 1


def test_lz4_frame_is_unwrapped(tmp_path: Path) -> None:
    import lz4.frame

    report = scan_file(tmp_path, "model.pkl.lz4", lz4.frame.compress(PAYLOAD))
    assert flagged(report) == {("model.pkl",)}


def test_concatenated_gzip_members_are_all_read() -> None:
    data = gzip.compress(b"A" * 10) + gzip.compress(PAYLOAD)
    ctx = ScanContext()
    out = b"".join(decompressed(io.BytesIO(data), ArtifactKind.GZIP, ctx, []))
    assert out == b"A" * 10 + PAYLOAD


def test_gzip_bomb_is_a_limit_and_payload_before_it_is_still_dispatched(tmp_path: Path) -> None:
    data = gzip.compress(PAYLOAD + b"\x00" * (16 << 20))
    report = scan_file(
        tmp_path, "bomb.pkl.gz", data, Limits(max_archive_ratio=100, min_bomb_bytes=1 << 20)
    )
    assert "GEN002" in rules(report)
    assert flagged(report) == {("bomb.pkl",)}


def test_truncated_gzip_dispatches_the_prefix_then_reports(tmp_path: Path) -> None:
    data = gzip.compress(PAYLOAD + bytes(range(256)) * 400)
    report = scan_file(tmp_path, "cut.pkl.gz", data[: len(data) // 2])
    assert "GEN001" in rules(report)
    assert flagged(report) == {("cut.pkl",)}


def test_trailing_garbage_after_gzip_is_reported() -> None:
    data = gzip.compress(BENIGN) + b"junk after the stream"
    assert "ARC008" in {f.rule for f in direct_scan(ArtifactKind.GZIP, data)}


def test_inner_name() -> None:
    assert inner_name("m.tgz", ArtifactKind.GZIP) == "m.tar"
    assert inner_name("model.joblib", ArtifactKind.ZLIB) == "<zlib payload>"
    assert inner_name("a.pkl.GZ", ArtifactKind.GZIP) == "a.pkl"


# --------------------------------------------------------------------------------------------
# 7z


def _seven_zip(members: dict[str, bytes], password: str | None = None) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=bool(password)) as z:
        for name, data in members.items():
            z.writef(io.BytesIO(data), name)
    return buf.getvalue()


def test_7z_members_are_dispatched(tmp_path: Path) -> None:
    data = _seven_zip({"model/data.pkl": PAYLOAD, "README": b"hello"})
    report = scan_file(tmp_path, "model.7z", data)
    assert flagged(report) == {("model/data.pkl",)}


def test_encrypted_7z_is_a_finding_not_clean(tmp_path: Path) -> None:
    data = _seven_zip({"data.pkl": PAYLOAD}, password="pw")
    report = scan_file(tmp_path, "enc.7z", data)
    assert "ARC005" in rules(report)


def test_corrupt_7z_is_malformed(tmp_path: Path) -> None:
    data = _seven_zip({"data.pkl": PAYLOAD * 20})
    report = scan_file(tmp_path, "bad.7z", data[:40])
    assert "GEN001" in rules(report)


# --------------------------------------------------------------------------------------------
# helpers


def test_looks_like_pickle_is_strict() -> None:
    import random

    assert is_pickle_stream(PAYLOAD, strict=True)
    assert not is_pickle_stream(
        BENIGN, strict=True
    )  # no import: cannot run code, not worth a finding
    rng = random.Random(7)
    hits = 0
    for _ in range(2000):
        blob = b"\x80\x02" + rng.randbytes(4096)
        hits += is_pickle_stream(blob, strict=True)
    assert hits == 0


def test_zip_symlink_member_is_reported_and_not_dispatched(tmp_path: Path) -> None:
    import stat

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, target in (("model/config.json", "../../../etc/passwd"), ("ok", "model/x")):
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        zf.writestr("model/data.pkl", PAYLOAD)
    report = scan_file(tmp_path, "m.zip", buf.getvalue())
    links = {f.location.member: f.severity for f in report.findings if f.rule == "ARC002"}
    assert links == {("model/config.json",): Severity.HIGH, ("ok",): Severity.MEDIUM}
    assert flagged(report) == {("model/data.pkl",)}
    assert ("model/config.json",) not in {r.member for r in report.files}


@settings(max_examples=120, deadline=None)
@given(
    kind=st.sampled_from(
        [ArtifactKind.SEVEN_ZIP, ArtifactKind.GZIP, ArtifactKind.XZ, ArtifactKind.ZIP]
    ),
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=6),
)
def test_mutated_containers_only_raise_artifact_errors(
    kind: ArtifactKind, cut: int, flips: list[tuple[int, int]]
) -> None:
    import py7zr

    raw = PAYLOAD * 8
    if kind is ArtifactKind.SEVEN_ZIP:
        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as z:
            z.writef(io.BytesIO(raw), "a/data.pkl")
        data = bytearray(buf.getvalue())
    elif kind is ArtifactKind.GZIP:
        data = bytearray(gzip.compress(raw))
    elif kind is ArtifactKind.XZ:
        data = bytearray(lzma.compress(raw))
    else:
        data = bytearray(make_zip([("a.pkl", raw), ("b", raw)], method=zipfile.ZIP_DEFLATED))
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    try:
        direct_scan(
            kind,
            bytes(data[: max(len(data) - cut, 0)]),
            Limits(max_archive_ratio=50, min_bomb_bytes=1 << 20),
        )
    except ArtifactError:
        pass
