"""Safetensors header checks: strict JSON, tensor entries, and spans against the real file.

Safetensors holds no code, so its risks are parser differentials and hidden bytes: a header one
parser reads differently from another (duplicate keys, trailing data, non-standard constants),
tensor spans that overlap or leave holes (room for a smuggled pickle or zip read by another
loader), and metadata used as a side channel. Only the header is read; tensor bytes were already
streamed once for the digest and are never loaded.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scanners._io import read_exact
from scanners._magic import hidden_magic
from scanners.base import Artifact, ScanContext
from supplychain.core.model import ArtifactKind, Confidence, FactValue, Finding, Rule, Severity
from supplychain.core.rules import make_rule

REFS = ("https://github.com/huggingface/safetensors#format",)

SFT001 = make_rule(
    "SFT001",
    "Invalid safetensors header length",
    Severity.HIGH,
    "The 8-byte little-endian header length is missing, points past the end of the file, or is "
    "larger than any real header (the reference loader refuses headers over 100 MB). Such files "
    "are broken or built to exhaust a parser.",
    "Re-download the file; regenerate it with safetensors.save_file if you produced it.",
    cwe=130,
    references=REFS,
)
SFT002 = make_rule(
    "SFT002",
    "Safetensors header is not strict JSON",
    Severity.HIGH,
    "The header is not UTF-8, not valid JSON, not a JSON object, uses NaN/Infinity, or has bytes "
    "after the JSON object other than the space padding the format allows. Lenient and strict "
    "parsers then disagree on what the file contains.",
    "Regenerate the file with the reference safetensors library.",
    cwe=20,
    references=REFS,
)
SFT003 = make_rule(
    "SFT003",
    "Duplicate keys in safetensors header",
    Severity.HIGH,
    "A key appears twice in one JSON object. Parsers keep different copies (first or last), so a "
    "reviewer and a loader can see different tensors or metadata: a classic parser-differential "
    "smuggling trick.",
    "Regenerate the file; never accept a header with duplicate keys.",
    cwe=436,
    references=REFS,
)
SFT004 = make_rule(
    "SFT004",
    "Invalid tensor entry",
    Severity.HIGH,
    "A tensor entry is not an object with a known ``dtype``, a ``shape`` of non-negative integers "
    "and ``data_offsets`` [begin, end] with begin <= end. Loaders reject or misread such entries.",
    "Regenerate the file with the reference safetensors library.",
    cwe=20,
    references=REFS,
)
SFT005 = make_rule(
    "SFT005",
    "Tensor size does not match its span",
    Severity.HIGH,
    "shape × dtype size differs from end − begin of the tensor's data span (or is not a whole "
    "number of bytes). The reference loader refuses the file; a lenient reader may read beyond "
    "the tensor or leave bytes unexplained.",
    "Regenerate the file with the reference safetensors library.",
    cwe=131,
    references=REFS,
)
SFT006 = make_rule(
    "SFT006",
    "Tensor span outside the data region",
    Severity.HIGH,
    "A tensor's data_offsets end past the end of the file. Out-of-bounds spans crash loaders or "
    "make them read memory that is not part of the tensor.",
    "Re-download the file; it is truncated or crafted.",
    cwe=125,
    references=REFS,
)
SFT007 = make_rule(
    "SFT007",
    "Overlapping tensor spans",
    Severity.HIGH,
    "Two tensors share bytes. The reference loader rejects this; aliasing lets one tensor's "
    "values silently change another's, and lenient loaders disagree on the result.",
    "Regenerate the file with the reference safetensors library.",
    cwe=20,
    references=REFS,
)
SFT008 = make_rule(
    "SFT008",
    "Bytes in the data region belong to no tensor",
    Severity.MEDIUM,
    "Part of the data region (a hole between tensors, or bytes after the last one) is covered by "
    "no tensor. The reference loader refuses such files; the hidden bytes are a place to smuggle "
    "a second payload (e.g. a pickle or zip read by a different loader: a polyglot).",
    "Regenerate the file with the reference safetensors library and inspect the hidden bytes.",
    cwe=912,
    references=REFS,
)
SFT009 = make_rule(
    "SFT009",
    "Invalid __metadata__",
    Severity.MEDIUM,
    "``__metadata__`` must map strings to strings; other value types make the reference loader "
    "fail, and very large values are an unusual place to store data.",
    "Keep __metadata__ to short string values.",
    cwe=20,
    references=REFS,
)
SFT010 = make_rule(
    "SFT010",
    "Suspicious content in __metadata__",
    Severity.LOW,
    "A metadata value looks like a serialized pickle (raw or base64) or like code/script. "
    "Safetensors metadata is inert, but a payload stored there may be decoded and loaded by "
    "custom loading code beside the weights.",
    "Check what reads this metadata value; remove it if nothing should.",
    cwe=502,
    references=REFS,
)
SFT011 = make_rule(
    "SFT011",
    "Unknown keys in tensor entry",
    Severity.LOW,
    "A tensor entry carries keys other than dtype, shape and data_offsets. Loaders ignore them, "
    "which makes them a side channel for data no reviewer looks at.",
    "Regenerate the file with the reference safetensors library.",
    cwe=20,
    references=REFS,
)
SAFETENSORS_RULES: tuple[Rule, ...] = (
    SFT001,
    SFT002,
    SFT003,
    SFT004,
    SFT005,
    SFT006,
    SFT007,
    SFT008,
    SFT009,
    SFT010,
    SFT011,
)

# NOTE: dtype names and bit widths from the safetensors Rust crate (0.6/0.7: 22 variants,
# including the sub-byte F4/F6 and F8_E8M0 micro-scaling types).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
REFERENCE_MAX_HEADER = 100_000_000
"""The reference loader's hard cap on the header length."""
MAX_PER_RULE = 20
"""Findings listed per rule before a summary line."""
BIG_METADATA_VALUE = 1 << 20

