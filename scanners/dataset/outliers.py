"""Outlier rows: foreign-script/junk characters, off-subspace content, and odd lengths.

Outliers are review hints, not proof of poisoning: injected rows (gibberish DoS payloads after a
``<SUDO>`` trigger, foreign-language instructions, encoded blobs) are often off-distribution, but
so is plenty of harmless data. Severities stay low unless several signals agree.

Content signal: hashed character 3-gram TF-IDF vectors, projected on the top-k SVD components of
a calibration window; the score is the energy left outside that subspace, ‖x − VᵀVx‖² / ‖x‖².
(IsolationForest *on the projection* finds nothing: foreign-script and junk rows have almost no
energy in the subspace, so they sit near the origin among normal rows.) The subspace is fitted on
the first ``WARMUP`` rows, then every later row is scored as it streams past, so every row gets a
score in one pass with bounded memory (a dataset whose topic drifts after the first rows will show
more content outliers; the threshold is robust, median + 5·MAD, and findings are capped).

Memory: ~20 bytes/row (score, length, 10 script counters) plus the calibration window.
Tabular (numeric) rows are not analysed: ``Record`` carries text only (LOF on numeric columns is a
possible extension).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scanners._lazy import lazy_module
from scanners.dataset.common import (
    DatasetInfo,
    Record,
    StateCheck,
    codepoints,
    head_prefix,
    l2_rows,
    normalise,
    shingle_hashes,
    single_blas,
    top_right_vectors,
)
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]
else:
    np = lazy_module("numpy")


DAT020 = make_rule(
    "DAT020",
    "Row in an unusual script or character set",
    Severity.LOW,
    "Most of the row's letters are in a script that the rest of the dataset hardly uses, or the "
    "row is mostly symbols, control or private-use characters. Poisoned rows (gibberish payloads, "
    "instructions in another language, encoded blobs) often look like this.",
    "Look at the row; drop it if it does not belong in the dataset.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT021 = make_rule(
    "DAT021",
    "Content outlier",
    Severity.INFO,
    "The row's character n-gram profile lies far outside the subspace that describes the rest of "
    "the data (robust z of the residual energy after projection on the top SVD components).",
    "Review the row; an outlier is a hint, not proof of poisoning.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT022 = make_rule(
    "DAT022",
    "Length outlier",
    Severity.INFO,
    "The row is far longer or shorter than the rest (robust z of log length). Payload rows and "
    "truncated/garbage rows show up here.",
    "Review the row.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)

WARMUP = 20_000
"""Rows in the calibration window the SVD subspace is fitted on."""
FEATURE_BITS = 15
N_FEATURES = 1 << FEATURE_BITS
N_COMPONENTS = 32
Z_CONTENT = 5.0
Z_LENGTH = 4.0
MIN_ROWS = 30
"""Below this, robust statistics are meaningless: the check reports nothing."""
MAX_ROW_FINDINGS = 50
MAX_SUMMARY_ROWS = 10_000
_BATCH = 4096
_BATCH_CHARS = 4_000_000
MAX_CHARS = 100_000
"""Characters of a row that are analysed (length outliers still see the truncated length)."""
WARMUP_CHARS = 20_000_000
"""The calibration window also ends once it holds this many characters."""

# Unicode blocks → coarse script buckets (start code point, bucket), sorted.
LATIN, DIGIT, ASCII_OTHER, LATIN_EXT, GREEK, CYRILLIC, RTL, INDIC, CJK, SYMBOL, OTHER = range(11)
N_BUCKETS = 11
LETTER_BUCKETS = (LATIN, LATIN_EXT, GREEK, CYRILLIC, RTL, INDIC, CJK)
BUCKET_NAMES = (
    "Latin",
    "digits",
    "ASCII punctuation",
    "Latin extended",
    "Greek",
    "Cyrillic",
    "Hebrew/Arabic",
    "Indic/SE Asian",
    "CJK/Hangul/Kana",
    "symbols/emoji",
    "other (control/private-use/format)",
)
_RANGES = (
    (0x00, ASCII_OTHER),
    (0x30, DIGIT),
    (0x3A, ASCII_OTHER),
    (0x41, LATIN),
    (0x5B, ASCII_OTHER),
    (0x61, LATIN),
    (0x7B, ASCII_OTHER),
    (0x7F, OTHER),
    (0xA0, SYMBOL),
    (0xC0, LATIN_EXT),
    (0x2B0, SYMBOL),
    (0x370, GREEK),
    (0x400, CYRILLIC),
    (0x530, RTL),  # Armenian is lumped with Hebrew/Arabic/Syriac/Thaana here
    (0x900, INDIC),
    (0x1100, CJK),
    (0x1200, OTHER),
    (0x1E00, LATIN_EXT),
    (0x1F00, GREEK),
    (0x2000, SYMBOL),
    (0x2E80, CJK),
    (0xA000, OTHER),
    (0xAC00, CJK),
    (0xD7B0, OTHER),
    (0xF900, CJK),
    (0xFB00, OTHER),
    (0xFE00, SYMBOL),
    (0xFF00, OTHER),  # fullwidth forms: a homoglyph favourite, never a dataset's own script
    (0x1F000, SYMBOL),
    (0x1FB00, OTHER),
    (0x20000, CJK),
    (0x30000, OTHER),
)


# Row shapes that do not belong in a natural-language dataset: cheap per-row tests, reported
# when the shape is rare in the file (a code or log dataset is made of such rows, so it is not).
_B64 = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_HEX = re.compile(
    r"(?:\b[0-9A-Fa-f]{2}[\s:,-]){12,}|\b(?:0x)?[0-9A-Fa-f]{32,}\b|(?:\\x[0-9A-Fa-f]{2}){8,}"
)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]{0,200})?/?>")
_SCRIPT = re.compile(r"<script\b|javascript:|\bon(?:error|load|click|mouseover)\s*=", re.I)
_JSON = re.compile(r"[{,]\s*\"[^\"\n]{1,64}\"\s*:")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"]+", re.I)
_CONSONANTS = re.compile(r"[bcdfghjklmnpqrstvwxzBCDFGHJKLMNPQRSTVWXZ]{6,}")
_DIGIT = re.compile(r"\d")
_WORD4 = re.compile(r"\b[A-Za-z][a-z]{3,}\b")
"""ASCII words of 4+ letters that are not all upper case (acronyms)."""
_C = "bcdfghjklmnpqrstvwxz"
_NO_VOWEL = re.compile(rf"\b[{_C}{_C.upper()}][{_C}]{{3,}}\b")
"""Words of 4+ letters without a vowel (``y`` counts as one); with the 6-consonant runs of
``_CONSONANTS`` these are the unpronounceable words (both are linear scans without backtracking)."""
SHAPE_MAX_SHARE = 0.02
"""A shape is reported only when at most this share of the rows has it."""
SHAPE_MIN_CHARS = 24
SHAPE_KEEP = 10_000
"""Rows kept per shape (memory bound); a shape this common is the dataset's nature anyway."""
_SHAPE_NAMES = (
    "",
    "encoded blob (base64-like)",
    "hex dump",
    "markup/script",
    "JSON fragment",
    "list of URLs",
    "keyboard mash (unpronounceable letter runs)",
    "repeated tokens",
)


