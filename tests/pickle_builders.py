"""Opcode-level pickle builders for tests: hostile pickles are written byte by byte.

Never pickle a live object with a ``__reduce__`` to make a malicious sample: build the opcodes.
Every payload built here is inert if someone loads it (``print``, ``os.system('true')``…).
"""

from __future__ import annotations

import struct


class PickleBuilder:
    """Appends opcodes; ``bytes()`` returns the stream. Methods return ``self`` to chain."""

    def __init__(self, proto: int | None = 4) -> None:
        self.parts: list[bytes] = []
        if proto is not None and proto >= 2:
            self.parts.append(b"\x80" + bytes([proto]))

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)

    def raw(self, data: bytes) -> PickleBuilder:
        self.parts.append(data)
        return self

    # --- constants
    def str(self, text: str) -> PickleBuilder:
        data = text.encode("utf-8", "surrogatepass")
        if len(data) < 256:
            return self.raw(b"\x8c" + bytes([len(data)]) + data)
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def binunicode(self, text: str) -> PickleBuilder:
        data = text.encode()
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def unicode0(self, text: str) -> PickleBuilder:
        return self.raw(b"V" + text.encode("raw-unicode-escape") + b"\n")

    def string0(self, text: str) -> PickleBuilder:
        return self.raw(b"S" + repr(text).encode() + b"\n")

    def short_binstring(self, text: str) -> PickleBuilder:
        data = text.encode("latin-1")
        return self.raw(b"U" + bytes([len(data)]) + data)

    def bytes_(self, data: bytes) -> PickleBuilder:
        if len(data) < 256:
            return self.raw(b"C" + bytes([len(data)]) + data)
        return self.raw(b"B" + struct.pack("<I", len(data)) + data)

    def bytes8(self, data: bytes) -> PickleBuilder:
        return self.raw(b"\x8e" + struct.pack("<Q", len(data)) + data)

    def bytearray8(self, data: bytes) -> PickleBuilder:
        return self.raw(b"\x96" + struct.pack("<Q", len(data)) + data)

    def int(self, value: int) -> PickleBuilder:
        if 0 <= value < 256:
            return self.raw(b"K" + bytes([value]))
        if 0 <= value < 65536:
            return self.raw(b"M" + struct.pack("<H", value))
        if -(2**31) <= value < 2**31:
            return self.raw(b"J" + struct.pack("<i", value))
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return self.raw(b"\x8a" + bytes([len(data)]) + data)

    def none(self) -> PickleBuilder:
        return self.raw(b"N")

    def true(self) -> PickleBuilder:
        return self.raw(b"\x88")

    def false(self) -> PickleBuilder:
        return self.raw(b"\x89")

    def float(self, value: float) -> PickleBuilder:
        return self.raw(b"G" + struct.pack(">d", value))

    def const(self, value: object) -> PickleBuilder:
        """Push a plain constant (str, bytes, int, float, bool, None, tuple/dict of those)."""
        if value is None:
            return self.none()
        if value is True:
            return self.true()
        if value is False:
            return self.false()
        if isinstance(value, str):
            return self.str(value)
        if isinstance(value, bytes):
            return self.bytes_(value)
        if isinstance(value, int):
            return self.int(value)
        if isinstance(value, float):
            return self.float(value)
        if isinstance(value, tuple):
            self.mark()
            for item in value:
                self.const(item)
            return self.tuple()
        if isinstance(value, dict):
            self.empty_dict()
            if value:
                self.mark()
                for key, item in value.items():
                    self.const(key).const(item)
                self.setitems()
            return self
        raise TypeError(type(value))

    # --- structure
    def mark(self) -> PickleBuilder:
        return self.raw(b"(")

    def tuple(self) -> PickleBuilder:
        return self.raw(b"t")

    def tuple1(self) -> PickleBuilder:
        return self.raw(b"\x85")

    def tuple2(self) -> PickleBuilder:
        return self.raw(b"\x86")

    def empty_tuple(self) -> PickleBuilder:
        return self.raw(b")")

    def empty_dict(self) -> PickleBuilder:
        return self.raw(b"}")

    def empty_list(self) -> PickleBuilder:
        return self.raw(b"]")

    def setitem(self) -> PickleBuilder:
        return self.raw(b"s")

    def setitems(self) -> PickleBuilder:
        return self.raw(b"u")

    def append(self) -> PickleBuilder:
        return self.raw(b"a")

    def appends(self) -> PickleBuilder:
        return self.raw(b"e")

    def pop(self) -> PickleBuilder:
        return self.raw(b"0")

    def dup(self) -> PickleBuilder:
        return self.raw(b"2")

    def memoize(self) -> PickleBuilder:
        return self.raw(b"\x94")

    def binput(self, idx: int) -> PickleBuilder:
        return self.raw(b"q" + bytes([idx]))

    def long_binput(self, idx: int) -> PickleBuilder:
        return self.raw(b"r" + struct.pack("<I", idx))

    def binget(self, idx: int) -> PickleBuilder:
        return self.raw(b"h" + bytes([idx]))

    def long_binget(self, idx: int) -> PickleBuilder:
        return self.raw(b"j" + struct.pack("<I", idx))

    def put0(self, idx: int) -> PickleBuilder:
        return self.raw(b"p" + str(idx).encode() + b"\n")

    def get0(self, idx: int) -> PickleBuilder:
        return self.raw(b"g" + str(idx).encode() + b"\n")

    def frame(self, size: int) -> PickleBuilder:
        return self.raw(b"\x95" + struct.pack("<Q", size))

    def stop(self) -> PickleBuilder:
        return self.raw(b".")

    # --- imports and calls
    def global_(self, module: str, name: str) -> PickleBuilder:
        """Protocol 0 ``GLOBAL``: module and name as text lines."""
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self, module: str, name: str, memoize: bool = True) -> PickleBuilder:
        self.str(module)
        if memoize:
            self.memoize()
        self.str(name)
        if memoize:
            self.memoize()
        return self.raw(b"\x93")

    def inst(self, module: str, name: str) -> PickleBuilder:
        """Protocol 0 ``INST`` (pops the args from the last MARK)."""
        return self.raw(b"i" + module.encode() + b"\n" + name.encode() + b"\n")

    def obj(self) -> PickleBuilder:
        return self.raw(b"o")

    def reduce(self) -> PickleBuilder:
        return self.raw(b"R")

    def build(self) -> PickleBuilder:
        return self.raw(b"b")

    def newobj(self) -> PickleBuilder:
        return self.raw(b"\x81")

    def newobj_ex(self) -> PickleBuilder:
        return self.raw(b"\x92")

    def ext1(self, code: int) -> PickleBuilder:
        return self.raw(b"\x82" + bytes([code]))

    def ext2(self, code: int) -> PickleBuilder:
        return self.raw(b"\x83" + struct.pack("<H", code))

    def ext4(self, code: int) -> PickleBuilder:
        return self.raw(b"\x84" + struct.pack("<i", code))

    def persid0(self, pid: str) -> PickleBuilder:
        return self.raw(b"P" + pid.encode() + b"\n")

    def binpersid(self) -> PickleBuilder:
        return self.raw(b"Q")

    def call(self, module: str, name: str, *args: object, stack: bool = True) -> PickleBuilder:
        """``module.name(*args)`` with constant args, via STACK_GLOBAL (or GLOBAL) + REDUCE."""
        if stack:
            self.stack_global(module, name)
        else:
            self.global_(module, name)
        self.mark()
        for a in args:
            self.const(a)
        return self.tuple().reduce()


def call_pickle(module: str, name: str, *args: object, proto: int = 4) -> bytes:
    """A complete pickle whose result is ``module.name(*args)``."""
    return bytes(PickleBuilder(proto).call(module, name, *args, stack=proto >= 4).stop())


def global0(module: str, name: str, *args: object) -> bytes:
    """Protocol 0 ``GLOBAL`` + ``REDUCE``: the classic ``cos\\nsystem\\n`` shape."""
    b = PickleBuilder(None).global_(module, name).mark()
    for a in args:
        b.const(a)
    return bytes(b.tuple().reduce().stop())
