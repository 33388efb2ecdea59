"""A benign zoo: real artifacts written at test time by the libraries' own save functions.

A gate that cries wolf on ordinary models gets switched off (issue #10). Each layout here is
built with small random weights by what the default test extras install (numpy, scikit-learn,
joblib, onnx, safetensors, h5py, gguf, pyarrow), or byte for byte where the library is a
framework (SentencePiece, spaCy msgpack, word2vec/fastText: the real-library versions are in
``test_zoo_frameworks.py``). Every layout must pass the default gate with no finding at MEDIUM
or above, and pass ``--strict`` (nothing skipped except plain text).
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from supplychain.core.model import ArtifactKind, Report, Severity, Status
from supplychain.engine import ScanOptions, scan_paths
from supplychain.policy import Policy, apply
from tests.scanners.test_dataformats import (
    fasttext_model,
    mp,
    nd,
    sentencepiece_model,
    thinc_model,
    w2v_binary,
    w2v_text,
)

RNG = np.random.default_rng(0)


def describe(report: Report) -> str:
    lines = [
        f"{f.severity.label} {f.rule} {f.location.describe()}: {f.message}" for f in report.findings
    ]
    lines += [
        f"{r.status.value} {r.scanner} {r.path}!{'!'.join(r.member)}: {r.reason}"
        for r in report.results
        if r.status is not Status.SCANNED and not r.expected
    ]
    lines += [f"kind {f.path}!{'!'.join(f.member)} = {f.kind.value}" for f in report.files]
    return "\n".join(lines)


def assert_benign(directory: Path) -> Report:
    """Default gate passes, nothing at MEDIUM or above, and ``--strict`` passes too."""
    report = scan_paths([directory], ScanOptions(jobs=1))
    loud = [f for f in report.findings if f.severity >= Severity.MEDIUM]
    assert loud == [], describe(report)
    default = apply(report, Policy())
    assert default.verdict is not None and default.verdict.passed, describe(report)
    strict = apply(report, Policy(strict=True))
    assert strict.verdict is not None and strict.verdict.passed, (
        f"{strict.verdict.reasons if strict.verdict else ''}\n{describe(report)}"
    )
    return report


def kinds(report: Report) -> dict[str, ArtifactKind]:
    return {"!".join((f.path, *f.member)): f.kind for f in report.files}


# --------------------------------------------------------------------------------------------
# numpy


def build_numpy(d: Path) -> None:
    np.save(d / "f32.npy", RNG.standard_normal((4, 5)).astype(np.float32))
    np.save(d / "i64.npy", np.arange(10))
    np.save(d / "fortran.npy", np.asfortranarray(RNG.standard_normal((3, 3))))
    np.save(d / "scalar.npy", np.float64(3.5))
    np.save(d / "empty.npy", np.zeros((0, 3)))
    np.save(d / "structured.npy", np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]))
    np.save(d / "unicode.npy", np.array(["ab", "cde"]))
    np.savez(d / "plain.npz", a=np.arange(3), b=np.ones((2, 2)))
    np.savez_compressed(d / "compressed.npz", a=np.arange(1000), b=np.zeros((100, 100)))


# --------------------------------------------------------------------------------------------
# scikit-learn via joblib and pickle


def _estimators() -> list[object]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = RNG.standard_normal((40, 4))
    y = (x[:, 0] > 0).astype(int)
    return [
        LogisticRegression().fit(x, y),
        make_pipeline(
            StandardScaler(), RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0)
        ).fit(x, y),
    ]


JOBLIB_COMPRESS: list[object] = [
    0,
    3,
    ("zlib", 3),
    ("gzip", 3),
    ("bz2", 3),
    ("xz", 3),
    ("lzma", 3),
    ("lz4", 3),
]


@pytest.mark.parametrize("compress", JOBLIB_COMPRESS, ids=str)
def test_sklearn_joblib_every_compressor(tmp_path: Path, compress: object) -> None:
    import joblib

    for i, est in enumerate(_estimators()):
        joblib.dump(est, tmp_path / f"model{i}.joblib", compress=compress)
    assert_benign(tmp_path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_sklearn_pickle_every_protocol(tmp_path: Path, protocol: int) -> None:
    for i, est in enumerate(_estimators()):
        (tmp_path / f"model{i}.pkl").write_bytes(pickle.dumps(est, protocol=protocol))
    assert_benign(tmp_path)


# --------------------------------------------------------------------------------------------
# ONNX


def _onnx_model(n: int = 3) -> object:
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32), f"W{i}")
        for i in range(n)
    ]
    nodes = [
        helper.make_node("MatMul", ["X" if i == 0 else f"H{i - 1}", f"W{i}"], [f"H{i}"])
        for i in range(n)
    ]
    nodes.append(helper.make_node("Relu", [f"H{n - 1}"], ["Y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build_onnx_inline(d: Path) -> None:
    import onnx

    onnx.save_model(_onnx_model(), str(d / "model.onnx"))


def build_onnx_external_one_file(d: Path) -> None:
    import onnx

    onnx.save_model(
        _onnx_model(),
        str(d / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,
    )


def build_onnx_external_dynamo_name(d: Path) -> None:
    import onnx

    onnx.save_model(
        _onnx_model(),
        str(d / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )


def build_onnx_external_per_tensor(d: Path) -> None:
    import onnx

    # One file per tensor, named after the tensor (older exporters; optimum's weights.pb style).
    onnx.save_model(
        _onnx_model(),
        str(d / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )


def test_onnx_external_data_files_are_attributed(tmp_path: Path) -> None:
    build_onnx_external_per_tensor(tmp_path)
    report = assert_benign(tmp_path)
    got = kinds(report)
    assert {got[n] for n in ("W0", "W1", "W2")} == {ArtifactKind.ONNX_EXTERNAL_DATA}
    attributed = [f for f in report.findings if f.rule == "FMT002"]
    assert len(attributed) == 3


# --------------------------------------------------------------------------------------------
# safetensors: every header-length residue (padding to 8 bytes was a false-alarm source)


def build_safetensors_sweep(d: Path) -> None:
    from safetensors.numpy import save_file

    for pad in range(16):
        name = "w" + "x" * pad
        save_file(
            {name: RNG.standard_normal((2, 3)).astype(np.float32), "b": np.zeros(0, np.int64)},
            str(d / f"pad{pad:02d}.safetensors"),
            metadata={"format": "pt", "note": "n" * pad},
        )
    save_file({}, str(d / "empty.safetensors"))
    save_file(
        {
            "f16": np.ones((4,), np.float16),
            "u8": np.arange(5, dtype=np.uint8),
            "bool": np.array([True, False]),
            "scalar": np.array(1.5, np.float32),
        },
        str(d / "dtypes.safetensors"),
    )


# --------------------------------------------------------------------------------------------
# HDF5, GGUF, Arrow/Parquet


def build_hdf5(d: Path) -> None:
    import h5py

    with h5py.File(d / "weights.h5", "w") as f:
        g = f.create_group("layer0")
        g.create_dataset("kernel", data=RNG.standard_normal((4, 4)))
        g.attrs["name"] = "dense"
        f.attrs["note"] = "plain arrays"


def build_gguf(d: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(d / "model.gguf"), "llama")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>", "a", "b"])
    writer.add_tensor("token_embd.weight", RNG.standard_normal((5, 8)).astype(np.float32))
    writer.add_tensor("blk.0.attn_q.weight", RNG.standard_normal((8, 8)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _table() -> object:
    import pyarrow as pa

    return pa.table(
        {
            "text": ["a cat", "a dog", "a bird", "a fish"],
            "label": [0, 1, 0, 1],
            "score": [0.1, 0.2, 0.3, 0.4],
        }
    )


def build_arrow_parquet(d: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _table()
    pq.write_table(table, d / "train.parquet")
    with (
        pa.OSFile(str(d / "file.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)


def _hf_dataset(d: Path) -> None:
    """What ``datasets.Dataset.save_to_disk`` writes: an Arrow stream and two JSON files."""
    import pyarrow as pa

    d.mkdir(parents=True, exist_ok=True)
    table = _table()
    with (
        pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    state = {
        "_data_files": [{"filename": "data-00000-of-00001.arrow"}],
        "_fingerprint": "5f3b2c1a0e9d8c7b",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    info = {
        "citation": "",
        "description": "",
        "features": {
            "text": {"dtype": "string", "_type": "Value"},
            "label": {"dtype": "int64", "_type": "Value"},
            "score": {"dtype": "float64", "_type": "Value"},
        },
        "homepage": "",
        "license": "",
    }
    (d / "state.json").write_text(json.dumps(state, indent=2))
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2))


def build_hf_dataset(d: Path) -> None:
    _hf_dataset(d)


def build_hf_dataset_dict(d: Path) -> None:
    (d / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    _hf_dataset(d / "train")
    _hf_dataset(d / "test")


# --------------------------------------------------------------------------------------------
# Hugging Face model layouts without a framework (tokenizers byte for byte, weights by safetensors)


def _hf_common(d: Path, arch: str, model_type: str) -> None:
    from safetensors.numpy import save_file

    config = {"architectures": [arch], "model_type": model_type, "vocab_size": 11, "d_model": 8}
    (d / "config.json").write_text(json.dumps(config, indent=2))
    (d / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    save_file(
        {"embed.weight": RNG.standard_normal((11, 8)).astype(np.float32)},
        str(d / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (d / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>"}))


def build_llama2_layout(d: Path) -> None:
    _hf_common(d, "LlamaForCausalLM", "llama")
    (d / "tokenizer.model").write_bytes(sentencepiece_model(8))
    (d / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True})
    )


def build_t5_layout(d: Path) -> None:
    _hf_common(d, "T5ForConditionalGeneration", "t5")
    (d / "spiece.model").write_bytes(sentencepiece_model(8))
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))


# --------------------------------------------------------------------------------------------
# spaCy-shaped msgpack, word2vec / fastText (byte for byte; real ones in the framework zoo)


def build_spacy_like(d: Path) -> None:
    (d / "ner").mkdir()
    (d / "vocab").mkdir()
    (d / "meta.json").write_text(json.dumps({"lang": "en", "name": "pipeline", "version": "0.0.0"}))
    (d / "config.cfg").write_text('[nlp]\nlang = "en"\npipeline = ["ner"]\n')
    (d / "tokenizer").write_bytes(
        mp({"prefix_search": "^\\(", "suffix_search": "\\)$", "exceptions": {}})
    )
    weights = [nd(RNG.standard_normal(16).astype("<f4").tobytes()) for _ in range(3)]
    (d / "ner" / "model").write_bytes(thinc_model(weights))
    (d / "ner" / "moves").write_bytes(mp({"moves": json.dumps({"0": {}, "1": {"ORG": -1}})}))
    (d / "ner" / "cfg").write_text(json.dumps({"moves": None, "update_with_oracle_cut_size": 100}))
    (d / "vocab" / "strings.json").write_text(json.dumps(["ORG", "apple"]))
    (d / "vocab" / "key2row").write_bytes(b"\x81\xcf" + struct.pack(">Q", 12345) + b"\x00")
    (d / "vocab" / "lookups.bin").write_bytes(b"\x80")
    np.save(d / "vocab" / "vectors", np.ones((1, 4), np.float32))
    (d / "vocab" / "vectors.cfg").write_text(json.dumps({"mode": "default"}))
    # np.save appends .npy; spaCy's file has no extension.
    (d / "vocab" / "vectors.npy").rename(d / "vocab" / "vectors")


def build_word_vectors(d: Path) -> None:
    words = ["the", "cat", "sat", "on", "mat"]
    (d / "vectors.bin").write_bytes(w2v_binary(words, 6))
    (d / "vectors_c.bin").write_bytes(w2v_binary(words, 6, newline=True))
    (d / "vectors.txt").write_bytes(w2v_text(words, 6))
    (d / "cc.en.bin").write_bytes(fasttext_model(words))


# --------------------------------------------------------------------------------------------
# old joblib (< 0.10) compressed layout: a pickle plus ZF-wrapped raw array side files


def _zf(raw: bytes) -> bytes:
    body = zlib.compress(raw)
    return b"ZF" + f"0x{len(raw):x}".ljust(18).encode() + body


def build_old_joblib_zf(d: Path) -> None:
    arr = RNG.standard_normal((4, 3))
    (d / "model.pkl_01.npy.z").write_bytes(_zf(arr.tobytes()))
    (d / "model.pkl_02.npy.z").write_bytes(_zf(np.arange(7, dtype=np.int64).tobytes()))


LAYOUTS: dict[str, Callable[[Path], None]] = {
    "numpy": build_numpy,
    "onnx-inline": build_onnx_inline,
    "onnx-external-one-file": build_onnx_external_one_file,
    "onnx-external-dynamo-name": build_onnx_external_dynamo_name,
    "onnx-external-per-tensor": build_onnx_external_per_tensor,
    "safetensors-header-sweep": build_safetensors_sweep,
    "hdf5": build_hdf5,
    "gguf": build_gguf,
    "arrow-parquet": build_arrow_parquet,
    "hf-dataset": build_hf_dataset,
    "hf-dataset-dict": build_hf_dataset_dict,
    "llama2-layout": build_llama2_layout,
    "t5-layout": build_t5_layout,
    "spacy-like-msgpack": build_spacy_like,
    "word-vectors": build_word_vectors,
    "old-joblib-zf": build_old_joblib_zf,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_benign_layout_passes_default_and_strict(tmp_path: Path, layout: str) -> None:
    LAYOUTS[layout](tmp_path)
    assert_benign(tmp_path)


def test_sentencepiece_and_dataset_files_are_identified(tmp_path: Path) -> None:
    (tmp_path / "llama").mkdir()
    build_llama2_layout(tmp_path / "llama")
    build_hf_dataset(tmp_path / "ds")
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    assert got["llama/tokenizer.model"] is ArtifactKind.SENTENCEPIECE
    assert got["ds/state.json"] is ArtifactKind.HF_DATASET_META
    assert got["ds/dataset_info.json"] is ArtifactKind.HF_DATASET_META
    assert got["ds/data-00000-of-00001.arrow"] is ArtifactKind.DATASET_ARROW


def test_old_joblib_side_arrays_unwrap_to_raw_arrays(tmp_path: Path) -> None:
    build_old_joblib_zf(tmp_path)
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    members = {k: v for k, v in got.items() if "!" in k}
    assert members, got
    assert set(members.values()) == {ArtifactKind.NUMPY_RAW}, got


def test_spacy_like_files_are_msgpack(tmp_path: Path) -> None:
    build_spacy_like(tmp_path)
    got = kinds(scan_paths([tmp_path], ScanOptions(jobs=1)))
    for name in ("tokenizer", "ner/model", "ner/moves", "vocab/key2row", "vocab/lookups.bin"):
        assert got[name] is ArtifactKind.MSGPACK, (name, got[name])
    assert got["vocab/vectors"] is ArtifactKind.NUMPY_NPY


def test_hostile_object_array_in_spacy_model_reaches_the_pickle_scanner(tmp_path: Path) -> None:
    payload = (
        b"\x80\x02cposix\nsystem\nq\x00X\x17\x00\x00\x00"
        b"echo supplychain-sampleq\x01\x85q\x02Rq\x03."
    )
    (tmp_path / "model").write_bytes(thinc_model([nd(payload, dtype="|O")]))
    report = apply(scan_paths([tmp_path], ScanOptions(jobs=1)), Policy())
    assert report.verdict is not None and not report.verdict.passed
    assert any(f.severity >= Severity.HIGH and f.location.member for f in report.findings), (
        describe(report)
    )
