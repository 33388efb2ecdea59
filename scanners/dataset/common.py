"""The dataset seam: row types, the mergeable ``DatasetCheck`` protocol and shared helpers.

A check is a stateless object plus a state it creates: ``init`` makes an empty state,
``observe`` feeds it batches of rows, ``merge`` combines two states, ``finish`` reports once.
States are plain picklable data (our own classes, lists, dicts, NumPy arrays), so a distributed
engine can run ``observe`` on each partition, ``merge`` the states pairwise in any tree order
and call ``finish`` once, and get the findings of one pass (``tests/scanners/
test_dataset_partitions.py`` checks that for every check). Rules for that:

* ``Record.index`` is the row's *global* index (a partition adds its row offset); ties and
  "first rows" are decided by index, never by arrival order.
* Data-dependent parameters (a shared template, a fitted content model) come from the file's
  first rows, the *head*: the driver reads up to ``head_rows`` rows / ``head_chars``
  characters (the largest any selected check declares), calls ``prepare(head)`` once per check
  and gives every partition the same plan through ``init(plan)``.
* Samples are bottom-k by a hash of the row index (``HashSample``), not reservoirs that
  depend on arrival order; labels get ids through ``LabelTable``, canonicalised by first row.

Checks share helpers only through this module, never through each other's privates.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from scanners._lazy import lazy_module
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    I64 = npt.NDArray[np.int64]
    U64 = npt.NDArray[np.uint64]
else:
    np = lazy_module("numpy")


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


S = TypeVar("S")
P = TypeVar("P")


class DatasetCheck(Protocol[S]):
    """One poisoning signal with a mergeable state (see the module docstring).

    ``observe`` and ``merge`` may update and return their first argument (``merge`` consumes
    ``b``); memory must stay bounded by the state's own sketches, whatever the row count.
    """

    name: ClassVar[str]
    rules: ClassVar[tuple[Rule, ...]]
    needs_text: ClassVar[bool]
    """False: the check also runs on files without a text field (numeric tables)."""
    head_rows: int
    head_chars: int
    """How much of the file's head ``prepare`` needs (0: no plan)."""

    def prepare(self, head: Sequence[Record]) -> object:
        """Data-dependent parameters from the file's first rows (same for every partition)."""
        ...

    def init(self, plan: object) -> S:
        """An empty state."""
        ...

    def observe(self, state: S, batch: Sequence[Record]) -> S:
        """Take a batch of rows (global indices)."""
        ...

    def merge(self, a: S, b: S) -> S:
        """Combine two states of disjoint row sets, whatever their order or interleaving."""
        ...

    def finish(self, state: S, info: DatasetInfo) -> Iterator[Finding]:
        """Emit findings once all rows were seen; each finding names its rows."""
        ...


class RowError(Exception):
    """A check failed on one row (the runner names it and drops the check)."""

    def __init__(self, row: int, error: Exception) -> None:
        super().__init__(f"row {row}: {error!r}")
        self.row = row
        self.error = error


class RowState(Protocol):
    """What ``StateCheck`` needs from a state: add one row, absorb another state, report."""

    def add(self, record: Record) -> None: ...

    def merge(self, other: Any) -> None: ...

    def finish(self, info: DatasetInfo) -> Iterator[Finding]: ...


T = TypeVar("T", bound=RowState)


class StateCheck(Generic[T]):
    """Base for checks whose state object does the work (``add``/``merge``/``finish``)."""

    name: ClassVar[str] = ""
    rules: ClassVar[tuple[Rule, ...]] = ()
    needs_text: ClassVar[bool] = True
    wants_extra_fields: ClassVar[bool] = False
    head_rows: int = 0
    head_chars: int = 0

    def prepare(self, head: Sequence[Record]) -> object:
        """No plan by default."""
        return None

    def init(self, plan: object) -> T:
        """An empty state (subclasses)."""
        raise NotImplementedError

    def observe(self, state: T, batch: Sequence[Record]) -> T:
        """Feed the rows one by one to the state (an error names its row)."""
        add = state.add
        record = None
        try:
            for record in batch:
                add(record)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise RowError(record.index if record is not None else -1, exc) from exc
        return state

    def merge(self, a: T, b: T) -> T:
        """``a`` absorbs ``b``."""
        a.merge(b)
        return a

    def finish(self, state: T, info: DatasetInfo) -> Iterator[Finding]:
        """The state's findings."""
        return state.finish(info)


