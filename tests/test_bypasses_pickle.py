"""One named regression test per published bypass of pickle scanners (shared THREATS.md §1).

Every hostile pickle is built opcode by opcode and is inert if someone loads it by mistake: the
payloads run ``true``, ``print`` or ``--version``, never anything that does harm.
"""

from __future__ import annotations

import io
import pickle

import pytest

from scanners.base import Artifact, ScanContext
from scanners.pickle_scan import PickleScanner
from supplychain.core.model import ArtifactKind, Finding, Severity
from tests.pickle_builders import PickleBuilder, call_pickle, global0


def scan(data: bytes) -> list[Finding]:
    artifact = Artifact(
        path="m.pkl", kind=ArtifactKind.PICKLE, size=len(data), stream=io.BytesIO(data)
    )
    return list(PickleScanner().scan(artifact, ScanContext()))


def worst(found: list[Finding]) -> Severity | None:
    return max((f.severity for f in found), default=None)


def rules(found: list[Finding]) -> set[str]:
    return {f.rule for f in found}


def assert_critical(data: bytes, *, evidence: str | None = None) -> list[Finding]:
    found = scan(data)
    assert worst(found) is Severity.CRITICAL, [(f.rule, f.severity, f.message) for f in found]
    if evidence is not None:
        assert any(evidence in f.evidence for f in found), [f.evidence for f in found]
    return found


# --- picklescan CVEs and GHSAs ------------------------------------------------------------


def test_cve_2025_1716_pip_main() -> None:
    # https://osv.dev/vulnerability/CVE-2025-1716 (pip.main(['install', ...]) was not unsafe)
    assert_critical(call_pickle("pip", "main", ("--version",)), evidence="pip.main(")


def test_cve_2025_1716_pip_internal_submodule() -> None:
    # Same advisory, through pip's internals.
    assert_critical(call_pickle("pip._internal.cli.main", "main", ("--version",)))


def test_cve_2025_10157_submodule_of_denied_module_asyncio_unix_events() -> None:
    # https://evlbot.xyz/llm03-lesson/llm03-slide-12.html (JFrog: submodule bypass)
    b = PickleBuilder(4).stack_global("asyncio.unix_events", "_UnixSubprocessTransport")
    assert_critical(bytes(b.stop()))


def test_ghsa_operator_attrgetter_and_methodcaller() -> None:
    # picklescan GHSAs: operator / _operator attrgetter, methodcaller
    assert_critical(call_pickle("_operator", "methodcaller", "system", "true"))
    assert_critical(call_pickle("operator", "attrgetter", "system"))


@pytest.mark.parametrize(
    ("module", "name"),
    [("cProfile", "run"), ("profile", "run"), ("timeit", "timeit"), ("trace", "Trace")],
)
def test_ghsa_profilers_run_code(module: str, name: str) -> None:
    # picklescan GHSA: cProfile.run / profile.run execute a code string
    assert_critical(call_pickle(module, name, "print('harmless')"))


def test_ghsa_idlelib() -> None:
    # picklescan GHSA: idlelib helpers run code
    assert_critical(call_pickle("idlelib.pyshell", "ModifiedInterpreter", "print(1)"))


def test_ghsa_numpy_f2py_eval() -> None:
    # picklescan GHSA: numpy.f2py.crackfortran evaluates expressions
    assert_critical(call_pickle("numpy.f2py.crackfortran", "_eval_length", "1", "x"))


def test_ghsa_numpy_testing_runstring() -> None:
    assert_critical(call_pickle("numpy.testing._private.utils", "runstring", "print(1)", None))


def test_ghsa_ctypes() -> None:
    # picklescan GHSA: ctypes loads libraries / calls C
    assert_critical(call_pickle("ctypes", "CDLL", "libc.so.6"))


def test_ghsa_vvpj_8cmc_gx39_pkgutil_resolve_name() -> None:
    # https://github.com/advisories/GHSA-vvpj-8cmc-gx39 (universal bypass: resolve any name)
    b = PickleBuilder(4).call("pkgutil", "resolve_name", "builtins:print")
    b.mark().str("harmless").tuple().reduce().stop()
    found = assert_critical(bytes(b), evidence="pkgutil.resolve_name('builtins:print')")
    assert "PKL008" in rules(found)  # the resolved callable is then called


@pytest.mark.parametrize(
    ("module", "name", "arg"),
    [
        ("uuid", "_get_command_stdout", "true"),
        ("imaplib", "IMAP4_stream", "true"),
        ("_pyrepl.pager", "pipe_pager", "harmless"),
    ],
)
def test_ghsa_g38g_8gr9_h9xp_stdlib_gadgets(module: str, name: str, arg: str) -> None:
    # https://aithreatalert.com/cve/CVE-2026-56315 (uuid / imaplib / _pyrepl ...)
    assert_critical(call_pickle(module, name, arg))


