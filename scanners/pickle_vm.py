"""Symbolic pickle machine: walks opcodes as a stream and reports every import and call.

Nothing is ever imported or called. The machine keeps a symbolic stack, memo and mark stack so that
``STACK_GLOBAL`` operands fetched from the memo, callables reused through ``BINGET`` and the
arguments of each ``REDUCE``/``NEWOBJ``/``BUILD`` are known as far as constants allow. It yields
``Event`` objects; verdicts are the scanner's job (``scanners.pickle_scan``).

Design constraints (see ``bench/README.md``, section "Pickle"):

* one hand-rolled dispatch loop over a large ``bytes`` buffer refilled chunk-wise, with the hot
  opcodes first and every piece of state in local variables;
* memory independent of the number of opcodes: containers keep a short preview, long strings are
  skipped with a prefix kept, and memo entries that only hold constants cost 8 bytes (an
  ``array('q')`` slot holding the file offset of the opcode that pushed the string, re-decoded on
  demand) instead of a Python object;
* a batch of items for a list or dict whose preview is already full is skimmed: walked with
  a small tag per item instead of its value, and replayed in full at the first opcode that
  could matter (an import, a call, a memo fetch of a non-constant, anything malformed);
* a malformed stream is an event (``StreamError``) reported after everything seen before it,
  never a traceback: attackers break the stream right after the payload (nullifAI).
"""

from __future__ import annotations

import codecs
import os
import re
import struct
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import BinaryIO, Final

from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import Limits

_accel_module: ModuleType | None
try:
    from scanners import _pickle_accel

    _accel_module = _pickle_accel
except ImportError:  # not built (no compiler): the pure-Python walk is complete on its own
    _accel_module = None

_accel = None if os.environ.get("SUPPLYCHAIN_PURE_PYTHON") == "1" else _accel_module
"""The compiled skimmer in use (``None``: pure Python). ``SUPPLYCHAIN_PURE_PYTHON=1`` turns it
off; ``PickleMachine._skim_py`` is the reference it is tested against."""

CHUNK: Final = 1 << 20
"""Bytes read from the stream at a time."""
MARGIN: Final = 272
"""Fixed-size operands (and SHORT_* strings, at most 1 + 255 bytes) always fit below this."""
PAD: Final = b"\x00" * MARGIN
"""Appended after the real end so operand reads never index out of range; checked after."""
PREVIEW: Final = 32
"""Items kept in a list/dict/set/tuple preview."""
KEEP_TEXT: Final = 1 << 20
"""Strings and bytes longer than this are skipped over (prefix kept) instead of held in memory."""
PREFIX: Final = 64
"""Bytes kept from a skipped string or bytes operand."""
MAX_LINE: Final = 1 << 20
"""Longest text line (protocol 0 operand) read into memory."""
CONST_CACHE: Final = 1 << 16
"""Memo constants re-decoded from the stream that are kept for reuse."""
MEMO_GAP: Final = 1 << 16
"""A ``PUT`` index further than this beyond the dense memo goes to the sparse dict."""
MAX_CALL_DEPTH: Final = 8
PROBE_ARRAY: Final = 4 << 20
"""joblib arrays up to this size are also probed for pickle opcodes (polyglot check)."""
"""Nested joblib object arrays handled before giving up."""

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
UNSET: Final = -1
OPAQUE_CODE: Final = -2
RICH_CODE: Final = -3

_I4 = struct.Struct("<i")
_U4 = struct.Struct("<I")
_U2 = struct.Struct("<H")
_Q8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")

MODULE_ALIASES: Final[dict[str, str]] = {
    # Python 2 names the unpickler maps (``_compat_pickle``) and C accelerators of stdlib
    # modules: ``_operator.attrgetter`` is ``operator.attrgetter`` (picklescan GHSA bypasses).
    "__builtin__": "builtins",
    "exceptions": "builtins",
    "_operator": "operator",
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "genericpath": "os.path",
    "_io": "io",
    "_pyio": "io",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_compat_pickle": "pickle",
    "_codecs": "codecs",
    "_functools": "functools",
    "copy_reg": "copyreg",
    "_socket": "socket",
    "_posixsubprocess": "subprocess",
    "commands": "subprocess",
    "popen2": "subprocess",
    "_thread": "threading",
    "thread": "threading",
    "_signal": "signal",
    "_ctypes": "ctypes",
    "_imp": "importlib",
    "imp": "importlib",
    "_frozen_importlib": "importlib",
    "_frozen_importlib_external": "importlib",
    "_collections": "collections",
    "_datetime": "datetime",
    "_pydatetime": "datetime",
    "_decimal": "decimal",
    "_pydecimal": "decimal",
    "_weakref": "weakref",
    "_sre": "re",
    "_bz2": "bz2",
    "_lzma": "lzma",
    "_pickle_compat": "pickle",
    "UserDict": "collections",
    "UserList": "collections",
    "UserString": "collections",
    "__main__": "__main__",
    "Tkinter": "tkinter",
    "urllib2": "urllib.request",
    "httplib": "http.client",
    "SocketServer": "socketserver",
    "cStringIO": "io",
    "StringIO": "io",
    "numpy._core": "numpy.core",
}


def canonical_module(module: str) -> str:
    """Resolve module aliases (accelerators, Python 2 names) on the first matching prefix."""
    probe = module
    while True:
        alias = MODULE_ALIASES.get(probe)
        if alias is not None:
            return alias + module[len(probe) :]
        cut = probe.rfind(".")
        if cut < 0:
            return module
        probe = probe[:cut]


NAME_ALIASES: Final[dict[tuple[str, str], str]] = {
    # ``_compat_pickle.NAME_MAPPING``: what protocol 0-2 pickles written by Python 2 (or with
    # fix_imports) name, mapped the way the unpickler maps them.
    ("__builtin__", "xrange"): "builtins.range",
    ("__builtin__", "unicode"): "builtins.str",
    ("__builtin__", "basestring"): "builtins.str",
    ("__builtin__", "long"): "builtins.int",
    ("__builtin__", "unichr"): "builtins.chr",
    ("__builtin__", "raw_input"): "builtins.input",
    ("__builtin__", "reduce"): "functools.reduce",
    ("__builtin__", "intern"): "sys.intern",
    ("__builtin__", "execfile"): "builtins.execfile",
    ("itertools", "izip"): "builtins.zip",
    ("itertools", "imap"): "builtins.map",
    ("itertools", "ifilter"): "builtins.filter",
    ("itertools", "ifilterfalse"): "itertools.filterfalse",
    ("itertools", "izip_longest"): "itertools.zip_longest",
    ("UserDict", "IterableUserDict"): "collections.UserDict",
    ("UserList", "UserList"): "collections.UserList",
    ("UserDict", "UserDict"): "collections.UserDict",
    ("whichdb", "whichdb"): "dbm.whichdb",
    ("_socket", "fromfd"): "socket.fromfd",
    ("urllib", "urlopen"): "urllib.request.urlopen",
    ("urllib", "urlretrieve"): "urllib.request.urlretrieve",
}


def canonical_parts(module: str, name: str) -> tuple[str, str]:
    """(module, name) as the unpickler resolves them (Python 2 names, accelerator modules)."""
    mapped = NAME_ALIASES.get((module, name))
    if mapped is not None:
        head, _, tail = mapped.rpartition(".")
        return head, tail
    return canonical_module(module), name


def canonical_name(module: str, name: str) -> str:
    """``module.name`` as the unpickler resolves it (Python 2 names, accelerator modules)."""
    head, tail = canonical_parts(module, name)
    return f"{head}.{tail}"


# --------------------------------------------------------------------------------------------
# Symbolic values