def row_shape(text: str) -> tuple[int, str]:
    """(shape id, detail) of a row that is mostly not prose, or (0, "") for ordinary text.

    Each test measures how much of the row a non-prose pattern covers, so one URL, one hash or
    one HTML tag inside a normal sentence does not count. Cheap literal gates (a digit, ``<``,
    ``http``, a consonant run) keep ordinary prose at a few microseconds per row.
    """
    t = text.strip()
    n = len(t)
    if n < SHAPE_MIN_CHARS:
        return 0, ""
    dense = n - t.count(" ")
    if _DIGIT.search(t):
        hexed = sum(len(m) for m in _HEX.findall(t))
        if hexed >= 0.5 * dense and hexed >= 24:
            return 2, f"{hexed} of {dense} characters are hex"
        blob = [m for m in _B64.findall(t) if _mixed(m)]
        covered = sum(len(m) for m in blob)
        if covered >= 0.5 * dense and covered >= 32:
            longest = max(map(len, blob))
            return 1, f"{covered} of {dense} characters in base64-like runs (longest {longest})"
    if "<" in t or "javascript:" in t:
        tags = _TAG.findall(t)
        tag_chars = sum(len(m) for m in tags)
        if _SCRIPT.search(t) or (len(tags) >= 3 and tag_chars >= 0.3 * n):
            return 3, f"{len(tags)} tags covering {tag_chars} of {n} characters"
    if t[0] in "{[":
        keys = len(_JSON.findall(t))
        if keys >= 2:
            return 4, f"starts with {t[0]!r} and has {keys} quoted keys"
    if "http" in t or "www." in t:
        urls = _URL.findall(t)
        url_chars = sum(len(u) for u in urls)
        if len(urls) >= 3 and url_chars >= 0.5 * dense:
            return 5, f"{len(urls)} URLs covering {url_chars} of {dense} characters"
    words = t.split()
    if _CONSONANTS.search(t):
        # acronyms (HTML, NASDAQ) are written upper case and are not mash
        n_words = len(_WORD4.findall(t))
        if n_words >= 3:
            mash = len(_CONSONANTS.findall(t)) + len(_NO_VOWEL.findall(t))
            if mash >= 3 and mash >= 0.5 * n_words:
                return 6, f"{mash} of {n_words} words without pronounceable vowels"
    if len(words) >= 12:
        distinct = len(set(words))
        if distinct <= 0.25 * len(words):
            return 7, f"{len(words)} tokens, {distinct} distinct"
    longest_word = max(words, key=len)
    if len(longest_word) >= 20 and len(set(longest_word)) <= 2:
        return 7, f"one character repeated {len(longest_word)} times"
    return 0, ""