_B64_PICKLE = re.compile(r"(?:^|[^A-Za-z0-9+/])gA[JNSW][A-Za-z0-9+/]{37,}")
_RAW_PICKLE = re.compile(r"\x80[\x02-\x05]")
_CODE = re.compile(
    r"<script\b|javascript:|__import__|\bimport\s+(?:os|sys|subprocess|socket)\b|"
    r"\bos\.(?:system|popen)|\bsubprocess\.|\beval\s*\(|\bexec\s*\(|__reduce__|"
    r"\bcurl\s+[^|]*\|\s*(?:ba)?sh\b",
    re.IGNORECASE,
)


@dataclass(slots=True)
class _Emitter:
    """Caps repeated findings per rule and remembers how many were left out."""

    artifact: Artifact
    counts: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def __call__(
        self,
        rule: Rule,
        message: str,
        *,
        evidence: str = "",
        offset: int | None = None,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
    ) -> Iterator[Finding]:
        n = self.counts.get(rule.id, 0)
        self.counts[rule.id] = n + 1
        if n >= MAX_PER_RULE:
            self.dropped[rule.id] = self.dropped.get(rule.id, 0) + 1
            return
        yield self.artifact.finding(
            rule,
            message,
            evidence=evidence,
            offset=offset,
            severity=severity,
            confidence=confidence,
        )

    def summary(self, rules: dict[str, Rule]) -> Iterator[Finding]:
        for rule_id, n in sorted(self.dropped.items()):
            yield self.artifact.finding(rules[rule_id], f"{n} more similar findings not listed")


@dataclass(frozen=True, slots=True)
class _Span:
    begin: int
    end: int
    name: str


_Parsed = tuple[dict[str, Any] | None, list[tuple[str, str]]]
"""The parsed header (``None`` when unusable) and the duplicate keys seen (where, key)."""