def test_uuid_class_itself_stays_allowed() -> None:
    data = pickle.dumps(__import__("uuid").UUID(int=1), protocol=4)
    assert scan(data) == []


# --- nullifAI and broken streams ----------------------------------------------------------


def test_nullifai_payload_then_broken_stream() -> None:
    # https://safeguard.sh/resources/blog/nullifai-broken-pickles-huggingface-attack
    payload = global0("posix", "system", "true")[:-1]  # no STOP
    data = b"\x80\x02" + payload + b"\x00\x13garbage that is not a pickle"
    found = assert_critical(data, evidence="os.system('true')")
    broken = [f for f in found if f.rule == "PKL004"]
    assert broken and broken[0].severity is Severity.CRITICAL


def test_nullifai_truncated_frame() -> None:
    data = call_pickle("os", "system", "true")
    data = data[:2] + b"\x95" + (10_000).to_bytes(8, "little") + data[2:-1]
    found = assert_critical(data)
    assert "PKL004" in rules(found)


# --- modelscan issues ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "args"),
    [
        ("torch.utils.collect_env", "run", ("true",)),
        ("multiprocessing.util", "spawnv_passfds", (b"/bin/true", ("true",), ())),
        ("mlflow.projects.backend.local", "_run_entry_point", ("true", ".", "", "")),
        ("pandas.io.parsers.readers", "read_csv", ("http://127.0.0.1:9/x.csv",)),
        ("pandas", "read_csv", ("http://127.0.0.1:9/x.csv",)),
        ("pandas", "read_pickle", ("x.pkl",)),
        ("urllib.request", "urlopen", ("http://127.0.0.1:9/",)),
    ],
)
def test_modelscan_338_alternative_execution_primitives(
    module: str, name: str, args: tuple[object, ...]
) -> None:
    # https://github.com/protectai/modelscan/issues/338 (real HF samples)
    assert_critical(call_pickle(module, name, *args))


def test_modelscan_267_nested_pickle_loads() -> None:
    # https://github.com/protectai/modelscan/issues/267
    inner = call_pickle("os", "system", "true")
    b = PickleBuilder(4).stack_global("_pickle", "loads").bytes_(inner).tuple1().reduce().stop()
    found = assert_critical(bytes(b))
    assert any(f.location.member and f.evidence == "os.system('true')" for f in found)


def test_modelscan_267_nested_pickle_bytes_from_memo() -> None:
    inner = call_pickle("builtins", "exec", "print('harmless')")
    b = PickleBuilder(4).bytes_(inner).memoize().pop()
    b.stack_global("pickle", "loads").binget(0).tuple1().reduce().stop()
    found = assert_critical(bytes(b))
    assert any(f.location.member for f in found)


def test_modelscan_267_nested_pickle_via_protocol2_codecs_bytes() -> None:
    inner = call_pickle("os", "system", "true", proto=2).decode("latin-1")
    b = PickleBuilder(2).global_("cPickle", "loads").mark()
    b.global_("_codecs", "encode").mark().str(inner).str("latin1").tuple().reduce()
    b.tuple().reduce().stop()
    found = assert_critical(bytes(b))
    assert any(f.location.member for f in found)


def test_modelscan_330_numpy_allowlist_builtins_gadget() -> None:
    # https://github.com/protectai/modelscan/issues/330: numpy.size + numpy.__builtins__ + BUILD
    b = PickleBuilder(4).stack_global("numpy", "size", memoize=False).memoize().memoize()
    b.stack_global("numpy", "__builtins__", memoize=False).memoize().memoize()
    b.binget(1).empty_dict().empty_dict().str("shape").binget(3).setitem().tuple2().build()
    b.binget(1).binget(1).str("eval").tuple2().reduce()
    b.str('print("harmless")').tuple1().reduce().stop()
    found = assert_critical(bytes(b))
    assert "PKL008" in rules(found)


def test_modelscan_331_import_module_getattr_join_chain() -> None:
    # https://github.com/protectai/modelscan/issues/331
    b = PickleBuilder(4).call("importlib", "import_module", "builtins").memoize()
    b.stack_global("builtins", "getattr").memoize()
    b.binget(2).binget(0).str("str").tuple2().reduce().str("join").tuple2().reduce()
    b.str("").empty_list().mark().str("o").str("s").appends().tuple2().reduce().stop()
    found = assert_critical(bytes(b))
    assert "PKL008" in rules(found)


