"""The pickle scanner judges what the loader would call (issue #11 point 1, issue #10).

Every hostile pickle here is built opcode by opcode and is inert if someone loads it by mistake:
unknown callables live in modules that do not exist (``mylab.*``) and the real ones run ``true``.
"""

from __future__ import annotations

import base64
import codecs
import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanners.allowlist import classify
from scanners.base import Artifact, ScanContext
from scanners.pickle_analysis import PKL002, PKL010
from scanners.pickle_scan import PickleScanner
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths
from supplychain.policy import load_policy
from tests.pickle_builders import PickleBuilder, call_pickle, global0


def scan(data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    artifact = Artifact(
        path="m.pkl", kind=ArtifactKind.PICKLE, size=len(data), stream=io.BytesIO(data)
    )
    return list(PickleScanner().scan(artifact, ctx or ScanContext()))


def worst(found: list[Finding]) -> Severity | None:
    return max((f.severity for f in found), default=None)


def by_rule(found: list[Finding], rule: str) -> list[Finding]:
    return [f for f in found if f.rule == rule]


def shown(found: list[Finding]) -> list[tuple[str, str, str, str]]:
    return [(f.rule, f.severity.name, f.message, f.evidence) for f in found]


# ---- the severity split: called with arguments vs only referenced or rebuilt ------------------


def test_unknown_function_called_with_arguments_is_high_with_the_call_as_evidence() -> None:
    found = scan(call_pickle("mylab.profiling", "run_snippet", "print('harmless')", 3))
    assert worst(found) is Severity.HIGH, shown(found)
    [hit] = by_rule(found, "PKL010")
    assert hit.evidence == "mylab.profiling.run_snippet(\"print('harmless')\", 3)"
    assert "called at load time" in hit.message


@pytest.mark.parametrize("opcode", ["REDUCE", "INST", "OBJ"])
def test_unknown_class_instantiated_with_arguments_is_high(opcode: str) -> None:
    if opcode == "REDUCE":
        data = global0("mylab.handlers", "FileHandler", "/tmp/x.log")
    elif opcode == "INST":
        data = b"(S'/tmp/x.log'\nimylab.handlers\nFileHandler\n."
    else:
        data = b"(cmylab.handlers\nFileHandler\nS'/tmp/x.log'\no."
    found = scan(data)
    assert worst(found) is Severity.HIGH, shown(found)
    assert "'/tmp/x.log'" in by_rule(found, "PKL010")[0].evidence


def test_the_same_class_only_referenced_is_medium() -> None:
    # {'handler': mylab.handlers.FileHandler} - a dict value, never called
    b = PickleBuilder(4).empty_dict().str("handler").stack_global("mylab.handlers", "FileHandler")
    found = scan(bytes(b.setitem().stop()))
    assert [(f.rule, f.severity) for f in found] == [("PKL002", Severity.MEDIUM)]


def test_unknown_class_passed_as_an_argument_of_an_allowlisted_call_is_medium() -> None:
    # collections.defaultdict(mylab.Factory): the factory is called later by the application
    b = PickleBuilder(4).stack_global("collections", "defaultdict")
    b.stack_global("mylab", "Factory").tuple1().reduce().stop()
    assert [(f.rule, f.severity) for f in scan(bytes(b))] == [("PKL002", Severity.MEDIUM)]


def test_newobj_and_build_of_an_unknown_class_is_medium() -> None:
    b = PickleBuilder(4).stack_global("mylab.models", "Net").empty_tuple().newobj()
    b.empty_dict().str("w").int(1).setitem().build().stop()
    found = scan(bytes(b))
    assert [(f.rule, f.severity) for f in found] == [("PKL002", Severity.MEDIUM)]
    assert "rebuilt 1×" in found[0].message


def test_newobj_with_arguments_like_a_namedtuple_is_medium() -> None:
    b = PickleBuilder(4).stack_global("mylab", "Point").mark().int(1).int(2).tuple().newobj()
    assert [(f.rule, f.severity) for f in scan(bytes(b.stop()))] == [("PKL002", Severity.MEDIUM)]


def test_copyreg_reconstructor_of_an_unknown_class_is_medium() -> None:
    # protocol 0/1 shape of an ordinary instance: copyreg._reconstructor(cls, object, None)
    b = PickleBuilder(None).global_("copy_reg", "_reconstructor").mark()
    b.global_("mylab.models", "Net").global_("__builtin__", "object").none().tuple().reduce()
    found = scan(bytes(b.empty_dict().build().stop()))
    assert [(f.rule, f.severity) for f in found] == [("PKL002", Severity.MEDIUM)]


def test_copyreg_reconstructor_with_an_unknown_base_runs_its_init() -> None:
    # _reconstructor(cls, base, state) calls base.__init__(obj, state): a call with arguments
    b = PickleBuilder(None).global_("copy_reg", "_reconstructor").mark()
    b.global_("mylab", "Obj").global_("mylab.io", "Spooler").str("/tmp/x").tuple().reduce()
    found = scan(bytes(b.stop()))
    assert worst(found) is Severity.HIGH
    assert "mylab.io.Spooler" in by_rule(found, "PKL010")[0].message


def test_call_without_arguments_is_still_a_call() -> None:
    # ``somepkg.cli.main()`` takes its input from elsewhere: a REDUCE with an empty tuple runs
    # code like any other call (only NEWOBJ, a rebuild, stays MEDIUM).
    b = PickleBuilder(2).global_("mylab.models", "TinyNet").empty_tuple().reduce().stop()
    assert [(f.rule, f.severity) for f in scan(bytes(b))] == [("PKL010", Severity.HIGH)]
    inst = b"(imylab.cli\nmain\n."
    assert [(f.rule, f.severity) for f in scan(inst)] == [("PKL010", Severity.HIGH)]


def test_rebuild_only_allowlist_entry_is_quiet_when_rebuilt_and_high_when_called() -> None:
    rebuilt = PickleBuilder(4).stack_global("accelerate.state", "PartialState").empty_tuple()
    assert scan(bytes(rebuilt.newobj().empty_dict().build().stop())) == []
    called = call_pickle("accelerate.state", "PartialState", "nccl")
    assert by_rule(scan(called), "PKL010")


def test_policy_allow_imports_silences_the_call_finding_too() -> None:
    data = call_pickle("mylab.models", "build", 3)
    ctx = ScanContext(extra_allowed_imports=frozenset({"mylab.models.build"}))
    assert scan(data, ctx) == []


def test_pkl002_and_pkl010_remediation_name_the_policy_key_the_policy_accepts(
    tmp_path: Path,
) -> None:
    for rule in (PKL002, PKL010):
        assert "allow_imports" in rule.remediation and "extra_allowed" not in rule.remediation
    toml = tmp_path / "supplychain.toml"
    toml.write_text('allow_imports = ["mylab.models.build", "mylab.*"]\n')
    assert "mylab.models.build" in load_policy(toml).allow_imports


# ---- wrappers: judged by the callable they wrap ----------------------------------------------


def _partial(b: PickleBuilder, module: str, name: str, *args: object) -> PickleBuilder:
    b.stack_global("functools", "partial").mark().stack_global(module, name)
    for a in args:
        b.const(a)
    return b.tuple().reduce()


def test_partial_of_system_called_is_critical_and_names_the_wrapped_call() -> None:
    b = _partial(PickleBuilder(4), "os", "system", "true").empty_tuple().reduce().stop()
    found = scan(bytes(b))
    assert worst(found) is Severity.CRITICAL
    assert any("functools.partial(os.system, 'true')" in f.evidence for f in found)


def test_partial_built_then_called_later_from_the_memo_is_resolved() -> None:
    b = _partial(PickleBuilder(4), "mylab.jobs", "launch", "--fast").memoize().pop()
    b.empty_list().pop().binget(4).mark().str("now").tuple().reduce().stop()  # 0-3: names
    found = scan(bytes(b))
    [hit] = by_rule(found, "PKL010")
    assert hit.evidence == "mylab.jobs.launch('--fast', 'now') via functools.partial"


def test_partial_whose_build_state_swaps_the_function_is_judged_on_the_swapped_one() -> None:
    # partial.__setstate__((func, args, kwds, dict)) replaces the callable the REDUCE named.
    b = PickleBuilder(4).stack_global("functools", "partial").stack_global("builtins", "str")
    b.tuple1().reduce().mark().stack_global("mylab.jobs", "launch").str("x").tuple1()
    b.empty_dict().none().tuple().build().empty_tuple().reduce().stop()
    found = scan(bytes(b))
    assert "mylab.jobs.launch('x')" in by_rule(found, "PKL010")[0].evidence


def test_partial_of_an_allowlisted_constructor_is_quiet() -> None:
    # partial(collections.OrderedDict, a=1)() - what partial(nn.LayerNorm, eps=…) looks like
    b = (
        PickleBuilder(4)
        .stack_global("functools", "partial")
        .stack_global("collections", "OrderedDict")
    )
    b.tuple1().reduce().mark().stack_global("collections", "OrderedDict").empty_tuple()
    b.empty_dict().str("a").int(1).setitem().none().tuple().build().empty_tuple().reduce()
    assert scan(bytes(b.stop())) == []


def test_partial_of_an_unknown_function_that_is_never_called_is_medium() -> None:
    # gensim's TF-IDF model keeps partial(<its weighting function>) and calls it later itself.
    b = _partial(PickleBuilder(4), "mylab.tfidf", "smartirs_wlocal", "n").stop()
    assert [(f.rule, f.severity) for f in scan(bytes(b))] == [("PKL002", Severity.MEDIUM)]


def test_functools_reduce_calls_its_function() -> None:
    b = PickleBuilder(4).stack_global("functools", "reduce").mark()
    b.stack_global("mylab.ops", "combine").mark().int(1).int(2).tuple().tuple().reduce().stop()
    assert by_rule(scan(bytes(b)), "PKL010")
    b = PickleBuilder(4).stack_global("functools", "reduce").mark()
    b.stack_global("os", "system").mark().str("true").tuple().tuple().reduce().stop()
    assert worst(scan(bytes(b))) is Severity.CRITICAL


def test_operator_itemgetter_is_harmless_but_attrgetter_and_methodcaller_are_not() -> None:
    assert scan(call_pickle("operator", "itemgetter", 1)) == []
    assert worst(scan(call_pickle("_operator", "attrgetter", "system"))) is Severity.CRITICAL
    assert worst(scan(call_pickle("operator", "methodcaller", "x"))) is Severity.CRITICAL


# ---- indirection: resolved to what actually runs ---------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "target"),
    [
        ("torch.serialization", "os.system", "os.system"),
        ("numpy.testing._private.utils", "os.system", "os.system"),
        ("shutil", "os.system", "os.system"),
        ("sklearn.utils", "os.system", "os.system"),
        ("mylab.utils", "subprocess.check_output", "subprocess.check_output"),
        ("mylab.utils", "np.load", "numpy.load"),
        ("sklearn.utils.validation", "np.lib.npyio.load", "numpy.lib.npyio.load"),
        ("mylab.io", "tempfile.mktemp", "tempfile.mktemp"),
    ],
)
def test_dotted_names_through_benign_modules_are_judged_as_their_target(
    module: str, name: str, target: str
) -> None:
    verdict = classify(module, name)
    assert verdict.severity is Severity.CRITICAL and target in verdict.reason
    b = PickleBuilder(4).stack_global(module, name).mark().str("true").tuple().reduce().stop()
    assert worst(scan(bytes(b))) is Severity.CRITICAL


