"""Tabular outliers: Local Outlier Factor on the numeric columns of a table (DAT023/DAT024).

Poisoned tabular rows (a feature pushed far out of range, or values that break the correlations
every other row follows, e.g. a "benign" label on a row whose features contradict each other)
are often isolated points in feature space. LOF compares each row's local density with its
neighbours', so it finds both global outliers and contextual ones that no single-column range
check sees. Outliers are review hints, not proof of poisoning: severities stay LOW/INFO.

Rows come from ``Record.values`` (the readers fill it when a file has >= 2 numeric columns). A
bounded reservoir sample (Algorithm L, fixed seed) keeps at most ``RESERVOIR_ROWS`` rows and
``RESERVOIR_CELLS`` cells, so memory does not grow with the file; files up to that size are
analysed whole. At the end: non-finite cells become NaN and are imputed with the column median,
columns are robust-scaled (median / IQR), discrete columns are de-quantised with a tiny seeded
jitter (exact duplicate rows otherwise give LOF infinite local densities and absurd scores), and
rows whose LOF is both >= ``LOF_MIN`` and far beyond the rest (median + ``K_MAD`` robust
deviations) are reported, strongest first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

from scanners._lazy import lazy_module
from scanners.dataset.common import DatasetInfo, HashSample, Record, StateCheck, single_blas
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]
    I64 = npt.NDArray[np.int64]
else:
    np = lazy_module("numpy")

DAT023 = make_rule(
    "DAT023",
    "Tabular outlier row",
    Severity.LOW,
    "The row's numeric values put it far from its nearest neighbours compared with how close "
    "those neighbours are to theirs (Local Outlier Factor on robust-scaled numeric columns). "
    "Injected rows often sit outside the data's range or break the correlations the other rows "
    "follow. An outlier is a hint, not proof of poisoning: rare but genuine records look the same.",
    "Review the row and the columns named in the evidence; drop or fix it if it does not belong.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT024 = make_rule(
    "DAT024",
    "Tabular outliers summary",
    Severity.INFO,
    "How many rows of a table are numeric (LOF) outliers, over how many sampled rows and columns. "
    "Large files are analysed on a fixed-seed reservoir sample of their rows.",
    "Review the listed rows, strongest first.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)

RESERVOIR_ROWS = 20_000
RESERVOIR_CELLS = 2_000_000
"""Rows kept (at most) for LOF: 20 000, fewer for wide tables (16 MB of float64 at most)."""
MIN_ROWS = 50
MIN_COLUMNS = 2
N_NEIGHBORS = 20
MAX_GROUP_NEIGHBORS = 100
"""Second, wider neighbourhood (``n/10`` rows, at most this) against self-masking groups."""
LOF_MIN = 2.0
"""A row is reported only when its local density is at most half its neighbours'..."""
K_MAD = 8.0
MIN_MAD = 0.05
"""...and its LOF lies beyond median + 8 robust deviations of all rows' LOF (at least 0.05
each, so data where every LOF is ~1 does not turn tiny wobbles into outliers)."""
LOF_STRONG = 5.0
"""LOW from this LOF on (INFO below), when such rows are rare (``RARE_SHARE``). Clean Gaussian
tables of 100-20 000 rows reach LOF 2-4.4 at their edges."""
RARE_SHARE = 0.02
"""When more than 2 % of rows reach ``LOF_STRONG`` (and the threshold) the data has a long
tail, not a few planted rows: every row finding is INFO."""
MAX_ROW_FINDINGS = 50
MAX_SUMMARY_ROWS = 10_000
TOP_COLUMNS = 3
CLIP = 1e6
"""Scaled values are clipped here so squared distances stay finite (1e300 cells)."""
SEED = 0x5EED


class TabularOutlierCheck(StateCheck["TabularState"]):
    """LOF outliers over the numeric columns (``Record.values``) of a table (DAT023, DAT024).

    State: a bottom-k sample of rows by a hash of the row index (``HashSample``), so partitions
    merge into the sample one pass keeps.
    """

    name: ClassVar[str] = "tabular-outliers"
    rules: ClassVar[tuple[Rule, ...]] = (DAT023, DAT024)
    needs_text: ClassVar[bool] = False
    """Tables without a text field are exactly what this check is for."""

    def __init__(self, capacity: int = RESERVOIR_ROWS) -> None:
        self.capacity = capacity

    def init(self, plan: object) -> TabularState:
        """An empty sample."""
        return TabularState(self.capacity)


