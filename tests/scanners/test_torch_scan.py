"""TorchScanner: every pickle in a torch checkpoint reaches the pickle scanner; zip tricks are
findings, never skips. Checkpoints are built by hand (torch is not installed)."""

from __future__ import annotations

import io
import os
import pickletools
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.torch_scan import TorchScanner
from supplychain.core.errors import ArtifactError
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Severity
from tests.scanners.test_archive_scan import (
    PAYLOAD,
    central_offsets,
    flagged,
    make_tar,
    make_zip,
    patch_zip,
    rules,
    scan_file,
)

DATA_PKL = (
    b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02("
    b"(X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05"
    b"X\x03\x00\x00\x00cpuq\x06K\x04tq\x07QK\x00K\x04\x85q\x08K\x01\x85q\t\x89"
    b"ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\x0ds."
)
"""``{"weight": tensor(4 floats)}`` the way torch.save pickles it (persistent id → storage 0)."""


def torch_zip(
    root: str = "archive",
    data_pkl: bytes = DATA_PKL,
    extra: list[tuple[str, bytes]] | None = None,
    storage: bytes = b"\x00\x00\x80?" * 4,
    method: int = zipfile.ZIP_STORED,
) -> bytes:
    members = [
        (f"{root}/data.pkl", data_pkl),
        (f"{root}/byteorder", b"little"),
        (f"{root}/data/0", storage),
        (f"{root}/version", b"3\n"),
        (f"{root}/.data/serialization_id", b"1234567890"),
    ]
    return make_zip(members + (extra or []), method=method)


def test_hand_built_data_pkl_is_a_valid_pickle() -> None:
    ops = [op.name for op, _a, _p in pickletools.genops(io.BytesIO(DATA_PKL))]
    assert ops[-1] == "STOP" and "BINPERSID" in ops


def test_benign_checkpoint_dispatches_pickles_not_storages(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "model.pt", torch_zip())
    assert report.files[0].kind is ArtifactKind.TORCH_ZIP
    members = {r.member: r.kind for r in report.files if r.member}
    assert members[("archive/data.pkl",)] is ArtifactKind.PICKLE
    assert ("archive/data/0",) not in members
    assert report.findings == ()


@pytest.mark.parametrize("root", ["archive", "my_model", "x"])
def test_payload_in_data_pkl_under_any_root_is_found(tmp_path: Path, root: str) -> None:
    report = scan_file(tmp_path, "model.bin", torch_zip(root=root, data_pkl=PAYLOAD))
    assert flagged(report) == {(f"{root}/data.pkl",)}


def test_extra_members_without_pkl_extension_are_scanned(tmp_path: Path) -> None:
    """CVE-2025-1889 class: payloads in members named anything."""
    data = torch_zip(extra=[("archive/extra/config.json", PAYLOAD), ("archive/blob", PAYLOAD)])
    report = scan_file(tmp_path, "model.pth", data)
    assert flagged(report) == {("archive/extra/config.json",), ("archive/blob",)}


def test_torchscript_code_and_constants_are_dispatched(tmp_path: Path) -> None:
    data = make_zip(
        [
            ("m/data.pkl", DATA_PKL),
            ("m/constants.pkl", PAYLOAD),
            ("m/code/__torch__/model.py", b"def forward(self, x):\n    return x\n"),
            ("m/code/__torch__/model.py.debug_pkl", PAYLOAD),
        ],
        method=zipfile.ZIP_DEFLATED,
    )
    report = scan_file(tmp_path, "script.pt", data)
    assert flagged(report) == {("m/constants.pkl",), ("m/code/__torch__/model.py.debug_pkl",)}
    kinds = {r.member: r.kind for r in report.files}
    assert kinds[("m/code/__torch__/model.py",)] is ArtifactKind.PYTHON_SOURCE


def test_storage_holding_a_pickle_is_dispatched_and_reported(tmp_path: Path) -> None:
    data = torch_zip(storage=PAYLOAD + b"\x00" * 64)
    report = scan_file(tmp_path, "model.pt", data)
    assert flagged(report) == {("archive/data/0",)}
    assert any(
        f.rule == "ARC011" and f.location.member == ("archive/data/0",) for f in report.findings
    )


def test_random_storage_starting_like_a_pickle_is_not_dispatched(tmp_path: Path) -> None:
    storage = b"\x80\x02" + os.urandom(1 << 16)
    report = scan_file(tmp_path, "model.pt", torch_zip(storage=storage))
    assert ("archive/data/0",) not in {r.member for r in report.files}
    assert report.findings == ()


def test_bad_crc_is_reported_and_member_still_scanned(tmp_path: Path) -> None:
    """CVE-2025-10156: torch ignores CRCs; zipfile-based scanners raised and skipped."""
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", crc=0xDEADBEEF)
    report = scan_file(tmp_path, "model.pt", data)
    assert flagged(report) == {("archive/data.pkl",)}
    (crc,) = [f for f in report.findings if f.rule == "ARC006"]
    assert crc.severity is Severity.MEDIUM and crc.location.member == ("archive/data.pkl",)


def test_zero_crc_is_low(tmp_path: Path) -> None:
    data = patch_zip(torch_zip(), "archive/data.pkl", crc=0)
    report = scan_file(tmp_path, "model.pt", data)
    (crc,) = [f for f in report.findings if f.rule == "ARC006"]
    assert crc.severity is Severity.LOW


def test_encrypted_flag_on_clear_member_is_read_and_reported(tmp_path: Path) -> None:
    """Issue #11.3: the flag alone proves nothing; the CRC shows the bytes are in the clear."""
    data = patch_zip(torch_zip(data_pkl=PAYLOAD), "archive/data.pkl", flags=0x1)
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC004" in rules(report)
    assert "ARC005" not in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}


