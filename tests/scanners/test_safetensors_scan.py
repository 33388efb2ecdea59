"""Safetensors header checks: strict JSON, entries, spans; hostile headers never crash."""

from __future__ import annotations

import base64
import io
import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.safetensors_scan import DTYPE_BITS, SafetensorsScanner
from supplychain.core.errors import ArtifactError
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths


def _scan(data: bytes, limits: Limits | None = None) -> list[Finding]:
    artifact = Artifact(
        path="model.safetensors",
        kind=ArtifactKind.SAFETENSORS,
        size=len(data),
        stream=io.BytesIO(data),
    )
    return list(SafetensorsScanner().scan(artifact, ScanContext(limits=limits or Limits())))


def _rules(data: bytes) -> set[str]:
    return {f.rule for f in _scan(data)}


def _file(header: dict[str, object] | bytes, data: bytes = b"", *, pad: bool = True) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def _real_file() -> bytes:
    from safetensors.numpy import save

    tensors = {
        "embed.weight": np.arange(24, dtype=np.float32).reshape(4, 6),
        "norm.bias": np.zeros((6,), dtype=np.float16),
        "ids": np.arange(3, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "scalar": np.array(1.5, dtype=np.float64),
    }
    blob: bytes = save(tensors, metadata={"format": "pt", "source": "https://example.org/x"})
    return blob


def test_file_written_by_real_safetensors_is_clean() -> None:
    assert _scan(_real_file()) == []


def test_file_on_disk_through_engine_is_clean_and_sniffed(tmp_path: Path) -> None:
    # Regression for silent skips: safetensors "skipped without any reason" in other scanners.
    # https://github.com/protectai/modelscan/issues/290
    from safetensors.numpy import save_file

    save_file({"w": np.ones((8, 8), dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    report = scan_paths([tmp_path], ScanOptions(scanners=(SafetensorsScanner,)))
    assert report.findings == ()
    assert [r.scanner for r in report.results] == ["safetensors"]


def test_every_spec_dtype_is_known_and_sizes_check() -> None:
    header = {}
    offset = 0
    for i, (dtype, bits) in enumerate(sorted(DTYPE_BITS.items())):
        nbytes = 8 * bits // 8  # shape [8]: whole bytes for every width, sub-byte ones included
        header[f"t{i}"] = _entry(dtype, [8], offset, offset + nbytes)
        offset += nbytes
    assert _scan(_file(header, b"\0" * offset)) == []
    assert {"F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", "U16", "U32", "U64"} <= set(DTYPE_BITS)


# -- header length -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05\x00\x00",
        struct.pack("<Q", 2**62) + b'{"a": 1}',
        struct.pack("<Q", 2**64 - 1) + b"{}",
        struct.pack("<Q", 100) + b"{}",
        struct.pack("<Q", 0),
    ],
    ids=["empty", "short", "2^62", "2^64-1", "past-eof", "zero"],
)
def test_bad_header_length_is_a_finding(data: bytes) -> None:
    assert _rules(data) == {"SFT001"}


def test_huge_header_length_is_quick_and_bounded() -> None:
    data = struct.pack("<Q", 2**62) + b"{" + b" " * 1000
    tracemalloc.start()
    found = _scan(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [f.rule for f in found] == ["SFT001"]
    assert peak < 1 << 20


def test_header_over_cap_is_a_finding() -> None:
    data = _file({"__metadata__": {"x": "y" * 4000}})
    assert [f.rule for f in _scan(data, Limits(max_header_bytes=1024))] == ["SFT001"]


# -- strict JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "severity"),
    [
        (b'{"a": ', Severity.HIGH),
        (b"[1, 2]", Severity.HIGH),
        (b'{"__metadata__": {"x": "y"}}garbage', Severity.HIGH),
        (b'{"__metadata__": {"x": "y"}}\x00\x00\x00\x00', Severity.HIGH),
        (b'{"__metadata__": {"x": "y"}}{"a": 1}', Severity.HIGH),
        (b'{"__metadata__": {"x": "y"}}\n\t\n', Severity.LOW),
        (b'  {"__metadata__": {"x": "y"}}', Severity.MEDIUM),
        (b'{"a": NaN}', Severity.HIGH),
        (b'{"a": -Infinity}', Severity.HIGH),
        (b'{"a": "\xff\xfe"}', Severity.HIGH),
        (b"not json at all", Severity.HIGH),
        (b'{"a": ' + b"1" * 5000 + b"}", Severity.HIGH),
    ],
    ids=[
        "truncated",
        "array",
        "trailing-text",
        "trailing-nul",
        "second-object",
        "tab-newline-padding",
        "leading-space",
        "nan",
        "infinity",
        "not-utf8",
        "not-json",
        "huge-int",
    ],
)
def test_non_strict_json_is_sft002(header: bytes, severity: Severity) -> None:
    found = [f for f in _scan(_file(header, pad=False)) if f.rule == "SFT002"]
    assert found, header
    assert max(f.severity for f in found) == severity


def test_space_padding_is_allowed() -> None:
    header = json.dumps({"a": _entry("U8", [2], 0, 2)}).encode() + b" " * 13
    assert _scan(_file(header, b"\1\2", pad=False)) == []


def test_deeply_nested_json_is_a_finding_not_a_crash() -> None:
    header = b'{"__metadata__": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert "SFT002" in _rules(_file(header))


def test_duplicate_tensor_names_are_sft003() -> None:
    # Python keeps the last copy, serde_json-style readers may keep the first: a differential.
    one = json.dumps(_entry("U8", [2], 0, 2))
    two = json.dumps(_entry("U8", [2], 2, 4))
    header = f'{{"w": {one}, "w": {two}}}'.encode()
    found = _scan(_file(header, b"\0" * 4))
    assert "SFT003" in {f.rule for f in found}


def test_duplicate_key_inside_entry_is_sft003() -> None:
    header = b'{"w": {"dtype": "U8", "dtype": "I8", "shape": [2], "data_offsets": [0, 2]}}'
    assert "SFT003" in _rules(_file(header, b"\0\0"))


# -- tensor entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "F31", "shape": [2], "data_offsets": [0, 8]},
        {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]},
        {"dtype": 1, "shape": [2], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]},
        {"dtype": "F32", "shape": [2], "data_offsets": [0]},
        {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]},
        {"dtype": "F32", "shape": [2], "data_offsets": [-1, 7]},
        {"dtype": "F32", "shape": [2]},
        [1, 2, 3],
    ],
)
def test_invalid_entries_are_sft004(entry: object) -> None:
    assert "SFT004" in _rules(_file({"w": entry}, b"\0" * 8))


