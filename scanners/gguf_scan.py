"""GGUF checks: header, metadata and tensor-info bounds, data layout, and chat templates.

GGUF is a flat binary format, so its risks are a parser that trusts counts and lengths (huge
allocations, reads past EOF: the llama.cpp GGUF parser CVEs of 2024) and the Jinja chat template
stored in ``tokenizer.chat_template``, which llama-cpp-python, vLLM and SGLang rendered without a
sandbox (CVE-2024-34359, CVE-2026-5760). Every count and length is checked against the bytes left
in the file *before* anything is allocated; big arrays (token scores, merges) are skipped by
seeking; tensor data is never read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from scanners._magic import hidden_magic
from scanners.base import Artifact, ScanContext
from scanners.template_analysis import (
    MAX_TEMPLATE_BYTES,
    TEMPLATE_RULES,
    TPL006,
    template_findings,
)
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, FactValue, Finding, Rule, Severity
from supplychain.core.rules import make_rule

REFS = ("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",)
PARSER_CVES = (
    "https://nvd.nist.gov/vuln/detail/CVE-2024-25664",
    "https://nvd.nist.gov/vuln/detail/CVE-2024-21836",
)

GGF001 = make_rule(
    "GGF001",
    "Invalid or truncated GGUF structure",
    Severity.HIGH,
    "The GGUF magic or version is wrong, or the file ends inside the header, metadata or tensor "
    "infos. Loaders fail on it; crafted truncations target parsers that read without bounds.",
    "Re-download the file; regenerate it with llama.cpp's convert scripts if you produced it.",
    cwe=20,
    references=REFS,
)
GGF002 = make_rule(
    "GGF002",
    "Implausible GGUF tensor or metadata count",
    Severity.HIGH,
    "The tensor or key/value count cannot fit in the file. Parsers that allocate from the count "
    "before reading run out of memory or overflow (the 2024 llama.cpp GGUF parser advisories).",
    "Do not load the file; it is crafted or corrupt.",
    cwe=789,
    references=REFS + PARSER_CVES,
)
GGF003 = make_rule(
    "GGF003",
    "GGUF string or array length out of bounds",
    Severity.HIGH,
    "A string or array length runs past the end of the file or over a sane cap. Unchecked "
    "lengths are the classic heap overflow and memory exhaustion in GGUF parsers.",
    "Do not load the file; it is crafted or corrupt.",
    cwe=130,
    references=REFS + PARSER_CVES,
)
GGF004 = make_rule(
    "GGF004",
    "Invalid GGUF metadata value",
    Severity.HIGH,
    "A metadata value has an unknown type, arrays nest too deeply, or a key is not UTF-8. "
    "Readers disagree on such values or stop parsing.",
    "Regenerate the file with a reference GGUF writer.",
    cwe=20,
    references=REFS,
)
GGF005 = make_rule(
    "GGF005",
    "Duplicate GGUF key or tensor name",
    Severity.HIGH,
    "A metadata key or tensor name appears twice. llama.cpp rejects this; other readers keep the "
    "first or the last copy, so reviewers and runtimes can see different values (for example two "
    "different chat templates).",
    "Regenerate the file with a reference GGUF writer.",
    cwe=436,
    references=REFS,
)
GGF006 = make_rule(
    "GGF006",
    "Invalid GGUF tensor info",
    Severity.HIGH,
    "A tensor info has too many dimensions, a negative or overflowing dimension, an unknown ggml "
    "type, a row size that is not a whole number of quantization blocks, or a name too long for "
    "ggml. Loaders reject it or compute wrong sizes.",
    "Regenerate the file with a reference GGUF writer.",
    cwe=20,
    references=REFS + PARSER_CVES,
)
GGF007 = make_rule(
    "GGF007",
    "GGUF tensor data out of bounds, misaligned or overlapping",
    Severity.HIGH,
    "A tensor's data lies past the end of the file, is not aligned to ``general.alignment``, or "
    "shares bytes with another tensor. Loaders read out of bounds or alias weights.",
    "Re-download the file; regenerate it if you produced it.",
    cwe=125,
    references=REFS,
)
GGF008 = make_rule(
    "GGF008",
    "Invalid general.alignment",
    Severity.MEDIUM,
    "``general.alignment`` must be a non-zero power of two stored as UINT32. Other values make "
    "loaders compute a different data section start than this scan and than each other.",
    "Regenerate the file with a reference GGUF writer.",
    cwe=20,
    references=REFS,
)
GGF009 = make_rule(
    "GGF009",
    "Bytes in the GGUF data section belong to no tensor",
    Severity.MEDIUM,
    "Bytes between tensors (beyond alignment padding) or after the last tensor are covered by no "
    "tensor info. Loaders ignore them, which makes them a hiding place for a second payload "
    "(a pickle or zip read by another tool: a polyglot).",
    "Regenerate the file with a reference GGUF writer and inspect the hidden bytes.",
    cwe=912,
    references=REFS,
)
GGUF_RULES: tuple[Rule, ...] = (
    GGF001,
    GGF002,
    GGF003,
    GGF004,
    GGF005,
    GGF006,
    GGF007,
    GGF008,
    GGF009,
)

# GGUF metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(8, 13)
FIXED_SIZES: dict[int, int] = {
    T_UINT8: 1,
    T_INT8: 1,
    T_UINT16: 2,
    T_INT16: 2,
    T_UINT32: 4,
    T_INT32: 4,
    T_FLOAT32: 4,
    T_BOOL: 1,
    T_UINT64: 8,
    T_INT64: 8,
    T_FLOAT64: 8,
}

# NOTE: (elements per block, bytes per block) per ggml type id, from gguf-py's GGML_QUANT_SIZES
# (gguf 0.19). 31-33 and 36-38 are the removed Q4_0_N_M / IQ4_NL_N_M repacks still found in old
# files; they share Q4_0 / IQ4_NL block geometry.
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 40),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    31: (32, 18),
    32: (32, 18),
    33: (32, 18),
    34: (256, 54),
    35: (256, 66),
    36: (32, 18),
    37: (32, 18),
    38: (32, 18),
    39: (32, 17),
    40: (64, 36),
    41: (128, 18),
}

DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64
"""llama.cpp rejects tensor names of this many bytes or more."""
MAX_KEY_BYTES = 64 * 1024
MAX_FACTS = 32
"""Most ``general.*`` metadata strings reported as facts."""
MAX_FACT_BYTES = 4096
"""Longest ``general.*`` string read for a fact (longer ones are skipped, as before)."""
FACT_ALIASES = {
    "general.architecture": "model.architecture",
    "general.license": "license",
    "general.name": "model.name",
    "general.base_model.0.name": "base_model",
    "general.base_model.0.repo_url": "base_model.url",
}
"""Format-neutral fact keys for the GGUF keys the AI-BOM and provenance read."""
MAX_DIMS_PARSED = 64
MAX_ARRAY_DEPTH = 8
MAX_COUNT = 10_000_000
"""More tensors or metadata keys than any real model has (the largest have a few thousand)."""
MAX_WALKED_ITEMS = 32_000_000
"""String/array elements walked one by one (vocabularies have up to a few hundred thousand)."""
MAX_PER_RULE = 20
WINDOW = 1 << 16
TEMPLATE_KEY = "tokenizer.chat_template"


class _Malformed(Exception):
    """Parsing cannot continue; carries the finding that explains why."""

    def __init__(self, rule: Rule, message: str, offset: int | None, evidence: str = "") -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.offset = offset
        self.evidence = evidence


class _Reader:
    """Bounded little/big-endian reads over a seekable stream through a small window."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.pos = 0
        self.order = "<"
        self.long = 8
        """Width of counts and lengths: 4 bytes in GGUF v1, 8 afterwards."""
        self._buf = b""
        self._buf_start = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            raise _Malformed(
                GGF001,
                f"file ends inside {what}: needs {n} bytes at offset {self.pos}, "
                f"{self.size - self.pos} left",
                self.pos,
            )
        rel = self.pos - self._buf_start
        if rel >= 0 and rel + n <= len(self._buf):
            out = self._buf[rel : rel + n]
        else:
            self.stream.seek(self.pos)
            if n <= WINDOW:
                self._buf = self.stream.read(WINDOW)
                self._buf_start = self.pos
                out = self._buf[:n]
            else:
                out = self.stream.read(n)
            if len(out) != n:
                raise _Malformed(GGF001, f"short read in {what}", self.pos)
        self.pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise _Malformed(
                GGF003,
                f"{what} of {n} bytes at offset {self.pos} runs past the end of the file",
                self.pos,
                evidence=f"length={n}",
            )
        self.pos += n

    def u32(self, what: str) -> int:
        value: int = struct.unpack(self.order + "I", self.take(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = struct.unpack(self.order + "Q", self.take(8, what))[0]
        return value

    def length(self, what: str) -> int:
        """A count or length field (u32 in v1, u64 since v2)."""
        return self.u32(what) if self.long == 4 else self.u64(what)

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings, checking every length against the file."""
        fmt = self.order + ("I" if self.long == 4 else "Q")
        width = self.long
        for _ in range(count):
            rel = self.pos - self._buf_start
            if rel >= 0 and rel + width <= len(self._buf):
                (n,) = struct.unpack_from(fmt, self._buf, rel)
                self.pos += width
            else:
                n = self.length(what)
            if n > self.size - self.pos:
                raise _Malformed(
                    GGF003,
                    f"string in {what} of {n} bytes at offset {self.pos} runs past the end "
                    "of the file",
                    self.pos,
                    evidence=f"length={n}",
                )
            self.pos += n


@dataclass(slots=True)
class _Tensor:
    name: str
    offset: int
    nbytes: int | None
    info_offset: int


@dataclass(slots=True)
class _State:
    """What one parse collected, kept even when parsing stops early."""

    artifact: Artifact
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    templates: list[tuple[str, str, int]] = field(default_factory=list)
    """(key, template text, offset) of every chat template string found."""
    facts: list[tuple[str, FactValue]] = field(default_factory=list)
    """``general.*`` metadata, tensor and parameter counts (bounded; see ``MAX_FACTS``)."""
    parameters: int = 0
    oversized_templates: list[tuple[str, int, int]] = field(default_factory=list)
    walked: int = 0

    def emit(
        self,
        rule: Rule,
        message: str,
        *,
        evidence: str = "",
        offset: int | None = None,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
    ) -> None:
        n = self.counts.get(rule.id, 0)
        self.counts[rule.id] = n + 1
        if n < MAX_PER_RULE:
            self.findings.append(
                self.artifact.finding(
                    rule,
                    message,
                    evidence=evidence,
                    offset=offset,
                    severity=severity,
                    confidence=confidence,
                )
            )

    def summary(self) -> Iterator[Finding]:
        rules: dict[str, Rule] = {r.id: r for r in GGUF_RULES}
        for rule_id, n in sorted(self.counts.items()):
            if n > MAX_PER_RULE:
                yield self.artifact.finding(
                    rules[rule_id], f"{n - MAX_PER_RULE} more similar findings not listed"
                )


class GgufScanner:
    """Bounds-checks a GGUF file's header, metadata and tensor infos; analyses chat templates."""

    name: ClassVar[str] = "gguf"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.GGUF})
    rules: ClassVar[tuple[Rule, ...]] = GGUF_RULES + TEMPLATE_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Findings collected before a fatal problem are still reported."""
        state = _State(artifact)
        reader = _Reader(artifact.stream, artifact.size)
        limit: LimitExceeded | None = None
        try:
            _parse(reader, state)
        except _Malformed as exc:
            state.emit(exc.rule, exc.message, evidence=exc.evidence, offset=exc.offset)
        except LimitExceeded as exc:
            limit = exc
        for key, value in state.facts:
            ctx.emit(artifact.fact(key, value))
        yield from state.findings
        yield from state.summary()
        for key, text, offset in state.templates:
            yield from template_findings(artifact, text, key, offset)
        for key, length, offset in state.oversized_templates:
            yield artifact.finding(
                TPL006,
                f"{key}: template of {length} bytes is over the {MAX_TEMPLATE_BYTES}-byte "
                "analysis cap",
                offset=offset,
            )
        if limit is not None:
            raise limit


def _parse(r: _Reader, st: _State) -> None:
    magic = r.take(4, "magic")
    if magic != b"GGUF":
        raise _Malformed(GGF001, "missing GGUF magic", 0, evidence=repr(magic))
    raw_version = r.take(4, "version")
    (version,) = struct.unpack("<I", raw_version)
    if version & 0xFFFF == 0 and version:
        # NOTE: big-endian GGUF keeps the magic bytes and byte-swaps everything after them.
        r.order = ">"
        (version,) = struct.unpack(">I", raw_version)
    if version not in (1, 2, 3):
        raise _Malformed(GGF001, f"unsupported GGUF version {version}", 4, evidence=str(version))
    if version == 1:
        r.long = 4
    tensor_count = r.length("tensor count")
    kv_count = r.length("metadata count")
    min_kv = r.long + 4 + 1
    min_ti = r.long + 4 + 4 + 8
    if (
        tensor_count > MAX_COUNT
        or kv_count > MAX_COUNT
        or tensor_count * min_ti + kv_count * min_kv > r.remaining
    ):
        raise _Malformed(
            GGF002,
            f"{tensor_count} tensors and {kv_count} metadata keys cannot fit in the "
            f"{r.remaining} bytes left",
            8,
            evidence=f"tensor_count={tensor_count} kv_count={kv_count}",
        )
    st.facts.append(("format", "gguf"))
    st.facts.append(("gguf.version", version))
    st.facts.append(("tensor.count", tensor_count))
    alignment = _parse_metadata(r, st, kv_count)
    tensors = _parse_tensor_infos(r, st, tensor_count)
    st.facts.append(("parameter.count", st.parameters))
    _check_layout(r, st, tensors, alignment)


def _read_string(r: _Reader, cap: int, what: str) -> tuple[bytes | None, int, int]:
    """Read a string up to ``cap`` bytes; (bytes or None when over the cap, length, offset)."""
    offset = r.pos
    n = r.length(f"{what} length")
    if n > r.remaining:
        raise _Malformed(
            GGF003,
            f"{what} of {n} bytes at offset {offset} runs past the end of the file",
            offset,
            evidence=f"length={n}",
        )
    if n > cap:
        r.skip(n, what)
        return None, n, offset
    return r.take(n, what), n, offset


def _parse_metadata(r: _Reader, st: _State, kv_count: int) -> int:
    """Walk the key/value pairs; return the alignment the data section uses."""
    seen: set[str] = set()
    alignment = DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        raw_key, key_len, key_offset = _read_string(r, MAX_KEY_BYTES, "metadata key")
        if raw_key is None:
            raise _Malformed(
                GGF003, f"metadata key of {key_len} bytes", key_offset, evidence=f"length={key_len}"
            )
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            key = raw_key.decode("utf-8", "replace")
            st.emit(GGF004, "metadata key is not UTF-8", evidence=key, offset=key_offset)
        if key in seen:
            st.emit(GGF005, f"metadata key {key!r} appears twice", evidence=key, offset=key_offset)
        seen.add(key)
        vtype = r.u32("value type")
        is_template = key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + ".")
        if is_template and vtype == T_STRING:
            raw, length, offset = _read_string(r, MAX_TEMPLATE_BYTES, key)
            if raw is None:
                st.oversized_templates.append((key, length, offset))
            else:
                st.templates.append((key, raw.decode("utf-8", "replace"), offset))
            continue
        if key == "general.alignment":
            value_offset = r.pos
            if vtype != T_UINT32:
                st.emit(
                    GGF008,
                    f"general.alignment has value type {vtype}, not UINT32",
                    offset=value_offset,
                )
                _skip_value(r, st, vtype, 0)
                continue
            value = r.u32("general.alignment")
            if value == 0 or value & (value - 1):
                st.emit(
                    GGF008,
                    f"general.alignment {value} is not a non-zero power of two",
                    evidence=str(value),
                    offset=value_offset,
                )
            else:
                alignment = value
            continue
        if key.startswith("general.") and vtype == T_STRING and len(st.facts) < MAX_FACTS:
            raw, _length, _offset = _read_string(r, MAX_FACT_BYTES, key)
            if raw is not None:
                text = raw.decode("utf-8", "replace")
                st.facts.append((f"gguf.{key}", text))
                if key in FACT_ALIASES:
                    st.facts.append((FACT_ALIASES[key], text))
            continue
        _skip_value(r, st, vtype, 0)
    return alignment


def _skip_value(r: _Reader, st: _State, vtype: int, depth: int) -> None:
    """Skip one value of ``vtype``, checking lengths against the file before moving."""
    size = FIXED_SIZES.get(vtype)
    if size is not None:
        r.skip(size, "value")
        return
    if vtype == T_STRING:
        n = r.length("string length")
        r.skip(n, "string")
        return
    if vtype != T_ARRAY:
        raise _Malformed(GGF004, f"unknown value type {vtype}", r.pos - 4, evidence=str(vtype))
    if depth >= MAX_ARRAY_DEPTH:
        raise _Malformed(GGF004, f"arrays nested more than {MAX_ARRAY_DEPTH} deep", r.pos)
    array_offset = r.pos
    itype = r.u32("array item type")
    count = r.length("array length")
    size = FIXED_SIZES.get(itype)
    if size is not None:
        if count * size > r.remaining:
            raise _Malformed(
                GGF003,
                f"array of {count} × {size}-byte items at offset {array_offset} runs past the "
                "end of the file",
                array_offset,
                evidence=f"count={count}",
            )
        r.skip(count * size, "array")
        return
    min_item = {T_STRING: r.long, T_ARRAY: 4 + r.long}.get(itype)
    if min_item is None:
        raise _Malformed(
            GGF004, f"unknown array item type {itype}", array_offset, evidence=str(itype)
        )
    if count * min_item > r.remaining:
        raise _Malformed(
            GGF003,
            f"array of {count} items at offset {array_offset} cannot fit in the file",
            array_offset,
            evidence=f"count={count}",
        )
    st.walked += count
    if st.walked > MAX_WALKED_ITEMS:
        raise LimitExceeded(f"more than {MAX_WALKED_ITEMS} GGUF array items", array_offset)
    if itype == T_STRING:
        r.skip_strings(count, "string array")
        return
    for _ in range(count):
        _skip_value(r, st, T_ARRAY, depth + 1)


def _parse_tensor_infos(r: _Reader, st: _State, tensor_count: int) -> list[_Tensor]:
    tensors: list[_Tensor] = []
    names: set[str] = set()
    for _ in range(tensor_count):
        raw_name, name_len, info_offset = _read_string(r, MAX_KEY_BYTES, "tensor name")
        if raw_name is None:
            raise _Malformed(
                GGF003,
                f"tensor name of {name_len} bytes",
                info_offset,
                evidence=f"length={name_len}",
            )
        name = raw_name.decode("utf-8", "replace")
        if name_len >= GGML_MAX_NAME:
            st.emit(
                GGF006,
                f"tensor name of {name_len} bytes (ggml allows {GGML_MAX_NAME - 1})",
                evidence=name,
                offset=info_offset,
            )
        if name in names:
            st.emit(GGF005, f"tensor {name!r} appears twice", evidence=name, offset=info_offset)
        names.add(name)
        n_dims = r.u32("tensor dimension count")
        if n_dims > MAX_DIMS_PARSED:
            raise _Malformed(
                GGF006, f"tensor {name!r} has {n_dims} dimensions", info_offset, evidence=name
            )
        dims = [r.u32("dimension") if r.long == 4 else r.u64("dimension") for _ in range(n_dims)]
        ggml_type = r.u32("tensor type")
        offset = r.u64("tensor offset")
        count = 1
        for dim in dims:
            count *= dim
        st.parameters += count
        nbytes = _tensor_nbytes(st, name, n_dims, dims, ggml_type, info_offset)
        tensors.append(_Tensor(name, offset, nbytes, info_offset))
    return tensors


def _tensor_nbytes(
    st: _State, name: str, n_dims: int, dims: list[int], ggml_type: int, info_offset: int
) -> int | None:
    """Byte size of a tensor's data, or ``None`` (after a finding) when it cannot be known."""
    evidence = f"{name}: type={ggml_type} dims={dims[:8]}"
    if n_dims > GGML_MAX_DIMS:
        st.emit(
            GGF006,
            f"tensor {name!r} has {n_dims} dimensions (ggml allows {GGML_MAX_DIMS})",
            evidence=evidence,
            offset=info_offset,
        )
    if any(d >= 2**63 for d in dims):
        st.emit(GGF006, f"tensor {name!r} has a negative dimension", evidence=evidence)
        return None
    count = 1
    for d in dims:
        count *= d
    if count >= 2**63:
        st.emit(GGF006, f"tensor {name!r} element count overflows int64", evidence=evidence)
        return None
    block = GGML_BLOCKS.get(ggml_type)
    if block is None:
        st.emit(
            GGF006,
            f"tensor {name!r} has unknown ggml type {ggml_type}",
            evidence=evidence,
            offset=info_offset,
            severity=Severity.MEDIUM,
        )
        return None
    per_block, block_bytes = block
    row = dims[0] if dims else 1
    if row % per_block:
        st.emit(
            GGF006,
            f"tensor {name!r} row of {row} elements is not a multiple of the {per_block}-element "
            "block",
            evidence=evidence,
            offset=info_offset,
        )
        return None
    return count // per_block * block_bytes


