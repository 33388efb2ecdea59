"""SavedModelScanner: file, process and network ops in graphs and function libraries, outside
checkpoint/asset paths, and Keras metadata JSON, on protobufs written by a tiny wire encoder (no
TensorFlow). Malformed input is a finding, never a traceback.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.tf_scan import SavedModelScanner
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Report
from supplychain.engine import ScanOptions, scan_paths

# ---- a tiny protobuf writer --------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def f(number: int, value: bytes | str | int) -> bytes:
    """One field: ints as varints, str/bytes length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def attr(key: str, value: bytes) -> bytes:
    return f(5, f(1, key) + f(2, value))


def string_tensor(*values: str) -> bytes:
    return f(8, f(1, 7) + b"".join(f(8, v) for v in values))  # AttrValue.tensor


def node(name: str, op: str, *inputs: str, attrs: bytes = b"") -> bytes:
    return f(1, name) + f(2, op) + b"".join(f(3, i) for i in inputs) + attrs


def const(name: str, *values: str) -> bytes:
    return node(name, "Const", attrs=attr("value", string_tensor(*values)) + attr("dtype", f(6, 7)))


def function(name: str, *nodes: bytes) -> bytes:
    return f(1, f(1, f(1, name)) + b"".join(f(3, n) for n in nodes))  # library.function


def graph(*nodes: bytes, library: bytes = b"") -> bytes:
    return b"".join(f(1, n) for n in nodes) + (f(2, library) if library else b"")


def saved_model(graph_def: bytes, extra: bytes = b"") -> bytes:
    meta_info = f(1, f(4, "serve") + f(2, f(1, f(1, "SaveV2"))))
    return f(1, 1) + f(2, meta_info + f(2, graph_def) + extra)


BENIGN_GRAPH = graph(
    node("saver_filename", "Placeholder", attrs=attr("dtype", f(6, 7))),
    const("Const_1", "^s3://.*"),
    node("StaticRegexFullMatch", "StaticRegexFullMatch", "saver_filename", "Const_1"),
    const("tensor_names", "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"),
    const("shape_and_slices", ""),
    node("SaveV2", "SaveV2", "ShardedFilename:0", "tensor_names", "shape_and_slices", "var"),
    node("RestoreV2", "RestoreV2", "saver_filename", "tensor_names", "shape_and_slices"),
    node("big", "Const", attrs=attr("value", f(8, f(1, 1) + f(4, b"\0" * 4096)))),
    node("init", "InitializeTableFromTextFileV2", "table", "asset_path"),
    library=function(
        "__inference_call_42",
        node("dense/MatMul", "MatMul", "x", "w"),
        node("dense/Relu", "Relu", "dense/MatMul:product:0"),
    ),
)


def _scan_bytes(data: bytes, name: str = "saved_model.pb") -> list[Finding]:
    artifact = Artifact(
        path=name, kind=ArtifactKind.TF_SAVEDMODEL, size=len(data), stream=io.BytesIO(data)
    )
    return list(SavedModelScanner().scan(artifact, ScanContext()))


def _scan_dir(tmp_path: Path, files: dict[str, bytes]) -> Report:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return scan_paths([tmp_path], ScanOptions(scanners=(SavedModelScanner,)))


def _rules(findings: object) -> set[str]:
    return {x.rule for x in findings}  # type: ignore[attr-defined]


# ---- benign controls ---------------------------------------------------------------------------


def test_benign_savedmodel_is_clean_and_sniffed(tmp_path: Path) -> None:
    report = _scan_dir(tmp_path, {"saved_model.pb": saved_model(BENIGN_GRAPH)})
    assert [r.kind for r in report.files] == [ArtifactKind.TF_SAVEDMODEL]
    assert report.findings == ()
    assert [r.status.value for r in report.results] == ["scanned"]


def test_benign_keras_metadata_is_clean() -> None:
    meta = {"class_name": "Dense", "config": {"name": "dense", "activation": "relu"}}
    data = f(1, f(2, 1) + f(3, "root.layer-0") + f(4, "_tf_keras_layer") + f(5, json.dumps(meta)))
    assert _scan_bytes(data, "keras_metadata.pb") == []


# ---- flagged ops -------------------------------------------------------------------------------


def test_pyfunc_in_main_graph_is_critical() -> None:
    findings = _scan_bytes(saved_model(graph(node("py", "PyFunc", attrs=attr("token", f(2, "x"))))))
    assert [(x.rule, x.severity.label) for x in findings] == [("TFM001", "critical")]


def test_readfile_in_function_library_names_the_function() -> None:
    lib = function(
        "__inference_leak_7", const("path", "/etc/passwd"), node("rf", "ReadFile", "path:output:0")
    )
    findings = _scan_bytes(saved_model(graph(library=lib)))
    assert _rules(findings) == {"TFM002"}
    assert "__inference_leak_7" in findings[0].evidence
    assert "/etc/passwd" in findings[0].evidence


def test_write_file_and_matching_files_are_flagged() -> None:
    g = graph(node("w", "WriteFile", "a", "b"), node("m", "MatchingFiles", "p"))
    findings = _scan_bytes(saved_model(g))
    assert {x.evidence.split()[0] for x in findings} == {"op=WriteFile", "op=MatchingFiles"}


