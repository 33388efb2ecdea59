"""Table-driven checks of ``scanners.sniff.sniff`` over real bytes built in the test.

Each case names a file, builds its bytes with the real library (or the stdlib) and states the kind
the sniffer must return. Pickles are built with ``pickle.dumps`` of plain data and only ever
sniffed, never loaded.
"""

from __future__ import annotations

import bz2
import collections
import csv
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from scanners.sniff import sniff
from supplychain.core.model import ArtifactKind as K

PLAIN = {"weights": [1.5, 2.5, 3.5], "name": "layer", "shape": (3,), "ok": True, "n": None}
"""Plain data: pickles of it have no imports at all."""
WITH_GLOBAL = collections.OrderedDict(a=1)
"""Pickles of it import ``collections.OrderedDict`` (no payload; never loaded here)."""


def _pickle(proto: int, obj: object = PLAIN) -> Callable[[Path], bytes]:
    return lambda _tmp: pickle.dumps(obj, protocol=proto)


def _zip(members: dict[str, bytes]) -> Callable[[Path], bytes]:
    def build(_tmp: Path) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return buf.getvalue()

    return build


def _npy(_tmp: Path) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.arange(12, dtype=np.float32).reshape(3, 4))
    return buf.getvalue()


def _npz(_tmp: Path) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3), b=np.ones((2, 2)))
    return buf.getvalue()


def _gguf(_tmp: Path) -> bytes:
    # Header: magic, version 3, tensor count 0, one KV (string key, uint32 value).
    key = b"general.alignment"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 4) + struct.pack("<I", 32)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv


def _hdf5(tmp: Path) -> bytes:
    import h5py
    import numpy as np

    path = tmp / "w.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((2, 2)))
    return path.read_bytes()


def _safetensors(_tmp: Path) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    return save({"w": np.ones((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float16)})


def _lz4(_tmp: Path) -> bytes:
    import lz4.frame

    return bytes(lz4.frame.compress(b"payload " * 100))


def _7z(tmp: Path) -> bytes:
    import py7zr

    path = tmp / "a.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(b"hello " * 50, "hello.txt")
    return path.read_bytes()


def _tar(_tmp: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _parquet(_tmp: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 1]}), buf)
    return buf.getvalue()


def _onnx(_tmp: Path) -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, producer_name="test")
    return bytes(model.SerializeToString())


def _csv(_tmp: Path) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    writer.writerows([["great movie", 1], ["bad, slow", 0]])
    return out.getvalue().encode()


def _text(text: str) -> Callable[[Path], bytes]:
    return lambda _tmp: text.encode()


def _bytes(data: bytes) -> Callable[[Path], bytes]:
    return lambda _tmp: data


JSONL = "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(5))
TORCH_ZIP = {
    "archive/data.pkl": pickle.dumps(PLAIN, protocol=2),
    "archive/version": b"3\n",
    "archive/data/0": b"\x00" * 16,
}
KERAS_ZIP = {
    "config.json": b'{"class_name": "Sequential", "config": {}}',
    "metadata.json": b'{"keras_version": "3.3.3"}',
    "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\x00" * 64,
}
TORCH_EXPORT = {
    "archive/archive_format": b"pt2",
    "archive/.data/version": b"6\n",
    "archive/models/model.json": b"{}",
}
LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 4404019\n"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 17
P0 = b"cos\nsystem\n(S'echo supplychain-sample'\ntR."
"""Protocol-0 pickle without PROTO (inert payload; only ever sniffed)."""
CSS = "body { color: red; }\n.a > .b { margin: 0 auto; }\n/* end. */\n"
MARKDOWN = "# Model card\n\nThis model is **great**.\n\n- item one.\n- item two.\n"
PY = 'import os\n\n\ndef f(x):\n    """Double."""\n    return x * 2\n'

