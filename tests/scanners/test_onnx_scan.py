"""OnnxScanner: external-data traversal (lexical, symlink, hard link), custom domains, Python
ops, subgraphs and functions, on models built with the real ``onnx.helper``; malformed input is a
finding, never a traceback. Nothing here loads external data or runs a model.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.onnx_scan import OnnxScanner
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Report, Severity
from supplychain.engine import ScanOptions, scan_paths

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _tiny_graph(name: str = "g", nodes: list[object] | None = None) -> object:
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4, 4])
    nodes = nodes or [
        helper.make_node("MatMul", ["X", "W"], ["H"], name="mm"),
        helper.make_node("Relu", ["H"], ["Y"], name="relu"),
    ]
    return helper.make_graph(nodes, name, [x], [y], [w])


def _model(graph: object | None = None, **kw: object) -> object:
    return helper.make_model(graph or _tiny_graph(), **kw)


def _set_external(tensor: object, location: str) -> None:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location


def _write(path: Path, model: object) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _scan(target: Path) -> Report:
    return scan_paths([target], ScanOptions(scanners=(OnnxScanner,)))


def _rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def _direct(data: bytes, fs_path: Path | None = None) -> list[object]:
    artifact = Artifact(
        path="m.onnx", kind=ArtifactKind.ONNX, size=len(data), stream=io.BytesIO(data),
        fs_path=fs_path, root=fs_path.parent if fs_path else None,
    )  # fmt: skip
    return list(OnnxScanner().scan(artifact, ScanContext()))


# ---- benign controls --------------------------------------------------------------------------


def test_benign_model_with_sibling_external_data_is_clean(tmp_path: Path) -> None:
    model = _model()
    onnx.save_model(
        model,
        str(tmp_path / "model.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (tmp_path / "weights.bin").exists()
    report = _scan(tmp_path)
    kinds = {r.path: r.kind for r in report.files}
    assert kinds["model.onnx"] is ArtifactKind.ONNX
    assert report.findings == ()


def test_benign_subgraphs_and_local_functions_are_clean(tmp_path: Path) -> None:
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["T"])], "then", [],
        [helper.make_tensor_value_info("T", TensorProto.FLOAT, [4, 4])],
    )  # fmt: skip
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["X"], ["E"])], "else", [],
        [helper.make_tensor_value_info("E", TensorProto.FLOAT, [4, 4])],
    )  # fmt: skip
    fn = helper.make_function(
        "custom.local", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 18)],
    )  # fmt: skip
    nodes = [
        helper.make_node("Double", ["X"], ["D"], domain="custom.local", name="dbl"),
        helper.make_node("ReduceSum", ["D"], ["C0"], keepdims=0),
        helper.make_node("Cast", ["C0"], ["C"], to=TensorProto.BOOL),
        helper.make_node("If", ["C"], ["Y"], then_branch=then_g, else_branch=else_g),
    ]
    model = helper.make_model(
        _tiny_graph(nodes=nodes),
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("custom.local", 1)],
    )
    _write(tmp_path / "m.onnx", model)
    assert _scan(tmp_path).findings == ()


# ---- external data ----------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "..\\..\\win.ini"])
def test_external_data_traversal_is_flagged(tmp_path: Path, location: str) -> None:
    # CVE-2022-25882 / CVE-2024-27318 / CVE-2026-27489: absolute and '..' locations.
    model = _model()
    _set_external(model.graph.initializer[0], location)
    _write(tmp_path / "m.onnx", model)
    report = _scan(tmp_path)
    hits = [f for f in report.findings if f.rule == "ONX001"]
    assert hits and hits[0].severity is Severity.HIGH
    assert location.replace("\\", "/").rsplit("/", 1)[-1] in hits[0].evidence


def test_external_data_symlink_out_of_model_dir(tmp_path: Path) -> None:
    # CVE-2026-34447: a plain relative name that is a symlink to a host file.
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(b"\0" * 64)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").symlink_to(secret)
    model = _model()
    _set_external(model.graph.initializer[0], "weights.bin")
    path = _write(model_dir / "m.onnx", model)
    findings = _direct(path.read_bytes(), fs_path=path)
    hits = [f for f in findings if f.rule == "ONX001"]
    assert hits and "symlink" in hits[0].message and str(secret) in hits[0].evidence


def test_external_data_inside_dir_is_not_flagged_by_resolution(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    model = _model()
    _set_external(model.graph.initializer[0], "weights.bin")
    path = _write(tmp_path / "m.onnx", model)
    assert _direct(path.read_bytes(), fs_path=path) == []


def test_external_data_hardlink_is_low(tmp_path: Path) -> None:
    # CVE-2026-34446: a hard link aliases an inode that may live elsewhere on the host.
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"\0" * 64)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.link(elsewhere, model_dir / "weights.bin")
    model = _model()
    _set_external(model.graph.initializer[0], "weights.bin")
    path = _write(model_dir / "m.onnx", model)
    findings = _direct(path.read_bytes(), fs_path=path)
    assert [(f.rule, f.severity) for f in findings] == [("ONX005", Severity.LOW)]


def test_external_data_in_nested_subgraph_attribute_tensor(tmp_path: Path) -> None:
    const = helper.make_node(
        "Constant", [], ["T"], value=numpy_helper.from_array(np.ones(2, np.float32), "c")
    )
    _set_external(const.attribute[0].t, "../../../etc/shadow")
    inner = helper.make_graph(
        [const], "inner", [], [helper.make_tensor_value_info("T", TensorProto.FLOAT, [2])]
    )
    loop_body = helper.make_graph(
        [helper.make_node("If", ["c"], ["T"], then_branch=inner, else_branch=inner)],
        "body", [], [helper.make_tensor_value_info("T", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    nodes = [helper.make_node("Loop", ["M", "c"], ["Y"], body=loop_body, name="loop")]
    model = _model(_tiny_graph(nodes=nodes))
    _write(tmp_path / "m.onnx", model)
    report = _scan(tmp_path)
    assert "ONX001" in _rules(report)
    assert any("shadow" in f.evidence for f in report.findings)


def test_missing_external_file_is_reported_not_clean(tmp_path: Path) -> None:
    model = _model()
    _set_external(model.graph.initializer[0], "weights.bin")
    path = _write(tmp_path / "m.onnx", model)
    findings = _direct(path.read_bytes(), fs_path=path)
    assert [f.rule for f in findings] == ["ONX005"]


def test_member_artifact_gets_lexical_checks_only() -> None:
    model = _model()
    _set_external(model.graph.initializer[0], "/etc/passwd")
    findings = _direct(model.SerializeToString())
    assert [f.rule for f in findings] == ["ONX001"]


# ---- operators and functions ------------------------------------------------------------------


def test_custom_domain_is_flagged_and_extension_domain_is_low(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("EvilOp", ["X"], ["H"], domain="com.attacker", name="evil"),
        helper.make_node("StringRegexReplace", ["H"], ["Y"], domain="ai.onnx.contrib"),
    ]
    _write(tmp_path / "m.onnx", _model(_tiny_graph(nodes=nodes)))
    report = _scan(tmp_path)
    by_domain = {f.evidence.split()[0]: f.severity for f in report.findings if f.rule == "ONX002"}
    assert by_domain == {"domain='com.attacker'": Severity.MEDIUM, "domain='ai.onnx.contrib'": 1}


def test_python_op_is_flagged(tmp_path: Path) -> None:
    nodes = [helper.make_node("PyOp", ["X"], ["Y"], domain="ai.onnx.contrib", name="py")]
    _write(tmp_path / "m.onnx", _model(_tiny_graph(nodes=nodes)))
    assert "ONX003" in _rules(_scan(tmp_path))


def test_function_in_standard_domain_is_flagged(tmp_path: Path) -> None:
    fn = helper.make_function(
        "", "Relu", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])],
        [helper.make_opsetid("", 18)],
    )  # fmt: skip
    _write(tmp_path / "m.onnx", helper.make_model(_tiny_graph(), functions=[fn]))
    assert _rules(_scan(tmp_path)) == {"ONX004"}


def test_custom_op_inside_function_body_is_flagged() -> None:
    fn = helper.make_function(
        "mine", "F", ["a"], ["b"], [helper.make_node("Bad", ["a"], ["b"], domain="x.evil")],
        [helper.make_opsetid("", 18)],
    )  # fmt: skip
    model = helper.make_model(_tiny_graph(), functions=[fn])
    assert [f.rule for f in _direct(model.SerializeToString())] == ["ONX002"]


# ---- hostile structure ------------------------------------------------------------------------


def test_truncated_model_is_malformed_with_earlier_findings_kept(tmp_path: Path) -> None:
    model = _model()
    _set_external(model.graph.initializer[0], "/etc/passwd")
    data = model.SerializeToString()
    (tmp_path / "m.onnx").write_bytes(data[:-7])
    report = _scan(tmp_path)
    assert "GEN001" in _rules(report)
    assert all(r.status.value != "failed" for r in report.results)


def test_huge_declared_length_is_malformed_quickly() -> None:
    data = b"\x08\x07" + b"\x3a" + b"\xff\xff\xff\xff\x0f" + b"\x00" * 16
    with pytest.raises(ArtifactError, match="past its message end"):
        _direct(data)


def _ld(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the protobuf library refuses depth > 100)."""
    key, length, out = (number << 3) | 2, len(payload), bytearray()
    for value in (key, length):
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def test_deeply_nested_subgraphs_hit_a_limit() -> None:
    graph = _ld(1, _ld(4, b"Relu"))
    for _ in range(40):
        attribute = _ld(1, b"then_branch") + _ld(6, graph)
        graph = _ld(1, _ld(4, b"If") + _ld(5, attribute))
    with pytest.raises(LimitExceeded, match="nested deeper"):
        _direct(b"\x08\x07" + _ld(7, graph))