class TabularState:
    """The sampled rows' values (see ``TabularOutlierCheck``)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._cap = 0
        self._width = -1
        self._first = -1
        """Row that fixed the width (the lowest row with values)."""
        self._sample: HashSample[tuple[float, ...]] = HashSample(0, salt=SEED)
        self._seen = 0
        self._skipped = 0

    def _set_width(self, width: int, row: int) -> None:
        self._width, self._first = width, row
        self._cap = max(MIN_ROWS, min(self._capacity, RESERVOIR_CELLS // width))
        self._sample.cap = self._cap

    def add(self, record: Record) -> None:
        """Keep the row's values in the bounded sample."""
        values = record.values
        if not values:
            return
        if self._width < 0:
            self._set_width(len(values), record.index)
        if len(values) != self._width:
            self._skipped += 1
            return
        self._seen += 1
        self._sample.add(record.index, values)

    def merge(self, other: TabularState) -> None:
        """Union of the samples; the width is that of the lowest row with values (rows of
        another width are skipped, as one pass would)."""
        if other._width < 0:
            return
        if self._width >= 0 and self._first <= other._first:
            first, second = self, other
        else:
            first, second = other, self
        width, first_row = first._width, first._first
        sample, seen, skipped = first._sample, first._seen, first._skipped + second._skipped
        if second._width == width:
            sample.merge(second._sample)
            seen += second._seen
        else:
            skipped += second._seen
        self._set_width(width, first_row)
        self._sample, self._seen, self._skipped = sample, seen, skipped

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Scale, run LOF on the sample and report the rows far beyond the rest."""
        items = self._sample.items()
        n = len(items)
        if n < MIN_ROWS or self._width < MIN_COLUMNS:
            return
        raw = np.array([v for _r, v in items], dtype=np.float64).reshape(n, self._width)
        rows = np.array([r for r, _v in items], dtype=np.int64)
        raw[~np.isfinite(raw)] = np.nan
        prepared = _prepare(raw)
        if prepared is None:
            return
        z, med, cols = prepared
        with single_blas():
            score, neighbours = _lof(z)
        center = float(np.median(score))
        mad = max(float(np.median(np.abs(score - center))) * 1.4826, MIN_MAD)
        threshold = max(LOF_MIN, center + K_MAD * mad)
        flagged = np.flatnonzero(score >= threshold)
        if len(flagged) == 0:
            return
        order = flagged[np.lexsort((rows[flagged], -score[flagged]))]
        names = _column_names(info, self._width)
        strong_at = max(threshold, LOF_STRONG)
        rare = int(np.count_nonzero(score >= strong_at)) <= max(1, int(RARE_SHARE * n))
        sampled = self._seen > n
        for i in order[:MAX_ROW_FINDINGS]:
            s = float(score[i])
            strong = rare and s >= strong_at and info.text_field is None
            evidence = _deviant_columns(i, raw, z, med, cols, names, neighbours[i])
            yield Finding(
                rule=DAT023.id,
                severity=Severity.LOW if strong else Severity.INFO,
                confidence=Confidence.MEDIUM if strong and s >= 2 * LOF_STRONG else Confidence.LOW,
                message=(
                    f"row {int(rows[i])} is a numeric outlier: LOF {s:.3g} "
                    f"(median row {center:.2f}, threshold {threshold:.2f})"
                ),
                location=Location(path=info.path, member=info.member, rows=(int(rows[i]),)),
                evidence=evidence,
                group="tabular-outliers",
            )
        listed = [int(rows[i]) for i in order[:MAX_SUMMARY_ROWS]]
        scope = f"a sample of {n} of {self._seen} rows" if sampled else f"{n} rows"
        yield Finding(
            rule=DAT024.id,
            severity=Severity.INFO,
            confidence=Confidence.LOW,
            message=(
                f"{len(flagged)} numeric outlier rows (LOF >= {threshold:.2f}) in {scope} "
                f"over {len(cols)} numeric columns"
                + ("" if rare else "; a long tail rather than a few planted rows")
            ),
            location=Location(path=info.path, member=info.member, rows=tuple(listed)),
            evidence="strongest rows "
            + ", ".join(f"{int(rows[i])} (LOF {float(score[i]):.3g})" for i in order[:10]),
            group="tabular-outliers",
        )


def _prepare(raw: F64) -> tuple[F64, F64, I64] | None:
    """Impute, robust-scale and de-quantise; ``(scaled rows, column medians, kept column
    indices)`` or ``None`` when fewer than two columns vary."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        med = np.nanmedian(raw, axis=0)
    usable = np.isfinite(med)
    x = np.where(np.isnan(raw), med, raw)
    q1, q3 = np.percentile(np.where(usable, x, 0.0), [25.0, 75.0], axis=0)
    scale = (q3 - q1) / 1.349
    # A column dominated by one value has IQR 0: fall back to the mean absolute deviation.
    mean_ad = np.mean(np.abs(np.where(usable, x, 0.0) - np.where(usable, med, 0.0)), axis=0)
    scale = np.where(scale > 0, scale, 1.2533 * mean_ad)
    keep = usable & np.isfinite(scale) & (scale > 0)
    cols = np.flatnonzero(keep).astype(np.int64)
    if len(cols) < MIN_COLUMNS:
        return None
    x = x[:, cols]
    scale = scale[cols]
    n = len(x)
    steps = np.zeros(len(cols))
    for c in range(len(cols)):
        distinct = np.unique(x[:, c])
        if 2 <= len(distinct) <= n // 2:
            # Discrete column (counts, codes, flags, pixel levels): one step of its values
            # is at least one unit, so a rare "1" in a column of "0"s is not 100 deviations out.
            steps[c] = float(np.median(np.diff(distinct)))
    scale = np.maximum(scale, steps)
    z = np.clip((x - med[cols]) / scale, -CLIP, CLIP)
    # ...and each value is spread over its own step (seeded), so duplicate rows do not get a
    # zero k-distance (LOF divides by it).
    rng = np.random.default_rng(SEED)
    for j in np.flatnonzero(steps):
        z[:, j] += (rng.random(n) - 0.5) * (steps[j] / scale[j])
    return z, med, cols