def test_nested_class_names_are_not_taken_for_module_walks() -> None:
    for name in ("Outer.Inner", "Config.test.Case", "Model.code.Encoder"):
        assert classify("mylab.models", name).severity is Severity.MEDIUM


def _import_module(b: PickleBuilder, name: str) -> PickleBuilder:
    return b.stack_global("importlib", "import_module").str(name).tuple1().reduce()


def test_getattr_of_import_module_is_resolved_to_the_function_it_reaches() -> None:
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    _import_module(b, "os").str("system").tuple2().reduce().str("true").tuple1().reduce().stop()
    found = scan(bytes(b))
    system = [f for f in found if f.message.startswith("os.system:")]
    assert system and system[0].severity is Severity.CRITICAL
    assert "os.system('true') via builtins.getattr" in system[0].evidence


def test_getattr_of_an_unknown_module_is_judged_under_its_real_name() -> None:
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    _import_module(b, "mylab.tools").str("run").tuple2().reduce().str("x").tuple1().reduce()
    found = scan(bytes(b.stop()))
    assert any(f.rule == "PKL010" and "mylab.tools.run('x')" in f.evidence for f in found)


def test_pkgutil_resolve_name_is_resolved() -> None:
    b = PickleBuilder(4).call("pkgutil", "resolve_name", "os:system")
    found = scan(bytes(b.str("true").tuple1().reduce().stop()))
    assert any("os.system('true') via pkgutil.resolve_name" in f.evidence for f in found)


