"""Magic numbers and the one pickle recogniser, shared by ``sniff`` and the format scanners.

``HIDDEN_MAGIC`` names what an unexplained byte range starts like (a hole in a safetensors or
GGUF data region); ``is_pickle_stream`` is the single decision "an unpickler handed these bytes
would run them", used to identify files (``sniff``), to find pickles stashed in tensor storages
or legacy records and to tell plaintext from ciphertext in flagged zip members (the container
toolkit). ``walk_pickle`` is the bounded, CPython-faithful walk both rest on.
"""

from __future__ import annotations

import io
import pickletools
import re
import warnings
from typing import NamedTuple

from supplychain.core.model import Severity

PICKLE_EXTS = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dill", ".sav")

ZIP_LOCAL_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NUMPY_MAGIC = b"\x93NUMPY"

HIDDEN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x80\x02", "pickle protocol 2"),
    (b"\x80\x03", "pickle protocol 3"),
    (b"\x80\x04", "pickle protocol 4"),
    (b"\x80\x05", "pickle protocol 5"),
    (ZIP_LOCAL_MAGIC, "zip archive"),
    (NUMPY_MAGIC, "numpy array"),
    (b"GGUF", "GGUF model"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "PE executable"),
    (b"#!", "script"),
    (GZIP_MAGIC, "gzip stream"),
)
"""Magic numbers worth naming when they start bytes that belong to nothing (a hole)."""


def hidden_magic(head: bytes) -> str | None:
    """What ``head`` starts like, from ``HIDDEN_MAGIC``, or ``None``."""
    return next((what for magic, what in HIDDEN_MAGIC if head.startswith(magic)), None)