# Per-character classes of ASCII for the vectorised shape gate (``shape_candidates``).
_CLASSES = ("digit", "consonant", "letter", "lower", "word", "space")


@functools.cache
def _ascii_classes() -> dict[str, npt.NDArray[np.bool_]]:
    """One boolean lookup table per class, indexed by byte (the regexes' own definitions)."""
    tests: dict[str, Callable[[str], bool]] = {
        "digit": lambda ch: bool(_DIGIT.match(ch)),
        "consonant": lambda ch: ch.lower() in _C,
        "letter": lambda ch: ch.isascii() and ch.isalpha(),
        "lower": lambda ch: "a" <= ch <= "z",
        "word": lambda ch: bool(re.match(r"\w", ch)),
        "space": lambda ch: ch.isspace(),
    }
    return {
        name: np.array([i < 128 and tests[name](chr(i)) for i in range(256)], dtype=np.bool_)
        for name in _CLASSES
    }


def row_shapes(texts: Sequence[str]) -> list[tuple[int, str]]:
    """``row_shape`` of each text; a vectorised pass settles most rows without it."""
    return [
        row_shape(t) if r is None else r for t, r in zip(texts, _shape_plan(texts), strict=True)
    ]


def shape_candidates(texts: Sequence[str]) -> list[bool]:
    """False only for rows ``row_shape`` certainly calls ordinary."""
    return [r is None or r[0] != 0 for r in _shape_plan(texts)]


_ORDINARY = (0, "")