def test_unknown_entry_keys_are_sft011_low() -> None:
    entry = {**_entry("U8", [2], 0, 2), "note": "hidden channel"}
    found = _scan(_file({"w": entry}, b"\0\0"))
    assert [(f.rule, f.severity) for f in found] == [("SFT011", Severity.LOW)]


@pytest.mark.parametrize(
    ("dtype", "shape", "span"),
    [
        ("F32", [2, 3], 20),
        ("F32", [2, 3], 28),
        ("BF16", [4], 4),
        ("F4", [3], 2),  # 12 bits: not whole bytes
        ("F32", [2**40, 2**40, 2**40], 8),  # overflow of a fixed-width product
        ("F32", [10**300], 8),
        ("U8", [2] * 10_000, 8),
    ],
)
def test_size_mismatch_is_sft005(dtype: str, shape: list[int], span: int) -> None:
    assert "SFT005" in _rules(_file({"w": _entry(dtype, shape, 0, span)}, b"\0" * span))


def test_zero_sized_tensors_are_fine() -> None:
    header = {"a": _entry("F32", [0, 7], 0, 0), "b": _entry("U8", [2], 0, 2)}
    assert _scan(_file(header, b"\0\0")) == []


def test_span_past_eof_is_sft006() -> None:
    header = {"w": _entry("U8", [16], 0, 16)}
    assert "SFT006" in _rules(_file(header, b"\0" * 8))


