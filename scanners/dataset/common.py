"""The dataset seam: rows are streamed once and every ``DatasetCheck`` sees every row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol

from supplychain.core.model import Finding, Rule


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """What ``supplychain data`` was told; fields are auto-detected when ``None``."""

    text_field: str | None = None
    label_field: str | None = None
    id_field: str | None = None
    checks: frozenset[str] | None = None
    """Names of the checks to run (``DatasetCheck.name``); ``None`` runs them all."""


@dataclass(frozen=True, slots=True)
class Record:
    """One dataset row as the checks see it."""

    index: int
    """0-based row: JSONL line, CSV row after the header, Parquet/Arrow row."""
    text: str
    """The text field (chat rows: the messages joined as ``role: content`` lines)."""
    label: str | None = None
    id: str | None = None
    source: str | None = None
    """Where a RAG passage came from (url/source/title field), for cross-source checks."""
    values: tuple[float, ...] = ()
    """The row's numeric columns as floats, in one fixed column order for the whole file
    (``NaN`` for a cell that is not a number); empty unless the file has at least two numeric
    columns besides the label and id. For tabular checks (LOF outliers)."""
    extra: tuple[tuple[str, str], ...] = ()
    """Every other column as ``(name, value)`` pairs (nested JSON flattened to dotted names,
    list items as ``name[]``; numbers as exact integer digits), filled only when a selected check
    sets ``wants_extra_fields`` so the other checks pay nothing. A last pair named
    ``EXTRA_CUT`` says how many fields the size/depth bounds left out."""


EXTRA_CUT = "\x00extra-cut"
"""Name of the ``Record.extra`` pair counting the fields a row's bounds left unread."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """Which file the rows come from and which fields were used (reported to the user)."""

    path: str
    member: tuple[str, ...]
    text_field: str | None
    label_field: str | None
    id_field: str | None
    rows: int
    numeric_fields: tuple[str, ...] = ()
    """Names of the numeric columns, in the order of ``Record.values``."""


class DatasetCheck(Protocol):
    """One poisoning signal, fed row by row; memory must stay bounded by its own sketches."""

    name: ClassVar[str]
    rules: ClassVar[tuple[Rule, ...]]

    def observe(self, record: Record) -> None:
        """Take one row. Must not keep every row's text (bounded sketches or reservoirs only)."""
        ...

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Emit findings once all rows were seen; each finding names its rows."""
        ...


@contextmanager
def single_blas() -> Iterator[None]:
    """Run NumPy/SciPy linear algebra on one BLAS thread.

    On a shared or busy machine OpenBLAS threads spin on each other: a randomized SVD of 1,000
    rows took 1.5 s of CPU with the default pool and 0.09 s with one thread. The checks' matrices
    are small (one sample, tens of components), so one thread is also the fastest when idle.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