MAX_STACKED_PICKLES = 64
MIN_OPS_UNDER_PICKLE_NAME = 2
"""Under a pickle name, a global-free stream that walks this many opcodes and then runs out of
bytes is a truncated pickle (the pickle scanner reports it); one that breaks on a bad opcode is
left to the text/extension fallbacks (text under a model name is reported as text)."""
MIN_OPS_AT_CAP = 1000
"""A global-free stream still valid when the walk buffer runs out is a pickle past this many ops."""
CALL_OPS = frozenset({"REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
"""Opcodes with which the unpickler calls into what an import returned."""
IMPORT_OPS = frozenset({"GLOBAL", "INST", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4"})
MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)
DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
"""``module.name`` as an import can resolve it (one dot at least: module and attribute)."""
OPCODE_BYTES = frozenset(ord(op.code) for op in pickletools.opcodes)
_EOF_MESSAGES = ("not enough data", "exhausted", "no newline found", "truncated", "eof")


class PickleWalk(NamedTuple):
    """What a bounded walk of one pickle saw, mirroring CPython's unpickler stack discipline."""

    complete: bool
    """Reached STOP with a consistent stack."""
    stop: int
    """Offset of that STOP (absolute), or of the break."""
    ops: int
    """Opcodes that executed cleanly before STOP or the break."""
    imports: tuple[str, ...]
    """``module.name`` of every import reached (``?`` when a STACK_GLOBAL operand is unknown)."""
    called: bool
    """A call opcode ran after an import: the loader executed code before any break."""
    truncated: bool
    """The walk broke because the bytes ran out (end of file or of the walk buffer)."""
    undecodable: bool = False
    """The walk broke on bytes that do not decode as an opcode or its operand (not on a stack
    or memo inconsistency): a window cut inside a string operand is one."""


_GET, _PUT, _MEMOIZE, _IMPORT, _CALL, _STRING = 1, 2, 4, 8, 16, 32


def _op_table() -> dict[object, tuple[str, int, int, int, int, int]]:
    """Per opcode, computed once: name, index of the mark in its stack inputs (-1: none),
    inputs above that mark, inputs, outputs, and flags (the sets above as bits)."""
    table: dict[object, tuple[str, int, int, int, int, int]] = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        at, need_above = -1, 0
        if pickletools.markobject in before:
            at = before.index(pickletools.markobject)
            need_above = sum(1 for s in before[at + 1 :] if s is not pickletools.stackslice)
        name = op.name
        flags = (
            (_GET if name in MEMO_GETS else 0)
            | (_PUT if name in MEMO_PUTS else 0)
            | (_MEMOIZE if name == "MEMOIZE" else 0)
            | (_IMPORT if name in IMPORT_OPS else 0)
            | (_CALL if name in CALL_OPS else 0)
            | (_STRING if name in STRING_OPS else 0)
        )
        table[op] = (name, at, need_above, len(before), len(op.stack_after), flags)
    return table


_OPS = _op_table()


def walk_pickle(data: bytes, start: int = 0) -> PickleWalk:
    """Walk one pickle from ``start`` the way CPython's unpickler would, without running it.

    The C unpickler keeps MARKs out of the stack as fences: ordinary opcodes cannot pop below
    the latest mark, mark-consuming opcodes need one, and POP right after MARK pops the mark.
    Any opcode is accepted at byte 0 (no PROTO needed) because CPython accepts it.
    """
    depth = 0
    marks: list[int] = []
    values: list[str | None] = []
    """The string constant (or ``None``) in each stack slot: STACK_GLOBAL's operands."""
    memo: set[int] = set()
    imports: list[str] = []
    called = False
    ops = 0
    pos = start
    table = _OPS
    try:
        for op, arg, rel in pickletools.genops(io.BytesIO(data[start:])):
            pos = start + (rel or 0)
            name, at, need_above, n_before, n_after, flags = table[op]
            if name == "MARK":
                marks.append(depth)
                ops += 1
                continue
            if name == "POP" and marks and depth == marks[-1]:
                marks.pop()
                ops += 1
                continue
            if flags & _GET and arg not in memo:
                # CPython: "Memo value not found"; nothing after this runs.
                return PickleWalk(False, pos, ops, tuple(imports), called, False)
            if flags & _PUT:
                if depth - (marks[-1] if marks else 0) < 1:
                    return PickleWalk(False, pos, ops, tuple(imports), called, False)
                memo.add(arg if isinstance(arg, int) else -1)
            elif flags & _MEMOIZE:
                memo.add(len(memo))
            operands = values[-2:] if name == "STACK_GLOBAL" else None
            if at >= 0:
                if not marks or depth - marks[-1] < need_above:
                    return PickleWalk(False, pos, ops, tuple(imports), called, False)
                depth = marks.pop()
                fence = marks[-1] if marks else 0
                if depth - fence < at:
                    return PickleWalk(False, pos, ops, tuple(imports), called, False)
                depth -= at
            else:
                fence = marks[-1] if marks else 0
                if n_before > depth - fence:
                    return PickleWalk(False, pos, ops, tuple(imports), called, False)
                depth -= n_before
            if len(values) > depth:
                del values[depth:]
            if flags & _IMPORT:
                if name in ("GLOBAL", "INST"):
                    qualname = ".".join(str(arg).split(" ", 1))
                    if not DOTTED_NAME.fullmatch(qualname):
                        # find_class cannot import it: the real loader stops right here.
                        return PickleWalk(False, pos, ops, tuple(imports), called, False)
                    imports.append(qualname)
                elif name == "STACK_GLOBAL":
                    mod, qual = operands if operands and len(operands) == 2 else (None, None)
                    imports.append(f"{mod}.{qual}" if mod and qual else "?")
                else:
                    imports.append(f"copyreg.extension[{arg}]")
            if flags & _CALL and imports:
                called = True
            if n_after == 1:
                depth += 1
                values.append(str(arg) if flags & _STRING else None)
            elif n_after:
                depth += n_after
                values.extend([str(arg) if flags & _STRING else None] * n_after)
            ops += 1
            if name == "STOP":
                return PickleWalk(True, pos, ops, tuple(imports), called, False)
    except ValueError as exc:
        text = str(exc).lower()
        eof = any(m in text for m in _EOF_MESSAGES)
        return PickleWalk(False, pos, ops, tuple(imports), called, eof, undecodable=True)
    except Exception:
        # Undecodable string arguments and the like: the unpickler fails there too.
        return PickleWalk(False, pos, ops, tuple(imports), called, False, undecodable=True)
    return PickleWalk(False, pos, ops, tuple(imports), called, True)


def _dangerous(imports: tuple[str, ...]) -> bool:
    """An import the allowlist rates HIGH or worse (``os.system``, ``builtins.eval``…)."""
    for qual in imports:
        mod, _, name = qual.rpartition(".")
        if not mod or qual == "?":
            continue
        from scanners import allowlist  # lazy: only pickles with imports get here

        verdict = allowlist.classify(mod, name)
        if verdict.severity is not None and verdict.severity >= Severity.HIGH:
            return True
    return False


def pickle_at_start(data: bytes, lname: str, whole: bool) -> bool:
    """Whether an unpickler handed these bytes would treat them as a pickle (and run it).

    ``whole`` says ``data`` is the entire file (otherwise the walk buffer ran out first).
    The bar, so prose, JSON, CSV, source and vocab files stay text: a stack-consistent walk to
    STOP (stacked pickles must all walk), or a break only after the loader already imported and
    called something, imported something the allowlist rates HIGH, or ran out of bytes after an
    import (a truncated pickle, nullifAI). Under a pickle name a shorter valid run is enough.
    """
    if not data or data[0] not in OPCODE_BYTES:
        return False
    start = 0
    for _ in range(MAX_STACKED_PICKLES):
        walk = walk_pickle(data, start)
        if not walk.complete:
            if walk.called or _dangerous(walk.imports):
                return True
            if walk.truncated and whole and not data.endswith(b"\n"):
                # NOTE: the pure-Python unpickler (and dill, built on it) reads a last text line
                # that has no newline as ``readline()[:-1]``: its final byte is dropped and the
                # opcode runs (``ios\nsystemX`` calls os.system). Judge the stream as it reads it.
                lenient = walk_pickle(data[:-1] + b"\n", start)
                if lenient.called or _dangerous(lenient.imports):
                    return True
            if walk.truncated and walk.imports:
                return True
            if walk.truncated and not whole and walk.ops >= MIN_OPS_AT_CAP:
                return True
            if lname.endswith(PICKLE_EXTS) and (
                walk.imports or (walk.truncated and walk.ops >= MIN_OPS_UNDER_PICKLE_NAME)
            ):
                return True
            return start > 0
        rest = data[walk.stop + 1 :]
        if walk.imports or lname.endswith(PICKLE_EXTS) or not rest.strip():
            return True
        if rest[0] not in OPCODE_BYTES:
            return False
        start = walk.stop + 1
    return True


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""``torch.serialization.MAGIC_NUMBER``: the first pickle of a legacy stream."""
LEGACY_PROTOCOL = 1001
"""``torch.serialization.PROTOCOL_VERSION``: the second pickle."""


def is_legacy_torch(head: bytes) -> bool:
    """Whether ``head`` starts with the legacy torch magic-number pickle (any protocol).

    This is what torch.load checks after its zip and tar tests fail: the first pickle must
    load as ``MAGIC_NUMBER``. Meant for identification (``scanners.sniff``).
    """
    window = head[:64]
    values: list[object] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for op, arg, _pos in pickletools.genops(io.BytesIO(window)):
                if op.name == "STOP":
                    return values == [LEGACY_MAGIC]
                if op.name not in ("PROTO", "FRAME"):
                    values.append(arg)
        except Exception:  # not a complete pickle in the window
            return False
    return False


STRICT_MIN_OPS = 8
"""A strict walk cut short by the window still counts after this many opcodes and an import."""


def is_pickle_stream(
    data: bytes, *, name: str = "", whole: bool = False, strict: bool = False
) -> bool:
    """Whether an unpickler handed ``data`` would treat it as a pickle (and run it).

    The default is the identification bar of ``pickle_at_start`` (``name`` is the lower-case
    base name, ``whole`` says ``data`` is the entire file). ``strict`` is the bar for bytes
    where no pickle belongs (tensor storages, raw records, flagged zip data): a ``PROTO 2..5``
    prefix and a stack-consistent walk that imports something and reaches ``STOP``, or stops on
    bytes that do not decode (the end of the window) after ``STRICT_MIN_OPS`` opcodes. Random
    numbers pass a looser test about once in a few hundred blobs; requiring an import keeps false
    alarms away.
    """
    if not strict:
        return pickle_at_start(data, name, whole)
    if len(data) < 4 or data[0] != 0x80 or not 2 <= data[1] <= 5:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools warns on odd string escapes
        walk = walk_pickle(data)
    # EXT codes resolve through copyreg's registry, empty in practice: the loader fails there.
    # Random bytes reach ``PROTO, EXT1, STOP`` about once in a few thousand blobs.
    imports = [name for name in walk.imports if not name.startswith("copyreg.extension[")]
    if walk.complete:
        return bool(imports)
    cut = walk.truncated or walk.undecodable  # the window ends inside an operand, or the data
    return bool(imports) and cut and walk.ops >= STRICT_MIN_OPS
