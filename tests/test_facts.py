"""Facts beside findings: what scanners observe (format, dtypes, counts, metadata), in the report
and in schema-valid JSON, escaped and bounded like evidence."""

from __future__ import annotations

import importlib.resources
import io
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from scanners.base import Artifact, ScanContext
from scanners.gguf_scan import GgufScanner
from scanners.keras_scan import KerasScanner
from scanners.numpy_scan import NumpyScanner
from scanners.onnx_scan import OnnxScanner
from scanners.safetensors_scan import SafetensorsScanner
from supplychain.core.model import (
    FACT_ITEMS_LIMIT,
    FACT_TEXT_LIMIT,
    ArtifactKind,
    Fact,
    Location,
    Report,
)
from supplychain.engine import ScanOptions, scan_paths
from supplychain.formats.json import report_to_dict
from tests.scanners.test_keras_scan import _keras_zip, _model


def _safetensors(header: Mapping[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _facts(report: Report, path: str | None = None) -> dict[str, object]:
    return {f.key: f.value for f in report.facts if path is None or f.location.path == path}


def _schema() -> dict[str, object]:
    text = (importlib.resources.files("supplychain") / "data" / "report.schema.json").read_text()
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_safetensors_facts_dtypes_counts_and_bounded_metadata(tmp_path: Path) -> None:
    header: dict[str, object] = {
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
        "__metadata__": {"format": "pt", "note": "\x1b[31mred" + "x" * 2000},
    }
    (tmp_path / "m.safetensors").write_bytes(_safetensors(header, bytes(32)))
    report = scan_paths([tmp_path], ScanOptions())
    facts = _facts(report)
    assert facts["format"] == "safetensors"
    assert facts["tensor.count"] == 2
    assert facts["parameter.count"] == 10
    assert facts["tensor.dtypes"] == ("BF16", "F32")
    assert facts["safetensors.metadata.format"] == "pt"
    note = facts["safetensors.metadata.note"]
    assert isinstance(note, str) and "\x1b" not in note and len(note) <= FACT_TEXT_LIMIT + 1
    assert {f.scanner for f in report.facts} == {"safetensors"}


def test_gguf_facts_architecture_licence_base_model_counts(tmp_path: Path) -> None:
    from gguf import GGUFWriter

    path = tmp_path / "m.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_license("apache-2.0")
    writer.add_string("general.base_model.0.name", "Base-7B")
    writer.add_tensor("a", np.ones((8, 32), dtype=np.float32))
    writer.add_tensor("b", np.ones((5,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    facts = _facts(scan_paths([path], ScanOptions()))
    assert facts["format"] == "gguf"
    assert facts["model.architecture"] == facts["gguf.general.architecture"] == "llama"
    assert facts["license"] == "apache-2.0"
    assert facts["model.name"] == "tiny"
    assert facts["base_model"] == "Base-7B"
    assert facts["tensor.count"] == 2
    assert facts["parameter.count"] == 8 * 32 + 5


def test_onnx_facts_opset_producer_inputs(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph, producer_name="unit-test", opset_imports=[helper.make_opsetid("", 17)]
    )
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    assert onnx.__version__
    facts = _facts(scan_paths([tmp_path], ScanOptions()))
    assert facts["format"] == "onnx"
    assert facts["onnx.opset"] == 17
    assert facts["onnx.producer_name"] == "unit-test"
    assert facts["onnx.graph.inputs"] == 2
    assert facts["onnx.graph.outputs"] == 1


def test_keras_facts_class_names(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(_keras_zip(_model()))
    facts = _facts(scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,))), "m.keras")
    assert facts["format"] == "keras"
    assert facts["model.class"] == "Sequential"
    classes = facts["keras.classes"]
    assert isinstance(classes, tuple) and {"Sequential", "Dense", "InputLayer"} <= set(classes)


def test_numpy_facts_dtype_and_shape(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), dtype=np.int16))
    (tmp_path / "a.npy").write_bytes(buf.getvalue())
    facts = _facts(scan_paths([tmp_path], ScanOptions()))
    assert facts["numpy.dtype"] == "int16"
    assert facts["numpy.shape"] == ("3", "4")


def test_facts_of_a_member_carry_the_member_and_their_own_scanner(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, w=np.ones(2, dtype=np.float32))
    (tmp_path / "a.npz").write_bytes(buf.getvalue())
    report = scan_paths([tmp_path], ScanOptions())
    dtype = [f for f in report.facts if f.key == "numpy.dtype"]
    assert len(dtype) == 1
    assert dtype[0].location.path == "a.npz" and dtype[0].location.member == ("w.npy",)
    assert dtype[0].scanner == "numpy" and dtype[0].value == "float32"


def test_facts_are_in_json_output_and_valid_against_the_schema(tmp_path: Path) -> None:
    header = {"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}
    (tmp_path / "m.safetensors").write_bytes(_safetensors(header, bytes(4)))
    doc = report_to_dict(scan_paths([tmp_path], ScanOptions()))
    jsonschema.validate(doc, _schema())
    by_key = {f["key"]: f for f in doc["facts"]}
    assert by_key["tensor.dtypes"]["value"] == ["F16"]
    assert by_key["tensor.count"] == {
        "key": "tensor.count",
        "value": 1,
        "file": "m.safetensors",
        "member": [],
        "scanner": "safetensors",
    }


def test_schema_rejects_a_malformed_fact() -> None:
    doc = report_to_dict(Report(tool_version="0", target=(), started_at="", seconds=0.0))
    jsonschema.validate(doc, _schema())
    doc["facts"] = [{"key": "x", "value": {"nested": 1}, "file": "", "member": [], "scanner": ""}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema())


def test_fact_text_is_escaped_and_tuples_are_bounded() -> None:
    fact = Fact(key="k\x1b", value=tuple(f"\u202ev{i}" for i in range(500)), location=Location("f"))
    assert isinstance(fact.value, tuple) and len(fact.value) == FACT_ITEMS_LIMIT
    assert all("\u202e" not in v for v in fact.value)
    assert "\x1b" not in fact.key


def test_scanner_emits_through_the_context_without_the_engine() -> None:
    header = {"a": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]}}
    data = _safetensors(header, bytes(3))
    ctx = ScanContext()
    artifact = Artifact(
        path="x.safetensors", kind=ArtifactKind.SAFETENSORS, size=len(data), stream=io.BytesIO(data)
    )
    assert list(SafetensorsScanner().scan(artifact, ctx)) == []
    assert {f.key for f in ctx.facts} >= {"tensor.count", "parameter.count", "tensor.dtypes"}


@pytest.mark.parametrize("scanner", [GgufScanner, OnnxScanner, NumpyScanner])
def test_malformed_input_still_fails_closed_with_facts_channel(scanner: Any) -> None:
    data = b"\x00garbage" * 4
    kind = next(iter(scanner.kinds))
    artifact = Artifact(path="x", kind=kind, size=len(data), stream=io.BytesIO(data))
    from supplychain.core.errors import ArtifactError
    from supplychain.core.model import Severity

    try:
        found = list(scanner().scan(artifact, ScanContext()))
    except ArtifactError:
        return
    assert any(f.severity >= Severity.HIGH for f in found)