def test_attrgetter_applied_to_a_module_is_resolved() -> None:
    b = PickleBuilder(4).stack_global("operator", "attrgetter").str("system").tuple1().reduce()
    _import_module(b.mark(), "posix").tuple().reduce().str("true").tuple1().reduce().stop()
    found = scan(bytes(b))
    assert any("os.system('true')" in f.evidence for f in found), shown(found)


def test_methodcaller_applied_to_a_module_is_resolved() -> None:
    b = PickleBuilder(4).call("operator", "methodcaller", "system", "true").mark()
    _import_module(b, "os").tuple().reduce().stop()
    found = scan(bytes(b))
    assert any("os.system('true') via operator.methodcaller" in f.evidence for f in found)


def test_numpy_ufunc_reconstruct_is_judged_by_the_ufunc_it_names() -> None:
    assert scan(call_pickle("numpy._core", "_ufunc_reconstruct", "numpy", "log1p")) == []
    bad = scan(call_pickle("numpy.core", "_ufunc_reconstruct", "os", "system"))
    assert worst(bad) is Severity.CRITICAL
    b = PickleBuilder(4).stack_global("numpy.core", "_ufunc_reconstruct").mark()
    b.call("builtins", "str", "os").str("system").tuple().reduce().stop()
    assert "PKL009" in {f.rule for f in scan(bytes(b))}


