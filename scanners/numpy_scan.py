"""NumPy ``.npy`` / ``.npz``: parse the header strictly; object arrays are pickles.

NumPy, when pickles are allowed, unpickles the payload of any array whose dtype holds Python
objects, so that payload is dispatched to the engine as a ``PICKLE`` member. For plain dtypes the
header must describe exactly the bytes that follow: bytes after the array are a hiding place and
are reported and dispatched, too few bytes mean the file is truncated. ``.npz`` files are zips of
``.npy`` members, walked with the tolerant zip reader like any other archive.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from collections.abc import Iterator
from typing import Any, ClassVar

from scanners._io import read_exact
from scanners.base import Artifact, ScanContext
from scanners.containers import ARC_RULES, Spool, bounded_reads, handoff, walk_zip
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

MAGIC = b"\x93NUMPY"
_PY2_LONG = re.compile(r"(\b\d+)L\b")
MAX_HEADER = 1 << 20
"""numpy refuses headers over 10 000 bytes by default; 1 MiB leaves room and bounds parsing."""
MAX_BYTES = 2**63 - 1
"""Largest array byte size a 64-bit loader can represent."""

NPY001 = make_rule(
    "NPY001",
    "Object array (pickle payload)",
    Severity.MEDIUM,
    "The array's dtype holds Python objects, so its data is a pickle that np.load executes when "
    "allow_pickle is set to True. Many pipelines pass that flag without thinking. The payload is "
    "analysed as a pickle member.",
    "Store numeric arrays only (or safetensors); never load this file with allow_pickle set to "
    "True unless its pickle findings are clean.",
    cwe=502,
)
NPY002 = make_rule(
    "NPY002",
    "Data after the array",
    Severity.MEDIUM,
    "The file holds more bytes than its header describes. np.load ignores them, which makes the "
    "tail a place to hide a payload for another stage to read. The tail is analysed as its own "
    "member.",
    "Re-save the array with numpy.save from trusted code.",
    cwe=506,
)
NPY003 = make_rule(
    "NPY003",
    "Impossible array shape",
    Severity.HIGH,
    "The declared shape times the item size overflows what a 64-bit loader can represent. "
    "Loaders that multiply sizes in fixed-width integers under-allocate and then read or write "
    "out of bounds.",
    "Discard the file; it was not written by numpy.",
    cwe=190,
)


class NumpyScanner:
    """``.npy`` headers (object dtype → pickle payload) and ``.npz`` members."""

    name: ClassVar[str] = "numpy"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.NUMPY_NPY, ArtifactKind.NUMPY_NPZ}
    )
    rules: ClassVar[tuple[Rule, ...]] = (NPY001, NPY002, NPY003, *ARC_RULES)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Parse an ``.npy`` header, or walk an ``.npz`` and dispatch every member."""
        if artifact.kind is ArtifactKind.NUMPY_NPZ:
            yield from walk_zip(artifact, ctx)
            return
        yield from _scan_npy(artifact, ctx)


def parse_header(stream: Any, size: int) -> tuple[dict[str, Any], int]:
    """Read and strictly validate an ``.npy`` header; return it and the data offset."""
    stream.seek(0)
    if read_exact(stream, 6, "npy magic") != MAGIC:
        raise ArtifactError("not an .npy file (bad magic)", 0)
    major, minor = read_exact(stream, 2, "npy version")
    if (major, minor) == (1, 0):
        (hlen,) = struct.unpack("<H", read_exact(stream, 2, "npy header length"))
        encoding, start = "latin1", 10
    elif (major, minor) in ((2, 0), (3, 0)):
        (hlen,) = struct.unpack("<I", read_exact(stream, 4, "npy header length"))
        encoding, start = ("latin1" if major == 2 else "utf-8"), 12
    else:
        raise ArtifactError(f"unsupported .npy version {major}.{minor}", 6)
    if hlen > MAX_HEADER:
        raise ArtifactError(f".npy header of {hlen} bytes (cap {MAX_HEADER})", 8)
    if start + hlen > size:
        raise ArtifactError(".npy header runs past the end of the file", start)
    raw = read_exact(stream, hlen, "npy header")
    try:
        text = raw.decode(encoding)
        if major == 1 and "L" in text:
            # Python 2 numpy wrote longs as ``2L``; numpy's own loader strips the suffix too.
            text = _PY2_LONG.sub(r"\1", text)
        # literal_eval builds literals only (no names, calls or attributes); input is capped.
        header = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ArtifactError(".npy header is not a Python literal", start) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ArtifactError(".npy header lacks exactly descr/fortran_order/shape", start)
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ArtifactError(f".npy shape is not a tuple of sizes: {shape!r}"[:200], start)
    if not isinstance(header["fortran_order"], bool):
        raise ArtifactError(".npy fortran_order is not a boolean", start)
    return header, start + hlen


