"""The report model: pure, frozen data shared by scanners, policy and output formats.

Nothing here does I/O or imports another project module, so every other layer can depend on it
(enforced by ``tests/test_layering.py``).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from supplychain.core.rules import Confidence as Confidence
from supplychain.core.rules import Rule as Rule
from supplychain.core.rules import RuleId as RuleId
from supplychain.core.rules import Severity as Severity

EVIDENCE_LIMIT = 240
"""Longest evidence string kept; attacker-controlled text beyond it is cut."""


class Status(enum.Enum):
    """Outcome of one scanner on one artifact."""

    SCANNED = "scanned"
    SKIPPED = "skipped"
    """Not applicable, unrecognised format, or a missing optional dependency."""
    FAILED = "failed"
    """Our bug or I/O trouble; always counts against the verdict (fail closed)."""


class ArtifactKind(enum.Enum):
    """What a file is, decided from its bytes by ``scanners.sniff`` (the name only breaks ties)."""

    PICKLE = "pickle"
    TORCH_ZIP = "torch-zip"
    TORCH_TAR = "torch-tar"
    TORCH_LEGACY = "torch-legacy"
    """Pre-1.6 ``torch.save`` stream: five pickles (magic, protocol, sys info, object, storage
    keys) followed by raw storage records that are never unpickled."""
    NUMPY_NPY = "numpy-npy"
    NUMPY_NPZ = "numpy-npz"
    KERAS_ZIP = "keras-zip"
    HDF5 = "hdf5"
    TF_SAVEDMODEL = "tf-savedmodel"
    ONNX = "onnx"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    MODEL_CONFIG = "model-config"
    """``config.json`` / ``tokenizer_config.json`` and similar JSON beside weights."""
    CHAT_TEMPLATE = "chat-template"
    PYTHON_SOURCE = "python-source"
    ZIP = "zip"
    TAR = "tar"
    SEVEN_ZIP = "7z"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZLIB = "zlib"
    LZ4 = "lz4"
    DATASET_JSONL = "dataset-jsonl"
    DATASET_CSV = "dataset-csv"
    DATASET_PARQUET = "dataset-parquet"
    DATASET_ARROW = "dataset-arrow"
    TFLITE = "tflite"
    COREML = "coreml"
    FLAX_MSGPACK = "flax-msgpack"
    LLAMAFILE = "llamafile"
    LFS_POINTER = "git-lfs-pointer"
    """A Git LFS pointer text file standing where the real object should be."""
    EMPTY = "empty"
    """A zero-byte file."""
    MEDIA = "media"
    """An image, audio, video or document file (PNG, JPEG, PDF…): holds no model."""
    YAML_CONFIG = "yaml-config"
    """YAML beside weights (may carry a ``chat_template``); parsed safely, never constructed."""
    SENTENCEPIECE = "sentencepiece"
    ONNX_EXTERNAL_DATA = "onnx-external-data"
    TORCH_EXPORT = "torch-export"
    """``torch.export`` ``.pt2`` archive."""
    XGBOOST = "xgboost"
    CATBOOST = "catboost"
    MSGPACK = "msgpack"
    """msgpack data files (spaCy pipelines and similar)."""
    WORD2VEC = "word2vec"
    FASTTEXT = "fasttext"
    HF_DATASET_META = "hf-dataset-meta"
    """Hugging Face ``datasets`` ``state.json`` / ``dataset_info.json``."""
    NUMPY_RAW = "numpy-raw"
    """Raw array bytes with no header (old joblib ``ZF`` side files once unwrapped)."""
    MODEL_CARD = "model-card"
    """A ``README.md`` / model card that opens with a ``---`` YAML front matter block."""
    REQUIREMENTS = "requirements"
    """A Python requirement or lock file, by name: ``requirements*.txt``, ``constraints*.txt``,
    ``pyproject.toml``, ``pylock.toml``, ``uv.lock``, ``poetry.lock``, ``Pipfile.lock``."""
    TEXT = "text"
    """Plain text or JSON we recognise and have no analysis for (README, licence, vocab)."""
    UNKNOWN = "unknown"


def escape_evidence(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """Make attacker-controlled text safe to print: escape non-printables, then truncate.

    Control, format (bidi, zero-width, tag) and other non-printable characters become ``\\xNN``
    / ``\\uNNNN`` / ``\\UNNNNNNNN`` escapes, so no output format can be driven by terminal escape
    sequences or bidi tricks hidden in a model file.
    """
    out: list[str] = []
    size = 0
    for ch in text:
        if ch.isprintable() or ch == " ":
            piece = ch if ch != "\\" else "\\\\"
        else:
            code = ord(ch)
            if code < 0x100:
                piece = f"\\x{code:02x}"
            elif code < 0x10000:
                piece = f"\\u{code:04x}"
            else:
                piece = f"\\U{code:08x}"
        size += len(piece)
        if size > limit:
            out.append("…")
            break
        out.append(piece)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding is: a file relative to the scan root, then members, offset or rows."""

    path: str
    """POSIX path relative to the scan root."""
    member: tuple[str, ...] = ()
    """Archive member chain, outermost first (never packed into one string)."""
    offset: int | None = None
    """Byte offset in the innermost stream."""
    rows: tuple[int, ...] = ()
    """0-based data rows for dataset findings."""

    def describe(self) -> str:
        """Human-readable one-liner: ``path!member!member @offset rows 1,2``."""
        text = "!".join((self.path, *self.member))
        if self.offset is not None:
            text += f" @{self.offset}"
        if self.rows:
            shown = ",".join(str(r) for r in self.rows[:10])
            more = f",…(+{len(self.rows) - 10})" if len(self.rows) > 10 else ""
            text += f" rows {shown}{more}"
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem found in one place."""

    rule: RuleId
    severity: Severity
    confidence: Confidence
    message: str
    location: Location
    evidence: str = ""
    """Short printable evidence; escaped and truncated on construction."""
    group: str | None = None
    """Groups related findings (e.g. one near-duplicate cluster)."""
    suppressed: str | None = None
    """Reason of the policy ignore that matched, if any. Suppressed findings never fail a run."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", escape_evidence(self.evidence))
        object.__setattr__(self, "message", escape_evidence(self.message, limit=1000))

    @property
    def fingerprint(self) -> str:
        """Stable id for baselines and suppressions: rule, location and evidence, not wording."""
        loc = self.location
        parts = [
            self.rule,
            loc.path,
            "\x1f".join(loc.member),
            "" if loc.offset is None else str(loc.offset),
            ",".join(str(r) for r in loc.rows[:64]),
            self.evidence,
        ]
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:32]

    def sort_key(self) -> tuple[int, str, tuple[str, ...], int, str, str]:
        """Deterministic order: worst first, then place, then rule."""
        loc = self.location
        return (
            -int(self.severity),
            loc.path,
            loc.member,
            -1 if loc.offset is None else loc.offset,
            self.rule,
            self.fingerprint,
        )