# ---- special names planted through BUILD state -----------------------------------------------


def _namespace(b: PickleBuilder) -> PickleBuilder:
    return b.stack_global("argparse", "Namespace").empty_tuple().reduce()


def test_build_planted_setstate_then_invoked_by_a_second_build() -> None:
    b = _namespace(PickleBuilder(4)).empty_dict().str("__setstate__")
    b.stack_global("mylab.jobs", "launch").setitem().build().str("payload").build().stop()
    found = scan(bytes(b))
    assert "PKL008" in {f.rule for f in found}
    [call] = by_rule(found, "PKL010")
    assert call.evidence.startswith("mylab.jobs.launch('payload') via __setstate__ planted")


def test_build_planted_setstate_of_system_is_critical_and_named() -> None:
    b = _namespace(PickleBuilder(4)).none().empty_dict().str("__setstate__")
    b.stack_global("os", "system").setitem().tuple2().build().str("true").build().stop()
    found = scan(bytes(b))
    assert worst(found) is Severity.CRITICAL
    assert any(f.evidence.startswith("os.system('true') via __setstate__") for f in found)


def test_build_planted_reduce_is_reported() -> None:
    b = _namespace(PickleBuilder(4)).empty_dict().str("__reduce__")
    b.stack_global("mylab", "hook").setitem().build().stop()
    found = scan(bytes(b))
    plant = by_rule(found, "PKL008")
    assert plant and "__reduce__" in plant[0].message and worst(found) >= Severity.HIGH  # type: ignore[operator]


