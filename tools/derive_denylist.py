"""Derive denylist candidates from library source: which callables reach a dangerous sink.

Why: a hand-kept denylist only holds the gadgets someone remembered (picklescan's history is a
stream of advisories for names nobody had listed). This script reads the *source text* of the
standard library and of the ML libraries a pickle may name, builds a call graph with ``ast`` and
lists the callables a ``REDUCE``/``INST``/``OBJ``/``BUILD`` can trigger whose bodies reach process
creation, code execution, imports, file or network I/O, native code or deserialisation. It never
imports or runs the analysed code: files are located on disk (``importlib.util.find_spec`` of a
top-level name does not execute it) and parsed.

Selection rule (``docs/denylist.md``): roots are module-level functions, classes (through
``__init__``/``__new__``/``__setstate__``, what constructing or ``BUILD`` runs) and methods of
public classes; a root is a candidate when its body reaches a sink directly or through at most
``MAX_DEPTH`` calls resolved in the analysed code. Names already covered by the hand-kept list, or
allowlisted (``ALLOW_EXACT``, and ``ALLOW_MODULES`` namespaces for classes), and the reviewed
``EXCLUDE`` entries are dropped. What is left is written into ``scanners/denylist_derived.py``.

Usage::

    python tools/derive_denylist.py            # regenerate the sections installed here
    python tools/derive_denylist.py --check    # regenerate and diff; exit 1 when stale
    python tools/derive_denylist.py --list stdlib   # print one section's entries

Sections whose source version here differs from the committed one are kept verbatim (and
reported) rather than rewritten with a different library's view.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanners.allowlist import _HAND_DENY, ALLOW_EXACT, ALLOW_MODULES  # noqa: E402
from scanners.pickle_vm import canonical_module  # noqa: E402

TARGET: Final = ROOT / "scanners" / "denylist_derived.py"
MAX_DEPTH: Final = 3
"""Calls followed from a root before a sink must be reached (0 = the root's own body)."""

# ---------------------------------------------------------------------------------------------
# Sinks: a resolved call target (canonical dotted name) matching one of these reaches a category.
# ``exact`` entries match the name itself, ``prefix`` entries the name and everything below it.

SINK_EXACT: Final[dict[str, str]] = {
    # process creation
    **{
        f"os.{n}": "process"
        for n in (
            "system",
            "popen",
            "fork",
            "forkpty",
            "startfile",
            "posix_spawn",
            "posix_spawnp",
            "execl",
            "execle",
            "execlp",
            "execlpe",
            "execv",
            "execve",
            "execvp",
            "execvpe",
            "spawnl",
            "spawnle",
            "spawnlp",
            "spawnlpe",
            "spawnv",
            "spawnve",
            "spawnvp",
            "spawnvpe",
            "_spawnvef",
            "_execvpe",
        )
    },
    "pty.spawn": "process",
    "pty.fork": "process",
    "_posixsubprocess.fork_exec": "process",
    "asyncio.create_subprocess_exec": "process",
    "asyncio.create_subprocess_shell": "process",
    "multiprocessing.util.spawnv_passfds": "process",
    "webbrowser.open": "process",
    # code execution and compilation
    "builtins.eval": "code",
    "builtins.exec": "code",
    "builtins.compile": "compile",
    "builtins.breakpoint": "code",
    "types.FunctionType": "code",
    "types.CodeType": "code",
    "code.InteractiveInterpreter.runsource": "code",
    "code.InteractiveInterpreter.runcode": "code",
    "code.interact": "code",
    "codeop.compile_command": "compile",
    # imports
    "builtins.__import__": "import",
    "importlib.import_module": "import",
    "importlib.__import__": "import",
    "importlib.reload": "import",
    "importlib.util.spec_from_file_location": "import",
    "importlib.util.module_from_spec": "import",
    "importlib.machinery.SourceFileLoader": "import",
    "importlib.machinery.SourcelessFileLoader": "import",
    "importlib.machinery.ExtensionFileLoader": "import",
    "pkgutil.resolve_name": "import",
    "zipimport.zipimporter": "import",
    # file I/O (writes, deletes, opens by path)
    "builtins.open": "file",
    "io.open": "file",
    "io.FileIO": "file",
    "io.open_code": "file",
    "_io.open": "file",
    "_io.FileIO": "file",
    "os.open": "file",
    "os.remove": "file",
    "os.unlink": "file",
    "os.rmdir": "file",
    "os.removedirs": "file",
    "os.rename": "file",
    "os.renames": "file",
    "os.replace": "file",
    "os.mkdir": "file",
    "os.makedirs": "file",
    "os.chmod": "file",
    "os.chown": "file",
    "os.truncate": "file",
    "os.symlink": "file",
    "os.link": "file",
    "os.write": "file",
    "tarfile.open": "file",
    "zipfile.ZipFile": "file",
    "shelve.open": "deserialise",
    "dbm.open": "file",
    "tempfile.mkstemp": "file",
    "tempfile.mkdtemp": "file",
    "tempfile.NamedTemporaryFile": "file",
    "sqlite3.connect": "file",
    "mmap.mmap": "file",
    **{
        f"shutil.{n}": "file"
        for n in (
            "rmtree",
            "move",
            "copy",
            "copy2",
            "copyfile",
            "copytree",
            "copyfileobj",
            "chown",
            "make_archive",
            "unpack_archive",
        )
    },
    # network
    "urllib.request.urlopen": "network",
    "urllib.request.urlretrieve": "network",
    "urllib.request.build_opener": "network",
    "urllib.request.Request": "network",
    "http.client.HTTPConnection": "network",
    "http.client.HTTPSConnection": "network",
    "ftplib.FTP": "network",
    "ftplib.FTP_TLS": "network",
    "smtplib.SMTP": "network",
    "smtplib.SMTP_SSL": "network",
    "imaplib.IMAP4": "network",
    "poplib.POP3": "network",
    "telnetlib.Telnet": "network",
    "xmlrpc.client.ServerProxy": "network",
    "ssl.create_connection": "network",
    # deserialisation of code-bearing formats
    "pickle.load": "deserialise",
    "pickle.loads": "deserialise",
    "pickle.Unpickler": "deserialise",
    "pickle._load": "deserialise",
    "pickle._loads": "deserialise",
    "pickle._Unpickler": "deserialise",
    "_pickle.load": "deserialise",
    "_pickle.loads": "deserialise",
    "_pickle.Unpickler": "deserialise",
    "marshal.load": "deserialise",
    "marshal.loads": "deserialise",
    "numpy.load": "deserialise",
    "joblib.load": "deserialise",
    "torch.load": "deserialise",
    "yaml.load": "deserialise",
    "yaml.unsafe_load": "deserialise",
    "yaml.full_load": "deserialise",
}
SINK_PREFIX: Final[dict[str, str]] = {
    "subprocess": "process",
    "runpy": "code",
    # Native code: loading libraries and raw memory access (not sizeof/byref/POINTER).
    **{
        f"ctypes.{n}": "native"
        for n in (
            "CDLL",
            "PyDLL",
            "WinDLL",
            "OleDLL",
            "cdll",
            "pydll",
            "windll",
            "oledll",
            "LibraryLoader",
            "memmove",
            "memset",
            "string_at",
            "wstring_at",
            "cast",
            "CFUNCTYPE",
            "PYFUNCTYPE",
            "pythonapi",
        )
    },
    "_ctypes.dlopen": "native",
    "ctypes.dlopen": "native",
    "socket": "network",
    "_socket": "network",
    "requests": "network",
    "urllib3": "network",
    "httpx": "network",
    "dill": "deserialise",
    "cloudpickle": "deserialise",
}
# Module aliases the source uses for the same objects (``posix.system`` is ``os.system``).
EXTRA_ALIASES: Final[dict[str, str]] = {"posix": "os", "nt": "os", "_io": "io", "_pickle": "pickle"}

# ---------------------------------------------------------------------------------------------
# Sections. ``checked_in_ci`` says whether CI (``.[test]`` extras) has the sources installed.


@dataclass(frozen=True, slots=True)
class Section:
    """A group of top-level packages derived and checked together."""

    name: str
    packages: tuple[str, ...]
    checked_in_ci: bool
    title: str


SECTIONS: Final[tuple[Section, ...]] = (
    Section("stdlib", (), True, "CPython standard library"),
    Section("ml", ("numpy", "sklearn", "joblib"), True, "NumPy, scikit-learn, joblib"),
    Section("ml_extra", ("torch", "transformers"), False, "PyTorch, transformers"),
)
DIST_NAMES: Final[dict[str, str]] = {"sklearn": "scikit-learn"}

# Source trees never walked: test suites, vendored copies, demo scripts, GUI/REPL tooling that
# the hand list denies wholesale (walking them only costs time).
SKIP_PARTS: Final[frozenset[str]] = frozenset(
    {
        "test",
        "tests",
        "testing",
        "_testing",
        "__pycache__",
        "site-packages",
        "dist-packages",
        "_examples",
        "_build_utils",
    }
)
SKIP_MODULE_PREFIXES: Final[tuple[str, ...]] = (
    "idlelib",
    "lib2to3",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "distutils",
    "pydoc_data",
    "venv",
    "encodings",
    "unittest",
    "torch.testing",
    "torch.utils.benchmark",
    "torch._vendor",
    "torch.include",
    "numpy.f2py",
    "numpy.distutils",
    "sklearn.externals",
    "joblib.externals",
)

# ---------------------------------------------------------------------------------------------
# Review. Candidates a human looked at and decided not to deny, with the reason. Keep each
# reason specific: "would false-alarm" must name what real artifact reconstructs it.

EXCLUDE: Final[dict[str, str]] = {
    "ast.parse": "compile(..., PyCF_ONLY_AST) builds a tree, runs nothing",
    "typing.ForwardRef": "compiles an annotation in eval mode without running it; ForwardRef "
    "instances are pickled inside annotated objects",
    "typing.NamedTuple": "namedtuple's eval of a lambda over validated identifiers",
    "typing.NamedTupleMeta": "namedtuple's eval of a lambda over validated identifiers",
    "typing._make_nmtuple": "namedtuple's eval of a lambda over validated identifiers",
}
EXCLUDE_PREFIXES: Final[dict[str, str]] = {
    "dis": "compiles to disassemble, runs nothing",
}


# ---------------------------------------------------------------------------------------------
# Parsing.


@dataclass(slots=True)
class Func:
    """What one function body does: sinks it calls itself, and callees to follow."""

    sinks: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """Sink name -> (category, whether any call of it passes a non-literal argument)."""
    calls: dict[str, bool] = field(default_factory=dict)
    """Callee name -> whether any call of it passes a non-literal argument."""
    self_calls: dict[str, bool] = field(default_factory=dict)
    """``self.x(...)`` calls by attribute name: resolved against the instance's own class at
    walk time (virtual dispatch: a base ``__init__`` calling ``self.open()`` runs the
    subclass's ``open``)."""


@dataclass(slots=True)
class ClassInfo:
    """Methods by name and resolved base classes (for ``self.x`` and inherited ``__init__``)."""

    methods: dict[str, str] = field(default_factory=dict)
    bases: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Graph:
    """The whole analysed code: functions by qualified name, classes, and the roots."""

    funcs: dict[str, Func] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    """Root qualified name -> section name."""


BUILTIN_NAMES: Final = frozenset({"eval", "exec", "compile", "__import__", "open", "breakpoint"})
ROOT_METHODS: Final = ("__init__", "__new__", "__setstate__")


def canon(name: str) -> str:
    """Canonical dotted name (module aliases resolved) so sinks match whatever spelling."""
    head, _, rest = name.partition(".")
    if head in EXTRA_ALIASES:
        name = EXTRA_ALIASES[head] + ("." + rest if rest else "")
    return canonical_module(name)


def sink_of(name: str) -> str | None:
    """The sink category reached by calling ``name``, if any."""
    if name in SINK_EXACT:
        return SINK_EXACT[name]
    probe = name
    while True:
        if probe in SINK_PREFIX:
            return SINK_PREFIX[probe]
        cut = probe.rfind(".")
        if cut < 0:
            return None
        probe = probe[:cut]


def _resolve_relative(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    parts = module.split(".")
    if not is_pkg:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    if target:
        return f"{base}.{target}" if base else target
    return base


class ModuleReader:
    """Collects one module's imports, definitions and per-function summaries."""

    def __init__(self, module: str, is_pkg: bool, tree: ast.Module, graph: Graph) -> None:
        self.module = module
        self.is_pkg = is_pkg
        self.tree = tree
        self.graph = graph
        self.names: dict[str, str] = {}
        self.shadowed: set[str] = set()
        self.bases: list[str] = []
        """Resolved bases of the class being read (for ``super()``)."""
        self.instances: dict[str, str] = {}
        """Local name -> class it was constructed from, inside the function being summarised."""

    def read(self, section: str) -> None:
        """Fill the graph with this module's functions, classes and roots."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.names[a.asname] = a.name
                    else:
                        head = a.name.split(".")[0]
                        self.names[head] = head
            elif isinstance(node, ast.ImportFrom):
                src = (
                    _resolve_relative(self.module, self.is_pkg, node.level, node.module)
                    if node.level
                    else (node.module or "")
                )
                for a in node.names:
                    if a.name != "*":
                        self.names[a.asname or a.name] = f"{src}.{a.name}"
        for stmt in self.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.names[stmt.name] = f"{self.module}.{stmt.name}"
            elif isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and t.id in BUILTIN_NAMES:
                        self.shadowed.add(t.id)
        for stmt in self.tree.body:
            # ``dictConfigClass = DictConfigurator``: a module-level alias of a resolved name.
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Name | ast.Attribute)
                and stmt.targets[0].id not in self.names
            ):
                alias = self.resolve(stmt.value, None)
                if alias is not None:
                    self.names[stmt.targets[0].id] = alias
        for stmt in self.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                qual = f"{self.module}.{stmt.name}"
                self.graph.funcs[qual] = self.summarise(stmt, None)
                self.graph.roots.setdefault(qual, section)
            elif isinstance(stmt, ast.ClassDef):
                self.read_class(stmt, section)

    def read_class(self, node: ast.ClassDef, section: str) -> None:
        """Record a class: its methods, bases; the class and public methods become roots."""
        qual = f"{self.module}.{node.name}"
        info = ClassInfo()
        for b in node.bases:
            resolved = self.resolve(b, None)
            if resolved:
                info.bases.append(resolved)
        self.bases = info.bases
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                mqual = f"{qual}.{stmt.name}"
                info.methods[stmt.name] = mqual
                self.graph.funcs[mqual] = self.summarise(stmt, qual)
        self.bases = []
        self.graph.classes[qual] = info
        self.graph.roots.setdefault(qual, section)
        if not node.name.startswith("_"):
            for name, mqual in info.methods.items():
                if not name.startswith("_"):
                    self.graph.roots.setdefault(mqual, section)

    def resolve(self, expr: ast.expr, cls: str | None) -> str | None:
        """The dotted name an expression refers to, when it is statically known."""
        if isinstance(expr, ast.Name):
            if expr.id in self.instances:
                return None  # a local value shadows the module-level name
            if expr.id in self.names:
                return canon(self.names[expr.id])
            if expr.id in BUILTIN_NAMES and expr.id not in self.shadowed:
                return f"builtins.{expr.id}"
            return None
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id in ("self", "cls") and cls:
                return f"{cls}.{expr.attr}"
            if isinstance(expr.value, ast.Name) and expr.value.id in self.instances:
                # ``x = Cls(...); x.method()``
                return f"{self.instances[expr.value.id]}.{expr.attr}"
            if (
                isinstance(expr.value, ast.Call)
                and isinstance(expr.value.func, ast.Name)
                and expr.value.func.id == "super"
            ):
                # ``super().x()``: the first resolved base's ``x`` (single inheritance case).
                return f"{self.bases[0]}.{expr.attr}" if self.bases else None
            if isinstance(expr.value, ast.Call):
                # ``Cls(...).method()``: the method of the constructed class.
                made = self.resolve(expr.value.func, cls)
                return f"{made}.{expr.attr}" if made else None
            base = self.resolve(expr.value, cls)
            return canon(f"{base}.{expr.attr}") if base else None
        return None

    def summarise(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, cls: str | None) -> Func:
        """Direct sinks and resolved callees of one function body (nested defs included)."""
        out = Func()
        self.instances = {}
        for node in ast.walk(fn):
            made: tuple[ast.expr, ast.expr] | None = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                made = (node.targets[0], node.value)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                made = (node.optional_vars, node.context_expr)
            if made and isinstance(made[0], ast.Name):
                value = made[1]
                target = self.resolve(value.func, cls) if isinstance(value, ast.Call) else None
                if target is not None:
                    self.instances[made[0].id] = target
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call):
                continue
            target = self.resolve(node.func, cls)
            if target is None:
                continue
            kind = sink_of(target)
            # ``self.x()`` passes ``self``, whose state a BUILD may have set; ``Cls(a).x()`` and
            # ``obj = Cls(a); obj.x()`` pass the constructed object.
            fed = not _literal_call(node) or (
                isinstance(node.func, ast.Attribute)
                and (
                    isinstance(node.func.value, ast.Call)
                    or (
                        isinstance(node.func.value, ast.Name)
                        and (
                            node.func.value.id in ("self", "cls")
                            or node.func.value.id in self.instances
                        )
                    )
                )
            )
            if kind is not None:
                prev = out.sinks.get(target, (kind, False))
                out.sinks[target] = (kind, prev[1] or fed)
            elif (
                cls
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                attr = node.func.attr
                out.self_calls[attr] = out.self_calls.get(attr, False) or fed
            else:
                out.calls[target] = out.calls.get(target, False) or fed
        return out


def _literal(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in expr.values)
    if isinstance(expr, ast.Tuple | ast.List):
        return all(_literal(e) for e in expr.elts)
    return False


def _literal_call(call: ast.Call) -> bool:
    """True when every argument is a literal: the caller's input cannot steer the call."""
    return all(_literal(a) for a in call.args) and all(_literal(k.value) for k in call.keywords)


# ---------------------------------------------------------------------------------------------
# Walking source trees (paths never leave this section: output is by module name only).


def _module_files(base: Path, prefix: str) -> Iterator[tuple[str, bool, Path]]:
    """(module name, is package, file) for every ``.py`` below ``base``, sorted."""
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if any(p in SKIP_PARTS for p in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        if not parts and not prefix:
            continue
        if any(not p.isidentifier() for p in parts):
            continue
        name = ".".join([prefix, *parts] if prefix else parts)
        if name.startswith(SKIP_MODULE_PREFIXES) and any(
            name == s or name.startswith(s + ".") for s in SKIP_MODULE_PREFIXES
        ):
            continue
        yield name, is_pkg, path


def section_files(section: Section) -> list[tuple[str, bool, Path]]:
    """All module files of one section (empty when its packages are not installed)."""
    if section.name == "stdlib":
        base = Path(sysconfig.get_paths()["stdlib"])
        return [
            f
            for f in _module_files(base, "")
            if f[0].split(".")[0] in sys.stdlib_module_names
            and not f[0].split(".")[-1].startswith("test_")
        ]
    files: list[tuple[str, bool, Path]] = []
    for pkg in section.packages:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return []
        for loc in sorted(spec.submodule_search_locations):
            files.extend(_module_files(Path(loc), pkg))
    return files


def section_version(section: Section) -> str | None:
    """The source version a section is derived from (None: not installed here)."""
    if section.name == "stdlib":
        return f"CPython {sys.version_info.major}.{sys.version_info.minor}"
    got = []
    for pkg in section.packages:
        try:
            dist = DIST_NAMES.get(pkg, pkg)
            got.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            return None
    return ", ".join(got)


# ---------------------------------------------------------------------------------------------
# Reachability and selection.


def _lookup(graph: Graph, name: str, root: bool = False) -> list[str]:
    """Function bodies a call of ``name`` runs: the function, or a class's constructors.

    A root class also counts its ``__setstate__`` (a pickle's BUILD runs it); a class called
    further down only runs ``__init__``/``__new__``.
    """
    if name in graph.funcs:
        return [name]
    if name in graph.classes:
        wanted = ROOT_METHODS if root else ("__init__", "__new__")
        return [m for m in (_method(graph, name, r) for r in wanted) if m]
    # ``self.x`` on a class that inherits ``x``.
    cls, _, attr = name.rpartition(".")
    if cls in graph.classes:
        m = _method(graph, cls, attr)
        return [m] if m else []
    return []


def _method(graph: Graph, cls: str, attr: str, seen: frozenset[str] = frozenset()) -> str | None:
    info = graph.classes.get(cls)
    if info is None or cls in seen:
        return None
    if attr in info.methods:
        return info.methods[attr]
    for base in info.bases:
        got = _method(graph, base, attr, seen | {cls})
        if got:
            return got
    return None


STEERED: Final = frozenset({"code", "compile", "import", "deserialise", "native", "network"})
"""Categories that only count when the root's input can reach the sink's arguments: importing a
fixed module name or compiling a constant string is not a gadget, running a program is."""


def _owner(graph: Graph, body: str) -> str | None:
    owner = body.rpartition(".")[0]
    return owner if owner in graph.classes else None


def _keep(graph: Graph, dispatch: str | None, owner: str | None) -> str | None:
    """The instance class for a callee body: kept when the callee is a method of an ancestor."""
    if dispatch is None or owner is None:
        return owner
    todo, seen = [dispatch], set()
    while todo:
        cls = todo.pop()
        if cls == owner:
            return dispatch
        if cls in seen or cls not in graph.classes:
            continue
        seen.add(cls)
        todo.extend(graph.classes[cls].bases)
    return owner


def reach(graph: Graph, root: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Breadth-first: every (category, sink, path) reached from ``root`` within MAX_DEPTH.

    Ordered by depth, then severity, then name, so the first entry the selection rule accepts
    is deterministic. A call whose arguments are all literals cuts the input off: below it only
    the sinks outside ``STEERED`` count. ``self.x()`` is looked up on the class of the instance
    being built or used (the root class, the class whose method is the root, or the class a
    call constructs), so overrides in subclasses are followed.
    """
    order = ("process", "code", "import", "native", "deserialise", "network", "file", "compile")
    start_cls = root if root in graph.classes else _owner(graph, root)
    frontier: list[tuple[str, tuple[str, ...], bool, str | None]] = [
        (b, (), True, start_cls) for b in _lookup(graph, root, root=True)
    ]
    seen: set[tuple[str, bool, str | None]] = set()
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for _depth in range(MAX_DEPTH + 1):
        found: list[tuple[int, str, tuple[str, ...], str]] = []
        nxt: list[tuple[str, tuple[str, ...], bool, str | None]] = []
        for body, path, steered, self_cls in frontier:
            if (body, steered, self_cls) in seen:
                continue
            seen.add((body, steered, self_cls))
            func = graph.funcs[body]
            for sink, (kind, fed) in sorted(func.sinks.items()):
                if kind in STEERED and not (steered and fed):
                    continue
                found.append((order.index(kind), sink, path, kind))
            dispatch = self_cls or _owner(graph, body)
            for callee, fed in sorted(func.calls.items()):
                nxt.extend(
                    # ``Base.__init__(self)`` / ``super().__init__()`` keep the instance's class.
                    (b, (*path, b), steered and fed, _keep(graph, dispatch, _owner(graph, b)))
                    for b in _lookup(graph, callee)
                )
            for attr, fed in sorted(func.self_calls.items()):
                m = _method(graph, dispatch, attr) if dispatch else None
                if m is not None:
                    nxt.append((m, (*path, m), steered and fed, dispatch))
        out.extend((kind, sink, path) for _, sink, path, kind in sorted(found))
        frontier = nxt
    return out


def _covered(name: str, deny: Iterable[str]) -> bool:
    deny = frozenset(deny)
    probe = name
    while True:
        if probe in deny:
            return True
        cut = probe.rfind(".")
        if cut < 0:
            return False
        probe = probe[:cut]


def _allow_modules_hit(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in ALLOW_MODULES)


def excluded(name: str, is_class: bool) -> str | None:
    """Why a candidate is not denied (None: it is)."""
    if name in EXCLUDE:
        return EXCLUDE[name]
    for prefix, why in EXCLUDE_PREFIXES.items():
        if name == prefix or name.startswith(prefix + "."):
            return why
    if _covered(name, _HAND_DENY):
        return "covered by the hand-kept list"
    if name in ALLOW_EXACT or any(a.startswith(name + ".") for a in ALLOW_EXACT):
        return "allowlisted (ALLOW_EXACT wins)"
    if any(name.startswith(a + ".") for a in ALLOW_EXACT):
        return "attribute of an allowlisted class"
    if is_class and _allow_modules_hit(name):
        return "class in an allowlisted namespace (real pickles reconstruct these)"
    parts = name.split(".")
    if any(p.startswith("test") or p == "conftest" for p in parts):
        return "test helper"
    return None


def _read(graph: Graph, section: Section) -> None:
    for module, is_pkg, path in section_files(section):
        try:
            tree = ast.parse(path.read_bytes(), filename=module)
        except (SyntaxError, ValueError):
            continue
        ModuleReader(canon(module), is_pkg, tree, graph).read(section.name)


def derive(sections: Iterable[Section]) -> dict[str, dict[str, str]]:
    """Section name -> {qualified name: comment} for the given (installed) sections.

    Each section is analysed over its own sources plus the stdlib (library code reaches sinks
    through it) and nothing else, so a section's result does not depend on which other
    sections are installed or requested.
    """
    stdlib = Graph()
    _read(stdlib, next(s for s in SECTIONS if s.name == "stdlib"))
    out: dict[str, dict[str, str]] = {}
    for section in sections:
        if section.name == "stdlib":
            graph = stdlib
        else:
            graph = Graph(funcs=dict(stdlib.funcs), classes=dict(stdlib.classes))
            _read(graph, section)
        for root, section_name in sorted(graph.roots.items()):
            if section_name != section.name:
                continue
            got = next((r for r in reach(graph, root) if _selected(root, graph, r)), None)
            if got is None or excluded(root, root in graph.classes) is not None:
                continue
            kind, sink, chain = got
            via = f" via {chain[-1]}" if chain else ""
            out.setdefault(section.name, {})[root] = f"{kind}: {sink}{via}"
    return out


def _selected(root: str, graph: Graph, got: tuple[str, str, tuple[str, ...]]) -> bool:
    """The size rule: keep the list reviewable (hundreds of names, not tens of thousands).

    * Plain file I/O counts only when the root's own body opens/writes (depth 0), and not for
      methods: nearly every library function ends up reading some file a few calls down.
    * Network counts at depth <= 1.
    * Methods count only for process/code/import/native/deserialise sinks reached in their own
      body or one call down (``bdb.Bdb.run``, ``code.InteractiveInterpreter.runsource``).
    * ``compile`` counts only at depth 0 (compiling is not running).
    * Names in private modules (``_foo``) keep only direct (depth 0) hits.
    * Dunder leaves other than the constructor/``__setstate__`` are not roots.
    """
    kind, _sink, path = got
    owner, _, leaf = root.rpartition(".")
    is_method = owner in graph.classes
    if kind == "file" and (path or is_method):
        return False
    if kind == "network" and len(path) > 1:
        return False
    if is_method and (kind in ("file", "network", "compile") or len(path) > 1):
        return False
    if kind == "compile" and path:
        return False
    module_parts = (owner if not is_method else owner.rpartition(".")[0]).split(".")
    if any(p.startswith("_") and not p.startswith("__") for p in module_parts) and path:
        return False
    return not leaf.startswith("__") or leaf in ROOT_METHODS


# ---------------------------------------------------------------------------------------------
# Rendering and the committed module.

HEADER: Final = '''"""Denylist entries derived from evidence: callables whose bodies reach a sink.

GENERATED by ``tools/derive_denylist.py`` from the source text of the libraries named in each
section (never imported or run), then reviewed; do not edit by hand: change the script's sinks,
selection rule or ``EXCLUDE`` review list and regenerate. ``scanners.allowlist`` unions
``DERIVED_DENY`` into ``DENY``. Each entry's comment is the sink category, the sink reached and
(``via``) the function that calls it. Selection rule and review: ``docs/denylist.md``.

Which sections are checked where (``python tools/derive_denylist.py --check``, run by
``tests/test_denylist_derived.py``): a section is regenerated and diffed wherever its recorded
source version is installed; CI installs the stdlib and ``ml`` sources (project deps and
``.[test]``), the ``ml_extra`` section (torch, transformers) is checked only where those are
installed and is otherwise kept verbatim.
"""

from __future__ import annotations

from typing import Final
'''

_BLOCK = re.compile(
    r"^# --- section (?P<name>\w+): (?P<title>[^\n]*)\n"
    r"# source: (?P<version>[^\n]*)\n"
    r"(?P<body>.*?)^# --- end (?P=name)\n",
    re.M | re.S,
)


def render_section(section: Section, version: str, entries: dict[str, str]) -> str:
    """One section block, formatted as ``ruff format`` leaves it (lines within 100 chars)."""
    var = f"_{section.name.upper()}"
    lines = [
        f"# --- section {section.name}: {section.title}",
        f"# source: {version}",
    ]
    if not entries:
        lines.append(f"{var}: Final[frozenset[str]] = frozenset()")
    else:
        lines.append(f"{var}: Final[frozenset[str]] = frozenset(")
        lines.append("    {")
        for name in sorted(entries):
            item = f'        "{name}",'
            comment = entries[name]
            room = 100 - len(item) - 4
            if room < 24:
                # Long names: the comment goes on its own line above the entry.
                lines.append(f"        # {comment}"[:100])
                lines.append(item)
                continue
            if room < len(comment):
                comment = comment[: room - 1] + "…"
            lines.append(f"{item}  # {comment}")
        lines.append("    }")
        lines.append(")")
    lines.append(f"# --- end {section.name}")
    return "\n".join(lines) + "\n"


def render(blocks: dict[str, str]) -> str:
    """The whole module text from the section blocks (in SECTIONS order)."""
    union = " | ".join(f"_{s.name.upper()}" for s in SECTIONS)
    body = "\n\n".join(blocks[s.name] for s in SECTIONS)
    return (
        f"{HEADER}\n{body}\n"
        f"DERIVED_DENY: Final[frozenset[str]] = {union}\n\n"
        '__all__ = ["DERIVED_DENY"]\n'
    )


def committed_blocks(text: str) -> dict[str, tuple[str, str]]:
    """Section name -> (recorded version, block text) from the committed module."""
    return {m["name"]: (m["version"], m.group(0)) for m in _BLOCK.finditer(text)}


def build(committed: str, only: frozenset[str] | None = None) -> tuple[str, list[str]]:
    """Regenerated module text and notes on sections kept verbatim.

    ``only`` limits the regeneration to those sections (the others are kept verbatim): CI checks
    ``stdlib`` and ``ml`` without paying for a torch walk.
    """
    old = committed_blocks(committed)
    notes: list[str] = []
    blocks: dict[str, str] = {}

    def version_of(s: Section) -> str | None:
        return section_version(s) if only is None or s.name in only else None

    todo = [s for s in SECTIONS if version_of(s) is not None]
    derived = derive(todo)
    for s in SECTIONS:
        version = version_of(s)
        recorded = old.get(s.name)
        if version is None:
            if recorded is not None:
                blocks[s.name] = recorded[1]
                notes.append(f"{s.name}: not regenerated here, kept ({recorded[0]})")
            else:
                blocks[s.name] = render_section(s, "not derived yet", {})
                notes.append(f"{s.name}: sources not installed here, left empty")
            continue
        if recorded is not None and recorded[0] != version and recorded[0] != "not derived yet":
            blocks[s.name] = recorded[1]
            notes.append(
                f"{s.name}: derived from {recorded[0]}, installed here {version}: kept, not "
                "checked (regenerate with --force-section to rebase)"
            )
            continue
        blocks[s.name] = render_section(s, version, derived.get(s.name, {}))
    return render(blocks), notes


def main(argv: list[str] | None = None) -> int:
    """Regenerate (default), check (``--check``) or list one section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="diff against the committed module")
    parser.add_argument("--list", metavar="SECTION", help="print a section's derived entries")
    parser.add_argument(
        "--force-section",
        action="append",
        default=[],
        metavar="SECTION",
        help="rewrite this section from the installed sources even if its version changed",
    )
    parser.add_argument(
        "--sections",
        metavar="A,B",
        help=f"regenerate/check only these (of {','.join(s.name for s in SECTIONS)})",
    )
    args = parser.parse_args(argv)
    only = frozenset(args.sections.split(",")) if args.sections else None
    if only is not None and not only <= {s.name for s in SECTIONS}:
        parser.error(f"unknown section in {args.sections}")
    if args.list:
        (section,) = [s for s in SECTIONS if s.name == args.list]
        for name, why in sorted(derive([section]).get(section.name, {}).items()):
            sys.stdout.write(f"{name}  # {why}\n")
        return 0
    committed = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.force_section:
        committed = _drop_blocks(committed, set(args.force_section))
    text, notes = build(committed, only)
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    if args.check:
        if text == committed:
            sys.stderr.write("denylist_derived.py is up to date\n")
            return 0
        import difflib

        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            text.splitlines(keepends=True),
            "committed",
            "regenerated",
        )
        sys.stderr.writelines(diff)
        sys.stderr.write("denylist_derived.py is stale: run python tools/derive_denylist.py\n")
        return 1
    TARGET.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {TARGET.relative_to(ROOT)}\n")
    return 0


def _drop_blocks(text: str, names: set[str]) -> str:
    return _BLOCK.sub(lambda m: "" if m["name"] in names else m.group(0), text)


if __name__ == "__main__":
    raise SystemExit(main())