def head_length(checks: Iterable[DatasetCheck[Any]]) -> tuple[int, int]:
    """Rows and characters of head the given checks' plans need (largest of each)."""
    rows = chars = 0
    for check in checks:
        rows = max(rows, getattr(check, "head_rows", 0))
        chars = max(chars, getattr(check, "head_chars", 0))
    return rows, chars


def head_prefix(head: Sequence[Record], rows: int, chars: int, size: Callable[[str], int]) -> int:
    """How many leading rows of ``head`` a plan uses: up to and including the row where ``rows``
    rows or ``chars`` characters (``size`` of each text) are reached."""
    total = 0
    for i, record in enumerate(head):
        total += size(record.text)
        if i + 1 >= rows or total >= chars:
            return i + 1
    return len(head)


def split_head(records: Iterator[Record], rows: int, chars: int) -> list[Record]:
    """Take the head (``rows`` rows or ``chars`` characters of text, inclusive) off ``records``."""
    head: list[Record] = []
    total = 0
    if rows <= 0:
        return head
    for record in records:
        head.append(record)
        total += len(record.text)
        if len(head) >= rows or total >= chars:
            break
    return head


def run_check(
    check: DatasetCheck[Any],
    records: Sequence[Record],
    info: DatasetInfo,
    parts: Sequence[int] = (),
    order: str = "left",
) -> list[Finding]:
    """Run one check over in-memory rows: one pass, or split at the ``parts`` boundaries,
    observed per partition and merged in ``order`` (``left``, ``right`` or ``tree``).

    For tests, tools and small inputs; the runner streams instead.
    """
    hrows, hchars = head_length([check])
    plan = check.prepare(split_head(iter(records), hrows, hchars)) if hrows else None
    cuts = [0, *sorted(parts), len(records)]
    states = [check.observe(check.init(plan), records[a:b]) for a, b in itertools.pairwise(cuts)]
    return list(check.finish(merge_all(check, states, order), info))


def merge_all(check: DatasetCheck[S], states: list[S], order: str = "tree") -> S:
    """Merge states left to right, right to left, or as a balanced tree."""
    if order == "left":
        acc = states[0]
        for s in states[1:]:
            acc = check.merge(acc, s)
        return acc
    if order == "right":
        acc = states[-1]
        for s in reversed(states[:-1]):
            acc = check.merge(s, acc)
        return acc
    while len(states) > 1:
        nxt = [check.merge(a, b) for a, b in zip(states[::2], states[1::2], strict=False)]
        if len(states) % 2:
            nxt.append(states[-1])
        states = nxt
    return states[0]


# ---------------------------------------------------------------------------------------------
# Order-free sampling and labels
# ---------------------------------------------------------------------------------------------

_M1 = 0xFF51AFD7ED558CCD
_M2 = 0xC4CEB9FE1A85EC53
_MASK = (1 << 64) - 1


def row_priority(index: int, salt: int = 0) -> int:
    """A 64-bit hash of a row index (MurmurHash3 fmix64): the row's place in a ``HashSample``."""
    x = (index ^ salt) & _MASK
    x ^= x >> 33
    x = (x * _M1) & _MASK
    x ^= x >> 33
    x = (x * _M2) & _MASK
    return x ^ (x >> 33)


