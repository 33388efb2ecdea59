"""Data-only formats: identification by structure, structural checks, hostile variants.

Every valid input here is built in code byte by byte (the real-library output is in
``tests/test_zoo*.py``); every malformed variant must raise ``ArtifactError`` (GEN001).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanners.base import Artifact, ScanContext
from scanners.dataformats import (
    FMT001,
    FMT002,
    FMT003,
    FMT004,
    FMT005,
    FMT006,
    FMT007,
    FMT008,
    FMT009,
    DataFormatScanner,
    identify,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity

# --------------------------------------------------------------------------------------------
# tiny encoders (protobuf, msgpack) so the default suite needs no framework


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def pb_f32(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def pb_int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def sp_piece(piece: str, score: float, kind: int = 1) -> bytes:
    return pb_len(1, pb_len(1, piece.encode()) + pb_f32(2, score) + pb_int(3, kind))


def sentencepiece_model(n: int = 8) -> bytes:
    pieces = sp_piece("<unk>", 0.0, 2) + sp_piece("<s>", 0.0, 3) + sp_piece("</s>", 0.0, 3)
    pieces += b"".join(sp_piece(f"\u2581w{i}", -float(i)) for i in range(n))
    trainer = pb_len(2, pb_len(2, b"model") + pb_int(3, 1))
    normalizer = pb_len(3, pb_len(1, b"nmt_nfkc") + pb_len(2, b"\x00" * 64))
    return pieces + trainer + normalizer


def mp(obj: Any) -> bytes:
    """Minimal msgpack encoder (use_bin_type=True)."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, float):
        return b"\xcb" + struct.pack(">d", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        if len(raw) < 32:
            return bytes([0xA0 | len(raw)]) + raw
        return b"\xda" + struct.pack(">H", len(raw)) + raw
    if isinstance(obj, bytes):
        if len(obj) < 256:
            return b"\xc4" + bytes([len(obj)]) + obj
        return b"\xc6" + struct.pack(">I", len(obj)) + obj
    if isinstance(obj, (list, tuple)):
        head = bytes([0x90 | len(obj)]) if len(obj) < 16 else b"\xdc" + struct.pack(">H", len(obj))
        return head + b"".join(mp(x) for x in obj)
    if isinstance(obj, dict):
        head = bytes([0x80 | len(obj)]) if len(obj) < 16 else b"\xde" + struct.pack(">H", len(obj))
        return head + b"".join(mp(k) + mp(v) for k, v in obj.items())
    raise TypeError(type(obj))


# --------------------------------------------------------------------------------------------
# helpers


def kind_of(data: bytes, name: str) -> ArtifactKind | None:
    return identify(io.BytesIO(data), data[: 64 * 1024], len(data), name.lower())


def scan(
    data: bytes, kind: ArtifactKind, name: str = "f", fs_path: Path | None = None
) -> tuple[list[Finding], list[Artifact]]:
    """Run the scanner; return its findings and the children it dispatched."""
    children: list[Artifact] = []

    def dispatch(child: Artifact) -> Iterator[Finding]:
        child.stream.seek(0)
        children.append(
            Artifact(
                path=child.path,
                kind=child.kind,
                size=child.size,
                stream=io.BytesIO(child.stream.read()),
                member=child.member,
            )
        )
        return iter(())

    art = Artifact(path=name, kind=kind, size=len(data), stream=io.BytesIO(data), fs_path=fs_path)
    findings = list(DataFormatScanner().scan(art, ScanContext(dispatch=dispatch)))
    return findings, children


def malformed(data: bytes, kind: ArtifactKind, match: str | None = None) -> None:
    with pytest.raises(ArtifactError, match=match):
        scan(data, kind)


# --------------------------------------------------------------------------------------------
# SentencePiece


def test_sentencepiece_identified_and_clean() -> None:
    data = sentencepiece_model()
    assert kind_of(data, "tokenizer.model") is ArtifactKind.SENTENCEPIECE
    assert kind_of(data, "spiece.model") is ArtifactKind.SENTENCEPIECE
    assert scan(data, ArtifactKind.SENTENCEPIECE) == ([], [])


def test_sentencepiece_longer_than_the_sniff_window_is_identified_from_its_first_piece() -> None:
    data = sentencepiece_model(20_000)
    assert len(data) > 64 * 1024
    assert kind_of(data, "tokenizer.model") is ArtifactKind.SENTENCEPIECE
    assert scan(data, ArtifactKind.SENTENCEPIECE) == ([], [])


def test_onnx_and_tf_protobufs_are_not_sentencepiece() -> None:
    onnx_like = pb_int(1, 8) + pb_len(7, pb_len(1, b"node"))
    assert kind_of(onnx_like, "model.onnx") is None
    # A string first field without a float score is not a piece list.
    assert kind_of(pb_len(1, pb_len(1, b"name") + pb_len(2, b"x")), "x.model") is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (sentencepiece_model()[:-5], "past"),
        (sentencepiece_model() + pb_len(9, b"x"), "unexpected field 9"),
        (pb_len(1, pb_len(1, b"\xff\xfe") + pb_f32(2, 0.0)), "UTF-8"),
        (pb_len(1, pb_len(1, b"a") + pb_f32(2, 0.0) + pb_int(3, 42)), "type 42"),
        (pb_len(1, pb_len(1, b"a") + pb_int(2, 3)), "score"),
        (pb_len(2, pb_int(3, 1)), "no pieces"),
    ],
    ids=["truncated", "unknown-field", "bad-utf8", "bad-type", "int-score", "no-pieces"],
)
def test_sentencepiece_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.SENTENCEPIECE, match)


