"""Output formats: the one place they are listed. A new format is one module plus one line."""

from __future__ import annotations

from collections.abc import Mapping

from supplychain.formats.base import Format
from supplychain.formats.html import HtmlFormat
from supplychain.formats.json import JsonFormat
from supplychain.formats.sarif import SarifFormat
from supplychain.formats.text import TableFormat

FORMATS: Mapping[str, Format] = {
    f.name: f for f in (TableFormat(), JsonFormat(), SarifFormat(), HtmlFormat())
}

__all__ = ["FORMATS", "Format"]