def test_build_planted_extend_runs_on_appends() -> None:
    b = _namespace(PickleBuilder(4)).empty_dict().str("extend")
    b.stack_global("mylab.jobs", "launch").setitem().build().mark().str("x").raw(b"e").stop()
    found = scan(bytes(b))
    assert any(f.rule == "PKL010" and "extend planted" in f.evidence for f in found)


def test_benign_special_names_in_state_stay_quiet() -> None:
    # functools.wraps on a callable object puts __wrapped__/__doc__ into its __dict__
    b = _namespace(PickleBuilder(4)).empty_dict().str("__wrapped__")
    b.stack_global("collections", "OrderedDict").setitem().str("__doc__").str("d").setitem()
    assert scan(bytes(b.build().stop())) == []


# ---- nested deserialisers --------------------------------------------------------------------


INNER = call_pickle("os", "system", "true")


def _loads(payload_builder: PickleBuilder) -> bytes:
    return bytes(payload_builder.tuple1().reduce().stop())


def test_nested_pickle_loads_is_critical_and_names_the_inner_call() -> None:
    b = PickleBuilder(4).stack_global("_pickle", "loads").bytes_(INNER)
    found = scan(_loads(b))
    [loader] = [f for f in found if f.message.startswith("pickle.loads:")]
    assert loader.severity is Severity.CRITICAL and "os.system('true')" in loader.message
    assert loader.evidence.endswith("→ payload: os.system('true')")
    inner = [f for f in found if f.location.member]
    assert inner and inner[0].evidence == "os.system('true')"
    assert inner[0].location.member[-1].startswith("pickle.loads@")


@pytest.mark.parametrize(
    ("module", "name", "encode", "extra"),
    [
        ("base64", "b64decode", lambda d: base64.b64encode(d).decode(), ()),
        ("base64", "urlsafe_b64decode", lambda d: base64.urlsafe_b64encode(d).decode(), ()),
        ("binascii", "unhexlify", lambda d: d.hex(), ()),
        ("codecs", "decode", lambda d: base64.b64encode(d), ("base64",)),
        ("codecs", "decode", lambda d: d.hex().encode(), ("hex",)),
        ("zlib", "decompress", zlib.compress, ()),
        ("codecs", "encode", lambda d: d.decode("latin-1"), ("latin1",)),
        ("io", "BytesIO", lambda d: d, ()),
    ],
)
def test_nested_payload_built_in_stream_is_decoded(
    module: str, name: str, encode: object, extra: tuple[str, ...]
) -> None:
    b = PickleBuilder(4).stack_global("pickle", "loads").stack_global(module, name).mark()
    b.const(encode(INNER))  # type: ignore[operator]
    for e in extra:
        b.str(e)
    found = scan(_loads(b.tuple().reduce()))
    assert any(f.location.member and f.evidence == "os.system('true')" for f in found), shown(found)


def test_nested_payload_from_bytes_of_a_short_int_list() -> None:
    inner = global0("os", "system")  # 16 bytes
    b = PickleBuilder(4).stack_global("pickle", "loads").stack_global("builtins", "bytes")
    b.empty_list().mark()
    for byte in inner:
        b.int(byte)
    found = scan(_loads(b.appends().tuple1().reduce()))
    assert any(f.location.member and f.evidence.startswith("os.system") for f in found)


