"""One named regression test per published container bypass (see shared THREATS.md §1).

Each builds the hostile container by hand with a harmless payload (it would call
``print("system")`` if loaded) and asserts that the pickle inside reaches the pickle scanner with
the right member chain and that the container trick itself is a finding.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import joblib
import pytest

from scanners.archive_scan import ArchiveScanner
from scanners.base import Artifact, ScanContext
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from tests.scanners.test_archive_scan import (
    PAYLOAD,
    PAYLOAD_P0,
    FakePickleScanner,
    central_offsets,
    flagged,
    make_tar,
    make_zip,
    patch_zip,
    rules,
    scan_file,
)
from tests.scanners.test_torch_scan import DATA_PKL, torch_zip


class _Harmless:
    """Pickles to ``print("system")``: what a hostile joblib model does, minus the harm."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("system",))


# https://nvd.nist.gov/vuln/detail/CVE-2025-1889 (picklescan baf03fa, malicious1_wrong_ext.zip)
def test_cve_2025_1889_payload_in_zip_member_with_non_pickle_extension(tmp_path: Path) -> None:
    data = make_zip([("malicious1.txt", PAYLOAD), ("notes/model.safetensors", PAYLOAD_P0)])
    report = scan_file(tmp_path, "malicious1_wrong_ext.zip", data)
    assert flagged(report) == {("malicious1.txt",), ("notes/model.safetensors",)}


# https://nvd.nist.gov/vuln/detail/CVE-2025-1944 (local/central file name mismatch)
def test_cve_2025_1944_local_central_name_mismatch(tmp_path: Path) -> None:
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", local_name="archive/data.pkX")
    with pytest.raises(zipfile.BadZipFile):  # what made zipfile-based scanners give up
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    report = scan_file(tmp_path, "model.pt", data)
    assert ("ARC003", ("archive/data.pkl",)) in {
        (f.rule, f.location.member) for f in report.findings
    }
    assert flagged(report) == {("archive/data.pkl",)}


# https://nvd.nist.gov/vuln/detail/CVE-2025-1945 (ZIP general-purpose flag bits flipped)
@pytest.mark.parametrize("bits", [0x20, 0x40, 0x2000, 0x4000])
def test_cve_2025_1945_zip_flag_bits(tmp_path: Path, bits: int) -> None:
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", flags=bits)
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC004" in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}


def test_cve_2025_1945_local_flags_differ_from_central(tmp_path: Path) -> None:
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", local_flags=0x20)
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC004" in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}


# https://jfrog.com/blog/unveiling-3-zero-day-vulnerabilities-in-picklescan/ (CVE-2025-10155)
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt"])
def test_cve_2025_10155_plain_pickle_with_pytorch_extension(tmp_path: Path, name: str) -> None:
    report = scan_file(tmp_path, name, PAYLOAD)
    assert report.files[0].kind is ArtifactKind.PICKLE
    assert flagged(report) == {()}


# https://nvd.nist.gov/vuln/detail/CVE-2025-10156 (bad CRC in the zip)
def test_cve_2025_10156_bad_crc(tmp_path: Path) -> None:
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", crc=0x12345678)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC006" in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}


# nullifAI (ReversingLabs, Feb 2025): a PyTorch model packed as 7z, pickle broken after payload.
# https://www.reversinglabs.com/blog/rl-identifies-malware-ml-model-hosted-on-hugging-face
def test_nullifai_7z_packed_torch_model_with_broken_pickle(tmp_path: Path) -> None:
    import py7zr

    broken = PAYLOAD[:-1] + b"\x00garbage-after-the-payload"  # STOP replaced: stream breaks
    inner = torch_zip(root="ballr7", data_pkl=broken)
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writef(io.BytesIO(inner), "ballr7.pt")
    report = scan_file(tmp_path, "pytorch_model.bin", buf.getvalue())
    assert report.files[0].kind is ArtifactKind.SEVEN_ZIP
    assert flagged(report) == {("ballr7.pt", "ballr7/data.pkl")}


