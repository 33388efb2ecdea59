"""One named test per published pickle gadget or scanner bypass, run end to end.

Sources: /work/shared/THREATS.md §1 (picklescan CVEs/GHSAs, nullifAI, modelscan issues, the
Hide-and-Seek EOP class) and the gadgets named in the picklescan/modelscan/fickling advisories
of 2025-2026. Each test writes a hostile file built opcode by opcode (payload at most
``echo supplychain-sample``), runs the real engine (``engine.scan_paths``) and the default policy
(``policy.apply``), and asserts that the default gate fails and that a finding names the callable.
Where no advisory id was recorded with the gadget, the test name says which scanner's advisory
stream it came from rather than inventing an id.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from supplychain import policy
from supplychain.core.model import Finding, Report
from supplychain.engine import scan_paths
from tests.pickle_builders import PickleBuilder, call_pickle, global0

CMD = "echo supplychain-sample"


def gate(tmp_path: Path, data: bytes, name: str = "model.pkl") -> tuple[Report, list[Finding]]:
    """Scan ``data`` written as ``name`` and apply the default policy."""
    target = tmp_path / name
    target.write_bytes(data)
    report = policy.apply(scan_paths([target]), policy.Policy())
    assert report.verdict is not None
    return report, list(report.findings)


def assert_blocked(tmp_path: Path, data: bytes, callable_: str, name: str = "model.pkl") -> None:
    """The default gate fails and some finding names ``callable_``."""
    report, found = gate(tmp_path, data, name)
    shown: list[tuple[str, ...]] = [
        (f.rule, f.severity.label, f.message, f.evidence) for f in found
    ]
    shown += [(r.scanner, r.status.value, r.reason) for r in report.results]
    assert report.verdict is not None
    assert not report.verdict.passed, shown
    assert any(callable_ in f.message or callable_ in f.evidence for f in found), shown


def instance_call(cls_mod: str, cls: str, method: str, *args: object) -> bytes:
    """``cls_mod.cls.method(cls_mod.cls(), *args)`` via a dotted STACK_GLOBAL (protocol 4)."""
    b = PickleBuilder(4).stack_global(cls_mod, f"{cls}.{method}").mark()
    b.stack_global(cls_mod, cls).empty_tuple().reduce()
    for a in args:
        b.const(a)
    return bytes(b.tuple().reduce().stop())


# --- THREATS.md §1: picklescan CVEs of 2025 ------------------------------------------------


def test_cve_2025_1716_pip_main(tmp_path: Path) -> None:
    # https://osv.dev/vulnerability/CVE-2025-1716
    assert_blocked(tmp_path, call_pickle("pip", "main", ("install", "--help")), "pip.main")


def test_cve_2025_1889_payload_under_non_pickle_extension(tmp_path: Path) -> None:
    # https://cvetodo.com/cve/CVE-2025-1889: only standard pickle extensions were scanned.
    assert_blocked(tmp_path, call_pickle("os", "system", CMD), "os.system", name="notes.txt")


def test_cve_2025_1889_payload_in_zip_member_with_other_extension(tmp_path: Path) -> None:
    # Same advisory, commit baf03fa (malicious1_wrong_ext.zip).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.dat", call_pickle("os", "system", CMD))
    assert_blocked(tmp_path, buf.getvalue(), "os.system", name="bundle.zip")


def _torch_zip(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def test_cve_2025_1944_local_and_central_name_mismatch(tmp_path: Path) -> None:
    # https://versaaihub.com/?p=12954: zipfile raises on the mismatch, torch loads the member.
    data = bytearray(_torch_zip(call_pickle("os", "system", CMD)))
    at = data.index(b"archive/data.pkl")  # first occurrence: the local header
    data[at : at + 7] = b"ARCHIVE"
    assert_blocked(tmp_path, bytes(data), "os.system", name="model.pt")


def test_cve_2025_10156_bad_crc(tmp_path: Path) -> None:
    # JFrog: a wrong CRC made picklescan's zipfile read fail while torch loads the member.
    data = bytearray(_torch_zip(call_pickle("os", "system", CMD)))
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 14, 0)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 16, 0)
    assert_blocked(tmp_path, bytes(data), "os.system", name="model.pt")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_cve_2025_10155_plain_pickle_under_torch_extension(tmp_path: Path, name: str) -> None:
    # JFrog: a plain pickle named .bin/.pt went to the zip parser, which failed silently.
    assert_blocked(tmp_path, call_pickle("os", "system", CMD), "os.system", name=name)


def test_cve_2025_10157_asyncio_unix_events_submodule(tmp_path: Path) -> None:
    # JFrog: a submodule of a denied module bypassed the unsafe-globals check.
    data = call_pickle("asyncio.unix_events", "_UnixSubprocessTransport", CMD)
    assert_blocked(tmp_path, data, "asyncio.unix_events")


# --- THREATS.md §1: picklescan GHSAs ---------------------------------------------------------


def test_ghsa_vvpj_8cmc_gx39_pkgutil_resolve_name(tmp_path: Path) -> None:
    # GHSA-vvpj-8cmc-gx39: pkgutil.resolve_name("os:system") then call the result.
    b = PickleBuilder(4).stack_global("pkgutil", "resolve_name").mark().str("os:system")
    b.tuple().reduce().mark().str(CMD).tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "pkgutil.resolve_name")


@pytest.mark.parametrize(
    ("module", "name", "arg"),
    [
        ("uuid", "_get_command_stdout", "echo"),
        ("imaplib", "IMAP4_stream", CMD),
        ("_pyrepl.pager", "pipe_pager", CMD),
    ],
)
def test_ghsa_g38g_8gr9_h9xp_stdlib_gadgets(
    tmp_path: Path, module: str, name: str, arg: str
) -> None:
    # GHSA-g38g-8gr9-h9xp / CVE-2026-56315: seven stdlib modules incl. uuid, imaplib, _pyrepl.
    assert_blocked(tmp_path, call_pickle(module, name, arg), f"{module}.{name}")


@pytest.mark.parametrize("module", ["operator", "_operator"])
def test_picklescan_ghsa_operator_methodcaller(tmp_path: Path, module: str) -> None:
    # picklescan GHSAs on operator/_operator: methodcaller("system", cmd)(os module).
    b = PickleBuilder(4).stack_global(module, "methodcaller").mark().str("system").str(CMD)
    b.tuple().reduce().mark().stack_global("builtins", "__import__").mark().str("os")
    b.tuple().reduce().tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "operator.methodcaller")


def test_picklescan_ghsa_operator_attrgetter_chain(tmp_path: Path) -> None:
    # attrgetter("system") applied to an imported module: an attribute walk by a call.
    b = PickleBuilder(4).stack_global("operator", "attrgetter").mark().str("system")
    b.tuple().reduce().mark().stack_global("importlib", "import_module").mark().str("os")
    b.tuple().reduce().tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "operator.attrgetter")


def test_picklescan_ghsa_builtins_getattr_chain(tmp_path: Path) -> None:
    # getattr(__import__("os"), "system")(cmd): no dangerous name appears as a global.
    b = PickleBuilder(4).stack_global("builtins", "getattr").mark()
    b.stack_global("builtins", "__import__").mark().str("os").tuple().reduce()
    b.str("system").tuple().reduce().mark().str(CMD).tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "builtins.getattr")


@pytest.mark.parametrize(("module", "name"), [("cProfile", "run"), ("profile", "run")])
def test_picklescan_ghsa_profilers_run(tmp_path: Path, module: str, name: str) -> None:
    # picklescan advisories: cProfile.run / profile.run exec their statement string.
    stmt = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, call_pickle(module, name, stmt), f"{module}.{name}")


def test_picklescan_ghsa_timeit_timeit(tmp_path: Path) -> None:
    # timeit.timeit(stmt) compiles and runs stmt.
    stmt = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, call_pickle("timeit", "timeit", stmt, "pass", None, 1), "timeit")


def test_picklescan_ghsa_bdb_bdb_run(tmp_path: Path) -> None:
    # bdb.Bdb.run(Bdb(), cmd) execs cmd.
    stmt = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, instance_call("bdb", "Bdb", "run", stmt), "bdb.Bdb")


def test_picklescan_ghsa_pdb_pdb_run(tmp_path: Path) -> None:
    stmt = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, instance_call("pdb", "Pdb", "run", stmt), "pdb.Pdb")


def test_picklescan_ghsa_code_interactive_interpreter_runsource(tmp_path: Path) -> None:
    # code.InteractiveInterpreter().runsource(src) compiles and execs src.
    src = f"__import__('os').system({CMD!r})"
    data = instance_call("code", "InteractiveInterpreter", "runsource", src)
    assert_blocked(tmp_path, data, "code.InteractiveInterpreter")


def test_picklescan_ghsa_pydoc_pipepager(tmp_path: Path) -> None:
    # pydoc.pipepager(text, cmd) runs cmd through the shell.
    assert_blocked(tmp_path, call_pickle("pydoc", "pipepager", "x", CMD), "pydoc.pipepager")


def test_picklescan_ghsa_idlelib_pyshell(tmp_path: Path) -> None:
    # idlelib helpers run code (ModifiedInterpreter.runsource / runcommand).
    src = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, call_pickle("idlelib.pyshell", "ModifiedInterpreter", src), "idlelib")


def test_picklescan_ghsa_lib2to3_pgen_driver(tmp_path: Path) -> None:
    # lib2to3 grammar loaders read (and pickle-load) arbitrary paths.
    data = call_pickle("lib2to3.pgen2.driver", "load_grammar", "/tmp/g.pickle")
    assert_blocked(tmp_path, data, "lib2to3")


def test_picklescan_ghsa_ensurepip_run_pip(tmp_path: Path) -> None:
    # ensurepip._run_pip runs pip code with attacker arguments.
    data = call_pickle("ensurepip", "_run_pip", ("install", "--help"))
    assert_blocked(tmp_path, data, "ensurepip._run_pip")


def test_picklescan_ghsa_distutils_spawn(tmp_path: Path) -> None:
    # distutils.spawn.spawn(cmd) (also setuptools' vendored copy).
    data = call_pickle("distutils.spawn", "spawn", ("echo", "supplychain-sample"))
    assert_blocked(tmp_path, data, "distutils.spawn")


def test_picklescan_ghsa_setuptools_vendored_distutils_spawn(tmp_path: Path) -> None:
    data = call_pickle("setuptools._distutils.spawn", "spawn", ("echo", "supplychain-sample"))
    assert_blocked(tmp_path, data, "setuptools._distutils.spawn")


def test_picklescan_ghsa_torch_utils_bottleneck(tmp_path: Path) -> None:
    # torch.utils.bottleneck.__main__.run_cprofile(code, globs) execs code.
    src = f"__import__('os').system({CMD!r})"
    data = call_pickle("torch.utils.bottleneck.__main__", "run_cprofile", src, ())
    assert_blocked(tmp_path, data, "torch.utils.bottleneck")


def test_picklescan_ghsa_torch_inductor_codecache(tmp_path: Path) -> None:
    # torch._inductor.codecache loaders import/compile generated source from disk.
    data = call_pickle("torch._inductor.codecache", "PyCodeCache.load_by_key_path", "k", "/tmp/x")
    assert_blocked(tmp_path, data, "torch._inductor.codecache")


def test_picklescan_ghsa_posixsubprocess_fork_exec(tmp_path: Path) -> None:
    # _posixsubprocess.fork_exec: the C primitive under subprocess.
    data = call_pickle("_posixsubprocess", "fork_exec", ("echo",), ("/bin/echo",))
    assert_blocked(tmp_path, data, "fork_exec")


def test_picklescan_ghsa_runpy_run_code(tmp_path: Path) -> None:
    # runpy._run_code(code, globals) execs code.
    src = f"__import__('os').system({CMD!r})"
    assert_blocked(tmp_path, call_pickle("runpy", "_run_code", src, None), "runpy._run_code")


def test_picklescan_ghsa_venv_create(tmp_path: Path) -> None:
    # venv.create(dir, with_pip=True) writes a tree and runs ensurepip in a subprocess.
    data = call_pickle("venv", "create", "/tmp/supplychain-sample-venv", False, False, False, True)
    assert_blocked(tmp_path, data, "venv.create")


def test_picklescan_ghsa_logging_config_listen(tmp_path: Path) -> None:
    # logging.config.listen() starts a socket server that evaluates received configs.
    assert_blocked(tmp_path, call_pickle("logging.config", "listen", 0), "logging.config")


def test_picklescan_ghsa_logging_config_fileconfig(tmp_path: Path) -> None:
    # logging.config.fileConfig evals class/args strings from the file it reads.
    data = call_pickle("logging.config", "fileConfig", "/tmp/x.ini")
    assert_blocked(tmp_path, data, "logging.config")


@pytest.mark.parametrize(("module", "cls"), [("zipfile", "ZipFile"), ("tarfile", "TarFile")])
def test_picklescan_ghsa_archive_extractall(tmp_path: Path, module: str, cls: str) -> None:
    # zipfile/tarfile extractall: writes attacker paths (path traversal) when unpickled.
    b = PickleBuilder(4).stack_global(module, f"{cls}.extractall").mark()
    b.stack_global(module, cls).mark().str("/tmp/evil.archive").tuple().reduce()
    b.str("/").tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), module)


def test_picklescan_ghsa_numpy_f2py_crackfortran_eval(tmp_path: Path) -> None:
    # numpy.f2py.crackfortran.myeval evals its argument.
    src = f"__import__('os').system({CMD!r})"
    data = call_pickle("numpy.f2py.crackfortran", "myeval", src)
    assert_blocked(tmp_path, data, "numpy.f2py")


def test_picklescan_ghsa_ctypes_cdll(tmp_path: Path) -> None:
    # ctypes.CDLL loads and initialises a native library from a path.
    assert_blocked(tmp_path, call_pickle("ctypes", "CDLL", "/tmp/x.so"), "ctypes.CDLL")


# --- THREATS.md §1: nullifAI, modelscan issues, Hide-and-Seek ------------------------------


def test_nullifai_payload_then_broken_stream(tmp_path: Path) -> None:
    # ReversingLabs nullifAI (Feb 2025): payload first, the stream broken right after it.
    payload = bytes(PickleBuilder(2).call("os", "system", CMD, stack=False))
    assert_blocked(tmp_path, payload + b"\x00garbage-not-a-pickle", "os.system")


def test_nullifai_7z_container(tmp_path: Path) -> None:
    # nullifAI: the PyTorch archive was stored as 7z instead of zip.
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(call_pickle("os", "system", CMD), "archive/data.pkl")
    assert_blocked(tmp_path, buf.getvalue(), "os.system", name="model.7z")


@pytest.mark.parametrize(
    ("module", "name", "args", "shown"),
    [
        ("torch.utils.collect_env", "run", (CMD,), "torch.utils.collect_env"),
        ("multiprocessing.util", "spawnv_passfds", ("/bin/echo", ("echo",), ()), "multiprocessing"),
        (
            "mlflow.utils.process",
            "_exec_cmd",
            (("echo", "supplychain-sample"),),
            "mlflow",
        ),
        ("pandas", "read_csv", ("http://127.0.0.1:9/x.csv",), "pandas.read_csv"),
    ],
)
def test_modelscan_338_real_hf_samples(
    tmp_path: Path, module: str, name: str, args: tuple[object, ...], shown: str
) -> None:
    # https://github.com/protectai/modelscan/issues/338
    assert_blocked(tmp_path, call_pickle(module, name, *args), shown)


def test_modelscan_267_nested_pickle_loads(tmp_path: Path) -> None:
    # https://github.com/protectai/modelscan/issues/267: the payload hides in a nested pickle.
    inner = call_pickle("os", "system", CMD)
    b = PickleBuilder(4).stack_global("pickle", "loads").bytes_(inner).tuple1().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "pickle.loads")


def test_modelscan_267_nested_marshal_loads(tmp_path: Path) -> None:
    # The same class through marshal: a code object rebuilt from bytes.
    b = PickleBuilder(4).stack_global("marshal", "loads").bytes_(b"\xe3" + bytes(40))
    assert_blocked(tmp_path, bytes(b.tuple1().reduce().stop()), "marshal.loads")


def test_hide_and_seek_eop_payload_in_exception_args(tmp_path: Path) -> None:
    # arXiv 2508.19774 (Exception-Oriented Programming): the call sits in an exception's args.
    b = PickleBuilder(4).stack_global("builtins", "ValueError").mark()
    b.call("os", "system", CMD).tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "os.system")


def test_classic_protocol0_os_system(tmp_path: Path) -> None:
    # The oldest published shape (cos\nsystem\n...): JFrog's HF findings, baller423.
    assert_blocked(tmp_path, global0("os", "system", CMD), "os.system")


def test_torch_serialization_reexport_of_os(tmp_path: Path) -> None:
    # picklescan advisories: a dangerous module reached as an attribute of an allowed-looking one.
    data = call_pickle("torch.serialization", "os.system", CMD)
    assert_blocked(tmp_path, data, "os.system")


def test_functools_partial_wrapping_system(tmp_path: Path) -> None:
    # fickling/picklescan: partial(os.system, cmd)() hides the call behind a wrapper.
    b = PickleBuilder(4).stack_global("functools", "partial").mark()
    b.stack_global("os", "system").str(CMD).tuple().reduce().empty_tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "os.system")


def test_zip_crc_helper_is_consistent() -> None:
    # Guard for the CRC test above: the untouched archive really has a non-zero CRC.
    data = _torch_zip(b"x")
    local = data.index(b"PK\x03\x04")
    assert struct.unpack_from("<I", data, local + 14)[0] == zlib.crc32(b"x")


# --- import-by-name helpers, planted __setstate__, nested loaders ----------------------------


@pytest.mark.parametrize(
    ("module", "name", "arg"),
    [
        ("pydoc", "locate", "os.system"),
        ("importlib", "import_module", "os"),
        ("torch._utils", "_import_dotted_name", "os.system"),
        ("builtins", "__import__", "os"),
    ],
)
def test_import_by_name_helpers_then_call(tmp_path: Path, module: str, name: str, arg: str) -> None:
    # picklescan/fickling advisories: a helper resolves a dangerous callable from a string, so
    # no dangerous GLOBAL appears; the result is then called. torch._utils._import_dotted_name
    # is on the derived list (tools/derive_denylist.py), not the hand list.
    b = PickleBuilder(4).call(module, name, arg).mark().str(CMD).tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), f"{module}.{name}")


def test_build_planted_setstate_runs_system(tmp_path: Path) -> None:
    # fickling/picklescan: BUILD with slot state plants __setstate__ = os.system on an object,
    # a second BUILD then calls it with the command as the "state".
    b = PickleBuilder(4).stack_global("copyreg", "_reconstructor").mark()
    b.stack_global("argparse", "Namespace").stack_global("builtins", "object").none()
    b.tuple().reduce()
    b.none().empty_dict().str("__setstate__").stack_global("os", "system").setitem()
    b.tuple2().build().str(CMD).build().stop()
    assert_blocked(tmp_path, bytes(b), "os.system")


def test_sys_modules_walk_to_os(tmp_path: Path) -> None:
    # builtins.getattr over sys.modules["os"]: the module object never appears as a GLOBAL.
    b = PickleBuilder(4).stack_global("builtins", "getattr").mark()
    b.stack_global("sys", "modules").str("get").tuple().reduce()
    b.mark().str("os").tuple().reduce().stop()
    assert_blocked(tmp_path, bytes(b), "sys.modules")


def test_nested_torch_storage_load_from_bytes(tmp_path: Path) -> None:
    # modelscan#267 class through torch: _load_from_bytes(b) is torch.load(BytesIO(b)).
    inner = call_pickle("os", "system", CMD)
    b = PickleBuilder(4).stack_global("torch.storage", "_load_from_bytes").bytes_(inner)
    assert_blocked(tmp_path, bytes(b.tuple1().reduce().stop()), "os.system")


def test_derived_gadget_pipes_template_copy(tmp_path: Path) -> None:
    # Found by tools/derive_denylist.py (not a published advisory): pipes.Template.copy runs
    # a shell pipeline built from the template's steps.
    data = instance_call("pipes", "Template", "copy", "/tmp/in", "/tmp/out")
    assert_blocked(tmp_path, data, "pipes.Template")


def test_derived_gadget_optparse_values_read_file(tmp_path: Path) -> None:
    # Found by tools/derive_denylist.py: optparse.Values.read_file execs a Python file.
    data = instance_call("optparse", "Values", "read_file", "/tmp/x.py")
    assert_blocked(tmp_path, data, "optparse.Values.read_file")
