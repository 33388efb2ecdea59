"""Streaming dataset readers: JSONL, CSV/TSV, Parquet and Arrow rows → ``Record``s.

Every reader is bounded by the row, never by the file: JSONL lines and CSV lines are read with a
cap (``Limits.max_line_bytes``) and an oversized line is skipped up to its newline without being
kept; Parquet is read batch by batch and only the needed columns; Arrow IPC batch by batch. Bad
rows (broken JSON, ragged CSV, undecodable bytes, missing text) are counted with their first row
indices and reported once per file, and the run goes on. Nothing is deserialized beyond JSON/CSV
text and Arrow buffers.
"""

from __future__ import annotations

import codecs
import csv
import heapq
import io
import itertools
import json
import math
import threading
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO

from scanners.base import Artifact, ScanContext
from scanners.dataset.common import (
    EXTRA_CUT,
    DatasetInfo,
    DatasetOptions,
    Record,
    dataset_finding,
)
from supplychain.core.errors import ArtifactError, LimitExceeded, MissingDependency
from supplychain.core.model import (
    ArtifactKind,
    Confidence,
    FactValue,
    Finding,
    Rule,
    Severity,
)
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import pyarrow as pa

CHUNK = 1 << 20
FIRST_ROWS_SHOWN = 20
"""Row indices kept per issue (the count is always exact)."""
DETECT_ROWS = 64
DETECT_BYTES = 8 * 2**20
"""JSONL rows buffered to detect fields (whichever cap comes first)."""
PARQUET_BATCH = 1024
DELIMITER_PROBE_LINES = 8
"""Leading ``#`` lines skipped to find the line the CSV delimiter is guessed on."""
OVERSIZED_MARK = "\x00\x00supplychain:oversized-line\x00"
"""Stands in for a CSV line too long to read (never produced by real text)."""
MAX_LABEL_ITEMS = 8
"""A list-valued label longer than this (token tags) is not a class label."""
TEXT_MIN_MEAN_CHARS = 20
"""A column found by content (no known text name) must average at least this many characters,"""
TEXT_SHORT_MIN_CHARS = 12
TEXT_SHORT_MIN_WORDS = 3.0
"""...or at least 12 characters and 3 words (short utterances, tweets, intents),"""
TEXT_MAX_NON_TEXT = 0.2
"""...and at most this share of its sampled values may be numbers, codes or single tokens."""
TEXT_MIN_LETTERS = 0.3
TEXT_CANDIDATES = 256
"""Longest string columns tested for text (bounds the cost on very wide tables)."""
"""Share of letters among the non-space characters for a value to read as text."""
REGRESSION_MIN_DISTINCT = 5
REGRESSION_MANY_DISTINCT = 50
REGRESSION_DISTINCT_SHARE = 0.2
"""A label column of non-integer numbers with more than 50 distinct values, or more than 20 % of
its sampled values distinct (at least 5), is a regression target, not a class label."""
NUMERIC_MIN_SHARE = 0.95
"""A column is numeric when at least this share of its sampled values are finite numbers."""
MAX_NUMERIC_COLUMNS = 256
"""Numeric columns carried in ``Record.values`` (the first ones in file order)."""
NUMERIC_CANDIDATES = 2048
"""Columns tested for being numeric (bounds the detection cost on very wide tables)."""
MAX_COLUMNS = 65_536
"""Columns a dataset's fields are chosen from; a wider table fails closed (DAT009)."""
MAX_EXTRA_FIELDS = 512
"""Other fields carried per row in ``Record.extra`` (after flattening); the rest are counted."""
EXTRA_DEPTH = 6
"""Nesting levels of JSON objects/lists flattened into ``Record.extra``; deeper is counted."""
EXTRA_MIN_DIGITS = 6
"""Integers shorter than this cannot be a card, phone, IBAN or national id: not carried."""
EXACT_FLOAT = 2**53
"""Integral floats up to this are exact; above it their digits are not the ones written."""
NON_FEATURE_COLUMNS = frozenset(
    {"id", "_id", "uid", "idx", "guid", "example_id", "index", "unnamed: 0", "row", "row_id"}
)
"""Row identifiers and index columns written by pandas: numbers, but not features."""

# ---------------------------------------------------------------------------------------------
# Rules (DAT001–DAT009 belong to the readers; what was read is reported as facts)
# ---------------------------------------------------------------------------------------------