class Opaque:
    """A value we chose not to keep (plain data fetched back from the memo)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<data>"


OPAQUE: Final = Opaque()


@dataclass(slots=True, eq=False)
class Global:
    """A reference to an imported callable or object (``GLOBAL``/``STACK_GLOBAL``/``INST``)."""

    module: str
    """Module as written in the pickle."""
    name: str
    """Attribute as written; may be dotted (resolved attribute by attribute by protocol 4)."""
    offset: int

    @property
    def qualname(self) -> str:
        """Canonical dotted name with module aliases resolved (``posix.system`` → ``os.system``)."""
        return canonical_name(self.module, self.name)

    def __repr__(self) -> str:
        return self.qualname


@dataclass(slots=True, eq=False)
class CallResult:
    """The (unknown) object a call returned; ``state`` is set by a later ``BUILD``."""

    func: object
    args: object
    offset: int
    kind: str
    kwargs: object = None
    state: object = None

    def __repr__(self) -> str:
        return render(self)


@dataclass(slots=True, eq=False)
class Blob:
    """A string or bytes operand too long to keep: its size, a prefix and where it lies."""

    kind: str
    """``str``, ``bytes`` or ``bytearray``."""
    size: int
    prefix: bytes
    data_offset: int
    """Absolute offset of the first payload byte in the walked stream."""

    def __repr__(self) -> str:
        return render(self)


@dataclass(slots=True, eq=False)
class Unknown:
    """A value the machine cannot know statically (a computed import, an extension code…)."""

    what: str

    def __repr__(self) -> str:
        return f"<{self.what}>"


@dataclass(slots=True, eq=False)
class PersId:
    """A persistent id (torch storages): data the loader resolves itself, not code."""

    pid: object

    def __repr__(self) -> str:
        return f"persistent_load({render(self.pid)})"


class SetPreview(list[object]):
    """Preview of a ``set``/``frozenset`` (kept as a list: items may be unhashable)."""

    __slots__ = ("frozen",)

    def __init__(self, frozen: bool = False) -> None:
        super().__init__()
        self.frozen = frozen


_PLAIN: Final = frozenset({str, bytes, int, float, bool, type(None), complex, Opaque, bytearray})


def is_plain(value: object, depth: int = 0) -> bool:
    """True when ``value`` holds only constants (so the memo need not keep it)."""
    t = type(value)
    if t in _PLAIN:
        return True
    if depth > 3:
        return False
    if t is tuple or t is list:
        # NOTE: explicit loops, not all(<genexpr>): this runs on the MEMOIZE hot path.
        for x in value:  # type: ignore[attr-defined]  # noqa: SIM110
            if type(x) not in _PLAIN and not is_plain(x, depth + 1):
                return False
        return True
    if t is dict:
        for k, v in value.items():  # type: ignore[attr-defined]  # noqa: SIM110
            if not (is_plain(k, depth + 1) and is_plain(v, depth + 1)):
                return False
        return True
    return False


def render(value: object, depth: int = 0, budget: int = 160) -> str:
    """A short Python-like rendering of a symbolic value, for evidence and ``explain``."""
    if depth > 4:
        return "…"
    t = type(value)
    if t is str or t is bytes or t is bytearray:
        text = repr(value[:budget] if len(value) > budget else value)  # type: ignore[index, arg-type]
        return text + ("…" if len(value) > budget else "")  # type: ignore[arg-type]
    if t is Global:
        return value.qualname  # type: ignore[attr-defined, no-any-return]
    if t is CallResult:
        v: CallResult = value  # type: ignore[assignment]
        func = render(v.func, depth + 1, 60)
        if v.kind == "NEWOBJ" or v.kind == "NEWOBJ_EX":
            func += ".__new__"
        args = _render_args(v.args, depth + 1)
        if v.kwargs is not None:
            kw = v.kwargs
            if isinstance(kw, dict):
                extra = ", ".join(f"{k}={render(x, depth + 1, 40)}" for k, x in kw.items())
            else:
                extra = "**" + render(kw, depth + 1, 40)
            args = f"{args}, {extra}" if args else extra
        return f"{func}({args})"
    if t is Blob:
        b: Blob = value  # type: ignore[assignment]
        return f"<{b.kind} of {b.size} bytes: {b.prefix[:24]!r}…>"
    if t is tuple:
        items = [render(x, depth + 1, 60) for x in value[:8]]  # type: ignore[index]
        if len(value) > 8:  # type: ignore[arg-type]
            items.append("…")
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, SetPreview):
        items = [render(x, depth + 1, 60) for x in value[:8]]
        if value.frozen:
            return "frozenset({" + ", ".join(items) + "})"
        return "{" + ", ".join(items) + "}"
    if t is list:
        items = [render(x, depth + 1, 60) for x in value[:8]]  # type: ignore[index]
        if len(value) > 8:  # type: ignore[arg-type]
            items.append("…")
        return "[" + ", ".join(items) + "]"
    if t is dict:
        pairs = list(value.items())[:6]  # type: ignore[attr-defined]
        inner = ", ".join(
            f"{render(k, depth + 1, 40)}: {render(x, depth + 1, 60)}" for k, x in pairs
        )
        if len(value) > 6:  # type: ignore[arg-type]
            inner += ", …"
        return "{" + inner + "}"
    text = repr(value)
    return text if len(text) <= budget else text[:budget] + "…"


def _render_args(args: object, depth: int) -> str:
    if type(args) is tuple:
        return ", ".join(render(x, depth, 80) for x in args[:8]) + (", …" if len(args) > 8 else "")
    if args is None:
        return ""
    return "*" + render(args, depth, 80)


def iter_refs(value: object, depth: int = 0) -> Iterator[Global | CallResult | Unknown]:
    """Every non-constant value reachable inside a (previewed) container."""
    t = type(value)
    if t is Global or t is CallResult or t is Unknown:
        yield value  # type: ignore[misc]
        return
    if depth > 4:
        return
    if t is tuple or t is list or t is SetPreview:
        for x in value:  # type: ignore[attr-defined]
            yield from iter_refs(x, depth + 1)
    elif t is dict:
        for k, x in value.items():  # type: ignore[attr-defined]
            yield from iter_refs(k, depth + 1)
            yield from iter_refs(x, depth + 1)
    elif t is PersId:
        yield from iter_refs(value.pid, depth + 1)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Import:
    """``GLOBAL``/``STACK_GLOBAL``/``INST`` imported ``module`` and looked up ``name``."""

    offset: int
    ref: Global
    opcode: str


@dataclass(frozen=True, slots=True)
class ComputedImport:
    """``STACK_GLOBAL`` whose operands are not string constants (a computed import)."""

    offset: int
    module: object
    name: object


@dataclass(frozen=True, slots=True)
class Call:
    """A call the loader would make: ``REDUCE``, ``OBJ``, ``INST``, ``NEWOBJ(_EX)`` or ``BUILD``.

    For ``BUILD`` the callee is the object whose ``__setstate__`` (or ``__dict__`` update) runs.
    For ``APPENDS``/``SETITEMS``/``ADDITEMS`` on something that is not a plain container it is
    the method call (``extend``/``__setitem__``/``add``) the loader would make.
    """

    offset: int
    kind: str
    func: object
    args: object
    kwargs: object = None
    result: CallResult | None = None


@dataclass(frozen=True, slots=True)
class Extension:
    """``EXT1/2/4``: a lookup in the process's copyreg extension registry."""

    offset: int
    code: int


@dataclass(frozen=True, slots=True)
class Persistent:
    """``PERSID``/``BINPERSID``: a reference resolved by the loader (torch storages)."""

    offset: int
    pid: object


@dataclass(frozen=True, slots=True)
class Stop:
    """End of one pickle (``STOP``); ``index`` counts stacked pickles from 0."""

    offset: int
    index: int
    result: object


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream broke: the real unpickler would raise here (after running what came before)."""

    offset: int
    message: str
    index: int
    """Which stacked pickle broke (0 for the first)."""


@dataclass(frozen=True, slots=True)
class TrailingData:
    """Bytes after the last ``STOP``; ``imports`` lists globals they would name if unpickled."""

    offset: int
    size: int
    imports: tuple[str, ...]
    opcodes: int
    context: str = "after STOP"


@dataclass(frozen=True, slots=True)
class JoblibArray:
    """Raw array bytes a joblib ``NumpyArrayWrapper`` reads from the file, skipped over."""

    offset: int
    size: int
    dtype: str
    shape: tuple[int, ...]
    object_pickle: bool


Event = (
    Import
    | ComputedImport
    | Call
    | Extension
    | Persistent
    | Stop
    | StreamError
    | TrailingData
    | JoblibArray
)

JOBLIB_WRAPPERS: Final = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)


class _Broken(Exception):
    """Internal: the stream is malformed at ``offset`` (absolute)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(slots=True)
class Stats:
    """Counters of one walk, for ``explain`` and the benchmark."""

    opcodes: int = 0
    pickles: int = 0
    memo: int = 0
    max_stack: int = 0
    bytes_skipped: int = 0


_NOTHING: Final = object()
"""Marks "no constant pushed" (``None`` is a real pickle value)."""
_CONST_OPS: Final = frozenset({0x42, 0x8E, 0x96, 0x54, 0x8D, 0x55})
"""Rare opcodes that push a string/bytes constant re-decodable from its offset."""
SKIM_MISSES: Final = 16
"""Abandoned skims tolerated (plus one per four that succeeded) before skimming stops."""

# Tags standing for stack items while skimming (``PickleMachine._skim``); the hashable ones are
# the smallest, so ``max(tags) <= _T_HASHABLE`` says every item could be a dict key.
_T_SCALAR: Final = 0
"""str, bytes, int, float, bool, None or memoized plain data (``OPAQUE``)."""
_T_TUPLE: Final = 1
"""A tuple of scalars (plain, memoized as ``OPAQUE_CODE``)."""
_T_NESTED_TUPLE: Final = 2
"""A hashable tuple holding tuples."""
_T_HASHABLE: Final = 2
_T_EMPTY_DICT: Final = 3
_T_DICT: Final = 4
_T_EMPTY_LIST: Final = 5
_T_LIST: Final = 6
_T_OTHER: Final = 7
"""A tuple holding a dict or list (unhashable)."""
_SCALAR_WIDTH: Final = [0] * 256
"""Size of the opcodes that push a hashable scalar from a fixed-size operand (0: others)."""
for _op, _width in ((0x47, 9), (0x4D, 3), (0x4A, 5), (0x4B, 2), (0x88, 1), (0x89, 1), (0x4E, 1)):
    _SCALAR_WIDTH[_op] = _width


