"""Output formats: the one place they are listed. A new format is one module plus one line.

Each format module is imported only when its format is used, so a scan printing the table does
not pay for the HTML or SARIF writers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from supplychain.formats.base import Format

_REGISTRY: dict[str, tuple[str, str]] = {
    "table": ("supplychain.formats.text", "TableFormat"),
    "json": ("supplychain.formats.json", "JsonFormat"),
    "sarif": ("supplychain.formats.sarif", "SarifFormat"),
    "html": ("supplychain.formats.html", "HtmlFormat"),
}
"""Format name → (module, class); the name must equal the class's ``name``."""


class _Formats(Mapping[str, Format]):
    """The format registry: names known up front, each format built on first use."""

    def __init__(self) -> None:
        self._built: dict[str, Format] = {}

    def __getitem__(self, name: str) -> Format:
        if name not in self._built:
            module, attr = _REGISTRY[name]
            fmt: Format = getattr(importlib.import_module(module), attr)()
            self._built[name] = fmt
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)


FORMATS: Mapping[str, Format] = _Formats()

__all__ = ["FORMATS", "Format"]