def test_immutable_const_reads_the_path_in_its_attribute() -> None:
    g = graph(node("ic", "ImmutableConst", attrs=attr("memory_region_name", f(2, "/etc/shadow"))))
    findings = _scan_bytes(saved_model(g))
    assert _rules(findings) == {"TFM002"} and "/etc/shadow" in findings[0].evidence


def test_restore_from_hardcoded_outside_path_is_flagged() -> None:
    g = graph(const("prefix", "/tmp/../etc/ckpt"), node("r", "RestoreV2", "prefix", "n", "s"))
    assert _rules(_scan_bytes(saved_model(g))) == {"TFM004"}


def test_debug_ops_write_or_send_tensors() -> None:
    dump = attr("dump_root", f(2, "/tmp/dumps"))
    grpc = attr("debug_urls", f(1, f(2, "grpc://10.0.0.1:6064")))
    g = graph(node("d2", "DebugIdentityV2", attrs=dump), node("d1", "DebugIdentity", attrs=grpc))
    assert _rules(_scan_bytes(saved_model(g))) == {"TFM005", "TFM003"}


def test_network_op_is_flagged() -> None:
    assert _rules(_scan_bytes(saved_model(graph(node("s", "DataServiceDatasetV4"))))) == {"TFM003"}


def test_asset_path_outside_assets_is_flagged() -> None:
    asset = f(6, f(1, f(1, "asset_path")) + f(2, "../../etc/passwd"))
    assert _rules(_scan_bytes(saved_model(BENIGN_GRAPH, asset))) == {"TFM006"}


def test_frozen_graphdef_is_walked(tmp_path: Path) -> None:
    report = _scan_dir(tmp_path, {"frozen.pb": graph(node("w", "WriteFile", "a", "b"))})
    assert [r.kind for r in report.files] == [ArtifactKind.TF_SAVEDMODEL]
    assert _rules(report.findings) == {"TFM002"}


# ---- Keras metadata ----------------------------------------------------------------------------


def _lambda_layer() -> dict[str, object]:
    code = base64.b64encode(marshal.dumps((lambda x: print("pwned") or x).__code__)).decode()
    return {
        "class_name": "Lambda",
        "config": {"name": "lam", "function": [code, None, None], "function_type": "lambda"},
    }


def test_keras_metadata_lambda_is_reported_once() -> None:
    layer = json.dumps(_lambda_layer())
    model = json.dumps({"class_name": "Sequential", "config": {"layers": [_lambda_layer()]}})
    nodes = f(1, f(3, "root") + f(5, model)) + f(1, f(3, "root.layer-0") + f(5, layer))
    findings = _scan_bytes(nodes, "keras_metadata.pb")
    assert [x.rule for x in findings] == ["KER001"]
    assert "print" in findings[0].evidence


def test_saved_user_object_metadata_is_analysed() -> None:
    metadata = json.dumps(
        {
            "class_name": "Dense",
            "config": {"module": "os", "function": "system", "function_type": "function"},
        }
    )
    lam = {"class_name": "Lambda", "config": json.loads(metadata)["config"]}
    object_graph = f(7, f(1, f(4, f(1, "_tf_keras_layer") + f(3, json.dumps(lam)))))
    findings = _scan_bytes(saved_model(BENIGN_GRAPH, object_graph))
    assert _rules(findings) == {"KER002"}


# ---- hostile structure -------------------------------------------------------------------------


def test_truncated_savedmodel_keeps_findings_then_reports_malformed(tmp_path: Path) -> None:
    data = saved_model(graph(node("py", "PyFunc"), node("n", "Relu")))
    report = _scan_dir(tmp_path, {"saved_model.pb": data + f(2, b"\x0a\xff\xff\xff\x7f")})
    assert {"TFM001", "GEN001"} <= _rules(report.findings)


def test_huge_declared_length_is_malformed() -> None:
    with pytest.raises(ArtifactError):
        _scan_bytes(f(1, 1) + b"\x12\xff\xff\xff\xff\x0f")


def test_invalid_keras_metadata_json_is_malformed() -> None:
    with pytest.raises(ArtifactError, match="invalid JSON"):
        _scan_bytes(f(1, f(5, "{not json")), "keras_metadata.pb")


def test_large_tensor_content_is_skipped_by_seeking() -> None:
    blob = f(8, f(1, 1) + f(4, b"\0" * (32 * 2**20)))
    data = saved_model(graph(node("big", "Const", attrs=attr("value", blob))))
    stream = io.BytesIO(data)
    artifact = Artifact(
        path="saved_model.pb", kind=ArtifactKind.TF_SAVEDMODEL, size=len(data), stream=stream
    )
    del data, blob
    tracemalloc.start()
    assert list(SavedModelScanner().scan(artifact, ScanContext())) == []
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 2**20


_FUZZ_BASE = saved_model(
    graph(
        const("p", "/etc/passwd"),
        node("r", "ReadFile", "p"),
        library=function("fn", node("x", "PyFunc")),
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 32),
)
def test_fuzzed_savedmodels_only_raise_artifact_errors(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_FUZZ_BASE)
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        _scan_bytes(bytes(data[: max(1, len(data) - cut)]))
    except (ArtifactError, LimitExceeded):
        pass