CASES: list[tuple[str, str, Callable[[Path], bytes], K]] = [
    # pickles by content, whatever the name
    *[(f"pickle-p{p}", "model.pkl", _pickle(p), K.PICKLE) for p in range(6)],
    *[(f"pickle-p{p}-json", "weights.json", _pickle(p), K.PICKLE) for p in range(6)],
    *[(f"pickle-p{p}-txt", "notes.txt", _pickle(p), K.PICKLE) for p in range(6)],
    *[(f"pickle-p{p}-msgpack", "flax_model.msgpack", _pickle(p), K.PICKLE) for p in range(6)],
    *[(f"pickle-p{p}-noext", "weights", _pickle(p), K.PICKLE) for p in range(6)],
    *[(f"pickle-p{p}-list-noext", "data", _pickle(p, [1, 2, 3]), K.PICKLE) for p in range(6)],
    *[
        (f"pickle-p{p}-global-{ext}", f"x.{ext}", _pickle(p, WITH_GLOBAL), K.PICKLE)
        for p in (0, 1)
        for ext in ("json", "txt", "bin")
    ],
    ("pickle-p0-bin", "pytorch_model.bin", _pickle(0), K.PICKLE),
    # text that must not be taken for a pickle ("." is STOP)
    ("css", "style.css", _text(CSS), K.TEXT),
    ("markdown", "README.md", _text(MARKDOWN), K.TEXT),
    ("json", "special_tokens_map.json", _text('{"bos_token": "<s>"}'), K.MODEL_CONFIG),
    ("json-list", "data.json", _text('[{"a": 1}, {"a": 2}]'), K.TEXT),
    (
        "tokenizer-config",
        "tokenizer_config.json",
        _text('{\n  "model_max_length": 2048\n}\n'),
        K.MODEL_CONFIG,
    ),
    ("config", "config.json", _text('{"model_type": "llama"}'), K.MODEL_CONFIG),
    ("period", "x.txt", _text("."), K.TEXT),
    ("license", "LICENSE", _text("MIT License.\n\nPermission is hereby granted.\n"), K.TEXT),
    # containers and archives
    ("zip", "bundle.zip", _zip({"a.txt": b"hello"}), K.ZIP),
    ("torch-zip", "pytorch_model.bin", _zip(TORCH_ZIP), K.TORCH_ZIP),
    ("torch-zip-pt", "model.pt", _zip(TORCH_ZIP), K.TORCH_ZIP),
    ("torch-zip-renamed", "weights.dat", _zip(TORCH_ZIP), K.TORCH_ZIP),
    ("keras-zip", "model.keras", _zip(KERAS_ZIP), K.KERAS_ZIP),
    ("npz", "arrays.npz", _npz, K.NUMPY_NPZ),
    ("npz-renamed", "arrays.bin", _npz, K.NUMPY_NPZ),
    ("npy", "array.npy", _npy, K.NUMPY_NPY),
    ("npy-renamed", "array.json", _npy, K.NUMPY_NPY),
    ("gguf", "model.gguf", _gguf, K.GGUF),
    ("gguf-renamed", "model.bin", _gguf, K.GGUF),
    ("hdf5", "model.h5", _hdf5, K.HDF5),
    ("safetensors", "model.safetensors", _safetensors, K.SAFETENSORS),
    ("safetensors-renamed", "model.bin", _safetensors, K.SAFETENSORS),
    ("gzip", "x.gz", _bytes(gzip.compress(b"hello " * 50)), K.GZIP),
    ("bz2", "x.bz2", _bytes(bz2.compress(b"hello " * 50)), K.BZIP2),
    ("xz", "x.xz", _bytes(lzma.compress(b"hello " * 50)), K.XZ),
    ("zlib", "x.z", _bytes(zlib.compress(b"hello " * 50)), K.ZLIB),
    ("lz4", "x.lz4", _lz4, K.LZ4),
    ("7z", "x.7z", _7z, K.SEVEN_ZIP),
    ("tar", "x.tar", _tar, K.TAR),
    # datasets
    ("parquet", "train.parquet", _parquet, K.DATASET_PARQUET),
    ("jsonl", "train.jsonl", _text(JSONL), K.DATASET_JSONL),
    ("jsonl-as-json", "train.json", _text(JSONL), K.DATASET_JSONL),
    ("csv", "train.csv", _csv, K.DATASET_CSV),
    # code and models
    ("py", "modeling_foo.py", _text(PY), K.PYTHON_SOURCE),
    ("py-shebang", "run", _text("#!/usr/bin/env python3\nprint('hi')\n"), K.PYTHON_SOURCE),
    ("onnx", "model.onnx", _onnx, K.ONNX),
    ("onnx-noext", "model", _onnx, K.ONNX),
    (
        "chat-template",
        "chat_template.jinja",
        _text("{% for m in messages %}{% endfor %}"),
        K.CHAT_TEMPLATE,
    ),
    # placeholders and media (what the file really is, whatever its name claims)
    ("empty-weights", "pytorch_model.bin", _bytes(b""), K.EMPTY),
    ("empty-init", "__init__.py", _bytes(b""), K.EMPTY),
    ("lfs-pointer", "model.safetensors", _text(LFS), K.LFS_POINTER),
    ("lfs-pointer-txt", "notes.txt", _text(LFS), K.LFS_POINTER),
    ("png-as-pt", "model.pt", _bytes(PNG_HEAD), K.MEDIA),
    ("pdf", "paper.pdf", _bytes(b"%PDF-1.4\n%\xe2\xe3\n"), K.MEDIA),
    # loader-decided pickles: no PROTO, any first opcode, pickle before an embedded zip
    ("pickle-no-proto-mark", "notes.txt", _bytes(b"(0" + P0), K.PICKLE),
    ("pickle-no-proto-sbu", "data", _bytes(b"\x8c\x01a0" + P0), K.PICKLE),
    ("pickle-before-zip", "model.pt", lambda t: P0 + _zip(TORCH_ZIP)(t), K.PICKLE),
    # routed to other scanners
    ("yaml", "config.yaml", _text("a: 1\n"), K.YAML_CONFIG),
    ("yaml-chat-template", "recipe", _text("chat_template: |\n  {{ x }}\n"), K.YAML_CONFIG),
    ("torch-export", "model.pt2", _zip(TORCH_EXPORT), K.TORCH_EXPORT),
]


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [pytest.param(name, build, kind, id=case_id) for case_id, name, build, kind in CASES],
)
def test_sniff(tmp_path: Path, name: str, build: Callable[[Path], bytes], expected: K) -> None:
    data = build(tmp_path)
    assert sniff(io.BytesIO(data), len(data), name) is expected


