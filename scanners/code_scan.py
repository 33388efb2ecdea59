"""Static analysis of Python shipped beside weights (``modeling_*.py``, handlers, TorchScript code).

Loading a model with ``trust_remote_code`` enabled imports these files, so anything at module level
(top-level statements, class bodies, decorators, default arguments) runs merely by loading the
model. The source is parsed with ``ast`` and never imported or executed; names are resolved
through a small symbol table (``import os as o``, ``from os import system as s``, star imports,
``getattr(os, "sys" + "tem")``, ``__import__("os")``), so renaming a call does not hide it.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import enum
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from scanners.base import Artifact, ScanContext
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

MAX_SOURCE_BYTES = 16 * 2**20
"""Largest source parsed, below ``max_header_bytes``: an AST costs ~30x the source in RAM."""
MAX_FOLD_CHARS = 100_000
"""Longest string the constant folder builds (``"a" * 10**9`` must not allocate)."""
MAX_EXEC_DEPTH = 3
"""How many levels of nested exec string payloads are parsed and analysed in turn."""

_REFS = ("https://huggingface.co/docs/transformers/custom_models",)

COD001 = make_rule(
    "COD001",
    "Process execution in model code",
    Severity.HIGH,
    "Python shipped with the model starts processes (os.system, subprocess, pty.spawn…). With "
    "trust_remote_code the file is imported when the model loads, so a call at module level runs "
    "on every machine that loads the model (CRITICAL); inside a function it runs when called.",
    "Do not load the model with trust_remote_code. Review the code, or use a model whose "
    "architecture is built into the library and weights in safetensors.",
    cwe=78,
    references=_REFS,
)
COD002 = make_rule(
    "COD002",
    "Dynamic code execution in model code",
    Severity.HIGH,
    "eval, exec, compile, marshal, ctypes, runpy or reflective access to builtins turn data into "
    "code. Model code has no need for them; they are how payloads are staged and hidden.",
    "Do not load the model with trust_remote_code until the code has been reviewed.",
    cwe=94,
    references=_REFS,
)
COD003 = make_rule(
    "COD003",
    "Obfuscated payload in model code",
    Severity.CRITICAL,
    "Encoded data (base64, hex, rot13, zlib) is decoded and fed into exec/eval/pickle/a shell, or "
    "a large encoded blob decodes to code. Hiding what runs is a strong sign of malice.",
    "Treat the model as malicious; do not load it.",
    cwe=506,
)
COD004 = make_rule(
    "COD004",
    "Network access in model code",
    Severity.MEDIUM,
    "The code opens sockets, makes HTTP requests or contacts a hard-coded address. At import time "
    "this beacons or downloads a second stage; raw sockets and hard-coded IPs are rarely benign.",
    "Check every address the code contacts; block egress when loading untrusted models.",
    cwe=494,
)
COD005 = make_rule(
    "COD005",
    "File-system modification in model code",
    Severity.MEDIUM,
    "The code deletes files, writes files, or touches persistence locations (~/.ssh, /etc, "
    "crontab, shell start-up files, sitecustomize/.pth).",
    "Review what the code writes and where; run untrusted models in a sandbox without a home "
    "directory.",
    cwe=506,
)
COD006 = make_rule(
    "COD006",
    "Credential or environment access in model code",
    Severity.MEDIUM,
    "The code reads secrets (token-like environment variables, the whole environment, SSH keys, "
    "cloud or Hugging Face credential files). Together with network access it is an "
    "exfiltration pattern.",
    "Load untrusted models with an empty environment and no credential files mounted.",
    cwe=526,
)
COD007 = make_rule(
    "COD007",
    "Model code deserializes pickles",
    Severity.LOW,
    "torch.load without weights_only=True, pickle/dill/joblib loads, or numpy allow_pickle run "
    "code embedded in the file they read, so the code's data files are code too.",
    "Scan every file the code loads; prefer weights_only=True and safetensors.",
    cwe=502,
)
COD008 = make_rule(
    "COD008",
    "Dynamic import or reflective attribute access",
    Severity.MEDIUM,
    "A module or attribute name is computed at run time (importlib.import_module(name), "
    "getattr(os, name), sys.modules[name]), which hides what is really called from review.",
    "Review where the name comes from.",
    cwe=470,
)
COD009 = make_rule(
    "COD009",
    "Cannot parse Python source",
    Severity.LOW,
    "The file does not parse as Python (syntax error, invalid encoding, NUL bytes, nesting too "
    "deep). It would also fail to import here, but another interpreter version may accept it and "
    "a broken file can be a decoy, so it was not analysed and is not reported as clean.",
    "Inspect the file by hand.",
    cwe=20,
)
COD010 = make_rule(
    "COD010",
    "Unusual source encoding or hidden characters",
    Severity.HIGH,
    "A coding cookie selects an encoding such as utf-7 (code that reads as harmless text), or the "
    "source holds bidirectional control characters (Trojan Source, CVE-2021-42574): what the "
    "reviewer sees is not what runs.",
    "Re-encode as UTF-8 and review the decoded source.",
    cwe=838,
    references=("https://trojansource.codes/",),
)
COD011 = make_rule(
    "COD011",
    "Runtime patching of builtins or other modules",
    Severity.MEDIUM,
    "The code replaces builtins, entries of sys.modules or functions of other libraries, which "
    "changes the behaviour of code outside the model (e.g. disabling safety checks in torch.load).",
    "Review every patched name.",
    cwe=494,
)
CODE_RULES: tuple[Rule, ...] = (
    COD001,
    COD002,
    COD003,
    COD004,
    COD005,
    COD006,
    COD007,
    COD008,
    COD009,
    COD010,
    COD011,
)


class Cat(enum.Enum):
    """What a resolved call does; each category has an import-time and an in-function severity."""

    PROCESS = "process"
    DYNAMIC = "dynamic"
    NET_RAW = "net-raw"
    NET_HTTP = "net-http"
    DELETE = "delete"
    PICKLE = "pickle"
    TORCH_LOAD = "torch-load"
    NATIVE_BUILD = "native-build"
    DYN_IMPORT = "dyn-import"


_CAT_RULE: dict[Cat, Rule] = {
    Cat.PROCESS: COD001,
    Cat.DYNAMIC: COD002,
    Cat.NET_RAW: COD004,
    Cat.NET_HTTP: COD004,
    Cat.DELETE: COD005,
    Cat.PICKLE: COD007,
    Cat.TORCH_LOAD: COD007,
    Cat.NATIVE_BUILD: COD002,
    Cat.DYN_IMPORT: COD008,
}
_CAT_SEVERITY: dict[Cat, tuple[Severity, Severity]] = {
    # (at import time, inside a function)
    Cat.PROCESS: (Severity.CRITICAL, Severity.HIGH),
    Cat.DYNAMIC: (Severity.CRITICAL, Severity.HIGH),
    Cat.NET_RAW: (Severity.CRITICAL, Severity.HIGH),
    Cat.NET_HTTP: (Severity.HIGH, Severity.MEDIUM),
    Cat.DELETE: (Severity.HIGH, Severity.MEDIUM),
    Cat.PICKLE: (Severity.HIGH, Severity.MEDIUM),
    Cat.TORCH_LOAD: (Severity.MEDIUM, Severity.LOW),
    # Compiling shipped C++/CUDA sources runs a compiler and loads native code that this scan
    # does not analyse; real models (RWKV kernels) do it, so it is not CRITICAL on its own.
    Cat.NATIVE_BUILD: (Severity.HIGH, Severity.MEDIUM),
    Cat.DYN_IMPORT: (Severity.HIGH, Severity.MEDIUM),
}

# Exact qualified names of callables (matched for calls and for references such as
# ``Thread(target=os.system)``).
_EXACT: dict[str, Cat] = {
    **dict.fromkeys(
        (
            "os.system",
            "os.popen",
            "os.startfile",
            "os.posix_spawn",
            "os.posix_spawnp",
            "os.forkpty",
            "posix.system",
            "nt.system",
            "pty.spawn",
            "platform.popen",
            "subprocess.Popen",
            "subprocess.run",
            "subprocess.call",
            "subprocess.check_call",
            "subprocess.check_output",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "asyncio.create_subprocess_shell",
            "asyncio.create_subprocess_exec",
            "multiprocessing.util.spawnv_passfds",
            "_posixsubprocess.fork_exec",
            "torch.utils.collect_env.run",
            "IPython.get_ipython",
        ),
        Cat.PROCESS,
    ),
    **dict.fromkeys(
        (
            "eval",
            "exec",
            "compile",
            "execfile",
            "marshal.loads",
            "marshal.load",
            "runpy.run_path",
            "runpy.run_module",
            "types.CodeType",
            "types.FunctionType",
            "code.interact",
            "code.InteractiveInterpreter",
            "code.InteractiveConsole",
            "pydoc.locate",
        ),
        Cat.DYNAMIC,
    ),
    **dict.fromkeys(
        (
            "socket.socket",
            "socket.create_connection",
            "socket.create_server",
            "socket.socketpair",
            "socket.fromfd",
            "socket.getaddrinfo",
            "socket.gethostbyname",
            "webbrowser.open",
            "webbrowser.open_new",
            "webbrowser.open_new_tab",
            "ssl.wrap_socket",
        ),
        Cat.NET_RAW,
    ),
    **dict.fromkeys(
        (
            "urllib.request.urlopen",
            "urllib.request.urlretrieve",
            "urllib.request.Request",
            "urllib.request.build_opener",
            "urllib.urlopen",
            "urllib.urlretrieve",
            "urllib2.urlopen",
            "http.client.HTTPConnection",
            "http.client.HTTPSConnection",
            "httplib.HTTPConnection",
            "httplib.HTTPSConnection",
            "requests.get",
            "requests.post",
            "requests.put",
            "requests.patch",
            "requests.delete",
            "requests.head",
            "requests.options",
            "requests.request",
            "requests.Session",
            "requests.session",
            "urllib3.PoolManager",
            "urllib3.request",
            "aiohttp.ClientSession",
            "aiohttp.request",
            "pycurl.Curl",
        ),
        Cat.NET_HTTP,
    ),
    **dict.fromkeys(
        (
            "shutil.rmtree",
            "os.remove",
            "os.unlink",
            "os.rmdir",
            "os.removedirs",
            "os.truncate",
        ),
        Cat.DELETE,
    ),
    **dict.fromkeys(
        (
            "pickle.load",
            "pickle.loads",
            "pickle.Unpickler",
            "_pickle.load",
            "_pickle.loads",
            "cPickle.load",
            "cPickle.loads",
            "dill.load",
            "dill.loads",
            "cloudpickle.load",
            "cloudpickle.loads",
            "joblib.load",
            "pandas.read_pickle",
            "shelve.open",
        ),
        Cat.PICKLE,
    ),
    "torch.load": Cat.TORCH_LOAD,
    "torch.utils.cpp_extension.load": Cat.NATIVE_BUILD,
    "torch.utils.cpp_extension.load_inline": Cat.NATIVE_BUILD,
    "torch.ops.load_library": Cat.NATIVE_BUILD,
    "importlib.machinery.ExtensionFileLoader": Cat.NATIVE_BUILD,
}
# Modules where *any* call is the behaviour (matched for calls only, not attribute references,
# so ``subprocess.PIPE`` or ``socket.AF_INET`` alone are not findings).
_ANY_CALL: dict[str, Cat] = {
    "subprocess": Cat.PROCESS,
    "commands": Cat.PROCESS,
    "pty": Cat.PROCESS,
    "pexpect": Cat.PROCESS,
    "sh": Cat.PROCESS,
    "plumbum": Cat.PROCESS,
    "ctypes": Cat.DYNAMIC,
    "cffi": Cat.DYNAMIC,
    "socket": Cat.NET_RAW,
    "paramiko": Cat.NET_RAW,
    "ftplib": Cat.NET_RAW,
    "smtplib": Cat.NET_RAW,
    "telnetlib": Cat.NET_RAW,
    "poplib": Cat.NET_RAW,
    "imaplib": Cat.NET_RAW,
    "webbrowser": Cat.NET_RAW,
    "http.client": Cat.NET_HTTP,
    "requests": Cat.NET_HTTP,
    "httpx": Cat.NET_HTTP,
    "urllib3": Cat.NET_HTTP,
    "aiohttp": Cat.NET_HTTP,
    "urllib.request": Cat.NET_HTTP,
}
_OS_PREFIX_PROCESS = ("os.exec", "os.spawn", "posix.exec", "posix.spawn", "nt.spawn")
_NOT_CALLS = frozenset(
    {
        # Exceptions, constants and helpers inside "any call" modules that do nothing harmful.
        "requests.exceptions",
        "requests.HTTPError",
        "requests.RequestException",
        "requests.ConnectionError",
        "requests.Timeout",
        "requests.utils.quote",
        "httpx.HTTPError",
        "httpx.Timeout",
        "socket.gethostname",
        "socket.timeout",
        "socket.error",
        "subprocess.CalledProcessError",
        "subprocess.TimeoutExpired",
        "subprocess.SubprocessError",
        "ctypes.sizeof",
        "ctypes.c_int",
        "ctypes.c_float",
        "ctypes.c_void_p",
    }
)

_DECODERS = frozenset(
    {
        "base64.b64decode",
        "base64.b32decode",
        "base64.b16decode",
        "base64.b85decode",
        "base64.a85decode",
        "base64.urlsafe_b64decode",
        "base64.standard_b64decode",
        "base64.decodebytes",
        "base64.decodestring",
        "binascii.a2b_base64",
        "binascii.unhexlify",
        "binascii.a2b_hex",
        "bytes.fromhex",
        "codecs.decode",
        "zlib.decompress",
        "gzip.decompress",
        "bz2.decompress",
        "lzma.decompress",
    }
)
_PAYLOAD_SINKS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "execfile",
        "marshal.loads",
        "pickle.loads",
        "_pickle.loads",
        "cPickle.loads",
        "dill.loads",
        "cloudpickle.loads",
        "os.system",
        "os.popen",
        "subprocess.Popen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.getoutput",
        "__import__",
        "importlib.import_module",
    }
)
_BUILTIN_ALIASES = ("__builtins__", "builtins", "__builtin__")
_IMPORTERS = frozenset({"__import__", "importlib.import_module", "importlib.__import__"})

_TOKEN_ENV = re.compile(
    r"TOKEN(?!S|IZER)|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH(?!OR)|"
    r"COOKIE|"
    r"^AWS_|^AZURE_|^GCP_|^GOOGLE_APPLICATION|^OPENAI|^ANTHROPIC|^WANDB_API|^GITHUB_",
    re.IGNORECASE,
)
_PERSISTENCE_PATH = re.compile(
    r"(^|[/\\~])\.ssh([/\\]|$)|authorized_keys|(^|/)etc/|crontab|/var/spool/cron|cron\.d|"
    r"\.bashrc|\.bash_profile|\.zshrc|\.profile\b|\.bash_login|sitecustomize|usercustomize|"
    r"site-packages|\.pth$|\.config/autostart|LaunchAgents|LaunchDaemons|ld\.so\.preload|"
    r"\.git/hooks|systemd/system|\.xinitrc|/dev/tcp/|C:\\\\Windows|AppData\\\\Roaming",
    re.IGNORECASE,
)
_CREDENTIAL_PATH = re.compile(
    r"id_rsa|id_ed25519|id_ecdsa|\.aws/credentials|\.aws[/\\]config|\.netrc|\.git-credentials|"
    r"\.docker/config\.json|\.kube/config|huggingface/token|[~/]\.huggingface|\.pypirc|"
    r"gcloud/|application_default_credentials|/etc/shadow|/etc/passwd|\.gnupg",
    re.IGNORECASE,
)
_IPV4 = re.compile(
    r"(?:^|[^\d.])((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3})(?:$|[^\d.])"
)
_URL = re.compile(r"\b(?:https?|ftp|wss?|tcp)://[^\s'\"]+", re.IGNORECASE)
_BENIGN_IPS = frozenset({"127.0.0.1", "0.0.0.0", "255.255.255.255", "255.255.255.0"})  # noqa: S104
_BASE64_BLOB = re.compile(r"^[A-Za-z0-9+/=\s]{1024,}$")
_HEX_BLOB = re.compile(r"^[0-9a-fA-F\s]{1024,}$")
_CODEY = re.compile(rb"import |\bexec\s*\(|\beval\s*\(|system\s*\(|subprocess|socket|__reduce__")
_SAVE_FUNCS = re.compile(r"save|write|export|dump|to_file|store|cache", re.IGNORECASE)
_STD_CODINGS = frozenset(
    {"utf-8", "utf8", "utf_8", "ascii", "us-ascii", "latin-1", "latin1", "iso-8859-1"}
    | {"iso8859-1", "iso-8859-15", "cp1252", "utf-8-sig"}
)
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_FALLBACK = re.compile(
    rb"os\.system|os\.popen|subprocess|pty\.spawn|\beval\s*\(|\bexec\s*[(\"']|__import__|"
    rb"marshal\.loads|pickle\.loads|socket\.|urlopen|requests\.(?:get|post)|base64|ctypes"
)
_MUTATING_MODES = frozenset("wax+")


@dataclass(slots=True)
class _Hit:
    """One suspicious construct, before severity is decided from where it sits."""

    rule: Rule
    cat: Cat | None
    message: str
    line: int
    col: int
    import_time: bool
    unit: str | None
    """Top-level function or ``Class.method`` it sits in (for "called at import time")."""
    severities: tuple[Severity, Severity]
    confidence: Confidence = Confidence.HIGH
    evidence: str | None = None


@dataclass(slots=True)
class _Ctx:
    """Where a node sits: at import time or not, and inside which top-level unit."""

    import_time: bool
    unit: str | None
    cls: str | None = None
    func: str | None = None
    """Innermost function name (for "writes in save_* helpers are normal")."""


@dataclass(slots=True)
class _Analysis:
    """Everything learnt about one source text."""

    symbols: dict[str, str] = field(default_factory=dict)
    star_modules: list[str] = field(default_factory=list)
    local_defs: set[str] = field(default_factory=set)
    classes: dict[str, set[str]] = field(default_factory=dict)
    hits: list[_Hit] = field(default_factory=list)
    edges: dict[str, set[str]] = field(default_factory=dict)
    import_roots: set[str] = field(default_factory=set)
    has_network: bool = False
    secret_reads: list[_Hit] = field(default_factory=list)
    future_annotations: bool = False


def _is_main_guard(node: ast.If) -> bool:
    """``if __name__ == "__main__":`` or ``if TYPE_CHECKING:``: not run on import."""
    test = node.test
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    ):
        right = test.comparators[0]
        return isinstance(right, ast.Constant) and right.value == "__main__"
    return False


@dataclass(slots=True, eq=False)
class _Scope:
    """One Python namespace (module, class, function, comprehension) and what binds names in it.

    Resolution follows Python's rules closely enough for a scanner: a name bound in a function
    is local to it, class bodies are not visible from their methods, ``global``/``nonlocal``
    move the binding. Flow-insensitive: a name bound both by an import and by anything else in
    one scope resolves to the import (the dangerous reading wins).
    """

    kind: str
    parent: _Scope | None
    symbols: dict[str, str] = field(default_factory=dict)
    """Names bound to a module or callable we track (imports and aliases of them)."""
    plain: set[str] = field(default_factory=set)
    """Names bound to anything else: ordinary variables, parameters, loop targets, defs."""
    params: set[str] = field(default_factory=set)
    assigns: list[tuple[str, ast.expr]] = field(default_factory=list)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)


def _target_names(target: ast.AST) -> Iterator[str]:
    """Names a target binds (``a``, ``a, (b, *c)``); attributes and subscripts bind none."""
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Tuple | ast.List):
            stack.extend(node.elts)
        elif isinstance(node, ast.Starred):
            stack.append(node.value)


class _Analyzer:
    """Two passes over one AST: a symbol table, then an iterative walk that records hits."""

    def __init__(self, tree: ast.Module, lines: list[str], exec_depth: int = 0) -> None:
        self.tree = tree
        self.lines = lines
        self.a = _Analysis()
        self.exec_depth = exec_depth
        self.nested: list[tuple[_Hit, str]] = []
        self.module_scope = _Scope("module", None, symbols=self.a.symbols)
        self.scopes: list[_Scope] = [self.module_scope]
        self.scope_of: dict[int, _Scope] = {}
        """Scope of every ``Name`` that is read, by node id."""
        self.imported: dict[str, str] = {}
        """Every name any import in the file binds (for parameters named after a module)."""

    # -- pass 1: symbols -------------------------------------------------------------------
    def collect_symbols(self) -> None:
        a = self.a
        for top in self.tree.body:
            if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef):
                a.local_defs.add(top.name)
            elif isinstance(top, ast.ClassDef):
                a.local_defs.add(top.name)
                a.classes[top.name] = {
                    n.name
                    for n in top.body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                }
            elif (
                isinstance(top, ast.ImportFrom)
                and top.module == "__future__"
                and any(x.name == "annotations" for x in top.names)
            ):
                a.future_annotations = True
        self._build_scopes()
        # Aliases of aliases (``s = os; f = s.system``): a few rounds reach a fixed point.
        for _ in range(3):
            changed = False
            for scope in self.scopes:
                for name, value in scope.assigns:
                    qual = self.qualname(value)
                    if qual is None:
                        qual = self._imported_within(value)
                    if qual is None or not self._interesting(qual):
                        continue
                    if scope.symbols.get(name) != qual:
                        scope.symbols[name] = qual
                        changed = True
            if not changed:
                break
        for scope in self.scopes:
            scope.plain.update(n for n, _ in scope.assigns if n not in scope.symbols)

    def _imported_within(self, value: ast.expr) -> str | None:
        """A module imported by name somewhere inside an expression we cannot resolve
        (``sp = wrap(__import__("subprocess"))``): the variable is read as that module, so
        wrapping an import does not hide what is called on it."""
        for i, node in enumerate(ast.walk(value)):
            if i > 200:
                return None
            if (
                isinstance(node, ast.Call)
                and node.args
                and self.qualname(node.func) in _IMPORTERS
                and self.fold(node.args[0]) is not None
            ):
                return self.qualname(node)  # ``__import__("os.path")`` is ``os``, as Python does
        return None

    def _build_scopes(self) -> None:
        """Record every binding in the scope Python would put it in, and the scope of each
        name that is read (iterative: deeply nested code must not recurse here)."""
        a = self.a
        stack: list[tuple[ast.AST, _Scope]] = [(n, self.module_scope) for n in self.tree.body]
        while stack:
            node, scope = stack.pop()
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    self.scope_of[id(node)] = scope
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                if not isinstance(node, ast.Lambda):
                    self._bind(scope, node.name)
                    stack.extend((d, scope) for d in node.decorator_list)
                    if node.returns is not None:
                        stack.append((node.returns, scope))
                inner = self._new_scope("function", self._enclosing(scope))
                args = node.args
                positional = [*args.posonlyargs, *args.args]
                defaults: list[ast.expr | None] = [None] * (
                    len(positional) - len(args.defaults)
                ) + list(args.defaults)
                pairs = [*zip(positional, defaults, strict=True)]
                pairs += [*zip(args.kwonlyargs, args.kw_defaults, strict=True)]
                pairs += [(x, None) for x in (args.vararg, args.kwarg) if x is not None]
                for arg, default in pairs:
                    if arg.annotation is not None:
                        stack.append((arg.annotation, scope))
                    if default is not None:
                        stack.append((default, scope))
                        inner.assigns.append((arg.arg, default))
                    else:
                        inner.params.add(arg.arg)
                if isinstance(node, ast.Lambda):
                    stack.append((node.body, inner))
                else:
                    stack.extend((s, inner) for s in node.body)
                continue
            if isinstance(node, ast.ClassDef):
                self._bind(scope, node.name)
                heads = (*node.decorator_list, *node.bases, *(k.value for k in node.keywords))
                stack.extend((expr, scope) for expr in heads)
                body = self._new_scope("class", scope)
                stack.extend((s, body) for s in node.body)
                continue
            if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
                # Like a function: a class body is not visible inside, except to the first
                # iterable, which is evaluated where the comprehension stands.
                comp = self._new_scope("comprehension", self._enclosing(scope))
                for i, gen in enumerate(node.generators):
                    for name in _target_names(gen.target):
                        comp.plain.add(name)
                    stack.append((gen.iter, scope if i == 0 else comp))
                    stack.extend((cond, comp) for cond in gen.ifs)
                elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
                stack.extend((e, comp) for e in elts)
                continue
            if isinstance(node, ast.Global | ast.Nonlocal):
                (scope.globals if isinstance(node, ast.Global) else scope.nonlocals).update(
                    node.names
                )
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.split(".", 1)[0]
                    qual = alias.name if alias.asname else name
                    self._binding_scope(scope, name).symbols[name] = qual
                    self.imported.setdefault(name, qual)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        if node.level == 0 and node.module:
                            a.star_modules.append(node.module)
                        continue
                    name = alias.asname or alias.name
                    if node.level == 0 and node.module:
                        qual = f"{node.module}.{alias.name}"
                        self._binding_scope(scope, name).symbols[name] = qual
                        self.imported.setdefault(name, qual)
                    else:
                        self._bind(scope, name)  # a relative import: this package's own code
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                for target in targets:
                    if isinstance(target, ast.Name) and value is not None:
                        self._binding_scope(scope, target.id).assigns.append((target.id, value))
                    else:
                        for name in _target_names(target):
                            self._bind(scope, name)
            elif isinstance(node, ast.NamedExpr):
                owner = scope
                while owner.kind == "comprehension" and owner.parent is not None:
                    owner = owner.parent
                owner.assigns.append((node.target.id, node.value))
                stack.append((node.value, scope))
                continue
            elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor):
                for name in _target_names(node.target):
                    self._bind(scope, name)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                for name in _target_names(node.optional_vars):
                    self._bind(scope, name)
            elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                self._bind(scope, node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self._bind(scope, node.rest)
            stack.extend((child, scope) for child in ast.iter_child_nodes(node))

    def _new_scope(self, kind: str, parent: _Scope | None) -> _Scope:
        scope = _Scope(kind, parent)
        self.scopes.append(scope)
        return scope

    @staticmethod
    def _enclosing(scope: _Scope) -> _Scope:
        """Functions see enclosing functions and the module, never a class body."""
        while scope.kind == "class" and scope.parent is not None:
            scope = scope.parent
        return scope

    def _binding_scope(self, scope: _Scope, name: str) -> _Scope:
        if name in scope.globals:
            return self.module_scope
        if name in scope.nonlocals:
            outer = scope.parent
            while outer is not None and (outer.kind != "function" or name in outer.nonlocals):
                outer = outer.parent
            return outer or self.module_scope
        return scope

    def _bind(self, scope: _Scope, name: str) -> None:
        self._binding_scope(scope, name).plain.add(name)

    def _lookup(self, name: str, scope: _Scope) -> str | None:
        """What ``name`` refers to from ``scope``: a tracked qualname, ``<var>.name`` for an
        ordinary variable, or ``None`` when nothing in the file binds it (a builtin or global)."""
        s: _Scope | None = scope
        while s is not None:
            if name in s.symbols:
                return _normalise(s.symbols[name])
            if s is not self.module_scope and name in s.plain:
                return f"<var>.{name}"
            if name in s.params:
                # A parameter is whatever the caller passes; one named after a module this file
                # imports is read as that module (``def run(subprocess): subprocess.run(…)``).
                imported = self.imported.get(name)
                return _normalise(imported) if imported is not None else f"<var>.{name}"
            if s is self.module_scope and name in s.plain and name not in self.a.local_defs:
                return f"<var>.{name}"
            s = s.parent
        return None

    @staticmethod
    def _interesting(qual: str) -> bool:
        """Only track assignments that alias a module or a callable we care about."""
        head = qual.split(".", 1)[0]
        return (
            qual in _EXACT
            or qual in _DECODERS
            or qual in _IMPORTERS
            or head in _ANY_CALL
            or head
            in {
                "os",
                "posix",
                "nt",
                "sys",
                "builtins",
                "importlib",
                "pickle",
                "marshal",
                "base64",
                "codecs",
                "urllib",
                "http",
                "shutil",
                "runpy",
                "types",
                "torch",
                "getattr",
                "setattr",
            }
        )

    # -- name resolution -------------------------------------------------------------------
    def qualname(self, node: ast.expr, depth: int = 0) -> str | None:
        """Dotted name an expression refers to (``o.system`` → ``os.system``), if static."""
        if depth > 30:
            return None
        a = self.a
        if isinstance(node, ast.Name):
            name: str = node.id
            found = self._lookup(name, self.scope_of.get(id(node), self.module_scope))
            if found is not None:
                return found
            if name in a.local_defs:
                return f"<local>.{name}"
            for mod in a.star_modules:
                cand = f"{mod}.{name}"
                if cand in _EXACT or (mod in _ANY_CALL and cand not in _NOT_CALLS):
                    return cand
            return _normalise(name)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value, depth + 1)
            return None if base is None else _normalise(f"{base}.{node.attr}")
        if isinstance(node, ast.Call):
            func = self.qualname(node.func, depth + 1)
            if func in _IMPORTERS and node.args:
                module = self.fold(node.args[0])
                if module is not None:
                    if func == "__import__" and len(node.args) < 4 and "fromlist" not in _kw(node):
                        # ``__import__("os.path")`` returns the top package.
                        return module.split(".", 1)[0]
                    return module
            if func == "getattr" and len(node.args) >= 2:
                base = self.qualname(node.args[0], depth + 1)
                attr = self.fold(node.args[1])
                if base is not None and attr is not None:
                    return _normalise(f"{base}.{attr}")
            if func in ("vars", "globals", "locals") or func == "dict":
                if func == "vars" and node.args:
                    return self.qualname(node.args[0], depth + 1)
                return "<namespace>"
            return None
        if isinstance(node, ast.Subscript):
            base = self.qualname(node.value, depth + 1)
            key = self.fold(node.slice)
            if base is None or key is None:
                return None
            if base == "sys.modules":
                return key
            if base == "builtins":
                return _normalise(f"builtins.{key}")
            if base == "<namespace>":
                # ``globals()["os"]`` is the module bound to that name.
                return self.qualname(ast.Name(id=key, ctx=ast.Load()), depth + 1)
            return None
        return None

    def fold(self, node: ast.AST, depth: int = 0) -> str | None:
        """Statically evaluate a string expression built from constants (never runs code)."""
        if depth > 20:
            return None
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return node.value
            if isinstance(node.value, bytes):
                return node.value.decode("latin-1")
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.fold(node.left, depth + 1)
            right = self.fold(node.right, depth + 1) if left is not None else None
            if left is None or right is None or len(left) + len(right) > MAX_FOLD_CHARS:
                return None
            return left + right
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                elif isinstance(value, ast.FormattedValue):
                    inner = self.fold(value.value, depth + 1)
                    if inner is None:
                        return None
                    parts.append(inner)
                else:
                    return None
            return "".join(parts)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            sl = node.slice
            if sl.lower is None and sl.upper is None and isinstance(sl.step, ast.UnaryOp):
                inner = self.fold(node.value, depth + 1)
                step = sl.step
                if (
                    inner is not None
                    and isinstance(step.op, ast.USub)
                    and isinstance(step.operand, ast.Constant)
                    and step.operand.value == 1
                ):
                    return inner[::-1]
            return None
        if isinstance(node, ast.Call):
            return self._fold_call(node, depth)
        return None

    def _fold_call(self, node: ast.Call, depth: int) -> str | None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "join" and len(node.args) == 1:
            sep = self.fold(func.value, depth + 1)
            seq = node.args[0]
            if sep is not None and isinstance(seq, ast.List | ast.Tuple):
                items = [self.fold(e, depth + 1) for e in seq.elts[:1000]]
                if len(seq.elts) <= 1000 and all(i is not None for i in items):
                    joined = sep.join(i for i in items if i is not None)
                    return joined if len(joined) <= MAX_FOLD_CHARS else None
            return None
        qual = self.qualname(func, depth + 1)
        if qual == "chr" and len(node.args) == 1:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
                return chr(arg.value) if 0 <= arg.value < 0x110000 else None
            return None
        if qual in _DECODERS and node.args:
            raw = self.fold(node.args[0], depth + 1)
            if raw is None:
                return None
            codec = self.fold(node.args[1], depth + 1) if len(node.args) > 1 else None
            decoded = _decode_static(qual, raw, codec)
            return None if decoded is None else decoded.decode("latin-1")
        if (
            qual is None
            and isinstance(func, ast.Attribute)
            and func.attr in ("decode", "strip", "lower")
        ):
            inner = self.fold(func.value, depth + 1)
            if inner is None or func.attr == "decode":
                return inner
            return inner.strip() if func.attr == "strip" else inner.lower()
        return None

    # -- pass 2: walk --------------------------------------------------------------------------
    def walk(self) -> None:
        """Visit every node once, iteratively (deeply nested code must not recurse here)."""
        stack: list[tuple[ast.AST, _Ctx, ast.AST | None]] = [
            (n, _Ctx(import_time=True, unit=None), None) for n in reversed(self.tree.body)
        ]
        while stack:
            node, ctx, parent = stack.pop()
            self._visit(node, ctx, parent)
            for child, child_ctx in reversed(list(self._children(node, ctx))):
                stack.append((child, child_ctx, node))

    def _children(self, node: ast.AST, ctx: _Ctx) -> Iterator[tuple[ast.AST, _Ctx]]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Decorators, defaults and (without PEP 563) annotations run at definition time.
            if not isinstance(node, ast.Lambda):
                for d in node.decorator_list:
                    yield d, ctx
                if node.returns is not None and not self.a.future_annotations:
                    yield node.returns, ctx
            args = node.args
            for d in (*args.defaults, *(x for x in args.kw_defaults if x is not None)):
                yield d, ctx
            if not self.a.future_annotations:
                for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                    if arg.annotation is not None:
                        yield arg.annotation, ctx
            name = getattr(node, "name", "<lambda>")
            unit = ctx.unit
            if unit is None:
                unit = f"{ctx.cls}.{name}" if ctx.cls else name
            inner = _Ctx(import_time=False, unit=unit, cls=ctx.cls, func=name)
            if isinstance(node, ast.Lambda):
                yield node.body, inner
            else:
                for stmt in node.body:
                    yield stmt, inner
            return
        if isinstance(node, ast.ClassDef):
            for d in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
                yield d, ctx
            body_ctx = _Ctx(
                import_time=ctx.import_time,
                unit=ctx.unit,
                cls=node.name if ctx.unit is None else ctx.cls,
                func=ctx.func,
            )
            for stmt in node.body:
                yield stmt, body_ctx
            return
        if isinstance(node, ast.If) and ctx.import_time and _is_main_guard(node):
            yield node.test, ctx
            guarded = _Ctx(import_time=False, unit="__main__", cls=None, func="__main__")
            for stmt in node.body:
                yield stmt, guarded
            for stmt in node.orelse:
                yield stmt, ctx
            return
        for child in ast.iter_child_nodes(node):
            yield child, ctx

    def _record_edge(self, ctx: _Ctx, target: str) -> None:
        if ctx.import_time:
            self.a.import_roots.add(target)
        elif ctx.unit is not None:
            self.a.edges.setdefault(ctx.unit, set()).add(target)

    def _unit_refs(self, node: ast.AST, ctx: _Ctx, parent: ast.AST | None) -> None:
        """Record calls of top-level functions/classes/methods for the call graph.

        A name counts when it is called, passed as an argument (a callback such as
        ``atexit.register(f)``) or used as a decorator; annotations and base classes do not.
        """
        a = self.a
        if isinstance(node, ast.ClassDef):
            # Defining a subclass runs the bases' __init_subclass__ and the metaclass.
            for base in node.bases:
                if isinstance(base, ast.Name) and base.id in a.classes:
                    self._record_edge(ctx, f"{base.id}.__init_subclass__")
            for kw in node.keywords:
                if kw.arg == "metaclass" and isinstance(kw.value, ast.Name):
                    for special in ("__new__", "__init__", "__prepare__", "__call__"):
                        self._record_edge(ctx, f"{kw.value.id}.{special}")
            return
        if not isinstance(node, ast.Name | ast.Attribute) or not isinstance(node.ctx, ast.Load):
            return
        if not _is_called(node, parent):
            return
        if isinstance(node, ast.Name):
            if node.id in a.classes:
                for special in ("__init__", "__new__", "__call__", "__post_init__"):
                    self._record_edge(ctx, f"{node.id}.{special}")
            elif node.id in a.local_defs:
                self._record_edge(ctx, node.id)
        elif isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner in ("self", "cls") and ctx.cls is not None:
                self._record_edge(ctx, f"{ctx.cls}.{node.attr}")
            elif owner in a.classes:
                self._record_edge(ctx, f"{owner}.{node.attr}")

    def _hit(
        self,
        rule: Rule,
        cat: Cat | None,
        message: str,
        node: ast.AST,
        ctx: _Ctx,
        severities: tuple[Severity, Severity],
        confidence: Confidence = Confidence.HIGH,
    ) -> _Hit:
        hit = _Hit(
            rule=rule,
            cat=cat,
            message=message,
            line=getattr(node, "lineno", 0),
            col=getattr(node, "col_offset", 0),
            import_time=ctx.import_time,
            unit=ctx.unit,
            severities=severities,
            confidence=confidence,
        )
        self.a.hits.append(hit)
        return hit

    def _visit(self, node: ast.AST, ctx: _Ctx, parent: ast.AST | None) -> None:
        self._unit_refs(node, ctx, parent)
        if isinstance(node, ast.Call):
            self._visit_call(node, ctx)
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            self._visit_reference(node, ctx, parent)
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                self._visit_store(target, node, ctx)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            self._visit_subscript(node, ctx)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            self._visit_blob(node, ctx)

    def _visit_reference(
        self, node: ast.Name | ast.Attribute, ctx: _Ctx, parent: ast.AST | None
    ) -> None:
        """A dangerous callable used as a value (``Thread(target=os.system)``, ``map(eval, …)``)."""
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # a prefix of a longer name
        if isinstance(parent, ast.Call) and parent.func is node:
            return  # handled as a call
        qual = self.qualname(node)
        if qual is None:
            return
        cat = _EXACT.get(qual)
        if (
            cat is None
            or cat in (Cat.TORCH_LOAD, Cat.PICKLE, Cat.NATIVE_BUILD)
            or qual == "compile"
        ):
            return
        self._hit(
            _CAT_RULE[cat],
            cat,
            f"{qual} is referenced as a value (called indirectly)",
            node,
            ctx,
            _CAT_SEVERITY[cat],
            Confidence.MEDIUM,
        )
        if cat in (Cat.NET_HTTP, Cat.NET_RAW):
            self.a.has_network = True

    def _classify(self, qual: str) -> Cat | None:
        if qual in _NOT_CALLS:
            return None
        cat = _EXACT.get(qual)
        if cat is not None:
            return cat
        if qual.startswith(_OS_PREFIX_PROCESS):
            return Cat.PROCESS
        parts = qual.split(".")
        for i in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:i])
            if head in _ANY_CALL:
                if any(".".join(parts[:j]) in _NOT_CALLS for j in range(i + 1, len(parts) + 1)):
                    return None
                return _ANY_CALL[head]
        return None

    def _visit_call(self, node: ast.Call, ctx: _Ctx) -> None:
        qual = self.qualname(node.func)
        strings = self._call_strings(node)
        if qual is not None:
            self._check_call(node, qual, ctx, strings)
        elif isinstance(node.func, ast.Attribute):
            self._check_method_call(node, ctx, strings)
        self._check_paths_and_addresses(node, qual, ctx, strings)

    def _check_call(self, node: ast.Call, qual: str, ctx: _Ctx, strings: list[str]) -> None:
        a = self.a
        kws = _kw(node)
        # Obfuscation: a decoder's output flows straight into a sink.
        if qual in _PAYLOAD_SINKS and any(self._is_decoder_call(x) for x in node.args[:1]):
            self._hit(
                COD003,
                None,
                f"decoded data is passed to {qual}",
                node,
                ctx,
                (Severity.CRITICAL, Severity.HIGH),
            )
        if qual == "codecs.decode" and len(node.args) >= 2:
            codec = (self.fold(node.args[1]) or "").lower().replace("-", "_")
            if codec in ("rot13", "rot_13"):
                self._hit(
                    COD003,
                    None,
                    "rot13-decoded string (obfuscation)",
                    node,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
        if qual in _IMPORTERS:
            if not node.args:
                return
            mod = self.fold(node.args[0])
            if mod is None:
                self._hit(
                    COD008,
                    Cat.DYN_IMPORT,
                    f"{qual} with a computed module name",
                    node,
                    ctx,
                    _CAT_SEVERITY[Cat.DYN_IMPORT],
                    Confidence.MEDIUM,
                )
            return
        if qual in ("getattr", "setattr", "delattr") and len(node.args) >= 2:
            base = self.qualname(node.args[0])
            attr = self.fold(node.args[1])
            if base is not None and _is_builtins(base):
                if qual == "setattr":
                    self._hit(
                        COD011,
                        None,
                        "setattr on builtins",
                        node,
                        ctx,
                        (Severity.HIGH, Severity.MEDIUM),
                    )
                elif attr is None:
                    self._hit(
                        COD002,
                        Cat.DYNAMIC,
                        f"{qual} on builtins with a computed name",
                        node,
                        ctx,
                        _CAT_SEVERITY[Cat.DYNAMIC],
                    )
            elif base is not None and attr is None and base.split(".", 1)[0] in _SENSITIVE_MODULES:
                self._hit(
                    COD008,
                    Cat.DYN_IMPORT,
                    f"{qual}({base}, <computed>)",
                    node,
                    ctx,
                    _CAT_SEVERITY[Cat.DYN_IMPORT],
                    Confidence.MEDIUM,
                )
            elif qual == "setattr" and base is not None and base in _PATCH_TARGETS:
                self._hit(
                    COD011,
                    None,
                    f"setattr on {base}",
                    node,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
            return
        if qual in ("exec", "eval", "compile") and node.args:
            self._nested_source(node, qual, ctx)
        if qual in ("os.getenv", "os.environ.get", "os.environ.pop", "os.getenvb"):
            name = self.fold(node.args[0]) if node.args else None
            if name is not None and _TOKEN_ENV.search(name):
                self._secret(node, ctx, f"reads secret-like environment variable {name}")
            return
        if qual in ("os.environ.copy", "os.environ.items", "os.environ.values", "os.environ.keys"):
            self._secret(node, ctx, "reads the whole environment", bulk=True)
            return
        if qual in ("dict", "json.dumps", "str", "repr", "list") and node.args:
            if self.qualname(node.args[0]) == "os.environ":
                self._secret(node, ctx, "reads the whole environment", bulk=True)
            return
        if qual == "open" or qual in ("io.open", "codecs.open", "os.open", "os.fdopen"):
            self._check_open(node, qual, ctx)
            return
        if qual in ("numpy.load", "np.load"):
            allow = kws.get("allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                self._cat_hit(Cat.PICKLE, "numpy.load with allow_pickle enabled", node, ctx)
            return
        cat = self._classify(qual)
        if cat is None:
            return
        if cat is Cat.TORCH_LOAD:
            wo = kws.get("weights_only")
            if isinstance(wo, ast.Constant) and wo.value is True:
                return
            self._cat_hit(cat, "torch.load without weights_only=True (unpickles)", node, ctx)
            return
        if cat is Cat.PICKLE and qual.endswith("loads") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) or self._is_decoder_call(arg):
                self._hit(
                    COD003,
                    None,
                    f"{qual} of data embedded in the source",
                    node,
                    ctx,
                    (Severity.CRITICAL, Severity.HIGH),
                )
                return
        if cat in (Cat.NET_HTTP, Cat.NET_RAW):
            a.has_network = True
            if cat is Cat.NET_HTTP and any(_raw_ip(s) for s in strings):
                cat = Cat.NET_RAW
        self._cat_hit(cat, f"call to {qual}", node, ctx)

    def _check_method_call(self, node: ast.Call, ctx: _Ctx, strings: list[str]) -> None:
        """Calls on unresolved objects: ``Path(...).write_text`` and ``.unlink`` only."""
        func = node.func
        assert isinstance(func, ast.Attribute)
        if func.attr in ("write_text", "write_bytes") and not _SAVE_FUNCS.search(ctx.func or ""):
            self._hit(
                COD005,
                None,
                f".{func.attr}() writes a file",
                node,
                ctx,
                (Severity.MEDIUM, Severity.LOW),
                Confidence.MEDIUM,
            )
        elif func.attr in ("unlink", "rmtree"):
            self._hit(
                COD005,
                Cat.DELETE,
                f".{func.attr}() deletes files",
                node,
                ctx,
                (Severity.MEDIUM, Severity.LOW),
                Confidence.MEDIUM,
            )

    def _cat_hit(self, cat: Cat, message: str, node: ast.AST, ctx: _Ctx) -> None:
        self._hit(_CAT_RULE[cat], cat, message, node, ctx, _CAT_SEVERITY[cat])

    def _secret(
        self,
        node: ast.AST,
        ctx: _Ctx,
        message: str,
        *,
        bulk: bool = False,
        severities: tuple[Severity, Severity] | None = None,
    ) -> None:
        """Record a secret read; ``bulk`` (whole environment, key files) weighs more."""
        if severities is None:
            severities = (
                (Severity.HIGH, Severity.MEDIUM) if bulk else (Severity.MEDIUM, Severity.LOW)
            )
        hit = self._hit(COD006, None, message, node, ctx, severities, Confidence.MEDIUM)
        if bulk:
            hit.cat = Cat.DYNAMIC  # marks a bulk read for the exfiltration finding
        self.a.secret_reads.append(hit)

    def _check_open(self, node: ast.Call, qual: str, ctx: _Ctx) -> None:
        mode: str | None = None
        kws = _kw(node)
        if "mode" in kws:
            mode = self.fold(kws["mode"])
        elif len(node.args) >= 2:
            mode = self.fold(node.args[1])
        if qual == "os.open":
            flags = ast.unparse(node.args[1]) if len(node.args) >= 2 else ""
            writes = any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND"))
        else:
            writes = mode is not None and bool(_MUTATING_MODES & set(mode))
            if mode is None and ("mode" in kws or len(node.args) >= 2):
                writes = True  # a computed mode: assume the worst
        if writes and not _SAVE_FUNCS.search(ctx.func or ""):
            self._hit(
                COD005,
                None,
                f"{qual}() opens a file for writing",
                node,
                ctx,
                (Severity.MEDIUM, Severity.LOW),
                Confidence.MEDIUM,
            )

    def _check_paths_and_addresses(
        self, node: ast.Call, qual: str | None, ctx: _Ctx, strings: list[str]
    ) -> None:
        for text in strings:
            if _CREDENTIAL_PATH.search(text) and not text.startswith(("http://", "https://")):
                self._secret(
                    node,
                    ctx,
                    f"reads a credential file: {text[:80]!r}",
                    bulk=True,
                    severities=(Severity.CRITICAL, Severity.HIGH),
                )
                break
            if _PERSISTENCE_PATH.search(text) and not text.startswith(("http://", "https://")):
                # Credentials are checked first so /etc/shadow reads as theft, not persistence.
                self._hit(
                    COD005,
                    None,
                    f"touches a persistence location: {text[:80]!r}",
                    node,
                    ctx,
                    (Severity.CRITICAL, Severity.HIGH),
                )
                break
        if qual is not None and self._classify(qual) in (Cat.NET_RAW, Cat.NET_HTTP):
            return  # the network finding already covers its own arguments
        for text in strings:
            ip = _raw_ip(text)
            if ip is not None:
                self.a.has_network = True
                self._hit(
                    COD004,
                    Cat.NET_RAW,
                    f"hard-coded IP address {ip} in a call",
                    node,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
                break

    def _call_strings(self, node: ast.Call) -> list[str]:
        """Folded string arguments of a call (one level into nested calls such as join)."""
        out: list[str] = []
        args: list[ast.expr] = [*node.args, *(k.value for k in node.keywords)]
        for arg in args[:32]:
            folded = self.fold(arg)
            if folded is not None:
                out.append(folded[:4096])
            elif isinstance(arg, ast.Tuple | ast.List):
                for elt in arg.elts[:16]:
                    f2 = self.fold(elt)
                    if f2 is not None:
                        out.append(f2[:4096])
            elif isinstance(arg, ast.Call):
                for inner in [*arg.args, *(k.value for k in arg.keywords)][:16]:
                    f2 = self.fold(inner)
                    if f2 is not None:
                        out.append(f2[:4096])
        return out

    def _is_decoder_call(self, node: ast.expr) -> bool:
        """``base64.b64decode(x)`` or ``b64decode(x).decode()`` or ``codecs.decode(x, "rot13")``."""
        for _ in range(4):
            if not isinstance(node, ast.Call):
                return False
            qual = self.qualname(node.func)
            if qual in _DECODERS:
                return True
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("decode", "strip"):
                node = node.func.value
                continue
            return False
        return False

    def _nested_source(self, node: ast.Call, qual: str, ctx: _Ctx) -> None:
        """Analyse a constant string handed to exec/eval/compile as code in its own right."""
        if self.exec_depth >= MAX_EXEC_DEPTH:
            return
        text = self.fold(node.args[0])
        if text is None:
            return
        try:
            tree = ast.parse(text, mode="exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return
        sub = _Analyzer(tree, text.splitlines(), self.exec_depth + 1)
        sub.collect_symbols()
        sub.walk()
        for hit in sub.a.hits:
            hit.line = getattr(node, "lineno", 0)
            hit.col = getattr(node, "col_offset", 0)
            hit.import_time = ctx.import_time and hit.import_time
            hit.unit = ctx.unit
            hit.message = f"{hit.message} (inside a string passed to {qual})"
            self.a.hits.append(hit)
        self.a.has_network |= sub.a.has_network
        self.a.secret_reads.extend(sub.a.secret_reads)

    def _visit_store(self, target: ast.expr, stmt: ast.Assign | ast.AugAssign, ctx: _Ctx) -> None:
        if isinstance(target, ast.Attribute):
            base = self.qualname(target.value)
            if base is None:
                return
            if _is_builtins(base) or base in _PATCH_TARGETS:
                self._hit(
                    COD011,
                    None,
                    f"replaces {base}.{target.attr}",
                    stmt,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
        elif isinstance(target, ast.Subscript):
            base = self.qualname(target.value)
            if base == "sys.modules" or (base is not None and _is_builtins(base)):
                self._hit(
                    COD011,
                    None,
                    f"assigns into {base}",
                    stmt,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
            elif base == "os.environ":
                key = self.fold(target.slice) or ""
                if key.upper() in _DANGEROUS_ENV:
                    self._hit(
                        COD011,
                        None,
                        f"sets {key} in the environment",
                        stmt,
                        ctx,
                        (Severity.HIGH, Severity.MEDIUM),
                    )

    def _visit_subscript(self, node: ast.Subscript, ctx: _Ctx) -> None:
        base = self.qualname(node.value)
        if base == "os.environ":
            key = self.fold(node.slice)
            if key is not None and _TOKEN_ENV.search(key):
                self._secret(node, ctx, f"reads secret-like environment variable {key}")
        elif base is not None and (_is_builtins(base) or base == "sys.modules"):
            key = self.fold(node.slice)
            if key is None:
                self._hit(
                    COD002 if _is_builtins(base) else COD008,
                    Cat.DYNAMIC if _is_builtins(base) else Cat.DYN_IMPORT,
                    f"{base}[<computed>]",
                    node,
                    ctx,
                    _CAT_SEVERITY[Cat.DYNAMIC if _is_builtins(base) else Cat.DYN_IMPORT],
                    Confidence.MEDIUM,
                )

    def _visit_blob(self, node: ast.Constant, ctx: _Ctx) -> None:
        value = node.value
        if not isinstance(value, str | bytes):
            return
        if isinstance(value, bytes):
            if (
                len(value) >= 64
                and value[:1] == b"\x80"
                and value[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
            ):
                self._hit(
                    COD003,
                    None,
                    "embedded pickle bytes in the source",
                    node,
                    ctx,
                    (Severity.HIGH, Severity.MEDIUM),
                    Confidence.MEDIUM,
                )
            return
        if len(value) < 1024:
            return
        decoded: bytes | None = None
        if _BASE64_BLOB.match(value[:200_000]):
            decoded = _decode_static("base64.b64decode", value[:200_000], None)
        elif _HEX_BLOB.match(value[:200_000]):
            decoded = _decode_static("bytes.fromhex", value[:200_000], None)
        if decoded is None:
            return
        codey = _CODEY.search(decoded) is not None or decoded[:2] in (
            b"\x80\x02",
            b"\x80\x03",
            b"\x80\x04",
            b"\x80\x05",
        )
        if codey or decoded[:2] == b"x\x9c" or decoded[:2] == b"\x1f\x8b":
            self._hit(
                COD003,
                None,
                f"encoded blob of {len(value)} chars decodes to code or compressed data",
                node,
                ctx,
                (Severity.HIGH, Severity.MEDIUM),
                Confidence.MEDIUM,
            )


_SENSITIVE_MODULES = frozenset(
    {"os", "posix", "nt", "subprocess", "builtins", "sys", "socket", "pty", "shutil", "ctypes"}
    | {"importlib", "pickle", "marshal", "runpy", "requests", "urllib", "http"}
)
_PATCH_TARGETS = frozenset(
    {"sys", "os", "builtins", "pickle", "torch", "numpy", "transformers", "safetensors"}
    | {"torch.serialization", "transformers.modeling_utils", "huggingface_hub", "requests"}
)
_DANGEROUS_ENV = frozenset(
    {"LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"}
    | {"DYLD_INSERT_LIBRARIES", "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    | {"HF_HUB_DISABLE_TELEMETRY_CHECKS", "BROWSER", "PATH"}
)


def _is_called(node: ast.expr, parent: ast.AST | None) -> bool:
    """Called, passed as an argument, or applied as a decorator by its parent node."""
    if isinstance(parent, ast.Call):
        return (
            parent.func is node
            or any(a is node for a in parent.args)
            or any(k.value is node for k in parent.keywords)
        )
    if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return any(d is node for d in parent.decorator_list)
    return isinstance(parent, ast.Starred | ast.keyword)


def _kw(node: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in node.keywords if k.arg is not None}


def _normalise(qual: str) -> str:
    """``builtins.eval`` → ``eval``; ``__builtins__`` → ``builtins``; numpy/np aliases."""
    for alias in _BUILTIN_ALIASES:
        if qual == alias:
            return "builtins"
        if qual.startswith(alias + "."):
            rest = qual[len(alias) + 1 :]
            if rest.startswith("__dict__"):
                return "builtins" + rest[len("__dict__") :]
            return rest
    if qual.startswith("np."):
        return "numpy." + qual[3:]
    return qual


def _is_builtins(qual: str) -> bool:
    return qual in ("builtins", "builtins.__dict__")


def _raw_ip(text: str) -> str | None:
    for m in _IPV4.finditer(text[:4096]):
        ip = m.group(1)
        if ip not in _BENIGN_IPS and not ip.startswith("0."):
            return ip
    return None


def _decode_static(qual: str, raw: str, arg: str | None) -> bytes | None:
    """Decode a constant the way ``qual`` would, in memory, with bounded output; never executes."""
    data = raw.encode("latin-1", "replace")[: MAX_FOLD_CHARS * 2]
    try:
        if qual in ("bytes.fromhex", "binascii.unhexlify", "binascii.a2b_hex", "base64.b16decode"):
            return bytes.fromhex("".join(raw.split()))[:MAX_FOLD_CHARS]
        if qual == "codecs.decode":
            codec = (arg or "utf-8").lower().replace("-", "_")
            if codec in ("rot13", "rot_13"):
                return codecs.decode(raw, "rot13").encode("latin-1", "replace")
            if codec in ("hex", "hex_codec"):
                return bytes.fromhex("".join(raw.split()))
            if codec in ("base64", "base64_codec", "base_64"):
                return base64.b64decode(data)
            return None
        if qual == "base64.b32decode":
            return base64.b32decode(data)
        if qual == "base64.b85decode":
            return base64.b85decode(data)
        if qual == "base64.a85decode":
            return base64.a85decode(data)
        if qual.startswith(("base64.", "binascii.a2b_base64")):
            return base64.b64decode(b"".join(data.split()) + b"==", altchars=None, validate=False)
        if qual in ("zlib.decompress",):
            import zlib

            d = zlib.decompressobj()
            return d.decompress(data, MAX_FOLD_CHARS)
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return None


def _coding_cookie(data: bytes) -> str | None:
    """The PEP 263 coding declared on line 1 or 2, if any."""
    for line in data.split(b"\n", 2)[:2]:
        m = _CODING.match(line)
        if m:
            return m.group(1).decode("ascii", "replace").lower()
    return None


def _line_offsets(data: bytes) -> list[int]:
    offsets = [0]
    pos = data.find(b"\n")
    while pos != -1:
        offsets.append(pos + 1)
        pos = data.find(b"\n", pos + 1)
    return offsets


class CodeScanner:
    """Python source beside weights: import-time and in-function dangerous behaviour."""

    name: ClassVar[str] = "python-code"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.PYTHON_SOURCE})
    rules: ClassVar[tuple[Rule, ...]] = CODE_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Parses with ``ast``; unparsable files are a COD009 finding."""
        cap = min(ctx.limits.max_header_bytes, MAX_SOURCE_BYTES)
        if artifact.size > cap:
            raise LimitExceeded(f"python source of {artifact.size} bytes is over the {cap} cap")
        data = artifact.stream.read(cap + 1)
        if len(data) > cap:
            raise LimitExceeded(f"python source is over the {cap} byte cap")
        yield from analyse_source(artifact, data)