# --------------------------------------------------------------------------------------------
# xgboost


XGB_JSON = json.dumps(
    {"learner": {"attributes": {}, "gradient_booster": {"name": "gbtree"}}, "version": [3, 2, 0]}
).encode()


def ubj_key(key: str) -> bytes:
    return b"L" + struct.pack(">q", len(key)) + key.encode()


def xgb_ubj() -> bytes:
    floats = b"[$d#L" + struct.pack(">q", 3) + struct.pack(">3f", 0.5, 1.0, -2.0)
    learner = b"{" + ubj_key("name") + b"SU\x06gbtree" + ubj_key("w") + floats + b"}"
    version = b"[#U\x03" + b"U\x03U\x02U\x00"
    return b"{" + ubj_key("learner") + learner + ubj_key("version") + version + b"}"


def test_xgboost_json_and_ubj_identified_and_clean() -> None:
    assert kind_of(XGB_JSON, "model.json") is ArtifactKind.XGBOOST
    assert kind_of(xgb_ubj(), "model.ubj") is ArtifactKind.XGBOOST
    assert scan(XGB_JSON, ArtifactKind.XGBOOST) == ([], [])
    assert scan(xgb_ubj(), ArtifactKind.XGBOOST) == ([], [])


def test_ordinary_json_is_not_xgboost() -> None:
    assert kind_of(b'{"architectures": ["LlamaForCausalLM"]}', "config.json") is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (XGB_JSON[:-3], "does not parse"),
        (b'{"learner": 1, "version": [1]}', "learner"),
        (xgb_ubj()[:-4], "past the end"),
        (xgb_ubj() + b"junk", "after the model"),
        (xgb_ubj().replace(b"SU\x06gbtree", b"X"), "marker"),
    ],
    ids=["json-truncated", "json-no-learner", "ubj-truncated", "ubj-trailing", "ubj-bad-marker"],
)
def test_xgboost_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.XGBOOST, match)


def test_ubjson_nesting_bomb_is_a_limit() -> None:
    data = b"{" + ubj_key("learner") + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(LimitExceeded):
        scan(data, ArtifactKind.XGBOOST)


# --------------------------------------------------------------------------------------------
# catboost


def catboost_model(core_extra: int = 0) -> bytes:
    # flatbuffer: root uoffset 12 -> table at 12 with soffset 8 -> vtable at 4 (size 4+2, obj 8)
    fb = struct.pack("<I", 12) + struct.pack("<HHH", 6, 8, 4) + b"\x00\x00"
    fb += struct.pack("<i", 8) + struct.pack("<I", 7) + b"\x00" * core_extra
    return b"CBM1" + struct.pack("<I", len(fb)) + fb


def test_catboost_identified_and_clean() -> None:
    assert kind_of(catboost_model(), "model.cbm") is ArtifactKind.CATBOOST
    assert scan(catboost_model(), ArtifactKind.CATBOOST) == ([], [])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (catboost_model()[:-2], "past the end"),
        (b"CBM1" + struct.pack("<I", 12) + struct.pack("<I", 400) + b"\x00" * 8, "root offset"),
        (b"CBM1" + struct.pack("<I", 12) + struct.pack("<Ii", 4, -100) + b"\x00" * 4, "vtable"),
        (b"CBM1\x01", "truncated"),
    ],
    ids=["core-past-end", "root-outside", "vtable-outside", "short"],
)
def test_catboost_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.CATBOOST, match)


# --------------------------------------------------------------------------------------------
# msgpack (spaCy, Flax)


SPACY_TOKENIZER = mp(
    {
        "prefix_search": "^\\$|^\\(",
        "suffix_search": "\\)$",
        "infix_finditer": "[-~]",
        "token_match": None,
        "url_match": "^https?://",
        "exceptions": {":)": [{"65": ":)"}]},
        "faster_heuristics": True,
    }
)


def thinc_model(arrays: list[dict[str, Any]]) -> bytes:
    nodes = [{"index": 0, "name": "linear", "dims": {"nO": 2, "nI": 4}, "refs": {}}]
    return mp({"nodes": nodes, "attrs": [{}], "params": [arrays], "shims": [[]]})