# JFrog-style zip confusion: duplicate names (loaders disagree which copy wins) and a member
# hidden as an alias of another's bytes. https://jfrog.com/blog/unveiling-3-zero-day-vulnerabilities-in-picklescan/
def test_jfrog_zip_tricks_duplicate_member_names(tmp_path: Path) -> None:
    data = make_zip(
        [("archive/data.pkl", DATA_PKL), ("archive/data.pkl", PAYLOAD), ("archive/version", b"3")]
    )
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC007" in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}  # the second copy was scanned too


def test_jfrog_zip_tricks_pickle_polyglot_with_fake_end_record(tmp_path: Path) -> None:
    """A pickle whose tail holds a fake zip end record: torch loads it as a pickle (no PK at 0)."""
    fake_eocd = b"PK\x05\x06" + b"\x00" * 18
    report = scan_file(tmp_path, "model.pt", PAYLOAD + fake_eocd)
    assert flagged(report) in ({()}, {("<data before zip>",)})


def test_nested_zip_in_zip_in_tar(tmp_path: Path) -> None:
    inner = make_zip([("inner/data.pkl", PAYLOAD)], method=zipfile.ZIP_DEFLATED)
    middle = make_zip([("payload.zip", inner)])
    data = make_tar([("bundle/middle.zip", middle)])
    report = scan_file(tmp_path, "bundle.tar", data)
    assert flagged(report) == {("bundle/middle.zip", "payload.zip", "inner/data.pkl")}


# https://github.com/google/saferpickle/pull/41 (compression wrappers dropped detection)
@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "xz", "lz4"])
def test_saferpickle_41_compressed_joblib_reaches_the_pickle_scanner(
    tmp_path: Path, compress: str
) -> None:
    path = tmp_path / "src.joblib"
    joblib.dump(_Harmless(), path, compress=(compress, 3))
    report = scan_file(tmp_path, "model.joblib", path.read_bytes())
    assert len(flagged(report)) == 1, compress


def test_saferpickle_41_lzma_alone_joblib_with_forced_kind(tmp_path: Path) -> None:
    """joblib's 'lzma' compressor writes legacy .lzma; sniff does not know it yet (see report),
    but once it is called XZ the wrapper is opened with FORMAT_AUTO."""
    path = tmp_path / "src.joblib"
    joblib.dump(_Harmless(), path, compress=("lzma", 3))
    data = path.read_bytes()
    got: list[Artifact] = []

    def dispatch(child: Artifact) -> list[Finding]:
        got.append(child)
        return list(FakePickleScanner().scan(child, ScanContext()))

    art = Artifact(path="m.joblib", kind=ArtifactKind.XZ, size=len(data), stream=io.BytesIO(data))
    found = list(ArchiveScanner().scan(art, ScanContext(dispatch=dispatch)))  # type: ignore[arg-type]
    assert [f.rule for f in found] == ["TST901"]


def test_zip_bomb_is_a_finding_not_a_hang(tmp_path: Path) -> None:
    bomb = make_zip([(f"{i}.bin", b"\x00" * (4 << 20)) for i in range(4)], zipfile.ZIP_DEFLATED)
    report = scan_file(
        tmp_path, "bomb.zip", bomb, Limits(max_archive_ratio=100, min_bomb_bytes=1 << 20)
    )
    assert sum(f.rule == "GEN002" for f in report.findings) == 4


def test_gzip_bomb_is_a_finding(tmp_path: Path) -> None:
    report = scan_file(
        tmp_path,
        "x.gz",
        gzip.compress(b"\x00" * (32 << 20)),
        Limits(max_archive_ratio=100, min_bomb_bytes=1 << 20),
    )
    assert "GEN002" in rules(report)