DAT001 = make_rule(
    "DAT001",
    "Unparseable dataset rows",
    Severity.HIGH,
    "Rows that are not valid records (broken JSON, JSON nested deeper than the parser goes, a "
    "JSON value that is not an object, a CSV row the csv grammar rejects) were not analysed. "
    "Lenient loaders may still read them, and a broken row can hide content from a scanner that "
    "stops at the first error, so unanalysed rows fail closed.",
    "Inspect the listed rows; repair or drop them before training.",
    cwe=20,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT002 = make_rule(
    "DAT002",
    "Oversized dataset record not analysed",
    Severity.HIGH,
    "A line or cell is larger than the per-record limit (max_line_bytes). It was skipped without "
    "being read into memory, so its content was not analysed. Huge records are also a way to "
    "exhaust scanners and loaders.",
    "Inspect the record by hand; raise max_line_bytes only for trusted data.",
    cwe=400,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT003 = make_rule(
    "DAT003",
    "Ragged CSV rows",
    Severity.MEDIUM,
    "Rows with more or fewer fields than most rows of the file. Loaders disagree on such rows "
    "(error, skip, pad, or shift columns), so the label a model trains on may not be the one a "
    "reviewer sees.",
    "Fix the quoting or drop the listed rows.",
    cwe=20,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT004 = make_rule(
    "DAT004",
    "Undecodable bytes in dataset",
    Severity.MEDIUM,
    "Bytes that are not valid UTF-8 were replaced by U+FFFD for analysis. Loaders may decode them "
    "differently (another code page, or errors='ignore'), so the text trained on can differ from "
    "the text checked.",
    "Re-encode the file as UTF-8 and check the listed rows.",
    cwe=172,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT005 = make_rule(
    "DAT005",
    "Dataset rows without text",
    Severity.LOW,
    "Rows in which the text field is missing, null or not text. They were not checked for "
    "hidden characters, prompt injection or poisoning.",
    "Check the field choice (--text-field) or clean the listed rows.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT009 = make_rule(
    "DAT009",
    "Dataset could not be analysed",
    Severity.HIGH,
    "The reader gave up on the file: no text field was found while the rows hold nested objects "
    "or lists the checks cannot read, long string columns were left untested, no row had text in "
    "the chosen field, or the table has more columns than the reader considers. Nothing (or only "
    "part) of the data was checked, and a dataset we could not analyse fails closed. (A file of "
    "numbers, categories or booleans only has no text to check: DAT000 says so, and it passes.)",
    "Name the fields to read with --text-field, flatten nested records, or inspect the file by "
    "hand before training on it.",
    cwe=20,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
READER_RULES: tuple[Rule, ...] = (DAT001, DAT002, DAT003, DAT004, DAT005, DAT009)

# ---------------------------------------------------------------------------------------------
# Field detection
# ---------------------------------------------------------------------------------------------

CHAT_FIELDS = ("messages", "conversations", "conversation", "dialog", "dialogue", "chat", "turns")
TEXT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("system", "instruction", "context", "input", "output", "response"),
    ("prompt", "chosen", "rejected"),
    ("system", "prompt", "response", "completion", "answer"),
    ("question", "context", "answer", "answers"),
    ("query", "response", "answer"),
    ("text",),
    ("content",),
    ("passage",),
    ("document",),
    ("sentence",),
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("review",),
    ("body",),
    ("abstract",),
    ("article",),
    ("tweet",),
    ("utterance",),
    ("comment",),
    ("caption",),
    ("headline",),
)
"""Known text layouts, best first. A layout matches when its first field is present; every other
field of the layout that is present is joined to it (``instruction+input+output``)."""
GROUP_ANCHORS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("system", "instruction", "context", "input", "output", "response"): ("instruction",),
    ("prompt", "chosen", "rejected"): ("prompt", "chosen"),
    ("system", "prompt", "response", "completion", "answer"): ("prompt",),
}
"""Fields that must all be present for a layout to match (default: its first field)."""
LABEL_FIELDS = ("label", "labels", "class", "target", "category", "sentiment", "y")
ID_FIELDS = ("id", "_id", "uid", "idx", "guid", "example_id")
SOURCE_FIELDS = ("source", "url", "title", "doc_id", "domain")
ROLE_KEYS = ("role", "from", "speaker", "author")
CONTENT_KEYS = ("content", "value", "text", "message")


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """The columns each ``Record`` field is read from (``text`` may join several)."""

    text: tuple[str, ...] = ()
    label: str | None = None
    id: str | None = None
    source: str | None = None
    notes: tuple[str, ...] = ()
    """Why a field was not used (reported in the ``dataset.notes`` fact)."""
    numeric: tuple[str, ...] = ()
    """Numeric feature columns, in file order, read into ``Record.values`` (empty unless >= 2)."""
    gave_up: tuple[str, ...] = ()
    """Why field detection could not consider every column (reported as DAT009, HIGH)."""

    @property
    def text_name(self) -> str | None:
        """``a+b`` for joined fields, ``None`` when no text field was found."""
        return "+".join(self.text) if self.text else None

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns read into text, label, id and source (not into ``Record.extra``)."""
        return tuple(c for c in (*self.text, self.label, self.id, self.source) if c is not None)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the plan reads, without duplicates."""
        cols = [*self.text, self.label, self.id, self.source, *self.numeric]
        return tuple(dict.fromkeys(c for c in cols if c is not None))


def _lookup(columns: Sequence[str], wanted: str) -> str | None:
    """Case-insensitive column lookup (exact name first)."""
    if wanted in columns:
        return wanted
    low = wanted.lower()
    for c in columns:
        if c.lower() == low:
            return c
    return None


def _is_chat(value: object) -> bool:
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    return isinstance(first, Mapping) and any(k in first for k in ROLE_KEYS + CONTENT_KEYS)


def plan_fields(
    columns: Sequence[str], samples: Sequence[Mapping[str, object]], options: DatasetOptions
) -> FieldPlan:
    """Pick text/label/id/source columns: the user's choice, else known names, else a string
    column whose sampled values read as natural-language text. Numbers, hex codes and short
    categorical values are not text: a tabular file gets no text field and no text checks,
    instead of duplicate/label findings about its numbers."""
    notes: list[str] = []
    gave_up: list[str] = []
    if len(columns) > MAX_COLUMNS:
        gave_up.append(
            f"{len(columns)} columns, more than the {MAX_COLUMNS} fields are chosen from; "
            "the rest were not considered"
        )
        columns = columns[:MAX_COLUMNS]
    text: tuple[str, ...] = ()
    if options.text_field:
        text = tuple(p.strip() for p in options.text_field.split("+") if p.strip())
    else:
        text, untested = _detect_text(columns, samples)
        if not text and untested:
            gave_up.append(
                f"{untested} string columns were not tested for text (only the "
                f"{TEXT_CANDIDATES} longest are)"
            )
    label = options.label_field
    if not label:
        label = _detect_label(columns, samples, text, notes)
    ident = options.id_field or _first(columns, ID_FIELDS, exclude=text)
    source = _first(columns, SOURCE_FIELDS, exclude=(*text, label or "", ident or ""))
    used = {*text, label, ident, source}
    numeric = numeric_columns([c for c in columns if c not in used], samples)
    if not text:
        nested = [
            c
            for c in columns
            if c not in used and any(isinstance(s.get(c), Mapping | list) for s in samples)
        ]
        if nested:
            shown = ", ".join(nested[:6]) + (", ..." if len(nested) > 6 else "")
            gave_up.append(
                f"no text field, and {len(nested)} columns ({shown}) hold nested objects or "
                "lists the checks cannot read"
            )
    return FieldPlan(
        text=text,
        label=label,
        id=ident,
        source=source,
        notes=tuple(notes),
        numeric=numeric,
        gave_up=tuple(gave_up),
    )


def numeric_columns(
    columns: Sequence[str], samples: Sequence[Mapping[str, object]]
) -> tuple[str, ...]:
    """Columns whose sampled values are finite numbers in at least 95 % of the sampled rows
    (at most ``MAX_NUMERIC_COLUMNS``, in file order); ``()`` when fewer than two qualify, so
    text files with one numeric column pay nothing for tabular checks."""
    if not samples:
        return ()
    need = NUMERIC_MIN_SHARE * len(samples)
    found: list[str] = []
    for col in columns[:NUMERIC_CANDIDATES]:
        if col.strip().lower() in NON_FEATURE_COLUMNS:
            continue
        finite = 0
        for s in samples:
            x = _as_number(s.get(col))
            if x is not None and math.isfinite(x):
                finite += 1
        if finite >= need:
            found.append(col)
            if len(found) >= MAX_NUMERIC_COLUMNS:
                break
    return tuple(found) if len(found) >= 2 else ()


def cell_float(value: object) -> float:
    """One cell as a float for ``Record.values``: numbers and numeric strings as such (huge
    integers as +-inf), anything else (empty, text, bool, null, nested) as NaN."""
    if isinstance(value, float):
        return value
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            x = _as_number(value)
            return math.nan if x is None else x
    if isinstance(value, Decimal):  # Parquet/Arrow decimal columns
        try:
            return float(value)
        except (ValueError, OverflowError):
            return math.nan
    return math.nan


def _extra_value(value: object) -> str | None:
    """A leaf as text for the sensitive-data detectors, or ``None`` when it cannot hold any.

    Numbers keep their exact digits: integers and Decimals as written, floats only when integral
    and exactly representable (a 16-digit card stored as float64 has lost its last digits, and
    testing digits nobody wrote would report Luhn coincidences). Short integers are skipped.
    """
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool) or value is None:
        return None
    digits: str | None = None
    if isinstance(value, int):
        digits = str(value)
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= EXACT_FLOAT:
            digits = str(int(value))
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < 40  # no id has more digits; int() of 1E+99999 would be huge
        and value == value.to_integral_value()
    ):
        digits = str(int(value))
    if digits is None or len(digits.lstrip("-")) < EXTRA_MIN_DIGITS:
        return None
    return digits


def extra_fields(row: Mapping[str, object], skip: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The row's other fields as ``(name, text)`` pairs for ``Record.extra``, bounded by
    ``MAX_EXTRA_FIELDS`` leaves and ``EXTRA_DEPTH`` levels; a final ``EXTRA_CUT`` pair counts
    what the bounds left out, so a check can fail closed on it."""
    skipped = set(skip)
    out: list[tuple[str, str]] = []
    cut = 0
    stack: list[tuple[str, object, int]] = [
        (str(k), v, 0) for k, v in reversed(list(row.items())) if k not in skipped
    ]
    while stack:
        name, value, depth = stack.pop()
        if isinstance(value, Mapping | list):
            if depth >= EXTRA_DEPTH:
                cut += 1
                continue
            if isinstance(value, Mapping):
                items = [(f"{name}.{k}", v) for k, v in value.items()]
            else:
                items = [(f"{name}[]", v) for v in value]
            if len(stack) + len(items) > 4 * MAX_EXTRA_FIELDS:
                cut += len(items)
                continue
            stack.extend((n, v, depth + 1) for n, v in reversed(items))
            continue
        text = _extra_value(value)
        if text is None:
            continue
        if len(out) >= MAX_EXTRA_FIELDS:
            cut += 1
            continue
        out.append((name, text))
    if cut:
        out.append((EXTRA_CUT, str(cut)))
    return tuple(out)


def _first(columns: Sequence[str], names: Sequence[str], exclude: Sequence[str]) -> str | None:
    for name in names:
        col = _lookup(columns, name)
        if col is not None and col not in exclude:
            return col
    return None


def _detect_label(
    columns: Sequence[str],
    samples: Sequence[Mapping[str, object]],
    text: Sequence[str],
    notes: list[str],
) -> str | None:
    """The first known label name whose sampled values are not a continuous (regression) target."""
    for name in LABEL_FIELDS:
        col = _lookup(columns, name)
        if col is None or col in text:
            continue
        why = continuous_values([s.get(col) for s in samples])
        if why is None:
            return col
        notes.append(f"{col} is a regression target ({why}), not used as a label")
    return None


def _as_number(value: object) -> float | None:
    """``value`` as a finite-or-not float when it is a number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        if not s or len(s) > 64:
            return None
        try:
            return float(s)
        except ValueError:
            pass
        if s.lstrip("+-")[:2].lower() == "0x":
            try:
                return float.fromhex(s)
            except (ValueError, OverflowError):
                return None
    return None


def continuous_values(values: Sequence[object]) -> str | None:
    """Why these label values look like a regression target, or None for class labels.

    Every non-empty value must be numeric; integers count only when many and spread out (dense
    small integers are class ids, e.g. 150 intents)."""
    nums: list[float] = []
    for v in values:
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        x = _as_number(v)
        if x is None:
            return None
        if math.isfinite(x):
            nums.append(x)
    distinct = set(nums)
    if len(distinct) < REGRESSION_MIN_DISTINCT:
        return None
    what = f"{len(distinct)} distinct numeric values in {len(nums)} sampled rows"
    if any(not x.is_integer() for x in distinct):
        many = len(distinct) > REGRESSION_MANY_DISTINCT
        if many or len(distinct) > REGRESSION_DISTINCT_SHARE * len(nums):
            return what
        return None
    spread = max(distinct) - min(distinct) + 1
    if len(distinct) > REGRESSION_MANY_DISTINCT and spread > 4 * len(distinct):
        return what
    return None


def _reads_as_text(value: str) -> bool:
    """Natural-language-ish: not a number, mostly letters, and several words (or a script
    written without spaces). Only the first 1 000 characters are looked at."""
    s = value[:1000].strip()
    if not s or _as_number(s) is not None:
        return False
    non_space = [c for c in s if not c.isspace()]
    # Invisible non-ASCII characters (tags, variation selectors, zero-width) count as letters:
    # text that is mostly hidden payload is exactly what the text checks must see.
    letters = sum(1 for c in non_space if c.isalpha() or not (c.isascii() or c.isprintable()))
    if letters < TEXT_MIN_LETTERS * len(non_space):
        return False
    return len(non_space) < len(s) or any(not c.isascii() for c in non_space)


def _text_column_score(values: Sequence[str]) -> float | None:
    """Mean length of a string column that reads as text, or None when it does not."""
    if not values:
        return None
    mean = sum(len(v) for v in values) / len(values)
    if mean < TEXT_SHORT_MIN_CHARS:
        return None
    if mean < TEXT_MIN_MEAN_CHARS:
        words = sum(len(v[:1000].split()) for v in values) / len(values)
        if words < TEXT_SHORT_MIN_WORDS:
            return None
    non_text = sum(1 for v in values if not _reads_as_text(v))
    if non_text > TEXT_MAX_NON_TEXT * len(values):
        return None
    return mean


def _detect_text(
    columns: Sequence[str], samples: Sequence[Mapping[str, object]]
) -> tuple[tuple[str, ...], int]:
    """The text columns, and how many candidate string columns were left untested."""
    for name in CHAT_FIELDS:
        col = _lookup(columns, name)
        if col is not None and (not samples or any(_is_chat(s.get(col)) for s in samples)):
            return (col,), 0
    for group in TEXT_GROUPS:
        anchors = GROUP_ANCHORS.get(group, group[:1])
        if any(_lookup(columns, a) is None for a in anchors):
            continue
        return tuple(c for c in (_lookup(columns, n) for n in group) if c is not None), 0
    # Fall back to the text-like string column with the longest mean value in the sample.
    # Longest first, so the (costlier) text test stops at the first column that passes.
    means: list[tuple[float, int, str]] = []
    for i, col in enumerate(columns):
        lengths = [len(v) for s in samples if isinstance(v := s.get(col), str)]
        if lengths and (mean := sum(lengths) / len(lengths)) >= TEXT_SHORT_MIN_CHARS:
            means.append((-mean, i, col))
    for _, _, col in heapq.nsmallest(TEXT_CANDIDATES, means):
        if _text_column_score([v for s in samples if isinstance(v := s.get(col), str)]):
            return (col,), 0
    return (), max(0, len(means) - TEXT_CANDIDATES)


def render_text(value: object) -> str | None:
    """Text of one field value: strings as is, chat turns as ``role: content`` lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if _is_chat(value):
            lines = []
            for turn in value:
                if not isinstance(turn, Mapping):
                    continue
                role = next((turn[k] for k in ROLE_KEYS if isinstance(turn.get(k), str)), "")
                content = next((turn[k] for k in CONTENT_KEYS if k in turn), None)
                body = _render_content(content)
                if body is not None:
                    lines.append(f"{role}: {body}" if role else body)
            return "\n".join(lines)
        parts = [v for v in value if isinstance(v, str)]
        return "\n".join(parts) if parts else None
    return None


def _render_content(content: object) -> str | None:
    """Message content: a string, or a list of parts (``{"type": "text", "text": …}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return None


def _scalar(value: object) -> str | None:
    """A label/id/source value as text (short lists joined; long lists are not labels)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and len(value) <= MAX_LABEL_ITEMS:
        items = [_scalar(v) for v in value]
        return ",".join(i for i in items if i is not None)
    return None


# ---------------------------------------------------------------------------------------------
# Issues, counted per file with bounded memory
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RowIssue:
    """One kind of bad row: exact count, the first row indices and the first reason."""

    count: int = 0
    rows: list[int] = field(default_factory=list)
    reason: str = ""

    def add(self, row: int, reason: str = "") -> None:
        """Count one more bad row (keeps only the first ``FIRST_ROWS_SHOWN`` indices)."""
        self.count += 1
        if len(self.rows) < FIRST_ROWS_SHOWN:
            self.rows.append(row)
        if not self.reason and reason:
            self.reason = reason


@dataclass(slots=True)
class ReadIssues:
    """Every reader problem seen in one file."""

    bad: RowIssue = field(default_factory=RowIssue)
    oversized: RowIssue = field(default_factory=RowIssue)
    ragged: RowIssue = field(default_factory=RowIssue)
    undecodable: RowIssue = field(default_factory=RowIssue)
    no_text: RowIssue = field(default_factory=RowIssue)
    invalid_sequences: int = 0
    """Invalid byte sequences replaced while decoding (CSV)."""
    header_mismatch: str = ""
    """CSV header whose field count differs from most rows' (reported once, LOW)."""


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


class DatasetReader:
    """Base of the readers: ``records()`` streams rows once; issues and fields are read after."""

    format_name = "dataset"

    def __init__(self, artifact: Artifact, ctx: ScanContext) -> None:
        self.artifact = artifact
        self.ctx = ctx
        self.options = ctx.dataset
        self.max_chars = ctx.limits.max_line_bytes
        self.issues = ReadIssues()
        self.plan = FieldPlan()
        self.columns: tuple[str, ...] = ()
        self.notes: list[str] = []
        """How the file's layout was read (metadata line, comment lines), for ``dataset.notes``."""
        self.want_extra = _wants_extra(ctx.dataset.checks)
        """Carry every other column in ``Record.extra`` (a selected check asks for them)."""

    def records(self) -> Generator[Record, None, None]:
        """Yield every analysable row; raise ``ArtifactError`` when the file itself breaks."""
        raise NotImplementedError

    def make_record(self, index: int, row: Mapping[str, object]) -> Record | None:
        """A ``Record`` from one parsed row, or ``None`` (counted) when it has no usable text."""
        plan = self.plan
        parts: list[str] = []
        for name in plan.text:
            if name in row:
                rendered = render_text(row[name])
                if rendered:
                    parts.append(rendered)
        if plan.text and not parts:
            self.issues.no_text.add(index, f"no text in {plan.text_name}")
            text = ""
        else:
            text = "\n".join(parts)
        if len(text) > self.max_chars:
            self.issues.oversized.add(index, f"text of {len(text)} characters")
            return None
        return Record(
            index=index,
            text=text,
            label=_scalar(row.get(plan.label)) if plan.label else None,
            id=_scalar(row.get(plan.id)) if plan.id else None,
            source=_scalar(row.get(plan.source)) if plan.source else None,
            values=tuple(map(cell_float, map(row.get, plan.numeric))) if plan.numeric else (),
            extra=extra_fields(row, plan.fields) if self.want_extra else (),
        )


def _wants_extra(selected: frozenset[str] | None) -> bool:
    """Whether a selected dataset check sets ``wants_extra_fields`` (read at reader creation)."""
    from scanners.dataset.runner import DATASET_CHECKS  # the checks import this module

    return any(
        getattr(cls, "wants_extra_fields", False) and (selected is None or cls.name in selected)
        for cls in DATASET_CHECKS
    )


def bounded_lines(stream: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """Split a byte stream on ``\\n``; yield ``(line_no, bytes)``, or ``None`` for a line longer
    than ``max_line`` (skipped up to its newline without being kept). Memory: one chunk plus one
    line of at most ``max_line`` bytes."""
    buf = bytearray()
    line_no = 0
    skipping = False
    while True:
        block = stream.read(CHUNK)
        if not block:
            break
        start = 0
        while True:
            nl = block.find(b"\n", start)
            if nl < 0:
                if not skipping:
                    if len(buf) + len(block) - start > max_line:
                        skipping = True
                        buf.clear()
                    else:
                        buf += block[start:]
                break
            if skipping:
                yield line_no, None
                skipping = False
            elif len(buf) + nl - start > max_line:
                yield line_no, None
                buf.clear()
            elif buf:
                buf += block[start:nl]
                yield line_no, bytes(buf)
                buf.clear()
            else:
                yield line_no, block[start:nl]
            line_no += 1
            start = nl + 1
    if skipping:
        yield line_no, None
    elif buf:
        yield line_no, bytes(buf)


class JsonlReader(DatasetReader):
    """JSON Lines: one object per line; the row index is the 0-based line number."""

    format_name = "jsonl"

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for line_no, raw in bounded_lines(self.artifact.stream, self.max_chars):
            if raw is None:
                self.issues.oversized.add(line_no, f"line longer than {self.max_chars} bytes")
                continue
            if line_no == 0 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.issues.undecodable.add(line_no, f"invalid UTF-8 at byte {exc.start}")
                line = raw.decode("utf-8", errors="replace")
            try:
                value = json.loads(line)
            except RecursionError:
                self.issues.bad.add(line_no, "JSON nested too deeply to parse")
                continue
            except ValueError as exc:
                self.issues.bad.add(line_no, f"bad JSON: {str(exc)[:80]}")
                continue
            if not isinstance(value, dict):
                self.issues.bad.add(line_no, f"JSON {type(value).__name__} is not an object")
                continue
            yield line_no, value

    def records(self) -> Generator[Record, None, None]:
        rows = self._rows()
        head: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for item in rows:
            head.append(item)
            size += sum(len(v) for v in item[1].values() if isinstance(v, str))
            if len(head) >= DETECT_ROWS or size >= DETECT_BYTES:
                break
        columns: dict[str, None] = {}
        for _, row in head:
            columns.update(dict.fromkeys(row))
        self.columns = tuple(columns)
        self.plan = plan_fields(self.columns, [r for _, r in head], self.options)
        for index, row in head:
            record = self.make_record(index, row)
            if record is not None:
                yield record
        del head
        for index, row in rows:
            record = self.make_record(index, row)
            if record is not None:
                yield record


_DECODE_STATE = threading.local()
_ERROR_HANDLER = "supplychain-count-replace"
_HANDLER_LOCK = threading.Lock()
_handler_registered = False


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: replace like ``errors="replace"`` and count (per thread)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _DECODE_STATE.count = getattr(_DECODE_STATE, "count", 0) + 1
    return "\ufffd", exc.end


def _ensure_handler() -> None:
    global _handler_registered
    with _HANDLER_LOCK:
        if not _handler_registered:
            codecs.register_error(_ERROR_HANDLER, _count_replace)
            _handler_registered = True


class CsvReader(DatasetReader):
    """CSV/TSV; the row index counts records after the header (or metadata line).

    The header is the first line unless it is all numbers (no header), a metadata line shorter
    than the rows (scikit-learn), or a ``#`` comment; rows are compared with the modal field
    count, so only rows that differ from the majority are ragged."""

    format_name = "csv"
    _comments = 0
    """``#`` comment lines seen among the rows."""

    def _encoding(self) -> str:
        stream = self.artifact.stream
        stream.seek(0)
        head = stream.read(4)
        stream.seek(0)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        return "utf-8-sig"

    def _lines(self, text: io.TextIOWrapper) -> Iterator[str]:
        """Lines of at most ``max_chars``. An oversized line is skipped unread and replaced by a
        marker that keeps its quote parity, so the csv parser's state (and the numbering of
        the records after it) is the same as if it had been read."""
        limit = self.max_chars
        while True:
            line = text.readline(limit)
            if not line:
                return
            if len(line) >= limit and not line.endswith(("\n", "\r")):
                quotes = line.count('"')
                while True:
                    rest = text.readline(limit)
                    quotes += rest.count('"')
                    if not rest or rest.endswith(("\n", "\r")):
                        break
                yield ('"' if quotes % 2 else "") + OVERSIZED_MARK + "\n"
                continue
            yield line

    def records(self) -> Generator[Record, None, None]:
        _ensure_handler()
        _DECODE_STATE.count = 0
        name = self.artifact.name.lower()
        stream = self.artifact.stream
        encoding = self._encoding()
        text = io.TextIOWrapper(stream, encoding=encoding, errors=_ERROR_HANDLER, newline="")
        try:
            yield from self._records(text, tsv=name.endswith(".tsv"))
        finally:
            self.issues.invalid_sequences = getattr(_DECODE_STATE, "count", 0)
            text.detach()  # the engine owns the underlying stream

    def _records(self, text: io.TextIOWrapper, *, tsv: bool) -> Iterator[Record]:
        csv.field_size_limit(self.max_chars)
        lines = self._lines(text)
        first: list[str] = []
        probe = ""
        for line in lines:
            if not first and not line.strip():
                continue
            first.append(line)
            if line.strip() and not line.lstrip().startswith("#"):
                probe = line  # the delimiter is guessed on the first line that is not a comment
                break
            if len(first) >= DELIMITER_PROBE_LINES:
                break
        if not first:
            return
        delimiter = "\t" if tsv else _guess_delimiter(probe or first[0])
        items = self._items(csv.reader(_chain(first, lines), delimiter=delimiter))
        head = list(itertools.islice(items, DETECT_ROWS + 2))
        if not head:
            return
        pos, modal = self._layout(head)
        index = 0
        pending: list[tuple[int, dict[str, str], str | None]] = []
        planned = False
        try:
            for kind, row, reason in itertools.chain(head[pos:], items):
                if row is None:
                    issue = self.issues.oversized if kind == "oversized" else self.issues.bad
                    issue.add(index, reason)
                    index += 1
                    continue
                comment: str | None = None
                if _is_comment(row, modal):
                    # A "# ..." line is not a ragged row, but loaders without comment handling
                    # still read it as one: its content is analysed as text (below).
                    comment = delimiter.join(row)
                    self._comments += 1
                elif len(row) != modal:
                    self.issues.ragged.add(index, f"{len(row)} fields, most rows have {modal}")
                values = dict(zip(self.columns, row, strict=False))
                if any("\ufffd" in v for v in row):
                    self.issues.undecodable.add(index, "replacement character in row")
                if planned:
                    record = self._record(index, values, comment)
                    if record is not None:
                        yield record
                else:
                    pending.append((index, values, comment))
                    if len(pending) >= DETECT_ROWS:
                        yield from self._flush_head(pending)
                        planned = True
                index += 1
            if not planned:
                yield from self._flush_head(pending)
        finally:
            if self._comments:
                done = "analysed as text" if self.plan.text else "not analysed"
                self.notes.append(f"{self._comments} comment lines (#), {done}")

    def _record(self, index: int, values: dict[str, str], comment: str | None) -> Record | None:
        """A data row's record; a comment line's whole text when the file has a text field."""
        if comment is None:
            return self.make_record(index, values)
        if not self.plan.text:
            return None
        if len(comment) > self.max_chars:
            self.issues.oversized.add(index, f"comment line of {len(comment)} characters")
            return None
        return Record(index=index, text=comment)

    def _items(self, reader: Iterator[list[str]]) -> Iterator[tuple[str, list[str] | None, str]]:
        """Parsed records as ``(kind, fields, reason)``: kind ``row`` (fields set), ``bad`` or
        ``oversized`` (fields ``None``). Blank lines are dropped."""
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger" in str(exc):
                    yield "oversized", None, f"field longer than {self.max_chars}"
                else:
                    yield "bad", None, f"CSV error: {exc}"
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if any(OVERSIZED_MARK in v for v in row):
                yield "oversized", None, f"line longer than {self.max_chars} characters"
                continue
            yield "row", row, ""

    def _layout(self, head: list[tuple[str, list[str] | None, str]]) -> tuple[int, int]:
        """Read the file's shape from its first records; set ``columns``; return how many head
        items are not data (leading comments, a metadata line, the header) and the modal
        field count that rows are compared against.

        NOTE: scikit-learn's bundled CSVs start with a metadata line (``569,30,malignant,
        benign``) and have no header; R's ``write.csv`` omits the row-name column's header;
        numpy's test CSVs carry ``## ... ##`` comment lines. None of these is a ragged file.
        """
        rows = [r for _, r, _ in head if r is not None]
        body = [r for r in rows[1:] if not r[0].lstrip().startswith("#")] or rows[1:]
        counts = Counter(len(r) for r in body)
        lead = len(rows[0]) if rows else 0
        modal = max(counts, key=lambda n: (counts[n], -abs(n - lead))) if counts else lead
        pos = 0
        while pos < len(head) and (r := head[pos][1]) is not None and _is_comment(r, modal):
            pos += 1
        if pos == len(head):
            pos = 0  # nothing but "#" lines: read them as an ordinary file
        first = head[pos][1]
        if first is None:
            raise ArtifactError(f"unreadable CSV header: {head[pos][2]}")
        pos += 1
        if pos > 1:
            self.notes.append(f"{pos - 1} comment lines (#) before the header")
        later = [r for _, r, _ in head[pos:] if r is not None]
        regular = counts[modal] >= 2 and counts[modal] >= 0.8 * len(body)
        header: Sequence[str] | None = first
        numbers = any(_as_number(c) is not None for c in first)
        if regular and len(first) < modal and numbers:
            self.notes.append(f"line 1 is metadata ({len(first)} fields; rows have {modal})")
            nxt = head[pos][1] if pos < len(head) else None
            if nxt is not None and len(nxt) == modal and _looks_like_header(nxt, later[1:]):
                header = nxt
                pos += 1
            else:
                header = None
        elif regular and len(first) == modal - 1 and not numbers:
            header = ["", *first]
            self.notes.append("header has no name for the first (row-name) column")
        elif _all_numeric(first):
            header = None
            pos -= 1  # the first line is data
        if header is None:
            self.columns = tuple(f"col{i}" for i in range(modal))
            names = "col0" if modal == 1 else f"col0..col{modal - 1}"
            self.notes.append(f"no header: columns named {names}")
        else:
            self.columns = _unique_names(header)
            if len(self.columns) != modal and body:
                self.issues.header_mismatch = (
                    f"header has {len(self.columns)} fields, most rows have {modal}"
                )
        return pos, modal

    def _flush_head(self, head: list[tuple[int, dict[str, str], str | None]]) -> Iterator[Record]:
        rows = [values for _, values, comment in head if comment is None]
        self.plan = plan_fields(self.columns, rows, self.options)
        for index, values, comment in head:
            record = self._record(index, values, comment)
            if record is not None:
                yield record
        head.clear()


def _is_comment(row: Sequence[str], modal: int) -> bool:
    """A ``# ...`` line whose field count differs from the data rows'."""
    return bool(row) and row[0].lstrip().startswith("#") and len(row) != modal


def _all_numeric(row: Sequence[str]) -> bool:
    """Every non-empty field is a number (a data line, not a header), and one is non-empty."""
    cells = [c for c in row if c.strip()]
    return bool(cells) and all(_as_number(c) is not None for c in cells)


def _looks_like_header(row: Sequence[str], later: Sequence[Sequence[str]]) -> bool:
    """Column names: no numbers, distinct, short; and, when the rows below have a numeric
    column, not numeric there."""
    cells = [c.strip() for c in row]
    if any(c and _as_number(c) is not None for c in cells):
        return False
    if len(set(cells)) != len(cells) or any(len(c) > 64 for c in cells):
        return False
    numeric_below = any(
        all(_as_number(r[j]) is not None for r in later if j < len(r) and r[j].strip())
        and any(j < len(r) and r[j].strip() for r in later)
        for j in range(min(len(row), TEXT_CANDIDATES))
    )
    return numeric_below or all(cells)


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _guess_delimiter(line: str) -> str:
    """The most frequent of ``, \\t ; |`` in the header line (comma on a tie)."""
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _unique_names(header: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff") or f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return tuple(out)


class _CappedFile(io.RawIOBase):
    """Read-only view for pyarrow that refuses any single read above ``cap`` bytes.

    NOTE: Parquet column chunks and Arrow IPC message bodies are read with one ``read(n)`` of
    the declared length; refusing huge ``n`` before allocating keeps memory bounded whatever the
    file declares. Closing it does not close the engine's stream.
    """

    def __init__(self, stream: BinaryIO, size: int, cap: int) -> None:
        super().__init__()
        self._stream = stream
        self._size = size
        self._cap = cap

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._stream.tell()
        if size > self._cap:
            raise LimitExceeded(
                f"dataset block of {size} bytes is larger than the {self._cap}-byte cap",
                self._stream.tell(),
            )
        return self._stream.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Leave the underlying stream open (the engine owns it)."""


def _import_pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - pyarrow is a hard dependency
        raise MissingDependency("pyarrow is needed to read Parquet/Arrow datasets") from exc
    return pa


class _ColumnarReader(DatasetReader):
    """Shared batch → record logic for Parquet and Arrow."""

    def block_cap(self) -> int:
        """Largest single read allowed: 64 records' worth, and never above max_read_bytes."""
        return min(self.ctx.limits.max_read_bytes, 64 * self.ctx.limits.max_line_bytes)

    def _plan_from(self, schema: pa.Schema, sample: pa.RecordBatch | None) -> None:
        self.columns = tuple(schema.names)
        rows: list[dict[str, object]] = []
        if sample is not None:
            rows = _batch_rows(sample.slice(0, DETECT_ROWS), self)
        self.plan = plan_fields(self.columns, rows, self.options)

    def read_columns(self, schema: pa.Schema) -> list[str]:
        """The plan's columns, and every other text/number column when ``Record.extra`` is
        wanted. Columns holding binary data (image and audio bytes) are never added: nothing is
        checked in bytes, and decoding them would cost memory and trip the row-group cap."""
        names = schema.names
        cols = [c for c in self.plan.columns if c in names]
        if self.want_extra:
            cols += [
                n
                for n, t in zip(names, schema.types, strict=True)
                if n not in cols and _extra_type(t)
            ]
        return cols

    def _batch_records(self, batch: pa.RecordBatch, start: int) -> Iterator[Record]:
        wanted = self.read_columns(batch.schema)
        sub = batch.select(wanted) if wanted else None
        if sub is None:
            for i in range(batch.num_rows):
                if self.plan.text:
                    self.issues.no_text.add(start + i, f"no column {self.plan.text_name}")
                yield Record(index=start + i, text="")
            return
        for i, row in enumerate(_batch_rows(sub, self, start)):
            record = self.make_record(start + i, row)
            if record is not None:
                yield record


def _extra_type(t: pa.DataType, depth: int = 0) -> bool:
    """Whether an Arrow type can hold text or digits and holds no binary (``Record.extra``)."""
    pa = _import_pyarrow()
    types = pa.types
    if types.is_string(t) or types.is_large_string(t):
        return True
    if types.is_integer(t) or types.is_floating(t) or types.is_decimal(t):
        return True
    if depth >= EXTRA_DEPTH:
        return False
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return _extra_type(t.value_type, depth + 1)
    if types.is_struct(t):
        kinds = [t.field(i).type for i in range(t.num_fields)]
        return not any(_has_binary(k) for k in kinds) and any(
            _extra_type(k, depth + 1) for k in kinds
        )
    return False


def _has_binary(t: pa.DataType) -> bool:
    """Whether a (nested) Arrow type holds binary data anywhere."""
    pa = _import_pyarrow()
    types = pa.types
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t):
        return True
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return _has_binary(t.value_type)
    if types.is_struct(t):
        return any(_has_binary(t.field(i).type) for i in range(t.num_fields))
    return False


def _batch_rows(
    batch: pa.RecordBatch, reader: DatasetReader, start: int = -1
) -> list[dict[str, object]]:
    """Rows of a batch as dicts; invalid UTF-8 in string columns is replaced and counted."""
    try:
        rows: list[dict[str, object]] = batch.to_pylist()
        return rows
    except UnicodeDecodeError:
        pass
    pa = _import_pyarrow()
    columns: dict[str, list[object]] = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            raw = col.cast(pa.large_binary()).to_pylist()
            values: list[object] = []
            for i, b in enumerate(raw):
                if b is None:
                    values.append(None)
                    continue
                try:
                    values.append(b.decode("utf-8"))
                except UnicodeDecodeError:
                    values.append(b.decode("utf-8", errors="replace"))
                    if start >= 0:
                        reader.issues.undecodable.add(start + i, f"invalid UTF-8 in {name}")
            columns[name] = values
        else:
            try:
                columns[name] = col.to_pylist()
            except UnicodeDecodeError:
                columns[name] = [None] * batch.num_rows
                if start >= 0:
                    reader.issues.undecodable.add(start, f"invalid UTF-8 inside {name}")
    names = list(columns)
    return [{n: columns[n][i] for n in names} for i in range(batch.num_rows)]


class ParquetReader(_ColumnarReader):
    """Parquet via ``ParquetFile.iter_batches`` over only the needed columns."""

    format_name = "parquet"

    def records(self) -> Generator[Record, None, None]:
        pa = _import_pyarrow()
        import pyarrow.parquet as pq

        art = self.artifact
        art.stream.seek(0)
        source = _CappedFile(art.stream, art.size, self.block_cap())
        try:
            pf = pq.ParquetFile(source)
            schema = pf.schema_arrow
            meta = pf.metadata
        except LimitExceeded:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ArtifactError(f"unreadable Parquet footer: {exc}") from None
        sample = None
        wanted: list[str] = []
        if not self.options.text_field:
            wanted += [
                n
                for n, t in zip(schema.names, schema.types, strict=True)
                if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_list(t)
            ]
        if not self.options.label_field:
            # Label candidates are sampled too: a float "target" is a regression target.
            wanted += [c for c in (_lookup(schema.names, n) for n in LABEL_FIELDS) if c]
        # Numeric-typed columns are sampled to pick the tabular features (Record.values).
        wanted += [
            n
            for n, t in zip(schema.names, schema.types, strict=True)
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        ][:NUMERIC_CANDIDATES]
        wanted = list(dict.fromkeys(wanted))
        try:
            if meta.num_rows and wanted:
                sample = next(pf.iter_batches(batch_size=DETECT_ROWS, columns=wanted), None)
            self._plan_from(schema, sample)
            cols = self.read_columns(schema)
            self._check_row_groups(meta, cols)
            index = 0
            if not cols:
                for index in range(meta.num_rows):
                    yield Record(index=index, text="")
                return
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=cols):
                yield from self._batch_records(batch, index)
                index += batch.num_rows
        except LimitExceeded:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ArtifactError(f"Parquet data unreadable: {exc}") from None

    def _check_row_groups(self, meta: Any, columns: Sequence[str]) -> None:
        """Refuse row groups whose needed columns declare more decoded bytes than we allow.

        NOTE: pyarrow decodes a whole column chunk at a time, so a small file declaring a huge
        chunk (a decompression bomb) would otherwise be expanded in memory.
        """
        cap = 4 * self.block_cap()
        wanted = set(columns)
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            total = 0
            for j in range(rg.num_columns):
                col = rg.column(j)
                if col.path_in_schema.split(".", 1)[0] in wanted:
                    total += max(col.total_uncompressed_size, 0)
            if total > cap:
                raise LimitExceeded(
                    f"Parquet row group {g} declares {total} decoded bytes in the columns read "
                    f"(cap {cap})"
                )


class ArrowReader(_ColumnarReader):
    """Arrow IPC, stream format (Hugging Face ``datasets`` ``data-*.arrow``) or file format."""

    format_name = "arrow"

    def records(self) -> Generator[Record, None, None]:
        pa = _import_pyarrow()
        import pyarrow.ipc as ipc

        art = self.artifact
        art.stream.seek(0)
        is_file = art.stream.read(6) == b"ARROW1"
        art.stream.seek(0)
        source = _CappedFile(art.stream, art.size, self.block_cap())
        index = 0
        try:
            batches: Iterable[Any]
            if is_file:
                file_reader = ipc.open_file(source)
                schema = file_reader.schema
                batches = (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
            else:
                stream_reader = ipc.open_stream(source)
                schema = stream_reader.schema
                batches = stream_reader
            planned = False
            for batch in batches:
                # NOTE: IPC buffers are taken as they are; corrupt offsets make pyarrow read out of
                # bounds (SystemError or worse) when converting, so check them before any use.
                batch.validate(full=True)
                if not planned:
                    self._plan_from(schema, batch)
                    planned = True
                yield from self._batch_records(batch, index)
                index += batch.num_rows
            if not planned:
                self._plan_from(schema, None)
        except LimitExceeded:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ArtifactError(f"Arrow data unreadable after row {index}: {exc}") from None


READERS: dict[ArtifactKind, type[DatasetReader]] = {
    ArtifactKind.DATASET_JSONL: JsonlReader,
    ArtifactKind.DATASET_CSV: CsvReader,
    ArtifactKind.DATASET_PARQUET: ParquetReader,
    ArtifactKind.DATASET_ARROW: ArrowReader,
}


def open_reader(artifact: Artifact, ctx: ScanContext) -> DatasetReader:
    """The reader for this artifact's kind."""
    cls = READERS.get(artifact.kind)
    if cls is None:
        raise ArtifactError(f"not a dataset kind: {artifact.kind.value}")
    return cls(artifact, ctx)


# ---------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------


def _rows_text(issue: RowIssue) -> str:
    shown = ",".join(str(r) for r in issue.rows)
    more = f" (+{issue.count - len(issue.rows)} more)" if issue.count > len(issue.rows) else ""
    return shown + more


def _gave_up(info: DatasetInfo, reader: DatasetReader) -> Iterator[Finding]:
    """DAT009 (HIGH): the file, or a part of it, could not be analysed at all (fail closed)."""
    plan = reader.plan
    reasons = list(plan.gave_up) if info.rows else []
    if info.rows and plan.text and reader.issues.no_text.count >= info.rows:
        reasons.append(f"no row has text in the field {plan.text_name}")
    for reason in reasons:
        yield dataset_finding(
            info,
            DAT009,
            f"{reader.format_name} dataset could not be analysed: {reason}; this fails closed",
            evidence=reason,
            group=f"DAT009:{info.path}",
        )


NO_TEXT_NOTE = "no text field found: text checks not run (--text-field to choose one)"


def dataset_facts(
    info: DatasetInfo, reader: DatasetReader, labels: int | None
) -> list[tuple[str, FactValue]]:
    """What was read, as facts (``docs/report-schema.md``): format, rows, the fields used for
    text/label/id/source, the number of distinct labels, numeric columns and layout notes."""
    plan = reader.plan
    facts: list[tuple[str, FactValue]] = [
        ("dataset.format", reader.format_name),
        ("dataset.rows", info.rows),
        ("dataset.text_checks", bool(plan.text) or not info.rows),
    ]
    for key, value in (
        ("dataset.text_field", plan.text_name),
        ("dataset.label_field", plan.label),
        ("dataset.id_field", plan.id),
        ("dataset.source_field", plan.source),
    ):
        if value:
            facts.append((key, value))
    used = (*plan.text, *(f for f in (plan.label, plan.id, plan.source) if f))
    facts.append(("dataset.fields", tuple(used)))
    if labels is not None and plan.label:
        facts.append(("dataset.labels", labels))
    if plan.numeric:
        facts.append(("dataset.numeric_fields", tuple(plan.numeric)))
        facts.append(("dataset.numeric_fields.count", len(plan.numeric)))
    notes = (*reader.notes, *plan.notes, *((NO_TEXT_NOTE,) if not plan.text and info.rows else ()))
    if notes:
        facts.append(("dataset.notes", tuple(notes)))
    return facts


def reader_findings(info: DatasetInfo, reader: DatasetReader) -> Iterator[Finding]:
    """DAT001–DAT005 and DAT009 for one file: one finding per kind of bad row."""
    issues = reader.issues
    table: tuple[tuple[RowIssue, Rule, str], ...] = (
        (issues.bad, DAT001, "rows could not be parsed and were not analysed (fails closed)"),
        (issues.oversized, DAT002, "records over the size limit were skipped unread"),
        (issues.ragged, DAT003, "rows have a different number of fields than most rows"),
        (issues.undecodable, DAT004, "rows contain bytes that are not valid UTF-8"),
        (issues.no_text, DAT005, "rows have no text to analyse"),
    )
    for issue, rule, what in table:
        if issue.count:
            yield dataset_finding(
                info,
                rule,
                f"{issue.count} {what}",
                rows=issue.rows,
                evidence=f"rows {_rows_text(issue)}: {issue.reason}",
                group=f"{rule.id}:{info.path}",
            )
    if issues.header_mismatch:
        yield dataset_finding(
            info,
            DAT003,
            "the CSV header and the rows have different field counts",
            evidence=issues.header_mismatch,
            severity=Severity.LOW,
            confidence=Confidence.MEDIUM,
        )
    yield from _gave_up(info, reader)
    if issues.invalid_sequences and not issues.undecodable.count:
        yield dataset_finding(
            info,
            DAT004,
            f"{issues.invalid_sequences} invalid UTF-8 byte sequences were replaced",
            evidence=f"{issues.invalid_sequences} replaced sequences (header or quoted text)",
        )