def nd(data: bytes, dtype: str = "<f4", kind: bytes = b"") -> dict[str, Any]:
    return {"nd": True, "type": dtype, "kind": kind, "shape": [len(data) // 4], "data": data}


def test_spacy_msgpack_files_identified_by_name_and_structure() -> None:
    assert kind_of(SPACY_TOKENIZER, "tokenizer") is ArtifactKind.MSGPACK
    weights = thinc_model([nd(struct.pack("<8f", *range(8)))])
    assert kind_of(weights, "model") is ArtifactKind.MSGPACK
    assert kind_of(b"\x80", "lookups.bin") is ArtifactKind.MSGPACK
    # A whole small file that is one string-keyed map needs no name hint.
    assert kind_of(SPACY_TOKENIZER, "whatever") is ArtifactKind.MSGPACK
    assert kind_of(mp({"params": b"\x00" * 16}), "flax_model.msgpack") is (
        ArtifactKind.FLAX_MSGPACK
    )
    for data in (SPACY_TOKENIZER, weights, b"\x80"):
        assert scan(data, ArtifactKind.MSGPACK) == ([], [])


def test_random_bytes_starting_like_a_map_are_not_msgpack() -> None:
    data = bytes([0x85]) + bytes(range(200, 256)) * 3
    assert kind_of(data, "blob") is None
    assert kind_of(data, "tokenizer") is None


def test_large_msgpack_is_walked_past_the_sniff_window() -> None:
    big = thinc_model([nd(b"\x01\x02\x03\x04" * 100_000)])
    assert kind_of(big, "model") is ArtifactKind.MSGPACK
    assert scan(big, ArtifactKind.MSGPACK) == ([], [])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (SPACY_TOKENIZER[:-3], "past the end|truncated"),
        (SPACY_TOKENIZER + b"\x00", "after the top-level value"),
        (b"\x81\xa1a\xc1", "invalid type byte"),
        (b"\x81\xa1a\xa2\xff\xfe", "not UTF-8"),
        (b"\xdf\xff\xff\xff\xff", "truncated"),
    ],
    ids=["truncated", "trailing", "reserved-byte", "bad-utf8", "huge-count"],
)
def test_msgpack_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.MSGPACK, match)


def test_msgpack_nesting_bomb_is_a_limit() -> None:
    with pytest.raises(LimitExceeded):
        scan(b"\x91" * 10_000 + b"\xc0", ArtifactKind.MSGPACK)


@pytest.mark.parametrize("size", [10, 5000], ids=["short-bin", "long-bin"])
def test_msgpack_numpy_object_array_is_handed_to_the_pickle_scanner(size: int) -> None:
    # msgpack_numpy (srsly, thinc) decodes '|O' arrays with pickle.loads: a code path.
    payload = pickle.dumps(["x" * size], protocol=2)
    data = thinc_model([nd(struct.pack("<2f", 1, 2)), nd(payload, dtype="|O")])
    findings, children = scan(data, ArtifactKind.MSGPACK, "ner/model")
    assert [f.rule for f in findings] == [FMT003.id]
    assert len(children) == 1
    assert children[0].kind is ArtifactKind.PICKLE
    assert children[0].stream.read() == payload


def test_msgpack_bin_that_starts_like_a_pickle_is_dispatched() -> None:
    payload = pickle.dumps({"a": 1}, protocol=4)
    data = mp({"blob": payload, "other": b"\x00" * 300})
    findings, children = scan(data, ArtifactKind.MSGPACK)
    assert findings == []
    assert [c.stream.read() for c in children] == [payload]


def test_msgpack_ext_types_are_opaque() -> None:
    # Flax ndarray ext (code 1) and a timestamp (-1): skipped, never interpreted.
    data = b"\x82\xa1a\xc7\x03\x01abc\xa1t\xd6\xff\x00\x00\x00\x01"
    assert scan(data, ArtifactKind.FLAX_MSGPACK) == ([], [])


# --------------------------------------------------------------------------------------------
# word2vec / fastText


def w2v_binary(words: list[str], dim: int, newline: bool = False) -> bytes:
    out = f"{len(words)} {dim}\n".encode()
    for i, w in enumerate(words):
        out += w.encode() + b" " + struct.pack(f"<{dim}f", *[i / 10] * dim)
        if newline:
            out += b"\n"
    return out


def w2v_text(words: list[str], dim: int) -> bytes:
    lines = [f"{len(words)} {dim}"]
    lines += [w + " " + " ".join(f"{i / 7:.5f}" for _ in range(dim)) for i, w in enumerate(words)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("newline", [False, True], ids=["gensim", "word2vec-c"])
def test_word2vec_binary_identified_and_clean(newline: bool) -> None:
    data = w2v_binary(["the", "cat", "sat"], 5, newline)
    assert kind_of(data, "vectors.bin") is ArtifactKind.WORD2VEC
    assert scan(data, ArtifactKind.WORD2VEC) == ([], [])


def test_word2vec_text_identified_and_clean() -> None:
    data = w2v_text(["the", "cat", "sat"], 4)
    assert kind_of(data, "vectors.txt") is ArtifactKind.WORD2VEC
    assert scan(data, ArtifactKind.WORD2VEC) == ([], [])


def test_text_starting_with_two_numbers_is_not_word2vec() -> None:
    assert kind_of(b"3 4\nhello world this is prose, not vectors at all\n", "notes.txt") is None
    assert kind_of(b"2 3\n" + b"abcdefghijklmnopqrstuvwxyz" * 10, "data.bin") is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (w2v_binary(["a", "b"], 4)[:-3], "truncated"),
        (w2v_binary(["a", "b"], 4) + b"PAYLOAD", "after the last"),
        (w2v_text(["a", "b"], 3).replace(b"b 0.14286", b"b"), "values"),
        (w2v_text(["a", "b"], 3) + b"c 1 2 3\n", "2 words, file has 3"),
    ],
    ids=["bin-truncated", "bin-trailing", "text-short-row", "text-count"],
)
def test_word2vec_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.WORD2VEC, match)


