"""The output-format seam: a format is a pure function of a ``Report``."""

from __future__ import annotations

from typing import ClassVar, Protocol, TextIO

from supplychain.core.model import Report


class Format(Protocol):
    """Renders a report. Never re-scans, never reads policy, never exits."""

    name: ClassVar[str]

    def render(self, report: Report, out: TextIO) -> None:
        """Write the whole report to ``out``."""
        ...