def test_modelscan_85_build_setattr_then_memo_replayed_stack_global() -> None:
    # https://github.com/protectai/modelscan/issues/85: BUILD slotstate setattr on numpy.prod,
    # then STACK_GLOBAL with operands fetched from the memo that are not string constants.
    b = PickleBuilder(5).global_("numpy", "prod").none().mark().unicode0("a").unicode0("os")
    b.raw(b"d").tuple2().build().none().mark().unicode0("b").unicode0("system").raw(b"d")
    b.tuple2().build().pop().global_("numpy", "prod.a").put0(0).global_("numpy", "prod.b")
    b.put0(1).pop().pop().get0(0).get0(1).raw(b"\x93").unicode0("true").tuple1().reduce()
    found = assert_critical(bytes(b.stop()))
    assert {"PKL003", "PKL008"} <= rules(found)


# --- memo replay, getattr chains, EXT, protocol 0 paths ------------------------------------


def test_agent_bom_3326_memo_replayed_stack_global() -> None:
    # https://github.com/msaad00/agent-bom/issues/3326: operands memoized early, replayed later
    b = PickleBuilder(4).str("os").memoize().str("system").memoize().pop().pop()
    b.empty_dict().pop().str("benign").pop()
    b.binget(0).binget(1).raw(b"\x93").str("true").tuple1().reduce().stop()
    assert_critical(bytes(b), evidence="os.system('true')")


def test_getattr_chain_builtins_eval() -> None:
    # builtins.getattr(builtins-module, 'eval')('...')
    b = PickleBuilder(4).stack_global("builtins", "getattr").mark()
    b.call("importlib", "import_module", "builtins").str("eval").tuple().reduce()
    b.str("print('harmless')").tuple1().reduce().stop()
    found = assert_critical(bytes(b), evidence="builtins.getattr(")
    assert "PKL008" in rules(found)


def test_getattr_via_python2_module_name() -> None:
    assert_critical(global0("__builtin__", "getattr", "x", "y"))


@pytest.mark.parametrize("opcode", ["ext1", "ext2", "ext4"])
def test_ext_opcodes_reach_registry_callables(opcode: str) -> None:
    b = PickleBuilder(2)
    getattr(b, opcode)(1)
    b.mark().str("true").tuple().reduce().stop()
    found = scan(bytes(b))
    assert {"PKL006", "PKL008"} <= rules(found)


def test_protocol0_inst_opcode() -> None:
    data = b"(S'true'\nios\nsystem\n."
    assert_critical(data, evidence="os.system('true')")


def test_protocol1_obj_opcode() -> None:
    data = b"(cos\nsystem\nS'true'\no."
    assert_critical(data, evidence="os.system('true')")


def test_protocol0_global_with_dotted_name() -> None:
    assert_critical(b"ctorch.serialization\npickle.loads\n(S'x'\ntR.")
    assert_critical(b"csklearn.utils\nos.system\n(S'true'\ntR.")
    assert_critical(b"cbuiltins\nobject.__subclasses__\n)R.")


def test_stack_global_with_dotted_name() -> None:
    b = PickleBuilder(4).stack_global("builtins", "getattr.__self__").stop()
    assert_critical(bytes(b))


@pytest.mark.parametrize(
    ("module", "name"),
    [("posix", "system"), ("nt", "system"), ("__builtin__", "eval"), ("_io", "open")],
)
def test_module_aliases_do_not_hide_denied_modules(module: str, name: str) -> None:
    assert_critical(global0(module, name, "true"))


# --- "The Art of Hide and Seek" (arXiv 2508.19774): Exception-Oriented Programming shapes ---


def test_eop_payload_inside_exception_arguments() -> None:
    # https://arxiv.org/abs/2508.19774: the payload is an argument of an exception object
    b = PickleBuilder(4).stack_global("builtins", "RuntimeError").mark()
    b.call("os", "system", "true").tuple().reduce().stop()
    assert_critical(bytes(b), evidence="os.system('true')")


def test_eop_payload_then_deliberate_exception() -> None:
    # Run the payload, then raise so the framework's fallback path swallows the error.
    b = PickleBuilder(4).mark().call("os", "system", "true")
    b.call("builtins", "int", "not a number").tuple().stop()
    assert_critical(bytes(b))


def test_eop_payload_in_build_state_of_exception() -> None:
    b = PickleBuilder(4).stack_global("builtins", "ValueError").empty_tuple().reduce()
    b.empty_dict().str("args").call("subprocess", "getoutput", "true").setitem().build().stop()
    assert_critical(bytes(b), evidence="subprocess.getoutput('true')")


