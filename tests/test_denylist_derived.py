"""The derived denylist: regenerated from source in CI, never denying what real pickles use.

``tools/derive_denylist.py --check`` regenerates the sections whose sources CI installs (stdlib,
NumPy/scikit-learn/joblib) and diffs them against ``scanners/denylist_derived.py``; the analyser
itself is tested on small synthetic modules so a regression in the call-graph walk shows up as a
named failure rather than as a silently shorter list.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scanners.allowlist import ALLOW_EXACT, DENY, classify
from scanners.denylist_derived import DERIVED_DENY
from supplychain.core.model import Severity
from tools import derive_denylist as dd

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "scanners" / "denylist_derived.py"


def _split(qualname: str) -> tuple[str, str]:
    module, _, name = qualname.rpartition(".")
    return module, name


def test_check_mode_passes_for_the_sections_ci_installs() -> None:
    # The committed list is what the script produces from the installed stdlib/numpy/sklearn/
    # joblib sources: editing either without regenerating fails here.
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "derive_denylist.py"),
            "--check",
            "--sections",
            "stdlib,ml",
        ],
        capture_output=True,
        text=True,
        timeout=600,  # ~7 s of CPU; generous for a loaded CI box
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The stdlib section must really have been compared, not kept verbatim: CI runs the same
    # CPython minor version the section records (regenerate it when CI's Python moves).
    assert "stdlib:" not in proc.stderr, proc.stderr


def test_committed_stdlib_section_records_this_python() -> None:
    text = MODULE.read_text(encoding="utf-8")
    blocks = dd.committed_blocks(text)
    assert blocks["stdlib"][0] == f"CPython {sys.version_info.major}.{sys.version_info.minor}"
    assert set(blocks) == {s.name for s in dd.SECTIONS}


def test_rendering_is_deterministic_and_machine_independent() -> None:
    text = MODULE.read_text(encoding="utf-8")
    assert "/" not in "".join(re.findall(r'^        "([^"]+)",', text, re.M))
    assert str(Path.home()) not in text and sys.prefix not in text
    entries = {"b.f": "process: os.system", "a.g": "code: builtins.exec via a.h"}
    section = dd.SECTIONS[0]
    once = dd.render_section(section, "v", entries)
    assert once == dd.render_section(section, "v", dict(reversed(list(entries.items()))))
    assert once.index('"a.g"') < once.index('"b.f"')


def test_the_list_is_reviewable_in_size() -> None:
    # Hundreds, not tens of thousands (docs/denylist.md: selection rule).
    assert 50 <= len(DERIVED_DENY) <= 1500


@pytest.mark.parametrize("qualname", sorted(ALLOW_EXACT))
def test_no_allowlisted_name_becomes_denied(qualname: str) -> None:
    module, name = _split(qualname)
    assert classify(module, name).allowed, qualname


def test_no_derived_entry_covers_an_allowlisted_name() -> None:
    for entry in DERIVED_DENY:
        assert entry not in ALLOW_EXACT, entry
        assert not any(a.startswith(entry + ".") for a in ALLOW_EXACT), entry


def test_every_derived_entry_is_critical() -> None:
    assert DERIVED_DENY <= DENY
    weak = [
        e for e in sorted(DERIVED_DENY) if classify(*_split(e)).severity is not Severity.CRITICAL
    ]
    assert not weak, weak


def test_derived_gadget_not_in_the_hand_list_is_critical() -> None:
    # Evidence-grown entries: pipes.Template.copy runs a shell pipeline, optparse.Values.read_file
    # execs a file; neither was on the hand-kept list.
    for entry in ("pipes.Template.copy", "optparse.Values.read_file"):
        assert entry in DERIVED_DENY, entry
        assert classify(*_split(entry)).severity is Severity.CRITICAL


# --- the analyser on synthetic sources ------------------------------------------------------


def _derive_source(
    source: str, module: str = "pkg.mod"
) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    graph = dd.Graph()
    dd.ModuleReader(module, False, ast.parse(source), graph).read("stdlib")
    out = {}
    for root in sorted(graph.roots):
        got = dd.reach(graph, root)
        if got:
            out[root] = got[0]
    return out


def test_analyser_follows_calls_within_the_module() -> None:
    got = _derive_source(
        "import subprocess\n"
        "def _run(cmd):\n    return subprocess.check_output(cmd, shell=True)\n"
        "def helper(x):\n    return _run(x)\n"
        "def public(x):\n    return helper(x)\n"
    )
    assert got["pkg.mod.public"] == (
        "process",
        "subprocess.check_output",
        ("pkg.mod.helper", "pkg.mod._run"),
    )


def test_analyser_follows_constructors_and_self_methods() -> None:
    got = _derive_source(
        "import os as _o\n"
        "class Runner:\n"
        "    def __init__(self, cmd):\n        self.cmd = cmd\n        self._go()\n"
        "    def _go(self):\n        _o.system(self.cmd)\n"
    )
    assert got["pkg.mod.Runner"][:2] == ("process", "os.system")


def test_analyser_ignores_literal_imports_but_not_steered_ones() -> None:
    got = _derive_source(
        "import importlib\n"
        "def fixed():\n    return importlib.import_module('json')\n"
        "def steered(name):\n    return importlib.import_module(name)\n"
        "def via_fixed():\n    return steered('json')\n"
    )
    assert "pkg.mod.fixed" not in got
    assert got["pkg.mod.steered"][:2] == ("import", "importlib.import_module")
    assert "pkg.mod.via_fixed" not in got


def test_analyser_resolves_from_imports_and_aliases() -> None:
    got = _derive_source(
        "from posix import system as s\nfrom builtins import exec as e\n"
        "def a(c):\n    s(c)\n"
        "def b(c):\n    e(c)\n"
    )
    assert got["pkg.mod.a"][:2] == ("process", "os.system")
    assert got["pkg.mod.b"][:2] == ("code", "builtins.exec")


def test_analyser_depth_is_bounded() -> None:
    chain = "".join(f"def f{i}(x):\n    return f{i + 1}(x)\n" for i in range(6))
    got = _derive_source("import os\n" + chain + "def f6(x):\n    os.system(x)\n")
    assert "pkg.mod.f6" in got and "pkg.mod.f3" in got
    assert "pkg.mod.f2" not in got  # four calls away: beyond MAX_DEPTH


def test_analyser_counts_setstate_for_a_root_class_only() -> None:
    # BUILD runs a root's __setstate__; constructing a class deeper down does not.
    got = _derive_source(
        "import pickle\n"
        "class Wrapper:\n"
        "    def __init__(self, x):\n        self.x = x\n"
        "    def __setstate__(self, state):\n        self.x = pickle.loads(state)\n"
        "def make(x):\n    return Wrapper(x)\n"
    )
    assert got["pkg.mod.Wrapper"][:2] == ("deserialise", "pickle.loads")
    assert "pkg.mod.make" not in got


def test_analyser_follows_constructed_objects_and_module_aliases() -> None:
    # ``Cls(x).run()``, ``obj = Cls(x); obj.run()`` and ``alias = Cls`` (timeit.timeit,
    # venv.create and logging.config.dictConfig have these shapes).
    got = _derive_source(
        "class Runner:\n"
        "    def __init__(self, src):\n        self.src = src\n"
        "    def run(self):\n        exec(self.src)\n"
        "RunnerAlias = Runner\n"
        "def direct(src):\n    return Runner(src).run()\n"
        "def local(src):\n    r = RunnerAlias(src)\n    r.run()\n"
    )
    assert got["pkg.mod.direct"][:2] == ("code", "builtins.exec")
    assert got["pkg.mod.local"][:2] == ("code", "builtins.exec")


def test_a_shallow_rejected_sink_does_not_hide_a_deeper_one() -> None:
    # venv.create: a file write one call down (not counted) must not mask the subprocess
    # three calls down.
    graph = dd.Graph()
    source = (
        "import subprocess\n"
        "def _write(p):\n    open(p, 'w')\n"
        "def _c(x):\n    subprocess.run(x)\n"
        "def _b(x):\n    _c(x)\n"
        "def create(x):\n    _write(x)\n    _b(x)\n"
    )
    dd.ModuleReader("pkg.mod", False, ast.parse(source), graph).read("stdlib")
    found = dd.reach(graph, "pkg.mod.create")
    picked = next(r for r in found if dd._selected("pkg.mod.create", graph, r))
    assert picked[:2] == ("process", "subprocess.run")


# Published stdlib gadgets (picklescan/modelscan/fickling advisories, THREATS.md §1) that exist
# as Python source in CPython 3.11. The analyser must rediscover them on its own, without the
# hand-kept list. The misses are documented in docs/denylist.md: virtual dispatch, objects
# returned by methods, inherited methods, file sinks in methods, and a classmethod alias.
PUBLISHED_STDLIB_GADGETS = (
    "bdb.Bdb.run bdb.Bdb.runeval bdb.Bdb.runctx cProfile.run cProfile.runctx profile.run "
    "profile.runctx pydoc.pipepager pydoc.tempfilepager timeit.timeit timeit.repeat "
    "code.InteractiveInterpreter.runsource code.InteractiveInterpreter.runcode "
    "code.InteractiveConsole.push code.interact runpy._run_code runpy.run_path runpy.run_module "
    "venv.create logging.config.fileConfig logging.config.listen logging.config.dictConfig "
    "uuid._get_command_stdout imaplib.IMAP4_stream pkgutil.resolve_name pdb.Pdb.run pdb.run "
    "pdb.runeval pdb.runctx trace.Trace.run trace.Trace.runctx "
    "asyncio.unix_events._UnixSubprocessTransport ctypes.CDLL "
    "idlelib.pyshell.ModifiedInterpreter.runsource idlelib.pyshell.ModifiedInterpreter.runcode "
    "lib2to3.pgen2.driver.load_grammar ensurepip._run_pip ensurepip.bootstrap "
    "distutils.spawn.spawn subprocess.run subprocess.Popen subprocess.check_output "
    "subprocess.getoutput pty.spawn shutil.rmtree zipfile.ZipFile.extractall "
    "tarfile.TarFile.extractall tarfile.open webbrowser.open doctest.debug_src "
    "doctest.run_docstring_examples platform._syscmd_ver platform._syscmd_file "
    "multiprocessing.util.spawnv_passfds sysconfig._init_posix"
).split()


def test_analyser_rediscovers_published_stdlib_gadgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dd, "_HAND_DENY", frozenset())
    monkeypatch.setattr(dd, "SKIP_MODULE_PREFIXES", ("encodings", "pydoc_data", "turtledemo"))
    found = dd.derive([dd.SECTIONS[0]])["stdlib"]
    hits = [g for g in PUBLISHED_STDLIB_GADGETS if g in found]
    missed = sorted(set(PUBLISHED_STDLIB_GADGETS) - set(hits))
    assert len(hits) >= 47, missed


def test_analyser_dispatches_self_calls_on_the_instance_class() -> None:
    # imaplib.IMAP4_stream / asyncio.unix_events._UnixSubprocessTransport: the base __init__
    # calls self.open()/self._start(), which only the subclass overrides with a subprocess.
    got = _derive_source(
        "import subprocess\n"
        "class Base:\n"
        "    def __init__(self, cmd):\n        self.cmd = cmd\n        self.open()\n"
        "    def open(self):\n        pass\n"
        "class Stream(Base):\n"
        "    def __init__(self, cmd):\n        Base.__init__(self, cmd)\n"
        "    def open(self):\n        subprocess.Popen(self.cmd, shell=True)\n"
        "class Other(Base):\n"
        "    def __init__(self, cmd):\n        super().__init__(cmd)\n"
        "    def open(self):\n        subprocess.Popen(self.cmd)\n"
    )
    assert "pkg.mod.Base" not in got
    assert got["pkg.mod.Stream"][:2] == ("process", "subprocess.Popen")
    assert got["pkg.mod.Other"][:2] == ("process", "subprocess.Popen")