def analyse_source(artifact: Artifact, data: bytes) -> Iterator[Finding]:
    """Findings for one source text (the bytes exactly as an importer would read them)."""
    offsets = _line_offsets(data)
    cookie = _coding_cookie(data)
    if cookie is not None and cookie not in _STD_CODINGS:
        yield artifact.finding(
            COD010,
            f"source declares the unusual encoding {cookie!r}: the text a reviewer (or a text "
            "scanner) reads differs from the code Python runs",
            evidence=data.split(b"\n", 2)[0 if _CODING.match(data.split(b"\n", 1)[0]) else 1]
            .decode("latin-1")
            .strip(),
            offset=0,
        )
    if b"\x00" in data:
        pos = data.index(b"\x00")
        yield artifact.finding(
            COD009,
            "cannot parse python: NUL bytes in source (binary content named as Python)",
            evidence=repr(data[max(0, pos - 20) : pos + 20]),
            offset=pos,
            severity=_fallback_severity(data),
        )
        return
    try:
        tree = ast.parse(data, filename=artifact.name, mode="exec")
    except (SyntaxError, ValueError, UnicodeError, OverflowError) as exc:
        line = getattr(exc, "lineno", None) or 0
        offset = offsets[line - 1] if 0 < line <= len(offsets) else None
        reason = getattr(exc, "msg", None) or str(exc)
        yield artifact.finding(
            COD009,
            f"cannot parse python: {reason}" + (f" (line {line})" if line else ""),
            evidence=_fallback_evidence(data) or (getattr(exc, "text", None) or "").strip(),
            offset=offset,
            severity=_fallback_severity(data),
        )
        return
    except (RecursionError, MemoryError):
        yield artifact.finding(
            COD009,
            "cannot parse python: nesting too deep to analyse",
            evidence=_fallback_evidence(data),
            severity=max(Severity.MEDIUM, _fallback_severity(data)),
        )
        return
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    yield from _bidi_findings(artifact, text, offsets)
    analyzer = _Analyzer(tree, lines)
    try:
        analyzer.collect_symbols()
        analyzer.walk()
    except RecursionError:
        yield artifact.finding(
            COD009,
            "cannot analyse python: expression nesting too deep",
            severity=max(Severity.MEDIUM, _fallback_severity(data)),
        )
        return
    yield from _findings(artifact, analyzer.a, lines, offsets)