def fasttext_model(words: list[str], dim: int = 3, loss: int = 2, tail: bytes = b"") -> bytes:
    args = struct.pack("<12id", dim, 5, 1, 1, 5, 1, loss, 1, 0, 3, 6, 100, 1e-4)
    out = struct.pack("<ii", 793712314, 12) + args
    out += struct.pack("<iii", len(words), len(words), 0) + struct.pack("<qq", 10, -1)
    for w in words:
        out += w.encode() + b"\x00" + struct.pack("<qb", 2, 0)
    m = len(words)
    out += b"\x00" + struct.pack("<qq", m, dim) + b"\x00" * (m * dim * 4)
    out += b"\x00" + struct.pack("<qq", m, dim) + b"\x00" * (m * dim * 4)
    return out + tail


def test_fasttext_identified_and_clean() -> None:
    data = fasttext_model(["a", "bb", "ccc"])
    assert kind_of(data, "cc.en.300.bin") is ArtifactKind.FASTTEXT
    assert scan(data, ArtifactKind.FASTTEXT) == ([], [])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (fasttext_model(["a"], loss=9), "implausible"),
        (fasttext_model(["a", "b"])[:-4], "past the end|truncated"),
        (fasttext_model(["a"], tail=b"\x80\x04junk"), "after the model"),
    ],
    ids=["bad-args", "truncated-matrix", "trailing"],
)
def test_fasttext_malformed_is_gen001(data: bytes, match: str) -> None:
    malformed(data, ArtifactKind.FASTTEXT, match)


# --------------------------------------------------------------------------------------------
# Hugging Face datasets metadata


STATE = {
    "_data_files": [{"filename": "data-00000-of-00001.arrow"}],
    "_fingerprint": "0123456789abcdef",
    "_format_columns": None,
    "_format_kwargs": {},
    "_format_type": None,
    "_output_all_columns": False,
    "_split": None,
}
INFO = {
    "citation": "",
    "description": "",
    "features": {"text": {"dtype": "string", "_type": "Value"}},
}


def test_dataset_metadata_identified_by_name_and_keys() -> None:
    state = json.dumps(STATE).encode()
    info = json.dumps(INFO).encode()
    assert kind_of(state, "state.json") is ArtifactKind.HF_DATASET_META
    assert kind_of(info, "dataset_info.json") is ArtifactKind.HF_DATASET_META
    assert kind_of(b'{"splits": ["train"]}', "dataset_dict.json") is ArtifactKind.HF_DATASET_META
    assert kind_of(state, "other.json") is None
    assert scan(state, ArtifactKind.HF_DATASET_META, "state.json") == ([], [])
    assert scan(info, ArtifactKind.HF_DATASET_META, "dataset_info.json") == ([], [])


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("state.json", {**STATE, "_data_files": [{"filename": "../../etc/passwd"}]}),
        ("state.json", {**STATE, "_data_files": [{"filename": "/root/.ssh/id_rsa"}]}),
        ("dataset_dict.json", {"splits": ["train", "../outside"]}),
    ],
    ids=["dotdot", "absolute", "split-traversal"],
)
def test_dataset_metadata_pointing_outside_is_high(name: str, doc: dict[str, Any]) -> None:
    findings, _ = scan(json.dumps(doc).encode(), ArtifactKind.HF_DATASET_META, name)
    assert [(f.rule, f.severity) for f in findings] == [(FMT006.id, Severity.HIGH)]


def test_dataset_metadata_malformed_is_gen001() -> None:
    malformed(b'{"_data_files": [', ArtifactKind.HF_DATASET_META, "not JSON")
    malformed(b'{"_data_files": [{"x": 1}]}', ArtifactKind.HF_DATASET_META, "filename")


# --------------------------------------------------------------------------------------------
# raw arrays (old joblib ZF side files)


RAW = struct.pack("<16d", *range(16))


def test_joblib_side_array_member_is_numpy_raw() -> None:
    # The archive scanner unwraps "model.pkl_01.npy.z" into a member named "model.pkl_01.npy".
    assert kind_of(RAW, "model.pkl_01.npy") is ArtifactKind.NUMPY_RAW
    assert kind_of(RAW, "model.pkl_01.npy.z") is ArtifactKind.NUMPY_RAW
    assert scan(RAW, ArtifactKind.NUMPY_RAW) == ([], [])