@dataclass(slots=True)
class HashSample(Generic[P]):
    """Bottom-k sample by ``row_priority``: the same ``cap`` rows whatever the arrival order
    or partitioning, so merging two samples is taking the ``cap`` smallest priorities."""

    cap: int
    salt: int = 0
    seen: int = 0
    heap: list[tuple[int, int, P]] = field(default_factory=list)
    """Max-heap by priority (stored negated): (-priority, row, item)."""

    def add(self, row: int, item: P) -> None:
        self.seen += 1
        pri = row_priority(row, self.salt)
        if len(self.heap) < self.cap:
            heapq.heappush(self.heap, (-pri, row, item))
        elif -pri > self.heap[0][0]:
            heapq.heapreplace(self.heap, (-pri, row, item))

    def merge(self, other: HashSample[P]) -> None:
        self.seen += other.seen
        for neg, row, item in other.heap:
            if len(self.heap) < self.cap:
                heapq.heappush(self.heap, (neg, row, item))
            elif neg > self.heap[0][0]:
                heapq.heapreplace(self.heap, (neg, row, item))

    def items(self) -> list[tuple[int, P]]:
        """The sample as (row, item), in row order."""
        return sorted(((row, item) for _n, row, item in self.heap), key=lambda t: t[0])


TOKEN_RE = re.compile(r"\w+|[^\w\s]+")
"""Word and punctuation tokens (label-flip and trigger checks)."""

