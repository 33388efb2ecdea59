"""Exact and near-duplicate rows: normalised 64-bit hashes plus MinHash/LSH over char 5-grams.

Poisoning often works by repetition: the same (or a lightly edited) poisoned row copied many times
so it dominates training, or a copy of a benign row carrying a different label. Word n-grams miss
one-word edits in short texts, so shingles are character 5-grams of the normalised text (NFKC,
casefold, whitespace collapsed).

Memory: per row a 192-slot b-bit (16-bit) MinHash signature, a 64-bit exact hash, a label id and a
length: ~420 bytes/row (≈ 420 MB at 1M rows), kept in NumPy chunks, never Python objects per row.
Speed: shingle hashes and signatures are computed for batches of 4096 rows with vectorised NumPy,
on worker threads while the caller parses the next rows (see bench/README.md for figures).
Determinism: fixed hash constants and seeds; no use of Python's salted ``hash()``.

Templates: rows that share a long prefix or suffix (a system prompt, a fixed instruction, a
canned DPO answer) are similar through that text alone. Shared prefixes/suffixes are learnt from
the first batch (at least 20 rows and 1 % of it), reported once (DAT014, INFO), and near-duplicates
are judged on the text around them; a row whose remainder is too short to compare keeps its whole
text, so light edits of one text are still near-duplicates. Groups never chain: LSH components are
split so that every member is at or above the threshold to its group's representative.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from scanners._lazy import lazy_module
from scanners.dataset.common import (
    DatasetInfo,
    Record,
    StateCheck,
    exact_hash,
    head_prefix,
    mix64,
    normalise,
    runs,
    shingle_hashes,
)
from supplychain.core.model import Confidence, Finding, Location, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    U64 = npt.NDArray[np.uint64]
    I64 = npt.NDArray[np.int64]
else:
    np = lazy_module("numpy")


_REFS = ("https://arxiv.org/abs/2107.06499",)  # Lee et al. 2021, deduplicating training data

DAT010 = make_rule(
    "DAT010",
    "Exact duplicate rows",
    Severity.LOW,
    "Several rows hold the same text after Unicode/case/whitespace normalisation. Repetition "
    "amplifies whatever those rows teach (including poison) and leaks between train/test splits.",
    "Deduplicate the dataset; check where the repeated rows came from.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=_REFS,
)
DAT011 = make_rule(
    "DAT011",
    "Near-duplicate rows",
    Severity.LOW,
    "Rows whose character 5-gram sets overlap strongly (MinHash-estimated Jaccard); every member "
    "is verified against the group's first row at the threshold, and shared templates (DAT014) "
    "are left out of the comparison. Lightly edited copies are a cheap way to repeat a poisoned "
    "example while evading exact deduplication.",
    "Review the group; keep one representative unless the variants are intended.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=_REFS,
)
DAT012 = make_rule(
    "DAT012",
    "Duplicated text with conflicting labels",
    Severity.MEDIUM,
    "The same (or nearly the same) text appears with different labels. This is either annotation "
    "noise or a label-flipping attack that copies real rows and attaches the attacker's label.",
    "Inspect the group; keep the correct label and trace the source of the other copies.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
DAT013 = make_rule(
    "DAT013",
    "Mass duplication of one text",
    Severity.MEDIUM,
    "One text is repeated more than 50 times. Few-shot backdoors need only a few hundred "
    "documents (Souly et al. 2025), so mass repetition of one row deserves review.",
    "Find out why the text repeats; deduplicate before training.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)

DAT014 = make_rule(
    "DAT014",
    "Templated text shared by many rows",
    Severity.INFO,
    "Many rows start (or end) with the same long text: a system prompt, a fixed instruction or a "
    "canned answer. It is reported once here, and near-duplicate checks compare what follows it, "
    "so a shared template does not make every row look like a copy of every other row.",
    "Check that the shared text is the intended template; it is trained on once per row.",
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)

_S32 = 32
NUM_PERM = 192
"""Signature slots. 48 LSH bands of 4 slots catch J≥0.5 pairs with p≈0.955, J≥0.55 with p≈0.99 and
J≥0.6 with p≈0.998, while random pairs of real text (J≈0.01–0.07) almost never share a band."""
BANDS = 48
BAND_ROWS = NUM_PERM // BANDS
MIN_NEAR_CHARS = 20
"""Texts shorter than this (normalised) are only checked for exact duplicates."""
NEAR_THRESHOLD = 0.45
"""Estimated Jaccard at or above which a candidate pair is reported (σ≈0.036 at 192 slots)."""
MASS_COPIES = 50
MAX_GROUP_FINDINGS = 100
"""Groups reported one by one; the rest are summarised per rule."""
MAX_SUMMARY_ROWS = 10_000
_BATCH = 4096
_BATCH_CHARS = 4_000_000
"""A batch is also hashed once it holds this many characters (bounds the NumPy temporaries)."""
MAX_SHINGLE_CHARS = 100_000
"""Near-duplicate signatures cover a row's first 100k characters; exact hashes cover all of it."""
TEMPLATE_KEY_CHARS = 48
"""Rows are grouped for template detection by their first (last) 48 normalised characters."""
MIN_TEMPLATE_ROWS = 20
"""A prefix/suffix is a template when at least this many rows (and 1% of the sample) share it."""
MIN_TEMPLATE_SHARE = 0.01
MAX_TEMPLATES = 16
MAX_SPLIT_WORK = 2_000_000
"""Signature comparisons spent per connected component when splitting it into verified groups
(a component of 1,000 rows can be split into up to 1,000 groups; a huge one into fewer)."""
_CHUNK = 1 << 16
_BLOCK_BANDS = 8
"""Bands whose keys are read together (8 × 8 bytes: one cache line per signature)."""
_MAX_LABELS = 4096