def test_nested_payload_that_cannot_be_decoded_fails_closed() -> None:
    b = PickleBuilder(4).stack_global("pickle", "loads").call("mylab", "fetch", "blob")
    found = scan(_loads(b))
    assert worst(found) is Severity.CRITICAL
    assert any(f.rule == "PKL005" and f.severity >= Severity.HIGH for f in found)


def test_nested_decompression_bomb_is_bounded() -> None:
    bomb = zlib.compress(b"\x00" * 200_000)
    b = PickleBuilder(4).stack_global("pickle", "loads").stack_global("zlib", "decompress")
    found = scan(
        _loads(b.bytes_(bomb).tuple1().reduce()),
        ScanContext(limits=Limits(max_pickle_string=100_000)),
    )
    assert any(f.rule == "PKL005" and "more than 100000" in f.message for f in found)


def test_nested_pickles_stop_at_the_nesting_limit() -> None:
    data = INNER
    for _ in range(6):
        data = _loads(PickleBuilder(4).stack_global("pickle", "loads").bytes_(data))
    found = scan(data, ScanContext(limits=Limits(max_nesting=3)))
    assert any(f.rule == "PKL005" and "deeper" in f.message for f in found)


class _Recorder:
    def __init__(self) -> None:
        self.children: list[Artifact] = []

    def __call__(self, artifact: Artifact) -> Iterator[Finding]:
        self.children.append(artifact)
        return iter(())


def _torch_like_zip(pickle_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle_bytes)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
    return buf.getvalue()


def test_torch_load_of_bytesio_is_handed_to_the_engine() -> None:
    blob = _torch_like_zip(INNER)
    b = PickleBuilder(4).stack_global("torch", "load").stack_global("io", "BytesIO")
    b.bytes_(blob).tuple1().reduce().tuple1().reduce().stop()
    record = _Recorder()
    found = scan(bytes(b), ScanContext(dispatch=record))
    assert worst(found) is Severity.CRITICAL
    [child] = record.children
    assert child.member[-1].startswith("torch.load@") and child.stream.read() == blob


def test_torch_load_of_in_stream_zip_reaches_every_scanner(tmp_path: Path) -> None:
    blob = _torch_like_zip(INNER)
    b = PickleBuilder(4).stack_global("torch.storage", "_load_from_bytes")
    (tmp_path / "m.pkl").write_bytes(_loads(b.bytes_(blob)))
    report = scan_paths([tmp_path], ScanOptions(jobs=1))
    inner = [
        f
        for f in report.findings
        if f.evidence == "os.system('true')"
        and f.location.member[0].startswith("torch.storage._load_from_bytes@")
    ]
    assert inner and inner[0].severity is Severity.CRITICAL
    assert inner[0].location.member[-1] == "archive/data.pkl"  # read as a torch checkpoint
    loader = [f for f in report.findings if f.message.startswith("torch.storage._load_from_bytes")]
    assert loader and loader[0].severity is Severity.CRITICAL  # named after what it loads


def test_codecs_latin1_round_trip_matches_protocol_2_bytes() -> None:
    # protocol 2 writes bytes as codecs.encode(str, 'latin1'): the decoder must agree
    inner = call_pickle("os", "system", "true", proto=2)
    assert codecs.encode(inner.decode("latin-1"), "latin1") == inner


@pytest.mark.parametrize("opcode", ["SETITEMS", "SETITEM", "DICT"])
def test_planted_setstate_behind_filler_keys_is_still_seen(opcode: str) -> None:
    # 40 plain keys first: the machine keeps only a preview of big dicts, but never drops a
    # special name holding a callable.
    b = _namespace(PickleBuilder(2 if opcode == "DICT" else 4))
    if opcode == "DICT":
        b.mark()
    else:
        b.empty_dict()
        if opcode == "SETITEMS":
            b.mark()
    for k in range(40):
        b.str(f"k{k}").int(k)
        if opcode == "SETITEM":
            b.setitem()
    b.str("__setstate__").stack_global("mylab.jobs", "launch")
    b.raw({"SETITEMS": b"u", "SETITEM": b"s", "DICT": b"d"}[opcode])
    found = scan(bytes(b.build().str("payload").build().stop()))
    assert any(f.rule == "PKL010" and "launch('payload')" in f.evidence for f in found), shown(
        found
    )


