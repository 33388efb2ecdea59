"""NumpyScanner: strict .npy header parsing; object arrays and hidden tails go to the engine."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.numpy_scan import NumpyScanner, parse_header
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind
from tests.scanners.test_archive_scan import PAYLOAD, flagged, make_zip, rules, scan_file


def npy(
    descr: str, shape: tuple[int, ...], body: bytes, version: tuple[int, int] = (1, 0)
) -> bytes:
    """An .npy file with a hand-written header (what numpy.save writes, or a hostile edit)."""
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    text = header.encode("latin1" if version < (3, 0) else "utf-8")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    size = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text + body


def saved(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def direct(data: bytes) -> list[object]:
    art = Artifact(
        path="a.npy", kind=ArtifactKind.NUMPY_NPY, size=len(data), stream=io.BytesIO(data)
    )
    return list(NumpyScanner().scan(art, ScanContext()))


def test_plain_arrays_from_numpy_are_clean(tmp_path: Path) -> None:
    for i, arr in enumerate(
        [
            np.arange(12, dtype="<f4").reshape(3, 4),
            np.zeros((0, 5)),
            np.array(["ab", "c"]),
            np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8", (2,))]),
        ]
    ):
        d = tmp_path / str(i)
        d.mkdir()
        report = scan_file(d, "a.npy", saved(arr))
        assert report.files[0].kind is ArtifactKind.NUMPY_NPY
        assert report.findings == (), arr.dtype


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_all_header_versions_parse(version: tuple[int, int]) -> None:
    data = npy("<f8", (2,), b"\x00" * 16, version)
    header, start = parse_header(io.BytesIO(data), len(data))
    assert header["shape"] == (2,) and len(data) - start == 16


def test_object_array_payload_is_dispatched_as_pickle(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "emb.npy", npy("|O", (1,), PAYLOAD))
    assert "NPY001" in rules(report)
    assert flagged(report) == {("<object array payload>",)}


def test_structured_dtype_with_objects_is_a_pickle(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "s.npy", npy_struct_obj())
    assert flagged(report) == {("<object array payload>",)}


def npy_struct_obj() -> bytes:
    header = "{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }"
    text = header.encode() + b" " * 10 + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + PAYLOAD


def test_data_after_array_is_reported_and_scanned(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "w.npy", saved(np.ones(4, dtype="<f4")) + PAYLOAD)
    assert "NPY002" in rules(report)
    assert flagged(report) == {("<data after array>",)}


def test_truncated_array_is_malformed(tmp_path: Path) -> None:
    report = scan_file(tmp_path, "t.npy", saved(np.ones(100, dtype="<f8"))[:-8])
    assert "GEN001" in rules(report)


def test_overflowing_shape_is_reported() -> None:
    found = direct(npy("<f8", (2**40, 2**40), b""))
    assert [f.rule for f in found] == ["NPY003"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "header",
    [
        b"__import__('os').system('echo')",
        b"{'descr': '<f4', 'fortran_order': False}",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
        b"{'descr': '<f4', 'fortran_order': 1, 'shape': (1,)}",
        b"{'descr': 'not a dtype', 'fortran_order': False, 'shape': (1,)}",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
        b"(" * 5000,
    ],
)
def test_bad_headers_are_artifact_errors(header: bytes) -> None:
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 8
    with pytest.raises(ArtifactError):
        direct(data)


def test_unknown_version_and_oversized_header_are_rejected() -> None:
    with pytest.raises(ArtifactError):
        direct(b"\x93NUMPY\x09\x00" + b"\x00" * 40)
    with pytest.raises(ArtifactError):
        direct(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}")


def test_npz_members_are_dispatched(tmp_path: Path) -> None:
    data = make_zip(
        [("a.npy", saved(np.arange(3))), ("b.npy", npy("|O", (1,), PAYLOAD))],
        method=zipfile.ZIP_DEFLATED,
    )
    report = scan_file(tmp_path, "w.npz", data)
    assert report.files[0].kind is ArtifactKind.NUMPY_NPZ
    assert flagged(report) == {("b.npy", "<object array payload>")}
    assert "NPY001" in rules(report)


def test_npz_written_by_numpy_is_clean(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.arange(10), y=np.eye(3))
    report = scan_file(tmp_path, "w.npz", buf.getvalue())
    assert report.findings == ()
    assert {r.member for r in report.files if r.member} == {("x.npy",), ("y.npy",)}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_npy_only_raises_artifact_errors(tail: bytes) -> None:
    try:
        direct(b"\x93NUMPY" + tail)
    except ArtifactError:
        pass
