"""Identification that mirrors each loader's own decision (issues #9 points 2/4, #11 points 0/4).

Every case builds its bytes in code, checks the kind ``sniff`` assigns, then runs the whole engine
and the default policy on a directory holding the file to check the gate. Hostile pickles are
written opcode by opcode and only ever sniffed and scanned, never loaded; their payload is
``os.system('echo supplychain-sample')``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import site
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from scanners import dataformats, template_analysis
from scanners._magic import pickle_at_start, walk_pickle
from scanners.placeholder_scan import human_size
from scanners.sniff import PICKLE_WALK_BYTES, sniff
from supplychain.core.model import ArtifactKind as K
from supplychain.core.model import Report, Severity
from supplychain.engine import scan_paths
from supplychain.policy import Policy, apply

CMD = b"echo supplychain-sample"
P0 = b"cos\nsystem\n(S'" + CMD + b"'\ntR."
"""Protocol-0 pickle: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP (no PROTO)."""


def _gate(tmp_path: Path, files: dict[str, bytes]) -> Report:
    root = tmp_path / "repo"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return apply(scan_paths([root]), Policy())


def _kind(data: bytes, name: str) -> K:
    return sniff(io.BytesIO(data), len(data), name)


def _rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def _torch_zip(prefix: str = "archive") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{prefix}/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr(f"{prefix}/version", b"3\n")
        zf.writestr(f"{prefix}/data/0", b"\x00" * 16)
    return buf.getvalue()


def _png(width: int = 2, height: int = 2) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80\x00\xff" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# #9.2: files that are not the model they claim to be


WEIGHT_NAMES = (
    "pytorch_model.bin",
    "model.safetensors",
    "model-00001-of-00002.safetensors",
    "model.gguf",
    "model.onnx",
    "tf_model.h5",
    "model.keras",
    "model.pt",
    "model.pth",
    "last.ckpt",
    "model.pkl",
    "model.joblib",
    "weights.npy",
    "flax_model.msgpack",
    "model.tflite",
    "model.mlmodel",
    "saved_model.pb",
    "spiece.model",
    "model.pt2",
)


def _lfs_pointer(size: int, oid: str = "4d7a" * 16) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n").encode()


@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_lfs_pointer_under_a_weights_name_fails_the_gate_and_names_the_size(
    tmp_path: Path, name: str
) -> None:
    data = _lfs_pointer(4_404_019)
    assert _kind(data, name) is K.LFS_POINTER
    report = _gate(tmp_path, {name: data})
    (finding,) = [f for f in report.findings if f.rule == "IDN001"]
    assert finding.severity is Severity.HIGH
    assert "Git LFS pointer, 4.4 MB object not downloaded" in finding.message
    assert report.verdict is not None and not report.verdict.passed


@pytest.mark.parametrize("name", ["README.md", "notes", "vocab.txt", "data/train.jsonl"])
def test_lfs_pointer_under_any_name_is_still_reported(tmp_path: Path, name: str) -> None:
    data = _lfs_pointer(12_345_678_901).replace(b"\n", b"\r\n")
    assert _kind(data, name) is K.LFS_POINTER
    report = _gate(tmp_path, {name: data})
    (finding,) = [f for f in report.findings if f.rule == "IDN001"]
    assert "12.3 GB object not downloaded" in finding.message
    assert finding.severity is Severity.MEDIUM


def test_text_that_merely_mentions_lfs_is_not_a_pointer() -> None:
    data = b"version https://git-lfs.github.com/spec/v1 is the pointer format.\n" * 40
    assert _kind(data, "model.bin") is not K.LFS_POINTER


@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_empty_file_under_a_weights_name_fails_the_gate(tmp_path: Path, name: str) -> None:
    assert _kind(b"", name) is K.EMPTY
    report = _gate(tmp_path, {name: b""})
    (finding,) = [f for f in report.findings if f.rule == "IDN002"]
    assert finding.severity is Severity.HIGH and "empty file (0 bytes)" in finding.message
    assert report.verdict is not None and not report.verdict.passed


@pytest.mark.parametrize("name", ["__init__.py", ".gitkeep", "README", "pkg/py.typed", "empty.txt"])
def test_empty_file_with_a_harmless_name_passes(tmp_path: Path, name: str) -> None:
    assert _kind(b"", name) is K.EMPTY
    report = _gate(tmp_path, {name: b""})
    assert report.findings == ()
    assert report.verdict is not None and report.verdict.passed


def test_human_size_uses_decimal_units() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 4_404_019, 10**12)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "4.4 MB",
        "1.0 TB",
    ]


# --------------------------------------------------------------------------------------------
# #11.4: content that is not what its name claims (media, text)

MEDIA: dict[str, bytes] = {
    "PNG image": _png(),
    "JPEG image": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 64,
    "GIF image": b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32,
    "PDF document": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "WebP image": b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32,
    "WAV audio": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32,
    "MP4/QuickTime media": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32,
    "MP3 audio": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 16,
    "Ogg media": b"OggS\x00\x02" + b"\x00" * 40,
    "TIFF image": b"II*\x00\x08\x00\x00\x00" + b"\x00" * 32,
    "OLE2 (legacy Office) document": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
}


@pytest.mark.parametrize("label", sorted(MEDIA))
@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "model.safetensors"])
def test_media_under_a_model_name_is_reported_as_what_it_is(
    tmp_path: Path, label: str, name: str
) -> None:
    data = MEDIA[label]
    assert _kind(data, name) is K.MEDIA
    report = _gate(tmp_path, {name: data})
    (finding,) = [f for f in report.findings if f.severity >= Severity.HIGH]
    assert finding.rule == "IDN003" and finding.message.startswith(f"{label}, not a")
    assert report.verdict is not None and not report.verdict.passed


def test_png_named_pt_says_png_not_pytorch(tmp_path: Path) -> None:
    report = _gate(tmp_path, {"model.pt": _png()})
    assert [f.message for f in report.findings] == ["PNG image, not a PyTorch file"]
    assert "PKL" not in "".join(_rules(report)) and "GEN001" not in _rules(report)


@pytest.mark.parametrize(
    ("name", "label"),
    [("logo.png", "PNG image"), ("docs/figure.jpg", "JPEG image"), ("paper.pdf", "PDF document")],
)
def test_media_under_its_own_name_is_scanned_without_finding(
    tmp_path: Path, name: str, label: str
) -> None:
    data = MEDIA[label]
    assert _kind(data, name) is K.MEDIA
    report = _gate(tmp_path, {name: data})
    assert report.findings == ()
    assert report.verdict is not None and report.verdict.passed


def test_real_pillow_images_are_media() -> None:
    from PIL import Image

    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (3, 3), (200, 10, 10)).save(buf, format=fmt)
        assert _kind(buf.getvalue(), "model.bin") is K.MEDIA, fmt


def test_office_documents_stay_zips() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    assert _kind(buf.getvalue(), "report.docx") is K.ZIP


@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "model.pkl", "model.onnx"])
def test_text_under_a_model_name_is_reported_as_text_not_a_broken_pickle(
    tmp_path: Path, name: str
) -> None:
    data = b"Sorry, this model was moved to another repository.\n"
    assert _kind(data, name) is K.TEXT
    report = _gate(tmp_path, {name: data})
    (finding,) = report.findings
    assert finding.rule == "IDN003" and finding.message.startswith("plain text, not a")
    assert report.verdict is not None and not report.verdict.passed


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b"<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n", "HTML page"),
        (b'{"error": "Repository not found"}', "JSON text"),
        (b"Entry not found", "plain text"),
        (b"\x00" * 4096, "zero-filled data"),  # preallocated, never written
    ],
)
def test_failed_download_text_is_named_for_what_it_is(
    tmp_path: Path, data: bytes, label: str
) -> None:
    report = _gate(tmp_path, {"pytorch_model.bin": data})
    (finding,) = report.findings
    assert finding.message == f"{label}, not a PyTorch/model weights file"
    assert finding.severity is Severity.HIGH


def test_tiktoken_tokenizer_model_text_is_fine(tmp_path: Path) -> None:
    data = b"".join(b"%s %d\n" % (tok, i) for i, tok in enumerate((b"IQ==", b"Ig==", b"Iw==")))
    report = _gate(tmp_path, {"tokenizer.model": data})
    assert report.findings == ()
    assert report.verdict is not None and report.verdict.passed


# --------------------------------------------------------------------------------------------
# #11.0: a pickle the way CPython's unpickler sees it (no PROTO needed)

PREFIXES: dict[str, bytes] = {
    "string": b"S'a'\n0",
    "unicode": b"Vabc\n0",
    "short-binunicode": b"\x8c\x01a0",
    "binstring": b"U\x01a0",
    "int": b"I1\n0",
    "binint1": b"K\x010",
    "long": b"L12L\n0",
    "float": b"F1.5\n0",
    "none": b"N0",
    "newtrue": b"\x880",
    "mark-pop": b"(0",
    "mark-pop-mark": b"(1",
    "empty-dict": b"}0",
    "empty-list": b"]0",
    "empty-tuple": b")0",
    "dict-from-mark": b"(d0",
    "global": b"",
    "global-unused": b"ccollections\nOrderedDict\n0",
}
STACK_GLOBAL_PICKLE = b"\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(CMD)]) + CMD + b"\x85R."
INST_PICKLE = b"(S'" + CMD + b"'\nios\nsystem\n."


def _no_proto_payloads() -> dict[str, bytes]:
    out = {name: prefix + P0 for name, prefix in PREFIXES.items()}
    out["stack-global"] = STACK_GLOBAL_PICKLE
    out["inst"] = INST_PICKLE
    out["frame-no-proto"] = (
        b"\x95" + struct.pack("<Q", len(STACK_GLOBAL_PICKLE)) + (STACK_GLOBAL_PICKLE)
    )
    return out


NO_PROTO = _no_proto_payloads()


@pytest.mark.parametrize("case", sorted(NO_PROTO))
@pytest.mark.parametrize("name", ["notes.txt", "weights", "config.yaml", "model.pt", "x.json"])
def test_pickle_starting_with_any_opcode_is_a_pickle(case: str, name: str) -> None:
    assert _kind(NO_PROTO[case], name) is K.PICKLE


@pytest.mark.parametrize("case", sorted(NO_PROTO))
def test_pickle_starting_with_any_opcode_fails_the_gate(tmp_path: Path, case: str) -> None:
    report = _gate(tmp_path, {"notes.txt": NO_PROTO[case]})
    assert any(f.severity is Severity.CRITICAL and "system" in f.message for f in report.findings)
    assert report.verdict is not None and not report.verdict.passed


def test_opcode_the_unpickler_rejects_at_byte_zero_is_not_a_pickle() -> None:
    # CPython: POP on an empty stack is "unpickling stack underflow" and nothing runs.
    assert not pickle_at_start(b"0" + P0, "notes.txt", whole=True)
    assert walk_pickle(b"0" + P0).ops == 0


BROKEN: dict[str, bytes] = {
    "no-stop": P0[:-1],
    "cut-in-string": b"cos\nsystem\n(S'" + CMD[:4],
    "cut-after-string": b"cos\nsystem\n(S'" + CMD + b"'\n",
    "garbage-after-reduce": P0[:-1] + b"garbage!\xff\xfe",
    "bad-byte-after-global": b"cos\nsystem\n\xff\xfe\xfd",
    "underflow-after-call": P0[:-1] + b"R.",
    "stack-global-cut": STACK_GLOBAL_PICKLE[:-2],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("name", ["notes.txt", "weights", "model.pkl"])
def test_broken_protocol0_pickle_is_a_pickle_never_text(case: str, name: str) -> None:
    assert _kind(BROKEN[case], name) is K.PICKLE


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_protocol0_pickle_fails_the_gate(tmp_path: Path, case: str) -> None:
    report = _gate(tmp_path, {"notes.txt": BROKEN[case]})
    assert report.verdict is not None and not report.verdict.passed
    assert any("system" in f.message or "system" in f.evidence for f in report.findings)


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"h\x01N.", False),  # CPython: "Memo value not found at index 1"
        (b"q\x01N.", False),  # CPython: PUT on an empty stack is a stack underflow
        (b"Nq\x01h\x01.", True),
        (b"N\x94h\x00.", True),  # MEMOIZE numbers entries from 0
    ],
)
def test_walk_follows_the_memo_as_the_unpickler_does(data: bytes, complete: bool) -> None:
    assert walk_pickle(data).complete is complete


def test_walk_reports_what_ran_before_the_break() -> None:
    walk = walk_pickle(P0[:-1] + b"garbage!")
    assert not walk.complete and walk.called and walk.imports == ("os.system",)
    walk = walk_pickle(STACK_GLOBAL_PICKLE)
    assert walk.complete and walk.imports == ("os.system",)


def test_pickle_name_with_nothing_pickle_like_is_still_a_finding(tmp_path: Path) -> None:
    garbage = bytes([0xFF, 0xFE, 0x00, 0x9C]) * 64
    assert _kind(garbage, "model.pkl") is K.PICKLE
    report = _gate(tmp_path, {"model.pkl": garbage})
    assert report.verdict is not None and not report.verdict.passed


# --------------------------------------------------------------------------------------------
# #11.0: torch.load's own zip/legacy decision


@pytest.mark.parametrize(
    "prefix", [P0, INST_PICKLE, b"\x80\x02" + P0, b"(0" + P0], ids=["p0", "inst", "p2", "mark"]
)
@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "model.ckpt", "x.zip"])
def test_pickle_before_an_embedded_zip_is_the_pickle_torch_load_runs(
    tmp_path: Path, prefix: bytes, name: str
) -> None:
    data = prefix + _torch_zip()
    assert _kind(data, name) is K.PICKLE
    report = _gate(tmp_path, {name: data})
    assert "IDN004" in _rules(report)
    (poly,) = [f for f in report.findings if f.rule == "IDN004"]
    assert "torch.load runs the pickle" in poly.message and poly.severity is Severity.HIGH
    assert any(f.severity is Severity.CRITICAL and "system" in f.message for f in report.findings)
    assert report.verdict is not None and not report.verdict.passed


def test_zip_behind_a_harmless_pickle_prefix_is_scanned_too(tmp_path: Path) -> None:
    # torch.load runs the harmless prefix; zip readers (keras, zipfile) see the hostile member.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02" + P0)
        zf.writestr("archive/version", b"3\n")
    data = b"(dp0\n." + buf.getvalue()
    assert _kind(data, "model.pt") is K.PICKLE
    report = _gate(tmp_path, {"model.pt": data})
    assert "IDN004" in _rules(report)
    assert any(
        f.severity is Severity.CRITICAL
        and f.location.member == ("<embedded zip>", "archive/data.pkl")
        for f in report.findings
    ), [(f.rule, f.location) for f in report.findings]
    assert report.verdict is not None and not report.verdict.passed


def test_zip_at_byte_zero_is_a_torch_zip_and_no_polyglot() -> None:
    assert _kind(_torch_zip(), "model.pt") is K.TORCH_ZIP


def test_non_pickle_prefix_before_a_zip_is_still_read_as_the_zip() -> None:
    # A self-extracting stub is not an opcode stream: zip readers (and nothing else) load it.
    data = b"MZ\x90\x00" + b"\x00" * 60 + _torch_zip()
    assert _kind(data, "model.pt") is K.TORCH_ZIP


def _v7_tar(members: dict[str, bytes]) -> bytes:
    """A tar as pre-POSIX tools wrote it: no ``ustar`` magic, only the header checksum."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = bytearray(buf.getvalue())
    pos = 0
    while pos + 512 <= len(raw) and raw[pos]:
        raw[pos + 257 : pos + 265] = b"\x00" * 8
        raw[pos + 148 : pos + 156] = b" " * 8
        raw[pos + 148 : pos + 156] = b"%06o\x00 " % sum(raw[pos : pos + 512])
        size = int(raw[pos + 124 : pos + 136].rstrip(b"\x00 ") or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    return bytes(raw)


def test_v7_tar_without_ustar_magic_is_a_tar_as_tarfile_reads_it(tmp_path: Path) -> None:
    import tarfile

    legacy = _v7_tar({"sys_info": b"\x80\x02}q\x00.", "pickle": b"\x80\x02" + P0})
    with tarfile.open(fileobj=io.BytesIO(legacy), mode="r:") as tf:  # what torch.load opens
        assert tf.getnames() == ["sys_info", "pickle"]
    assert legacy[257:262] != b"ustar"
    assert _kind(legacy, "pytorch_model.bin") is K.TORCH_TAR
    assert _kind(_v7_tar({"weights.pkl": P0}), "bundle") is K.TAR
    report = _gate(tmp_path, {"pytorch_model.bin": legacy})
    assert any(f.severity is Severity.CRITICAL for f in report.findings)
    assert report.verdict is not None and not report.verdict.passed


# --------------------------------------------------------------------------------------------
# #11.0: joblib's compressor detection (prefix rules of joblib.compressor)


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return bytes(lz4.frame.compress(data))


def _zf(data: bytes, field: bytes) -> bytes:
    return b"ZF" + field.ljust(19) + zlib.compress(data)


JOBLIB_WRAPPERS: dict[str, tuple[Callable[[bytes], bytes], K, str]] = {
    "zlib": (zlib.compress, K.ZLIB, "zlib"),
    "gzip": (gzip.compress, K.GZIP, "gzip"),
    "bz2": (bz2.compress, K.BZIP2, "bz2"),
    "xz": (lambda d: lzma.compress(d, format=lzma.FORMAT_XZ), K.XZ, "xz"),
    "lzma-alone": (lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), K.XZ, "lzma"),
    "lzma-alone-preset9": (
        lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE, preset=9),
        K.XZ,
        "lzma",
    ),
    "lzma-alone-preset0": (
        lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE, preset=0),
        K.XZ,
        "lzma",
    ),
    "lz4": (_lz4, K.LZ4, "lz4"),
    "zf-0x": (lambda d: _zf(d, hex(len(d)).encode()), K.ZLIB, "compat"),
}