def _pad(x: int, alignment: int) -> int:
    return (x + alignment - 1) // alignment * alignment


def _check_layout(r: _Reader, st: _State, tensors: list[_Tensor], alignment: int) -> None:
    """Tensor spans against the data section: alignment, bounds, overlaps and holes."""
    size = r.size
    data_start = _pad(r.pos, alignment)
    if not tensors:
        if size > data_start:
            _hole(r, st, data_start, size, "after the tensor infos (file has no tensors)")
        return
    spans: list[tuple[int, int, str]] = []
    sizes_known = True
    for t in tensors:
        if t.offset % alignment:
            st.emit(
                GGF007,
                f"tensor {t.name!r} offset {t.offset} is not a multiple of alignment {alignment}",
                evidence=f"{t.name}: offset={t.offset}",
                offset=t.info_offset,
            )
        begin = data_start + t.offset
        end = begin + (t.nbytes or 0)
        if end > size:
            st.emit(
                GGF007,
                f"tensor {t.name!r} data [{begin}, {end}) runs past the end of the "
                f"{size}-byte file",
                evidence=f"{t.name}: offset={t.offset} nbytes={t.nbytes}",
                offset=t.info_offset,
            )
            sizes_known = False
            continue
        if t.nbytes is None:
            sizes_known = False
        spans.append((begin, end, t.name))
    spans.sort()
    covered = data_start
    last = ""
    for begin, end, name in spans:
        if begin == end:
            continue
        if begin < covered and last:
            st.emit(
                GGF007,
                f"tensor {name!r} data overlaps tensor {last!r}",
                evidence=f"{last} / {name}",
                offset=begin,
            )
        elif sizes_known and begin > _pad(covered, alignment):
            _hole(r, st, covered, begin, f"between tensors before {name!r}")
        if end > covered:
            covered, last = end, name
    if sizes_known and size > _pad(covered, alignment):
        _hole(r, st, covered, size, "after the last tensor")


def _hole(r: _Reader, st: _State, begin: int, end: int, where: str) -> None:
    r.stream.seek(begin)
    head = r.stream.read(min(16, end - begin))
    label = hidden_magic(head)
    message = f"{end - begin} bytes at offset {begin} {where} belong to no tensor"
    if label is not None:
        st.emit(
            GGF009,
            f"{message}; they start like a {label}",
            evidence=head.hex(" "),
            offset=begin,
            severity=Severity.HIGH,
        )
    else:
        st.emit(GGF009, message, evidence=head.hex(" "), offset=begin)


__all__ = ["GGML_BLOCKS", "GGUF_RULES", "GgufScanner"]