def test_sniff_reads_from_start_whatever_the_position() -> None:
    data = pickle.dumps(PLAIN, protocol=4)
    stream = io.BytesIO(data)
    stream.seek(len(data))
    assert sniff(stream, len(data), "x.bin") is K.PICKLE


def test_sniff_empty_and_tiny_files_do_not_crash() -> None:
    for data in (b"", b"\x80", b"PK", b"GG", b"\x93NUM", b"\x89PNG", b"(", b"c", b"]\x00"):
        kind = sniff(io.BytesIO(data), len(data), "x.bin")
        assert isinstance(kind, K)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("model.onnx", K.ONNX),
        ("model.safetensors", K.SAFETENSORS),
        ("weights.pt", K.PICKLE),
        ("model.keras", K.KERAS_ZIP),
        ("data.parquet", K.DATASET_PARQUET),
        ("external_weights.bin", K.UNKNOWN),
        ("noext", K.UNKNOWN),
    ],
)
def test_unrecognised_binary_goes_to_the_format_its_name_claims(name: str, kind: K) -> None:
    # Fail closed: garbage that claims a model format is reported malformed by that format's
    # scanner instead of being skipped as unknown; raw tensor data (.bin) stays unknown.
    garbage = bytes([0xFF, 0xFE, 0x00, 0x9C]) * 512
    assert sniff(io.BytesIO(garbage), len(garbage), name) is kind