def test_encrypted_flag_with_zipcrypto_sized_random_data_is_not_read(tmp_path: Path) -> None:
    noise = bytes((i * 2654435761 >> 11) & 0xFF for i in range(len(PAYLOAD) + 12))
    plain = torch_zip(data_pkl=PAYLOAD)
    (lh,) = [i for i in range(len(plain)) if plain.startswith(b"PK\x03\x04", i)][:1]
    assert lh == 0  # data.pkl is the first member
    (nlen, xlen) = struct.unpack_from("<HH", plain, 26)
    start = 30 + nlen + xlen
    # Same length as the payload (offsets stay valid); sizes say "ZipCrypto header + data".
    body = noise[: len(PAYLOAD)]
    data = plain[:start] + body + plain[start + len(PAYLOAD) :]
    data = patch_zip(data, "archive/data.pkl", flags=0x1, crc=0)
    (cd,) = central_offsets(data, "archive/data.pkl")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd + 24, len(PAYLOAD) - 12)  # size = csize - 12
    report = scan_file(tmp_path, "model.pt", bytes(buf))
    assert "ARC005" in rules(report)
    assert not flagged(report)


def test_several_roots_are_reported(tmp_path: Path) -> None:
    data = torch_zip(extra=[("other/data.pkl", PAYLOAD)])
    report = scan_file(tmp_path, "model.pt", data)
    assert "ARC012" in rules(report)
    assert flagged(report) == {("other/data.pkl",)}


def test_pickle_glued_before_a_checkpoint_is_scanned_as_the_pickle_torch_loads(
    tmp_path: Path,
) -> None:
    # A pickle with a checkpoint glued after it: torch.load only looks for PK\x03\x04 at offset
    # 0, so it unpickles the leading payload. Sniffing must agree and send it to the pickle scan.
    report = scan_file(tmp_path, "model.pt", PAYLOAD + torch_zip())
    assert () in flagged(report)


def test_junk_prefixed_checkpoint_reports_the_prefix(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "model.pt", b"\x00" * 64 + torch_zip(data_pkl=PAYLOAD))
    assert "ARC008" in rules(report)


def test_member_past_end_of_file_is_a_finding(tmp_path: Path) -> None:
    data = torch_zip(data_pkl=PAYLOAD)
    (cd,) = central_offsets(data, "archive/data/0")
    buf = bytearray(data)
    struct.pack_into("<I", buf, cd + 20, 10**8)  # compressed size far past the end of the file
    report = scan_file(tmp_path, "model.pt", bytes(buf))
    assert "ARC009" in rules(report)
    assert flagged(report) == {("archive/data.pkl",)}