def test_tar_path_traversal_and_symlink_escape(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/config.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../../root/.bashrc"
    data = make_tar([("../../.bashrc", b"echo hi"), link, ("model/weights.pt", PAYLOAD)])
    report = scan_file(tmp_path, "model.tar", data)
    got = {(f.rule, f.location.member) for f in report.findings}
    assert ("ARC001", ("../../.bashrc",)) in got
    assert ("ARC002", ("model/config.json",)) in got
    assert flagged(report) == {("model/weights.pt",)}
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    "name", ["config.json", "notes.txt", "model.safetensors", "flax_model.msgpack", "weights"]
)
@pytest.mark.parametrize("payload", [PAYLOAD, PAYLOAD_P0], ids=["proto2", "proto0"])
def test_misnamed_pickle_is_sniffed_as_pickle(tmp_path: Path, name: str, payload: bytes) -> None:
    report = scan_file(tmp_path, name, payload)
    assert report.files[0].kind is ArtifactKind.PICKLE
    assert flagged(report) == {()}


def test_zip_member_name_mismatch_and_size_lie_together(tmp_path: Path) -> None:
    data = patch_zip(make_zip([("a/data.pkl", PAYLOAD)]), "a/data.pkl", local_name="a/data.pkZ")
    (cd,) = central_offsets(data, "a/data.pkl")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd + 24, 1)  # declared size: 1 byte
    report = scan_file(tmp_path, "x.zip", bytes(buf))
    assert {"ARC003", "ARC009"} <= rules(report)
    assert flagged(report) == {("a/data.pkl",)}


# --------------------------------------------------------------------------------------------
# End to end with the real pickle scanner: the container bypasses above, judged by PKL rules.


def _real(tmp_path: Path, name: str, data: bytes) -> set[tuple[str, tuple[str, ...]]]:
    from scanners.numpy_scan import NumpyScanner
    from scanners.pickle_scan import PickleScanner
    from scanners.torch_scan import TorchScanner
    from supplychain.engine import ScanOptions, scan_paths

    (tmp_path / name).write_bytes(data)
    opts = ScanOptions(scanners=(TorchScanner, ArchiveScanner, NumpyScanner, PickleScanner))
    report = scan_paths([tmp_path / name], opts)
    assert not report.failed
    return {(f.rule[:3], f.location.member) for f in report.findings}


def _seven_zip_of(name: str, data: bytes) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writef(io.BytesIO(data), name)
    return buf.getvalue()


def _joblib_gz(tmp_path: Path) -> bytes:
    joblib.dump(_Harmless(), tmp_path / "src.joblib", compress=("gzip", 3))
    return (tmp_path / "src.joblib").read_bytes()


def test_real_pickle_scanner_finds_nothing_in_a_benign_checkpoint(tmp_path: Path) -> None:
    assert _real(tmp_path, "model.pt", torch_zip()) == set()


@pytest.mark.parametrize(
    ("case", "expected_member"),
    [
        ("cve_2025_1889", ("malicious1.txt",)),
        ("cve_2025_1944", ("archive/data.pkl",)),
        ("cve_2025_1945", ("archive/data.pkl",)),
        ("cve_2025_10155", ()),
        ("cve_2025_10156", ("archive/data.pkl",)),
        ("nullifai_7z", ("ballr7.pt", "ballr7/data.pkl")),
        ("saferpickle_41", ("<gzip payload>",)),
        ("storage_stash", ("archive/data/0",)),
        ("npy_object", ("<object array payload>",)),
    ],
)
def test_real_pickle_scanner_end_to_end(
    tmp_path: Path, case: str, expected_member: tuple[str, ...]
) -> None:
    evil = torch_zip(data_pkl=PAYLOAD)
    built = {
        "cve_2025_1889": ("x.zip", make_zip([("malicious1.txt", PAYLOAD)])),
        "cve_2025_1944": (
            "model.pt",
            patch_zip(evil, "archive/data.pkl", local_name="archive/data.pkX"),
        ),
        "cve_2025_1945": ("model.pt", patch_zip(evil, "archive/data.pkl", flags=0x20)),
        "cve_2025_10155": ("pytorch_model.bin", PAYLOAD),
        "cve_2025_10156": ("model.pt", patch_zip(evil, "archive/data.pkl", crc=1)),
        "nullifai_7z": (
            "pytorch_model.bin",
            _seven_zip_of("ballr7.pt", torch_zip(root="ballr7", data_pkl=PAYLOAD[:-1] + b"\x00")),
        ),
        "saferpickle_41": ("model.joblib", _joblib_gz(tmp_path)),
        "storage_stash": ("model.pt", torch_zip(storage=PAYLOAD + b"\x00" * 16)),
        "npy_object": (
            "emb.npy",
            b"\x93NUMPY\x01\x00"
            + struct.pack("<H", 70)
            + b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(69)
            + b"\n"
            + PAYLOAD,
        ),
    }
    name, data = built[case]
    found = _real(tmp_path, name, data)
    assert ("PKL", expected_member) in found, found