def test_many_storages_are_all_analysed_and_the_last_one_counts(tmp_path: Path) -> None:
    # pickle.dumps of a model writes one _load_from_bytes per storage; a payload in the 40th
    # storage must not fall off a per-pickle cap.
    benign = _torch_like_zip(bytes(PickleBuilder(2).empty_dict().stop()))
    b = PickleBuilder(2).mark()
    for k in range(40):
        blob = benign if k < 39 else _torch_like_zip(INNER)
        b.global_("torch.storage", "_load_from_bytes").bytes_(blob).tuple1().reduce()
    (tmp_path / "m.pkl").write_bytes(bytes(b.raw(b"l").stop()))
    report = scan_paths([tmp_path], ScanOptions(jobs=1))
    inner = [f for f in report.findings if f.evidence == "os.system('true')"]
    assert inner and any("@" in f.location.member[0] for f in inner)


def test_deserialiser_calls_over_the_cap_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import scanners.pickle_analysis as ps

    monkeypatch.setattr(ps, "MAX_NESTED", 2)
    b = PickleBuilder(2).mark()
    for _ in range(3):
        b.global_("torch.storage", "_load_from_bytes").bytes_(b"PK\x03\x04").tuple1().reduce()
    found = scan(bytes(b.raw(b"l").stop()))
    assert any(f.rule == "PKL005" and "1 more nested" in f.message for f in found)


def test_dunder_import_is_resolved_like_import_module() -> None:
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    b.stack_global("builtins", "__import__").str("subprocess").tuple1().reduce()
    b.str("getoutput").tuple2().reduce().str("true").tuple1().reduce().stop()
    found = scan(bytes(b))
    assert any(f.evidence.startswith("subprocess.getoutput('true') via") for f in found)


def test_getattr_chain_of_chains_is_resolved() -> None:
    # getattr(getattr(import_module('os'), 'path'), 'join')('a') -> os.path.join
    b = PickleBuilder(4).stack_global("builtins", "getattr").memoize()
    b.stack_global("builtins", "getattr")
    _import_module(b, "os").str("path").tuple2().reduce().str("join").tuple2().reduce()
    found = scan(bytes(b.str("a").tuple1().reduce().stop()))
    assert any(f.evidence.startswith("os.path.join('a') via") for f in found), shown(found)


def test_yaml_load_of_a_literal_is_handed_to_the_engine() -> None:
    text = "!!python/object/apply:os.system ['true']\n"
    record = _Recorder()
    found = scan(call_pickle("yaml", "unsafe_load", text), ScanContext(dispatch=record))
    assert worst(found) is Severity.CRITICAL
    [child] = record.children
    assert child.stream.read() == text.encode()


def _bound_method(cls_module: str, cls_name: str, method: str) -> bytes:
    # protocol 2+ pickles a bound method as getattr(<instance>, 'name')
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    b.stack_global(cls_module, cls_name).empty_tuple().newobj().empty_dict().build()
    return bytes(b.str(method).tuple2().reduce().stop())


def test_bound_method_of_an_allowlisted_object_is_quiet() -> None:
    assert scan(_bound_method("collections", "OrderedDict", "keys")) == []


def test_bound_method_of_a_user_object_is_a_call_into_that_class_not_critical() -> None:
    # forward hooks registered to a module's own method, saved with the whole module
    found = scan(_bound_method("mylab.models", "Net", "_hook"))
    assert [(f.rule, f.severity) for f in found] == [("PKL010", Severity.HIGH)]
    assert "getattr(" in found[0].evidence and "'_hook'" in found[0].evidence


