"""Benign real-world shapes that once raised findings (found by scanning site-packages)."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

from scanners.sniff import sniff
from supplychain.core.model import ArtifactKind, Severity
from supplychain.engine import ScanOptions, scan_paths


def _scan(tmp_path: Path, name: str, data: bytes) -> object:
    (tmp_path / name).write_bytes(data)
    return scan_paths([tmp_path], ScanOptions(jobs=1))


def test_python2_npy_header_with_long_suffix_parses(tmp_path: Path) -> None:
    # numpy/lib/tests/data/win64python2.npy: Python 2 wrote the shape as (2L,)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    report = _scan(tmp_path, "old.npy", data + struct.pack("<2d", 1.0, 2.0))
    assert report.findings == ()  # type: ignore[attr-defined]


def test_idl_save_file_named_sav_is_not_a_pickle() -> None:
    # scipy/io/tests/data/*.sav: IDL SAVE files start with "SR\x00\x04"; .sav is also an old
    # joblib extension, so the name alone must not make the file a pickle.
    data = b"SR\x00\x04" + bytes(range(256)) * 4
    assert sniff(io.BytesIO(data), len(data), "scalar_int16.sav") is not ArtifactKind.PICKLE


def test_matlab_v4_file_is_not_taken_for_lzma() -> None:
    # scipy/io/matlab/tests/data/testvec_4_GLNX86.mat decodes as raw LZMA for a few bytes.
    data = bytes.fromhex("00000000020000000100000000000000") + b"\x0b\x00\x00\x00fit_params\x00"
    data += bytes(range(256))
    assert sniff(io.BytesIO(data), len(data), "testvec_4_GLNX86.mat") is not ArtifactKind.XZ


def test_small_highly_compressible_npz_member_is_no_bomb(tmp_path: Path) -> None:
    # scipy/linalg/tests/data/carex_20_data.npz: 710 KB of mostly zeros from 3 KB (234x)
    zero = b"\x00" * 700_000
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({len(zero) // 8},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + zero
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("B.npy", npy)
    report = _scan(tmp_path, "data.npz", buf.getvalue())
    assert [f for f in report.findings if f.severity >= Severity.MEDIUM] == []  # type: ignore[attr-defined]


def test_joblib_legacy_zf_compressed_pickle_is_unwrapped(tmp_path: Path) -> None:
    # joblib < 0.10 (joblib/test/data/*_compressed_pickle_*.gz): "ZF" + padded hex length +
    # zlib. Once reported as a corrupt gzip; the pickle inside must reach the pickle scanner.
    import zlib

    payload = b"\x80\x02cos\nsystem\nq\x00U\x04truq\x01\x85q\x02Rq\x03."  # inert: never loaded
    blob = b"ZF" + hex(len(payload)).encode().ljust(18) + zlib.compress(payload)
    report = _scan(tmp_path, "model_compressed_pickle.gz", blob)
    rules = {f.rule for f in report.findings}  # type: ignore[attr-defined]
    assert "PKL001" in rules and "GEN001" not in rules


def test_old_gensim_models_pickle_numpy_randomstate_ctor() -> None:
    # gensim/test/test_data/*_model (NumPy < 1.17): RandomState pickled as the zero-argument
    # call numpy.random.__RandomState_ctor() + BUILD(state). A call, but of a vetted helper.
    from scanners.base import Artifact, ScanContext
    from scanners.pickle_scan import PickleScanner
    from tests.pickle_builders import PickleBuilder

    b = PickleBuilder(2).global_("numpy.random", "__RandomState_ctor").empty_tuple().reduce()
    b.mark().str("MT19937").int(0).tuple().build().stop()
    data = bytes(b)
    art = Artifact(path="m", kind=ArtifactKind.PICKLE, size=len(data), stream=io.BytesIO(data))
    assert list(PickleScanner().scan(art, ScanContext())) == []


def test_numpy_1_0_ndarray_reconstruct_name(tmp_path: Path) -> None:
    # numpy/lib/tests/data/py2-np0-objarr.npy: numpy.core._internal._reconstruct
    b = b"\x80\x02cnumpy.core._internal\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02"
    b += b"U\x01bq\x03\x87q\x04Rq\x05."
    report = _scan(tmp_path, "old.pkl", b)
    assert report.findings == ()  # type: ignore[attr-defined]
