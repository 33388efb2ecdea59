"""The fake Hub fixtures of the provenance tests, reused for the BOM's Hub case."""

from __future__ import annotations

from tests.provenance.conftest import fakehub, no_internet

__all__ = ["fakehub", "no_internet"]
