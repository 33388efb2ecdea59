"""Decide what an artifact is from its bytes the way the real loaders do; the name breaks ties.

A pickle named ``.json`` is a pickle (CVE-2025-1889, CVE-2025-10155): routing by extension is how
other scanners were bypassed. Where our view and a loader's could differ, the loader's wins:
torch.load tests only ``PK\\x03\\x04`` at byte 0 and otherwise unpickles from byte 0, CPython's
unpickler needs no PROTO opcode, joblib picks a decompressor from a few prefix bytes. Calling
something a pickle still needs a bar, since ``.`` is the STOP opcode: a stack-consistent walk to
STOP, or a break only after the loader already imported and called something. See
``docs/identification.md``.
"""

from __future__ import annotations

import json
import lzma
import re
import struct
import zlib
from typing import BinaryIO

from scanners import _zip
from scanners._magic import (
    BZIP2_MAGIC,
    GZIP_MAGIC,
    HDF5_MAGIC,
    LZ4_MAGIC,
    NUMPY_MAGIC,
    SEVEN_ZIP_MAGIC,
    XZ_MAGIC,
    ZIP_LOCAL_MAGIC,
    is_legacy_torch,
    is_pickle_stream,
)
from supplychain.core.model import ArtifactKind

HEAD = 64 * 1024
PICKLE_WALK_BYTES = 1 << 20
ZIP_HINT_EXTS = (".zip", ".pt", ".pth", ".keras", ".npz", ".ckpt", ".bin", ".pt2")
TEXT_DATASET_EXTS = {".csv": ArtifactKind.DATASET_CSV, ".tsv": ArtifactKind.DATASET_CSV}
JSONL_EXTS = (".jsonl", ".ndjson")
TEMPLATE_NAMES = ("chat_template.jinja", "chat_template.json")
TEMPLATE_EXTS = (".jinja", ".jinja2", ".j2")
YAML_EXTS = (".yaml", ".yml")
NOT_TEMPLATE_EXTS = (".md", ".markdown", ".rst", ".html", ".htm", ".json", ".py")
"""Documents that may quote Jinja in examples; only a template's own name makes them templates."""
YAML_CHAT_TEMPLATE = re.compile(rb"(?m)^chat_template\s*:")
MODEL_CARD_NAMES = ("readme.md", "readme.markdown", "modelcard.md", "model_card.md")
FRONT_MATTER = re.compile(rb"\A(?:\xef\xbb\xbf)?---[ \t]*\r?\n")
"""A model card opens with a ``---`` line; a README without one stays plain text."""
PROTO_FIELDS_ONNX = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25})
CONFIG_NAMES = ("config.json", "tokenizer_config.json", "generation_config.json")
SAVEDMODEL_NAMES = ("saved_model.pb", "keras_metadata.pb", "fingerprint.pb")
SAFETENSORS_MAX_HEADER = 100_000_000
"""The safetensors library refuses headers above 100 MB; so do we."""
SAFETENSORS_VALIDATE_BYTES = 64 * 2**20
"""Longest header parsed in full when the length bytes are ambiguous (``80 0X`` = PROTO X)."""


def _lower_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def sniff(stream: BinaryIO, size: int, name: str) -> ArtifactKind:
    """Classify ``stream`` (seekable) by content; leaves the position undefined.

    Order (docs/identification.md): placeholders (empty file, Git LFS pointer); what torch.load
    sees at byte 0 (``PK\\x03\\x04``); a validated safetensors header before the pickle PROTO
    test; other strong magics and media; a pickle walk from byte 0 (the unpickler's view wins over
    a zip found further on); a zip behind a prefix; data-only formats; protobuf; text.
    """
    stream.seek(0)
    head = stream.read(HEAD)
    lname = _lower_name(name)
    if size == 0 or not head:
        return ArtifactKind.EMPTY
    if is_lfs_pointer(head, size):
        return ArtifactKind.LFS_POINTER
    kind = _sniff_magic(stream, head, size, lname)
    if kind in OFFSET_MAGIC_KINDS and _looks_like_pickle_head(head):
        # A magic found past byte 0 can sit inside a pickle's string argument; the unpickler
        # (torch.load's legacy path, joblib) reads from byte 0 and runs the pickle.
        kind = ArtifactKind.PICKLE
    if kind is not None:
        return _torch_legacy(head, kind)
    if _looks_like_pickle(stream, lname, size):
        # NOTE: torch.load (legacy path), numpy and joblib unpickle from byte 0 whatever the
        # name says: a pickle placed before an embedded zip is a pickle to them, so it is to us.
        return _torch_legacy(head, ArtifactKind.PICKLE)
    if size >= 22 and lname.endswith(ZIP_HINT_EXTS):
        kind = _sniff_zip(stream, size)
        if kind is not None:
            return kind
    from scanners import dataformats  # lazy: start-up of a one-file scan

    kind = dataformats.identify(stream, head, size, lname)
    if kind is not None:
        return kind
    kind = _sniff_protobuf(stream, head, size, lname)
    if kind is not None:
        return kind
    return _sniff_text(head, lname)


