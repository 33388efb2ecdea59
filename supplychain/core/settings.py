"""Typed, frozen scan settings and their fingerprint: the second half of a verdict-cache key.

``Settings`` holds every input that can change a per-file verdict and nothing else: limits, the
policy's extra allowed imports, which scanners run, the typed sections scanners read (dataset
fields and checks…), the command. What only changes how a run is *judged* or *shown* (fail-on,
strict, ignores, output format, paths, jobs) lives in the policy or the caller, so it can never
split the cache.

``fingerprint()`` digests those settings together with the code that turns bytes into findings:
the tool version, a digest of every source file of the ``scanners`` package (rule tables, the
pickle allowlist and derived denylist, sniffing and every scanner) and of the engine-side modules
that shape a per-file result. It is stable across runs and machines (no paths, no timestamps, no
compiled files) and changes whenever any of those inputs does.

Only the standard library and the model/limits leaves are imported here (the fingerprint reads
scanner sources as bytes, it does not import them), so building settings stays cheap.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from supplychain.core import __version__
from supplychain.core.limits import Limits

FINGERPRINT_VERSION = 1
"""Bumped when the fingerprint document itself changes shape."""

_S = TypeVar("_S")

ENGINE_MODULES = (
    "supplychain.core.model",
    "supplychain.core.rules",
    "supplychain.core.limits",
    "supplychain.engine",
)
"""Project modules outside ``scanners`` whose code shapes a per-file result."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that can change what a file scan finds (see the module docstring)."""

    limits: Limits = field(default_factory=Limits)
    allow_imports: frozenset[str] = frozenset()
    """Policy additions to the pickle import allowlist (``module.name`` or ``module.*``)."""
    scanners: tuple[type[object], ...] | None = None
    """Scanner classes to run; ``None`` means every built-in scanner."""
    sections: tuple[object, ...] = ()
    """Typed sections (frozen dataclasses) scanners read with ``ScanContext.settings``, e.g.
    ``DatasetOptions``; at most one per type."""
    command: str = "scan"

    def __post_init__(self) -> None:
        types = [type(s) for s in self.sections]
        if len(types) != len(set(types)):
            raise ValueError("at most one settings section per type")
        for section in self.sections:
            if not dataclasses.is_dataclass(section) or isinstance(section, type):
                raise TypeError(f"settings section {section!r} is not a dataclass instance")

    def section(self, kind: type[_S]) -> _S | None:
        """The section of type ``kind``, if one was given."""
        for s in self.sections:
            if isinstance(s, kind):
                return s
        return None

    def fingerprint_inputs(self) -> dict[str, object]:
        """The canonical document the fingerprint digests (shown by tests and for debugging)."""
        scanners: object = "builtin"
        if self.scanners is not None:
            scanners = sorted(
                [
                    f"{cls.__module__}.{cls.__qualname__}",
                    str(getattr(cls, "version", "")),
                    _module_digest(cls.__module__),
                ]
                for cls in self.scanners
            )
        return {
            "fingerprint_version": FINGERPRINT_VERSION,
            "tool_version": __version__,
            "code": _code_digests(),
            "scanners": scanners,
            "limits": _canonical(self.limits),
            "allow_imports": sorted(self.allow_imports),
            "sections": sorted(
                [f"{type(s).__module__}.{type(s).__qualname__}", _canonical(s)]
                for s in self.sections
            ),
            "command": self.command,
        }

    def fingerprint(self) -> str:
        """Hex sha256 of ``fingerprint_inputs()``: with a file's sha256, a verdict-cache key."""
        doc = json.dumps(self.fingerprint_inputs(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()


def _canonical(value: object) -> object:
    """JSON-ready, order-independent form of a settings value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, frozenset | set):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def _digest_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@functools.cache
def _module_digest(module: str) -> str:
    """Digest of one module's source, read without importing it ("" if there is none)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    if not origin or not origin.endswith(".py"):
        return ""
    return _digest_files([Path(origin)])


@functools.cache
def _code_digests() -> dict[str, str]:
    """Digests of the code that turns bytes into findings, by component.

    ``allowlist`` and ``denylist`` are named on their own (the issue asks for them); ``scanners``
    covers every source file of the package (rules, sniffing, parsers), C source included and
    compiled objects excluded, so the digest is the same on every machine.
    """
    spec = importlib.util.find_spec("scanners")
    if spec is None or not spec.submodule_search_locations:
        return {}
    package = Path(next(iter(spec.submodule_search_locations)))
    sources = sorted(
        p
        for p in package.rglob("*")
        if p.suffix in (".py", ".c", ".pyi", ".json", ".txt")
        and p.is_file()
        and "__pycache__" not in p.parts
    )
    return {
        "scanners": _digest_files(sources),
        "allowlist": _digest_files([package / "allowlist.py"]),
        "denylist": _digest_files([package / "denylist_derived.py"]),
        "engine": "".join(_module_digest(m)[:16] for m in ENGINE_MODULES),
    }


__all__ = ["FINGERPRINT_VERSION", "Settings"]