def _lof(z: F64) -> tuple[F64, I64]:
    """LOF of every row (>= ~1; larger = more isolated) and each row's 20 nearest rows.

    The score is the largest LOF over two neighbourhood sizes (Breunig et al. 2000 take the
    max over a MinPts range): 20 neighbours see isolated rows; ``n/10`` (at most 100) see a
    planted group of up to that many similar rows, which masks itself at 20 (each of them has
    its accomplices as neighbours). One k-NN query serves both; the LOF formula is
    scikit-learn's ``LocalOutlierFactor`` (a test checks they agree)."""
    from sklearn.neighbors import NearestNeighbors

    n, d = z.shape
    k = min(N_NEIGHBORS, n - 1)
    k_group = min(MAX_GROUP_NEIGHBORS, n // 10)
    k_max = max(k, k_group)
    # kd-trees lose to brute force from ~6 dimensions on (4.4 s vs 1.5 s for 20 000 x 10).
    algorithm = "auto" if d <= 6 else "brute"
    nn = NearestNeighbors(n_neighbors=k_max, algorithm=algorithm).fit(z)
    dist, ind = nn.kneighbors()  # each row's neighbours, itself excluded
    dist = np.asarray(dist, dtype=np.float64)
    ind = np.asarray(ind, dtype=np.int64)
    score = lof_scores(dist[:, :k], ind[:, :k])
    if k_group > k:
        score = np.maximum(score, lof_scores(dist, ind))
    near: I64 = ind[:, :k]
    return score, near


def lof_scores(dist: F64, ind: I64) -> F64:
    """LOF from each row's k nearest (distance, index), exactly as scikit-learn computes it."""
    k_dist = dist[:, -1]
    reach = np.maximum(dist, k_dist[ind])
    lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
    scores: F64 = lrd[ind].mean(axis=1) / lrd
    return scores


def _column_names(info: DatasetInfo, width: int) -> Sequence[str]:
    """The numeric columns' names when the scanner passes them, else ``numeric[j]``."""
    names = tuple(getattr(info, "numeric_fields", ()) or ())
    if len(names) == width:
        return names
    return [f"numeric[{j}]" for j in range(width)]


def _deviant_columns(
    i: int,
    raw: F64,
    z: F64,
    med: F64,
    cols: I64,
    names: Sequence[str],
    near: I64,
) -> str:
    """The columns that set the row apart, most deviant first: its value, the column median
    and, when it differs, what the row's nearest neighbours have (contextual outliers)."""
    local = np.abs(z[i] - (z[near].mean(axis=0) if len(near) else 0.0))
    ranked = np.argsort(-local, kind="stable")[:TOP_COLUMNS]
    # Secondary columns only when they matter too (a 50x value needs no companions).
    ranked = (
        ranked[local[ranked] >= max(1.0, 0.3 * float(local[ranked[0]]))] if len(ranked) else ranked
    )
    parts: list[str] = []
    for c in ranked if len(ranked) else np.argsort(-local, kind="stable")[:1]:
        j = int(cols[c])
        value = raw[i, j]
        shown = "not-a-number" if math.isnan(value) else f"{value:.4g}"
        text = f"{names[j]}={shown} (median {med[j]:.4g}"
        if len(near):
            seen = raw[near, j][np.isfinite(raw[near, j])]
            typical = float(np.median(seen)) if len(seen) else math.nan
            if math.isfinite(typical) and f"{typical:.4g}" != f"{med[j]:.4g}":
                text += f", nearest rows ~{typical:.4g}"
        parts.append(text + ")")
    return "; ".join(parts)