# --------------------------------------------------------------------------------------------
# Issue #11.3: the encryption flag is judged by the bytes, not taken at its word. A member
# flagged encrypted but stored in the clear is analysed (readers that ignore the flag load it);
# only a member that really is encrypted is "cannot be analysed" and fails the gate.

OS_SYSTEM = b"\x80\x02cos\nsystem\nX\x17\x00\x00\x00echo supplychain-sampleq\x00\x85q\x01R."
"""``os.system("echo supplychain-sample")``: harmless if ever run."""


def _gate_passes(report: object) -> bool:
    from supplychain.policy import Policy, apply

    verdict = apply(report, Policy()).verdict  # type: ignore[arg-type]
    assert verdict is not None
    return verdict.passed


def _real_report(tmp_path: Path, name: str, data: bytes) -> object:
    from scanners.numpy_scan import NumpyScanner
    from scanners.pickle_scan import PickleScanner
    from scanners.torch_scan import TorchScanner
    from supplychain.engine import ScanOptions, scan_paths

    (tmp_path / name).write_bytes(data)
    opts = ScanOptions(scanners=(TorchScanner, ArchiveScanner, NumpyScanner, PickleScanner))
    return scan_paths([tmp_path / name], opts)


def _zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """Traditional PKWARE encryption (APPNOTE 6.1): 12-byte header, then the data."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_byte(crc_: int, b: int) -> int:
        return (crc_ >> 8) ^ table[(crc_ ^ b) & 0xFF]

    def update(b: int) -> None:
        keys[0] = crc_byte(keys[0], b)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_byte(keys[2], keys[1] >> 24)

    for b in password:
        update(b)
    out = bytearray()
    for b in bytes(range(7, 18)) + bytes([crc >> 24]) + data:
        k = keys[2] | 2
        out.append(b ^ (((k * (k ^ 1)) >> 8) & 0xFF))
        update(b)
    return bytes(out)


def raw_zip(members: list[dict[str, object]]) -> bytes:
    """A zip written field by field, so local header and central directory can disagree.

    Each member: ``name``, ``data`` (the bytes stored), ``method``, ``flags``, ``crc``,
    ``size``; optional ``extra``, and ``local`` (a dict overriding local-header fields).
    """
    body = bytearray()
    central = bytearray()
    for m in members:
        name = str(m["name"]).encode()
        data = bytes(m["data"])  # type: ignore[call-overload]
        extra = bytes(m.get("extra", b""))  # type: ignore[call-overload]
        fields = {
            "method": m["method"],
            "flags": m["flags"],
            "crc": m["crc"],
            "csize": len(data),
            "size": m["size"],
        }
        local = {**fields, **dict(m.get("local", {}))}  # type: ignore[call-overload]
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            local["flags"],
            local["method"],
            0,
            0x21,
            local["crc"],
            local["csize"],
            local["size"],
            len(name),
            len(extra),
        )
        body += name + extra + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            fields["flags"],
            fields["method"],
            0,
            0x21,
            fields["crc"],
            fields["csize"],
            fields["size"],
            len(name),
            len(extra),
            0,
            0,
            0,
            0,
            offset,
        )
        central += name + extra
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0
    )
    return bytes(body + central + eocd)


def torch_members(data_pkl: dict[str, object]) -> list[dict[str, object]]:
    """A torch.save zip's members with ``data.pkl`` described by the given fields."""
    plain = [
        ("archive/byteorder", b"little"),
        ("archive/data/0", b"\x00\x00\x80?" * 4),
        ("archive/version", b"3\n"),
    ]
    out: list[dict[str, object]] = [{"name": "archive/data.pkl", **data_pkl}]
    for name, data in plain:
        out.append(
            {
                "name": name,
                "data": data,
                "method": 0,
                "flags": 0,
                "crc": zlib.crc32(data),
                "size": len(data),
            }
        )
    return out