@pytest.mark.parametrize("case", sorted(JOBLIB_WRAPPERS))
def test_joblib_compressor_prefixes_are_identified_as_joblib_does(case: str) -> None:
    from joblib.numpy_pickle_utils import _detect_compressor

    wrap, kind, joblib_name = JOBLIB_WRAPPERS[case]
    data = wrap(b"\x80\x04" + P0)
    assert _detect_compressor(io.BytesIO(data)) == joblib_name  # prefix test only, no load
    assert _kind(data, "model.joblib") is kind


@pytest.mark.parametrize("case", sorted(JOBLIB_WRAPPERS))
def test_joblib_compressed_hostile_pickle_reaches_the_pickle_scanner(
    tmp_path: Path, case: str
) -> None:
    wrap = JOBLIB_WRAPPERS[case][0]
    report = _gate(tmp_path, {"model.joblib": wrap(P0)})
    assert any(
        f.severity is Severity.CRITICAL and "system" in f.message and f.location.member
        for f in report.findings
    ), [(f.rule, f.message) for f in report.findings]
    assert report.verdict is not None and not report.verdict.passed


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_real_joblib_dumps_are_identified_by_their_compressor(
    tmp_path: Path, compress: str
) -> None:
    import joblib
    import numpy as np

    path = tmp_path / "m.joblib"
    joblib.dump({"w": np.arange(50.0), "n": "layer"}, path, compress=(compress, 3))
    expected = {
        "zlib": K.ZLIB,
        "gzip": K.GZIP,
        "bz2": K.BZIP2,
        "lzma": K.XZ,
        "xz": K.XZ,
        "lz4": K.LZ4,
    }[compress]
    data = path.read_bytes()
    assert _kind(data, path.name) is expected


