"""Data-only model formats: identified by structure and checked, holding no code path.

SentencePiece, ONNX external data, torch.export archives, xgboost, catboost, msgpack (spaCy,
Flax), word2vec/fastText, Hugging Face ``datasets`` metadata, raw array side files, TFLite and
Core ML (see ``docs/formats.md``).
``identify`` is called by ``sniff`` after the strong magics; ``DataFormatScanner`` validates
each format with bounded, streaming parsers of our own (no library loads anything), so a file
that claims one of these formats and does not parse is a GEN001 finding (fail closed), and one
that does is "scanned", not "skipped".

The few places where a data format reaches a deserializer (msgpack-numpy object arrays, which
the reader unpickles; ``torch.export`` members saved with ``torch.save``) are handed back to the
engine as children, so the pickle and torch scanners judge them.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from scanners import _zip
from scanners._paths import path_escape
from scanners._protobuf import I32, LEN, VARINT, Field, ProtoReader
from scanners.base import Artifact, ScanContext, note_sibling_read
from scanners.containers import Spool as _Spool
from scanners.containers import Want, handoff, walk_zip
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

FMT001 = make_rule(
    "FMT001",
    "ONNX external data not referenced by any model",
    Severity.MEDIUM,
    "The file is named like ONNX external data but no .onnx file in its directory lists it as an "
    "external_data location. Nothing attributes its bytes to a model, so nothing says what "
    "reads it or why it is there.",
    "Keep external data next to the .onnx that references it; remove stray files.",
    cwe=912,
)
FMT002 = make_rule(
    "FMT002",
    "ONNX external data attributed to a model",
    Severity.INFO,
    "Raw tensor bytes referenced by an ONNX model in the same directory. They are never "
    "interpreted as code by onnx or ONNX Runtime; the model itself is checked by the ONNX scanner.",
    "None needed.",
)
FMT003 = make_rule(
    "FMT003",
    "Pickled object array inside msgpack",
    Severity.LOW,
    "A msgpack-numpy array is marked as an object array: msgpack_numpy (srsly, thinc, spaCy) "
    "unpickles its bytes when the file is read. The pickle is handed to the pickle scanner; this "
    "notes that a data file carries a deserialization path at all.",
    "Prefer numeric arrays; object arrays in a model file should be justified.",
    cwe=502,
)
FMT004 = make_rule(
    "FMT004",
    "torch.export graph calls a target outside torch operators",
    Severity.HIGH,
    "torch.export's deserializer resolves a node target such as 'torch.x.y' by walking getattr "
    "from the torch module (which reaches os, subprocess and more), and runs it when the graph "
    "runs. Exported graphs call torch.ops.* operators, a few _operator/math functions and "
    "symbolic-shape helpers; anything else is a callable chosen by the file.",
    "Do not load the program. Re-export it from source you trust.",
    cwe=94,
)
FMT005 = make_rule(
    "FMT005",
    "Custom operator namespace in a torch.export graph",
    Severity.MEDIUM,
    "Nodes call operators outside PyTorch's own namespaces. Running the program needs a "
    "library (native code or Python) that registers them.",
    "Make sure the operator library comes from a source you trust and is pinned.",
    cwe=829,
)
FMT007 = make_rule(
    "FMT007",
    "Native code in a torch.export package",
    Severity.HIGH,
    "The .pt2 archive carries a shared library (an AOTInductor package, or a planted one). "
    "torch._inductor.aoti_load_package loads it into the process: native code that no scanner "
    "can analyse runs on load.",
    "Load only AOTInductor packages you compiled yourself; re-compile from the exported program "
    "otherwise.",
    cwe=829,
)
FMT008 = make_rule(
    "FMT008",
    "Core ML model needs custom native code",
    Severity.MEDIUM,
    "The Core ML model is a customModel or has custom neural-network layers: running it needs "
    "the named classes compiled into the application that loads it.",
    "Make sure the custom classes come from a source you trust and are pinned.",
    cwe=829,
)
FMT009 = make_rule(
    "FMT009",
    "Custom or Flex operators in a TFLite model",
    Severity.LOW,
    "The model's operator codes name custom operators (registered by the app that loads it) "
    "or Flex ops (TensorFlow kernels run through the Flex delegate). Flex ops that read or write "
    "files or call Python are reported as high.",
    "Check that the app registering these operators is trusted; avoid Flex file and Python ops.",
    cwe=829,
)
FMT006 = make_rule(
    "FMT006",
    "Dataset metadata names a file outside the dataset directory",
    Severity.HIGH,
    "A datasets state.json / dataset_dict.json names a data file or split that is absolute or "
    "contains '..'. load_from_disk joins it to the dataset path and reads whatever it points at.",
    "Do not load the dataset; data files must be plain names inside its directory.",
    cwe=22,
)

MAX_DEPTH = 256
"""Deepest container nesting accepted in msgpack/UBJSON (real files use fewer than 20)."""
MAX_ITEMS = 50_000_000
"""Most values walked in one msgpack/UBJSON file: a CPU-time bound."""
MAX_WORD = 1 << 16
"""Longest word in word2vec/fastText vocabularies (real ones are under a few hundred bytes)."""
HEAD_WINDOW = 64 * 1024
MSGPACK_NAMES = frozenset(
    {"tokenizer", "model", "moves", "key2row", "lookups.bin", "patterns", "trees", "vectors.bin"}
)
"""spaCy/thinc pipeline files written with srsly.msgpack (no extension)."""
FLAX_EXTS = (".msgpack", ".flax", ".mpk")
SENTENCEPIECE_EXTS = (".model", ".spm")
ONNX_DATA_SUFFIXES = (".onnx.data", ".onnx_data", ".onnx.bin", ".onnx.weights")
DATASET_META = frozenset({"state.json", "dataset_info.json", "dataset_dict.json"})
FASTTEXT_MAGIC = 793712314
JOBLIB_SIDE = re.compile(r"_\d{2,}\.npy(?:\.z)?$")
"""joblib < 0.10 side files: ``<pickle>_01.npy`` (``.z`` when compressed)."""
W2V_HEADER = re.compile(rb"\A[ \t]*(\d{1,12})[ \t]+(\d{1,7})[ \t]*\r?\n")
OTHER_FORMAT_EXTS = (
    ".py", ".pyw", ".pyi", ".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".md",
    ".yaml", ".yml", ".toml", ".cfg", ".ini", ".jinja", ".jinja2", ".sh", ".parquet",
)  # fmt: skip
"""Names that belong to another scanner's format: never claimed by a weak structural match."""
MAX_SIBLINGS = 64
MAX_ONNX_FIELDS = 20_000_000
"""Fields walked in one sibling .onnx while attributing external data (a CPU-time bound)."""
MAX_LOCATIONS = 100_000
SIBLING_LEVELS = 3
"""The data file's directory and two above it are searched for referencing models."""
"""Most .onnx files read to attribute one external-data file."""


# --------------------------------------------------------------------------------------------
# identification