def _pkl_severities(report: object) -> set[str]:
    return {
        f.severity.name
        for f in report.findings  # type: ignore[attr-defined]
        if f.rule.startswith("PKL") and f.location.member == ("archive/data.pkl",)
    }


@pytest.mark.parametrize("crc", ["right", "zeroed"])
@pytest.mark.parametrize("method", [0, 8], ids=["stored", "deflated"])
def test_encrypted_flag_on_a_member_stored_in_the_clear_is_analysed(
    tmp_path: Path, crc: str, method: int
) -> None:
    body = OS_SYSTEM if method == 0 else zlib.compress(OS_SYSTEM)[2:-4]
    fields = {
        "data": body,
        "method": method,
        "flags": 0x1,
        "crc": zlib.crc32(OS_SYSTEM) if crc == "right" else 0,
        "size": len(OS_SYSTEM),
    }
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    assert "CRITICAL" in _pkl_severities(report)
    found = {(f.rule, f.location.member) for f in report.findings}  # type: ignore[attr-defined]
    assert ("ARC004", ("archive/data.pkl",)) in found
    assert ("ARC005", ("archive/data.pkl",)) not in found
    assert not _gate_passes(report)


def test_encrypted_flag_on_a_clear_benign_member_does_not_fail_as_unanalysable(
    tmp_path: Path,
) -> None:
    fields = {
        "data": DATA_PKL,
        "method": 0,
        "flags": 0x1,
        "crc": zlib.crc32(DATA_PKL),
        "size": len(DATA_PKL),
    }
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    got = {f.rule: f.severity for f in report.findings}  # type: ignore[attr-defined]
    assert "ARC005" not in got
    assert got.get("ARC004") is Severity.MEDIUM


@pytest.mark.parametrize("method", [0, 8], ids=["stored", "deflated"])
def test_really_encrypted_zipcrypto_member_cannot_be_analysed_and_fails_the_gate(
    tmp_path: Path, method: int
) -> None:
    plain = OS_SYSTEM if method == 0 else zlib.compress(OS_SYSTEM)[2:-4]
    crc = zlib.crc32(OS_SYSTEM)
    cipher = _zipcrypto(plain, b"secret", crc)
    fields = {"data": cipher, "method": method, "flags": 0x1, "crc": crc, "size": len(OS_SYSTEM)}
    data = raw_zip(torch_members(fields))
    # The hand-rolled cipher is the real one: zipfile decrypts it with the password.
    zf = zipfile.ZipFile(io.BytesIO(data))
    zf.setpassword(b"secret")
    assert zf.read("archive/data.pkl") == OS_SYSTEM
    report = _real_report(tmp_path, "model.pt", data)
    found = {(f.rule, f.location.member): f for f in report.findings}  # type: ignore[attr-defined]
    hit = found[("ARC005", ("archive/data.pkl",))]
    assert hit.severity is Severity.HIGH
    assert "cannot be analysed" in hit.message
    assert not _pkl_severities(report)
    assert not _gate_passes(report)


