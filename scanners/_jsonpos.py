"""Byte offsets of values inside raw JSON text, for findings a reviewer can be pointed at.

``json.loads`` gives values, not positions, so the config and template scanners ask this module
where the value they judged sits in the file's bytes: ``JsonSource.value_offset(steps)`` walks the
raw text to the member named by each step (object key or array index; an object key repeated in
one object resolves to its LAST occurrence, the one Python's ``json`` keeps, unless the step names
the occurrence), and ``string_offset`` maps a position in a decoded string back through its JSON
escapes (``\\n``, ``\\"``, ``\\u00e9``, surrogate pairs) and UTF-8 to the raw byte.

Only called on text ``json.loads`` already accepted, and lazily (when a finding needs a place).
Memory is O(nesting depth): members are found by tokenising with one compiled pattern and a depth
counter (no recursion, no index of the document), so a step costs one pass over its container.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence

Step = str | int | tuple[str, int]
"""An object key (last occurrence), an array index, or ``(key, n)``: the n-th occurrence of a
repeated key (0-based; negative counts from the end)."""

BOM = b"\xef\xbb\xbf"
_TOKEN = re.compile(
    rb'[ \t\r\n]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\]:,])|([^ \t\r\n{}\[\]:,"]+))', re.S
)
_WS = re.compile(rb"[ \t\r\n]*")
_SKIP = re.compile(rb'[^"{}\[\]]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^"{}\[\]]*)*', re.S)
"""Everything up to the next bracket outside a string (nested values are skipped in C)."""


def byte_offset(text: str, pos: int, base: int = 0) -> int:
    """Byte offset of character ``pos`` of ``text`` once encoded as UTF-8 (plus ``base``).

    For a position ``json``/``str.decode`` reports in characters (parse errors).
    """
    return base + len(text[: max(0, pos)].encode("utf-8", "surrogatepass"))


def string_offset(raw: bytes, start: int, index: int) -> int:
    """Raw byte offset of character ``index`` of the JSON string token opening at ``raw[start]``.

    Walks the token: a plain character is 1-4 UTF-8 bytes, ``\\X`` two bytes, ``\\uXXXX`` six,
    and a ``\\uD8xx\\uDCxx`` surrogate pair twelve bytes for the ONE character Python decodes it
    to. An index past the end gives the closing quote.
    """
    i = start + 1
    count = 0
    end = len(raw)
    while count < index and i < end:
        b = raw[i]
        if b == 0x22:  # closing quote
            return i
        if b == 0x5C:  # backslash
            if raw[i + 1 : i + 2] == b"u":
                unit = _hex(raw[i + 2 : i + 6])
                if 0xD800 <= unit < 0xDC00 and raw[i + 6 : i + 8] == b"\\u":
                    low = _hex(raw[i + 8 : i + 12])
                    i += 12 if 0xDC00 <= low < 0xE000 else 6
                else:
                    i += 6
            else:
                i += 2
        elif b < 0x80:
            i += 1
        elif b >= 0xF0:
            i += 4
        elif b >= 0xE0:
            i += 3
        else:
            i += 2
        count += 1
    return min(i, end)


def _hex(digits: bytes) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        return -1


def _key(token: bytes) -> str:
    if b"\\" not in token:
        return token[1:-1].decode("utf-8", "surrogatepass")
    value = json.loads(token)
    return value if isinstance(value, str) else ""


def members(raw: bytes, start: int) -> Iterator[tuple[str | int, int, int]]:
    """Direct members of the container opening at ``raw[start]``: (key or index, key offset,
    value offset); for array items the key offset is the value's. Nested values are skipped."""
    is_object = raw[start : start + 1] == b"{"
    pos = start + 1
    depth = 0
    index = 0
    key: str | None = None
    key_at = 0
    expect_key = is_object
    while True:
        match = _TOKEN.match(raw, pos)
        if match is None or match.end() == pos:
            return
        pos = match.end()
        string, punct, _literal = match.groups()
        begin = match.start(1) if string else match.start(2) if punct else match.start(3)
        if depth:
            if punct in (b"{", b"["):
                depth += 1
            elif punct in (b"}", b"]"):
                depth -= 1
            while depth:  # inside a nested value: jump from bracket to bracket over strings
                skip = _SKIP.match(raw, pos)
                pos = skip.end() if skip else pos
                bracket = raw[pos : pos + 1]
                if not bracket:
                    return
                pos += 1
                depth += 1 if bracket in (b"{", b"[") else -1
            continue
        if punct in (b"}", b"]"):
            return
        if punct == b",":
            expect_key = is_object
            continue
        if punct == b":":
            continue
        if is_object and expect_key:
            key, key_at, expect_key = _key(string or b'""'), begin, False
            continue
        if is_object:
            yield (key or ""), key_at, begin
        else:
            yield index, begin, begin
            index += 1
        if punct in (b"{", b"["):
            depth = 1


