"""Legacy (pre-1.6) torch.save streams are parsed as their layout, never as stacked pickles.

Layout (torch/serialization.py ``_legacy_save``/``_legacy_load``): pickle(MAGIC_NUMBER),
pickle(PROTOCOL_VERSION=1001), pickle(sys_info), pickle(object with persistent ids),
pickle(sorted storage keys), then per key an int64 element count and count × element-size raw
bytes. A storage of 128 elements starts ``80 00``, which a stacked-pickle walk takes for PROTO:
that gave false findings (and could hide real ones). Files here are built by hand from inert data
(the product never unpickles); the real ``torch.save`` sweep is behind the ``framework`` marker.
The payload would run ``echo supplychain-sample`` if anything ever loaded it.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners._magic import LEGACY_MAGIC, is_legacy_torch
from scanners.base import Artifact, ScanContext
from scanners.torch_scan import TorchScanner
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Finding, Severity

PAYLOAD = b"\x80\x02cos\nsystem\nX\x17\x00\x00\x00echo supplychain-sampleq\x00\x85q\x01R."
"""``os.system("echo supplychain-sample")`` as a protocol-2 pickle (harmless if ever run)."""
SYS_INFO = {
    "protocol_version": 1001,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 8},
}
ELEMENT_SIZE = {"ByteStorage": 1, "HalfStorage": 2, "FloatStorage": 4, "DoubleStorage": 8}


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def object_pickle(storages: list[tuple[str, str, int]], extra: bytes = b"") -> bytes:
    """``{key: persistent_load(('storage', torch.<Type>, key, 'cpu', numel, None))}``.

    Opcodes written out because the storage classes are globals of a module (torch) the default
    suite does not have; ``extra`` is spliced in as one more dict value (a payload).
    """
    out = [b"\x80\x02}(" if storages or extra else b"\x80\x02}"]
    for key, type_name, numel in storages:
        out.append(_unicode(key))
        out.append(b"(" + _unicode("storage") + b"ctorch\n" + type_name.encode() + b"\n")
        out.append(_unicode(key) + _unicode("cpu") + b"J" + struct.pack("<i", numel) + b"Nt")
        out.append(b"Q")
    if extra:
        out.append(_unicode("extra") + extra)
    out.append(b"u." if storages or extra else b".")
    return b"".join(out)


def legacy_stream(
    storages: list[tuple[str, str, int]],
    *,
    fill: bytes = b"\x00",
    counts: dict[str, int] | None = None,
    sys_info: bytes | None = None,
    obj_extra: bytes = b"",
    trailer: bytes = b"",
    drop_last_record: bool = False,
) -> bytes:
    """A legacy stream as ``_legacy_save`` writes it; knobs break the layout on purpose."""
    keys = sorted(key for key, _t, _n in storages)
    parts = [
        pickle.dumps(LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        sys_info if sys_info is not None else pickle.dumps(SYS_INFO, protocol=2),
        object_pickle(storages, obj_extra),
        pickle.dumps(keys, protocol=2),
    ]
    by_key = {key: (t, n) for key, t, n in storages}
    for i, key in enumerate(keys):
        if drop_last_record and i == len(keys) - 1:
            break
        type_name, numel = by_key[key]
        count = (counts or {}).get(key, numel)
        size = numel * ELEMENT_SIZE[type_name]
        data = (fill * (size // len(fill) + 1))[:size]
        parts.append(struct.pack("<q", count) + data)
    parts.append(trailer)
    return b"".join(parts)


def scan_legacy(data: bytes) -> list[Finding]:
    """The torch scanner on a ``TORCH_LEGACY`` artifact (pickle analysis included)."""
    art = Artifact(
        path="model.pt", kind=ArtifactKind.TORCH_LEGACY, size=len(data), stream=io.BytesIO(data)
    )
    return list(TorchScanner().scan(art, ScanContext()))


def rule_ids(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


SWEEP_COUNTS = (0, 1, 127, 128, 255, 256, 0x280, 0x380, 0x480, 0x580, 0x8000, 0x8002)
"""Element counts whose int64 prefix starts like PROTO (``80 0X``) or other opcodes."""


# --------------------------------------------------------------------------------------------
# identification


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_legacy_magic_pickle_is_recognised_in_every_protocol(protocol: int) -> None:
    head = pickle.dumps(LEGACY_MAGIC, protocol=protocol) + pickle.dumps(1001, protocol=protocol)
    assert is_legacy_torch(head)


@pytest.mark.parametrize(
    "head",
    [
        pickle.dumps(LEGACY_MAGIC + 1, protocol=2),
        pickle.dumps([LEGACY_MAGIC], protocol=2),
        pickle.dumps({"a": 1}, protocol=2),
        PAYLOAD,
        b"\x80\x02\x8a\x0a",
        b"",
    ],
)
def test_other_pickles_are_not_legacy_torch(head: bytes) -> None:
    assert not is_legacy_torch(head)


# --------------------------------------------------------------------------------------------
# storage records are skipped by their declared sizes


def test_legacy_first_storage_of_128_elements_is_not_read_as_a_pickle() -> None:
    """The regression: ``80 00 00 ..`` (count 128) used to be walked as a stacked pickle."""
    data = legacy_stream([("140000", "FloatStorage", 128)])
    assert data.count(b"\x80\x00\x00\x00\x00\x00\x00\x00") == 1
    assert scan_legacy(data) == []


@pytest.mark.parametrize("type_name", sorted(ELEMENT_SIZE))
@pytest.mark.parametrize("count", SWEEP_COUNTS)
def test_legacy_storage_count_sweep_is_clean(type_name: str, count: int) -> None:
    storages = [("1", type_name, count), ("2", "FloatStorage", 128), ("3", type_name, count)]
    assert scan_legacy(legacy_stream(storages)) == []


@pytest.mark.parametrize("fill", [b"\x80\x02", b"\x80\x05\x95", b"c", b"\x80\x03}q\x00"])
def test_storage_bytes_that_look_like_opcodes_are_data(fill: bytes) -> None:
    """Raw storage bytes shaped like PROTO/GLOBAL opcodes are never walked as a pickle."""
    data = legacy_stream([("7", "ByteStorage", 300), ("8", "DoubleStorage", 40)], fill=fill)
    assert scan_legacy(data) == []


def test_storage_record_holding_a_whole_pickle_is_a_stash_and_analysed() -> None:
    """torch never unpickles storage bytes, but a complete pickle there is a payload stash."""
    numel = len(PAYLOAD)
    data = legacy_stream([("1", "ByteStorage", numel)], fill=PAYLOAD)
    found = scan_legacy(data)
    assert "ARC011" in rule_ids(found)
    assert worst(found) is Severity.CRITICAL


# --------------------------------------------------------------------------------------------
# all five pickles are analysed


def test_payload_in_the_object_pickle_is_found() -> None:
    data = legacy_stream([("1", "FloatStorage", 128)], obj_extra=PAYLOAD[2:-1])
    found = scan_legacy(data)
    assert worst(found) is Severity.CRITICAL
    assert not rule_ids(found) & {"ARC013", "ARC014"}


def test_payload_in_the_sys_info_pickle_is_found() -> None:
    """torch.load runs the sys_info pickle before it looks at anything else."""
    data = legacy_stream([("1", "FloatStorage", 4)], sys_info=PAYLOAD)
    found = scan_legacy(data)
    assert worst(found) is Severity.CRITICAL
    (hit,) = [f for f in found if f.severity is Severity.CRITICAL][:1]
    assert hit.location.offset is not None
    assert hit.location.offset >= data.index(PAYLOAD)


# --------------------------------------------------------------------------------------------
# what does not fit the layout is a finding


def test_trailing_stacked_pickle_after_the_last_storage_record() -> None:
    data = legacy_stream([("1", "FloatStorage", 128), ("2", "HalfStorage", 3)], trailer=PAYLOAD)
    found = scan_legacy(data)
    (tail,) = [f for f in found if f.rule == "ARC014"]
    assert tail.severity is Severity.HIGH
    assert tail.location.offset == len(data) - len(PAYLOAD)
    critical = [f for f in found if f.severity is Severity.CRITICAL]
    assert critical and all((f.location.offset or 0) >= len(data) - len(PAYLOAD) for f in critical)


def test_trailing_junk_after_the_last_record_is_a_finding() -> None:
    data = legacy_stream([("1", "FloatStorage", 2)], trailer=b"\x00junk")
    assert "ARC014" in rule_ids(scan_legacy(data))


def test_record_whose_count_disagrees_with_its_persistent_id() -> None:
    """A resized record shifts everything after it: flagged, and the rest analysed as pickles."""
    data = legacy_stream(
        [("1", "FloatStorage", 8), ("2", "FloatStorage", 8)],
        counts={"1": 2},
        trailer=PAYLOAD,
    )
    found = scan_legacy(data)
    assert "ARC013" in rule_ids(found)
    assert worst(found) is Severity.CRITICAL


def test_missing_storage_record_is_a_finding() -> None:
    data = legacy_stream(
        [("1", "FloatStorage", 8), ("2", "FloatStorage", 8)], drop_last_record=True
    )
    found = scan_legacy(data)
    assert "ARC013" in rule_ids(found)
    assert worst(found) is Severity.HIGH


def test_storage_key_without_persistent_id_is_a_finding() -> None:
    good = legacy_stream([("1", "FloatStorage", 4)])
    old = pickle.dumps(["1"], protocol=2)
    keys_at = good.index(old)
    data = good[:keys_at] + pickle.dumps(["1", "9"], protocol=2) + good[keys_at + len(old) :]
    found = scan_legacy(data)
    assert "ARC013" in rule_ids(found)


def test_unknown_storage_type_fails_closed() -> None:
    data = legacy_stream([("1", "FloatStorage", 4)]).replace(b"FloatStorage", b"FloatStoragX")
    found = scan_legacy(data)
    assert "ARC013" in rule_ids(found)
    severity = worst(found)
    assert severity is not None
    assert severity >= Severity.HIGH


def test_broken_header_pickle_is_a_finding_and_what_ran_is_analysed() -> None:
    data = pickle.dumps(LEGACY_MAGIC, protocol=2) + PAYLOAD[:-1] + b"\xff\xff"
    found = scan_legacy(data)
    assert "ARC013" in rule_ids(found)
    assert worst(found) is Severity.CRITICAL


def test_wrong_protocol_version_is_a_finding() -> None:
    good = legacy_stream([("1", "FloatStorage", 4)])
    data = good.replace(pickle.dumps(1001, protocol=2), pickle.dumps(1002, protocol=2), 1)
    assert "ARC013" in rule_ids(scan_legacy(data))


# --------------------------------------------------------------------------------------------
# real torch.save output (framework marker: CI's default suite has no torch)


@pytest.mark.framework
@pytest.mark.parametrize(
    "dtype_name", ["uint8", "int8", "float16", "bfloat16", "float32", "float64"]
)
def test_real_torch_legacy_save_storage_sweep(tmp_path: Path, dtype_name: str) -> None:
    import torch

    dtype = getattr(torch, dtype_name)
    for count in SWEEP_COUNTS:
        path = tmp_path / f"m{count}.pt"
        obj = {"w": torch.zeros(count, dtype=dtype), "b": torch.ones(128, dtype=torch.float32)}
        torch.save(obj, path, _use_new_zipfile_serialization=False)
        data = path.read_bytes()
        assert is_legacy_torch(data[:64])
        assert scan_legacy(data) == [], (dtype_name, count)


@pytest.mark.framework
def test_real_torch_legacy_save_with_trailing_payload(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(128)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes() + PAYLOAD
    found = scan_legacy(data)
    assert "ARC014" in rule_ids(found)
    assert worst(found) is Severity.CRITICAL


# --------------------------------------------------------------------------------------------
# end to end: identification routes the stream to the layout parser, every scanner runs


def _engine(tmp_path: Path, data: bytes) -> tuple[ArtifactKind, set[str], bool]:
    from supplychain.engine import scan_paths
    from supplychain.policy import Policy, apply

    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(data)
    report = scan_paths([path])
    verdict = apply(report, Policy()).verdict
    assert verdict is not None
    assert not report.failed
    return report.files[0].kind, {f.rule for f in report.findings}, verdict.passed


def test_engine_routes_legacy_stream_with_128_element_storage_and_passes(tmp_path: Path) -> None:
    kind, found, passed = _engine(tmp_path, legacy_stream([("1", "FloatStorage", 128)]))
    assert kind is ArtifactKind.TORCH_LEGACY
    assert found == set()
    assert passed


def test_engine_fails_the_gate_on_a_trailing_stacked_pickle(tmp_path: Path) -> None:
    data = legacy_stream([("1", "FloatStorage", 128)], trailer=PAYLOAD)
    kind, found, passed = _engine(tmp_path, data)
    assert kind is ArtifactKind.TORCH_LEGACY
    assert "ARC014" in found
    assert not passed


def test_cuda_storage_classes_have_their_cpu_element_size() -> None:
    """The legacy loader maps any known ``*Storage`` name to its dtype, whatever the module."""
    data = legacy_stream([("1", "HalfStorage", 128), ("2", "DoubleStorage", 3)])
    data = data.replace(b"ctorch\nHalfStorage", b"ctorch.cuda\nHalfStorage")
    found = scan_legacy(data)
    assert not {f.rule for f in found if f.rule.startswith("ARC")}  # the layout parsed
    severity = worst(found)
    assert severity is None or severity < Severity.HIGH  # (the import is the allowlist's call)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=2000),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2000), st.integers(0, 255)), max_size=6
    ),
)
def test_mutated_legacy_streams_only_raise_artifact_errors(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    """Hostile edits anywhere in the layout end in findings or ArtifactError, never a crash."""
    base = bytearray(
        legacy_stream([("1", "FloatStorage", 128), ("2", "HalfStorage", 7)], trailer=PAYLOAD)
    )
    for pos, value in flips:
        if pos < len(base):
            base[pos] = value
    data = bytes(base[: max(cut, 1)]) if cut < len(base) else bytes(base)
    try:
        scan_legacy(data)
    except ArtifactError:
        pass


def _module_pid(module: bytes, name: bytes) -> bytes:
    """``persistent_load(('module', <module.name>, 'f.py', 'src'))``: a legacy whole-module save."""
    return (
        b"(" + _unicode("module") + b"c" + module + b"\n" + name + b"\n"
        + _unicode("f.py") + _unicode("src") + b"tQ"
    )  # fmt: skip


def test_whole_module_legacy_save_resolves_module_persistent_ids() -> None:
    """torch's legacy persistent_load returns the class of a ('module', cls, ...) id."""
    newobj = _module_pid(b"torch.nn.modules.linear", b"Linear") + b")\x81"
    data = legacy_stream([("1", "FloatStorage", 128)], obj_extra=newobj)
    found = scan_legacy(data)
    severity = worst(found)
    assert severity is None or severity < Severity.HIGH, found


def test_module_persistent_id_naming_a_dangerous_callable_is_a_call_of_it() -> None:
    call = _module_pid(b"os", b"system") + _unicode("echo supplychain-sample") + b"\x85R"
    data = legacy_stream([("1", "FloatStorage", 4)], obj_extra=call)
    assert worst(scan_legacy(data)) is Severity.CRITICAL


@pytest.mark.framework
def test_real_torch_legacy_whole_module_save_passes(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "m.pt"
    torch.save(
        torch.nn.Sequential(torch.nn.Linear(128, 3)), path, _use_new_zipfile_serialization=False
    )
    found = scan_legacy(path.read_bytes())
    severity = worst(found)
    assert severity is None or severity < Severity.HIGH, found