DAT017 = make_rule(
    "DAT017",
    "Label analysis not applicable",
    Severity.INFO,
    "A label check needs a label field with at least two labels that each have enough rows.",
    "Pass --label-field if the dataset has labels under another name.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
MAX_LABELS = 255
"""Distinct labels tracked; further labels share one 'other' id (not a classification then)."""
OTHER_LABEL = MAX_LABELS


class LabelTable:
    """Label string → small int id (capped), remembering each label's first row so merged
    tables can be renumbered to what one pass would have given (ids by first row)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.first: list[int] = []

    def id(self, label: str | None, row: int = -1) -> int:
        if label is None:
            return -1
        got = self.ids.get(label)
        if got is None:
            if len(self.names) >= MAX_LABELS:
                return OTHER_LABEL
            got = len(self.names)
            self.ids[label] = got
            self.names.append(label)
            self.first.append(row)
        elif 0 <= row < self.first[got]:
            self.first[got] = row
        return got

    def name(self, i: int) -> str:
        return self.names[i] if 0 <= i < len(self.names) else "<other>"

    def absorb(self, other: LabelTable) -> I64:
        """Add ``other``'s labels; returns the map from its ids to ours (index ``id + 1``, so
        ``-1`` (unlabelled) maps through slot 0; ``OTHER_LABEL`` maps to itself)."""
        remap = np.full(OTHER_LABEL + 2, OTHER_LABEL, dtype=np.int64)
        remap[0] = -1
        for i, (name, row) in enumerate(zip(other.names, other.first, strict=True)):
            remap[i + 1] = self.id(name, row)
        return remap

    def canonical(self) -> I64:
        """Renumber by first row (what one pass gives); returns old id → new id (as
        ``absorb``: index ``id + 1``)."""
        order = sorted(range(len(self.names)), key=lambda i: (self.first[i], i))
        remap = np.full(OTHER_LABEL + 2, OTHER_LABEL, dtype=np.int64)
        remap[0] = -1
        for new, old in enumerate(order):
            remap[old + 1] = new
        self.names = [self.names[i] for i in order]
        self.first = [self.first[i] for i in order]
        self.ids = {n: i for i, n in enumerate(self.names)}
        return remap


# ---------------------------------------------------------------------------------------------
# Findings located at rows, and a bounded per-row collector
# ---------------------------------------------------------------------------------------------


def dataset_finding(
    info: DatasetInfo,
    rule: Rule,
    message: str,
    *,
    rows: Sequence[int] = (),
    evidence: str = "",
    severity: Severity | None = None,
    confidence: Confidence = Confidence.HIGH,
    group: str | None = None,
) -> Finding:
    """A finding located at rows of the dataset that ``info`` describes (for checks' ``finish``)."""
    return Finding(
        rule=rule.id,
        severity=rule.severity if severity is None else severity,
        confidence=confidence,
        message=message,
        location=Location(path=info.path, member=info.member, rows=tuple(rows)),
        evidence=evidence,
        group=group,
    )


MAX_ROW_FINDINGS = 50
"""Rows reported one by one per row check; the rest are summarised per rule."""
MAX_SUMMARY_ROWS = 1000


@dataclass(slots=True)
class RowHit:
    """One row's aggregated result for one check."""

    index: int
    rule: Rule
    severity: Severity
    message: str
    evidence: str
    confidence: Confidence = Confidence.HIGH
    group: str | None = None


@dataclass(slots=True)
class _RuleTally:
    count: int = 0
    worst: Severity = Severity.INFO
    rows: list[int] = field(default_factory=list)
    sample: str = ""
    sample_row: int = -1


class RowCollector:
    """Keeps the ``cap`` worst rows in full and an exact count (plus first rows) per rule.

    Mergeable: the kept rows are the worst by (severity, lowest row), first rows are the
    lowest rows, the sample is the lowest row's, so any partitioning gives the same result.
    """

    def __init__(self, cap: int = MAX_ROW_FINDINGS) -> None:
        self.cap = cap
        self._heap: list[tuple[int, int, RowHit]] = []
        self.tally: dict[str, _RuleTally] = {}
        self.rules: dict[str, Rule] = {}

    def add(self, hit: RowHit) -> None:
        """Count a hit; keep it in full only if it is among the worst ``cap`` so far."""
        t = self.tally.setdefault(hit.rule.id, _RuleTally())
        self.rules[hit.rule.id] = hit.rule
        t.count += 1
        t.worst = max(t.worst, hit.severity)
        if len(t.rows) < MAX_SUMMARY_ROWS:
            t.rows.append(hit.index)
        if t.sample_row < 0 or hit.index < t.sample_row:
            t.sample, t.sample_row = hit.evidence, hit.index
        self._push((int(hit.severity), -hit.index, hit))

    def _push(self, item: tuple[int, int, RowHit]) -> None:
        if len(self._heap) < self.cap:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def merge(self, other: RowCollector) -> None:
        """Absorb another collector's rows (of other row indices)."""
        for item in other._heap:
            self._push(item)
        self.rules.update(other.rules)
        for rule_id, o in other.tally.items():
            t = self.tally.setdefault(rule_id, _RuleTally())
            t.count += o.count
            t.worst = max(t.worst, o.worst)
            t.rows = sorted(t.rows + o.rows)[:MAX_SUMMARY_ROWS]
            if o.sample_row >= 0 and (t.sample_row < 0 or o.sample_row < t.sample_row):
                t.sample, t.sample_row = o.sample, o.sample_row

    @property
    def total(self) -> int:
        """Rows hit, all rules together."""
        return sum(t.count for t in self.tally.values())

    def findings(self, info: DatasetInfo, what: str) -> Iterator[Finding]:
        """Detailed findings in row order, then one summary per rule for the rows not shown."""
        kept = sorted((h for *_, h in self._heap), key=lambda h: h.index)
        shown: dict[str, int] = {}
        for h in kept:
            shown[h.rule.id] = shown.get(h.rule.id, 0) + 1
            yield dataset_finding(
                info,
                h.rule,
                h.message,
                rows=(h.index,),
                evidence=h.evidence,
                severity=h.severity,
                confidence=h.confidence,
                group=h.group,
            )
        for rule_id, t in sorted(self.tally.items()):
            rest = t.count - shown.get(rule_id, 0)
            if rest <= 0:
                continue
            shown_rows = {h.index for h in kept if h.rule.id == rule_id}
            rows = tuple(r for r in t.rows if r not in shown_rows)
            yield dataset_finding(
                info,
                self.rules[rule_id],
                f"{rest} more rows with {what} ({t.count} in all; first rows listed)",
                rows=rows,
                evidence=f"e.g. {t.sample}",
                severity=t.worst,
                confidence=Confidence.HIGH,
                group=f"{rule_id}:summary",
            )


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


# ---------------------------------------------------------------------------------------------
# Text normalisation, shingles and MinHash utilities (duplicates, outliers, triggers)
# ---------------------------------------------------------------------------------------------

SHINGLE = 5
_P = 1_000_003
_S33 = 33
_S32 = 32


def normalise(text: str) -> str:
    """NFKC, casefold and collapse whitespace: the text as compared for duplicates."""
    if text.isascii():  # NFKC is the identity on ASCII, and casefold is lower()
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def codepoints(texts: Sequence[str], pad: int = SHINGLE - 1) -> tuple[npt.NDArray[np.uint32], I64]:
    """All texts as one uint32 code-point array, each followed by ``pad`` zeros; plus starts.

    One ``encode`` for a whole batch keeps the per-row Python work to a ``len()``.
    """
    sep = "\0" * pad
    joined = sep.join(texts) + sep
    cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        starts[1:] = np.cumsum(lens + pad)[:-1]
    return cps, starts


def mix64(x: U64) -> U64:
    """MurmurHash3 fmix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> _S33
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


def shingle_hashes(
    texts: Sequence[str], k: int = SHINGLE
) -> tuple[npt.NDArray[np.uint32], I64, I64]:
    """32-bit hashes of every character k-gram of each text (k-1 zero pads end each text).

    Returns (hashes, per-text start offsets into hashes, per-text counts). A text of length L
    has exactly L shingles (the last k-1 include the end padding), so short texts still get one.
    """
    cps, starts = codepoints(texts, pad=k - 1)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    n = len(cps) - (k - 1)
    if n <= 0 or int(lens.sum()) == 0:
        return np.zeros(0, np.uint32), np.zeros(len(texts), np.int64), lens
    c = cps.astype(np.uint64)
    h = c[:n].copy()
    for j in range(1, k):
        h *= _P
        h += c[j : j + n]
    # one multiply-xorshift round is enough here: the permutations below re-mix the value
    h *= _M1
    h ^= h >> _S32
    # drop windows that start in the padding (k-1 positions after each text)
    keep = np.ones(n, dtype=bool)
    pad = (starts + lens)[:, None] + np.arange(k - 1, dtype=np.int64)[None, :]
    keep[pad[pad < n]] = False
    out = h[keep].astype(np.uint32)
    first = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        first[1:] = np.cumsum(lens)[:-1]
    return out, first, lens


def exact_hash(norm: str) -> int:
    """Deterministic 64-bit hash of a normalised text."""
    return int.from_bytes(
        hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def runs(sorted_keys: np.ndarray) -> tuple[I64, I64]:
    """Start and end (exclusive) of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate(([0], brk)).astype(np.int64)
    ends = np.concatenate((brk, [len(sorted_keys)])).astype(np.int64)
    return starts, ends


# ---------------------------------------------------------------------------------------------
# Linear algebra without scikit-learn (its import alone costs ~1 s of CPU on a small file)
# ---------------------------------------------------------------------------------------------


def l2_rows(x: Any) -> Any:
    """Rows scaled to unit L2 norm (zero rows stay zero); dense arrays or SciPy CSR."""
    if hasattr(x, "tocsr"):
        x = x.tocsr()
        sq = np.asarray(x.multiply(x).sum(axis=1)).ravel()
        norms = np.sqrt(sq)
        norms[norms == 0] = 1.0
        from scipy.sparse import diags

        return (diags((1.0 / norms).astype(x.dtype)) @ x).tocsr()
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    return x / norms[:, None].astype(x.dtype)


def top_right_vectors(x: Any, k: int, oversample: int = 8, n_iter: int = 2, seed: int = 0) -> Any:
    """The top ``k`` right singular vectors (k × features) of ``x`` (rows × features, dense or
    CSR) by a randomized range finder (Halko et al. 2011), as scikit-learn's
    ``randomized_svd(..., power_iteration_normalizer="none")`` computes them for wide matrices:
    power iterations on the feature side, one QR, one small SVD. NumPy only."""
    n = x.shape[0]
    rng = np.random.RandomState(seed)
    omega = rng.normal(size=(n, k + oversample)).astype(np.float32)
    q = np.asarray(x.T @ omega)  # features × (k + p)
    for _ in range(n_iter):
        q = np.asarray(x.T @ np.asarray(x @ q))
    q, _r = np.linalg.qr(q)
    b = np.asarray(x @ q).T  # (k + p) × rows: q.T @ x.T
    u_hat, _s, _vt = np.linalg.svd(b, full_matrices=False)
    return np.ascontiguousarray((q @ u_hat[:, :k]).T)
