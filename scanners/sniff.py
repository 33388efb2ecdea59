"""Decide what an artifact is from its bytes; the file name only breaks ties.

A pickle named ``.json`` is a pickle (CVE-2025-1889, CVE-2025-10155): routing by extension is how
other scanners were bypassed. Calling something a pickle needs a high bar, since ``.`` is the STOP
opcode: a ``PROTO`` prefix, or a bounded walk that is stack-consistent up to ``STOP``.
"""

from __future__ import annotations

import io
import json
import lzma
import pickletools
import struct
import zlib
from typing import BinaryIO

from scanners import _zip
from supplychain.model import ArtifactKind

HEAD = 64 * 1024
PICKLE_WALK_BYTES = 1 << 20
ZIP_HINT_EXTS = (".zip", ".pt", ".pth", ".keras", ".npz", ".ckpt", ".bin")
PICKLE_EXTS = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dill", ".sav")
TEXT_DATASET_EXTS = {".csv": ArtifactKind.DATASET_CSV, ".tsv": ArtifactKind.DATASET_CSV}
JSONL_EXTS = (".jsonl", ".ndjson")
TEMPLATE_NAMES = ("chat_template.jinja", "chat_template.json")
PROTO_FIELDS_ONNX = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25})
CONFIG_NAMES = ("config.json", "tokenizer_config.json", "generation_config.json")
SAVEDMODEL_NAMES = ("saved_model.pb", "keras_metadata.pb", "fingerprint.pb")


def _lower_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def sniff(stream: BinaryIO, size: int, name: str) -> ArtifactKind:
    """Classify ``stream`` (seekable) by content; leaves the position undefined."""
    stream.seek(0)
    head = stream.read(HEAD)
    lname = _lower_name(name)
    kind = _sniff_magic(stream, head, size, lname)
    if kind is not None:
        return kind
    if _looks_like_pickle(stream, head, lname):
        return ArtifactKind.PICKLE
    kind = _sniff_protobuf(stream, head, size, lname)
    if kind is not None:
        return kind
    return _sniff_text(head, lname)