def test_headerless_npy_on_disk_stays_a_broken_npy(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl_01.npy"
    path.write_bytes(RAW)
    with path.open("rb") as fh:
        assert identify(fh, RAW, len(RAW), path.name) is None
    assert kind_of(RAW, "weights.npy") is None  # not joblib's naming: the numpy scanner decides


def test_protocol0_pickle_is_never_taken_for_raw_data() -> None:
    payload = b"cposix\nsystem\n(S'echo supplychain-sample'\ntR."
    assert kind_of(payload, "model.pkl_01.npy") is None
    assert kind_of(payload, "model.onnx_data") is None


# --------------------------------------------------------------------------------------------
# ONNX external data


def _onnx_with_external(directory: Path, location: str) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        [weight],
    )
    model = helper.make_model(graph)
    path = directory / "model.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return path


@pytest.mark.parametrize("location", ["model.onnx.data", "model.onnx_data", "weights.pb"])
def test_onnx_external_data_is_attributed_to_its_model(tmp_path: Path, location: str) -> None:
    _onnx_with_external(tmp_path, location)
    data_path = tmp_path / location
    data = data_path.read_bytes()
    with data_path.open("rb") as fh:
        assert identify(fh, data[:65536], len(data), location.lower()) is (
            ArtifactKind.ONNX_EXTERNAL_DATA
        )
    findings, _ = scan(data, ArtifactKind.ONNX_EXTERNAL_DATA, location, fs_path=data_path)
    assert [(f.rule, f.severity) for f in findings] == [(FMT002.id, Severity.INFO)]
    assert "model.onnx" in findings[0].message


def test_unreferenced_onnx_external_data_is_reported(tmp_path: Path) -> None:
    _onnx_with_external(tmp_path, "model.onnx.data")
    stray = tmp_path / "other.onnx_data"
    stray.write_bytes(b"\x00" * 64)
    findings, _ = scan(stray.read_bytes(), ArtifactKind.ONNX_EXTERNAL_DATA, fs_path=stray)
    assert [(f.rule, f.severity) for f in findings] == [(FMT001.id, Severity.MEDIUM)]
    assert "not referenced" in findings[0].message
    # An unnamed file nobody references stays unidentified.
    loose = tmp_path / "blob.pb"
    loose.write_bytes(b"\x00" * 64)
    with loose.open("rb") as fh:
        assert identify(fh, b"\x00" * 64, 64, "blob.pb") is None


# --------------------------------------------------------------------------------------------
# torch.export (.pt2)