@functools.cache
def _perm_params(num_perm: int, seed: int = 0x5C0FFEE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def minhash(
    hashes: npt.NDArray[np.uint32], first: I64, lens: I64, num_perm: int = NUM_PERM
) -> npt.NDArray[np.uint16]:
    """b-bit (16-bit) MinHash signatures, one row per text with ``lens > 0``; others stay 0.

    Permutations are ``a*h mod 2**32`` (odd ``a``: a bijection) applied to well-mixed shingle
    hashes (an added ``+ b`` costs a third more time and measurably nothing in accuracy); the
    low 16 bits of each minimum are kept (b-bit MinHash, Li & König 2010: unequal minima agree
    with probability 2**-16, negligible next to the Jaccard estimate's own noise).
    """
    return minhash_async(hashes, first, lens, num_perm)()


def minhash_async(
    hashes: npt.NDArray[np.uint32], first: I64, lens: I64, num_perm: int = NUM_PERM
) -> Callable[[], npt.NDArray[np.uint16]]:
    """Start ``minhash`` on worker threads; the returned function waits and gives the result.

    NumPy ufuncs release the GIL, so the caller keeps parsing the next rows meanwhile: on two
    cores the Python work per row and the vectorised hashing overlap.
    """
    nz = np.flatnonzero(lens > 0)
    starts = first[nz]
    ends = starts + lens[nz]
    a, _b = _perm_params(num_perm)
    cols = np.empty((num_perm, len(nz)), dtype=np.uint16)  # one contiguous row per permutation
    # Rows in pieces of ~_PIECE shingles, each run through every permutation before the next:
    # a piece and its products stay in a core's L2 cache (a whole batch, ~3 MB, streamed once
    # per permutation does not; ~20% more CPU). Same minima, any piece size.
    pieces: list[tuple[int, int]] = []
    i0 = 0
    while i0 < len(nz):
        i1 = max(i0 + 1, int(np.searchsorted(starts, starts[i0] + _PIECE, side="right")))
        pieces.append((i0, i1))
        i0 = i1

    def work(part: list[tuple[int, int]]) -> None:
        size = max(int(ends[j1 - 1] - starts[j0]) for j0, j1 in part)
        tmp = np.empty(size, dtype=np.uint32)
        for j0, j1 in part:
            s0, s1 = int(starts[j0]), int(ends[j1 - 1])
            h, t, local = hashes[s0:s1], tmp[: s1 - s0], starts[j0:j1] - s0
            low = np.empty(j1 - j0, dtype=np.uint32)
            for k in range(num_perm):
                np.multiply(h, a[k], out=t)
                np.minimum.reduceat(t, local, out=low)
                cols[k, j0:j1] = low  # keeps the low 16 bits

    jobs = _WORKERS if len(hashes) >= _PARALLEL_MIN else 1
    pool = _pool()
    futures = [pool.submit(work, pieces[j::jobs]) for j in range(jobs) if pieces[j::jobs]]

    def wait() -> npt.NDArray[np.uint16]:
        for f in futures:
            f.result()
        sig = np.zeros((len(lens), num_perm), dtype=np.uint16)
        if len(nz) == len(lens):
            sig[:] = cols.T
        elif len(nz):
            sig[nz] = cols.T
        return sig

    return wait


_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
"""Hashing threads: one core is left to the caller's thread, which parses the next rows
meanwhile (on 2 cores a second hashing thread only added CPU time: contention, sys time)."""
_PARALLEL_MIN = 50_000
_PIECE = 65_536
"""Shingles per piece of a batch (256 KB of hashes plus 256 KB of products: in L2)."""
"""Shingles in a batch above which the permutations are split over threads."""
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="minhash"))
    return _POOL[0]