def test_huge_offsets_are_sft006_quickly() -> None:
    header = {"w": _entry("U8", [2**62], 0, 2**62)}
    assert "SFT006" in _rules(_file(header, b"\0" * 8))


def test_overlapping_spans_are_sft007() -> None:
    header = {"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}
    found = _scan(_file(header, b"\0" * 12))
    assert "SFT007" in {f.rule for f in found}


def test_aliased_identical_spans_are_sft007() -> None:
    header = {"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 0, 8)}
    assert _rules(_file(header, b"\0" * 8)) == {"SFT007"}


def test_hole_between_tensors_is_sft008_medium() -> None:
    header = {"a": _entry("U8", [4], 0, 4), "b": _entry("U8", [4], 8, 12)}
    found = _scan(_file(header, b"\1" * 12))
    assert [(f.rule, f.severity) for f in found] == [("SFT008", Severity.MEDIUM)]


def test_appended_pickle_is_sft008_high() -> None:
    # A polyglot: valid safetensors, then an (inert) pickle another loader might read.
    payload = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05hello\x94."
    header = {"a": _entry("U8", [4], 0, 4)}
    found = _scan(_file(header, b"\0" * 4 + payload))
    assert [(f.rule, f.severity) for f in found] == [("SFT008", Severity.HIGH)]
    assert "pickle" in found[0].message


def test_empty_header_with_data_is_sft008() -> None:
    assert _rules(_file({}, b"PK\x03\x04rest")) == {"SFT008"}


# -- __metadata__ ------------------------------------------------------------------------------


def test_metadata_must_be_str_to_str() -> None:
    assert "SFT009" in _rules(_file({"__metadata__": {"epoch": 3}}))
    assert "SFT009" in _rules(_file({"__metadata__": ["x"]}))
    assert "SFT009" in _rules(_file({"__metadata__": {"nested": {"a": "b"}}}))


def test_oversized_metadata_value_is_low() -> None:
    found = _scan(_file({"__metadata__": {"blob": "a" * (2 << 20)}}))
    assert [(f.rule, f.severity) for f in found] == [("SFT009", Severity.LOW)]


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(b"\x80\x04\x95" + b"\x00" * 40 + b"builtins print").decode(),
        base64.b64encode(b"\x80\x02cbuiltins\nprint\nq\x00" + b"x" * 40).decode(),
        "\x80\x04\x95junk",
        "<script>alert(1)</script>",
        "__import__('os').system('echo hi')",
    ],
)
def test_suspicious_metadata_content_is_sft010_low(value: str) -> None:
    found = _scan(_file({"__metadata__": {"config": value}}))
    assert [(f.rule, f.severity) for f in found] == [("SFT010", Severity.LOW)]


@pytest.mark.parametrize(
    "value",
    [
        "pt",
        "https://huggingface.co/org/model",
        '{"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"}',
        "gAS",
        "Apache-2.0",
        "sha256:" + "ab" * 32,
    ],
)
def test_ordinary_metadata_is_clean(value: str) -> None:
    assert _scan(_file({"__metadata__": {"k": value}})) == []


def test_findings_are_capped_per_rule() -> None:
    header = {f"t{i}": _entry("F32", [2], 0, 4) for i in range(60)}
    found = _scan(_file(header, b"\0" * 4))
    mismatches = [f for f in found if f.rule == "SFT005"]
    assert len(mismatches) == 21
    assert "40 more" in mismatches[-1].message


# -- fuzz --------------------------------------------------------------------------------------


_SEED = _real_file()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, min(len(_SEED), 400) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
    cut=st.one_of(st.none(), st.integers(0, len(_SEED))),
)
def test_fuzzed_headers_never_crash(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    blob = bytes(data[:cut] if cut is not None else data)
    try:
        found = _scan(blob)
    except ArtifactError:
        return
    for f in found:
        assert f.rule.startswith("SFT")
