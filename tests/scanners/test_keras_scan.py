"""KerasScanner: Lambda bytecode (summarised without unmarshalling), module/function references
(CVE-2025-1550 and later safe_mode bypasses), custom objects, external paths, zip oddities and
HDF5 configs/links. Payloads are inert: the lambdas only call ``print``.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.base import Artifact, ScanContext
from scanners.keras_config import summarize_marshal
from scanners.keras_scan import KerasScanner
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Report, Severity
from supplychain.engine import ScanOptions, scan_paths

PICKLE = b"\x80\x02cbuiltins\nprint\nq\x00X\x06\x00\x00\x00systemq\x01\x85q\x02Rq\x03."
"""``print("system")`` as a pickle: harmless if anything ever loaded it."""


def _code_b64(fn: Any) -> str:
    return base64.b64encode(marshal.dumps(fn.__code__)).decode()


def _layer(cls: str, module: str | None = "keras.layers", **config: object) -> dict[str, Any]:
    out: dict[str, Any] = {"class_name": cls, "config": {"name": cls.lower(), **config}}
    if module is not None:
        out["module"] = module
        out["registered_name"] = None
    return out


def _model(*layers: dict[str, Any], compile_config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                _layer("InputLayer", batch_shape=[None, 4]),
                _layer("Dense", units=4, activation="relu",
                       kernel_initializer={"module": "keras.initializers",
                                           "class_name": "GlorotUniform", "config": {"seed": None},
                                           "registered_name": None},
                       dtype={"module": "keras", "class_name": "DTypePolicy",
                              "config": {"name": "float32"}, "registered_name": None}),
                *layers,
            ],
        },
        "registered_name": None,
        "compile_config": compile_config or {
            "optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                          "config": {"learning_rate": 0.001}, "registered_name": None},
            "loss": "mse",
            "metrics": [{"module": "keras.metrics", "class_name": "MeanAbsoluteError",
                         "config": {"name": "mae"}, "registered_name": None}],
        },
    }  # fmt: skip


def _weights_h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=[[1.0, 2.0], [3.0, 4.0]])
    return buf.getvalue()


def _keras_zip(
    config: object, extra: dict[str, bytes] | None = None, *, duplicate: object | None = None
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        zf.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
        zf.writestr("model.weights.h5", _weights_h5())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        if duplicate is not None:
            zf.writestr("config.json", json.dumps(duplicate))
    return buf.getvalue()


def _scan_file(tmp_path: Path, name: str, data: bytes) -> Report:
    (tmp_path / name).write_bytes(data)
    return scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,)))


class _Recorder:
    """A dispatch callback that keeps what containers hand back to the engine."""

    def __init__(self) -> None:
        self.children: list[tuple[tuple[str, ...], bytes]] = []

    def __call__(self, artifact: Artifact) -> Iterator[Finding]:
        self.children.append((artifact.member, artifact.stream.read(1 << 20)))
        return iter(())


def _direct(
    data: bytes, kind: ArtifactKind = ArtifactKind.KERAS_ZIP, limits: Limits | None = None
) -> tuple[list[Finding], _Recorder]:
    rec = _Recorder()
    artifact = Artifact(path="m.keras", kind=kind, size=len(data), stream=io.BytesIO(data))
    ctx = ScanContext(limits=limits or Limits(), dispatch=rec)
    return list(KerasScanner().scan(artifact, ctx)), rec


def _rules(findings: object) -> set[str]:
    return {x.rule for x in findings}  # type: ignore[attr-defined]


# ---- benign controls ---------------------------------------------------------------------------


def test_benign_keras_v3_is_clean_and_weights_are_dispatched(tmp_path: Path) -> None:
    report = _scan_file(tmp_path, "model.keras", _keras_zip(_model()))
    kinds = {(r.path, r.member): r.kind for r in report.files}
    assert kinds[("model.keras", ())] is ArtifactKind.KERAS_ZIP
    assert kinds[("model.keras", ("model.weights.h5",))] is ArtifactKind.HDF5
    assert report.findings == ()


def test_benign_keras_hub_and_functional_configs_are_clean() -> None:
    functional = {
        "module": "keras_hub.src.models.bert.bert_text_classifier",
        "class_name": "BertTextClassifier",
        "registered_name": "keras_hub>BertTextClassifier",
        "config": {
            "backbone": {"module": "keras_hub.src.models.bert.bert_backbone",
                         "class_name": "BertBackbone", "registered_name": "keras_hub>BertBackbone",
                         "config": {"vocabulary_size": 10}},
            "layers": [{"class_name": "Add", "module": "keras.layers", "config": {"name": "add"},
                        "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                     "config": {"shape": [None, 4]}}]}]}],
            "lookup": _layer("StringLookup", vocabulary=["a", "b"]),
        },
    }  # fmt: skip
    findings, _ = _direct(_keras_zip(functional))
    assert findings == []


def test_keras2_h5_without_custom_code_is_clean(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {
                    "class_name": "Dense",
                    "config": {
                        "name": "d",
                        "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
                    },
                }
            ]
        },
    }
    training = {"optimizer_config": {"class_name": "Custom>Adam", "config": {}}, "loss": "mse"}
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["training_config"] = json.dumps(training).encode()
        h5.create_dataset("model_weights/d/kernel", data=[1.0])
    assert scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,))).findings == ()


def test_plain_hdf5_data_file_is_clean(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "data.h5", "w") as h5:
        h5.create_dataset("x", data=list(range(100)))
        h5["alias"] = h5py.SoftLink("/x")
    report = scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,)))
    assert report.findings == () and report.results[0].status.value == "scanned"


# ---- Lambda ------------------------------------------------------------------------------------


def test_keras3_lambda_bytecode_is_critical_with_names() -> None:
    code = _code_b64(lambda x: getattr(__import__("builtins"), "print")("pwned") or x)
    fn = {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}
    findings, _ = _direct(_keras_zip(_model(_layer("Lambda", function=fn))))
    assert [(x.rule, x.severity) for x in findings] == [("KER001", Severity.CRITICAL)]
    assert "__import__" in findings[0].evidence and "'builtins'" in findings[0].evidence
    assert "layer 'lambda'" in findings[0].message


def test_keras2_lambda_in_h5_model_config(tmp_path: Path) -> None:
    # CVE-2025-9905: legacy .h5 loading ignores safe_mode.
    code = _code_b64(lambda x: print("hello") or x)
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {
        "name": "lam", "function": [code, None, None], "function_type": "lambda",
        "module": "__main__", "output_shape_type": "raw"}}]}}  # fmt: skip
    with h5py.File(tmp_path / "model.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps(config).encode()
    report = scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,)))
    assert [x.rule for x in report.findings] == ["KER001"]
    assert "print" in report.findings[0].evidence


def test_lambda_naming_os_system_function_is_critical() -> None:
    layer = _layer("Lambda", function="system", module="os", function_type="function")
    findings, _ = _direct(_keras_zip(_model(layer)))
    assert ("KER002", Severity.CRITICAL) in [(x.rule, x.severity) for x in findings]


def test_marshal_summary_reads_a_python310_layout() -> None:
    def s(text: str) -> bytes:
        return b"z" + bytes([len(text)]) + text.encode()

    def tup(*items: bytes) -> bytes:
        return b")" + bytes([len(items)]) + b"".join(items)

    code = b"s" + struct.pack("<i", 4) + b"\x74\x00\x64\x00"
    body = (
        struct.pack("<6i", 1, 0, 0, 1, 2, 67) + code + tup(s("echo hi")) + tup(s("os"), s("system"))
        + tup(s("x")) + tup() + tup() + s("<stdin>") + s("<lambda>") + struct.pack("<i", 1)
        + b"s" + struct.pack("<i", 0)
    )  # fmt: skip
    summary = summarize_marshal(b"\xe3" + body)
    assert summary.parsed
    assert summary.names == ["os", "system"] and summary.strings == ["echo hi"]


def test_marshal_summary_falls_back_and_never_raises() -> None:
    summary = summarize_marshal(b"\xe3\x00\x00garbage os.system('x')")
    assert not summary.parsed and any("os.system" in s for s in summary.strings)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_marshal_summary_fuzz(data: bytes) -> None:
    base = marshal.dumps((lambda: print("a", ("b", 1.5, 2**70))).__code__)
    summarize_marshal(data)
    summarize_marshal(base[: len(data)] + data)


# ---- references --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "label"),
    [
        ({"module": "builtins", "class_name": "function", "config": "exec"}, "CVE-2025-1550"),
        ({"module": "subprocess", "class_name": "Popen", "config": {"args": "id"}},
         "CVE-2025-1550"),
        ({"module": "keras.utils", "class_name": "function", "config": "get_file"},
         "CVE-2025-8747"),
        ({"module": "keras.src.saving.serialization_lib", "class_name": "function",
          "config": "enable_unsafe_deserialization"}, "CVE-2025-9906"),
        ({"module": "keras.config", "class_name": "enable_unsafe_deserialization"},
         "CVE-2025-9906"),
    ],
)  # fmt: skip
def test_dangerous_references_are_critical(ref: dict[str, Any], label: str) -> None:
    layer = _layer("Dense", units=1, activation={**ref, "registered_name": "function"})
    findings, _ = _direct(_keras_zip(_model(layer)))
    assert [(x.rule, x.severity) for x in findings] == [("KER002", Severity.CRITICAL)], label


def test_reference_outside_keras_is_flagged_in_compile_config() -> None:
    compile_config = {"loss": {"module": "evil_pkg.losses", "class_name": "function",
                               "config": "my_loss", "registered_name": "function"}}  # fmt: skip
    findings, _ = _direct(_keras_zip(_model(compile_config=compile_config)))
    assert [(x.rule, x.severity) for x in findings] == [("KER003", Severity.HIGH)]


def test_custom_registered_object_is_flagged() -> None:
    layer = {"module": "my_layers", "class_name": "Gate", "registered_name": "Custom>Gate",
             "config": {"name": "gate"}}  # fmt: skip
    findings, _ = _direct(_keras_zip(_model(layer)))
    assert [(x.rule, x.severity) for x in findings] == [("KER004", Severity.MEDIUM)]


def test_unknown_keras2_class_without_module_is_flagged() -> None:
    findings, _ = _direct(_keras_zip(_model(_layer("SneakyLayer", module=None))))
    assert _rules(findings) == {"KER004"}


# ---- external paths ----------------------------------------------------------------------------


def test_tfsmlayer_loading_external_savedmodel_is_flagged() -> None:
    findings, _ = _direct(_keras_zip(_model(_layer("TFSMLayer", filepath="/srv/other_model"))))
    assert _rules(findings) == {"KER005"}


@pytest.mark.parametrize(
    ("vocab", "severity"),
    [("/etc/passwd", Severity.HIGH), ("../../secret.txt", Severity.HIGH),
     ("https://attacker.example/v.txt", Severity.HIGH), ("vocab.txt", Severity.MEDIUM)],
)  # fmt: skip
def test_lookup_vocabulary_file_paths(vocab: str, severity: Severity) -> None:
    findings, _ = _direct(_keras_zip(_model(_layer("StringLookup", vocabulary=vocab))))
    assert [(x.rule, x.severity) for x in findings] == [("KER005", severity)]


# ---- archive oddities --------------------------------------------------------------------------


def test_extra_pickle_member_is_flagged_and_dispatched() -> None:
    findings, rec = _direct(_keras_zip(_model(), {"payload.pkl": PICKLE}))
    assert [(x.rule, x.severity) for x in findings] == [("KER006", Severity.LOW)]
    assert (("payload.pkl",), PICKLE) in rec.children
    assert {m for m, _ in rec.children} == {("payload.pkl",), ("model.weights.h5",)}


def test_traversal_member_name_is_high() -> None:
    findings, _ = _direct(_keras_zip(_model(), {"../evil.py": b"print('x')"}))
    assert ("KER006", Severity.HIGH) in [(x.rule, x.severity) for x in findings]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicate_config_json_is_analysed_twice() -> None:
    code = _code_b64(lambda x: print("second") or x)
    hostile = _model(_layer("Lambda", function=[code, None, None], function_type="lambda"))
    findings, _ = _direct(_keras_zip(_model(), duplicate=hostile))
    assert _rules(findings) == {"KER001", "KER006"}


def test_torch_module_wrapper_payload_is_critical_and_dispatched() -> None:
    blob = base64.b64encode(PICKLE).decode()
    layer = _layer("TorchModuleWrapper")
    layer["config"]["module"] = blob
    findings, rec = _direct(_keras_zip(_model(layer)))
    assert _rules(findings) == {"KER008"}
    assert any(data == PICKLE for _, data in rec.children)


def test_hdf5_external_link_is_flagged(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "model.weights.h5", "w") as h5:
        h5["layers/dense"] = h5py.ExternalLink("/etc/passwd", "/x")
        h5["layers/ok"] = h5py.ExternalLink("sibling.h5", "/x")
    report = scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,)))
    assert sorted((x.rule, x.severity) for x in report.findings) == [
        ("KER007", Severity.MEDIUM), ("KER007", Severity.HIGH)
    ]  # fmt: skip


# ---- hostile structure -------------------------------------------------------------------------


def test_invalid_config_json_is_malformed(tmp_path: Path) -> None:
    report = _scan_file(tmp_path, "m.keras", _keras_zip(b"{not json"))
    assert _rules(report.findings) == {"GEN001"}


def test_config_over_header_limit_is_a_limit_finding() -> None:
    with pytest.raises(LimitExceeded):
        _direct(_keras_zip(_model()), limits=Limits(max_header_bytes=64))


def test_deeply_nested_config_is_a_limit_not_a_crash(tmp_path: Path) -> None:
    report = _scan_file(tmp_path, "m.keras", _keras_zip(b"[" * 100_000 + b"]" * 100_000))
    assert _rules(report.findings) <= {"GEN001", "GEN002"} and report.findings
    assert all(r.status.value != "failed" for r in report.results)


def test_truncated_keras_zip_is_malformed() -> None:
    # Sniffing calls a zip without a central directory ZIP (the archive scanner's); a scanner
    # handed one as KERAS_ZIP must still fail closed.
    data = _keras_zip(_model())
    with pytest.raises(ArtifactError, match="end-of-central-directory"):
        _direct(data[: len(data) // 2])


def test_corrupt_hdf5_is_malformed() -> None:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.attrs["model_config"] = json.dumps(_model())
    with pytest.raises(ArtifactError):
        _direct(buf.getvalue()[:600], kind=ArtifactKind.HDF5)


_FUZZ_BASE = _keras_zip(_model(_layer("StringLookup", vocabulary="/etc/passwd")))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 64),
)
def test_fuzzed_keras_zips_only_raise_artifact_errors(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_FUZZ_BASE)
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        _direct(bytes(data[: max(1, len(data) - cut)]))
    except (ArtifactError, LimitExceeded):
        pass


# A 6 KB HDF5 file found by mutation fuzzing (tests/test_robustness.py-style) on which h5py
# spins forever inside the HDF5 C library. h5py therefore runs in a child process with a
# wall-clock cap; the hang becomes a GEN002 finding and the scan goes on.
HANGING_H5 = Path(__file__).resolve().parent.parent / "data" / "hdf5_spins_h5py.h5"


def test_hdf5_that_hangs_h5py_becomes_a_limit_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scanners.keras_scan as ks

    monkeypatch.setattr(ks, "H5_CHILD_SECONDS", 2)
    (tmp_path / "model.h5").write_bytes(HANGING_H5.read_bytes())
    (tmp_path / "other.h5").write_bytes(HANGING_H5.read_bytes()[:100])
    report = scan_paths([tmp_path], ScanOptions(scanners=(ks.KerasScanner,)))
    by_path = {f.location.path: f.rule for f in report.findings}
    assert by_path == {"model.h5": "GEN002", "other.h5": "GEN001"}
    assert not report.failed


def test_hdf5_config_with_lone_surrogates_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    # Found by mutation fuzzing: a model_config attribute that decodes to lone surrogates.
    data = Path(__file__).resolve().parent.parent / "data" / "hdf5_surrogate_config.h5"
    (tmp_path / "model.h5").write_bytes(data.read_bytes())
    report = scan_paths([tmp_path], ScanOptions(scanners=(KerasScanner,)))
    assert not report.failed
    assert {f.rule for f in report.findings} <= {"GEN001", "KER001", "KER002", "KER003", "KER004"}