def _torch_legacy(head: bytes, kind: ArtifactKind) -> ArtifactKind:
    """A pickle whose first value is torch's legacy magic number is a pre-1.6 torch.save stream:
    pickles then raw storage records, parsed as that layout by the torch scanner."""
    if kind is not ArtifactKind.PICKLE:
        return kind
    if is_legacy_torch(head):
        return ArtifactKind.TORCH_LEGACY
    return kind


OFFSET_MAGIC_KINDS = frozenset({ArtifactKind.TFLITE, ArtifactKind.HDF5})
"""Kinds whose magic need not be at byte 0 (``TFL3`` at 4, HDF5 superblock at 512…)."""

LFS_PREFIXES = (
    b"version https://git-lfs.github.com/spec/",
    b"version https://hawser.github.com/spec/",
)
LFS_MAX_BYTES = 1024
"""The LFS spec keeps pointer files below 1024 bytes; git-lfs never reads a bigger one."""


def is_lfs_pointer(head: bytes, size: int) -> bool:
    """A Git LFS pointer: the text ``git clone`` leaves when git-lfs did not fetch the object."""
    if size >= LFS_MAX_BYTES or not head.startswith(LFS_PREFIXES):
        return False
    return b"\noid " in head and b"\nsize " in head


MEDIA_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (0, b"%PDF-", "PDF document"),
    (0, b"II*\x00", "TIFF image"),
    (0, b"MM\x00*", "TIFF image"),
    (0, b"8BPS", "Photoshop image"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    (0, b"ID3", "MP3 audio"),
    (0, b"OggS\x00", "Ogg media"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"MThd\x00\x00\x00\x06", "MIDI audio"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM video"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE2 (legacy Office) document"),
    (0, b"wOFF", "WOFF font"),
    (0, b"wOF2", "WOFF2 font"),
)
"""Leading magics of files that hold no model (ZIP-based Office documents stay zips)."""
RIFF_MEDIA = {b"WEBP": "WebP image", b"WAVE": "WAV audio", b"AVI ": "AVI video"}
FTYP_BRANDS_IMAGE = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def media_label(head: bytes, size: int) -> str | None:
    """What image, audio, video or document format ``head`` starts with, or ``None``."""
    for off, magic, label in MEDIA_MAGICS:
        if head[off : off + len(magic)] == magic:
            return label
    if head[:4] == b"RIFF" and head[8:12] in RIFF_MEDIA:
        return RIFF_MEDIA[head[8:12]]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF audio"
    if head[4:8] == b"ftyp" and 8 <= int.from_bytes(head[:4], "big") <= 4096:
        return "HEIF/AVIF image" if head[8:12] in FTYP_BRANDS_IMAGE else "MP4/QuickTime media"
    if len(head) >= 3 and head[0] == 0xFF and head[1] in (0xFB, 0xF3, 0xF2) and head[2] < 0xF0:
        return "MP3 audio"
    if (
        head[:2] == b"BM"
        and len(head) >= 26
        and int.from_bytes(head[2:6], "little") == size
        and head[6:10] == b"\x00\x00\x00\x00"
    ):
        return "BMP image"
    return None