def _memo_code(value: object) -> int:
    """Memo encoding of a non-constant: plain containers are not kept (8 bytes, no object)."""
    t = type(value)
    if (t is tuple or t is list or t is dict) and is_plain(value):
        return OPAQUE_CODE
    return RICH_CODE


SPECIAL_KEEP: Final = 2 * PREVIEW
"""Extra dict entries kept past the preview when their key is a special name."""
_METHOD_KEYS: Final = frozenset({"extend", "append", "add"})


def _keep_special(target: dict[object, object], items: list[object], start: int) -> None:
    """Keep ``items[start:]`` pairs whose key is a special name (``__setstate__``, ``extend``)
    and whose value is not plain data, even past the preview: a BUILD state planting a
    callable must not hide it behind 32 filler keys. Bounded by ``SPECIAL_KEEP``."""
    for k in range(start, len(items) - 1, 2):
        key = items[k]
        if type(key) is str and (key[:2] == "__" or key in _METHOD_KEYS):
            value = items[k + 1]
            if type(value) not in _PLAIN and len(target) < PREVIEW + SPECIAL_KEEP:
                target[key] = value


def _pop_mark(stack: list[object], marks: list[int], at: int) -> list[object]:
    """Pop everything above the last MARK, as the unpickler's ``pop_mark``."""
    if not marks:
        raise _Broken("MARK not found", at)
    k = marks.pop()
    items = stack[k:]
    del stack[k:]
    return items


# --------------------------------------------------------------------------------------------
# The machine