def pt2_archive(targets: list[str], weight: bytes = b"\x00" * 32, extra: bool = True) -> bytes:
    nodes = [{"target": t, "inputs": [], "outputs": [], "metadata": {}} for t in targets]
    graph = {"graph_module": {"graph": {"nodes": nodes, "inputs": [], "outputs": []}}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/archive_format", "pt2")
        zf.writestr("m/models/model.json", json.dumps(graph))
        zf.writestr("m/data/weights/weight_0", weight)
        zf.writestr("m/data/weights/model_weights_config.json", '{"config": {}}')
        if extra:
            zf.writestr("m/data/sample_inputs/model.pt", b"PK\x03\x04fake torch zip")
    return buf.getvalue()


def test_torch_export_benign_graph_and_members() -> None:
    targets = ["torch.ops.aten.linear.default", "_operator.getitem", "torch.sym_max", "math.ceil"]
    findings, children = scan(pt2_archive(targets), ArtifactKind.TORCH_EXPORT, "m.pt2")
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []
    names = {c.member[-1] for c in children}
    # Code-capable members reach the engine; raw tensor bytes are not unpickled by torch.
    assert "m/data/sample_inputs/model.pt" in names
    assert "m/data/weights/weight_0" not in names
    assert "m/models/model.json" not in names  # checked here


def test_torch_export_pickled_weight_is_dispatched() -> None:
    weight = pickle.dumps({"t": 1}, protocol=2)
    _, children = scan(pt2_archive([], weight=weight), ArtifactKind.TORCH_EXPORT)
    assert "m/data/weights/weight_0" in {c.member[-1] for c in children}


@pytest.mark.parametrize(
    "target", ["torch.os.system", "torch.hub.load", "_operator.attrgetter", "torch.ops.aten..x"]
)
def test_torch_export_target_outside_operators_is_high(target: str) -> None:
    findings, _ = scan(pt2_archive([target]), ArtifactKind.TORCH_EXPORT)
    assert [f.rule for f in findings] == [FMT004.id]
    assert findings[0].severity is Severity.HIGH


def test_torch_export_custom_operator_namespace_is_medium() -> None:
    findings, _ = scan(pt2_archive(["torch.ops.mylib.fused.default"]), ArtifactKind.TORCH_EXPORT)
    assert [(f.rule, f.severity) for f in findings] == [(FMT005.id, Severity.MEDIUM)]


# --------------------------------------------------------------------------------------------
# TFLite


def tflite_model(customs: tuple[str, ...] = (), subgraphs: bool = True) -> bytes:
    """A minimal TFL3 flatbuffer: Model{operator_codes=[OperatorCode{custom_code}], subgraphs}."""
    buf = bytearray(struct.pack("<I", 0) + b"TFL3")

    def pad() -> None:
        while len(buf) % 4:
            buf.append(0)

    # Model vtable: fields 0 (absent), 1 operator_codes @4, 2 subgraphs @8.
    vt = len(buf)
    buf += struct.pack("<HHHHH", 10, 12, 0, 4, 8 if subgraphs else 0)
    pad()
    model = len(buf)
    struct.pack_into("<I", buf, 0, model)
    buf += struct.pack("<iII", model - vt, 0, 0)
    vec = len(buf)
    struct.pack_into("<I", buf, model + 4, vec - (model + 4))
    buf += struct.pack("<I", len(customs)) + b"\x00" * 4 * len(customs)
    for i, name in enumerate(customs):
        ovt = len(buf)
        buf += struct.pack("<HHHH", 8, 8, 0, 4)
        table = len(buf)
        slot = vec + 4 + 4 * i
        struct.pack_into("<I", buf, slot, table - slot)
        buf += struct.pack("<iI", table - ovt, 0)
        string = len(buf)
        struct.pack_into("<I", buf, table + 4, string - (table + 4))
        buf += struct.pack("<I", len(name)) + name.encode() + b"\x00"
        pad()
    subs = len(buf)
    struct.pack_into("<I", buf, model + 8, subs - (model + 8))
    buf += struct.pack("<I", 0)
    return bytes(buf)


def test_tflite_structure() -> None:
    assert scan(tflite_model(), ArtifactKind.TFLITE) == ([], [])
    malformed(struct.pack("<I", 4000) + b"TFL3" + b"\x00" * 8, ArtifactKind.TFLITE, "outside")
    malformed(tflite_model()[:30], ArtifactKind.TFLITE)
    malformed(tflite_model(subgraphs=False), ArtifactKind.TFLITE, "no subgraphs")


def test_tflite_custom_and_flex_ops() -> None:
    findings, _ = scan(tflite_model(("TFLite_Detection_PostProcess",)), ArtifactKind.TFLITE)
    assert [(f.rule, f.severity) for f in findings] == [(FMT009.id, Severity.LOW)]
    findings, _ = scan(tflite_model(("FlexAdd", "FlexWriteFile")), ArtifactKind.TFLITE)
    assert [(f.rule, f.severity) for f in findings] == [(FMT009.id, Severity.HIGH)]
    assert "FlexWriteFile" in findings[0].message


def test_tflite_opcode_count_bomb_is_a_limit() -> None:
    data = bytearray(tflite_model(("A",)))
    (model,) = struct.unpack_from("<I", data, 0)
    vec = model + 4 + struct.unpack_from("<I", data, model + 4)[0]
    struct.pack_into("<I", data, vec, 10**9)
    with pytest.raises(LimitExceeded):
        scan(bytes(data), ArtifactKind.TFLITE)


# --------------------------------------------------------------------------------------------
# regressions found while building the zoo


def test_sentencepiece_piece_without_score_needs_a_sentencepiece_name() -> None:
    data = pb_len(1, pb_len(1, b"<unk>") + pb_int(3, 2)) + pb_len(1, pb_len(1, b"a"))
    assert kind_of(data, "tokenizer.model") is ArtifactKind.SENTENCEPIECE
    assert kind_of(data, "blob.bin") is None
    assert scan(data, ArtifactKind.SENTENCEPIECE) == ([], [])


def test_sentencepiece_long_piece_cut_inside_a_character_is_not_malformed() -> None:
    piece = "a" + "é" * 3000  # 6001 bytes: the 4096-byte read ends in the middle of "é"
    data = sentencepiece_model() + sp_piece(piece, -1.0)
    assert scan(data, ArtifactKind.SENTENCEPIECE) == ([], [])


def test_msgpack_bin_holding_a_torch_zip_is_dispatched_for_sniffing() -> None:
    # thinc's PyTorchShim stores torch.save() bytes in the msgpack and torch.loads them back.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
    torch_zip = buf.getvalue()
    data = mp({"config": {"cls": "PyTorchShim"}, "state": torch_zip})
    findings, children = scan(data, ArtifactKind.MSGPACK, "transformer/model")
    assert findings == []
    assert [(c.kind, c.stream.read()) for c in children] == [(ArtifactKind.UNKNOWN, torch_zip)]


def test_more_spacy_msgpack_names() -> None:
    for name in ("patterns", "trees"):
        assert kind_of(mp({"a": [1, 2]}) + b"", name) is ArtifactKind.MSGPACK


def test_torch_export_with_native_library_is_high() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/archive_format", "pt2")
        zf.writestr("m/data/aotinductor/model/model.so", b"\x7fELF\x02\x01\x01" + b"\x00" * 64)
    findings, children = scan(buf.getvalue(), ArtifactKind.TORCH_EXPORT)
    assert [(f.rule, f.severity) for f in findings] == [(FMT007.id, Severity.HIGH)]
    assert "m/data/aotinductor/model/model.so" in {c.member[-1] for c in children}


def test_raw_kinds_are_not_refused_over_the_read_cap(tmp_path: Path) -> None:
    from supplychain.core.limits import Limits

    art = Artifact(path="x_01.npy", kind=ArtifactKind.NUMPY_RAW, size=10**6, stream=io.BytesIO())
    ctx = ScanContext(limits=Limits(max_read_bytes=1000))
    assert list(DataFormatScanner().scan(art, ctx)) == []
    big = Artifact(path="t", kind=ArtifactKind.XGBOOST, size=10**6, stream=io.BytesIO())
    with pytest.raises(LimitExceeded):
        list(DataFormatScanner().scan(big, ctx))


def test_word_longer_than_the_cap_is_malformed() -> None:
    from scanners.dataformats import MAX_WORD

    data = b"1 1\n" + b"w" * (MAX_WORD + 10) + b" " + struct.pack("<f", 0.5)
    malformed(data, ArtifactKind.WORD2VEC, "longer than")


def test_onnx_siblings_are_listed_once_per_directory(tmp_path: Path) -> None:
    from scanners.dataformats import _onnx_siblings, referencing_models

    _onnx_with_external(tmp_path, "model.onnx.data")
    files = [tmp_path / f"readme{i}.txt" for i in range(40)]
    for f in files:
        f.write_text("text")
    before = _onnx_siblings.cache_info().misses
    assert [referencing_models(f) for f in files] == [()] * 40
    # Once per directory searched (the file's and two above), not once per file.
    assert _onnx_siblings.cache_info().misses - before <= 3


# --------------------------------------------------------------------------------------------
# end to end: identified by the engine, malformed content fails the gate


def _gate(directory: Path) -> tuple[bool, list[str]]:
    from supplychain.engine import ScanOptions, scan_paths
    from supplychain.policy import Policy, apply

    report = apply(scan_paths([directory], ScanOptions(jobs=1)), Policy())
    assert report.verdict is not None
    return report.verdict.passed, sorted({f.rule for f in report.findings})


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("tokenizer.model", sentencepiece_model()[:-7]),
        ("model", thinc_model([nd(b"\x00" * 400)])[:-50]),
        ("model.ubj", xgb_ubj()[:-4]),
        ("model.cbm", catboost_model()[:-3]),
        ("vectors.bin", w2v_binary(["a", "b", "c"], 8)[:-5]),
        ("wiki.bin", fasttext_model(["a", "b"])[:-4]),
    ],
    ids=["sentencepiece", "spacy-model", "xgboost-ubj", "catboost", "word2vec", "fasttext"],
)
def test_truncated_data_format_fails_the_gate(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    passed, rules = _gate(tmp_path)
    assert not passed
    assert "GEN001" in rules


def test_pt2_with_os_system_target_fails_the_gate(tmp_path: Path) -> None:
    (tmp_path / "model.pt2").write_bytes(pt2_archive(["torch.os.system"], extra=False))
    passed, rules = _gate(tmp_path)
    assert not passed
    assert FMT004.id in rules


def test_onnx_naming_a_python_file_as_external_data_does_not_hide_it(tmp_path: Path) -> None:
    # A planted .onnx that lists modeling.py / config.json as "external data" must not take
    # those files away from the code and config scanners.
    for location in ("modeling_evil.py", "notes"):
        (tmp_path / location).write_text("import os\nos.system('echo supplychain-sample')\n")
        _onnx_with_external(tmp_path, location)
        path = tmp_path / location
        with path.open("rb") as fh:
            head = path.read_bytes()
            assert identify(fh, head, len(head), location) is None


def test_whitespace_table_named_csv_is_not_word2vec() -> None:
    data = w2v_text(["a", "b", "c"], 3)
    assert kind_of(data, "table.csv") is None
    assert kind_of(data, "table.tsv") is None
    assert kind_of(data, "vectors.vec") is ArtifactKind.WORD2VEC


def test_weak_structures_never_claim_another_scanners_file_name() -> None:
    tokenizer = SPACY_TOKENIZER
    assert kind_of(tokenizer, "config.json") is None
    assert kind_of(sentencepiece_model(), "modeling.py") is None
    assert kind_of(RAW, "weights_01.npy.json") is None


# --------------------------------------------------------------------------------------------
# Core ML


def coreml_model(body: bytes, version: int = 4) -> bytes:
    return pb_int(1, version) + pb_len(2, pb_len(1, b"input")) + body


def nn_layer(name: str, custom: str | None = None) -> bytes:
    layer = pb_len(1, name.encode())
    if custom is not None:
        layer += pb_len(500, pb_len(10, custom.encode()))
    else:
        layer += pb_len(140, b"")  # an ordinary layer type
    return pb_len(1, layer)


def test_coreml_neural_network_is_clean() -> None:
    data = coreml_model(pb_len(500, nn_layer("dense") + nn_layer("relu")))
    assert scan(data, ArtifactKind.COREML) == ([], [])


def test_coreml_custom_layer_and_custom_model_are_reported() -> None:
    layer = coreml_model(pb_len(500, nn_layer("x", custom="MyNativeLayer")))
    findings, _ = scan(layer, ArtifactKind.COREML)
    assert [(f.rule, f.severity) for f in findings] == [(FMT008.id, Severity.MEDIUM)]
    assert "MyNativeLayer" in findings[0].message
    inner = coreml_model(pb_len(555, pb_len(10, b"EvilModel")))
    pipeline = coreml_model(pb_len(200, pb_len(1, pb_len(1, inner))))
    findings, _ = scan(pipeline, ArtifactKind.COREML)
    assert "EvilModel" in findings[0].message


@pytest.mark.parametrize(
    "data",
    [
        pb_len(2, b"") + pb_len(500, b""),
        pb_int(1, 4) + pb_len(2, b""),
        coreml_model(pb_len(500, nn_layer("a")))[:-2],
    ],
    ids=["no-version", "no-type", "truncated"],
)
def test_coreml_malformed_is_gen001(data: bytes) -> None:
    malformed(data, ArtifactKind.COREML)


def test_torch_export_pre_2_6_graph_is_checked() -> None:
    graph = {"graph_module": {"graph": {"nodes": [{"target": "torch.os.system", "inputs": []}]}}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("serialized_exported_program.json", json.dumps(graph))
        zf.writestr("version", "1")
    findings, _ = scan(buf.getvalue(), ArtifactKind.TORCH_EXPORT)
    assert [f.rule for f in findings] == [FMT004.id]


def test_onnx_external_data_in_a_subdirectory_is_attributed(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    _onnx_with_external(tmp_path, "weights/W.bin")
    data_path = tmp_path / "weights" / "W.bin"
    data = data_path.read_bytes()
    art = Artifact(
        path="weights/W.bin",
        kind=ArtifactKind.ONNX_EXTERNAL_DATA,
        size=len(data),
        stream=io.BytesIO(data),
        fs_path=data_path,
        root=tmp_path,
    )
    findings = list(DataFormatScanner().scan(art, ScanContext()))
    assert [f.rule for f in findings] == [FMT002.id]
    assert "../model.onnx" in findings[0].message
    # Without a root nothing above the file's own directory is read.
    outside = list(DataFormatScanner().scan(replace(art, root=None), ScanContext()))
    assert [f.rule for f in outside] == [FMT001.id]


def xgb_legacy(binf: bool = True, objective: bytes = b"binary:logistic") -> bytes:
    params = struct.pack("<fIi", 0.5, 4, 0) + b"\x00" * (136 - 12)
    names = struct.pack("<Q", len(objective)) + objective + struct.pack("<Q", 6) + b"gbtree"
    trees = struct.pack("<4i", 3, 0, 0, 0) + b"\x00" * 64
    return (b"binf" if binf else b"") + params + names + trees


@pytest.mark.parametrize("binf", [True, False], ids=["binf", "no-magic"])
def test_xgboost_legacy_binary_identified_by_its_names(binf: bool) -> None:
    data = xgb_legacy(binf)
    assert kind_of(data, "xgb.model") is ArtifactKind.XGBOOST
    assert kind_of(data, "anything") is ArtifactKind.XGBOOST
    assert scan(data, ArtifactKind.XGBOOST) == ([], [])
    assert kind_of(xgb_legacy(binf, objective=b"os.system"), "xgb.model") is None


def test_xgboost_legacy_binary_malformed() -> None:
    data = xgb_legacy()
    malformed(data[: 4 + 136 + 8 + 15 + 8 + 6], ArtifactKind.XGBOOST, "ends after its header")
    malformed(b"binf" + b"\x00" * 200, ArtifactKind.XGBOOST, "names do not parse")


def fasttext_old(words: list[str], dim: int = 3) -> bytes:
    """fastText before the magic number: args at byte 0, no prune index, no quant flags."""
    out = struct.pack("<12id", dim, 5, 5, 5, 5, 1, 2, 2, 1000, 3, 6, 10000, 1e-4)
    out += struct.pack("<iiiq", len(words), len(words), 0, 10)
    for w in words:
        out += w.encode() + b"\x00" + struct.pack("<qb", 2, 0)
    m = len(words)
    out += struct.pack("<qq", m, dim) + b"\x00" * (m * dim * 4)
    return out + struct.pack("<qq", m, dim) + b"\x00" * (m * dim * 4)


def test_fasttext_before_the_magic_number() -> None:
    data = fasttext_old(["a", "bb"])
    assert kind_of(data, "lee_fasttext.bin") is ArtifactKind.FASTTEXT
    assert kind_of(data, "lee_fasttext.dat") is None  # weak structure: only under its names
    assert scan(data, ArtifactKind.FASTTEXT) == ([], [])
    malformed(data[:-4], ArtifactKind.FASTTEXT)
    assert kind_of(struct.pack("<13i", *range(13)) + b"\x00" * 80, "x.bin") is None


def test_msgpack_map_with_an_at_data_key_cannot_confuse_the_object_array_check() -> None:
    payload = pickle.dumps(["x"], protocol=2)
    data = mp({"nd": True, "type": "|O", "data": payload, "@data": b"spoof"})
    findings, children = scan(data, ArtifactKind.MSGPACK)
    assert [f.rule for f in findings] == [FMT003.id]
    assert [c.stream.read() for c in children] == [payload]