def _dtype(descr: Any, offset: int) -> Any:
    import numpy as np
    from numpy.lib import format as npformat

    try:
        # descr_to_dtype only builds a dtype from strings and tuples; it imports nothing.
        dtype = npformat.descr_to_dtype(descr)
        return np.dtype(dtype)
    except Exception as exc:  # numpy raises many types on bad descriptors
        raise ArtifactError(f".npy dtype {descr!r} is invalid: {exc}"[:300], offset) from None


def _scan_npy(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    stream = artifact.stream
    header, data_start = parse_header(stream, artifact.size)
    dtype = _dtype(header["descr"], 8)
    remaining = artifact.size - data_start
    ctx.emit(artifact.fact("format", "numpy"))
    ctx.emit(artifact.fact("numpy.dtype", str(dtype) if not dtype.hasobject else "object"))
    ctx.emit(artifact.fact("numpy.descr", repr(header["descr"])))
    ctx.emit(artifact.fact("numpy.shape", tuple(str(d) for d in header["shape"])))
    ctx.emit(artifact.fact("numpy.fortran_order", bool(header["fortran_order"])))
    if dtype.hasobject:
        yield artifact.finding(
            NPY001,
            "array dtype holds Python objects: the data is a pickle",
            evidence=f"descr={header['descr']!r}",
            offset=data_start,
        )
        yield from _dispatch_tail(
            artifact, ctx, data_start, remaining, "<object array payload>", ArtifactKind.PICKLE
        )
        return
    count = math.prod(header["shape"])
    nbytes = count * dtype.itemsize
    if nbytes > MAX_BYTES or count > MAX_BYTES:
        yield artifact.finding(
            NPY003,
            f"shape {header['shape']!r} with item size {dtype.itemsize} overflows 64 bits",
            evidence=repr(header["shape"]),
            offset=8,
        )
        return
    if nbytes > remaining:
        raise ArtifactError(
            f".npy truncated: header declares {nbytes} data bytes, {remaining} present",
            artifact.size,
        )
    if nbytes < remaining:
        extra = remaining - nbytes
        yield artifact.finding(
            NPY002,
            f"{extra} bytes after the array data",
            offset=data_start + nbytes,
            confidence=Confidence.HIGH,
        )
        yield from _dispatch_tail(
            artifact, ctx, data_start + nbytes, extra, "<data after array>", ArtifactKind.UNKNOWN
        )


def _dispatch_tail(
    artifact: Artifact,
    ctx: ScanContext,
    start: int,
    length: int,
    name: str,
    kind: ArtifactKind,
) -> Iterator[Finding]:
    """Spool ``length`` bytes from ``start`` and hand them to the engine as a member."""
    artifact.stream.seek(start)
    spool = Spool()
    error = spool.fill(bounded_reads(artifact.stream, length, ctx.limits.max_read_bytes))

    def dispatch(child: Artifact) -> Iterator[Finding]:
        from dataclasses import replace

        return ctx.dispatch(replace(child, kind=kind))

    yield from handoff(artifact, name, spool, dispatch, error)