class PickleMachine:
    """Walks the pickle(s) in ``stream[start:end]`` symbolically and yields ``Event`` objects.

    Offsets in events are relative to ``start``. The stream must be seekable; the machine seeks
    before every read, so other readers (nested walks) may share it.
    """

    def __init__(
        self,
        stream: BinaryIO,
        limits: Limits | None = None,
        *,
        start: int = 0,
        end: int | None = None,
        stacked: bool = True,
        joblib_depth: int = 0,
    ) -> None:
        self.stream = stream
        self.limits = limits or Limits()
        self.start = start
        self.end = end
        self.stacked = stacked
        self.joblib_depth = joblib_depth
        self.stats = Stats()
        self.keep = min(KEEP_TEXT, self.limits.max_pickle_string)
        self._buf = b""
        self._base = start
        self._next = start
        self._eof = False
        self._real = 0
        self._cache: dict[int, object] = {}
        self._small: list[object] = []
        self._skim_ok = self.keep >= 256
        """Whether ``_skim`` may run: off once a memo constant could be a ``Blob`` or a
        ``bytearray`` (not a hashable scalar), and after too many abandoned skims."""
        self._skim_hits = 0
        self._skim_misses = 0
        self.position = start
        """Absolute offset just after the last complete pickle walked."""

    # ---- buffered reading --------------------------------------------------------------

    def _read(self, size: int) -> bytes:
        if self.end is not None:
            size = min(size, self.end - self._next)
            if size <= 0:
                return b""
        self.stream.seek(self._next)
        data = self.stream.read(size)
        self._next += len(data)
        return data

    def _fill(self, i: int, need: int = 0) -> int:
        """Drop ``buf[:i]`` and read on until ``need`` bytes follow ``i`` (or EOF)."""
        buf = self._buf
        real = self._real
        tail = buf[i:real]
        self._base += i
        parts = [tail]
        have = len(tail)
        want = max(need + MARGIN, CHUNK)
        while have < want and not self._eof:
            data = self._read(max(CHUNK, want - have))
            if not data:
                self._eof = True
                break
            parts.append(data)
            have += len(data)
        body = b"".join(parts)
        self._real = len(body)
        self._buf = body + PAD if self._eof else body
        return 0

    def _limit(self) -> int:
        return self._real if self._eof else self._real - MARGIN

    def _skip(self, i: int, size: int) -> int:
        """Advance ``size`` bytes from ``buf[i]`` without keeping them; return the new index."""
        if i + size <= self._real:
            return i + size
        target = self._base + i + size
        total = self._stream_size()
        if target > total:
            raise _Broken("pickle data was truncated inside a skipped operand", total)
        return self._reposition(target)

    def _reposition(self, absolute: int) -> int:
        """Drop the buffer and continue reading at the absolute offset ``absolute``."""
        self._buf, self._real, self._eof = b"", 0, False
        self._base = self._next = absolute
        return self._fill(0)

    def _stream_size(self) -> int:
        if self.end is not None:
            return self.end
        pos = self.stream.tell()
        size = self.stream.seek(0, 2)
        self.stream.seek(pos)
        return size

    def _ensure(self, i: int, size: int) -> int:
        """Make ``buf[i:i+size]`` available (size ≤ ``keep``); return the new index of ``i``."""
        if i + size <= self._real:
            return i
        i = self._fill(i, size)
        if size > self._real:
            raise _Broken("pickle data was truncated", self._base + self._real)
        return i

    def _line(self, i: int) -> tuple[bytes, int]:
        """The text line starting at ``buf[i]`` (without ``\\n``) and the index after it."""
        k = self._buf.find(b"\n", i, self._real)
        if k >= 0:
            return self._buf[i:k], k + 1
        while True:
            have = self._real - i
            if self._eof:
                if have > 1:
                    # The pure-Python unpickler (``pickle._Unpickler``, dill's) reads the last
                    # line without its newline and chops its last byte as if it were one: a
                    # stream ending in ``ios\nsystemX`` calls ``os.system`` before it notices
                    # EOF. Emulate it; the missing STOP is reported right after.
                    return self._buf[i : self._real - 1], self._real
                raise _Broken("pickle data was truncated inside a text line", self._base + i)
            if have > MAX_LINE:
                raise _Broken("text operand longer than 1 MiB", self._base + i)
            i = self._fill(i, have + CHUNK)
            k = self._buf.find(b"\n", i + have, self._real)
            if k >= 0:
                return self._buf[i:k], k + 1

    def _text(self, i: int, size: int, kind: str) -> tuple[object, int]:
        """A length-prefixed string/bytes operand at ``buf[i:i+size]``: value and next index."""
        if size <= self.keep:
            i = self._ensure(i, size)
            raw = self._buf[i : i + size]
            if kind == "str":
                return raw.decode("utf-8", "surrogatepass"), i + size
            if kind == "bytearray":
                self._skim_ok = False
                return bytearray(raw), i + size
            return raw, i + size
        self._skim_ok = False
        i = self._ensure(i, min(size, PREFIX))
        blob = Blob(kind, size, bytes(self._buf[i : i + PREFIX]), self._base + i)
        self.stats.bytes_skipped += size
        return blob, self._skip(i, size)

    # ---- memo constants ----------------------------------------------------------------

    def _const_at(self, off: int) -> object:
        """Re-decode the string/bytes constant pushed by the opcode at absolute ``off``."""
        got = self._cache.get(off)
        if got is not None:
            return got
        rel = off - self._base
        inside = rel >= 0 and rel + 9 <= len(self._buf)
        if inside:
            head = self._buf[rel : rel + 9]
        else:
            self.stream.seek(off)
            head = self.stream.read(9)
        op = head[0]
        if op in (0x8C, 0x43, 0x55):  # SHORT_BINUNICODE / SHORT_BINBYTES / SHORT_BINSTRING
            size, skip = head[1], 2
        elif op in (0x58, 0x42, 0x54):  # BINUNICODE / BINBYTES / BINSTRING
            size, skip = _U4.unpack_from(head, 1)[0], 5
        else:  # BINUNICODE8 / BINBYTES8 / BYTEARRAY8
            size, skip = _Q8.unpack_from(head, 1)[0], 9
        take = size if size <= self.keep else PREFIX
        if inside and rel + skip + take <= self._real:
            raw = self._buf[rel + skip : rel + skip + take]
        else:
            self.stream.seek(off + skip)
            raw = self.stream.read(take)
        value: object
        is_text = op in (0x8C, 0x58, 0x8D)
        if size > self.keep:
            value = Blob("str" if is_text else "bytes", size, raw, off + skip)
        elif is_text:
            value = raw.decode("utf-8", "surrogatepass")
        elif op in (0x54, 0x55):
            value = raw.decode("latin-1")
        elif op == 0x96:
            value = bytearray(raw)
        else:
            value = raw
        if len(self._cache) >= CONST_CACHE:
            self._cache.clear()
        self._cache[off] = value
        return value

    # ---- public walk -------------------------------------------------------------------

    def walk(self) -> Iterator[Event]:
        """Walk every stacked pickle; yield events; raise ``LimitExceeded`` at a cap."""
        index = 0
        i = self._reposition(self.start)
        while True:
            try:
                i = yield from self._run(i, index)
            except _Broken as exc:
                yield StreamError(exc.offset - self.start, str(exc), index)
                return
            self.position = self._base + i
            index += 1
            self.stats.pickles = index
            if not self.stacked:
                return
            i = self._fill(i)
            if self._real == 0:
                return
            if self._buf[0] == 0x80 and self._real >= 2 and self._buf[1] <= 5:
                continue
            yield from self._trailing(index)
            return

    def _trailing(self, index: int) -> Iterator[Event]:
        """Bytes after STOP: a stacked protocol 0/1 pickle, opcode-like data, or plain data."""
        offset = self._base
        complete, imports, opcodes = self._probe(offset, self.end)
        if complete:
            # A whole protocol 0/1 pickle follows: walk it for real, as a stacked pickle.
            i = self._reposition(offset)
            try:
                i = yield from self._run(i, index)
            except _Broken as exc:
                yield StreamError(exc.offset - self.start, str(exc), index)
                return
            self.position = self._base + i
            self.stats.pickles = index + 1
            i = self._fill(i)
            if self._real:
                yield from self._trailing(index + 1)
            return
        if imports:
            size = self._stream_size() - offset
            yield TrailingData(offset - self.start, size, imports, opcodes, "after STOP")

    def _probe(self, start: int, end: int | None) -> tuple[bool, tuple[str, ...], int]:
        """Speculatively walk bytes that may or may not be a pickle.

        Returns whether a complete pickle (ending in STOP) is there, the identifier-like
        imports it names before breaking, and how many opcodes it got through. Random binary
        data breaks within a few opcodes; names must look like Python identifiers so that a
        stray ``c`` byte followed by two newlines in float data is not reported.
        """
        probe = PickleMachine(self.stream, self.limits, start=start, end=end, stacked=False)
        imports: list[str] = []
        complete = False
        try:
            for ev in probe.walk():
                if isinstance(ev, Import):
                    ref = ev.ref
                    named = _IDENT.fullmatch(ref.module) and _IDENT.fullmatch(ref.name)
                    if named and len(imports) < 20:
                        imports.append(ref.qualname)
                elif isinstance(ev, Stop):
                    complete = True
                elif isinstance(ev, StreamError):
                    break
        except LimitExceeded:
            complete = False
        return complete and probe.stats.opcodes > 1, tuple(imports), probe.stats.opcodes

    # ---- memo helpers (not closures: hot locals must stay fast locals) --------------------

    def _memo_put(
        self, memo: array[int], rich: dict[int, object], idx: int, value: object, code: int, at: int
    ) -> int:
        """Store ``value`` (encoded as ``code``) at ``idx``; return 1 if the key is new.

        Dense keys live in ``memo`` (objects of RICH entries in ``rich`` under the same key);
        keys far beyond the dense range are sparse and live in ``rich`` only.
        """
        n = len(memo)
        if idx < n:
            old = memo[idx]
            new = 1 if old == UNSET and idx not in rich else 0
            memo[idx] = code
            if code == RICH_CODE:
                rich[idx] = value
            elif old == RICH_CODE or idx in rich:
                del rich[idx]
        elif idx - n < MEMO_GAP:
            if idx > n:
                memo.extend(array("q", [UNSET]) * (idx - n))
            memo.append(code)
            new = 0 if idx in rich else 1
            if code == RICH_CODE:
                rich[idx] = value
            elif idx in rich:
                del rich[idx]
        else:
            new = 0 if idx in rich else 1
            rich[idx] = value
        if idx < 256:
            self._small[idx] = None
        cap = self.limits.max_pickle_memo
        if len(rich) > cap:
            raise LimitExceeded(f"pickle memo holds more than {cap} objects", at - self.start)
        return new

    def _memo_get(self, memo: array[int], rich: dict[int, object], idx: int, at: int) -> object:
        if idx < len(memo):
            code = memo[idx]
            if code >= 0:
                return self._const_at(code)
            if code == OPAQUE_CODE:
                return OPAQUE
            if code == RICH_CODE:
                return rich[idx]
        if idx in rich:
            return rich[idx]
        raise _Broken(f"memo key {idx} not found", at)

    # ---- the interpreter ---------------------------------------------------------------

    def _run(self, i: int, index: int) -> Generator[Event, None, int]:
        """Interpret one pickle from ``buf[i]`` to its STOP; return the index after STOP.

        NOTE: every name used in the hot branches is a plain local (no closure cells, no
        attribute lookups); the branch order follows opcode frequency in data pickles. An
        object the pickler memoizes (string, empty dict, plain tuple) is handled together with
        the ``MEMOIZE``/``BINPUT`` written right after it (and a dict with its ``MARK``): one
        dispatch instead of two or three. While the memo is dense (each put at the next index)
        its size is ``len(memo)`` and ``mcount`` is unused. A batch into a container whose
        preview is full is skimmed (``_skim``) instead of built.
        """
        limits = self.limits
        max_ops = limits.max_pickle_ops
        max_stack = limits.max_pickle_stack
        stats = self.stats
        start = self.start
        stack: list[object] = []
        push = stack.append
        pop = stack.pop
        marks: list[int] = []
        mark = marks.append
        unmark = marks.pop
        memo: array[int] = array("q")
        memo_append = memo.append
        rich: dict[int, object] = {}
        memo_put = self._memo_put
        memo_get = self._memo_get
        cache_get = self._cache.get
        const_at = self._const_at
        mcount = 0
        dense = True
        max_memo = limits.max_pickle_memo
        buf = self._buf
        base = self._base
        limit = self._limit()
        nops = stats.opcodes
        last_const: object = _NOTHING
        last_pos = 0
        u4 = _U4.unpack_from
        u2 = _U2.unpack_from
        # ``BINGET`` results by index (``None``: not cached yet); ``_memo_put`` invalidates
        # an index it overwrites, dense appends only ever add new indexes.
        small: list[object] = [None] * 256
        self._small = small
        i4 = _I4.unpack_from
        f8 = _F8.unpack_from
        plain_types = _PLAIN
        keep = self.keep
        op = 0
        try:
            while True:
                if i >= limit:
                    if len(stack) > max_stack:
                        raise LimitExceeded(
                            f"pickle stack deeper than {max_stack} items", base + i - start
                        )
                    if nops > max_ops:
                        raise LimitExceeded(f"more than {max_ops} pickle opcodes", base + i - start)
                    if len(marks) > max_stack:
                        # MARK alone is a hot opcode: its count is capped here, per chunk.
                        raise LimitExceeded(f"more than {max_stack} pickle marks", base + i - start)
                    if len(stack) > stats.max_stack:
                        stats.max_stack = len(stack)
                    if self._eof:
                        if i > self._real:
                            raise _Broken("pickle data was truncated", base + self._real)
                        raise _Broken("pickle ended without STOP", base + i)
                    i = self._fill(i)
                    buf, base, limit = self._buf, self._base, self._limit()
                    continue
                op = buf[i]
                nops += 1
                # NOTE: dispatch is a small decision tree (the three most frequent opcodes, then
                # a split at 0x6A), every branch ending in ``continue``; what falls through is
                # handled by the rare path at the bottom.
                if op == 0x68:  # BINGET
                    value = small[buf[i + 1]]
                    if value is None:
                        idx = buf[i + 1]
                        try:
                            code = memo[idx]
                        except IndexError:
                            code = UNSET
                        if code >= 0:
                            value = cache_get(code)
                            if value is None:
                                value = const_at(code)
                        elif code == OPAQUE_CODE:
                            value = OPAQUE
                        else:
                            value = memo_get(memo, rich, idx, base + i)
                        small[idx] = value
                    push(value)
                    i += 2
                    continue
                if op == 0x8C:  # SHORT_BINUNICODE, fused with the MEMOIZE/BINPUT after it
                    j = i + 2
                    k = j + buf[i + 1]
                    last_const = buf[j:k].decode("utf-8", "surrogatepass")
                    last_pos = base + i
                    push(last_const)
                    i = k
                    if dense:
                        nx = buf[k]
                        if nx == 0x94:
                            memo_append(last_pos)
                            nops += 1
                            i = k + 1
                        elif nx == 0x72:
                            if u4(buf, k + 1)[0] == len(memo):
                                memo_append(last_pos)
                                nops += 1
                                i = k + 5
                        elif nx == 0x71 and buf[k + 1] == len(memo):
                            memo_append(last_pos)
                            nops += 1
                            i = k + 2
                    continue
                if op == 0x58:  # BINUNICODE, fused with the MEMOIZE/BINPUT after it
                    n = u4(buf, i + 1)[0]
                    j = i + 5
                    k = j + n
                    last_pos = base + i
                    if k <= limit and n <= keep:
                        last_const = buf[j:k].decode("utf-8", "surrogatepass")
                        push(last_const)
                        i = k
                        if dense:
                            nx = buf[k]
                            if nx == 0x72:
                                if u4(buf, k + 1)[0] == len(memo):
                                    memo_append(last_pos)
                                    nops += 1
                                    i = k + 5
                            elif nx == 0x94:
                                memo_append(last_pos)
                                nops += 1
                                i = k + 1
                            elif nx == 0x71 and buf[k + 1] == len(memo):
                                memo_append(last_pos)
                                nops += 1
                                i = k + 2
                    else:
                        last_const, i = self._text(j, n, "str")
                        buf, base, limit = self._buf, self._base, self._limit()
                        push(last_const)
                    continue
                if op == 0x47:  # BINFLOAT
                    push(f8(buf, i + 1)[0])
                    i += 9
                    continue
                if op < 0x6A:
                    if op == 0x4D:  # BININT2
                        push(u2(buf, i + 1)[0])
                        i += 3
                        continue
                    if op == 0x4A:  # BININT
                        push(i4(buf, i + 1)[0])
                        i += 5
                        continue
                    if op == 0x28:  # MARK
                        if stack and dense and self._skim_ok:
                            target = stack[-1]
                            t = type(target)
                            if (t is list or t is dict) and len(target) >= PREVIEW:  # type: ignore[arg-type]
                                # A batch into a full preview: its items are dropped.
                                got = self._skim(i + 1, memo, t is dict)
                                if got is not None:
                                    i, n, value, j = got
                                    nops += n
                                    if value is not _NOTHING:
                                        last_const = value
                                        last_pos = j
                                    continue
                        mark(len(stack))
                        i += 1
                        continue
                    if op == 0x4B:  # BININT1
                        push(buf[i + 1])
                        i += 2
                        continue
                    if op == 0x65:  # APPENDS
                        k = unmark()
                        items = stack[k:]
                        del stack[k:]
                        target = stack[-1]
                        if type(target) is list:
                            if len(target) < PREVIEW:
                                target.extend(items[: PREVIEW - len(target)])
                        else:
                            yield Call(base + i - start, "APPENDS", target, tuple(items[:PREVIEW]))
                        i += 1
                        continue
                    if op == 0x4E:  # NONE
                        push(None)
                        i += 1
                        continue
                    if op == 0x5D:  # EMPTY_LIST
                        push([])
                        i += 1
                        continue
                    if op == 0x29:  # EMPTY_TUPLE
                        push(())
                        i += 1
                        continue
                    if op == 0x61:  # APPEND
                        value = pop()
                        target = stack[-1]
                        if type(target) is list:
                            if len(target) < PREVIEW:
                                target.append(value)
                        else:
                            yield Call(base + i - start, "APPENDS", target, (value,))
                        i += 1
                        continue
                    if op == 0x43:  # SHORT_BINBYTES
                        j = i + 2 + buf[i + 1]
                        last_const = buf[i + 2 : j]
                        last_pos = base + i
                        push(last_const)
                        i = j
                        continue
                    if op == 0x2E:  # STOP
                        if not stack:
                            raise _Broken("STOP with an empty stack", base + i)
                        if nops > max_ops or len(stack) > max_stack:
                            # Caps are checked per chunk; a short pickle is checked here.
                            raise LimitExceeded(
                                f"pickle exceeds {max_ops} opcodes or {max_stack} stack items",
                                base + i - start,
                            )
                        yield Stop(base + i - start, index, stack[-1])
                        return i + 1
                else:
                    if op == 0x7D:  # EMPTY_DICT, fused with the MEMOIZE/BINPUT and MARK after it
                        push({})
                        i += 1
                        if dense:
                            nx = buf[i]
                            if nx == 0x94:
                                memo_append(OPAQUE_CODE)
                                nops += 1
                                i += 1
                            elif nx == 0x72:
                                if u4(buf, i + 1)[0] == len(memo):
                                    memo_append(OPAQUE_CODE)
                                    nops += 1
                                    i += 5
                            elif nx == 0x71 and buf[i + 1] == len(memo):
                                memo_append(OPAQUE_CODE)
                                nops += 1
                                i += 2
                        if buf[i] == 0x28:
                            mark(len(stack))
                            nops += 1
                            i += 1
                        continue
                    if op == 0x75:  # SETITEMS
                        k = unmark()
                        items = stack[k:]
                        del stack[k:]
                        target = stack[-1]
                        n = len(items)
                        if n & 1:
                            raise _Broken("SETITEMS with an odd number of items", base + i)
                        if type(target) is dict:
                            if len(target) < PREVIEW:
                                if n > 2 * PREVIEW:
                                    _keep_special(target, items, 2 * PREVIEW)
                                    del items[2 * PREVIEW :]
                                pairs = iter(items)
                                target.update(zip(pairs, pairs, strict=False))
                            else:
                                _keep_special(target, items, 0)
                        else:
                            yield Call(base + i - start, "SETITEMS", target, tuple(items[:PREVIEW]))
                        i += 1
                        continue
                    if op == 0x87:  # TUPLE3, fused with a MEMOIZE/BINPUT of a plain tuple
                        third = pop()
                        second = pop()
                        first = stack[-1]
                        triple = (first, second, third)
                        stack[-1] = triple
                        i += 1
                        if dense:
                            nx = buf[i]
                            if (nx == 0x94 or nx == 0x72 or nx == 0x71) and (
                                (
                                    type(first) in plain_types
                                    and type(second) in plain_types
                                    and type(third) in plain_types
                                )
                                or is_plain(triple)
                            ):
                                if nx == 0x94:
                                    memo_append(OPAQUE_CODE)
                                    nops += 1
                                    i += 1
                                elif nx == 0x72:
                                    if u4(buf, i + 1)[0] == len(memo):
                                        memo_append(OPAQUE_CODE)
                                        nops += 1
                                        i += 5
                                elif buf[i + 1] == len(memo):
                                    memo_append(OPAQUE_CODE)
                                    nops += 1
                                    i += 2
                        continue
                    if op == 0x88:  # NEWTRUE
                        push(True)
                        i += 1
                        continue
                    if op == 0x94:  # MEMOIZE
                        top = stack[-1]
                        if top is last_const:
                            code = last_pos
                        else:
                            t = type(top)
                            if t is dict or t is list or t is tuple:
                                code = OPAQUE_CODE if (not top or is_plain(top)) else RICH_CODE
                            else:
                                code = RICH_CODE
                        if dense:
                            if code == RICH_CODE:
                                rich[len(memo)] = top
                                if len(rich) > max_memo:
                                    raise LimitExceeded(
                                        f"pickle memo holds more than {max_memo} objects",
                                        base + i - start,
                                    )
                            memo_append(code)
                        else:
                            mcount += memo_put(memo, rich, mcount, top, code, base + i)
                        i += 1
                        continue
                    if op == 0x71 or op == 0x72:  # BINPUT / LONG_BINPUT
                        top = stack[-1]
                        if top is last_const:
                            code = last_pos
                        else:
                            t = type(top)
                            if t is dict or t is list or t is tuple:
                                code = OPAQUE_CODE if (not top or is_plain(top)) else RICH_CODE
                            else:
                                code = RICH_CODE
                        if op == 0x71:
                            idx = buf[i + 1]
                            i += 2
                        else:
                            idx = u4(buf, i + 1)[0]
                            i += 5
                        if dense and idx == len(memo):
                            if code == RICH_CODE:
                                rich[idx] = top
                                if len(rich) > max_memo:
                                    raise LimitExceeded(
                                        f"pickle memo holds more than {max_memo} objects",
                                        base + i - start,
                                    )
                            memo_append(code)
                        else:
                            if dense:
                                mcount = len(memo)
                                dense = idx <= mcount
                            mcount += memo_put(memo, rich, idx, top, code, base + i)
                        continue
                    if op == 0x86:  # TUPLE2
                        top = pop()
                        stack[-1] = (stack[-1], top)
                        i += 1
                        continue
                    if op == 0x85:  # TUPLE1
                        stack[-1] = (stack[-1],)
                        i += 1
                        continue
                    if op == 0x6A:  # LONG_BINGET
                        idx = u4(buf, i + 1)[0]
                        try:
                            code = memo[idx]
                        except IndexError:
                            code = UNSET
                        if code >= 0:
                            value = cache_get(code)
                            if value is None:
                                value = const_at(code)
                            push(value)
                        elif code == OPAQUE_CODE:
                            push(OPAQUE)
                        else:
                            push(memo_get(memo, rich, idx, base + i))
                        i += 5
                        continue
                    if op == 0x89:  # NEWFALSE
                        push(False)
                        i += 1
                        continue
                    if op == 0x73:  # SETITEM
                        value = pop()
                        key = pop()
                        target = stack[-1]
                        if type(target) is dict:
                            if len(target) < PREVIEW:
                                target[key] = value
                            else:
                                _keep_special(target, [key, value], 0)
                        else:
                            yield Call(base + i - start, "SETITEMS", target, (key, value))
                        i += 1
                        continue
                    if op == 0x95:  # FRAME
                        i += 9
                        continue
                    if op == 0x74:  # TUPLE
                        k = unmark()
                        push(tuple(stack[k : k + PREVIEW]))
                        del stack[k:-1]
                        i += 1
                        continue
                    if op == 0x8A:  # LONG1
                        n = buf[i + 1]
                        push(int.from_bytes(buf[i + 2 : i + 2 + n], "little", signed=True))
                        i += 2 + n
                        continue
                # Everything else (imports, calls, rare and protocol 0/1 forms) lives in a
                # second function so the hot loop above stays small.
                stats.opcodes = nops
                if op == 0x67 or op == 0x70:  # GET / PUT
                    at = base + i
                    line, i = self._line(i + 1)
                    buf, base, limit = self._buf, self._base, self._limit()
                    try:
                        idx = int(line)
                    except ValueError:
                        raise _Broken("malformed memo index", at) from None
                    if idx < 0:
                        raise _Broken("negative memo index", at)
                    if op == 0x67:
                        push(memo_get(memo, rich, idx, at))
                    else:
                        top = stack[-1]
                        if top is last_const:
                            code = last_pos
                        elif type(top) in plain_types:
                            code = RICH_CODE
                        else:
                            code = _memo_code(top)
                        if dense:
                            # Protocol 0/1 memo: always through ``memo_put`` (and ``mcount``),
                            # never the dense fast paths.
                            mcount = len(memo)
                            dense = False
                        mcount += memo_put(memo, rich, idx, top, code, at)
                    continue
                if op in _CONST_OPS:
                    last_pos = base + i
                i, value = yield from self._rare(op, i, stack, marks, index)
                buf, base, limit = self._buf, self._base, self._limit()
                if value is not _NOTHING:
                    last_const = value
                if len(marks) > max_stack:
                    raise LimitExceeded(f"more than {max_stack} pickle marks", base + i - start)
        except IndexError:
            if self._eof and i + 1 >= self._real:
                raise _Broken("pickle data was truncated", base + min(i, self._real)) from None
            raise _Broken(
                f"stack underflow or missing MARK at opcode 0x{op:02x}", base + i
            ) from None
        except TypeError:
            raise _Broken(f"unhashable key or bad operand at opcode 0x{op:02x}", base + i) from None
        except (struct.error, UnicodeDecodeError, ValueError, OverflowError):
            raise _Broken(f"malformed operand of opcode 0x{op:02x}", base + i) from None
        finally:
            stats.opcodes = nops
            stats.memo = max(stats.memo, len(memo) if dense else mcount)

    # ---- skimming discarded data -------------------------------------------------------

    def _skim(
        self, i: int, memo: array[int], into_dict: bool
    ) -> tuple[int, int, object, int] | None:
        """``_skim_py``, through the compiled ``_pickle_accel.skim`` when it is available."""
        accel = _accel
        if accel is None:
            return self._skim_py(i, memo, into_dict)
        base = self._base
        got = accel.skim(self._buf, i, self._limit(), base, self.keep, memo, into_dict, PREVIEW)
        if got is None:
            self._skim_missed()
            return None
        j, ops, value, at, codes = got
        memo.frombytes(codes)
        self._skim_hits += 1
        if value is None:
            return j, ops, _NOTHING, 0
        return j, ops, value, base + at

    def _skim_missed(self) -> None:
        self._skim_misses += 1
        if self._skim_misses > SKIM_MISSES + self._skim_hits // 4:
            self._skim_ok = False

    def _skim_py(
        self, i: int, memo: array[int], into_dict: bool
    ) -> tuple[int, int, object, int] | None:
        """Walk a ``MARK … APPENDS/SETITEMS`` batch whose items the loader would discard.

        Called right after a ``MARK`` whose target (the list or dict below it) already holds a
        full preview: the items of the batch are dropped when the batch ends, so their values
        need not be built. The batch is walked with one small tag per stack item instead
        (``_T_*``: just enough to know hashability and plainness), appending memo codes exactly
        as the full walk would. Anything that could emit an event, fetch a non-constant from
        the memo, raise, or depend on a value (REDUCE, a global, a ``BINGET`` of a call
        result, an odd ``SETITEMS``, a malformed string, the end of the buffer…) abandons the
        skim: the memo is restored and ``None`` returned, so the full walk replays the batch.

        Returns (index after the batch, opcodes walked, last string constant, its offset).
        """
        buf = self._buf
        base = self._base
        limit = self._limit()
        keep = self.keep
        m0 = len(memo)
        memo_append = memo.append
        u4 = _U4.unpack_from
        widths = _SCALAR_WIDTH
        tags: list[int] = []
        push = tags.append
        frames: list[int] = []
        floor = 0
        ops = 0
        last_const: object = _NOTHING
        last_pos = 0
        try:
            while i < limit:
                op = buf[i]
                ops += 1
                if op == 0x68:  # BINGET: a constant or plain data only
                    code = memo[buf[i + 1]]
                    if code < 0 and code != OPAQUE_CODE:
                        break
                    push(_T_SCALAR)
                    i += 2
                    continue
                width = widths[op]
                if width:  # BINFLOAT, BININT*, NONE, NEWTRUE, NEWFALSE
                    push(_T_SCALAR)
                    i += width
                    continue
                if op == 0x8C or op == 0x58 or op == 0x43:
                    # SHORT_BINUNICODE / BINUNICODE / SHORT_BINBYTES (+ MEMOIZE/BINPUT)
                    if op == 0x8C:
                        j = i + 2
                        k = j + buf[i + 1]
                        # Decoded only to reject what the full walk would reject.
                        last_const = buf[j:k].decode("utf-8", "surrogatepass")
                    elif op == 0x58:
                        n = u4(buf, i + 1)[0]
                        j = i + 5
                        k = j + n
                        if n > keep or k > limit:
                            break
                        last_const = buf[j:k].decode("utf-8", "surrogatepass")
                    else:
                        j = i + 2
                        k = j + buf[i + 1]
                        last_const = buf[j:k]
                    last_pos = base + i
                    push(_T_SCALAR)
                    i = k
                    nx = buf[k]
                    if nx == 0x94:
                        memo_append(last_pos)
                        ops += 1
                        i = k + 1
                    elif nx == 0x72:
                        if u4(buf, k + 1)[0] == len(memo):
                            memo_append(last_pos)
                            ops += 1
                            i = k + 5
                    elif nx == 0x71 and buf[k + 1] == len(memo):
                        memo_append(last_pos)
                        ops += 1
                        i = k + 2
                    continue
                if op == 0x7D or op == 0x5D:  # EMPTY_DICT / EMPTY_LIST (+ MEMOIZE/BINPUT, MARK)
                    push(_T_EMPTY_DICT if op == 0x7D else _T_EMPTY_LIST)
                    i += 1
                    nx = buf[i]
                    if nx == 0x94:
                        memo_append(OPAQUE_CODE)
                        ops += 1
                        i += 1
                    elif nx == 0x72:
                        if u4(buf, i + 1)[0] == len(memo):
                            memo_append(OPAQUE_CODE)
                            ops += 1
                            i += 5
                    elif nx == 0x71 and buf[i + 1] == len(memo):
                        memo_append(OPAQUE_CODE)
                        ops += 1
                        i += 2
                    if buf[i] == 0x28:
                        frames.append(floor)
                        floor = len(tags)
                        ops += 1
                        i += 1
                    continue
                if op == 0x75 or op == 0x65:  # SETITEMS / APPENDS
                    n = len(tags) - floor
                    if not frames:
                        # The end of the batch: its items go nowhere.
                        if (op == 0x75) != into_dict or n & 1:
                            break
                        self._skim_hits += 1
                        return i + 1, ops, last_const, last_pos
                    if floor == 0:
                        break
                    target = tags[floor - 1]
                    if op == 0x75:
                        if target != _T_EMPTY_DICT or n & 1:
                            break
                        if n and max(tags[floor : floor + 2 * PREVIEW : 2]) > _T_HASHABLE:
                            break
                        done = _T_DICT if n else _T_EMPTY_DICT
                    else:
                        if target != _T_EMPTY_LIST and target != _T_LIST:
                            break
                        done = _T_LIST if n else target
                    del tags[floor:]
                    tags[-1] = done
                    floor = frames.pop()
                    i += 1
                    continue
                if 0x85 <= op <= 0x87 or op == 0x74:  # TUPLE1/2/3 / TUPLE (+ MEMOIZE/BINPUT)
                    if op == 0x74:
                        if not frames:
                            break
                        items = tags[floor : floor + PREVIEW]
                        del tags[floor:]
                        floor = frames.pop()
                    else:
                        n = op - 0x84
                        if len(tags) - floor < n:
                            break
                        items = tags[-n:]
                        del tags[-n:]
                    top = max(items) if items else _T_SCALAR
                    i += 1
                    if top != _T_SCALAR:
                        push(_T_NESTED_TUPLE if top <= _T_HASHABLE else _T_OTHER)
                        continue
                    push(_T_TUPLE)
                    nx = buf[i]
                    if nx == 0x94:
                        memo_append(OPAQUE_CODE)
                        ops += 1
                        i += 1
                    elif nx == 0x72:
                        if u4(buf, i + 1)[0] == len(memo):
                            memo_append(OPAQUE_CODE)
                            ops += 1
                            i += 5
                    elif nx == 0x71 and buf[i + 1] == len(memo):
                        memo_append(OPAQUE_CODE)
                        ops += 1
                        i += 2
                    continue
                if op == 0x28:  # MARK
                    frames.append(floor)
                    floor = len(tags)
                    i += 1
                    continue
                if op == 0x6A:  # LONG_BINGET
                    code = memo[u4(buf, i + 1)[0]]
                    if code < 0 and code != OPAQUE_CODE:
                        break
                    push(_T_SCALAR)
                    i += 5
                    continue
                if op == 0x94 or op == 0x71 or op == 0x72:  # MEMOIZE / BINPUT / LONG_BINPUT
                    top = tags[-1]
                    if top != _T_TUPLE and top != _T_EMPTY_DICT and top != _T_EMPTY_LIST:
                        break
                    if op == 0x94:
                        i += 1
                    elif op == 0x71:
                        if buf[i + 1] != len(memo):
                            break
                        i += 2
                    else:
                        if u4(buf, i + 1)[0] != len(memo):
                            break
                        i += 5
                    memo_append(OPAQUE_CODE)
                    continue
                if op == 0x29:  # EMPTY_TUPLE
                    push(_T_TUPLE)
                    i += 1
                    continue
                if op == 0x95:  # FRAME
                    i += 9
                    continue
                if op == 0x8A:  # LONG1
                    push(_T_SCALAR)
                    i += 2 + buf[i + 1]
                    continue
                break
        except (IndexError, ValueError, struct.error):
            pass
        del memo[m0:]
        self._skim_missed()
        return None

    def _rare(
        self, op: int, i: int, stack: list[object], marks: list[int], index: int
    ) -> Generator[Event, None, tuple[int, object]]:
        """One of the less frequent opcodes at ``buf[i]``: return (next index, new constant).

        The constant is ``_NOTHING`` unless the opcode pushed a string/bytes constant that a
        following ``MEMOIZE``/``PUT`` may record by offset.
        """
        buf = self._buf
        at = self._base + i
        rel = at - self.start
        push = stack.append
        pop = stack.pop
        const: object = _NOTHING
        if op == 0x93:  # STACK_GLOBAL
            name = pop()
            module = pop()
            if type(module) is str and type(name) is str:
                ref = Global(module, name, rel)
                push(ref)
                yield Import(rel, ref, "STACK_GLOBAL")
            else:
                push(Unknown(f"import of {render(module, budget=40)}.{render(name, budget=40)}"))
                yield ComputedImport(rel, module, name)
            return i + 1, const
        if op == 0x63 or op == 0x69:  # GLOBAL / INST
            line1, j = self._line(i + 1)
            line2, j = self._line(j)
            ref = Global(
                line1.decode("utf-8", "surrogateescape"),
                line2.decode("utf-8", "surrogateescape"),
                rel,
            )
            if op == 0x63:
                push(ref)
                yield Import(rel, ref, "GLOBAL")
                return j, const
            yield Import(rel, ref, "INST")
            inst_args = tuple(_pop_mark(stack, marks, at)[:PREVIEW])
            res = CallResult(ref, inst_args, rel, "INST")
            push(res)
            yield Call(rel, "INST", ref, inst_args, None, res)
            return j, const
        if op == 0x52:  # REDUCE
            args = pop()
            func = stack[-1]
            res = CallResult(func, args, rel, "REDUCE")
            stack[-1] = res
            yield Call(rel, "REDUCE", func, args, None, res)
            return i + 1, const
        if op == 0x81:  # NEWOBJ
            args = pop()
            cls = stack[-1]
            res = CallResult(cls, args, rel, "NEWOBJ")
            stack[-1] = res
            yield Call(rel, "NEWOBJ", cls, args, None, res)
            return i + 1, const
        if op == 0x92:  # NEWOBJ_EX
            kwargs = pop()
            args = pop()
            cls = stack[-1]
            res = CallResult(cls, args, rel, "NEWOBJ_EX", kwargs)
            stack[-1] = res
            yield Call(rel, "NEWOBJ_EX", cls, args, kwargs, res)
            return i + 1, const
        if op == 0x6F:  # OBJ
            items = _pop_mark(stack, marks, at)
            if not items:
                raise _Broken("OBJ without a class", at)
            cls = items[0]
            args = tuple(items[1 : PREVIEW + 1])
            res = CallResult(cls, args, rel, "OBJ")
            push(res)
            yield Call(rel, "OBJ", cls, args, None, res)
            return i + 1, const
        if op == 0x62:  # BUILD
            state = pop()
            target = stack[-1]
            yield Call(rel, "BUILD", target, (state,))
            i += 1
            if type(target) is CallResult:
                target.state = state
                func = target.func
                if type(func) is Global and func.qualname in JOBLIB_WRAPPERS:
                    i = yield from self._joblib_array(i, target, stack)
            return i, const
        if op == 0x80:  # PROTO
            if buf[i + 1] > 5:
                raise _Broken(f"unsupported pickle protocol {buf[i + 1]}", at)
            return i + 2, const
        if op in (0x42, 0x8E, 0x96, 0x54, 0x8D):
            # BINBYTES / BINBYTES8 / BYTEARRAY8 / BINSTRING / BINUNICODE8
            if op == 0x42 or op == 0x54:
                n, head = _U4.unpack_from(buf, i + 1)[0], 5
                if op == 0x54 and _I4.unpack_from(buf, i + 1)[0] < 0:
                    raise _Broken("BINSTRING with a negative length", at)
            else:
                n, head = _Q8.unpack_from(buf, i + 1)[0], 9
            kind = "str" if op == 0x8D else "bytearray" if op == 0x96 else "bytes"
            value, i = self._text(i + head, n, kind)
            if op == 0x54 and type(value) is bytes:
                value = value.decode("latin-1")
            push(value)
            return i, value
        if op == 0x55:  # SHORT_BINSTRING
            j = i + 2 + buf[i + 1]
            value = buf[i + 2 : j].decode("latin-1")
            push(value)
            return j, value
        if op == 0x8F:  # EMPTY_SET
            push(SetPreview())
            return i + 1, const
        if op == 0x90:  # ADDITEMS
            items = _pop_mark(stack, marks, at)
            target = stack[-1]
            if type(target) is SetPreview:
                if len(target) < PREVIEW:
                    target.extend(items[: PREVIEW - len(target)])
            else:
                yield Call(rel, "ADDITEMS", target, tuple(items[:PREVIEW]))
            return i + 1, const
        if op == 0x91:  # FROZENSET
            fs = SetPreview(frozen=True)
            fs.extend(_pop_mark(stack, marks, at)[:PREVIEW])
            push(fs)
            return i + 1, const
        if op == 0x64:  # DICT
            items = _pop_mark(stack, marks, at)
            if len(items) & 1:
                raise _Broken("DICT with an odd number of items", at)
            d: dict[object, object] = {}
            for k in range(0, min(len(items), 2 * PREVIEW), 2):
                d[items[k]] = items[k + 1]
            if len(items) > 2 * PREVIEW:
                _keep_special(d, items, 2 * PREVIEW)
            push(d)
            return i + 1, const
        if op == 0x6C:  # LIST
            push(_pop_mark(stack, marks, at)[:PREVIEW])
            return i + 1, const
        if op == 0x30:  # POP
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                pop()
            return i + 1, const
        if op == 0x31:  # POP_MARK
            _pop_mark(stack, marks, at)
            return i + 1, const
        if op == 0x32:  # DUP
            push(stack[-1])
            return i + 1, const
        if op == 0x8B:  # LONG4
            n = _I4.unpack_from(buf, i + 1)[0]
            if n < 0:
                raise _Broken("LONG4 with a negative length", at)
            if n <= 4096:
                i = self._ensure(i + 5, n)
                push(int.from_bytes(self._buf[i : i + n], "little", signed=True))
                return i + n, const
            _, i = self._text(i + 5, n, "bytes")
            push(Unknown(f"{n}-byte integer"))
            return i, const
        if op == 0x49 or op == 0x4C or op == 0x46:  # INT / LONG / FLOAT
            line, i = self._line(i + 1)
            try:
                if op == 0x46:
                    push(float(line))
                elif op == 0x49 and line in (b"00", b"01"):
                    push(line == b"01")
                else:
                    push(int(line[:-1] if op == 0x4C and line.endswith(b"L") else line))
            except ValueError:
                raise _Broken("malformed number literal", at) from None
            return i, const
        if op == 0x53:  # STRING
            line, i = self._line(i + 1)
            push(_decode_string_literal(line, at))
            return i, const
        if op == 0x56:  # UNICODE
            line, i = self._line(i + 1)
            try:
                push(line.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                raise _Broken("malformed UNICODE literal", at) from None
            return i, const
        if op == 0x50 or op == 0x51:  # PERSID / BINPERSID
            pid: object
            if op == 0x50:
                line, i = self._line(i + 1)
                pid = line.decode("ascii", "replace")
            else:
                pid = pop()
                i += 1
            # torch's legacy loaders resolve a container-class id to the class itself (an
            # import already judged above), so calls on it are calls of that global: stream
            # format ('module', cls, source_file, source), tar format (cls, source_file, source).
            if type(pid) is tuple and len(pid) == 4 and pid[0] in ("module", b"module"):
                pid_class = pid[1]
            elif type(pid) is tuple and len(pid) == 3:
                pid_class = pid[0]
            else:
                pid_class = None
            push(pid_class if type(pid_class) is Global else PersId(pid))
            yield Persistent(rel, pid)
            return i, const
        if op == 0x82 or op == 0x83 or op == 0x84:  # EXT1 / EXT2 / EXT4
            if op == 0x82:
                code, i = buf[i + 1], i + 2
            elif op == 0x83:
                code, i = _U2.unpack_from(buf, i + 1)[0], i + 3
            else:
                code, i = _I4.unpack_from(buf, i + 1)[0], i + 5
            push(Unknown(f"extension {code}"))
            yield Extension(rel, code)
            return i, const
        if op == 0x97:  # NEXT_BUFFER
            push(Unknown("out-of-band buffer"))
            return i + 1, const
        if op == 0x98:  # READONLY_BUFFER
            if not stack:
                raise _Broken("READONLY_BUFFER with an empty stack", at)
            return i + 1, const
        raise _Broken(f"invalid opcode 0x{op:02x}", at)

    # ---- joblib ------------------------------------------------------------------------

    def _joblib_array(
        self, i: int, wrapper: CallResult, stack: list[object]
    ) -> Generator[Event, None, int]:
        """Skip the array bytes joblib writes after a ``NumpyArrayWrapper`` (its BUILD at i-1).

        Layout (joblib ``numpy_pickle.NumpyArrayWrapper.write_array``, read from joblib 1.6):
        for object dtypes a complete pickle follows inline (walked here, with its own memo);
        otherwise, when the wrapper carries ``numpy_array_alignment_bytes`` (joblib ≥ 1.2,
        seekable file), one byte giving a padding length and that many padding bytes, then
        ``prod(shape) * itemsize`` raw bytes.
        """
        state = wrapper.state
        at = self._base + i
        if type(state) is not dict:
            raise _Broken("joblib array wrapper without a readable state", at)
        shape = state.get("shape")
        dtype = state.get("dtype")
        align = state.get("numpy_array_alignment_bytes")
        if type(shape) is not tuple or not all(type(x) is int and x >= 0 for x in shape):
            raise _Broken(f"joblib array with unknown shape {render(shape)}", at)
        itemsize, has_object, label = _dtype_info(dtype)
        stack[-1] = CallResult(
            Global("numpy", "ndarray", wrapper.offset), (), wrapper.offset, "joblib"
        )
        if has_object:
            if self.joblib_depth >= MAX_CALL_DEPTH:
                raise LimitExceeded("joblib object arrays nested too deeply", at - self.start)
            yield JoblibArray(at - self.start, 0, label, shape, True)
            inner = PickleMachine(
                self.stream,
                self.limits,
                start=at,
                end=self.end,
                stacked=False,
                joblib_depth=self.joblib_depth + 1,
            )
            inner.stats.opcodes = self.stats.opcodes
            for ev in inner.walk():
                if isinstance(ev, StreamError):
                    raise _Broken(f"inline object-array pickle: {ev.message}", ev.offset + at)
                if not isinstance(ev, Stop):
                    yield _shift(ev, at - self.start)
            self.stats.opcodes = inner.stats.opcodes
            return self._reposition(inner.position)
        if itemsize is None:
            raise _Broken(f"joblib array with unknown dtype {render(dtype)}", at)
        count = 1
        for x in shape:
            count *= x
        size = count * itemsize
        pad = 0
        if align is not None:
            i = self._ensure(i, 1)
            pad = 1 + self._buf[i]
        total = pad + size
        yield JoblibArray(at - self.start, total, label, shape, False)
        self.stats.bytes_skipped += total
        data_start = self._base + i + pad
        if 0 < size <= PROBE_ARRAY:
            # NOTE: ``pickle.load`` on this file would interpret these bytes as opcodes; a
            # polyglot can hide a payload that joblib reads as array data.
            _, imports, opcodes = self._probe(data_start, data_start + size)
            if imports:
                yield TrailingData(
                    data_start - self.start, size, imports, opcodes, "in joblib array data"
                )
        return self._skip(i, total)


def _shift(ev: Event, delta: int) -> Event:
    """An event from an inner walk, with its offset made relative to the outer start."""
    from dataclasses import replace

    return replace(ev, offset=ev.offset + delta)


def _dtype_info(dtype: object) -> tuple[int | None, bool, str]:
    """(itemsize, holds objects, label) of a symbolic ``numpy.dtype(...)`` call result."""
    if type(dtype) is not CallResult or type(dtype.args) is not tuple or not dtype.args:
        return None, False, render(dtype)
    spec = dtype.args[0]
    if type(spec) is not str:
        return None, False, render(dtype)
    label = spec
    body = spec.lstrip("<>|=")
    state = dtype.state
    fields = state[4] if type(state) is tuple and len(state) > 5 else None
    elsize = state[5] if type(state) is tuple and len(state) > 5 else -1
    if body.startswith("O"):
        return None, True, label
    if type(fields) is dict:
        for value in fields.values():
            if type(value) is tuple and value:
                _, obj, _ = _dtype_info(value[0])
                if obj:
                    return None, True, label
    if type(elsize) is int and elsize > 0:
        return elsize, False, label
    letters = body.rstrip("0123456789")
    digits = body[len(letters) :]
    if not digits or not letters:
        return None, False, label
    size = int(digits)
    if letters == "U":
        size *= 4
    return size, False, label


def _decode_string_literal(line: bytes, at: int) -> str:
    """Protocol 0 ``STRING``: a quoted Python 2 ``repr``; decoded leniently (latin-1)."""
    if len(line) >= 2 and line[:1] == line[-1:] and line[:1] in (b"'", b'"'):
        body = line[1:-1]
    else:
        raise _Broken("the STRING opcode argument must be quoted", at)
    try:
        raw = codecs.escape_decode(body)[0]
    except ValueError:
        raise _Broken("malformed STRING literal", at) from None
    return bytes(raw).decode("latin-1")


# --------------------------------------------------------------------------------------------
# explain


def explain(stream: BinaryIO, limits: Limits | None = None) -> Iterator[str]:
    """Human-readable trace of what unpickling would do, one Python-like line per event.

    ``supplychain explain FILE`` prints these lines. Offsets are in bytes from the start.
    """
    machine = PickleMachine(stream, limits)
    names: dict[int, str] = {}

    def name_of(value: object) -> str:
        if type(value) is CallResult and id(value) in names:
            return names[id(value)]
        return render(value)

    def args_of(args: object) -> str:
        if type(args) is tuple:
            return ", ".join(name_of(a) for a in args[:8]) + (", …" if len(args) > 8 else "")
        return "*" + name_of(args)

    try:
        for ev in machine.walk():
            match ev:
                case Import(offset=off, ref=ref, opcode=opname):
                    yield f"@{off:<8} from {ref.module} import {ref.name}  # {opname}"
                case ComputedImport(offset=off, module=module, name=name):
                    operands = f"{render(module)}, {render(name)}"
                    yield f"@{off:<8} import of computed operands ({operands})"
                case Call(offset=off, kind="BUILD", func=func, args=args):
                    yield f"@{off:<8} {name_of(func)}.__setstate__({args_of(args)})"
                case Call(offset=off, kind=kind, func=func, args=args) if kind in (
                    "APPENDS",
                    "SETITEMS",
                    "ADDITEMS",
                ):
                    method = {"APPENDS": "extend", "SETITEMS": "__setitem__", "ADDITEMS": "add"}
                    yield f"@{off:<8} {name_of(func)}.{method[kind]}({args_of(args)})"
                case Call(offset=off, kind=kind, func=func, args=args, kwargs=kw, result=res):
                    var = f"_var{len(names)}"
                    if res is not None:
                        names[id(res)] = var
                    callee = name_of(func) + (".__new__" if kind.startswith("NEWOBJ") else "")
                    text = args_of(args)
                    if kw is not None:
                        text += ", **" + render(kw)
                    yield f"@{off:<8} {var} = {callee}({text})"
                case Extension(offset=off, code=code):
                    yield f"@{off:<8} copyreg extension code {code} (resolved by the loader)"
                case Persistent(offset=off, pid=pid):
                    yield f"@{off:<8} persistent_load({render(pid)})"
                case JoblibArray(offset=off, size=size, dtype=dt, shape=shape, object_pickle=obj):
                    what = "inline object pickle" if obj else f"{size} raw bytes"
                    yield f"@{off:<8} joblib array dtype={dt} shape={shape}: {what}"
                case Stop(offset=off, index=idx, result=result):
                    yield f"@{off:<8} result[{idx}] = {name_of(result)}"
                case StreamError(offset=off, message=msg):
                    yield f"@{off:<8} !! stream broken: {msg}"
                case TrailingData(offset=off, size=size, imports=imps):
                    extra = f" naming {', '.join(imps)}" if imps else ""
                    yield f"@{off:<8} {size} bytes after the last STOP{extra}"
    except LimitExceeded as exc:
        yield f"@{exc.offset if exc.offset is not None else '?':<8} !! limit: {exc}"
    yield f"# {machine.stats.opcodes} opcodes, {machine.stats.pickles} pickle(s)"


__all__ = [
    "Blob",
    "Call",
    "CallResult",
    "ComputedImport",
    "Event",
    "Extension",
    "Global",
    "Import",
    "JoblibArray",
    "Persistent",
    "PickleMachine",
    "Stop",
    "StreamError",
    "TrailingData",
    "Unknown",
    "canonical_module",
    "canonical_name",
    "canonical_parts",
    "explain",
    "iter_refs",
    "render",
]