def _sniff_magic(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    is_proto = len(head) >= 2 and head[0] == 0x80 and head[1] <= 5
    # NOTE: torch.load only checks for PK\x03\x04 at offset 0: a pickle with a fake zip end
    # record in its tail is a pickle to the loader, so it must be one to us too.
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or (
        not is_proto and size >= 22 and lname.endswith(ZIP_HINT_EXTS)
    ):
        kind = _sniff_zip(stream, size)
        if kind is not None:
            return kind
    if len(head) >= 2 and head[0] == 0x80 and 0 <= head[1] <= 5:
        return ArtifactKind.PICKLE
    if head.startswith(b"\x93NUMPY"):
        return ArtifactKind.NUMPY_NPY
    if head.startswith(b"GGUF"):
        return ArtifactKind.GGUF
    if head.startswith(b"MZqFpD") or (head.startswith(b"\x7fELF") and b"GGUF" in head):
        return ArtifactKind.LLAMAFILE
    for off in (0, 512, 1024, 2048):
        if head[off : off + 8] == b"\x89HDF\r\n\x1a\n":
            return ArtifactKind.HDF5
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return ArtifactKind.SEVEN_ZIP
    if head.startswith(b"\x1f\x8b"):
        return ArtifactKind.GZIP
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        return ArtifactKind.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return ArtifactKind.XZ
    if head.startswith(b"\x04\x22\x4d\x18"):
        return ArtifactKind.LZ4
    if head[4:8] == b"TFL3":
        return ArtifactKind.TFLITE
    if head.startswith(b"PAR1"):
        return ArtifactKind.DATASET_PARQUET
    if head.startswith(b"ARROW1") or (
        head.startswith(b"\xff\xff\xff\xff") and lname.endswith(".arrow")
    ):
        return ArtifactKind.DATASET_ARROW
    if len(head) >= 263 and head[257:262] == b"ustar":
        return ArtifactKind.TORCH_TAR if head[:9] == b"sys_info\x00" else ArtifactKind.TAR
    if _is_zlib(head):
        return ArtifactKind.ZLIB
    if head.startswith(b"ZF0x"):
        # joblib < 0.10 compressed pickles: "ZF" + padded hex length, then a zlib stream.
        zstart = head.find(b"\x78", 4, 48)
        if zstart > 0 and _is_zlib(head[zstart:]):
            return ArtifactKind.ZLIB
    if _is_lzma_alone(head):
        # joblib's compress="lzma" writes the legacy .lzma ("alone") container.
        return ArtifactKind.XZ
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if n <= size - 8 or lname.endswith(".safetensors"):
            return ArtifactKind.SAFETENSORS
    if len(head) >= 8 and lname.endswith(".safetensors") and head[8:9] in (b"", b" ", b"\x00"):
        return ArtifactKind.SAFETENSORS
    return None


def _is_zlib(head: bytes) -> bool:
    if len(head) < 2 or head[0] != 0x78 or (head[0] * 256 + head[1]) % 31 != 0:
        return False
    try:
        zlib.decompressobj().decompress(head[:4096], 64)
    except zlib.error:
        return False
    return True


def _is_lzma_alone(head: bytes) -> bool:
    """The legacy ``.lzma`` header is weak magic: demand a liblzma-style dictionary size, a sane
    size field and a clean trial decode, or Fortran/MATLAB data would pass for it."""
    # 0x5D: lc=3, lp=0, pb=2, what liblzma presets (and so joblib) always write.
    if len(head) < 14 or head[0] != 0x5D or head[13] != 0:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    usize = int.from_bytes(head[5:13], "little")
    third = dict_size // 3
    preset_like = (dict_size & (dict_size - 1)) == 0 or (
        dict_size % 3 == 0 and (third & (third - 1)) == 0
    )
    if not (4096 <= dict_size <= 1 << 30 and preset_like):
        return False
    if usize != 2**64 - 1 and usize >= 1 << 48:
        return False
    try:
        out = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(head, 256)
    except lzma.LZMAError:
        return False
    return len(out) >= min(usize, 16)


def _sniff_zip(stream: BinaryIO, size: int) -> ArtifactKind | None:
    try:
        directory = _zip.read_directory(stream, size, max_entries=100_000)
    except Exception:
        stream.seek(0)
        return ArtifactKind.ZIP if stream.read(4) == b"PK\x03\x04" else None
    names = [e.name for e in directory.entries]
    base = {n.rsplit("/", 1)[-1] for n in names}
    if (
        "data.pkl" in base
        or "constants.pkl" in base
        or any(
            n.count("/") >= 1 and n.split("/", 1)[1] in ("version", ".data/version") for n in names
        )
    ):
        return ArtifactKind.TORCH_ZIP
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return ArtifactKind.KERAS_ZIP
    if names and all(n.endswith(".npy") for n in names if not n.endswith("/")):
        return ArtifactKind.NUMPY_NPZ
    return ArtifactKind.ZIP


MAX_STACKED_PICKLES = 64


def _looks_like_pickle(stream: BinaryIO, head: bytes, lname: str) -> bool:
    """Protocol 0/1 pickles have no magic: accept a stack-consistent walk up to STOP.

    Prose such as "N.B. read me" walks as NONE, STOP; a global-free pickle followed by more
    bytes is only a pickle when those bytes are pickles too (stacked pickles), or when the name
    says so.
    """
    if not head or head[0] > 0x7F:
        return False
    stream.seek(0)
    data = stream.read(PICKLE_WALK_BYTES)
    start = 0
    for _ in range(MAX_STACKED_PICKLES):
        verdict, stop, saw_global = _walk_pickle(data, start, lname)
        if verdict is not None:
            return verdict
        rest = data[stop + 1 :]
        if saw_global or lname.endswith(PICKLE_EXTS) or not rest.strip():
            return True
        if rest[0] > 0x7F and not (rest[0] == 0x80 and rest[1:2] and rest[1] <= 5):
            return False
        start = stop + 1
    return True


def _walk_pickle(data: bytes, start: int, lname: str) -> tuple[bool | None, int, bool]:
    """Walk one pickle from ``start``: (verdict, or None at STOP; STOP position; saw globals)."""
    depth = 0
    marks: list[int] = []
    saw_global = False
    try:
        for op, _arg, pos in pickletools.genops(io.BytesIO(data[start:])):
            if op.name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                saw_global = True
            before = op.stack_before
            if op.name == "MARK":
                marks.append(depth)
                continue
            if pickletools.markobject in before:
                # Items listed before the mark sit below it; the rest is the popped slice.
                below = before.index(pickletools.markobject)
                if not marks:
                    return False, 0, saw_global
                depth = marks.pop()
                if depth < below:
                    return False, 0, saw_global
                depth -= below
            else:
                if len(before) > depth:
                    return False, 0, saw_global
                depth -= len(before)
            depth += len(op.stack_after)
            if op.name == "STOP":
                return None, start + (pos or 0), saw_global
    except ValueError as exc:
        # Cut short mid-opcode after an import: a broken pickle (nullifAI) is still a pickle.
        truncated = "EOF" in str(exc) or "truncated" in str(exc).lower()
        return saw_global and (truncated or lname.endswith(PICKLE_EXTS)), 0, saw_global
    except Exception:
        return False, 0, saw_global
    return saw_global or lname.endswith(PICKLE_EXTS), 0, saw_global


EXTENSION_KINDS: dict[str, ArtifactKind] = {
    **dict.fromkeys(
        (".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".ckpt"),
        ArtifactKind.PICKLE,
    ),
    ".safetensors": ArtifactKind.SAFETENSORS,
    ".gguf": ArtifactKind.GGUF,
    ".onnx": ArtifactKind.ONNX,
    ".keras": ArtifactKind.KERAS_ZIP,
    ".h5": ArtifactKind.HDF5,
    ".hdf5": ArtifactKind.HDF5,
    ".npy": ArtifactKind.NUMPY_NPY,
    ".npz": ArtifactKind.NUMPY_NPZ,
    ".zip": ArtifactKind.ZIP,
    ".tar": ArtifactKind.TAR,
    ".gz": ArtifactKind.GZIP,
    ".tgz": ArtifactKind.GZIP,
    ".bz2": ArtifactKind.BZIP2,
    ".xz": ArtifactKind.XZ,
    ".lz4": ArtifactKind.LZ4,
    ".7z": ArtifactKind.SEVEN_ZIP,
    ".parquet": ArtifactKind.DATASET_PARQUET,
    ".arrow": ArtifactKind.DATASET_ARROW,
    ".jinja": ArtifactKind.CHAT_TEMPLATE,
    ".tflite": ArtifactKind.TFLITE,
    ".mlmodel": ArtifactKind.COREML,
}
"""Tie-breaker for binary content nothing recognised: a file that claims a model format by name
goes to that format's scanner, which reports it as malformed (fail closed) instead of the engine
skipping it as unknown. ``.bin`` is left out: it is also raw tensor data (ONNX external data)."""


def _kind_from_extension(lname: str) -> ArtifactKind:
    dot = lname.rfind(".")
    return (
        EXTENSION_KINDS.get(lname[dot:], ArtifactKind.UNKNOWN) if dot >= 0 else ArtifactKind.UNKNOWN
    )


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _top_level_fields(stream: BinaryIO, size: int, max_fields: int = 64) -> list[int] | None:
    """Field numbers of a protobuf message's top level, skipping payloads by seeking."""
    fields: list[int] = []
    pos = 0
    while pos < size and len(fields) < max_fields:
        stream.seek(pos)
        buf = stream.read(20)
        try:
            key, p = _varint(buf, 0)
            field_no, wire = key >> 3, key & 7
            if field_no == 0:
                return None
            if wire == 0:
                _, p = _varint(buf, p)
                pos += p
            elif wire == 2:
                length, p = _varint(buf, p)
                pos += p + length
            elif wire == 1:
                pos += p + 8
            elif wire == 5:
                pos += p + 4
            else:
                return None
        except ValueError:
            return None
        fields.append(field_no)
    return fields if pos == size or len(fields) >= max_fields else None


def _sniff_protobuf(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    if not head or head[0] not in (0x08, 0x0A, 0x12, 0x1A, 0x3A, 0x42):
        return None
    fields = _top_level_fields(stream, size)
    if fields is None:
        if lname.endswith(".onnx"):
            return ArtifactKind.ONNX
        return None
    if lname in SAVEDMODEL_NAMES or (set(fields) <= {1, 2, 3, 4, 5} and lname.endswith(".pb")):
        return ArtifactKind.TF_SAVEDMODEL
    if set(fields) <= PROTO_FIELDS_ONNX and 7 in fields:
        return ArtifactKind.ONNX
    if lname.endswith(".onnx"):
        return ArtifactKind.ONNX
    if lname.endswith(".mlmodel"):
        return ArtifactKind.COREML
    return None


def _sniff_text(head: bytes, lname: str) -> ArtifactKind:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            if lname.endswith(TEXT_DATASET_EXTS_KEYS + JSONL_EXTS):
                return TEXT_DATASET_EXTS.get(lname[lname.rfind(".") :], ArtifactKind.DATASET_JSONL)
            if lname.endswith(".msgpack") or lname.endswith(".flax"):
                return ArtifactKind.FLAX_MSGPACK
            if lname.endswith((".py", ".pyw", ".pyi")):
                return ArtifactKind.PYTHON_SOURCE
            if lname in CONFIG_NAMES or lname.endswith("_config.json"):
                return ArtifactKind.MODEL_CONFIG
            return _kind_from_extension(lname)
        text = head[: exc.start].decode("utf-8")
    if lname.endswith(".py") or (text.startswith("#!") and "python" in text.split("\n", 1)[0]):
        return ArtifactKind.PYTHON_SOURCE
    if lname in TEMPLATE_NAMES or lname.endswith(".jinja") or lname.endswith(".jinja2"):
        return ArtifactKind.CHAT_TEMPLATE
    for ext, kind in TEXT_DATASET_EXTS.items():
        if lname.endswith(ext):
            return kind
    stripped = text.lstrip("\ufeff \t\r\n")
    if lname in CONFIG_NAMES or lname.endswith("_config.json"):
        # A config that does not parse is still a config: the config scanner reports it.
        return ArtifactKind.MODEL_CONFIG
    if lname.endswith(JSONL_EXTS):
        return ArtifactKind.DATASET_JSONL
    if stripped.startswith("{"):
        lines = [ln for ln in stripped.split("\n")[:3] if ln.strip()]
        if len(lines) >= 2 and all(ln.lstrip().startswith("{") for ln in lines):
            try:
                json.loads(lines[0])
                return ArtifactKind.DATASET_JSONL
            except ValueError:
                pass
        if lname.endswith(".json"):
            return ArtifactKind.MODEL_CONFIG
    if lname.endswith(".msgpack"):
        return ArtifactKind.FLAX_MSGPACK
    return ArtifactKind.TEXT


TEXT_DATASET_EXTS_KEYS = tuple(TEXT_DATASET_EXTS)