def test_joblib_zf_header_is_read_with_joblib_int_rule() -> None:
    # joblib parses the 19-byte field with int(field, 16): "0x" is optional, spaces allowed.
    from joblib.numpy_pickle_utils import _detect_compressor

    for field in (b"2b", b"   2b", b"0X2B"):
        data = _zf(P0, field)
        assert _detect_compressor(io.BytesIO(data)) == "compat"
        assert _kind(data, "model.pkl") is K.ZLIB


def test_lzma_lookalike_liblzma_would_refuse_is_not_lzma() -> None:
    # Dictionary size 3000 is neither 2^n nor 2^n + 2^(n-1): liblzma's alone decoder refuses it.
    data = b"]\x00" + (3000).to_bytes(4, "little")[1:] + b"\xff" * 8 + b"\x00" * 32
    assert _kind(data, "notes.dat") is not K.XZ


# --------------------------------------------------------------------------------------------
# #9.4: a validated safetensors header wins over the PROTO byte


def _safetensors(pad: int, tensors: int = 1) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    arrays = {f"t{i}": np.full((2, i + 1), i, dtype=np.float32) for i in range(tensors)}
    return bytes(save(arrays, metadata={"p": "x" * pad}))


def test_safetensors_header_length_sweep_is_never_a_pickle() -> None:
    seen_ambiguous: set[int] = set()
    lengths: set[int] = set()
    for tensors in (1, 3):
        for pad in range(0, 1500):
            data = _safetensors(pad, tensors)
            (n,) = struct.unpack("<Q", data[:8])
            lengths.add(n)
            if data[0] == 0x80 and data[1] <= 5:
                seen_ambiguous.add(data[1])
            assert _kind(data, "model.safetensors") is K.SAFETENSORS, hex(n)
            if data[0] == 0x80:
                assert _kind(data, "model.bin") is K.SAFETENSORS, hex(n)
    assert seen_ambiguous == {0, 1, 2, 3, 4, 5}
    assert {0x80, 0x180, 0x280, 0x380, 0x480, 0x580} <= lengths