def _root(raw: bytes) -> int | None:
    start = len(BOM) if raw.startswith(BOM) else 0
    ws = _WS.match(raw, start)
    pos = ws.end() if ws else start
    return pos if pos < len(raw) else None


class JsonSource:
    """The raw bytes of one parsed JSON document, asked where values are."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._members: dict[int, dict[str | int, list[tuple[int, int]]]] = {}
        """Members of each container already walked, by its offset: many findings under one
        ``auto_map`` cost one walk. Only containers on a finding's path are kept (the parsed
        document ``json.loads`` built is already larger)."""

    def _lookup(self, at: int) -> dict[str | int, list[tuple[int, int]]]:
        table = self._members.get(at)
        if table is None:
            table = {}
            for name, key, value in members(self.raw, at):
                table.setdefault(name, []).append((key, value))
            self._members[at] = table
        return table

    def member(self, steps: Sequence[Step]) -> tuple[int, int] | None:
        """(key offset, value offset) of the member ``steps`` name; ``None`` when absent."""
        here = _root(self.raw)
        if here is None:
            return None
        found: tuple[int, int] | None = (here, here)
        try:
            for step in steps:
                name, nth = step if isinstance(step, tuple) else (step, -1)
                hits = self._lookup(here).get(name, []) if self.raw[here] in b"{[" else []
                if not hits or not -len(hits) <= nth < len(hits):
                    return None
                found = hits[nth]
                here = found[1]
        except (ValueError, IndexError, UnicodeDecodeError):
            return None  # NOTE: never fails a scan: the finding keeps no offset
        return found

    def value_offset(self, steps: Sequence[Step]) -> int | None:
        """Byte offset of the value ``steps`` name (a string's opening quote)."""
        found = self.member(steps)
        return None if found is None else found[1]

    def key_offset(self, steps: Sequence[Step]) -> int | None:
        """Byte offset of the key (opening quote) of the member ``steps`` name."""
        found = self.member(steps)
        return None if found is None else found[0]

    def string_mapper(self, steps: Sequence[Step]) -> Callable[[int], int] | None:
        """Character position in the decoded string value → byte offset in the file."""
        at = self.value_offset(steps)
        if at is None or self.raw[at : at + 1] != b'"':
            return None
        raw = self.raw
        return lambda index: string_offset(raw, at, index)

    def duplicate_key(self, name: str) -> int | None:
        """Offset of the LAST occurrence of ``name`` in the first object holding it twice (the
        value Python's ``json`` keeps), found in one pass with O(depth) memory."""
        frames: list[list[int]] = []  # per open container: [is_object, count, last key offset]
        pos = 0 if not self.raw.startswith(BOM) else len(BOM)
        expect_key = False
        while True:
            match = _TOKEN.match(self.raw, pos)
            if match is None or match.end() == pos:
                return None
            pos = match.end()
            string, punct, _literal = match.groups()
            if punct in (b"{", b"["):
                frames.append([punct == b"{", 0, -1])
                expect_key = punct == b"{"
            elif punct in (b"}", b"]"):
                if not frames:
                    return None
                is_object, count, last = frames.pop()
                if is_object and count > 1:
                    return last
                expect_key = False
            elif punct == b",":
                expect_key = bool(frames and frames[-1][0])
            elif string is not None and expect_key:
                expect_key = False
                if _key(string) == name:
                    frames[-1][1] += 1
                    frames[-1][2] = match.start(1)


__all__ = ["BOM", "JsonSource", "Step", "byte_offset", "members", "string_offset"]