def test_model_without_graph_is_not_clean() -> None:
    with pytest.raises(ArtifactError, match="no graph"):
        _direct(b"\x08\x07\x12\x04test")


def test_large_initializer_is_skipped_not_read() -> None:
    big = numpy_helper.from_array(np.zeros(8 * 2**20, dtype=np.float32), "W")
    graph = _tiny_graph()
    graph.initializer[0].CopyFrom(big)
    data = helper.make_model(graph).SerializeToString()
    assert len(data) > 32 * 2**20
    stream = io.BytesIO(data)
    del data
    artifact = Artifact(path="m.onnx", kind=ArtifactKind.ONNX, size=len(stream.getbuffer()),
                        stream=stream)  # fmt: skip
    tracemalloc.start()
    assert list(OnnxScanner().scan(artifact, ScanContext())) == []
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 2**20


def _fuzz(
    base: bytes, scan: Callable[[bytes], list[object]]
) -> Callable[[list[tuple[int, int]], int], None]:
    def run(edits: list[tuple[int, int]], cut: int) -> None:
        data = bytearray(base)
        for pos, value in edits:
            data[pos % len(data)] = value
        try:
            scan(bytes(data[: max(1, len(data) - cut)]))
        except (ArtifactError, LimitExceeded):
            pass

    return run


_FUZZ_MODEL = helper.make_model(
    _tiny_graph(
        nodes=[
            helper.make_node(
                "If", ["C"], ["Y"], then_branch=_tiny_graph(), else_branch=_tiny_graph()
            ),
            helper.make_node("Op", ["X"], ["Z"], domain="x.y"),
        ]
    )
).SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 64),
)
def test_fuzzed_models_only_raise_artifact_errors(edits: list[tuple[int, int]], cut: int) -> None:
    _fuzz(_FUZZ_MODEL, _direct)(edits, cut)