@pytest.mark.parametrize("target", [0x10080, 0x20180, 0x50580])
def test_large_safetensors_headers_starting_80_0x_are_safetensors(target: int) -> None:
    base = _safetensors(0)
    (n0,) = struct.unpack("<Q", base[:8])
    data = _safetensors(target - n0)
    (n,) = struct.unpack("<Q", data[:8])
    assert n == target and data[0] == 0x80
    assert _kind(data, "model.safetensors") is K.SAFETENSORS


def test_ambiguous_safetensors_passes_the_gate(tmp_path: Path) -> None:
    pad = next(p for p in range(2000) if _safetensors(p)[:2] == b"\x80\x01")
    report = _gate(tmp_path, {"model.safetensors": _safetensors(pad)})
    assert {r.kind for r in report.files} == {K.SAFETENSORS}
    assert report.verdict is not None and report.verdict.passed, report.findings


@pytest.mark.parametrize("lead", [b"S'abcde {x'\n0", b"S'abcdef x'\n0", b"Vabcdef {\n0"])
def test_no_proto_pickle_named_safetensors_is_still_a_pickle(lead: bytes) -> None:
    # Byte 8 is " " or "{" (what the weak safetensors test looks at), yet torch.load runs it.
    data = lead + P0
    assert data[8:9] in (b" ", b"{") and _kind(data, "model.safetensors") is K.PICKLE


