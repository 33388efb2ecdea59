"""Shared fixtures: sample lookup and a frozen clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def sample() -> object:
    """``sample(rel)`` → path of a committed sample (asserting it exists)."""

    def get(rel: str) -> Path:
        path = SAMPLES / rel
        assert path.exists(), f"missing sample {rel}: run python samples/make_samples.py"
        return path

    return get


@pytest.fixture
def today() -> dt.date:
    """A fixed 'today' for expiry tests."""
    return dt.date(2026, 11, 23)