def identify(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """The data-only format ``stream`` holds, decided from its structure, or ``None``.

    The name narrows which structures are tried for weak-magic formats (msgpack, raw data);
    content always has to agree. Leaves the stream position undefined.
    """
    if not head:
        return None
    checks: tuple[Callable[[BinaryIO, bytes, int, str], ArtifactKind | None], ...] = (
        _id_magic,
        _id_sentencepiece,
        _id_json,
        _id_ubjson,
        _id_word2vec,
        _id_msgpack,
        _id_raw,
    )
    foreign = lname.endswith(OTHER_FORMAT_EXTS)
    for check in checks:
        if foreign and check not in (_id_magic, _id_json, _id_word2vec):
            continue  # weak structure never takes a file from the scanner its name belongs to
        try:
            kind = check(stream, head, size, lname)
        except (ArtifactError, ValueError, OSError, struct.error):
            kind = None
        if kind is not None:
            return kind
    return None


def _id_magic(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    if head.startswith(b"CBM1") and len(head) >= 8:
        return ArtifactKind.CATBOOST
    if len(head) >= 8 and struct.unpack_from("<i", head)[0] == FASTTEXT_MAGIC:
        version = struct.unpack_from("<i", head, 4)[0]
        if 10 <= version <= 12:
            return ArtifactKind.FASTTEXT
    if len(head) >= 80 and lname.endswith((".bin", ".ftz")):
        # Pre-magic fastText: thirteen constrained arguments, then consistent counts.
        args = struct.unpack_from("<12id", head)
        words, nwords, nlabels = struct.unpack_from("<iii", head, 56)
        if _fasttext_args_ok(args) and 0 < words == nwords + nlabels and words < size:
            return ArtifactKind.FASTTEXT
    if _xgb_legacy_names(head) is not None:
        return ArtifactKind.XGBOOST
    return None


XGB_PARAM_BYTES = 136
"""LearnerModelParamLegacy: base_score, num_feature, num_class, flags, versions, reserved."""
XGB_OBJECTIVE = re.compile(rb"\A(?:reg|binary|multi|rank|count|survival):[A-Za-z0-9_:@-]{2,40}\Z")
XGB_BOOSTERS = frozenset({b"gbtree", b"gblinear", b"dart"})


def _xgb_legacy_names(head: bytes) -> tuple[int, bytes, bytes] | None:
    """xgboost < 2 binary models: optional ``binf``, the 136-byte parameter block, then the
    objective and booster names as (uint64 length, bytes): a structure no other file shares.

    Returns (offset past the booster name, objective, booster) or ``None``.
    """
    pos = 4 if head.startswith(b"binf") else 0
    pos += XGB_PARAM_BYTES
    names: list[bytes] = []
    for _ in range(2):
        if pos + 8 > len(head):
            return None
        (n,) = struct.unpack_from("<Q", head, pos)
        if not 0 < n <= 64 or pos + 8 + n > len(head):
            return None
        names.append(head[pos + 8 : pos + 8 + n])
        pos += 8 + n
    if not XGB_OBJECTIVE.match(names[0]) or names[1] not in XGB_BOOSTERS:
        return None
    return pos, names[0], names[1]


def _id_sentencepiece(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """ModelProto: the first field is a ``pieces`` entry (1: LEN) whose own first fields are a
    UTF-8 piece (1: LEN) and a float score (2: I32); ONNX and TF start with a varint instead."""
    if head[:1] != b"\x0a":
        return None
    reader = ProtoReader(io.BytesIO(head), len(head))
    first = next(reader.fields(0, len(head)), None) if size <= len(head) else None
    if first is None:
        # Parse the first field only: the file is longer than the head.
        length, at = _varint(head, 1)
        if at + length > len(head):
            return None
        reader = ProtoReader(io.BytesIO(head[: at + length]), at + length)
        first = next(reader.fields(0, at + length), None)
    if first is None or first.number != 1 or first.wire != LEN:
        return None
    inner = [(f.number, f.wire) for f in reader.fields(first.offset, first.end)]
    if not inner or inner[0] != (1, LEN) or not set(inner) <= {(1, LEN), (2, I32), (3, VARINT)}:
        return None
    # proto2 writes a score whenever it was set (always, by the trainer); a hand-made model
    # without one is still accepted under a SentencePiece-like name.
    if (2, I32) not in inner and not lname.endswith(SENTENCEPIECE_EXTS):
        return None
    return ArtifactKind.SENTENCEPIECE


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos + i]
        result |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return result, pos + i + 1
    raise ValueError("varint too long")


_XGB_JSON = re.compile(rb'\A\s*\{\s*"(?:learner|version)"\s*:')
_DATASET_KEYS = {
    "state.json": (b'"_data_files"', b'"_fingerprint"'),
    "dataset_info.json": (b'"features"', b'"builder_name"', b'"citation"', b'"splits"'),
    "dataset_dict.json": (b'"splits"',),
}


def _id_json(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    if _XGB_JSON.match(head) and b'"learner"' in head[:4096]:
        return ArtifactKind.XGBOOST
    keys = _DATASET_KEYS.get(lname)
    if keys and head.lstrip()[:1] == b"{" and any(k in head for k in keys):
        return ArtifactKind.HF_DATASET_META
    return None


_UBJ_KEY = re.compile(rb"\A\{(?:[iU].|I..|l....|L........)(?:learner|version)", re.DOTALL)


def _id_ubjson(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    if _UBJ_KEY.match(head):
        return ArtifactKind.XGBOOST
    return None


def _id_word2vec(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """``<vocab> <dim>\\n`` then either ``word`` + dim float32 (binary) or ``word f1 … fdim``."""
    if lname.endswith(OTHER_FORMAT_EXTS) and not lname.endswith(".txt"):
        # A whitespace table named .csv stays a dataset for the dataset scanner; .txt is what
        # gensim's save_word2vec_format is usually given (and plain text has no analysis).
        return None
    m = W2V_HEADER.match(head)
    if m is None:
        return None
    vocab, dim = int(m.group(1)), int(m.group(2))
    if vocab <= 0 or dim <= 0:
        return None
    pos = m.end()
    if head[pos : pos + 1] == b"\n":
        pos += 1
    space = head.find(b" ", pos, pos + 4096)
    if space <= pos:
        return None
    if _w2v_text_line(head, pos, dim):
        return ArtifactKind.WORD2VEC
    # Binary: ``word `` then dim float32 values; text read as floats is huge or not finite.
    end = space + 1 + dim * 4
    if end > size:
        return None
    sample = head[space + 1 : min(end, space + 1 + 256, len(head))]
    sample = sample[: len(sample) // 4 * 4]
    if not sample:
        return None
    values = struct.unpack(f"<{len(sample) // 4}f", sample)
    if all(abs(v) < 1e4 for v in values):  # NaN compares False: rejected too
        return ArtifactKind.WORD2VEC
    return None


def _w2v_text_line(data: bytes, pos: int, dim: int) -> bool:
    """The line at ``pos`` is a word followed by ``dim`` decimal numbers."""
    nl = data.find(b"\n", pos)
    line = data[pos:] if nl < 0 else data[pos:nl]
    try:
        parts = line.decode("utf-8").split()
    except UnicodeDecodeError:
        return False
    if len(parts) != dim + 1:
        return False
    try:
        for p in parts[1:]:
            float(p)
    except ValueError:
        return False
    return True


def _id_msgpack(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """msgpack is weak magic: a map/array start, a clean parse of what we hold, and either a
    spaCy/Flax file name or a whole small file that is one map with string keys."""
    first = head[0]
    is_container = 0x80 <= first <= 0x9F or first in (0xDC, 0xDD, 0xDE, 0xDF)
    if not is_container:
        return None
    named = lname in MSGPACK_NAMES or lname.endswith(FLAX_EXTS)
    whole = size <= len(head)
    if not named and not whole:
        return None
    walk = _Msgpack(io.BytesIO(head), len(head))
    try:
        top = walk.document()
    except _Truncated:
        # A named file that parses cleanly for a while and then runs out is msgpack cut short
        # (the scanner reports it); random bytes break within a value or two.
        if not named or walk.items < 4:
            return None
        top = None
    if not named and not (isinstance(top, _Map) and top.count and top.str_keys):
        return None
    return ArtifactKind.FLAX_MSGPACK if lname.endswith(FLAX_EXTS) else ArtifactKind.MSGPACK


def _id_raw(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """Headerless bytes named as ONNX external data or a joblib side array, never a pickle."""
    if _pickle_like(head):
        return None
    on_disk = _disk_path(stream, lname)
    if JOBLIB_SIDE.search(lname) and (lname.endswith(".z") or on_disk is None):
        # Once unwrapped from its ZF wrapper the member is raw array bytes; a headerless
        # "x_01.npy" on disk is a broken .npy and stays with the numpy scanner.
        return ArtifactKind.NUMPY_RAW
    if lname.endswith(ONNX_DATA_SUFFIXES):
        return ArtifactKind.ONNX_EXTERNAL_DATA
    if (
        on_disk is not None
        and not lname.endswith((".onnx", *OTHER_FORMAT_EXTS))
        and not _is_text(head)
        and referencing_models(on_disk)
    ):
        # NOTE: only binary files: an .onnx naming modeling.py or config.json as its "external
        # data" must not take those files away from the code and config scanners.
        return ArtifactKind.ONNX_EXTERNAL_DATA
    return None


def _is_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes (zero-filled tensors are valid UTF-8, but full of NULs)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the sniff window
    return True


def _disk_path(stream: BinaryIO, lname: str) -> Path | None:
    """The file ``stream`` reads, when it is a real file named ``lname`` (siblings are hints)."""
    name = getattr(stream, "name", None)
    if isinstance(name, int):
        # The engine opens with os.open + fdopen (O_NOFOLLOW): ask the kernel for the path.
        try:
            name = str(Path(f"/proc/self/fd/{name}").readlink())
        except OSError:
            return None
    if not isinstance(name, str):
        return None
    path = Path(name)
    # A symlink (HF cache blobs) resolves under another name: no sibling hints then.
    return path if path.name.lower() == lname else None


def _pickle_like(head: bytes) -> bool:
    """A bounded opcode walk reaches an import: the bytes are a (protocol 0/1) pickle."""
    ops = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, _arg, _pos in pickletools.genops(io.BytesIO(head[:HEAD_WINDOW])):
                ops += 1
                if op.name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                    return True
                if op.name == "STOP" or ops > 10_000:
                    return False
        except Exception:
            return False
    return False


def referencing_models(path: Path, root: Path | None = None) -> tuple[str, ...]:
    """The .onnx files whose external_data locations name ``path``.

    Models sit beside their data or, inside the scan ``root``, up to two directories above it
    (``location`` may be ``weights/w0.bin``); without a root only the file's own directory is
    searched, so nothing outside what the user asked to scan is ever read. Names are reported
    relative to the data file's directory.
    """
    note_sibling_read("ONNX models beside the file")
    found: list[str] = []
    levels = 1
    if root is not None:
        try:
            depth = len(path.parent.resolve().relative_to(root.resolve()).parts)
        except (OSError, ValueError):
            depth = 0
        levels = min(SIBLING_LEVELS, depth + 1)
    for up in range(levels):
        if up >= len(path.parents) - 1:
            break
        directory = path.parents[up]
        rel = path.relative_to(directory).as_posix()
        try:
            st = directory.stat()
        except OSError:
            continue
        for model in _onnx_siblings(str(directory), st.st_mtime_ns):
            try:
                mst = Path(model).stat()
            except OSError:
                continue
            for loc in _onnx_locations(model, mst.st_size, mst.st_mtime_ns):
                if os.path.normpath(loc).replace(os.sep, "/") == rel:
                    found.append("../" * up + Path(model).name)
                    break
    return tuple(found)


@lru_cache(maxsize=64)
def _onnx_siblings(directory: str, mtime_ns: int) -> tuple[str, ...]:
    """Paths of the first .onnx files in a directory, listed once per change of the directory.

    Every file nothing else identified asks this, so a directory of many files is listed once,
    not once per file.
    """
    out: list[str] = []
    try:
        with os.scandir(directory) as entries:
            out.extend(e.path for e in entries if e.name.lower().endswith(".onnx"))
    except OSError:
        return ()
    return tuple(sorted(out)[:MAX_SIBLINGS])


@lru_cache(maxsize=256)
def _onnx_locations(model: str, size: int, mtime_ns: int) -> frozenset[str]:
    """external_data locations of one ONNX file (cached per size/mtime: many shards, one model)."""
    try:
        with open(model, "rb") as fh:  # noqa: PTH123 - a sibling named by the user's directory
            return frozenset(_OnnxLocations(ProtoReader(fh, size)).model(size))
    except (ArtifactError, OSError, RecursionError):
        return frozenset()


class _OnnxLocations:
    """Every TensorProto.external_data ``location`` of a ModelProto, wherever tensors nest.

    A small walk of our own (the ONNX scanner's is private to it): model graph (7), functions
    (25) and training info (20); graph nodes (1), initializers (5), sparse initializers (15);
    node attributes t/tensors (5/10), g/graphs (6/11), sparse tensors (22/23).
    """

    def __init__(self, reader: ProtoReader) -> None:
        self.r = reader
        self.found: set[str] = set()
        self.fields = 0

    def _walk(self, start: int, end: int) -> Iterator[Field]:
        for f in self.r.fields(start, end):
            self.fields += 1
            if self.fields > MAX_ONNX_FIELDS:
                raise LimitExceeded("ONNX model with too many fields to attribute external data")
            if f.wire == LEN:
                yield f

    def model(self, size: int) -> set[str]:
        for f in self._walk(0, size):
            if f.number == 7:
                self.graph(f, 0)
            elif f.number in (20, 25):
                for g in self._walk(f.offset, f.end):
                    if (f.number == 20 and g.number in (1, 2)) or (
                        f.number == 25 and g.number == 7
                    ):
                        (self.graph if f.number == 20 else self.node)(g, 1)
        return self.found

    def graph(self, gf: Field, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise LimitExceeded("ONNX subgraphs nested too deeply")
        for f in self._walk(gf.offset, gf.end):
            if f.number == 1:
                self.node(f, depth)
            elif f.number == 5:
                self.tensor(f)
            elif f.number == 15:
                self.sparse(f)

    def node(self, nf: Field, depth: int) -> None:
        for f in self._walk(nf.offset, nf.end):
            if f.number == 5:  # AttributeProto
                for a in self._walk(f.offset, f.end):
                    if a.number in (5, 10):
                        self.tensor(a)
                    elif a.number in (6, 11):
                        self.graph(a, depth + 1)
                    elif a.number in (22, 23):
                        self.sparse(a)

    def sparse(self, sf: Field) -> None:
        for f in self._walk(sf.offset, sf.end):
            if f.number in (1, 2):
                self.tensor(f)

    def tensor(self, tf: Field) -> None:
        for f in self._walk(tf.offset, tf.end):
            if f.number == 13:  # StringStringEntryProto: key = 1, value = 2
                key = value = ""
                for g in self._walk(f.offset, f.end):
                    if g.number == 1:
                        key = self.r.text(g, 64)
                    elif g.number == 2:
                        value = self.r.text(g, 4096)
                if key == "location" and value and len(self.found) < MAX_LOCATIONS:
                    self.found.add(value)


# --------------------------------------------------------------------------------------------
# msgpack


class _Truncated(ArtifactError):
    """The data ended inside a value (for identification: a prefix, not a malformed file)."""


@dataclass(slots=True)
class _Map:
    """A small view of a map: its size, whether all keys are strings, its short entries."""

    count: int
    str_keys: bool = True
    small: dict[Any, Any] = field(default_factory=dict)
    data_at: tuple[int, int] | None = None
    """(offset, length) of the payload under the key ``data`` (msgpack-numpy arrays)."""


@dataclass(frozen=True, slots=True)
class _Blob:
    """A bin/str payload too long to keep: where it is."""

    offset: int
    length: int
    head: bytes


class _Window:
    """Sequential reads through a bounded buffer; long payloads are skipped by seeking."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.pos = 0
        self._buf = b""
        self._start = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > self.size:
            raise _Truncated(f"value runs past the end ({self.pos + n} > {self.size})", self.pos)
        rel = self.pos - self._start
        if rel < 0 or rel + n > len(self._buf):
            self.stream.seek(self.pos)
            self._buf = self.stream.read(max(n, 1 << 20))
            self._start = self.pos
            rel = 0
        out = self._buf[rel : rel + n]
        if len(out) != n:
            raise _Truncated("short read", self.pos)
        self.pos += n
        return out

    def until(self, delim: bytes, limit: int, eof_ok: bool = False) -> bytes:
        """Bytes up to (not including) ``delim``, consuming it; at most ``limit`` bytes.

        At the end of the data that is truncation, unless ``eof_ok`` (a last line).
        """
        out = b""
        while True:
            rel = self.pos - self._start
            if rel < 0 or rel >= len(self._buf):
                if self.pos >= self.size:
                    if eof_ok:
                        return out
                    raise _Truncated("data ends before a delimiter", self.pos)
                self.stream.seek(self.pos)
                self._buf = self.stream.read(1 << 20)
                self._start = self.pos
                rel = 0
                if not self._buf:
                    raise _Truncated("short read", self.pos)
            end = min(len(self._buf), rel + limit + 1 - len(out))
            at = self._buf.find(delim, rel, end)
            if at >= 0:
                out += self._buf[rel:at]
                self.pos = self._start + at + 1
                return out
            out += self._buf[rel:end]
            self.pos = self._start + end
            if len(out) > limit:
                raise ArtifactError(f"no delimiter within {limit} bytes", self.pos - len(out))

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _Truncated(f"value runs past the end ({self.pos + n} > {self.size})", self.pos)
        self.pos += n


_FIXED = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_INT_FMT = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i"}
_INT_FMT[0xD3] = ">q"
KEEP = 256
"""str/bin payloads up to this size are read (keys, dtype names); longer ones are skipped."""


class _Msgpack:
    """A bounded msgpack walker that builds nothing: ext payloads stay opaque bytes."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.w = _Window(stream, size)
        self.items = 0
        self.object_arrays: list[tuple[int, int]] = []
        """(offset, length) of msgpack-numpy object-array payloads (pickles)."""
        self.pickles: list[tuple[int, int]] = []
        """(offset, length) of other bin payloads that start like a pickle or a torch zip."""
        self.last = (0, 0)
        """(offset, length) of the last str/bin payload read."""

    def document(self) -> object:
        """Walk exactly one top-level value; trailing bytes are malformed (unpackb refuses them)."""
        top = self.value(0)
        if self.w.pos != self.w.size:
            raise ArtifactError(
                f"msgpack: {self.w.size - self.w.pos} bytes after the top-level value", self.w.pos
            )
        return top

    def _len(self, n: int) -> int:
        fmt = {1: ">B", 2: ">H", 4: ">I"}[n]
        value: int = struct.unpack(fmt, self.w.take(n))[0]
        return value

    def _payload(self, length: int) -> bytes | _Blob:
        at = self.w.pos
        self.last = (at, length)
        if length <= KEEP:
            return self.w.take(length)
        head = self.w.take(8)
        self.w.skip(length - 8)
        return _Blob(self.last[0], length, head)

    def value(self, depth: int) -> object:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise LimitExceeded(f"msgpack: more than {MAX_ITEMS} values")
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"msgpack: containers nested deeper than {MAX_DEPTH}")
        at = self.w.pos
        b = self.w.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self._map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self._array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self._str(b & 0x1F)
        match b:
            case 0xC0:
                return None
            case 0xC2:
                return False
            case 0xC3:
                return True
            case 0xC4 | 0xC5 | 0xC6:
                return self._bin(self._len(1 << (b - 0xC4)))
            case 0xC7 | 0xC8 | 0xC9:
                length = self._len(1 << (b - 0xC7))
                self.w.take(1)  # ext type code: never interpreted
                self.w.skip(length)
                return _Blob(at, length, b"")
            case 0xCA:
                return struct.unpack(">f", self.w.take(4))[0]
            case 0xCB:
                return struct.unpack(">d", self.w.take(8))[0]
            case _ if b in _FIXED:
                return struct.unpack(_INT_FMT[b], self.w.take(_FIXED[b]))[0]
            case 0xD4 | 0xD5 | 0xD6 | 0xD7 | 0xD8:
                self.w.take(1)
                self.w.skip(1 << (b - 0xD4))
                return _Blob(at, 1 << (b - 0xD4), b"")
            case 0xD9 | 0xDA | 0xDB:
                return self._str(self._len(1 << (b - 0xD9)))
            case 0xDC | 0xDD:
                return self._array(self._len(2 if b == 0xDC else 4), depth)
            case 0xDE | 0xDF:
                return self._map(self._len(2 if b == 0xDE else 4), depth)
        raise ArtifactError(f"msgpack: invalid type byte 0x{b:02x}", at)

    def _str(self, length: int) -> str | _Blob:
        raw = self._payload(length)
        if isinstance(raw, _Blob):
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # msgpack (raw=False, what srsly and flax use) refuses invalid UTF-8 in str.
            raise ArtifactError("msgpack: str value is not UTF-8", self.w.pos - length) from None

    def _bin(self, length: int) -> bytes | _Blob:
        raw = self._payload(length)
        start = raw[:2] if isinstance(raw, bytes) else raw.head[:2]
        if (len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5) or (
            raw[:4] if isinstance(raw, bytes) else raw.head[:4]
        ) == b"PK\x03\x04":
            # A pickle, or a torch.save zip (thinc's PyTorchShim stores torch.save bytes and
            # reads them back with torch.load).
            self.pickles.append(self.last)
        return raw

    def _array(self, count: int, depth: int) -> object:
        if count > self.w.size - self.w.pos:
            raise _Truncated(f"msgpack: array of {count} items in a shorter file", self.w.pos)
        for _ in range(count):
            self.value(depth + 1)
        return []

    def _map(self, count: int, depth: int) -> _Map:
        if 2 * count > self.w.size - self.w.pos:
            raise _Truncated(f"msgpack: map of {count} entries in a shorter file", self.w.pos)
        view = _Map(count)
        for _ in range(count):
            key = self.value(depth + 1)
            value = self.value(depth + 1)
            if not isinstance(key, (str, bytes)):
                view.str_keys = False
            if count <= 16 and isinstance(key, (str, bytes)):
                k = key.encode() if isinstance(key, str) else key
                view.small[k] = value
                if k == b"data" and isinstance(value, (bytes, _Blob)):
                    view.data_at = self.last
        self._msgpack_numpy(view)
        return view

    def _msgpack_numpy(self, view: _Map) -> None:
        """msgpack_numpy: ``{nd: True, type, kind, shape, data}``; kind ``O`` means pickled."""
        small = view.small
        if b"nd" not in small or view.data_at is None:
            return
        kind = small.get(b"kind")
        dtype = small.get(b"type")
        if kind in (b"O", "O") or dtype in (b"|O", "|O", "O", b"O"):
            self.object_arrays.append(view.data_at)


# --------------------------------------------------------------------------------------------
# UBJSON (xgboost)


class _Ubjson:
    """Bounded walker of UBJSON as xgboost writes it (big-endian, optimized typed containers)."""

    INTS: ClassVar[dict[bytes, int]] = {b"i": 1, b"U": 1, b"I": 2, b"l": 4, b"L": 8}
    FMT: ClassVar[dict[bytes, str]] = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}
    FIXED: ClassVar[dict[bytes, int]] = {
        **INTS,
        b"d": 4,
        b"D": 8,
        b"C": 1,
        b"Z": 0,
        b"T": 0,
        b"F": 0,
        b"N": 0,
    }

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.w = _Window(stream, size)
        self.items = 0
        self.top_keys: list[str] = []

    def _int(self, marker: bytes) -> int:
        if marker not in self.INTS:
            raise ArtifactError(f"ubjson: length marker {marker!r} is not an integer", self.w.pos)
        value: int = struct.unpack(self.FMT[marker], self.w.take(self.INTS[marker]))[0]
        if value < 0:
            raise ArtifactError("ubjson: negative length", self.w.pos)
        return value

    def document(self) -> None:
        marker = self.w.take(1)
        if marker != b"{":
            raise ArtifactError("ubjson: xgboost model must be an object", 0)
        self.value(marker, 0, top=True)
        if self.w.pos != self.w.size:
            raise ArtifactError(
                f"ubjson: {self.w.size - self.w.pos} bytes after the model", self.w.pos
            )

    def value(self, marker: bytes, depth: int, top: bool = False) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise LimitExceeded(f"ubjson: more than {MAX_ITEMS} values")
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"ubjson: containers nested deeper than {MAX_DEPTH}")
        if marker in self.FIXED:
            self.w.skip(self.FIXED[marker])
        elif marker in (b"S", b"H"):
            self.w.skip(self._int(self.w.take(1)))
        elif marker in (b"[", b"{"):
            self._container(marker == b"{", depth, top)
        else:
            raise ArtifactError(f"ubjson: invalid type marker {marker!r}", self.w.pos - 1)

    def _container(self, is_object: bool, depth: int, top: bool) -> None:
        kind: bytes | None = None
        count: int | None = None
        nxt = self.w.take(1)
        if nxt == b"$":
            kind = self.w.take(1)
            nxt = self.w.take(1)
            if nxt != b"#":
                raise ArtifactError("ubjson: typed container without a count", self.w.pos)
        if nxt == b"#":
            count = self._int(self.w.take(1))
            nxt = b""
        if count is not None:
            if kind is not None and kind in self.FIXED and not is_object:
                self.w.skip(count * self.FIXED[kind])  # packed numbers: one seek
                return
            if count > self.w.size - self.w.pos:
                raise _Truncated(f"ubjson: {count} items claimed in a shorter file", self.w.pos)
            for _ in range(count):
                if is_object:
                    self._key(self.w.take(1), top)
                self.value(kind or self.w.take(1), depth + 1)
            return
        end = b"}" if is_object else b"]"
        marker = nxt
        while marker != end:
            if marker == b"N":
                marker = self.w.take(1)
                continue
            if is_object:
                self._key(marker, top)
                marker = self.w.take(1)
            self.value(marker, depth + 1)
            marker = self.w.take(1)

    def _key(self, marker: bytes, top: bool) -> None:
        length = self._int(marker)
        raw = self.w.take(min(length, KEEP))
        self.w.skip(length - len(raw))
        if top and len(self.top_keys) < 64:
            self.top_keys.append(raw.decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------
# the scanner


class DataFormatScanner:
    """Structural checks for data-only formats (scanned, not skipped: no code path exists)."""

    name: ClassVar[str] = "dataformats"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {
            ArtifactKind.SENTENCEPIECE,
            ArtifactKind.ONNX_EXTERNAL_DATA,
            ArtifactKind.TORCH_EXPORT,
            ArtifactKind.XGBOOST,
            ArtifactKind.CATBOOST,
            ArtifactKind.MSGPACK,
            ArtifactKind.FLAX_MSGPACK,
            ArtifactKind.WORD2VEC,
            ArtifactKind.FASTTEXT,
            ArtifactKind.HF_DATASET_META,
            ArtifactKind.NUMPY_RAW,
            ArtifactKind.TFLITE,
            ArtifactKind.COREML,
        }
    )
    rules: ClassVar[tuple[Rule, ...]] = (
        FMT001,
        FMT002,
        FMT003,
        FMT004,
        FMT005,
        FMT006,
        FMT007,
        FMT008,
        FMT009,
    )

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Validate the structure of one data-only artifact."""
        raw = artifact.kind in (ArtifactKind.NUMPY_RAW, ArtifactKind.ONNX_EXTERNAL_DATA)
        if not raw and artifact.size > ctx.limits.max_read_bytes:
            raise LimitExceeded(
                f"{artifact.kind.value} of {artifact.size} bytes over the read limit"
            )
        match artifact.kind:
            case ArtifactKind.SENTENCEPIECE:
                _check_sentencepiece(artifact)
            case ArtifactKind.ONNX_EXTERNAL_DATA:
                yield from _check_onnx_data(artifact)
            case ArtifactKind.TORCH_EXPORT:
                yield from _check_torch_export(artifact, ctx)
            case ArtifactKind.XGBOOST:
                _check_xgboost(artifact, ctx)
            case ArtifactKind.CATBOOST:
                _check_catboost(artifact)
            case ArtifactKind.MSGPACK | ArtifactKind.FLAX_MSGPACK:
                yield from _check_msgpack(artifact, ctx)
            case ArtifactKind.WORD2VEC:
                _check_word2vec(artifact, ctx)
            case ArtifactKind.FASTTEXT:
                _check_fasttext(artifact)
            case ArtifactKind.HF_DATASET_META:
                yield from _check_dataset_meta(artifact, ctx)
            case ArtifactKind.TFLITE:
                yield from _check_tflite(artifact)
            case ArtifactKind.COREML:
                yield from _check_coreml(artifact)
            case ArtifactKind.NUMPY_RAW:
                pass  # headerless array bytes: nothing to parse, nothing that runs
            case _:
                raise ArtifactError(f"no structural check for {artifact.kind.value}")


# SentencePiece ------------------------------------------------------------------------------

SP_TOP_FIELDS = frozenset({1, 2, 3, 4, 5})
"""ModelProto: pieces, trainer_spec, normalizer_spec, self_test_data, denormalizer_spec."""
SP_MAX_PIECES = 10_000_000


SP_MAX_PIECE_BYTES = 1 << 20
"""Largest single piece message (real ones are tens of bytes)."""


def _check_sentencepiece(artifact: Artifact) -> None:
    """Walk every top-level field and every piece; nothing is decoded into objects.

    Pieces are parsed from the window's bytes directly: a 256k-piece vocabulary (Gemma) is
    half a million small messages, too many for one generator step each.
    """
    reader = ProtoReader(artifact.stream, artifact.size)
    w = _Window(artifact.stream, artifact.size)
    pieces = 0
    try:
        while w.pos < w.size:
            at = w.pos
            key = _window_varint(w)
            number, wire = key >> 3, key & 7
            if number not in SP_TOP_FIELDS and number < 200:  # 200+: declared extensions
                raise ArtifactError(f"sentencepiece: unexpected field {number}", at)
            if wire != LEN:
                raise ArtifactError(f"sentencepiece: field {number} is not a message", at)
            length = _window_varint(w)
            if number == 1:
                pieces += 1
                if pieces > SP_MAX_PIECES:
                    raise LimitExceeded(f"sentencepiece: more than {SP_MAX_PIECES} pieces")
                if length > SP_MAX_PIECE_BYTES:
                    raise LimitExceeded(f"sentencepiece: piece message of {length} bytes", at)
                _check_piece(w.take(length), w.pos - length)
            else:
                if w.pos + length > w.size:
                    raise ArtifactError(f"sentencepiece: field {number} runs past the end", at)
                for _ in reader.fields(w.pos, w.pos + length):
                    pass  # a well-formed nested message is all we need
                w.skip(length)
    except _Truncated as exc:
        raise ArtifactError(f"sentencepiece: truncated, {exc}", exc.offset) from None
    if pieces == 0:
        raise ArtifactError("sentencepiece: model has no pieces")


def _window_varint(w: _Window) -> int:
    rel = w.pos - w._start
    buf = w._buf
    if rel >= 0 and rel + 10 <= len(buf):
        # Fast path: decode straight from the window (the common case by far).
        b = buf[rel]
        if not b & 0x80:
            w.pos += 1
            return b
        try:
            value, nxt = _varint(buf, rel)
        except ValueError:
            raise ArtifactError("protobuf: varint longer than 10 bytes", w.pos) from None
        w.pos += nxt - rel
        return value
    result = 0
    for i in range(10):
        b = w.take(1)[0]
        result |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return result
    raise ArtifactError("protobuf: varint longer than 10 bytes", w.pos)


def _check_piece(body: bytes, offset: int) -> None:
    """SentencePiece: piece = 1 (string), score = 2 (float), type = 3 (enum 1..6)."""
    pos, end = 0, len(body)
    try:
        while pos < end:
            key, pos = _varint(body, pos)
            number, wire = key >> 3, key & 7
            if wire == LEN:
                length, pos = _varint(body, pos)
                if number == 1:
                    body[pos : pos + length].decode("utf-8")
                pos += length
            elif wire == I32:
                pos += 4
            elif wire == VARINT:
                value, pos = _varint(body, pos)
                if number == 3 and not 1 <= value <= 6:
                    raise ArtifactError(f"sentencepiece: piece type {value} out of range", offset)
            elif wire == 1:
                pos += 8
            else:
                raise ArtifactError(f"sentencepiece: wire type {wire} in a piece", offset)
            if number == 1 and wire != LEN:
                raise ArtifactError("sentencepiece: piece is not a string", offset)
            if number == 2 and wire != I32:
                raise ArtifactError("sentencepiece: score is not a float", offset)
            if number == 3 and wire != VARINT:
                raise ArtifactError("sentencepiece: piece type is not an enum", offset)
    except UnicodeDecodeError:
        raise ArtifactError("sentencepiece: piece is not UTF-8", offset) from None
    except ValueError as exc:
        raise ArtifactError(f"sentencepiece: malformed piece ({exc})", offset) from None
    if pos != end:
        raise ArtifactError("sentencepiece: piece field runs past its message", offset)


# ONNX external data -------------------------------------------------------------------------


def _check_onnx_data(artifact: Artifact) -> Iterator[Finding]:
    if artifact.fs_path is None or artifact.member:
        yield artifact.finding(
            FMT001,
            "ONNX external data inside a container: no model in its directory to attribute it to",
            severity=Severity.LOW,
            confidence=Confidence.MEDIUM,
        )
        return
    models = referencing_models(artifact.fs_path, artifact.root)
    if models:
        yield artifact.finding(
            FMT002,
            f"external data attributed to {', '.join(models[:4])}",
            evidence=", ".join(models[:8]),
        )
        return
    yield artifact.finding(
        FMT001,
        "named like ONNX external data but not referenced by any .onnx in this directory",
        evidence=artifact.name,
        confidence=Confidence.MEDIUM,
    )


# torch.export ---------------------------------------------------------------------------------

_PT2_RAW = re.compile(r"(?:^|/)data/(?:weights|constants)/[^/]+$")
"""Raw tensor payloads of a .pt2 archive (unless the config marks them pickled)."""
_PT2_GRAPH = re.compile(r"(?:^|/)(?:models/[^/]+|serialized_exported_program)\.json$")
"""Graphs: ``models/*.json`` (torch >= 2.6) or ``serialized_exported_program.json`` (older)."""
TORCH_NAMESPACES = frozenset(
    {
        "aten", "prims", "higher_order", "_c10d_functional", "c10d_functional", "c10d",
        "quantized_decomposed", "quantized", "_quantized", "profiler", "_higher_order_ops",
        "torchvision", "image", "fbgemm", "_export", "export",
    }
)  # fmt: skip
"""torch.ops namespaces PyTorch (and torchvision's own ops) register."""
OPERATOR_FUNCS = frozenset(
    {
        "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
        "abs", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert",
        "lshift", "rshift", "matmul", "truth", "index", "contains",
    }
)  # fmt: skip
SYM_HELPER = re.compile(r"torch\.(?:_?sym_[a-z_]+|_assert(?:_async|_scalar)?|_check[a-z_]*)$")
MATH_FUNC = re.compile(r"math\.[a-z_0-9]+$")
MAX_PT2_JSON = 256 * 2**20
NATIVE_MAGICS = (
    b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe",
)  # fmt: skip
"""ELF, PE, Mach-O (both byte orders, 32/64-bit) and fat Mach-O."""
NATIVE_EXTS = (".so", ".dll", ".dylib", ".pyd")


def _check_torch_export(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Walk the zip like torch does, dispatch everything that can hold code, check graphs."""
    stream = artifact.stream
    ratio = ctx.limits.max_archive_ratio

    def want(e: _zip.ZipEntry) -> Want:
        if not _PT2_RAW.search(e.name) or e.name.endswith(".json"):
            return Want.READ
        # Raw tensor bytes are never unpickled; a member saved with torch.save (zip) or a
        # pickle is, so those are read and handed on like any other member.
        try:
            chunks = _zip.iter_member(stream, e, 8, ratio, chunk=8)
            start = next(chunks, b"")
            chunks.close()
        except ArtifactError:
            return Want.READ
        if start.startswith(b"PK") or (start[:1] == b"\x80" and start[1:2] <= b"\x05"):
            return Want.READ
        return Want.SKIP

    def handle(member: Artifact) -> Iterator[Finding]:
        name = member.member[-1]
        if _PT2_GRAPH.search(name):
            yield from _check_pt2_graph(member, ctx)
            return
        member.stream.seek(0)
        magic = member.stream.read(4)
        member.stream.seek(0)
        if magic.startswith(NATIVE_MAGICS) or name.lower().endswith(NATIVE_EXTS):
            yield member.finding(
                FMT007,
                "native code in a torch.export package: loading it runs this library",
                evidence=name,
            )
        yield from ctx.dispatch(member)

    yield from walk_zip(artifact, ctx, want=want, handler=handle)


def _check_pt2_graph(member: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """``models/*.json``: every node target must be a torch operator or a known helper."""
    limit = min(ctx.limits.max_header_bytes, MAX_PT2_JSON)
    if member.size > limit:
        raise LimitExceeded(f"torch.export graph of {member.size} bytes over {limit}")
    member.stream.seek(0)
    try:
        doc = json.loads(member.stream.read(member.size))
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"torch.export graph is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ArtifactError("torch.export graph is not a JSON object")
    bad: list[str] = []
    custom: dict[str, int] = {}
    for target in _graph_targets(doc):
        verdict = _target_verdict(target)
        if verdict == "bad" and len(bad) < 16:
            bad.append(target)
        elif verdict.startswith("ns:"):
            custom[verdict[3:]] = custom.get(verdict[3:], 0) + 1
    if bad:
        yield member.finding(
            FMT004,
            f"graph node target(s) resolve outside torch operators: {', '.join(bad[:4])}",
            evidence=", ".join(bad),
        )
    for ns, count in sorted(custom.items()):
        yield member.finding(
            FMT005,
            f"{count} node(s) call operators in namespace {ns!r}",
            evidence=f"torch.ops.{ns}",
        )


def _graph_targets(doc: Any) -> Iterator[str]:
    """Every ``target`` string of every graph node, wherever graphs nest (submodules, cond)."""
    todo: list[tuple[Any, int]] = [(doc, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise LimitExceeded("torch.export graph nested too deeply")
        if isinstance(node, dict):
            target = node.get("target")
            if isinstance(target, str) and "inputs" in node:
                yield target
            todo.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            todo.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


def _target_verdict(target: str) -> str:
    """``ok``, ``bad`` or ``ns:<namespace>`` for one serialized call target."""
    if target.startswith("torch.ops."):
        parts = target.split(".")
        if len(parts) < 4 or not all(p.isidentifier() for p in parts[2:]):
            return "bad"
        ns = parts[2]
        return "ok" if ns in TORCH_NAMESPACES else f"ns:{ns}"
    if target.startswith("_operator."):
        return "ok" if target[len("_operator.") :] in OPERATOR_FUNCS else "bad"
    if MATH_FUNC.match(target) or SYM_HELPER.match(target):
        return "ok"
    if target.startswith(("torch", "_operator", "math")):
        return "bad"  # resolved by getattr walks from these modules
    return "ok"  # left as a string by the deserializer: never called


# xgboost / catboost --------------------------------------------------------------------------


def _check_xgboost(artifact: Artifact, ctx: ScanContext) -> None:
    stream = artifact.stream
    stream.seek(0)
    first = stream.read(4)
    if first[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        # Legacy binary: the names must parse; the booster's trees follow (raw structs, no
        # code path in them), so the file must at least hold something past the names.
        stream.seek(0)
        legacy = _xgb_legacy_names(stream.read(4 + XGB_PARAM_BYTES + 2 * (8 + 64)))
        if legacy is None:
            raise ArtifactError("xgboost binary model: objective/booster names do not parse")
        if legacy[0] >= artifact.size:
            raise ArtifactError("xgboost binary model ends after its header", legacy[0])
        return
    if first[:1] == b"{" and first[1:2] in (b"i", b"U", b"I", b"l", b"L"):
        walk = _Ubjson(stream, artifact.size)
        walk.document()
        keys = set(walk.top_keys)
    else:
        limit = ctx.limits.max_header_bytes
        if artifact.size > limit:
            raise LimitExceeded(f"xgboost JSON of {artifact.size} bytes over {limit}")
        stream.seek(0)
        try:
            doc = json.loads(stream.read(artifact.size))
        except (ValueError, RecursionError) as exc:
            raise ArtifactError(f"xgboost JSON does not parse: {exc}") from None
        if not isinstance(doc, dict):
            raise ArtifactError("xgboost JSON model is not an object")
        if not isinstance(doc.get("learner"), dict) or not isinstance(doc.get("version"), list):
            raise ArtifactError("xgboost JSON model without a learner object or version list")
        keys = set(doc)
    if "learner" not in keys:
        raise ArtifactError("xgboost model has no learner")


def _check_catboost(artifact: Artifact) -> None:
    """``CBM1``, a uint32 core size, a flatbuffers TModelCore; the root table must lie inside."""
    stream = artifact.stream
    stream.seek(0)
    head = stream.read(16)
    if len(head) < 12 or not head.startswith(b"CBM1"):
        raise ArtifactError("catboost: truncated header")
    (core,) = struct.unpack_from("<I", head, 4)
    if core < 8 or 8 + core > artifact.size:
        raise ArtifactError(f"catboost: model core of {core} bytes past the end of the file", 4)
    (root,) = struct.unpack_from("<I", head, 8)
    if root + 4 > core:
        raise ArtifactError(f"catboost: flatbuffer root offset {root} outside the core", 8)
    stream.seek(8 + root)
    (soffset,) = struct.unpack("<i", stream.read(4))
    vtable = root - soffset
    if vtable < 0 or vtable + 4 > core:
        raise ArtifactError("catboost: flatbuffer vtable outside the core", 8 + root)
    stream.seek(8 + vtable)
    vsize, osize = struct.unpack("<HH", stream.read(4))
    if vsize < 4 or vsize % 2 or vtable + vsize > core or root + osize > core:
        raise ArtifactError("catboost: flatbuffer vtable is malformed", 8 + vtable)


# msgpack (spaCy, Flax) -----------------------------------------------------------------------


def _check_msgpack(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    walk = _Msgpack(artifact.stream, artifact.size)
    try:
        walk.document()
    except _Truncated as exc:
        raise ArtifactError(f"msgpack: truncated ({exc})", exc.offset) from None
    for offset, length in walk.object_arrays[:16]:
        yield artifact.finding(
            FMT003,
            f"object-dtype array pickled in msgpack ({length} bytes at {offset})",
            offset=offset,
        )
    # msgpack_numpy unpickles object arrays; other bins that start like a pickle are handed on
    # too (a loader's ext hook may unpickle them). The pickle scanner judges both.
    for offset, length in walk.object_arrays[:64]:
        yield from _dispatch_slice(artifact, ctx, offset, length, ArtifactKind.PICKLE)
    for offset, length in walk.pickles[:64]:
        if (offset, length) not in walk.object_arrays:
            yield from _dispatch_slice(artifact, ctx, offset, length, ArtifactKind.UNKNOWN)


def _dispatch_slice(
    artifact: Artifact, ctx: ScanContext, offset: int, length: int, kind: ArtifactKind
) -> Iterator[Finding]:
    """Hand ``length`` bytes at ``offset`` to the engine (``UNKNOWN``: the engine sniffs)."""
    spool = _Spool()
    stream = artifact.stream
    stream.seek(offset)
    left = min(length, ctx.limits.max_read_bytes)
    while left:
        block = stream.read(min(left, 1 << 20))
        if not block:
            break
        spool.write(block)
        left -= len(block)

    def as_kind(child: Artifact) -> Iterator[Finding]:
        return ctx.dispatch(replace(child, kind=kind))

    yield from handoff(artifact, f"@{offset}", spool, as_kind, None)


# word2vec / fastText ---------------------------------------------------------------------------


def _check_word2vec(artifact: Artifact, ctx: ScanContext) -> None:
    w = _Window(artifact.stream, artifact.size)
    header = b""
    while not header.endswith(b"\n"):
        if len(header) > 64:
            raise ArtifactError("word2vec: header line too long")
        header += w.take(1)
    m = W2V_HEADER.match(header)
    if m is None:
        raise ArtifactError("word2vec: header is not '<vocab> <dim>'")
    vocab, dim = int(m.group(1)), int(m.group(2))
    artifact.stream.seek(w.pos)
    probe = artifact.stream.read(HEAD_WINDOW)
    binary = not _w2v_text_line(probe, 1 if probe[:1] == b"\n" else 0, dim)
    try:
        if binary:
            _word2vec_binary(w, vocab, dim)
        else:
            _word2vec_text(w, vocab, dim, ctx)
    except _Truncated as exc:
        raise ArtifactError(f"word2vec: truncated ({exc})", exc.offset) from None


def _word2vec_binary(w: _Window, vocab: int, dim: int) -> None:
    for i in range(vocab):
        start = w.pos
        try:
            # The C tool ends each vector with a newline; gensim does not.
            word = w.until(b" ", MAX_WORD).lstrip(b"\n")
        except _Truncated:
            raise
        except ArtifactError:
            raise ArtifactError(f"word2vec: word {i} longer than {MAX_WORD} bytes", start) from None
        if not word:
            raise ArtifactError(f"word2vec: entry {i} has an empty word", start)
        w.skip(dim * 4)
    rest = w.size - w.pos
    if rest > 1 or (rest == 1 and w.take(1) != b"\n"):
        raise ArtifactError(f"word2vec: {rest} bytes after the last of {vocab} vectors", w.pos)


def _word2vec_text(w: _Window, vocab: int, dim: int, ctx: ScanContext) -> None:
    lines = 0
    while w.pos < w.size:
        start = w.pos
        try:
            line = w.until(b"\n", ctx.limits.max_line_bytes, eof_ok=True)
        except _Truncated:
            raise
        except ArtifactError:
            raise LimitExceeded("word2vec: text line over the line limit", start) from None
        if not line.strip():
            continue
        lines += 1
        parts = line.split()
        if len(parts) != dim + 1:
            raise ArtifactError(
                f"word2vec: line {lines} has {len(parts) - 1} of {dim} values", start
            )
        if lines <= 1000:
            try:
                [float(p) for p in parts[1:]]
            except ValueError:
                raise ArtifactError(f"word2vec: line {lines} holds a non-number", start) from None
    if lines != vocab:
        raise ArtifactError(f"word2vec: header says {vocab} words, file has {lines}")


def _check_fasttext(artifact: Artifact) -> None:
    """Facebook fastText ``.bin``/``.ftz``: args, dictionary, then the input/output matrices."""
    w = _Window(artifact.stream, artifact.size)
    try:
        _fasttext(w)
    except _Truncated as exc:
        raise ArtifactError(f"fasttext: truncated ({exc})", exc.offset) from None
    if w.pos != w.size:
        raise ArtifactError(f"fasttext: {w.size - w.pos} bytes after the model", w.pos)


def _fasttext_args_ok(args: tuple[Any, ...]) -> bool:
    """Args: dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t."""
    dim, ws, epoch, min_count, neg, ngrams, loss, model, bucket, minn, maxn, lr_rate, t = args
    return bool(
        0 < dim <= 1 << 16
        and 0 < ws <= 1000
        and 0 < epoch <= 1_000_000
        and min_count >= 0
        and 0 <= neg <= 1000
        and 0 < ngrams <= 100
        and 1 <= loss <= 4
        and 1 <= model <= 3
        and 0 <= bucket <= 1 << 31
        and 0 <= minn <= maxn <= 1000
        and lr_rate > 0
        and 0.0 <= t < 1.0
    )


def _fasttext(w: _Window) -> None:
    first = struct.unpack("<i", w.take(4))[0]
    new_format = first == FASTTEXT_MAGIC
    if new_format:
        version = struct.unpack("<i", w.take(4))[0]
        if not 10 <= version <= 12:
            raise ArtifactError(f"fasttext: unknown version {version}", 4)
        args = struct.unpack("<12id", w.take(56))
    else:
        # Files from before the magic (2016): the arguments start at byte 0.
        args = (first, *struct.unpack("<11id", w.take(52)))
    if not _fasttext_args_ok(args):
        dim, loss, model = args[0], args[6], args[7]
        raise ArtifactError(
            f"fasttext: implausible arguments dim={dim} loss={loss} model={model}", 8
        )
    size, nwords, nlabels = struct.unpack("<iii", w.take(12))
    _ntokens = struct.unpack("<q", w.take(8))[0]
    prune = struct.unpack("<q", w.take(8))[0] if new_format else 0
    if size < 0 or nwords < 0 or nlabels < 0 or nwords + nlabels != size or prune < -1:
        raise ArtifactError("fasttext: inconsistent dictionary counts", w.pos)
    if size > w.size - w.pos:
        raise ArtifactError(f"fasttext: {size} words claimed in a shorter file", w.pos)
    for i in range(size):
        start = w.pos
        try:
            w.until(b"\x00", MAX_WORD)
        except _Truncated:
            raise
        except ArtifactError:
            raise ArtifactError(f"fasttext: word {i} longer than {MAX_WORD} bytes", start) from None
        _count, kind = struct.unpack("<qb", w.take(9))
        if kind not in (0, 1):
            raise ArtifactError(f"fasttext: word {i} has entry type {kind}", start)
    if prune > 0:
        w.skip(prune * 8)
    for what in ("input", "output"):
        quant = w.take(1)[0] if new_format else 0
        if quant:
            _fasttext_quant(w, what)
        else:
            m, n = struct.unpack("<qq", w.take(16))
            if m < 0 or n < 0 or m * n * 4 > w.size - w.pos:
                raise ArtifactError(f"fasttext: {what} matrix {m}x{n} past the end", w.pos)
            w.skip(m * n * 4)


def _fasttext_quant(w: _Window, what: str) -> None:
    qnorm = w.take(1)[0]
    m, n = struct.unpack("<qq", w.take(16))
    (codesize,) = struct.unpack("<i", w.take(4))
    if m < 0 or n < 0 or codesize < 0:
        raise ArtifactError(f"fasttext: quantized {what} matrix has negative sizes", w.pos)
    w.skip(codesize)
    _product_quantizer(w)
    if qnorm:
        w.skip(m)
        _product_quantizer(w)


def _product_quantizer(w: _Window) -> None:
    dim, nsubq, dsub, lastdsub = struct.unpack("<iiii", w.take(16))
    if dim < 0 or nsubq < 0 or dsub < 0 or lastdsub < 0:
        raise ArtifactError("fasttext: product quantizer has negative sizes", w.pos)
    w.skip(dim * 256 * 4)


# Hugging Face datasets metadata ---------------------------------------------------------------


def _check_dataset_meta(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    limit = ctx.limits.max_header_bytes
    if artifact.size > limit:
        raise LimitExceeded(f"dataset metadata of {artifact.size} bytes over {limit}")
    artifact.stream.seek(0)
    try:
        doc = json.loads(artifact.stream.read(artifact.size))
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"dataset metadata is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ArtifactError("dataset metadata is not a JSON object")
    names: list[str] = []
    files = doc.get("_data_files", [])
    if not isinstance(files, list):
        raise ArtifactError("state.json: _data_files is not a list")
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise ArtifactError("state.json: a _data_files entry has no filename")
        names.append(entry["filename"])
    splits = doc.get("splits") if artifact.name.lower() == "dataset_dict.json" else None
    if isinstance(splits, list):
        names.extend(s for s in splits if isinstance(s, str))
    features = doc.get("features")
    if features is not None and not isinstance(features, (dict, list)):
        raise ArtifactError("dataset_info.json: features is not an object")

    for name in names:
        problem = path_escape(name) or ("URL" if "://" in name else None)
        if problem:
            yield artifact.finding(
                FMT006,
                f"data file or split {name!r}: {problem}",
                evidence=name,
            )


# TFLite ------------------------------------------------------------------------------------------


TFLITE_MAX_OPCODES = 10_000
FLEX_IO_OPS = frozenset(
    {
        "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "Restore", "RestoreV2",
        "RestoreSlice", "PrintV2", "Print", "ImmutableConst", "PyFunc", "EagerPyFunc",
    }
)  # fmt: skip
"""TensorFlow ops reachable through the Flex delegate that touch files or run Python."""


class _Flatbuffer:
    """Bounds-checked reads of flatbuffer tables, vectors and strings from a stream."""

    def __init__(self, stream: BinaryIO, size: int, what: str) -> None:
        self.stream = stream
        self.size = size
        self.what = what

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or pos + n > self.size:
            raise ArtifactError(f"{self.what}: offset {pos} outside the file", max(pos, 0))
        self.stream.seek(pos)
        return self.stream.read(n)

    def u32(self, pos: int) -> int:
        value: int = struct.unpack("<I", self.read(pos, 4))[0]
        return value

    def table(self, pos: int) -> tuple[int, int]:
        """(table position, vtable position) of the table at ``pos``, both checked."""
        (soffset,) = struct.unpack("<i", self.read(pos, 4))
        vtable = pos - soffset
        vsize, osize = struct.unpack("<HH", self.read(vtable, 4))
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size or pos + osize > self.size:
            raise ArtifactError(f"{self.what}: malformed vtable", vtable)
        return pos, vtable

    def field(self, table: tuple[int, int], index: int) -> int | None:
        """Absolute position of field ``index`` of a table, or ``None`` when absent."""
        pos, vtable = table
        (vsize,) = struct.unpack("<H", self.read(vtable, 2))
        if 4 + 2 * index + 2 > vsize:
            return None
        (off,) = struct.unpack("<H", self.read(vtable + 4 + 2 * index, 2))
        return pos + off if off else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int, limit: int) -> list[int]:
        """Positions of the uoffset elements of the vector referenced at ``pos``."""
        start = self.deref(pos)
        count = self.u32(start)
        if count > limit:
            raise LimitExceeded(f"{self.what}: vector of {count} entries (limit {limit})", start)
        if start + 4 + 4 * count > self.size:
            raise ArtifactError(f"{self.what}: vector runs past the end", start)
        return [start + 4 + 4 * i for i in range(count)]

    def string(self, pos: int, limit: int = 256) -> str:
        start = self.deref(pos)
        length = self.u32(start)
        if start + 4 + length > self.size:
            raise ArtifactError(f"{self.what}: string runs past the end", start)
        return self.read(start + 4, min(length, limit)).decode("utf-8", "replace")


def _check_tflite(artifact: Artifact) -> Iterator[Finding]:
    """A ``TFL3`` flatbuffer: root table and operator codes; custom and Flex ops are reported."""
    fb = _Flatbuffer(artifact.stream, artifact.size, "tflite")
    head = fb.read(0, 8)
    if head[4:8] != b"TFL3":
        raise ArtifactError("tflite: no TFL3 identifier")
    root = fb.table(fb.u32(0))
    codes = fb.field(root, 1)  # Model.operator_codes
    customs: list[str] = []
    if codes is not None:
        for element in fb.vector(codes, TFLITE_MAX_OPCODES):
            code = fb.table(fb.deref(element))
            custom = fb.field(code, 1)  # OperatorCode.custom_code
            if custom is not None and len(customs) < 64:
                customs.append(fb.string(custom))
    if fb.field(root, 2) is None:  # Model.subgraphs
        raise ArtifactError("tflite: model has no subgraphs")
    risky = [c for c in customs if c.startswith("Flex") and c[4:] in FLEX_IO_OPS]
    if risky:
        yield artifact.finding(
            FMT009,
            f"Flex (TensorFlow) ops that touch files or run Python: {', '.join(risky[:5])}",
            evidence=", ".join(risky[:16]),
            severity=Severity.HIGH,
        )
    elif customs:
        yield artifact.finding(
            FMT009,
            f"custom operator(s) the loading app must register: {', '.join(customs[:5])}",
            evidence=", ".join(customs[:16]),
        )


# Core ML -----------------------------------------------------------------------------------------

COREML_PIPELINES = frozenset({200, 201, 202})
"""Model.pipelineClassifier/pipelineRegressor (which wrap a Pipeline at 1) and pipeline:
Pipeline { repeated Model models = 1 }."""
COREML_NEURAL = frozenset({303, 403, 500})
"""neuralNetworkRegressor/Classifier/neuralNetwork: layers = 1, each NeuralNetworkLayer."""
COREML_CUSTOM_MODEL = 555
COREML_CUSTOM_LAYER = 500
"""NeuralNetworkLayer.custom (CustomLayerParams: className = 10)."""
COREML_MAX_DEPTH = 16


def _check_coreml(artifact: Artifact) -> Iterator[Finding]:
    """``.mlmodel`` (Model protobuf, coremltools' specification): structure, custom code."""
    reader = ProtoReader(artifact.stream, artifact.size)
    custom: list[str] = []
    _coreml_model(reader, 0, artifact.size, custom, 0)
    if custom:
        yield artifact.finding(
            FMT008,
            f"custom Core ML class(es): {', '.join(custom[:5])}",
            evidence=", ".join(custom[:16]),
        )


def _coreml_model(reader: ProtoReader, start: int, end: int, custom: list[str], depth: int) -> None:
    if depth > COREML_MAX_DEPTH:
        raise LimitExceeded(f"Core ML pipelines nested deeper than {COREML_MAX_DEPTH}")
    version = typed = False
    for f in reader.fields(start, end):
        if f.number == 1:
            version = f.wire == VARINT
        elif f.number >= 200:
            typed = True
            if f.wire != LEN:
                raise ArtifactError(
                    f"coreml: model type field {f.number} is not a message", f.offset
                )
            if f.number in COREML_PIPELINES:
                pipeline = [(f.offset, f.end)]
                if f.number != 202:  # Pipeline{Classifier,Regressor} { Pipeline pipeline = 1 }
                    pipeline = [
                        (g.offset, g.end)
                        for g in reader.fields(f.offset, f.end)
                        if g.number == 1 and g.wire == LEN
                    ]
                for p_start, p_end in pipeline:
                    for g in reader.fields(p_start, p_end):
                        if g.number == 1 and g.wire == LEN:
                            _coreml_model(reader, g.offset, g.end, custom, depth + 1)
            elif f.number in COREML_NEURAL:
                for g in reader.fields(f.offset, f.end):
                    if g.number == 1 and g.wire == LEN:
                        _coreml_layer(reader, g.offset, g.end, custom)
            elif f.number == COREML_CUSTOM_MODEL:
                custom.append(_class_name(reader, f.offset, f.end) or "<customModel>")
    if not version:
        raise ArtifactError("coreml: no specificationVersion", start)
    if not typed:
        raise ArtifactError("coreml: no model type", start)


def _coreml_layer(reader: ProtoReader, start: int, end: int, custom: list[str]) -> None:
    for f in reader.fields(start, end):
        if f.number == COREML_CUSTOM_LAYER and f.wire == LEN and len(custom) < 64:
            custom.append(_class_name(reader, f.offset, f.end) or "<custom layer>")


def _class_name(reader: ProtoReader, start: int, end: int) -> str:
    for f in reader.fields(start, end):
        if f.number == 10 and f.wire == LEN:
            return reader.text(f, 256)
    return ""


__all__ = ["DataFormatScanner", "identify", "referencing_models"]