@pytest.mark.parametrize(
    "lead",
    [
        b"S'\x00\x00TFL3'\n0",
        b"T" + struct.pack("<I", 515) + b"a" * 507 + b"\x89HDF\r\n\x1a\n0",
    ],
    ids=["tflite-at-4", "hdf5-at-512"],
)
def test_magic_past_byte_zero_inside_a_pickle_string_is_the_pickle(lead: bytes) -> None:
    data = lead + P0
    assert data[4:8] == b"TFL3" or data[512:520] == b"\x89HDF\r\n\x1a\n"
    assert _kind(data, "model.tflite") is K.PICKLE
    assert _kind(data, "model.h5") is K.PICKLE


def test_proto_bytes_without_a_valid_header_are_still_a_pickle() -> None:
    data = b"\x80\x02" + b"\x00" * 6 + b"{not json" + b"\x00" * 400
    assert _kind(data, "model.bin") is K.PICKLE


# --------------------------------------------------------------------------------------------
# #11.0 balance: real text never becomes a pickle


def _text_corpus(limit: int) -> list[Path]:
    roots: list[Path] = []
    for sp in site.getsitepackages():
        for pkg in (
            "transformers",
            "sklearn",
            "tokenizers",
            "huggingface_hub",
            "numpy",
            "scipy",
            "jinja2",
            "pyarrow",
            "hypothesis",
            "onnx",
        ):
            if (Path(sp) / pkg).is_dir():
                roots.append(Path(sp) / pkg)
    files: list[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith((".py", ".txt", ".json", ".md", ".cfg", ".yaml", ".csv", ".pyi")):
                    files.append(Path(dirpath, f))
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def test_no_false_pickle_on_installed_text_files() -> None:
    corpus = _text_corpus(3000)
    assert len(corpus) >= 1000
    wrong = []
    for path in corpus:
        data = path.read_bytes()
        if _kind(data, path.name) is K.PICKLE:
            wrong.append(str(path))
    assert wrong == []


GENERATED_TEXT: dict[str, bytes] = {
    "prose.txt": b"N. B. read me. (Note: this is prose.) It ends with a period.\n",
    "period-led.txt": b".\n..\n",
    "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\ncat\ndog\nfish\n",
    "words.txt": b"cat\ndog\nfish\nbird\n",
    "cwords.txt": b"collections\nOrderedDict\nrandom words after two lines\n",
    "merges.txt": b"#version: 0.2\n\xc4\xa0 t\n\xc4\xa0 a\nh e\ni n\n",
    "data.csv": b"id,text,label\n1,hello,0\n2,world,1\n",
    "list.json": b'[{"a": 1}, {"a": 2}]',
    "config.yaml": b"model:\n  name: tiny\n  layers: 2\n",
    "RECORD": b"certifi/__init__.py,sha256=abc,94\ncertifi/core.py,sha256=def,120\n",
    "ints.txt": b"I1\nI2\nhello\n",
    "dict.txt": b"(dict) is a type.\n",
    "stack.txt": b"(lp0\nthen prose follows here\n",
    "tsv": b"S\tV\tI\n1\t2\t3\n",
    "script": b"import os\nimport sys\nprint(sys.argv)\n",
}


@pytest.mark.parametrize("name", sorted(GENERATED_TEXT))
def test_generated_text_is_not_a_pickle(name: str) -> None:
    assert _kind(GENERATED_TEXT[name], name) is not K.PICKLE


def test_big_global_free_pickle_past_the_walk_buffer_is_a_pickle() -> None:
    body = b"(l" + b"I1\na" * (PICKLE_WALK_BYTES // 4 + 10) + b"."
    assert _kind(body, "notes.txt") is K.PICKLE


# --------------------------------------------------------------------------------------------
# routing hooks: dataformats (strict, after magic) and templates/YAML


def test_dangerous_pickle_wins_over_a_data_format_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataformats, "identify", lambda *_a: K.MSGPACK)
    assert _kind(P0, "weights.msgpack") is K.PICKLE
    assert _kind(b"plain words\n", "weights.msgpack") is K.MSGPACK


def test_strong_magic_wins_over_a_data_format_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataformats, "identify", lambda *_a: K.WORD2VEC)
    assert _kind(_png(), "vectors.bin") is K.MEDIA
    assert _kind(_torch_zip(), "vectors.bin") is K.TORCH_ZIP


