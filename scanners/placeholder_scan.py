"""Files that are not the model they claim to be: Git LFS pointers, empty files, media and text
under a weights name, and pickles that hide a zip behind them.

``git clone`` without git-lfs leaves a ~130-byte pointer where ``pytorch_model.bin`` should be; a
failed download leaves 0 bytes; a swapped artifact can be a PNG named ``.pt``. The loader then
fails, or the artifact is not what was reviewed, so under a model-format name each of these fails
the gate (HIGH) and the message names what the file really is. Under a neutral name (``.png``,
``README``, ``__init__.py``) the file is simply recorded as scanned, except an LFS pointer, which
is never the content and is always reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from scanners import _zip
from scanners.base import Artifact, ScanContext
from scanners.sniff import HEAD, LFS_MAX_BYTES, media_label, zip_kind
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity
from supplychain.core.rules import make_rule

IDN001 = make_rule(
    "IDN001",
    "Git LFS pointer instead of the file",
    Severity.MEDIUM,
    "The file is a Git LFS pointer (the small text file `git clone` leaves when git-lfs did not "
    "fetch the object), so the real content was never downloaded or reviewed. Under a model or "
    "weights name it is HIGH: the loader will fail, or a later fetch brings bytes nobody scanned.",
    "Install git-lfs and run `git lfs pull` (or download the file itself), then scan again.",
    cwe=345,
)
IDN002 = make_rule(
    "IDN002",
    "Empty file under a model name",
    Severity.HIGH,
    "A 0-byte file stands where a model or weights file should be (a failed or truncated "
    "download, or a deliberately blanked artifact). Empty files with neutral names "
    "(`__init__.py`, `.gitkeep`) are fine and not reported.",
    "Download the artifact again and verify its digest against the publisher's.",
    cwe=345,
)
IDN003 = make_rule(
    "IDN003",
    "Content is not the format its name claims",
    Severity.HIGH,
    "The file's bytes are an image, audio, video, document or plain text, but its name claims "
    "a model format. The loader will fail on it, or the artifact was swapped; either way it is "
    "not the model that was expected.",
    "Replace the file by the real artifact from a trusted source, or rename it to what it is.",
    cwe=345,
)
IDN004 = make_rule(
    "IDN004",
    "Pickle before an embedded zip (polyglot)",
    Severity.HIGH,
    "The file is a pickle from byte 0 and also holds a zip archive further on. torch.load, "
    "numpy and joblib decide from the first bytes and run the pickle, while zip-based tools "
    "(and scanners that look for the zip's end record) see only the archive: the two views "
    "differ on purpose. The pickle is analysed as what the loader runs.",
    "Do not load the file; rebuild it from a trusted source in a safe format (safetensors).",
    cwe=434,
)
RULES: tuple[Rule, ...] = (IDN001, IDN002, IDN003, IDN004)

MODEL_FORMATS: dict[str, str] = {
    ".bin": "PyTorch/model weights file",
    ".safetensors": "safetensors file",
    ".gguf": "GGUF model",
    ".ggml": "GGML model",
    ".onnx": "ONNX model",
    ".h5": "HDF5/Keras model",
    ".hdf5": "HDF5/Keras model",
    ".keras": "Keras model",
    ".pt": "PyTorch file",
    ".pth": "PyTorch file",
    ".pt2": "torch.export archive",
    ".ckpt": "checkpoint",
    ".pkl": "pickle file",
    ".pickle": "pickle file",
    ".joblib": "joblib file",
    ".dill": "dill pickle file",
    ".npy": "NumPy array file",
    ".npz": "NumPy archive",
    ".msgpack": "msgpack/Flax weights file",
    ".tflite": "TFLite model",
    ".mlmodel": "Core ML model",
    ".pb": "TensorFlow protobuf model",
    ".model": "model file",
    ".pdparams": "PaddlePaddle weights file",
    ".nemo": "NeMo model archive",
    ".llamafile": "llamafile",
    ".mar": "TorchServe model archive",
    ".ot": "libtorch weights file",
    ".caffemodel": "Caffe model",
    ".params": "MXNet weights file",
}
"""Names that claim a model or weights format, and how a message names the claim."""
TEXT_OK_EXTS = frozenset({".model", ".params"})
"""Claims whose real files may legitimately be text (tiktoken ``tokenizer.model``)."""

_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})\s*$", re.MULTILINE)
_SIZE = re.compile(rb"^size (\d{1,20})\s*$", re.MULTILINE)


def claimed_format(name: str) -> str | None:
    """The model format a file name claims (by its last extension), or ``None``."""
    lname = name.rsplit("/", 1)[-1].lower()
    dot = lname.rfind(".")
    if dot <= 0 and not lname.startswith("."):
        return None
    return MODEL_FORMATS.get(lname[dot:])


def text_label(head: bytes) -> str:
    """Name the kind of text a stand-in holds: an HTML error page from a failed download reads
    differently from a moved-file note."""
    if not head.strip(b"\x00"):
        return "zero-filled data"
    probe = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if probe.startswith((b"<!doctype html", b"<html")):
        return "HTML page"
    if probe.startswith(b"<?xml") or probe.startswith(b"<"):
        return "XML/markup text"
    if probe.startswith((b"{", b"[")):
        return "JSON text"
    return "plain text"


def human_size(n: int) -> str:
    """Decimal units, one decimal place: 4_400_000 -> ``4.4 MB``."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} EB"