def _shape_plan(texts: Sequence[str]) -> list[tuple[int, str] | None]:
    """Each row's shape where it is settled without ``row_shape``, else ``None``.

    Per-row literal tests in Python send rows with markup, URLs, a leading bracket or other
    scripts to the reference. For the other (ASCII) rows NumPy over the whole batch computes the
    keyboard-mash test exactly (word and consonant-run counts) and two necessary conditions of
    the repeated-token tests (a 20+ character token; few distinct token fingerprints): a row
    without digits and mash is shape 6 as ``row_shape`` would say (the tests before it need a
    digit or a literal these rows lack); rows with digits or possible repetition take the
    reference; the rest are ordinary."""
    out: list[tuple[int, str] | None] = [_ORDINARY] * len(texts)
    batch: list[str] = []
    where: list[int] = []
    for i, text in enumerate(texts):
        t = text.strip()
        if len(t) < SHAPE_MIN_CHARS:
            continue
        if (
            not t.isascii()
            or "<" in t
            or "javascript:" in t
            or t[0] in "{["
            or "http" in t
            or "www." in t
        ):
            out[i] = None
            continue
        batch.append(t)
        where.append(i)
    if batch:
        maybe, digit, mash_hit, mash, n_words = _ascii_candidates(batch)
        for j in np.flatnonzero(maybe).tolist():
            i = where[j]
            if mash_hit[j] and not digit[j]:
                detail = f"{int(mash[j])} of {int(n_words[j])} words without pronounceable vowels"
                out[i] = (6, detail)
            else:
                out[i] = None
    return out


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and last position of each maximal run of True (the array ends with False)."""
    shifted = np.empty(len(mask) + 1, dtype=bool)
    shifted[0] = False
    shifted[1:] = mask
    edges = np.flatnonzero(shifted[1:] != shifted[:-1])  # a bool mask: NumPy's fast path
    return edges[0::2], edges[1::2] - 1


def _ascii_candidates(
    texts: Sequence[str],
) -> tuple[
    npt.NDArray[np.bool_],
    npt.NDArray[np.bool_],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """For stripped ASCII rows: (may have a shape, has a digit, keyboard mash, mash count,
    word count), vectorised over the batch: boolean table lookups, run edges and prefix sums,
    no per-row Python (see ``_shape_plan``)."""
    n_rows = len(texts)
    joined = "\n".join(texts) + "\n"  # a separator that is white space and not a word
    codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    lens = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=n_rows)
    row_of = np.repeat(np.arange(n_rows, dtype=np.int32), lens)
    cls = _ascii_classes()
    digit = np.zeros(n_rows, dtype=bool)
    digit[row_of[np.flatnonzero(np.take(cls["digit"], codes))]] = True
    maybe = digit.copy()
    # keyboard mash, exactly: maximal consonant runs of 6+, words [A-Za-z][a-z]{3,} and
    # vowel-free words [consonant][lower consonant]{3,} (a word is a maximal \w run)
    cons = np.take(cls["consonant"], codes)
    c_first, c_last = _runs(cons)
    runs = np.bincount(row_of[c_first[(c_last - c_first) >= 5]], minlength=n_rows)
    word = np.take(cls["word"], codes)
    w_first, w_last = _runs(word)
    # a word's tail (after its first character) must be lower-case letters for both patterns
    odd_tail = np.flatnonzero(word[1:] & word[:-1] & ~np.take(cls["lower"], codes[1:])) + 1
    tail_ok = np.ones(len(w_first), dtype=bool)
    tail_ok[np.searchsorted(w_first, odd_tail, side="right") - 1] = False
    long_ok = ((w_last - w_first) >= 3) & tail_ok
    w4 = long_ok & np.take(cls["letter"], codes[w_first])
    # vowel-free: every character of the word is a consonant (prefix sums of the mask)
    n_cons = np.cumsum(cons, dtype=np.int32)
    wv = long_ok & ((n_cons[w_last] - n_cons[w_first]) == (w_last - w_first)) & cons[w_first]
    n_words = np.bincount(row_of[w_first[w4]], minlength=n_rows)
    mash = runs + np.bincount(row_of[w_first[wv]], minlength=n_rows)
    mash_hit = (runs > 0) & (n_words >= 3) & (mash >= 3) & (2 * mash >= n_words)
    maybe |= mash_hit
    # repeated tokens: a token of 20+ characters, or (12+ tokens and) distinct fingerprints
    # (length and the two first and two last characters: equal tokens share one) <= a quarter
    t_first, t_last = _runs(~np.take(cls["space"], codes))
    tlen = t_last - t_first + 1
    trow = row_of[t_first]
    maybe[trow[tlen >= 20]] = True
    n_tok = np.bincount(trow, minlength=n_rows)
    busy = n_tok >= 12
    if busy.any():
        fp = (
            (trow.astype(np.int64) << 42)
            | (np.minimum(tlen, 1023).astype(np.int64) << 32)
            | (codes[t_first].astype(np.int64) << 24)
            | (codes[np.minimum(t_first + 1, t_last)].astype(np.int64) << 16)
            | (codes[np.maximum(t_last - 1, t_first)].astype(np.int64) << 8)
            | codes[t_last]
        )
        keyed = np.sort(fp)
        new_key = np.concatenate(([True], keyed[1:] != keyed[:-1]))
        distinct = np.bincount(keyed[new_key] >> 42, minlength=n_rows)
        maybe |= busy & (4 * distinct <= n_tok)
    return maybe, digit, mash_hit, mash, n_words


def _mixed(run: str) -> bool:
    """Base64 mixes cases and digits; a long word or a snake_case identifier does not."""
    return (
        sum(c.isdigit() for c in run) >= 2
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
    )


@functools.cache
def _script_tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    """Range starts and their buckets as arrays (built on first use: NumPy loads lazily)."""
    starts = np.array([r[0] for r in _RANGES], dtype=np.uint32)
    buckets = np.array([r[1] for r in _RANGES], dtype=np.int64)
    return starts, buckets


@functools.cache
def _script_lut(spaces: bool = False) -> npt.NDArray[np.int64]:
    """Bucket of every code point up to the last range start (one gather per character instead
    of a binary search; code points past it share the last range's bucket). ``spaces``: tab,
    LF, CR and space get the extra bucket ``N_BUCKETS``."""
    starts, buckets = _script_tables()
    top = int(starts[-1])
    cps = np.arange(top + 1, dtype=np.uint32)
    lut = buckets[np.searchsorted(starts, cps, side="right") - 1]
    if spaces:
        lut[[0x09, 0x0A, 0x0D, 0x20]] = N_BUCKETS
    return lut


def script_counts(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Characters per script bucket for each text (whitespace not counted), vectorised."""
    cps, _starts = codepoints(texts, pad=0)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    lut = _script_lut(spaces=True)  # the four white-space characters → an extra column
    bucket = lut.take(np.minimum(cps, np.uint32(len(lut) - 1)))
    rows = np.repeat(np.arange(0, len(texts) * (N_BUCKETS + 1), N_BUCKETS + 1), lens)
    flat = np.bincount(rows + bucket, minlength=len(texts) * (N_BUCKETS + 1))
    return flat.reshape(len(texts), N_BUCKETS + 1)[:, :N_BUCKETS]


def _features(texts: Sequence[str]) -> object:
    """Hashed char 3-gram counts (CSR, rows × N_FEATURES), sublinear TF."""
    from scipy.sparse import csr_matrix

    hashes, _first, lens = shingle_hashes(texts, k=3)
    # (row, column) keys in 32 bits while they fit (a batch, the calibration window): one
    # integer sort instead of CSR index sorting + duplicate summing, half the bytes of 64
    wide = (len(texts) << FEATURE_BITS) > 0xFFFFFFFF
    kt: Any = np.uint64 if wide else np.uint32
    cols = (hashes >> np.uint32(32 - FEATURE_BITS)).astype(kt)
    rows = np.repeat(np.arange(len(texts), dtype=kt), lens)
    key = np.sort((rows << kt(FEATURE_BITS)) | cols)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else key
    counts = np.diff(np.concatenate((starts, [len(key)]))).astype(np.float32)
    uniq = key[starts]
    row_of = (uniq >> kt(FEATURE_BITS)).astype(np.int64)
    col_of = (uniq & kt(N_FEATURES - 1)).astype(np.int32)
    indptr = np.searchsorted(row_of, np.arange(len(texts) + 1)).astype(np.int32)
    x = csr_matrix((np.log1p(counts), col_of, indptr), shape=(len(texts), N_FEATURES))
    x.has_sorted_indices = True
    return x


@dataclass(slots=True)
class _Model:
    idf: npt.NDArray[np.float32]
    comps: npt.NDArray[np.float32]
    """(k, N_FEATURES) orthonormal rows."""
    comps_t: npt.NDArray[np.float32] | None = None
    """``comps.T`` made contiguous once (SciPy would copy the transposed view every batch)."""

    def residual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Share of each row's TF-IDF energy outside the subspace; 1.0 for empty rows.

        ``1 − ‖V x‖² / ‖x‖²`` on the raw TF-IDF row: the same quantity as projecting the
        unit row, without building the scaled matrix."""
        from scipy.sparse import csr_matrix

        if self.comps_t is None:
            self.comps_t = np.ascontiguousarray(self.comps.T)
        x = _features(texts)
        indptr = x.indptr  # type: ignore[attr-defined]
        indices = x.indices  # type: ignore[attr-defined]
        data = x.data * self.idf[indices]  # type: ignore[attr-defined]
        sq = np.bincount(
            np.repeat(np.arange(len(texts)), np.diff(indptr)),
            weights=data * data,
            minlength=len(texts),
        )
        xi = csr_matrix((data, indices, indptr), shape=x.shape)  # type: ignore[attr-defined]
        proj = np.asarray(xi @ self.comps_t, dtype=np.float64)
        kept = (proj * proj).sum(axis=1)
        res = np.where(sq > 0, 1.0 - kept / np.where(sq > 0, sq, 1.0), 1.0)
        return np.clip(res, 0.0, 1.0).astype(np.float32)


def _fit(texts: Sequence[str]) -> _Model:
    x = _features(texts).tocsc()  # type: ignore[attr-defined]
    df = np.diff(x.indptr).astype(np.float64)
    idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
    xr = l2_rows(x.tocsr().multiply(idf))
    k = max(1, min(N_COMPONENTS, min(xr.shape) - 1))
    # power iterations without re-orthonormalising the (features × k) block: its LU/QR would
    # cost more than everything else here
    with single_blas():
        vt = top_right_vectors(xr, k)
    return _Model(idf=idf, comps=vt.astype(np.float32))


def _robust_z(x: F64) -> F64:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    if mad <= 1e-9:
        return np.zeros_like(x)
    return (x - med) / mad


class OutlierCheck(StateCheck["OutlierState"]):
    """Script/charset, content-subspace and length outliers (DAT020–DAT022).

    Plan: the content model (TF-IDF SVD subspace) fitted on the file's first ``warmup`` rows
    (or 20 M characters); every partition scores its rows against it. State: per row its
    residual, length and script counts, plus the odd-shaped rows; merged by concatenation.
    """

    name: ClassVar[str] = "outliers"
    rules: ClassVar[tuple[Rule, ...]] = (DAT020, DAT021, DAT022)
    head_chars = WARMUP_CHARS

    def __init__(self, warmup: int = WARMUP) -> None:
        self.head_rows = warmup

    def prepare(self, head: Sequence[Record]) -> _Model | None:
        """Fit the content model on the head (fewer than ``MIN_ROWS`` rows: no model)."""
        k = head_prefix(head, self.head_rows, WARMUP_CHARS, lambda t: len(t[:MAX_CHARS]))
        texts = [normalise(r.text[:MAX_CHARS]) for r in head[:k]]
        if len(texts) < 2 or (len(texts) < MIN_ROWS and k == len(head)):
            return None
        return _fit(texts)

    def init(self, plan: object) -> OutlierState:
        """An empty state scoring against the plan's model."""
        return OutlierState(plan if isinstance(plan, _Model) else None)


class OutlierState:
    """Per-row scores and shapes of the rows seen (see ``OutlierCheck``)."""

    def __init__(self, model: _Model | None) -> None:
        self._model = model
        self._chars = 0
        self._raw: list[str] = []
        self._buf_rows: list[int] = []
        self._rows: list[npt.NDArray[np.int64]] = []
        self._res: list[npt.NDArray[np.float32]] = []
        self._len: list[npt.NDArray[np.int64]] = []
        self._scripts: list[npt.NDArray[np.uint16]] = []
        self._shape_count = [0] * len(_SHAPE_NAMES)
        self._shapes: list[tuple[int, int, str]] = []
        """(row, shape, detail) of the first SHAPE_KEEP rows of each odd shape."""
        self._n = 0
        """Rows seen, counted as their batch is flushed."""

    def add(self, record: Record) -> None:
        """Buffer the row; batches are shape-tested and scored against the model."""
        text = record.text[:MAX_CHARS]
        self._raw.append(text)
        self._buf_rows.append(record.index)
        self._chars += len(text)
        if self._chars >= _BATCH_CHARS or len(self._raw) >= _BATCH:
            self._flush()

    def merge(self, other: OutlierState) -> None:
        """Concatenate per-row scores; keep each shape's lowest rows."""
        self._flush()
        other._flush()
        self._rows += other._rows
        self._res += other._res
        self._len += other._len
        self._scripts += other._scripts
        self._n += other._n
        shapes = sorted(self._shapes + other._shapes)
        kept = [0] * len(_SHAPE_NAMES)
        self._shapes = []
        for item in shapes:
            kept[item[1]] += 1
            if kept[item[1]] <= SHAPE_KEEP:
                self._shapes.append(item)
        self._shape_count = [
            a + b for a, b in zip(self._shape_count, other._shape_count, strict=True)
        ]

    def _flush(self) -> None:
        """Shapes of the buffered rows, and their scores when there is a content model."""
        if not self._raw:
            return
        self._n += len(self._raw)
        shapes = row_shapes(self._raw)
        for row, (shape, detail) in zip(self._buf_rows, shapes, strict=True):
            if shape:
                self._shape_count[shape] += 1
                if self._shape_count[shape] <= SHAPE_KEEP:
                    self._shapes.append((row, shape, detail))
        if self._model is not None:  # else too few rows for a content profile: shapes only
            self._res.append(self._model.residual([normalise(t) for t in self._raw]))
            self._len.append(np.fromiter(map(len, self._raw), dtype=np.int64))
            counts = script_counts(self._raw)
            self._scripts.append(np.minimum(counts, 65535).astype(np.uint16))
            self._rows.append(np.array(self._buf_rows, dtype=np.int64))
        self._raw, self._buf_rows = [], []
        self._chars = 0

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Script/content/length outliers, plus rare non-prose rows (shapes) not already LOW+."""
        self._flush()
        profile = list(self._profile(info))
        strong = {
            r
            for f in profile
            if f.severity >= Severity.LOW and len(f.location.rows) == 1
            for r in f.location.rows
        }
        if self._n >= MIN_ROWS:
            cap = max(1, int(SHAPE_MAX_SHARE * self._n))
            shown = 0
            for row, shape, detail in sorted(self._shapes):
                if self._shape_count[shape] > cap or row in strong or shown >= MAX_ROW_FINDINGS:
                    continue
                shown += 1
                yield Finding(
                    rule=DAT020.id,
                    severity=Severity.LOW,
                    confidence=Confidence.MEDIUM,
                    message=f"row {row} is a {_SHAPE_NAMES[shape]} in a dataset of prose "
                    f"({detail}; {self._shape_count[shape]} of {self._n} rows look like this)",
                    location=Location(path=info.path, member=info.member, rows=(row,)),
                    evidence=f"{_SHAPE_NAMES[shape]}: {detail}",
                    group="outliers",
                )
        yield from profile

    def _profile(self, info: DatasetInfo) -> Iterator[Finding]:
        """Score what is left, set robust thresholds and report the strongest outliers."""
        if self._model is None:
            return
        self._flush()
        if not self._rows:
            return
        rows = np.concatenate(self._rows)
        res = np.concatenate(self._res).astype(np.float64)
        lengths = np.concatenate(self._len)
        scripts = np.concatenate(self._scripts).astype(np.float64)
        if len(rows) < MIN_ROWS:
            return
        letters_all = scripts[:, list(LETTER_BUCKETS)]
        totals = letters_all.sum(axis=0)
        dominant = totals >= 0.05 * max(1.0, totals.sum())
        letters = letters_all.sum(axis=1)
        foreign = np.where(
            letters > 0, letters_all[:, ~dominant].sum(axis=1) / np.maximum(letters, 1), 0.0
        )
        chars = scripts.sum(axis=1)
        other_share = scripts[:, OTHER] / np.maximum(chars, 1)
        letter_share = letters / np.maximum(chars, 1)
        med_letter = float(np.median(letter_share))
        script_bad = ((letters >= 8) & (foreign >= 0.5)) | ((chars >= 8) & (other_share >= 0.3))
        junk = (chars >= 16) & (letter_share < 0.3) & (med_letter >= 0.6)
        z_len = _robust_z(np.log1p(lengths.astype(np.float64)))
        z_res = _robust_z(res)
        len_bad = np.abs(z_len) >= Z_LENGTH
        res_bad = z_res >= Z_CONTENT
        any_bad = script_bad | junk | len_bad | res_bad
        idx = np.flatnonzero(any_bad)
        if len(idx) == 0:
            return
        score = (
            4.0 * (script_bad[idx] | junk[idx])
            + 2.0 * foreign[idx]
            + np.minimum(np.abs(z_len[idx]), 20) / 10
            + np.minimum(np.maximum(z_res[idx], 0), 20) / 10
            + 1.0 * res_bad[idx]
            + 1.0 * len_bad[idx]
        )
        order = idx[np.lexsort((rows[idx], -score))]
        dom_names = ", ".join(
            BUCKET_NAMES[b] for b, d in zip(LETTER_BUCKETS, dominant, strict=True) if d
        )
        reported = 0
        rest: list[int] = []
        for i in order:
            if reported >= MAX_ROW_FINDINGS:
                rest.append(int(rows[i]))
                continue
            reported += 1
            why = ""
            if script_bad[i]:
                top = BUCKET_NAMES[int(np.argmax(scripts[i]))]
                why = (
                    f"{foreign[i]:.0%} of letters outside the dataset's scripts "
                    f"({dom_names or 'none'}); mostly {top}"
                )
            elif junk[i]:
                why = f"only {letter_share[i]:.0%} letters (dataset median {med_letter:.0%})"
            strong = bool(foreign[i] >= 0.8 or other_share[i] >= 0.3 or junk[i])
            yield _row_finding(
                info,
                int(rows[i]),
                why,
                strong,
                bool(len_bad[i]),
                float(z_len[i]),
                bool(res_bad[i]),
                float(z_res[i]),
                int(lengths[i]),
            )
        if rest:
            yield Finding(
                rule=DAT021.id,
                severity=Severity.INFO,
                confidence=Confidence.LOW,
                message=f"{len(rest)} more outlier rows (of {len(rows)}) not listed one by one",
                location=Location(
                    path=info.path, member=info.member, rows=tuple(rest[:MAX_SUMMARY_ROWS])
                ),
                evidence="rows " + ", ".join(str(r) for r in rest[:20]),
                group="outliers",
            )


def _row_finding(
    info: DatasetInfo,
    row: int,
    script_reason: str,
    strong_script: bool,
    long_short: bool,
    z_len: float,
    content: bool,
    z_res: float,
    length: int,
) -> Finding:
    """One outlier row; MEDIUM only when a strong charset anomaly meets a length anomaly."""
    reasons: list[str] = []
    if script_reason:
        reasons.append(script_reason)
    if long_short:
        reasons.append(f"length {length} (robust z {z_len:+.1f})")
    if content:
        reasons.append(f"character profile off the data's subspace (robust z {z_res:+.1f})")
    if script_reason:
        rule = DAT020
        sev = Severity.MEDIUM if strong_script and long_short else Severity.LOW
    elif content:
        rule = DAT021
        sev = Severity.LOW if long_short else Severity.INFO
    else:
        rule = DAT022
        sev = Severity.INFO
    return Finding(
        rule=rule.id,
        severity=sev,
        confidence=Confidence.MEDIUM if len(reasons) >= 2 else Confidence.LOW,
        message=f"row {row} is an outlier: " + "; ".join(reasons),
        location=Location(path=info.path, member=info.member, rows=(row,)),
        evidence="; ".join(reasons),
        group="outliers",
    )