def _fallback_evidence(data: bytes) -> str:
    m = _FALLBACK.search(data[: 4 * 2**20])
    if m is None:
        return ""
    start = max(0, m.start() - 40)
    return data[start : m.end() + 60].decode("latin-1").replace("\n", " ").strip()


def _fallback_severity(data: bytes) -> Severity:
    """Unparsable source mentioning process/eval/network primitives is worth a closer look."""
    return Severity.MEDIUM if _FALLBACK.search(data[: 4 * 2**20]) else Severity.LOW


def _bidi_findings(artifact: Artifact, text: str, offsets: list[int]) -> Iterator[Finding]:
    """Bidirectional controls in code (Trojan Source): flagged once with the first position."""
    m = _BIDI.search(text)
    if m is None:
        return
    line = text.count("\n", 0, m.start())
    kinds = "strings/comments" if _bidi_only_in_strings(text) else "code"
    yield artifact.finding(
        COD010,
        f"bidirectional control character U+{ord(m.group()):04X} in {kinds} (line {line + 1}); "
        "the displayed source may not be the executed source",
        evidence=text.splitlines()[line] if line < len(text.splitlines()) else "",
        offset=offsets[line] if line < len(offsets) else None,
        severity=Severity.MEDIUM if kinds == "strings/comments" else Severity.HIGH,
    )