def test_getattr_of_a_special_name_on_an_object_stays_critical() -> None:
    assert worst(scan(_bound_method("collections", "OrderedDict", "__init__"))) is (
        Severity.CRITICAL
    )


def test_calling_a_bound_method_at_load_time_is_a_computed_call() -> None:
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    b.stack_global("collections", "OrderedDict").empty_tuple().newobj()
    b.str("update").tuple2().reduce().empty_dict().tuple1().reduce().stop()
    assert "PKL008" in {f.rule for f in scan(bytes(b))}


def test_getattr_on_an_import_helper_result_is_not_a_method_lookup() -> None:
    # getattr(_ufunc_reconstruct('numpy', 'os'), 'system'): a module attribute, not a method
    b = PickleBuilder(4).stack_global("builtins", "getattr")
    b.call("numpy.core", "_ufunc_reconstruct", "numpy", "os").str("system").tuple2().reduce()
    assert worst(scan(bytes(b.stop()))) is Severity.CRITICAL


def test_torch_load_of_base64_zip_bytes_reaches_the_engine(tmp_path: Path) -> None:
    blob = base64.b64encode(_torch_like_zip(INNER)).decode()
    b = PickleBuilder(4).stack_global("torch", "load").stack_global("io", "BytesIO")
    b.stack_global("base64", "b64decode").str(blob).tuple1().reduce().tuple1().reduce()
    (tmp_path / "m.pkl").write_bytes(_loads(b))
    report = scan_paths([tmp_path], ScanOptions(jobs=1))
    inner = [
        f
        for f in report.findings
        if f.evidence == "os.system('true')" and f.location.member[0].startswith("torch.load@")
    ]
    assert inner and inner[0].severity is Severity.CRITICAL


def test_special_names_holding_plain_objects_are_data() -> None:
    # pydantic v2 under protocol 2: {'__pydantic_fields_set__': set([...]), ...}
    b = _namespace(PickleBuilder(2)).empty_dict().str("__pydantic_fields_set__")
    b.global_("__builtin__", "set").empty_list().str("a").append().tuple1().reduce()
    b.setitem().str("__pydantic_private__").none().setitem().build().stop()
    assert scan(bytes(b)) == []


def test_bound_method_handed_to_a_call_at_load_time_is_reported() -> None:
    # pandas.core.common.pipe(obj, func) calls func: a bound method of an allowlisted object
    # must not ride through it quietly.
    b = PickleBuilder(4).stack_global("pandas.core.common", "pipe").mark().none()
    b.stack_global("builtins", "getattr").stack_global("pathlib", "PosixPath").str("/tmp/x")
    b.tuple1().reduce().str("unlink").tuple2().reduce().tuple().reduce().stop()
    found = scan(bytes(b))
    assert any(f.rule == "PKL008" and "bound method" in f.message for f in found), shown(found)
    assert worst(found) is not None and worst(found) >= Severity.HIGH  # type: ignore[operator]


def test_bound_method_bound_by_partial_is_not_a_load_time_call() -> None:
    b = PickleBuilder(4).stack_global("functools", "partial")
    b.stack_global("builtins", "getattr").stack_global("collections", "OrderedDict")
    b.empty_tuple().newobj().str("get").tuple2().reduce().tuple1().reduce().stop()
    assert scan(bytes(b)) == []


def test_allowlisted_helpers_that_call_an_argument_are_judged_by_it() -> None:
    b = PickleBuilder(4).stack_global("pandas.core.common", "pipe").mark().str("x")
    b.stack_global("mylab.jobs", "launch").tuple().reduce().stop()
    found = scan(bytes(b))
    assert any(f.rule == "PKL010" and "mylab.jobs.launch" in f.message for f in found)
