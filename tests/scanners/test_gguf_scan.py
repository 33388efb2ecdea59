"""GGUF bounds checks and chat-template analysis; hostile files never crash or over-allocate."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.gguf_scan import GgufScanner
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths

BENIGN_TEMPLATE = (
    "{% set ns = namespace(found=false) %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.found = true %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SSTI_TEMPLATE = "{{ cycler.__init__.__globals__.os.popen('echo supplychain-test').read() }}"


def _scan(data: bytes) -> list[Finding]:
    artifact = Artifact(
        path="model.gguf", kind=ArtifactKind.GGUF, size=len(data), stream=io.BytesIO(data)
    )
    return list(GgufScanner().scan(artifact, ScanContext()))


def _rules(data: bytes) -> set[str]:
    return {f.rule for f in _scan(data)}


def _real_gguf(
    path: Path,
    *,
    template: str | None = BENIGN_TEMPLATE,
    named: dict[str, str] | None = None,
    big_endian: bool = False,
) -> bytes:
    from gguf import GGMLQuantizationType, GGUFEndian, GGUFWriter

    endian = GGUFEndian.BIG if big_endian else GGUFEndian.LITTLE
    writer = GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_block_count(1)
    writer.add_context_length(2048)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(3000)])
    writer.add_token_scores([float(i) for i in range(3000)])
    writer.add_token_merges([f"t {i}" for i in range(500)])
    writer.add_array("test.nested", [[1, 2], [3, 4, 5]])
    if template is not None:
        writer.add_chat_template(template)
    if named:
        writer.add_chat_template([{"name": k, "template": v} for k, v in named.items()])
    writer.add_tensor("token_embd.weight", np.ones((8, 32), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((5,), dtype=np.float16))
    q8 = np.zeros((2, 34), dtype=np.uint8)  # two Q8_0 blocks: 64 elements
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


# -- hand-built files --------------------------------------------------------------------------


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _kv_str(key: str, value: str | bytes) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def _ti(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    out = _s(name) + struct.pack("<I", len(dims))
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ggml_type, offset)


def _gguf(
    kvs: list[bytes],
    tis: list[bytes],
    data: bytes = b"",
    *,
    alignment: int = 32,
    n_tensors: int | None = None,
    n_kv: int | None = None,
) -> bytes:
    head = b"GGUF" + struct.pack(
        "<IQQ", 3, len(tis) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv
    )
    body = head + b"".join(kvs) + b"".join(tis)
    pad = (-len(body)) % alignment
    return body + b"\0" * pad + data


def _f32(name: str, n: int, offset: int) -> bytes:
    return _ti(name, [n], 0, offset)


# -- benign ------------------------------------------------------------------------------------


def test_file_written_by_real_gguf_writer_is_clean(tmp_path: Path) -> None:
    assert _scan(_real_gguf(tmp_path / "m.gguf")) == []


def test_big_endian_file_is_clean(tmp_path: Path) -> None:
    data = _real_gguf(tmp_path / "m.gguf", big_endian=True)
    assert data[4:8] == b"\x00\x00\x00\x03"
    assert _scan(data) == []


def test_named_templates_are_clean(tmp_path: Path) -> None:
    data = _real_gguf(
        tmp_path / "m.gguf", named={"default": BENIGN_TEMPLATE, "tool_use": "{{ x }}"}
    )
    assert _scan(data) == []


def test_hand_built_minimal_file_is_clean() -> None:
    data = _gguf(
        [_kv_u32("general.alignment", 32)], [_f32("a", 8, 0), _f32("b", 8, 32)], b"\1" * 64
    )
    assert _scan(data) == []


def test_version_1_file_is_parsed() -> None:
    key = b"general.name"
    kv = struct.pack("<I", len(key)) + key + struct.pack("<II", 8, 2) + b"ok"
    ti = struct.pack("<I", 1) + b"a" + struct.pack("<II", 1, 8) + struct.pack("<IQ", 0, 0)
    body = b"GGUF" + struct.pack("<III", 1, 1, 1) + kv + ti
    body += b"\0" * ((-len(body)) % 32) + b"\0" * 32
    assert _scan(body) == []


def test_through_engine(tmp_path: Path) -> None:
    # GGUF must be scanned, not skipped as unsupported: https://github.com/protectai/modelscan/issues/111
    _real_gguf(tmp_path / "clean.gguf")
    _real_gguf(tmp_path / "evil.gguf", template=SSTI_TEMPLATE)
    report = scan_paths([tmp_path], ScanOptions(scanners=(GgufScanner,)))
    paths = {f.location.path for f in report.findings}
    assert paths == {"evil.gguf"}
    assert report.worst == Severity.CRITICAL
    assert {(r.path, r.status.value) for r in report.results if r.scanner == "gguf"} == {
        ("clean.gguf", "scanned"),
        ("evil.gguf", "scanned"),
    }


# -- chat templates ----------------------------------------------------------------------------


def test_ssti_in_chat_template(tmp_path: Path) -> None:
    # CVE-2024-34359 (llama-cpp-python) / SGLang CVE-2026-5760 shape in tokenizer.chat_template.
    # https://justappsec.com/news/2026-04-sglang-gguf-ssti-rce
    found = _scan(_real_gguf(tmp_path / "m.gguf", template=SSTI_TEMPLATE))
    assert {"TPL001", "TPL002"} <= {f.rule for f in found}
    assert all("tokenizer.chat_template" in f.message for f in found)


def test_ssti_in_named_template(tmp_path: Path) -> None:
    data = _real_gguf(
        tmp_path / "m.gguf",
        named={"default": BENIGN_TEMPLATE, "rag": "{{ lipsum|attr('__globals__') }}"},
    )
    found = _scan(data)
    assert "TPL001" in {f.rule for f in found}
    assert any("tokenizer.chat_template.rag" in f.message for f in found)


def test_duplicate_template_key_is_flagged_and_both_analysed() -> None:
    kvs = [
        _kv_str("tokenizer.chat_template", BENIGN_TEMPLATE),
        _kv_str("tokenizer.chat_template", SSTI_TEMPLATE),
    ]
    rules = _rules(_gguf(kvs, []))
    assert {"GGF005", "TPL001"} <= rules


def test_malformed_template_is_tpl006() -> None:
    assert _rules(_gguf([_kv_str("tokenizer.chat_template", "{% if %}")], [])) == {"TPL006"}


def test_oversized_template_is_tpl006() -> None:
    big = "{{ x }}" * 400_000
    assert _rules(_gguf([_kv_str("tokenizer.chat_template", big)], [])) == {"TPL006"}


def test_template_found_before_truncation_is_still_reported() -> None:
    kv = _kv_str("tokenizer.chat_template", SSTI_TEMPLATE)
    data = _gguf([kv], [], n_kv=2)[: 24 + len(kv) + 5]
    rules = _rules(data)
    assert {"TPL001", "GGF001"} <= rules


# -- header and counts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GGUF",
        b"GGUF\x03\x00\x00\x00\x01",
        b"GGUF" + struct.pack("<I", 4) + b"\0" * 16,
        b"GGUF" + struct.pack("<I", 0) + b"\0" * 16,
        b"GGXF" + struct.pack("<IQQ", 3, 0, 0),
    ],
    ids=["magic-only", "cut-in-counts", "version-4", "version-0", "bad-magic"],
)
def test_bad_header_is_ggf001(data: bytes) -> None:
    assert _rules(data) == {"GGF001"}


@pytest.mark.parametrize(
    ("n_tensors", "n_kv"),
    [(2**63, 0), (0, 2**63), (2**64 - 1, 2**64 - 1), (10**9, 0), (0, 10**6)],
)
def test_huge_counts_are_ggf002_fast_and_bounded(n_tensors: int, n_kv: int) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + b"\0" * 64
    tracemalloc.start()
    found = _scan(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [f.rule for f in found] == ["GGF002"]
    assert peak < 1 << 20


def test_string_length_past_eof_is_ggf003() -> None:
    kv = _s("general.name") + struct.pack("<IQ", 8, 2**62) + b"abc"
    assert _rules(_gguf([kv], [])) == {"GGF003"}


def test_key_length_past_eof_is_ggf003() -> None:
    kv = struct.pack("<Q", 2**40) + b"general"
    assert _rules(_gguf([kv], [])) == {"GGF003"}


@pytest.mark.parametrize("item_type", [0, 6, 10, 8, 9])
def test_huge_array_count_is_ggf003_fast(item_type: int) -> None:
    kv = _s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, item_type, 2**60)
    tracemalloc.start()
    found = _scan(_gguf([kv], []))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert {f.rule for f in found} == {"GGF003"}
    assert peak < 1 << 20


def test_string_in_array_past_eof_is_ggf003() -> None:
    kv = _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + _s("a") + _s("b")
    kv += struct.pack("<Q", 10**12)
    assert _rules(_gguf([kv], [])) == {"GGF003"}


def test_truncated_kv_is_a_finding() -> None:
    full = _gguf([_kv_str("general.name", "model"), _kv_u32("general.alignment", 32)], [])
    for cut in range(24, len(full) - 1, 3):
        rules = _rules(full[:cut])
        assert rules & {"GGF001", "GGF002", "GGF003"}, cut


def test_unknown_value_type_is_ggf004() -> None:
    kv = _s("general.weird") + struct.pack("<I", 13) + b"\0" * 8
    assert _rules(_gguf([kv], [])) == {"GGF004"}


def test_unknown_array_item_type_is_ggf004() -> None:
    kv = _s("general.weird") + struct.pack("<IIQ", 9, 99, 1) + b"\0" * 8
    assert _rules(_gguf([kv], [])) == {"GGF004"}


def test_deeply_nested_arrays_are_ggf004() -> None:
    nested = struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 0, 1) + b"\0"
    kv = _s("general.nest") + struct.pack("<I", 9) + nested
    assert "GGF004" in _rules(_gguf([kv], []))


def test_non_utf8_key_is_ggf004() -> None:
    kv = _s(b"general.\xff") + struct.pack("<II", 4, 1)
    assert _rules(_gguf([kv], [])) == {"GGF004"}


def test_duplicate_key_is_ggf005() -> None:
    kvs = [_kv_str("general.name", "a"), _kv_str("general.name", "b")]
    assert _rules(_gguf(kvs, [])) == {"GGF005"}


def test_huge_string_array_walk_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    # Millions of empty strings: each length is in bounds, but walking them is bounded work.
    # The cap is lowered here so the test stays small; the mechanism is the same.
    import scanners.gguf_scan as mod

    monkeypatch.setattr(mod, "MAX_WALKED_ITEMS", 1000)
    count = 1500
    kv = _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, count) + b"\0" * (8 * count)
    data = _gguf([_kv_str("tokenizer.chat_template", SSTI_TEMPLATE), kv], [])
    found: list[Finding] = []
    artifact = Artifact(
        path="m.gguf", kind=ArtifactKind.GGUF, size=len(data), stream=io.BytesIO(data)
    )
    with pytest.raises(LimitExceeded):
        found.extend(GgufScanner().scan(artifact, ScanContext()))
    assert "TPL001" in {f.rule for f in found}  # what was seen before the cap is still reported


# -- tensor infos and layout -------------------------------------------------------------------


def test_duplicate_tensor_name_is_ggf005() -> None:
    data = _gguf([], [_f32("a", 8, 0), _f32("a", 8, 32)], b"\0" * 64)
    assert _rules(data) == {"GGF005"}


@pytest.mark.parametrize(
    "ti",
    [
        _ti("a", [2, 2, 2, 2, 2], 0, 0),  # 5 dims
        _ti("a", [2**63], 0, 0),  # negative as int64
        _ti("a", [2**32, 2**32], 0, 0),  # element count overflows int64
        _ti("a", [33], 2, 0),  # Q4_0 row not a multiple of 32
        _ti("a", [32], 250, 0),  # unknown ggml type
        _ti("n" * 64, [8], 0, 0),  # name too long for ggml
    ],
    ids=["5-dims", "negative", "overflow", "partial-block", "unknown-type", "long-name"],
)
def test_invalid_tensor_info_is_ggf006(ti: bytes) -> None:
    assert "GGF006" in _rules(_gguf([], [ti], b"\0" * 256))


def test_huge_ndims_is_ggf006_fast() -> None:
    ti = _s("a") + struct.pack("<I", 2**31)
    assert _rules(_gguf([], [ti], b"\0" * 64)) == {"GGF006"}


def test_tensor_past_eof_is_ggf007() -> None:
    assert "GGF007" in _rules(_gguf([], [_f32("a", 64, 0)], b"\0" * 32))


def test_tensor_offset_past_eof_is_ggf007() -> None:
    assert "GGF007" in _rules(_gguf([], [_f32("a", 8, 2**60)], b"\0" * 32))


def test_misaligned_tensor_is_ggf007() -> None:
    assert "GGF007" in _rules(_gguf([], [_f32("a", 8, 0), _f32("b", 8, 36)], b"\0" * 96))


def test_overlapping_tensors_are_ggf007() -> None:
    data = _gguf([], [_f32("a", 16, 0), _f32("b", 16, 32)], b"\0" * 96)
    assert _rules(data) == {"GGF007"}


def test_bad_alignment_is_ggf008() -> None:
    assert "GGF008" in _rules(_gguf([_kv_u32("general.alignment", 24)], []))
    assert "GGF008" in _rules(_gguf([_kv_u32("general.alignment", 0)], []))
    kv = _s("general.alignment") + struct.pack("<IQ", 10, 32)
    assert "GGF008" in _rules(_gguf([kv], []))


def test_custom_alignment_is_honoured() -> None:
    data = _gguf(
        [_kv_u32("general.alignment", 64)],
        [_f32("a", 8, 0), _f32("b", 8, 64)],
        b"\0" * 128,
        alignment=64,
    )
    assert _scan(data) == []


def test_hole_between_tensors_is_ggf009() -> None:
    data = _gguf([], [_f32("a", 8, 0), _f32("b", 8, 128)], b"\0" * 160)
    found = _scan(data)
    assert [(f.rule, f.severity) for f in found] == [("GGF009", Severity.MEDIUM)]


def test_appended_zip_is_ggf009_high() -> None:
    data = _gguf([], [_f32("a", 8, 0)], b"\0" * 32 + b"PK\x03\x04" + b"\0" * 40)
    found = _scan(data)
    assert [(f.rule, f.severity) for f in found] == [("GGF009", Severity.HIGH)]


# -- fuzz --------------------------------------------------------------------------------------


_SEED = _gguf(
    [
        _kv_str("general.name", "fuzz"),
        _kv_u32("general.alignment", 32),
        _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + _s("a") + _s("bb") + _s("c"),
        _s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + b"\0" * 12,
        _kv_str("tokenizer.chat_template", BENIGN_TEMPLATE),
    ],
    [_f32("a", 8, 0), _ti("b", [32, 2], 8, 32)],
    b"\0" * 128,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.integers(0, len(_SEED))),
)
def test_fuzzed_files_never_crash(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    blob = bytes(data[:cut] if cut is not None else data)
    try:
        found = _scan(blob)
    except ArtifactError:
        return
    for f in found:
        assert f.rule.startswith(("GGF", "TPL"))