class SafetensorsScanner:
    """Validates a safetensors header and its tensor spans without reading tensor data."""

    name: ClassVar[str] = "safetensors"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.SAFETENSORS})
    rules: ClassVar[tuple[Rule, ...]] = SAFETENSORS_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Reads the 8-byte length and the header, nothing else."""
        emit = _Emitter(artifact)
        stream = artifact.stream
        size = artifact.size
        stream.seek(0)
        prefix = stream.read(8)
        if len(prefix) < 8:
            yield from emit(SFT001, f"file of {size} bytes is shorter than the 8-byte length")
            return
        (n,) = struct.unpack("<Q", prefix)
        cap = min(ctx.limits.max_header_bytes, REFERENCE_MAX_HEADER)
        if n > size - 8:
            yield from emit(
                SFT001,
                f"header length {n} runs past the end of the {size}-byte file",
                evidence=f"header_len={n:#x}",
                offset=0,
            )
            return
        if n > cap:
            yield from emit(
                SFT001,
                f"header length {n} is over the {cap}-byte cap",
                evidence=f"header_len={n}",
                offset=0,
            )
            return
        if n < 2:
            yield from emit(SFT001, f"header length {n} cannot hold a JSON object", offset=0)
            return
        raw = read_exact(stream, n, "safetensors header")
        data_len = size - 8 - n
        doc, duplicates = yield from self._parse(raw, emit)
        for path, key in duplicates:
            yield from emit(SFT003, f"key {key!r} repeated in {path}", evidence=key, offset=8)
        if doc is None:
            return
        spans: list[_Span] = []
        for name, entry in doc.items():
            if name == "__metadata__":
                yield from self._check_metadata(entry, emit)
                continue
            span = _fast_entry(name, entry, data_len)
            if span is None:
                span = yield from self._check_entry(name, entry, n, data_len, emit)
            if span is not None:
                spans.append(span)
        yield from self._check_layout(spans, n, data_len, artifact, emit)
        yield from emit.summary({r.id: r for r in SAFETENSORS_RULES})
        for key, value in header_facts(doc):
            ctx.emit(artifact.fact(key, value))

    def _parse(self, raw: bytes, emit: _Emitter) -> Generator[Finding, None, _Parsed]:
        """Decode and parse the header strictly; yields findings, returns (dict | None, dups)."""
        duplicates: list[tuple[str, str]] = []
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield from emit(SFT002, f"header is not UTF-8 ({exc.reason})", offset=8 + exc.start)
            return None, duplicates
        body = text
        if not text.startswith("{"):
            body = text.lstrip(" \t\r\n")
            if body.startswith("{"):
                yield from emit(
                    SFT002,
                    "header has whitespace before the JSON object",
                    severity=Severity.MEDIUM,
                    offset=8,
                )
            else:
                yield from emit(
                    SFT002, "header does not start with a JSON object", evidence=text[:40], offset=8
                )
                return None, duplicates
        lead = len(text) - len(body)

        def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out = dict(pairs)
            if len(out) != len(pairs):
                seen: set[str] = set()
                for key, _ in pairs:
                    if key in seen:
                        where = "a tensor entry" if key in ENTRY_KEYS else "the header"
                        duplicates.append((where, key))
                    seen.add(key)
            return out

        def reject_constant(name: str) -> Any:
            raise ValueError(f"non-standard JSON constant {name}")

        decoder = json.JSONDecoder(object_pairs_hook=pairs_hook, parse_constant=reject_constant)
        try:
            doc, end = decoder.raw_decode(body)
        except RecursionError:
            yield from emit(SFT002, "header JSON nested too deeply", offset=8)
            return None, duplicates
        except ValueError as exc:
            pos = getattr(exc, "pos", None)
            offset = 8 + lead + pos if isinstance(pos, int) else 8
            yield from emit(SFT002, f"header is not valid JSON: {exc}", offset=offset)
            return None, duplicates
        trailing = body[end:]
        if trailing.strip(" "):
            offset = 8 + lead + end
            if trailing.strip(" \t\r\n"):
                yield from emit(
                    SFT002,
                    f"{len(trailing.rstrip(' '))} bytes after the header JSON object",
                    evidence=trailing.strip(" ")[:60],
                    offset=offset,
                )
            else:
                yield from emit(
                    SFT002,
                    "header padded with whitespace other than spaces",
                    evidence=trailing[:20],
                    offset=offset,
                    severity=Severity.LOW,
                )
        if not isinstance(doc, dict):
            yield from emit(SFT002, f"header is a JSON {type(doc).__name__}, not an object")
            return None, duplicates
        return doc, duplicates

    def _check_entry(
        self, name: str, entry: object, n: int, data_len: int, emit: _Emitter
    ) -> Generator[Finding, None, _Span | None]:
        """Check one tensor entry; return its span when the offsets are usable."""
        if not isinstance(entry, dict):
            yield from emit(
                SFT004, f"tensor {name!r} is a JSON {type(entry).__name__}, not an object", offset=8
            )
            return None
        missing = ENTRY_KEYS - entry.keys()
        extra = sorted(set(entry) - ENTRY_KEYS)
        if missing:
            yield from emit(
                SFT004, f"tensor {name!r} lacks {', '.join(sorted(missing))}", evidence=name
            )
        if extra:
            yield from emit(
                SFT011,
                f"tensor {name!r} has unknown keys {', '.join(map(repr, extra[:5]))}",
                evidence=name,
            )
        dtype = entry.get("dtype")
        shape = entry.get("shape")
        offsets = entry.get("data_offsets")
        bits: int | None = None
        if "dtype" in entry:
            bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
            if bits is None:
                yield from emit(
                    SFT004, f"tensor {name!r} has unknown dtype {dtype!r}", evidence=repr(dtype)
                )
        shape_ok = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        if "shape" in entry and not shape_ok:
            yield from emit(
                SFT004,
                f"tensor {name!r} shape is not a list of non-negative integers",
                evidence=_short(shape),
            )
        offsets_ok = (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int and o >= 0 for o in offsets)
        )
        if "data_offsets" in entry and not offsets_ok:
            yield from emit(
                SFT004,
                f"tensor {name!r} data_offsets is not [begin, end] of non-negative integers",
                evidence=_short(offsets),
            )
        if not offsets_ok or not isinstance(offsets, list):
            return None
        begin, end = offsets
        if begin > end:
            yield from emit(
                SFT004,
                f"tensor {name!r} data_offsets begin {begin} > end {end}",
                evidence=f"{name}: data_offsets={offsets}",
            )
            return None
        if bits is not None and shape_ok:
            assert isinstance(shape, list)
            mismatch = _size_mismatch(shape, bits, end - begin)
            if mismatch:
                yield from emit(
                    SFT005,
                    f"tensor {name!r}: {mismatch}",
                    evidence=f"{name}: dtype={dtype} shape={_short(shape)} data_offsets={offsets}",
                    offset=8 + n + begin if begin <= data_len else None,
                )
        if end > data_len:
            yield from emit(
                SFT006,
                f"tensor {name!r} ends at {end}, past the {data_len}-byte data region",
                evidence=f"{name}: data_offsets={offsets}",
            )
            return _Span(min(begin, data_len), data_len, name)
        return _Span(begin, end, name)

    def _check_metadata(self, meta: object, emit: _Emitter) -> Iterator[Finding]:
        if not isinstance(meta, dict):
            yield from emit(
                SFT009, f"__metadata__ is a JSON {type(meta).__name__}, not an object", offset=8
            )
            return
        for key, value in meta.items():
            if not isinstance(value, str):
                yield from emit(
                    SFT009,
                    f"__metadata__[{key!r}] is a JSON {type(value).__name__}, not a string",
                    evidence=f"{key}={_short(value)}",
                )
                continue
            if len(value) > BIG_METADATA_VALUE:
                yield from emit(
                    SFT009,
                    f"__metadata__[{key!r}] holds {len(value)} characters",
                    evidence=f"{key}={value[:40]}",
                    severity=Severity.LOW,
                )
            reason = _suspicious(value)
            if reason is not None:
                what, where = reason
                yield from emit(
                    SFT010,
                    f"__metadata__[{key!r}] looks like {what}",
                    evidence=f"{key}={value[max(0, where - 10) : where + 60]}",
                    confidence=Confidence.MEDIUM,
                )

    def _check_layout(
        self, spans: list[_Span], n: int, data_len: int, artifact: Artifact, emit: _Emitter
    ) -> Iterator[Finding]:
        """Overlaps and holes over the data region [0, data_len)."""
        spans.sort(key=lambda s: (s.begin, s.end))
        covered = 0
        last: _Span | None = None
        for span in spans:
            if span.begin == span.end:
                continue
            if last is not None and span.begin < covered:
                yield from emit(
                    SFT007,
                    f"tensor {span.name!r} [{span.begin}, {span.end}) overlaps "
                    f"{last.name!r} [{last.begin}, {last.end})",
                    evidence=f"{last.name} / {span.name}",
                    offset=8 + n + span.begin,
                )
            elif span.begin > covered:
                yield from self._hole(covered, span.begin, n, artifact, emit)
            if span.end > covered:
                covered = span.end
                last = span
        if covered < data_len:
            yield from self._hole(covered, data_len, n, artifact, emit)

    def _hole(
        self, begin: int, end: int, n: int, artifact: Artifact, emit: _Emitter
    ) -> Iterator[Finding]:
        """Report uncovered bytes; peek at their first bytes to name a smuggled format."""
        offset = 8 + n + begin
        artifact.stream.seek(offset)
        head = artifact.stream.read(min(16, end - begin))
        label = hidden_magic(head)
        what = f"{end - begin} bytes at data offset {begin} belong to no tensor"
        if end == artifact.size - 8 - n:
            what += " (after the last tensor)"
        if label is not None:
            yield from emit(
                SFT008,
                f"{what}; they start like a {label}",
                evidence=head.hex(" "),
                offset=offset,
                severity=Severity.HIGH,
            )
        else:
            yield from emit(SFT008, what, evidence=head.hex(" "), offset=offset)


_INT_ONLY = frozenset({int})


METADATA_FACTS = 32
"""Most ``__metadata__`` entries reported as facts (each value is escaped and truncated)."""


def header_facts(doc: dict[str, Any]) -> Iterator[tuple[str, FactValue]]:
    """Facts from a parsed header: format, dtypes, tensor and parameter counts, metadata."""
    dtypes: set[str] = set()
    tensors = 0
    parameters = 0
    for name, entry in doc.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        tensors += 1
        dtype = entry.get("dtype")
        if isinstance(dtype, str):
            dtypes.add(dtype)
        shape = entry.get("shape")
        if isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape):
            count = 1
            for dim in shape:
                count *= dim
            parameters += count
    yield "format", "safetensors"
    yield "tensor.count", tensors
    yield "parameter.count", parameters
    yield "tensor.dtypes", tuple(sorted(dtypes))
    meta = doc.get("__metadata__")
    if isinstance(meta, dict):
        for key in sorted(meta)[:METADATA_FACTS]:
            value = meta[key]
            yield f"safetensors.metadata.{key}", value if isinstance(value, str) else _short(value)


def _fast_entry(name: str, entry: object, data_len: int) -> _Span | None:
    """The common well-formed entry, checked at C speed; ``None`` sends it to the full check."""
    if type(entry) is not dict or len(entry) != 3:
        return None
    dtype = entry.get("dtype")
    bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None  # a list or dict is unhashable
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if bits is None or type(shape) is not list or type(offsets) is not list or len(offsets) != 2:
        return None
    if not set(map(type, offsets)) <= _INT_ONLY or not set(map(type, shape)) <= _INT_ONLY:
        return None
    begin, end = offsets
    if not 0 <= begin <= end <= data_len or (shape and min(shape) < 0):
        return None
    count = 1
    for dim in shape:
        count *= dim
        if count > data_len:
            break
    if count * bits != (end - begin) * 8:
        return None
    return _Span(begin, end, name)


def _size_mismatch(shape: list[int], bits: int, span: int) -> str | None:
    """Compare shape × dtype bits with the span, stopping early on absurd shapes."""
    if 0 in shape:
        count = 0
    else:
        count = 1
        limit_bits = span * 8
        for dim in shape:
            count *= dim
            if count * bits > limit_bits:
                return f"shape needs more than the {span} bytes of its span"
    total_bits = count * bits
    if total_bits % 8:
        return f"shape × dtype is {total_bits} bits, not a whole number of bytes"
    if total_bits // 8 != span:
        return f"shape × dtype is {total_bits // 8} bytes but its span is {span} bytes"
    return None


def _suspicious(value: str) -> tuple[str, int] | None:
    """(what, position) when a metadata value looks like a pickle or code."""
    match = _RAW_PICKLE.search(value)
    if match:
        return "a raw pickle stream", match.start()
    match = _B64_PICKLE.search(value)
    if match:
        return "a base64-encoded pickle", match.start()
    match = _CODE.search(value)
    if match:
        return "code or script", match.start()
    return None


def _short(value: object) -> str:
    """A bounded JSON rendering of a header value for evidence."""
    if isinstance(value, str):
        return value[:80]
    if isinstance(value, list):
        items = [v if isinstance(v, (int, float, bool)) or v is None else "…" for v in value[:8]]
        more = f", …(+{len(value) - 8})" if len(value) > 8 else ""
        return (json.dumps(items)[:-1] + more + "]")[:80]
    if isinstance(value, dict):
        return f"<object of {len(value)} keys>"
    return json.dumps(value)[:80]


__all__ = ["DTYPE_BITS", "SAFETENSORS_RULES", "SafetensorsScanner"]