def _sniff_magic(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    # NOTE: torch.load's _is_zipfile only checks for PK\x03\x04 at offset 0; anything else it
    # unpickles from byte 0 (see sniff). numpy's npz test also accepts an empty zip's EOCD.
    if head.startswith((ZIP_LOCAL_MAGIC, b"PK\x05\x06")):
        kind = _sniff_zip(stream, size)
        if kind is not None:
            return kind
    if _is_safetensors(stream, head, size):
        return ArtifactKind.SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 0 <= head[1] <= 5:
        return ArtifactKind.PICKLE
    if head.startswith(NUMPY_MAGIC):
        return ArtifactKind.NUMPY_NPY
    if head.startswith(b"GGUF"):
        return ArtifactKind.GGUF
    if head.startswith(b"MZqFpD") or (head.startswith(b"\x7fELF") and b"GGUF" in head):
        return ArtifactKind.LLAMAFILE
    for off in (0, 512, 1024, 2048):
        if head[off : off + 8] == HDF5_MAGIC:
            return ArtifactKind.HDF5
    if head.startswith(SEVEN_ZIP_MAGIC):
        return ArtifactKind.SEVEN_ZIP
    if head.startswith(GZIP_MAGIC):
        return ArtifactKind.GZIP
    if head.startswith(BZIP2_MAGIC) and head[4:10] == b"1AY&SY":
        return ArtifactKind.BZIP2
    if head.startswith(XZ_MAGIC):
        return ArtifactKind.XZ
    if head.startswith(LZ4_MAGIC):
        return ArtifactKind.LZ4
    if head[4:8] == b"TFL3":
        return ArtifactKind.TFLITE
    if head.startswith(b"PAR1"):
        return ArtifactKind.DATASET_PARQUET
    if head.startswith(b"ARROW1") or (
        head.startswith(b"\xff\xff\xff\xff") and lname.endswith(".arrow")
    ):
        return ArtifactKind.DATASET_ARROW
    if (len(head) >= 263 and head[257:262] == b"ustar") or is_tar_header(head):
        return ArtifactKind.TORCH_TAR if head[:9] == b"sys_info\x00" else ArtifactKind.TAR
    if _is_zlib(head):
        return ArtifactKind.ZLIB
    if _is_joblib_zfile(head):
        return ArtifactKind.ZLIB
    if _is_lzma_alone(head):
        # joblib's compress="lzma" writes the legacy .lzma ("alone") container.
        return ArtifactKind.XZ
    if media_label(head, size) is not None and not _looks_like_pickle_head(head):
        return ArtifactKind.MEDIA
    weak = False
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        weak = n <= size - 8 or lname.endswith(".safetensors")
    if len(head) >= 8 and lname.endswith(".safetensors") and head[8:9] in (b"", b" ", b"\x00"):
        weak = True
    if weak and not _looks_like_pickle_head(head):
        # Unvalidated: the safetensors scanner reports a bad header. A no-PROTO pickle named
        # ``.safetensors`` is still the pickle torch.load would run.
        return ArtifactKind.SAFETENSORS
    return None


def _looks_like_pickle_head(head: bytes) -> bool:
    """Media with text magic (``GIF8``…) that also walks as a pickle is one: the loader wins."""
    # The name's leniency does not apply here: PNG's 0x89 is NEWFALSE, "GIF8" is BINFLOAT.
    return is_pickle_stream(head, whole=False)


def _is_safetensors(stream: BinaryIO, head: bytes, size: int) -> bool:
    """A safetensors header whose length bytes also read as ``PROTO 0..5`` (a header length
    0x080..0x5FF modulo 64 KiB begins ``80 0X``): decide by parsing the header, not by opcode.

    Only the ambiguous case is parsed in full; otherwise the weaker test below (``{`` at byte 8,
    length inside the file) routes to the safetensors scanner, which validates everything.
    """
    if len(head) < 10 or head[0] != 0x80 or head[1] > 5 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if n < 2 or n > size - 8 or n > min(SAFETENSORS_MAX_HEADER, SAFETENSORS_VALIDATE_BYTES):
        return False
    stream.seek(8)
    raw = stream.read(n)
    try:
        header = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(header, dict):
        return False
    for key, value in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(value, dict) or not {"dtype", "shape", "data_offsets"} <= set(value):
            return False
    # NOTE: loader wins. A polyglot whose header sits inside a pickle string argument is still
    # run by torch.load's legacy path; real files fail the walk at byte 2 (opcode 0x00).
    stream.seek(0)
    return not is_pickle_stream(stream.read(PICKLE_WALK_BYTES), whole=size <= PICKLE_WALK_BYTES)


def is_tar_header(head: bytes) -> bool:
    """A tar header by ``tarfile``'s own test (its checksum), so pre-POSIX (v7) tars without the
    ``ustar`` magic count too: torch.load's legacy path opens any tar ``tarfile`` accepts."""
    if len(head) < 512 or head[0] == 0:
        return False
    field = head[148:156]
    try:
        if field[0] in (0o200, 0o377):
            stored = int.from_bytes(field[1:], "big", signed=field[0] == 0o377)
        else:
            stored = int(field.split(b"\x00", 1)[0].strip() or b"0", 8)
    except ValueError:
        return False
    block = head[:148] + b" " * 8 + head[156:512]
    unsigned = sum(block)
    signed = sum(b - 256 if b > 127 else b for b in block)
    return stored in (unsigned, signed) and stored != 8 * 32


def _is_zlib(head: bytes) -> bool:
    if len(head) < 2 or head[0] != 0x78 or (head[0] * 256 + head[1]) % 31 != 0:
        return False
    try:
        zlib.decompressobj().decompress(head[:4096], 64)
    except zlib.error:
        return False
    return True


JOBLIB_ZF_LEN = 19
"""joblib's ``_MAX_LEN``: the hex length field after ``ZF`` (``len(hex(2**64))``)."""


def _is_joblib_zfile(head: bytes) -> bool:
    """joblib's compat reader: ``ZF``, then ``int(field, 16)`` of 19 bytes, then zlib (after an
    optional space). Any field ``int`` accepts counts, not only the ``0x`` form joblib wrote."""
    if not head.startswith(b"ZF"):
        return False
    if head.startswith(b"ZF0x"):
        # Other writers' widths: the zlib stream starts at the first 0x78 after the digits.
        zstart = head.find(b"\x78", 4, 48)
        if zstart > 0 and _is_zlib(head[zstart:]):
            return True
    try:
        int(head[2 : 2 + JOBLIB_ZF_LEN], 16)
    except ValueError:
        return False
    body = 2 + JOBLIB_ZF_LEN
    if head[body : body + 1] == b" ":
        body += 1
    return _is_zlib(head[body:])


def _is_lzma_alone(head: bytes) -> bool:
    """joblib's ``lzma`` prefix is only ``]\\x00`` (props 0x5D, low dictionary byte 0); then
    ``LZMAFile`` (liblzma's picky "alone" check) decides. Mirror that check and demand a clean
    trial decode, or Fortran/MATLAB data would pass for it."""
    if len(head) < 14 or head[:2] != b"]\x00" or head[13] != 0:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    usize = int.from_bytes(head[5:13], "little")
    # liblzma (alone_decoder.c, picky): 2^n or 2^n + 2^(n-1), size unknown or below 2^38.
    d = dict_size - 1
    for shift in (2, 3, 4, 8, 16):
        d |= d >> shift
    d += 1
    if d != dict_size or (usize != 2**64 - 1 and usize >= 1 << 38):
        return False
    try:
        out = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(head, 256)
    except lzma.LZMAError:
        return False
    return len(out) >= min(usize, 16)


def zip_kind(stream: BinaryIO, size: int) -> ArtifactKind | None:
    """The zip-family kind of ``stream`` read from its central directory (prefix allowed)."""
    return _sniff_zip(stream, size)


def _sniff_zip(stream: BinaryIO, size: int) -> ArtifactKind | None:
    try:
        directory = _zip.read_directory(stream, size, max_entries=100_000)
    except Exception:
        stream.seek(0)
        return ArtifactKind.ZIP if stream.read(4) == ZIP_LOCAL_MAGIC else None
    names = [e.name for e in directory.entries]
    base = {n.rsplit("/", 1)[-1] for n in names}
    if _is_torch_export(names, base):
        return ArtifactKind.TORCH_EXPORT
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


TORCH_EXPORT_MARKERS = frozenset({"archive_format", "serialized_exported_program.json"})
"""What ``torch.export.save`` writes: ``archive_format`` (``pt2``, torch >= 2.6, with
``models/*.json``) or ``serialized_exported_program.json`` (the older layout)."""


def _is_torch_export(names: list[str], base: set[str]) -> bool:
    """A ``torch.export`` archive (``.pt2``): the loader is ``torch.export.load``, not the
    zip path of ``torch.load``, though it also carries ``.data/version`` and pickles."""
    if not base & TORCH_EXPORT_MARKERS:
        return False
    return any(n.rsplit("/", 1)[-1] in TORCH_EXPORT_MARKERS and n.count("/") <= 1 for n in names)


def _looks_like_pickle(stream: BinaryIO, lname: str, size: int) -> bool:
    stream.seek(0)
    data = stream.read(PICKLE_WALK_BYTES)
    return is_pickle_stream(data, name=lname, whole=len(data) >= size)


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
    from scanners.deps_options import requirements_format  # tiny, no parser imported

    if requirements_format(lname) is not None:
        return ArtifactKind.REQUIREMENTS  # even when not UTF-8: the scanner fails it closed
    if lname in MODEL_CARD_NAMES and FRONT_MATTER.match(head):
        return ArtifactKind.MODEL_CARD  # even when not UTF-8: the card scanner fails it closed
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
    if lname in TEMPLATE_NAMES or lname.endswith(TEMPLATE_EXTS):
        return ArtifactKind.CHAT_TEMPLATE
    if lname.endswith(YAML_EXTS):
        return ArtifactKind.YAML_CONFIG
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
    if not stripped.startswith(("{", "[")) and YAML_CHAT_TEMPLATE.search(head):
        return ArtifactKind.YAML_CONFIG
    from scanners import template_analysis  # lazy: start-up of a one-file scan

    if not lname.endswith(NOT_TEMPLATE_EXTS) and template_analysis.looks_like_template(head):
        return ArtifactKind.CHAT_TEMPLATE
    return ArtifactKind.TEXT


TEXT_DATASET_EXTS_KEYS = tuple(TEXT_DATASET_EXTS)