def find_templates(texts: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Long prefixes and suffixes many rows share (system prompts, fixed instructions, canned
    answers), longest first.

    A candidate is the common prefix of the rows that agree on their first
    ``TEMPLATE_KEY_CHARS`` characters; it counts only when enough rows share it and most of them
    have real text after it (rows that are entirely the same text are exact duplicates, not a
    template).
    """
    need = max(MIN_TEMPLATE_ROWS, int(MIN_TEMPLATE_SHARE * len(texts)))
    if len(texts) < need:
        return (), ()
    prefixes = _shared_ends(texts, need)
    suffixes = tuple(x[::-1] for x in _shared_ends([t[::-1] for t in texts], need))
    return prefixes, suffixes


def _shared_ends(texts: Sequence[str], need: int) -> tuple[str, ...]:
    """Shared prefixes of ``texts`` (see ``find_templates``)."""
    by_key: dict[str, list[str]] = {}
    for text in texts:
        if len(text) >= TEMPLATE_KEY_CHARS + MIN_NEAR_CHARS:
            by_key.setdefault(text[:TEMPLATE_KEY_CHARS], []).append(text)
    found: list[str] = []
    for members in by_key.values():
        if len(members) < need:
            continue
        shared = os.path.commonprefix(members)  # noqa: RUF071 - a text prefix, not a path
        with_rest = sum(1 for m in members if len(m) - len(shared) >= MIN_NEAR_CHARS)
        if len(shared) >= TEMPLATE_KEY_CHARS and 2 * with_rest >= len(members):
            found.append(shared)
    found.sort(key=len, reverse=True)
    return tuple(found[:MAX_TEMPLATES])


@dataclass(frozen=True, slots=True)
class _Group:
    rows: tuple[int, ...]
    sims: tuple[float, ...]
    """Similarity of each copy (rows[1:]) to the representative rows[0]; every one is at or
    above the threshold (members are verified against it, never only chained through others)."""
    exact: bool
    labels: tuple[str, ...]
    chars: int
    """Normalised length of the original row's text."""


Templates = tuple[tuple[str, ...], tuple[str, ...]]


def _shingle_text(text: str) -> str:
    return normalise(text)[:MAX_SHINGLE_CHARS]


class NearDuplicateCheck(StateCheck["NearDuplicateState"]):
    """Exact and near-duplicate groups (DAT010–DAT013), in bounded NumPy memory.

    Plan: the shared templates of the file's first batch (4096 rows), so every partition strips
    the same prefixes. State: per row a signature and (row, exact hash, label, length); merged
    by concatenation (labels renamed), grouped in ``finish``.
    """

    name: ClassVar[str] = "duplicates"
    rules: ClassVar[tuple[Rule, ...]] = (DAT010, DAT011, DAT012, DAT013, DAT014)
    head_rows = _BATCH
    head_chars = _BATCH_CHARS

    def __init__(self, threshold: float = NEAR_THRESHOLD) -> None:
        self.threshold = threshold

    def prepare(self, head: Sequence[Record]) -> Templates:
        """Templates of the first batch (what one pass learns before its first flush)."""
        k = head_prefix(head, _BATCH, _BATCH_CHARS, lambda t: len(_shingle_text(t)))
        return find_templates([_shingle_text(r.text) for r in head[:k]])

    def init(self, plan: object) -> NearDuplicateState:
        """An empty state with the plan's templates."""
        templates: Templates = plan if isinstance(plan, tuple) else ((), ())
        return NearDuplicateState(self.threshold, templates)


class NearDuplicateState:
    """Signatures and row metadata of the rows seen (see ``NearDuplicateCheck``)."""

    rules = NearDuplicateCheck.rules

    def __init__(self, threshold: float, templates: Templates) -> None:
        self.threshold = threshold
        self._texts: list[str] = []
        self._exact: list[int] = []
        self._lens: list[int] = []
        self._chars = 0
        self._rows: list[int] = []
        self._labels_batch: list[str | None] = []
        self._sig_chunks: list[npt.NDArray[np.uint16]] = []
        self._meta_chunks: list[npt.NDArray[np.int64]] = []
        """Per chunk, columns: row index, exact hash (as int64 bits), label id, length."""
        self._fill = 0
        self._inflight: list[
            tuple[Callable[[], npt.NDArray[np.uint16]], npt.NDArray[np.int64]]
        ] = []
        self._label_ids: dict[str, int] = {}
        self._label_names: list[str] = []
        self._templates = templates
        """Shared prefixes and suffixes of the file's first batch (longest first)."""
        self._template_rows: dict[tuple[str, str], list[int]] = {}
        """Per (``prefix``/``suffix``, text): rows count and the first rows that carry it."""

    # -- streaming ---------------------------------------------------------------------------

    def add(self, record: Record) -> None:
        """Buffer the row; every 4096 rows the batch is hashed and signed in NumPy."""
        norm = normalise(record.text)
        self._exact.append(exact_hash(norm))
        self._lens.append(len(norm))
        text = norm[:MAX_SHINGLE_CHARS]
        self._texts.append(text)
        self._chars += len(text)
        self._rows.append(record.index)
        self._labels_batch.append(record.label)
        if len(self._texts) >= _BATCH or self._chars >= _BATCH_CHARS:
            self._flush()

    def _label_id(self, label: str | None) -> int:
        if label is None:
            return -1
        got = self._label_ids.get(label)
        if got is None:
            if len(self._label_names) >= _MAX_LABELS:
                return -2  # too many distinct labels to track; treated as "unknown"
            got = len(self._label_names)
            self._label_ids[label] = got
            self._label_names.append(label)
        return got

    def _flush(self) -> None:
        texts = self._texts
        if not texts:
            return
        n = len(texts)
        if self._templates != ((), ()):
            texts = [self._strip_template(t, row) for t, row in zip(texts, self._rows, strict=True)]
        # short rows get a signature too (cheaper than splitting the batch); LSH skips them
        hashes, first, lens = shingle_hashes(texts)
        wait = minhash_async(hashes, first, lens)
        meta = np.empty((n, 4), dtype=np.int64)
        meta[:, 0] = self._rows
        meta[:, 1] = np.array(self._exact, dtype=np.uint64).view(np.int64)
        meta[:, 2] = [self._label_id(lb) for lb in self._labels_batch]
        meta[:, 3] = self._lens
        self._inflight.append((wait, meta))
        while len(self._inflight) > 1:  # at most one batch hashing behind the reader
            self._store(*self._inflight.pop(0))
        self._texts, self._rows, self._labels_batch = [], [], []
        self._exact, self._lens, self._chars = [], [], 0

    def _strip_template(self, text: str, row: int) -> str:
        """The part of ``text`` near-duplicates are judged on: without a shared prefix/suffix,
        unless what is left is too short to compare (then the whole text, so rows that differ
        only by a short edit are still near-duplicates)."""
        prefixes, suffixes = self._templates
        pre = next((p for p in prefixes if text.startswith(p)), "")
        rest = text[len(pre) :]
        suf = next((x for x in suffixes if rest.endswith(x) and len(x) < len(rest)), "")
        core = rest[: len(rest) - len(suf)]
        if len(core.strip()) < MIN_NEAR_CHARS:
            return text
        for kind, shared in (("prefix", pre), ("suffix", suf)):
            if shared:
                seen = self._template_rows.setdefault((kind, shared), [0])
                seen[0] += 1
                if len(seen) <= 10:
                    seen.append(row)
        return core

    def _store(
        self, wait: Callable[[], npt.NDArray[np.uint16]], meta: npt.NDArray[np.int64]
    ) -> None:
        """Copy one finished batch into the preallocated chunks."""
        sig = wait()
        n = len(meta)
        pos = 0
        while pos < n:
            if not self._sig_chunks or self._fill == _CHUNK:
                self._sig_chunks.append(np.zeros((_CHUNK, NUM_PERM), dtype=np.uint16))
                self._meta_chunks.append(np.zeros((_CHUNK, 4), dtype=np.int64))
                self._fill = 0
            take = min(n - pos, _CHUNK - self._fill)
            self._sig_chunks[-1][self._fill : self._fill + take] = sig[pos : pos + take]
            self._meta_chunks[-1][self._fill : self._fill + take] = meta[pos : pos + take]
            self._fill += take
            pos += take

    def _drain(self) -> None:
        self._flush()
        while self._inflight:
            self._store(*self._inflight.pop(0))

    def __getstate__(self) -> dict[str, object]:
        """Picklable: batches still hashing on worker threads are finished first."""
        self._drain()
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)

    def merge(self, other: NearDuplicateState) -> None:
        """Append ``other``'s rows (its label ids renamed to ours) and template counts."""
        self._drain()
        other._drain()
        n = other._count()
        if n:
            remap = np.array(
                [self._label_id(name) for name in other._label_names] or [0], dtype=np.int64
            )
            meta = other._meta().copy()
            labs = meta[:, 2]
            known = labs >= 0
            labs[known] = remap[labs[known]]
            sig = np.concatenate(other._sig_chunks)[:n]
            self._store(lambda: sig, meta)
        for key, seen in other._template_rows.items():
            mine = self._template_rows.setdefault(key, [0])
            mine[0] += seen[0]
            mine[1:] = sorted(mine[1:] + seen[1:])[:10]

    # -- analysis ----------------------------------------------------------------------------

    def _count(self) -> int:
        if not self._sig_chunks:
            return 0
        return (len(self._sig_chunks) - 1) * _CHUNK + self._fill

    def _meta(self) -> npt.NDArray[np.int64]:
        n = self._count()
        if n == 0:
            return np.zeros((0, 4), dtype=np.int64)
        return np.concatenate(self._meta_chunks)[:n]

    def _sig_rows(self, idx: I64) -> npt.NDArray[np.uint16]:
        """Signatures of stored positions ``idx`` (gathered across chunks)."""
        out = np.empty((len(idx), NUM_PERM), dtype=np.uint16)
        chunk = idx >> 16
        for c in np.unique(chunk):
            m = chunk == c
            out[m] = self._sig_chunks[int(c)][idx[m] & (_CHUNK - 1)]
        return out

    def _band_block(self, b0: int, b1: int, pos: I64) -> U64:
        """Band keys of bands ``b0..b1`` for stored positions ``pos``, one column per band.
        A band's 4 uint16 slots are 8 contiguous bytes of a signature row, so its key is that
        row read as uint64 (slot ``j`` in bits ``16j`` on little-endian machines; on others a
        different but equally equality-preserving key); reading 8 bands at once touches each
        signature's cache line once per block, not once per band."""
        out = np.empty((len(pos), b1 - b0), dtype=np.uint64)
        chunk = pos >> 16
        for c in np.unique(chunk):
            m = chunk == c
            words = self._sig_chunks[int(c)].view(np.uint64)  # (_CHUNK, BANDS): a uint64 a band
            out[m] = words[pos[m] & (_CHUNK - 1), b0:b1]
        return out

    def _band_keys(self, band: int, pos: I64) -> U64:
        """One band's keys (unmixed) for stored positions ``pos`` (the distributed shuffle)."""
        return self._band_block(band, band + 1, pos)[:, 0].copy()

    def similarity(self, a: I64, b: I64) -> npt.NDArray[np.float64]:
        """Estimated Jaccard (signature agreement) of stored positions a[i] and b[i]."""
        out = np.empty(len(a), dtype=np.float64)
        step = 65_536
        for s in range(0, len(a), step):
            sa = self._sig_rows(a[s : s + step])
            sb = self._sig_rows(b[s : s + step])
            out[s : s + step] = (sa == sb).mean(axis=1)
        return out

    def near_pairs(self, pos: I64) -> tuple[I64, I64, npt.NDArray[np.float64]]:
        """Verified near-duplicate edges among stored positions ``pos`` (LSH, then agreement)."""
        cand: list[U64] = []
        idx_mask = np.uint64((1 << max(1, len(pos).bit_length())) - 1)
        block = np.zeros((0, 0), dtype=np.uint64)
        for band in range(BANDS):
            if band % _BLOCK_BANDS == 0:
                block = self._band_block(band, min(BANDS, band + _BLOCK_BANDS), pos)
            # sort (band key hash | position index) packed in one uint64: a plain sort of
            # integers is several times faster than an argsort; 64 - idx_bits bits of band hash
            # leave random bucket collisions rare (and every candidate is verified anyway)
            keys = mix64(block[:, band % _BLOCK_BANDS].copy())
            packed = np.sort((keys & ~idx_mask) | np.arange(len(pos), dtype=np.uint64))
            order = (packed & idx_mask).astype(np.int64)
            sk = packed & ~idx_mask
            same = np.flatnonzero(sk[1:] == sk[:-1])
            if len(same) == 0:
                continue
            # consecutive members of a bucket, plus each member with the bucket's first row
            starts, ends = runs(sk)
            run = np.repeat(np.arange(len(starts)), ends - starts)
            members = np.flatnonzero((ends - starts)[run] > 1)
            first_of = starts[run[members]]
            lo = np.concatenate((pos[order[same]], pos[order[first_of]]))
            hi = np.concatenate((pos[order[same + 1]], pos[order[members]]))
            keep = lo != hi
            lo, hi = np.minimum(lo[keep], hi[keep]), np.maximum(lo[keep], hi[keep])
            cand.append(np.unique((lo.astype(np.uint64) << _S32) | hi.astype(np.uint64)))
        if not cand:
            e = np.zeros(0, np.int64)
            return e, e, np.zeros(0)
        pairs = np.unique(np.concatenate(cand))
        a = (pairs >> _S32).astype(np.int64)
        b = (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)
        sim = self.similarity(a, b)
        ok = sim >= self.threshold
        return a[ok], b[ok], sim[ok]

    def _groups(self) -> tuple[list[_Group], int]:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self._drain()
        self._sort_rows()
        meta = self._meta()
        n = len(meta)
        groups: list[_Group] = []
        if n < 2:
            return groups, n
        rows, hashes, labs, lens = meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3]

        def label_names(p: I64) -> tuple[str, ...]:
            return tuple(self._label_names[int(x)] if x >= 0 else "" for x in labs[p])

        order = np.argsort(hashes, kind="stable")
        starts, ends = runs(hashes[order])
        rep = np.zeros(n, dtype=bool)
        rep[order[starts]] = True
        multi = ends - starts > 1
        for s, e in zip(starts[multi], ends[multi], strict=True):
            p = np.sort(order[s:e])
            groups.append(
                _Group(
                    tuple(int(r) for r in rows[p]),
                    (1.0,) * (len(p) - 1),
                    True,
                    label_names(p),
                    int(lens[p[0]]),
                )
            )
        pos = np.flatnonzero(rep & (lens >= MIN_NEAR_CHARS))
        a, b, _sim = self.near_pairs(pos)
        if len(a):
            nodes, inv = np.unique(np.concatenate((a, b)), return_inverse=True)
            m = len(nodes)
            graph = coo_matrix(
                (np.ones(len(a), dtype=np.int8), (inv[: len(a)], inv[len(a) :])), shape=(m, m)
            )
            _ncomp, comp = connected_components(graph, directed=False)
            # nodes are sorted, so a stable sort by component keeps each component's rows in order
            corder = np.argsort(comp, kind="stable")
            members = nodes[corder]
            cs, ce = runs(comp[corder])
            for s, e in zip(cs, ce, strict=True):
                for p, sims in self._split(members[s:e]):
                    groups.append(
                        _Group(
                            tuple(int(r) for r in rows[p]),
                            tuple(float(x) for x in sims),
                            False,
                            label_names(p),
                            int(lens[p[0]]),
                        )
                    )
        return groups, n

    def _sort_rows(self) -> None:
        """Store rows in row order (merged partitions may arrive in any order)."""
        meta = self._meta()
        if len(meta) < 2 or bool((np.diff(meta[:, 0]) > 0).all()):
            return
        order = np.argsort(meta[:, 0], kind="stable")
        sig = np.concatenate(self._sig_chunks)[: len(meta)][order]
        meta = meta[order]
        self._sig_chunks, self._meta_chunks, self._fill = [], [], 0
        self._store(lambda: sig, meta)

    def _split(self, component: I64) -> Iterator[tuple[I64, npt.NDArray[np.float64]]]:
        """Groups of one connected component whose members are each at or above the threshold
        to the group's representative (its first row).

        Components chain: A~B and B~C put A and C together even when A and C share little (rows
        that only share a template). Each round takes the first unassigned row as representative
        and keeps the members close to it; the rest go to the next round.
        """
        remaining = component
        work = 0
        while len(remaining) >= 2 and work < MAX_SPLIT_WORK:
            rep, rest = remaining[0], remaining[1:]
            work += len(rest)
            sims = self.similarity(np.full(len(rest), rep, dtype=np.int64), rest)
            close = sims >= self.threshold
            if close.any():
                yield np.concatenate(([rep], rest[close])), sims[close]
            remaining = rest[~close]

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Group duplicates and report the worst groups one by one, the rest in summaries."""
        self._flush()
        groups, n = self._groups()
        yield from self._template_findings(info)
        rated = [(self._rate(g), g) for g in groups]
        rated.sort(key=lambda x: (-int(x[0][1]), -len(x[1].rows), x[1].rows[0]))
        overflow: dict[str, list[_Group]] = {}
        for i, ((rule, sev, conf, why), g) in enumerate(rated):
            if i >= MAX_GROUP_FINDINGS and sev < Severity.MEDIUM:
                overflow.setdefault(rule.id, []).append(g)
                continue
            kind = "exact duplicates" if g.exact else "near-duplicates"
            pieces = [f"row {c} (J={s:.2f})" for c, s in zip(g.rows[1:], g.sims, strict=True)]
            evidence = f"row {g.rows[0]} ~ " + ", ".join(pieces)
            yield Finding(
                rule=rule.id,
                severity=sev,
                confidence=conf,
                message=f"{len(g.rows)} rows are {kind} of row {g.rows[0]}{why}",
                location=Location(path=info.path, member=info.member, rows=g.rows),
                evidence=evidence,
                group=f"dup-{'x' if g.exact else 'n'}{g.rows[0]}",
            )
        for rule_id, gs in sorted(overflow.items()):
            rule = next(r for r in self.rules if r.id == rule_id)
            rows = sorted({r for g in gs for r in g.rows})
            yield Finding(
                rule=rule.id,
                severity=Severity.INFO,
                confidence=Confidence.HIGH,
                message=f"{len(gs)} more duplicate groups ({len(rows)} rows of {n}) "
                f"not listed one by one",
                location=Location(
                    path=info.path, member=info.member, rows=tuple(rows[:MAX_SUMMARY_ROWS])
                ),
                evidence=f"{len(gs)} groups, first rows "
                + ", ".join(str(g.rows[0]) for g in gs[:20]),
                group=f"dup-summary-{rule.id}",
            )

    def _template_findings(self, info: DatasetInfo) -> Iterator[Finding]:
        """One INFO finding per shared prefix/suffix, naming it (shortened)."""
        ordered = sorted(self._template_rows.items(), key=lambda x: (-x[1][0], x[1][1:], x[0]))
        for (kind, text), seen in ordered:
            count, first = seen[0], tuple(seen[1:])
            if count < MIN_TEMPLATE_ROWS:
                continue
            shown = text if len(text) <= 80 else f"{text[:60]}…{text[-16:]}"
            yield Finding(
                rule=DAT014.id,
                severity=Severity.INFO,
                confidence=Confidence.HIGH,
                message=f"{count} rows share a templated {kind} of {len(text)} characters "
                f"({shown!r}); near-duplicates were judged on the text around it",
                location=Location(path=info.path, member=info.member, rows=first),
                evidence=shown,
                group=f"template-{kind}-{first[0] if first else 0}",
            )

    def _rate(self, g: _Group) -> tuple[Rule, Severity, Confidence, str]:
        """Rule, severity, confidence and a reason suffix for one group."""
        conf = Confidence.HIGH if g.exact or min(g.sims) >= 0.8 else Confidence.MEDIUM
        labelled = [lb for lb in g.labels if lb]
        distinct = sorted(set(labelled))
        if len(distinct) > 1:
            counts = {lb: labelled.count(lb) for lb in distinct}
            # copies that carry a label other than the original row's: 5+ looks coordinated
            differ = sum(1 for lb in g.labels[1:] if lb and lb != g.labels[0])
            sev = Severity.HIGH if differ >= 5 else Severity.MEDIUM
            shown = ", ".join(f"{lb!r}×{counts[lb]}" for lb in distinct[:6])
            return DAT012, sev, conf, f" with conflicting labels ({shown})"
        if len(g.rows) > MASS_COPIES:
            return DAT013, Severity.MEDIUM, conf, f" (one text repeated {len(g.rows)} times)"
        if g.exact:
            if g.chars < MIN_NEAR_CHARS:
                return DAT010, Severity.INFO, conf, f" (short text, {g.chars} characters)"
            return DAT010, Severity.LOW, conf, ""
        return (
            DAT011,
            Severity.LOW,
            conf,
            f" (each J≥{self.threshold:.2f} to row {g.rows[0]}; lowest {min(g.sims):.2f})",
        )


# ---------------------------------------------------------------------------------------------
# Function-level API for a shuffle-by-band near-duplicate join at scale
# ---------------------------------------------------------------------------------------------
#
# ``NearDuplicateCheck`` merges whole signature tables, which is exact and fine up to tens of
# millions of rows on one node (~420 bytes/row). Past that, a distributed engine can shard the
# candidate search by LSH band instead:
#
#   1. per partition: ``sigs = row_signatures(texts, templates)`` (templates from
#      ``NearDuplicateCheck().prepare(head)``), ``keys = band_keys(sigs)``;
#   2. shuffle ``(band, keys[:, band], row)`` by ``(band, key)``: rows sharing a bucket meet;
#   3. per bucket group: ``bucket_pairs(rows, keys)`` gives candidate (a, b) row pairs;
#   4. join the pairs with both rows' signatures and keep ``signature_similarity >= threshold``;
#   5. connected components over the verified pairs (then split them against a representative,
#      as ``NearDuplicateState._split`` does) give the groups.
#
# Every step uses the same hash constants as the check, so its candidates are the same.


def row_signatures(texts: Sequence[str], templates: Templates = ((), ())) -> npt.NDArray[np.uint16]:
    """b-bit MinHash signatures (rows x ``NUM_PERM``) of raw row texts, normalised and with the
    plan's shared prefixes/suffixes left out exactly as the check does."""
    state = NearDuplicateState(NEAR_THRESHOLD, templates)
    norm = [_shingle_text(t) for t in texts]
    if templates != ((), ()):
        norm = [state._strip_template(t, i) for i, t in enumerate(norm)]
    hashes, first, lens = shingle_hashes(norm)
    return minhash(hashes, first, lens)