def test_aes_encrypted_member_cannot_be_analysed(tmp_path: Path) -> None:
    aes = struct.pack("<HHHH2sBH", 0x9901, 7, 2, 0x4541, b"AE", 3, 0)[:11]
    fields = {
        "data": OS_SYSTEM,  # even bytes that parse: the AES record says the reader decrypts
        "method": 99,
        "flags": 0x1,
        "crc": 0,
        "size": len(OS_SYSTEM),
        "extra": aes,
    }
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    found = {(f.rule, f.location.member) for f in report.findings}  # type: ignore[attr-defined]
    assert ("ARC005", ("archive/data.pkl",)) in found
    assert not _gate_passes(report)


def test_flagged_member_of_random_bytes_fails_closed_as_encrypted(tmp_path: Path) -> None:
    noise = bytes((i * 2654435761 >> 13) & 0xFF for i in range(4096))
    fields = {"data": noise, "method": 0, "flags": 0x1, "crc": 0, "size": len(noise)}
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    found = {(f.rule, f.location.member) for f in report.findings}  # type: ignore[attr-defined]
    assert ("ARC005", ("archive/data.pkl",)) in found
    assert not _gate_passes(report)


def test_local_central_header_mismatch_both_views_analysed(tmp_path: Path) -> None:
    """torch/zipfile read the central directory's size; a streaming reader the local one.

    The central view of ``data.pkl`` is a benign pickle; the local header claims more bytes,
    and in that longer view a stacked ``os.system`` pickle follows. Both views are analysed and
    the disagreement is a HIGH finding.
    """
    both = DATA_PKL + OS_SYSTEM
    fields = {
        "data": both,
        "method": 0,
        "flags": 0,
        "crc": zlib.crc32(DATA_PKL),
        "size": len(DATA_PKL),
        "local": {"crc": zlib.crc32(both), "size": len(both)},
    }
    members = torch_members(fields)
    data = raw_zip(members)
    # Make the central directory say the short length, as torch reads it.
    (cd,) = central_offsets(data, "archive/data.pkl")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd + 20, len(DATA_PKL))
    report = _real_report(tmp_path, "model.pt", bytes(buf))
    by_member = {
        (f.rule, f.location.member, f.severity.name)
        for f in report.findings  # type: ignore[attr-defined]
    }
    assert ("ARC009", ("archive/data.pkl",), "HIGH") in by_member
    local_view = ("archive/data.pkl <local header view>",)
    assert any(
        r.startswith("PKL") and m == local_view and sev == "CRITICAL" for r, m, sev in by_member
    )
    assert not _gate_passes(report)


def test_local_header_method_differs_from_central(tmp_path: Path) -> None:
    fields = {
        "data": OS_SYSTEM,
        "method": 0,
        "flags": 0,
        "crc": zlib.crc32(OS_SYSTEM),
        "size": len(OS_SYSTEM),
        "local": {"method": 8},
    }
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    found = {(f.rule, f.location.member) for f in report.findings}  # type: ignore[attr-defined]
    assert ("ARC009", ("archive/data.pkl",)) in found
    assert "CRITICAL" in _pkl_severities(report)  # the central (torch) view is analysed


def test_flagged_member_with_pickle_then_random_bytes_is_analysed(tmp_path: Path) -> None:
    """High-entropy bytes after a payload must not make it "encrypted" (and unanalysed)."""
    noise = bytes((i * 2654435761 >> 13) & 0xFF for i in range(8192))
    body = OS_SYSTEM + noise
    fields = {"data": body, "method": 0, "flags": 0x1, "crc": 0, "size": len(body)}
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    assert "CRITICAL" in _pkl_severities(report)
    assert not _gate_passes(report)


def test_aes_method_without_the_encryption_bit_is_still_encrypted(tmp_path: Path) -> None:
    fields = {"data": OS_SYSTEM, "method": 99, "flags": 0, "crc": 0, "size": len(OS_SYSTEM)}
    report = _real_report(tmp_path, "model.pt", raw_zip(torch_members(fields)))
    found = {(f.rule, f.location.member) for f in report.findings}  # type: ignore[attr-defined]
    assert ("ARC005", ("archive/data.pkl",)) in found
    assert not _gate_passes(report)