def test_truncated_checkpoint_is_malformed_not_a_crash(tmp_path: Path) -> None:
    data = torch_zip(data_pkl=PAYLOAD)
    report = scan_file(tmp_path, "model.pt", data[: len(data) // 2])
    assert "GEN001" in rules(report)
    assert not report.failed


# --------------------------------------------------------------------------------------------
# legacy tar format


def _legacy_storages(payload_at: int | None = None) -> bytes:
    count = b"\x80\x02K\x02."
    args = b"\x80\x02(X\x01\x00\x00\x000ctorch\nFloatStorage\nX\x03\x00\x00\x00cputq\x00."
    raw = struct.pack("<q", 3) + b"\x00" * 12
    records = [args + raw, args.replace(b"0c", b"1c") + raw]
    if payload_at is not None:
        records[payload_at] = PAYLOAD[:-1] + b"0" + args[2:] + raw  # payload, then the args
    views = b"\x80\x02]q\x00."
    return count + b"".join(records) + views


def test_legacy_tar_pickles_are_all_dispatched(tmp_path: Path) -> None:
    data = make_tar(
        [
            ("sys_info", b"\x80\x02}q\x00."),
            ("pickle", PAYLOAD),
            ("storages", _legacy_storages(payload_at=1)),
            ("tensors", b"\x80\x02K\x00."),
        ]
    )
    report = scan_file(tmp_path, "old.pt", data)
    assert report.files[0].kind is ArtifactKind.TORCH_TAR
    got = flagged(report)
    assert ("pickle",) in got
    assert any(m[0] == "storages" and m[1].startswith("@") for m in got)
    assert not rules(report) - {"TST901"}


def test_legacy_storages_that_do_not_parse_are_reported(tmp_path: Path) -> None:
    bad = b"\x80\x02K\x01." + b"\x80\x02cos\nsystem\n." + b"garbage"
    data = make_tar(
        [("sys_info", b"\x80\x02}q\x00."), ("pickle", b"\x80\x02N."), ("storages", bad)]
    )
    report = scan_file(tmp_path, "old.pt", data)
    assert "ARC013" in rules(report)
    assert any(m[:1] == ("storages",) for m in flagged(report))


# --------------------------------------------------------------------------------------------
# robustness


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
)
def test_mutated_checkpoints_only_raise_artifact_errors(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    base = bytearray(torch_zip(data_pkl=PAYLOAD, method=zipfile.ZIP_DEFLATED))
    for pos, value in flips:
        if pos < len(base):
            base[pos] = value
    data = bytes(base[: max(len(base) - cut, 0)])
    seen: list[str] = []

    def dispatch(child: Artifact) -> object:
        seen.append("/".join(child.member))
        child.stream.read(child.size)
        return iter(())

    ctx = ScanContext(limits=Limits(max_archive_ratio=50), dispatch=dispatch)  # type: ignore[arg-type]
    art = Artifact(
        path="m.pt", kind=ArtifactKind.TORCH_ZIP, size=len(data), stream=io.BytesIO(data)
    )
    try:
        list(TorchScanner().scan(art, ctx))
    except ArtifactError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_random_tar_bytes_only_raise_artifact_errors(blob: bytes) -> None:
    header = make_tar([("pickle", PAYLOAD)])[:512]
    data = header + blob
    art = Artifact(
        path="m.pt", kind=ArtifactKind.TORCH_TAR, size=len(data), stream=io.BytesIO(data)
    )
    try:
        list(TorchScanner().scan(art, ScanContext()))
    except ArtifactError:
        pass


def test_legacy_checkpoint_with_reordered_members_is_still_split(tmp_path: Path) -> None:
    """torch.load opens any tar with these names; sniffing sees a plain tar (sys_info not first)."""
    data = make_tar(
        [
            ("storages", _legacy_storages(payload_at=0)),
            ("sys_info", b"\x80\x02}q\x00."),
            ("pickle", b"\x80\x02N."),
            ("tensors", b"\x80\x02K\x00."),
        ]
    )
    report = scan_file(tmp_path, "old.pt", data)
    assert report.files[0].kind is ArtifactKind.TAR
    assert any(m[0] == "storages" and m[1].startswith("@") for m in flagged(report))
    assert not rules(report) - {"TST901"}


def test_legacy_tar_whole_module_pickle_resolves_its_class_ids(tmp_path: Path) -> None:
    """torch < 0.4 saved modules as persistent ids (cls, source_file, source) → cls."""
    from scanners.pickle_scan import PickleScanner
    from supplychain.engine import ScanOptions, scan_paths

    module_pid = b"(ctorch.nn.modules.linear\nLinear\nX\x04\x00\x00\x00f.pyX\x03\x00\x00\x00srctQ"
    pickle_member = b"\x80\x02" + module_pid + b")\x81}X\x01\x00\x00\x00aK\x01sb."
    data = make_tar(
        [
            ("sys_info", b"\x80\x02}q\x00."),
            ("pickle", pickle_member),
            ("storages", _legacy_storages()),
            ("tensors", b"\x80\x02K\x00."),
        ]
    )
    (tmp_path / "old.pt").write_bytes(data)
    opts = ScanOptions(scanners=(TorchScanner, PickleScanner))
    report = scan_paths([tmp_path / "old.pt"], opts)
    assert not [f for f in report.findings if f.severity >= Severity.HIGH], report.findings
