"""Lazy imports for heavy libraries, so ``supplychain scan`` starts fast.

CI hooks run the CLI once per file: importing NumPy (or worse) for every run of a scan that never
touches a dataset would dominate the start-up time. ``importlib.util.LazyLoader`` is not
thread-safe before Python 3.12 (scans run in threads), so this is a small proxy that imports the
real module through the normal, locked import machinery on first attribute access.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    """Stands in for a module until an attribute is read; then caches what it read."""

    def __getattr__(self, attr: str) -> Any:
        real = importlib.import_module(self.__name__)
        value = getattr(real, attr)
        setattr(self, attr, value)
        return value


def lazy_module(name: str) -> ModuleType:
    """A proxy for ``name`` that imports it on first use."""
    return _LazyModule(name)