def _bidi_only_in_strings(text: str) -> bool:
    """True when every bidi control sits inside a string or comment token."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type not in (tokenize.STRING, tokenize.COMMENT) and _BIDI.search(tok.string):
                return False
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    return True


def _reachable(a: _Analysis) -> dict[str, str]:
    """Units run at import time (called from module level, directly or transitively) → root."""
    seen: dict[str, str] = {}
    queue = [(u, u) for u in sorted(a.import_roots)]
    while queue:
        unit, root = queue.pop()
        if unit in seen:
            continue
        seen[unit] = root
        queue.extend((nxt, root) for nxt in sorted(a.edges.get(unit, ())) if nxt not in seen)
    return seen


def _findings(
    artifact: Artifact, a: _Analysis, lines: list[str], offsets: list[int]
) -> Iterator[Finding]:
    reachable = _reachable(a)
    seen: set[tuple[str, int, int, str]] = set()
    hits = sorted(a.hits, key=lambda h: (h.line, h.col, h.rule.id))
    # Secret reads plus any network primitive in the same file: an exfiltration pattern.
    if a.has_network and a.secret_reads:
        first = min(a.secret_reads, key=lambda h: (h.line, h.col))
        import_time = any(h.import_time or h.unit in reachable for h in a.secret_reads)
        hits.append(
            _Hit(
                rule=COD006,
                cat=None,
                message="reads secrets and has network access in the same file (exfiltration "
                "pattern)",
                line=first.line,
                col=first.col,
                import_time=import_time,
                unit=first.unit,
                severities=(Severity.CRITICAL, Severity.HIGH),
                confidence=Confidence.MEDIUM,
            )
        )
    for hit in hits:
        key = (hit.rule.id, hit.line, hit.col, hit.message)
        if key in seen:
            continue
        seen.add(key)
        at_import, where = _where(hit, reachable)
        severity = hit.severities[0] if at_import else hit.severities[1]
        line_text = lines[hit.line - 1].strip() if 0 < hit.line <= len(lines) else ""
        yield artifact.finding(
            hit.rule,
            f"{hit.message} {where} (line {hit.line})",
            evidence=hit.evidence if hit.evidence is not None else line_text,
            offset=offsets[hit.line - 1] + hit.col if 0 < hit.line <= len(offsets) else None,
            severity=severity,
            confidence=hit.confidence,
        )


def _where(hit: _Hit, reachable: dict[str, str]) -> tuple[bool, str]:
    if hit.import_time:
        return True, "at import time (runs when the model is loaded with trust_remote_code)"
    if hit.unit is not None and hit.unit in reachable:
        root = reachable[hit.unit]
        via = "" if root == hit.unit else f" via {root}"
        return True, f"in {hit.unit}, which is called at import time{via}"
    if hit.unit == "__main__":
        return False, "under `if __name__ == '__main__'`"
    return False, f"in {hit.unit}" if hit.unit else "inside a function"


__all__ = ["CODE_RULES", "CodeScanner", "analyse_source"]