class PlaceholderScanner:
    """Reports what a stand-in file really is, and pickle/zip polyglots."""

    name: ClassVar[str] = "placeholder"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {
            ArtifactKind.LFS_POINTER,
            ArtifactKind.EMPTY,
            ArtifactKind.MEDIA,
            ArtifactKind.TEXT,
            ArtifactKind.PICKLE,
        }
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """One finding at most, naming the claimed and the real format."""
        claim = claimed_format(artifact.name)
        match artifact.kind:
            case ArtifactKind.LFS_POINTER:
                yield _lfs_finding(artifact, claim)
            case ArtifactKind.EMPTY:
                if claim is not None:
                    yield artifact.finding(IDN002, f"empty file (0 bytes), not a {claim}")
            case ArtifactKind.MEDIA:
                if claim is not None:
                    artifact.stream.seek(0)
                    label = media_label(artifact.stream.read(HEAD), artifact.size) or "media"
                    yield artifact.finding(
                        IDN003, f"{label}, not a {claim}", evidence=label.split(" ", 1)[0]
                    )
            case ArtifactKind.TEXT:
                ext = artifact.name.lower()[artifact.name.rfind(".") :]
                if claim is not None and ext not in TEXT_OK_EXTS:
                    artifact.stream.seek(0)
                    head = artifact.stream.read(512)
                    first = head.lstrip().split(b"\n", 1)[0][:80]
                    yield artifact.finding(
                        IDN003,
                        f"{text_label(head)}, not a {claim}",
                        evidence=first.decode("utf-8", "replace"),
                    )
            case ArtifactKind.PICKLE:
                yield from _embedded_zip(artifact, ctx)
            case _:
                return


def _lfs_finding(artifact: Artifact, claim: str | None) -> Finding:
    artifact.stream.seek(0)
    text = artifact.stream.read(LFS_MAX_BYTES)
    oid = _OID.search(text)
    size = _SIZE.search(text)
    what = f"{human_size(int(size.group(1)))} object" if size else "object of unknown size"
    message = f"Git LFS pointer, {what} not downloaded"
    if claim is not None:
        message += f" (not the {claim} its name claims)"
    return artifact.finding(
        IDN001,
        message,
        severity=Severity.HIGH if claim is not None else None,
        evidence=f"sha256:{oid.group(1).decode()}" if oid else "",
    )


EMBEDDED_ZIP_MEMBER = "<embedded zip>"
"""Member name under which the zip behind a pickle prefix is handed back to the engine."""


def _embedded_zip(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """A zip directory behind a pickle that starts at byte 0 (torch.load runs the pickle).

    Both views are analysed: the pickle scanner has the stream the unpickler runs, and the zip
    (what zipfile-based readers such as keras see) goes back to the engine as a member, so
    every scanner for its kind reads it.
    """
    if artifact.size < 22 or EMBEDDED_ZIP_MEMBER in artifact.member:
        return
    try:
        directory = _zip.read_directory(artifact.stream, artifact.size, max_entries=100_000)
    except Exception:
        # No parseable zip behind the pickle: nothing to report here.
        return
    if not directory.entries:
        return
    names = ", ".join(e.name for e in directory.entries[:3])
    yield artifact.finding(
        IDN004,
        "pickle prefix before embedded zip: torch.load runs the pickle "
        f"(zip readers see {len(directory.entries)} member(s) instead)",
        evidence=names,
        offset=directory.eocd_offset,
    )
    kind = zip_kind(artifact.stream, artifact.size) or ArtifactKind.ZIP
    yield from ctx.dispatch(
        artifact.child(EMBEDDED_ZIP_MEMBER, kind, artifact.size, artifact.stream)
    )


__all__ = ["RULES", "PlaceholderScanner", "claimed_format", "human_size"]
