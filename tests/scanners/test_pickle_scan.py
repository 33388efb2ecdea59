"""PickleScanner verdicts: benign ML pickles stay quiet, dangerous ones are named with evidence."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import io
import pickle
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

from scanners.allowlist import ALLOWLIST_VERSION, classify
from scanners.base import Artifact, ScanContext
from scanners.pickle_analysis import scan_pickle
from scanners.pickle_scan import PickleScanner
from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity
from supplychain.engine import ScanOptions, scan_paths
from tests.pickle_builders import PickleBuilder, call_pickle, global0


def scan(data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    artifact = Artifact(
        path="m.pkl", kind=ArtifactKind.PICKLE, size=len(data), stream=io.BytesIO(data)
    )
    return list(PickleScanner().scan(artifact, ctx or ScanContext()))


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


# ---- benign controls: made by real libraries in the test


def _sklearn_models() -> dict[str, object]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.RandomState(0)
    x = rng.rand(30, 3)
    y = np.array([0, 1] * 15)
    return {
        "lr": LogisticRegression().fit(x, y),
        "rf": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "gb": GradientBoostingClassifier(n_estimators=3).fit(x, y),
        "hgb": HistGradientBoostingClassifier(max_iter=3).fit(x, y),
        "pipe": make_pipeline(StandardScaler(), SVC()).fit(x, y),
        "knn": KNeighborsClassifier().fit(x, y),
        "tfidf": TfidfVectorizer().fit(["alpha beta gamma", "beta delta"]),
        "ohe": OneHotEncoder().fit([["a"], ["b"]]),
        "km": KMeans(n_clusters=2, n_init=1, random_state=0).fit(x),
        "pca": PCA(2).fit(x),
    }


@pytest.fixture(scope="module")
def sklearn_models() -> dict[str, object]:
    return _sklearn_models()


@pytest.mark.parametrize("compress", [0, 3])
def test_sklearn_joblib_dumps_are_clean(
    sklearn_models: dict[str, object], tmp_path: Path, compress: int
) -> None:
    for name, model in sklearn_models.items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path, compress=compress)
        data = path.read_bytes()
        if compress:
            data = zlib.decompress(data)  # joblib's zlib wrapper; the archive scanner unwraps it
        found = scan(data)
        assert found == [], (name, [(f.rule, f.message) for f in found])


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_sklearn_plain_pickles_are_clean(sklearn_models: dict[str, object], proto: int) -> None:
    for name, model in sklearn_models.items():
        found = scan(pickle.dumps(model, protocol=proto))
        assert found == [], (name, [(f.rule, f.message) for f in found])


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4, 5])
def test_numpy_pandas_and_stdlib_values_are_clean(proto: int) -> None:
    import pandas as pd

    values = {
        "arr": np.arange(12, dtype="f4").reshape(3, 4),
        "objarr": np.array([1, "a", None, 2.5], dtype=object),
        "strarr": np.array(["x", "yz"]),
        "scalar": np.float64(1.5),
        "rng": np.random.default_rng(0),
        "rs": np.random.RandomState(0),
        "df": pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [1.0, 2.5]}),
        "series": pd.Series([1, 2, 3], name="s"),
        "ns": argparse.Namespace(lr=0.1, layers=[1, 2]),
        "od": collections.OrderedDict(a=1),
        "dd": collections.defaultdict(list, {"a": [1]}),
        "misc": [
            datetime.datetime(2024, 1, 2, 3, 4, 5),
            datetime.timedelta(days=1),
            decimal.Decimal("1.5"),
            uuid.UUID(int=5),
            {1, 2},
            frozenset({3}),
            slice(1, 2),
            complex(1, 2),
            bytearray(b"xy"),
            range(3),
        ],
    }
    found = scan(pickle.dumps(values, protocol=proto))
    assert found == [], [(f.rule, f.message, f.evidence) for f in found]


def test_numpy_object_arrays_via_joblib_are_clean(tmp_path: Path) -> None:
    path = tmp_path / "o.joblib"
    joblib.dump({"o": np.array([1, "a", (2, 3)], dtype=object), "f": np.ones(5)}, path)
    assert scan(path.read_bytes()) == []


def test_data_strings_naming_dangerous_calls_are_benign() -> None:
    data = pickle.dumps(
        {"cmd": "os.system", "code": "cos\nsystem\n(S'rm -rf'\ntR.", "b": b"c__builtin__\neval\n"},
        protocol=4,
    )
    assert scan(data) == []


def test_allowlist_is_versioned() -> None:
    assert ALLOWLIST_VERSION
    assert PickleScanner.allowlist_version == ALLOWLIST_VERSION


# ---- verdicts and evidence


def test_dangerous_call_is_critical_with_python_like_evidence_at_the_call() -> None:
    data = call_pickle("os", "system", "echo harmless")
    found = scan(data)
    assert [f.rule for f in found] == ["PKL001"]
    f = found[0]
    assert f.severity is Severity.CRITICAL
    assert f.evidence == "os.system('echo harmless')"
    assert data[f.location.offset] == ord("R")  # type: ignore[index]


def test_dangerous_import_without_a_call_is_still_critical() -> None:
    data = bytes(PickleBuilder(4).stack_global("subprocess", "Popen").stop())
    found = scan(data)
    assert rules(found) == {"PKL001"} and worst(found) is Severity.CRITICAL
    assert "subprocess.Popen" in found[0].evidence


def test_unknown_import_is_medium_and_policy_can_allow_it() -> None:
    data = bytes(PickleBuilder(4).stack_global("mylab.models", "Net").empty_tuple().newobj().stop())
    found = scan(data)
    assert rules(found) == {"PKL002"} and worst(found) is Severity.MEDIUM
    assert scan(data, ScanContext(extra_allowed_imports=frozenset({"mylab.models.Net"}))) == []
    assert scan(data, ScanContext(extra_allowed_imports=frozenset({"mylab.*"}))) == []


def test_policy_cannot_downgrade_a_denylisted_callable() -> None:
    data = call_pickle("os", "system", "true")
    ctx = ScanContext(extra_allowed_imports=frozenset({"os.system", "os.*"}))
    assert worst(scan(data, ctx)) is Severity.CRITICAL


def test_one_finding_per_distinct_import() -> None:
    b = PickleBuilder(4).mark()
    for _ in range(50):
        b.stack_global("mylab", "Thing").empty_tuple().newobj()
    found = scan(bytes(b.raw(b"l").stop()))
    assert len([f for f in found if f.rule == "PKL002"]) == 1
    assert "rebuilt 50×" in found[0].message


def test_allowlisted_helper_with_dangerous_argument_flags_at_the_call() -> None:
    b = PickleBuilder(4).stack_global("copyreg", "_reconstructor").mark()
    b.stack_global("os", "system").stack_global("builtins", "object").none().tuple().reduce()
    found = scan(bytes(b.stop()))
    assert "PKL009" in rules(found)
    shaped = next(f for f in found if f.rule == "PKL009")
    assert "copyreg._reconstructor(os.system" in shaped.evidence
    assert worst(found) is Severity.CRITICAL


def test_codecs_encode_with_non_string_arguments_is_suspicious() -> None:
    b = PickleBuilder(2).global_("_codecs", "encode").mark().stack_global("mylab", "X")
    b.str("latin1").tuple().reduce().stop()
    assert "PKL009" in rules(scan(bytes(b)))


def test_call_on_a_call_result_is_flagged() -> None:
    b = PickleBuilder(4).call("mylab", "factory").mark().str("x").tuple().reduce().stop()
    found = scan(bytes(b))
    assert "PKL008" in rules(found)


def test_build_on_an_imported_class_is_flagged() -> None:
    b = PickleBuilder(4).stack_global("collections", "OrderedDict").empty_dict()
    b.str("__reduce__").str("x").setitem().build().stop()
    assert "PKL008" in rules(scan(bytes(b)))


def test_broken_stream_is_high_alone_and_critical_after_a_dangerous_import() -> None:
    benign = pickle.dumps({"a": [1, 2, 3]}, protocol=4)[:-4]
    found = scan(benign)
    assert rules(found) == {"PKL004"} and worst(found) is Severity.HIGH
    hostile = call_pickle("os", "system", "true")[:-1] + b"\xfe"
    found = scan(hostile)
    pkl4 = next(f for f in found if f.rule == "PKL004")
    assert pkl4.severity is Severity.CRITICAL
    assert "PKL001" in rules(found)


def test_garbage_and_empty_inputs_give_a_finding_not_a_traceback() -> None:
    for data in (b"", b"\x80", b"\x80\x06", b"\x00\x01\x02", b"(((((", b"\x80\x04\x95\xff"):
        assert "PKL004" in rules(scan(data)), data


def test_limit_raises_after_reporting_what_was_seen() -> None:
    data = call_pickle("os", "system", "true")[:-1] + b"N" * 3000 + b"."
    artifact = Artifact(
        path="m.pkl", kind=ArtifactKind.PICKLE, size=len(data), stream=io.BytesIO(data)
    )
    seen: list[Finding] = []
    with pytest.raises(LimitExceeded):
        for f in scan_pickle(artifact, ScanContext(limits=Limits(max_pickle_stack=100))):
            seen.append(f)
    assert "PKL001" in rules(seen)


def test_nested_pickle_is_analysed_inside_the_nesting() -> None:
    inner = call_pickle("os", "system", "true")
    outer = bytes(
        PickleBuilder(4).stack_global("pickle", "loads").bytes_(inner).tuple1().reduce().stop()
    )
    found = scan(outer)
    nested = [f for f in found if f.location.member]
    assert nested, [(f.rule, f.location) for f in found]
    assert nested[0].location.member[0].startswith("pickle.loads@")
    assert nested[0].evidence == "os.system('true')"


def test_nested_pickle_from_a_big_blob_is_analysed_in_place() -> None:
    inner = (
        call_pickle("os", "system", "true")[:-1]
        + b"0"
        + bytes(PickleBuilder(None).bytes8(b"z" * (2 << 20)))
        + b"0N."
    )
    outer = bytes(
        PickleBuilder(4).stack_global("_pickle", "loads").bytes8(inner).tuple1().reduce().stop()
    )
    found = scan(outer)
    assert any(f.location.member and f.rule == "PKL001" for f in found)


def test_nested_loads_of_a_computed_value_is_reported() -> None:
    b = PickleBuilder(4).stack_global("pickle", "loads").call("mylab", "fetch").tuple1().reduce()
    assert "PKL005" in rules(scan(bytes(b.stop())))


class _RecordingDispatch:
    def __init__(self) -> None:
        self.children: list[Artifact] = []

    def __call__(self, artifact: Artifact) -> Iterator[Finding]:
        self.children.append(artifact)
        return iter(())


def test_torch_load_from_bytes_is_handed_to_the_engine() -> None:
    payload = b"PK\x03\x04 a torch zip would be here"
    b = (
        PickleBuilder(2)
        .global_("torch.storage", "_load_from_bytes")
        .bytes_(payload)
        .tuple1()
        .reduce()
    )
    dispatch = _RecordingDispatch()
    found = scan(bytes(b.stop()), ScanContext(dispatch=dispatch))
    assert found == []
    assert len(dispatch.children) == 1
    child = dispatch.children[0]
    assert child.member[-1].startswith("torch.storage._load_from_bytes@")
    assert child.stream.read() == payload


def test_dill_lambda_shapes_are_critical() -> None:
    b = PickleBuilder(4).stack_global("dill._dill", "_create_function").mark()
    b.stack_global("dill._dill", "_create_code").mark().int(0).tuple().reduce()
    b.empty_dict().str("f").tuple().reduce().stop()
    assert worst(scan(bytes(b))) is Severity.CRITICAL


def test_dill_load_type_of_a_code_type_is_critical_and_plain_types_are_not() -> None:
    code = PickleBuilder(4).call("dill._dill", "_load_type", "CodeType").stop()
    assert worst(scan(bytes(code))) is Severity.CRITICAL


def test_cloudpickle_functions_are_critical() -> None:
    import cloudpickle

    data = cloudpickle.dumps(lambda x: x + 1)  # our own lambda, never loaded
    found = scan(data)
    assert worst(found) is Severity.CRITICAL


def test_engine_integration(tmp_path: Path) -> None:
    (tmp_path / "bad.pkl").write_bytes(call_pickle("os", "system", "true"))
    (tmp_path / "good.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (tmp_path / "p0.bin").write_bytes(global0("posix", "system", "true"))
    report = scan_paths([tmp_path], ScanOptions(scanners=(PickleScanner,)))
    by_file = collections.defaultdict(set)
    for f in report.findings:
        by_file[f.location.path].add(f.rule)
    assert by_file["bad.pkl"] == {"PKL001"}
    assert by_file["p0.bin"] == {"PKL001"}
    assert "good.pkl" not in by_file
    ids = {r.id for r in report.rules}
    assert {"PKL001", "PKL004"} <= ids


def test_rules_are_documented() -> None:
    seen: set[str] = set()
    for rule in PickleScanner.rules:
        assert isinstance(rule, Rule)
        assert rule.id.startswith("PKL") and rule.id not in seen
        assert rule.explanation and rule.remediation
        seen.add(rule.id)


@pytest.mark.parametrize(
    ("module", "name", "severity"),
    [
        ("os", "system", Severity.CRITICAL),
        ("builtins", "eval", Severity.CRITICAL),
        ("builtins", "print", Severity.MEDIUM),
        ("sklearn.tree._tree", "Tree", None),
        ("sklearn.datasets", "fetch_openml", Severity.CRITICAL),
        ("torch._utils", "_rebuild_tensor_v2", None),
        ("torch.serialization", "_get_layout", None),
        ("torch.serialization", "load", Severity.CRITICAL),
        ("numpy.core.multiarray", "_reconstruct", None),
        ("numpy.random._pickle", "__bit_generator_ctor", None),
        ("numpy", "load", Severity.CRITICAL),
        ("uuid", "UUID", None),
        ("uuid", "_get_command_stdout", Severity.CRITICAL),
        ("pathlib", "PosixPath", None),
        ("pathlib", "Path.write_text", Severity.CRITICAL),
        ("mylib.helpers", "system", Severity.HIGH),
        ("builtins", "object.__subclasses__", Severity.CRITICAL),
        ("torch.serialization", "pickle.loads", Severity.CRITICAL),
        ("mylib", "os.system", Severity.CRITICAL),
        ("pandas.core.frame", "DataFrame", None),
        ("pandas.core.frame", "DataFrame.eval", Severity.CRITICAL),
        ("sklearn.linear_model._logistic", "LogisticRegression.__reduce__", Severity.CRITICAL),
        ("mylib", "Outer.Inner", Severity.MEDIUM),
        # issue #10: wrappers are judged by what they wrap; narrowed and curated entries
        ("functools", "partial", None),
        ("functools", "reduce", None),
        ("operator", "itemgetter", None),
        ("operator", "attrgetter", Severity.CRITICAL),
        ("operator", "methodcaller", Severity.CRITICAL),
        ("sklearn.datasets.base", "Bunch", None),
        ("sklearn.datasets._base", "load_files", Severity.CRITICAL),
        ("sklearn.datasets._openml", "_open_openml_url", Severity.CRITICAL),
        ("numpy", "log1p", None),
        ("numpy", "clip", Severity.MEDIUM),
        ("transformers.debug_utils", "DebugOption", None),
        ("accelerate.utils.dataclasses", "DistributedType", None),
        ("mylib.utils", "np.load", Severity.CRITICAL),
        ("mylib.utils", "shutil.rmtree", Severity.CRITICAL),
    ],
)
def test_classify_table(module: str, name: str, severity: Severity | None) -> None:
    assert classify(module, name).severity == severity


@pytest.mark.parametrize(
    "name",
    ["build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "restore_type_tag"],
)
def test_torchscript_list_helpers_are_benign(name: str) -> None:
    # torch.jit.save writes these into every code/*.debug_pkl; found by tests/test_framework_torch
    assert scan(call_pickle("torch.jit._pickle", name, (1, 2))) == []


def test_torchscript_class_types_are_benign_but_torch_jit_load_is_not() -> None:
    assert scan(call_pickle("__torch__.torch.nn.modules.linear", "Linear")) == []
    assert worst(scan(call_pickle("torch.jit", "load", "x.pt"))) is Severity.CRITICAL