FactValue = str | int | float | bool | tuple[str, ...]
"""What a fact may hold: JSON scalars, or a short tuple of strings (e.g. several dtypes)."""

FACT_TEXT_LIMIT = 512
"""Longest fact text kept; metadata values come from attacker-controlled headers."""
FACT_ITEMS_LIMIT = 64
"""Most strings kept in one tuple-valued fact."""


@dataclass(frozen=True, slots=True)
class Fact:
    """One typed observation about an artifact (not a problem): what the AI-BOM and provenance read.

    Facts sit beside findings: ``format.dtype``, ``model.architecture``, ``tensor.count``,
    ``gguf.general.license``… Keys are dotted, lower-case and stable (documented in
    ``docs/report-schema.md``). Text values come from the artifact, so they are escaped and
    truncated on construction exactly like finding evidence.
    """

    key: str
    value: FactValue
    location: Location
    scanner: str = ""
    """The scanner (or report-level check) that emitted the fact."""

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, str):
            object.__setattr__(self, "value", escape_evidence(value, limit=FACT_TEXT_LIMIT))
        elif isinstance(value, tuple):
            kept = tuple(escape_evidence(str(v), limit=FACT_TEXT_LIMIT) for v in value)
            object.__setattr__(self, "value", kept[:FACT_ITEMS_LIMIT])
        object.__setattr__(self, "key", escape_evidence(self.key, limit=128))

    def sort_key(self) -> tuple[str, tuple[str, ...], str, str, str]:
        """Deterministic order: place, then key, then scanner and value."""
        loc = self.location
        return (loc.path, loc.member, self.key, self.scanner, repr(self.value))


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One file (or archive member) that the scan saw, with the digest of the bytes checked."""

    path: str
    kind: ArtifactKind
    size: int
    sha256: str
    member: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Outcome of one scanner (or of the engine itself) on one artifact."""

    scanner: str
    path: str
    status: Status
    reason: str = ""
    member: tuple[str, ...] = ()
    seconds: float = 0.0
    expected: bool = False
    """A skip that loses nothing (plain text, a link to a file scanned elsewhere); ``--strict``
    only fails on the other skips."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's answer: pass or fail, and every reason why it failed."""

    passed: bool
    fail_on: Severity
    reasons: tuple[str, ...] = ()
    violations: int = 0
    """Unsuppressed findings at or above ``fail_on``, plus expired ignores."""
    errors: int = 0
    """Failed outcomes, expired ignores and (with ``--strict``) skipped files."""


@dataclass(frozen=True, slots=True)
class Report:
    """A whole run. Formats are pure functions of this object."""

    tool_version: str
    target: tuple[str, ...]
    started_at: str
    """ISO-8601 UTC start time."""
    seconds: float
    files: tuple[ArtifactRecord, ...] = ()
    findings: tuple[Finding, ...] = ()
    results: tuple[ScanResult, ...] = ()
    rules: tuple[Rule, ...] = ()
    """Documentation of every rule that any scanner in this run can emit."""
    verdict: Verdict | None = None
    """Set by ``policy.apply``; ``None`` means the policy has not been evaluated yet."""
    command: str = "scan"
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Small key/value facts a command adds (e.g. dataset fields used)."""
    facts: tuple[Fact, ...] = ()
    """Typed observations beside the findings (format, dtype, architecture, licence…)."""
    settings_fingerprint: str = ""
    """Digest of every setting that can change a per-file verdict (``supplychain.core.settings``):
    with a file's sha256 it keys a verdict cache."""
    cache_hits: int = 0
    """Files answered from the verdict cache (``supplychain.cache``) instead of being scanned."""

    @property
    def worst(self) -> Severity | None:
        """Worst severity among unsuppressed findings."""
        active = [f.severity for f in self.findings if f.suppressed is None]
        return max(active) if active else None

    @property
    def failed(self) -> tuple[ScanResult, ...]:
        """Outcomes that failed (counted against the verdict)."""
        return tuple(r for r in self.results if r.status is Status.FAILED)

    @property
    def skipped(self) -> tuple[ScanResult, ...]:
        """Outcomes that were skipped, with their reasons."""
        return tuple(r for r in self.results if r.status is Status.SKIPPED)

    def rule(self, rule_id: str) -> Rule | None:
        """Look up a rule's documentation by id."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None