def band_keys(sigs: npt.NDArray[np.uint16]) -> U64:
    """One mixed 64-bit key per (row, band): rows x ``BANDS``; equal keys are LSH candidates."""
    out = np.zeros((len(sigs), BANDS), dtype=np.uint64)
    for band in range(BANDS):
        block = sigs[:, band * BAND_ROWS : (band + 1) * BAND_ROWS].astype(np.uint64)
        key = np.zeros(len(sigs), dtype=np.uint64)
        for j in range(BAND_ROWS):
            key |= block[:, j] << np.uint64(16 * j)
        out[:, band] = mix64(key)
    return out


def bucket_pairs(rows: I64, keys: U64) -> tuple[I64, I64]:
    """Candidate pairs (lower row, higher row) among rows with equal ``keys`` (one band): each
    member with the next and with its bucket's first row, as the check enumerates them."""
    order = np.lexsort((rows, keys))
    sk, sr = keys[order], rows[order]
    starts, ends = runs(sk)
    run = np.repeat(np.arange(len(starts)), ends - starts)
    members = np.flatnonzero((ends - starts)[run] > 1)
    same = np.flatnonzero(sk[1:] == sk[:-1])
    lo = np.concatenate((sr[same], sr[starts[run[members]]]))
    hi = np.concatenate((sr[same + 1], sr[members]))
    keep = lo != hi
    a, b = np.minimum(lo[keep], hi[keep]), np.maximum(lo[keep], hi[keep])
    pairs = np.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))
    low = pairs & np.uint64(0xFFFFFFFF)
    return (pairs >> np.uint64(32)).astype(np.int64), low.astype(np.int64)


def signature_similarity(
    a: npt.NDArray[np.uint16], b: npt.NDArray[np.uint16]
) -> npt.NDArray[np.float64]:
    """Estimated Jaccard of signature rows ``a[i]`` and ``b[i]`` (slot agreement)."""
    return np.asarray((a == b).mean(axis=1), dtype=np.float64)