@pytest.mark.parametrize(
    "name", ["chat_template", "prompt.tmpl", "chat.template", "system.txt", "x.j2", "t.jinja2"]
)
def test_text_that_reads_as_a_template_is_a_chat_template(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(template_analysis, "looks_like_template", lambda head: b"{%" in head)
    assert _kind(b"{% for m in messages %}{{ m.content }}{% endfor %}", name) is K.CHAT_TEMPLATE
    assert _kind(b"Just a note.\n", "chat.template") is K.TEXT


def test_documents_quoting_jinja_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_analysis, "looks_like_template", lambda head: True)
    assert _kind(b"Use `{% if %}` in templates.\n", "README.md") is K.TEXT


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config.yaml", b"model:\n  layers: 2\n"),
        ("recipe.yml", b"- a\n- b\n"),
        ("template_config", b"name: x\nchat_template: |\n  {% for m in messages %}{% endfor %}\n"),
    ],
)
def test_yaml_is_routed_to_the_yaml_config_scanner(name: str, data: bytes) -> None:
    assert _kind(data, name) is K.YAML_CONFIG


# --------------------------------------------------------------------------------------------
# torch.export archives


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_torch_export_archive_layouts_are_torch_export() -> None:
    # Member names as torch 2.13's torch.export.save writes them, and the pre-2.6 layout.
    current = {
        "archive/archive_format": b"pt2",
        "archive/archive_version": b"0",
        "archive/.data/version": b"6\n",
        "archive/byteorder": b"little",
        "archive/models/model.json": b"{}",
        "archive/data/weights/weight_0": b"\x00" * 16,
        "archive/data/sample_inputs/model.pt": _torch_zip("model"),
    }
    older = {
        "serialized_exported_program.json": b"{}",
        "serialized_state_dict.pt": b"\x80\x02}q\x00.",
        "serialized_constants.pt": b"\x80\x02}q\x00.",
        "version": b"1",
    }
    assert _kind(_zip(current), "model.pt2") is K.TORCH_EXPORT
    assert _kind(_zip(current), "renamed.bin") is K.TORCH_EXPORT
    assert _kind(_zip(older), "model.pt2") is K.TORCH_EXPORT


@pytest.mark.framework
def test_real_torch_outputs_are_identified_as_torch_loads_them(tmp_path: Path) -> None:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.lin(x)
            return out

    legacy = io.BytesIO()
    torch.save(Tiny().state_dict(), legacy, _use_new_zipfile_serialization=False)
    current = io.BytesIO()
    torch.save(Tiny().state_dict(), current)
    exported = io.BytesIO()
    torch.export.save(torch.export.export(Tiny(), (torch.ones(1, 2),)), exported)
    assert _kind(legacy.getvalue(), "model.pt") is K.TORCH_LEGACY  # pickles from byte 0
    assert _kind(current.getvalue(), "model.pt") is K.TORCH_ZIP
    assert _kind(exported.getvalue(), "model.pt2") is K.TORCH_EXPORT