# --- gadgets hidden behind allowlisted helpers ---------------------------------------------


def test_copyreg_reconstructor_with_dangerous_class() -> None:
    b = PickleBuilder(2).global_("copy_reg", "_reconstructor").mark()
    b.global_("os", "system").global_("__builtin__", "object").none().tuple().reduce().stop()
    found = assert_critical(bytes(b))
    assert "PKL009" in rules(found)


def test_functools_partial_of_system() -> None:
    b = PickleBuilder(4).stack_global("functools", "partial").mark()
    b.stack_global("os", "system").str("true").tuple().reduce().empty_tuple().reduce().stop()
    assert_critical(bytes(b), evidence="functools.partial(os.system, 'true')")


def test_builtins_map_forced_by_list() -> None:
    b = PickleBuilder(4).stack_global("builtins", "list").mark()
    b.stack_global("builtins", "map").mark().stack_global("os", "system")
    b.mark().str("true").tuple().tuple().reduce().tuple().reduce().stop()
    assert_critical(bytes(b))


def test_code_object_construction() -> None:
    assert_critical(call_pickle("types", "CodeType", 0, 0))
    assert_critical(call_pickle("marshal", "loads", b"\xe3"))


def test_dill_create_code_and_function() -> None:
    # https://github.com/protectai/modelscan/issues/28 (dill models)
    assert_critical(call_pickle("dill._dill", "_create_code", 0))
    assert_critical(call_pickle("dill._dill", "_create_function", None))


def test_cloudpickle_subimport() -> None:
    assert_critical(call_pickle("cloudpickle.cloudpickle", "subimport", "os"))


def test_torch_load_paths() -> None:
    assert_critical(call_pickle("torch.hub", "load", "x/y", "m"))
    assert_critical(call_pickle("torch.jit", "load", "m.pt"))
    assert_critical(call_pickle("torch", "load", "m.pt"))


def test_reexport_through_strong_module_name() -> None:
    # A module that re-exports os (``shutil.os``) or pickle under an unknown package.
    assert_critical(bytes(PickleBuilder(4).stack_global("shutil", "os.system").stop()))
    assert_critical(bytes(PickleBuilder(4).stack_global("somepkg.compat", "pickle.loads").stop()))


def test_data_after_stop_hiding_a_second_payload() -> None:
    data = pickle.dumps({"w": 1}, protocol=4) + b"cos\nsystem\n(S'true'\ntR\xff"
    found = scan(data)
    assert "PKL007" in rules(found)


def test_stacked_pickle_after_a_benign_one() -> None:
    # Legacy torch.save writes several pickles back to back; a payload in a later one counts.
    data = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + call_pickle(
        "os", "system", "true", proto=2
    )
    assert_critical(data)


def test_computed_stack_global_operands() -> None:
    b = PickleBuilder(4).call("builtins", "str", "os").str("system").raw(b"\x93").stop()
    found = assert_critical(bytes(b))
    assert "PKL003" in rules(found)


# --- gadgets no denylist knew: an unknown call fails the gate on its own (issue #11) --------


@pytest.mark.parametrize(
    ("module", "name", "args"),
    [
        # profiler helper in torch.utils that runs a code string
        ("torch.utils.bottleneck.__main__", "run_cprofile", ("print('harmless')", {})),
        # private stdlib helper that runs a shell command
        ("_aix_support", "_aix_bos_rte", ()),
        # logging handler that creates a file on construction
        ("logging", "FileHandler", ("/tmp/supplychain-sample.log",)),
        # config loader that unpickles its argument (hypothetical third-party module)
        ("mylab.config", "load_cached_config", (b"\x80\x04K\x01.",)),
    ],
)
def test_unknown_gadget_calls_fail_the_default_gate(
    module: str, name: str, args: tuple[object, ...]
) -> None:
    found = scan(call_pickle(module, name, *args))
    assert worst(found) is not None and worst(found) >= Severity.HIGH  # type: ignore[operator]
    assert any(f"{module}.{name}(" in f.evidence for f in found), [f.evidence for f in found]


def test_truncated_inst_name_line_is_read_like_the_pure_python_unpickler() -> None:
    # pickle._Unpickler reads the last line without its newline and chops one byte: this stream
    # calls os.system('echo supplychain-sample') before noticing EOF (the C unpickler does not).
    data = b"(V" + b"echo supplychain-sample" + b"\nios\nsystemX"
    found = assert_critical(data, evidence="os.system('echo supplychain-sample')")
    assert "PKL004" in rules(found)
