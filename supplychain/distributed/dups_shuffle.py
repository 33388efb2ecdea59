"""Near-duplicates at scale: MinHash per partition, a shuffle by band key, then one small state.

The duplicates check's mergeable state holds a signature per row (~420 bytes), so merging every
partition's state would put the whole corpus's signatures on one worker and on the driver. At
scale the engine does this instead:

1. each partition's ``observe`` builds the check's own state over its rows (signatures with the
   dataset's templates stripped, exact hashes) and keeps it in the object store, where it stays;
2. it emits ``(key, row)`` pairs, split into ``R`` parts by key hash: one key per row for the
   exact hash and one per LSH band of rows long enough to compare (``band_keys``);
3. ``R`` reducers (one per ``ROWS_PER_REDUCER`` rows) each sort their part and return the rows
   whose key is shared (``shared_rows``): the candidate rows, a number bounded by the duplicated
   rows, not by the corpus;
4. each partition's state is cut down to its candidate rows (``reduce_state``), and those small
   states are merged in the tree and finished on the driver.

Why the result equals one pass: the check's ``finish`` groups exact hashes, then pairs rows that
share an LSH bucket and verifies each pair on the signatures. Every row of an exact group and
every row in a band bucket of two or more rows is a candidate, so each bucket keeps all of its
members and every pair the single pass would verify is verified on the same signatures; rows in
no shared bucket can join no group. The reduced state keeps the full row count and the template
counts (DAT014) of all rows. One caveat: the single pass buckets by a band hash truncated to
``64 - log2(rows)`` bits; a chance collision there (about one per million rows per band set)
adds a candidate pair that verification rejects and, in a bucket of four or more, can drop a
consecutive pair; the shuffle uses the full key. Both are verified on the same threshold.

This module reads the duplicates state's arrays (``_meta``, ``_sig_rows``, ``_band_keys``,
``_store``): it is the one place outside ``scanners.dataset.dups`` that knows them, and the
ray test stage compares its findings with a single pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from scanners.dataset.dups import NearDuplicateState

    I64 = npt.NDArray[np.int64]
    U64 = npt.NDArray[np.uint64]

CHECK = "duplicates"
"""The check handled here (``NearDuplicateCheck.name``)."""
ROWS_PER_REDUCER = 100_000
"""Rows whose keys one reducer sorts: 49 keys of 16 bytes a row, ~80 MB of keys at this count
(~0.3 GB with the sort's temporaries), whatever the corpus size (more rows, more reducers)."""
_EXACT_TAG = 0x9E3779B97F4A7C15
_BAND_TAG = 0xD6E8FEB86659FD93


_NEEDS = ("_drain", "_meta", "_band_keys", "_sig_rows", "_store", "_count", "_groups")


def available(plan: object) -> bool:
    """Whether the duplicates state still has the arrays this module reads; if a refactor of
    ``scanners.dataset.dups`` renamed them, the engine merges whole states instead (the same
    findings, without the memory bound) rather than failing."""
    from scanners.dataset.dups import NearDuplicateCheck

    state = NearDuplicateCheck().init(plan)
    return all(callable(getattr(state, name, None)) for name in _NEEDS)


def reducers_for(rows: int) -> int:
    """How many reducers keep each one's share of keys under ``ROWS_PER_REDUCER`` rows."""
    return max(1, -(-rows // ROWS_PER_REDUCER))


def _mix(x: U64) -> U64:
    from scanners.dataset.common import mix64

    return mix64(x)


def band_keys(state: NearDuplicateState | None, parts: int) -> list[tuple[I64, I64]]:
    """``parts`` lists of (key, row) pairs: every row's exact-hash key, and a key per LSH band
    for rows long enough to compare (``MIN_NEAR_CHARS``), split by key."""
    import numpy as np

    from scanners.dataset.dups import BANDS, MIN_NEAR_CHARS

    keys: list[U64] = []
    rows: list[I64] = []
    if state is not None:
        state._drain()
    meta = state._meta() if state is not None else np.zeros((0, 4), dtype=np.int64)
    if state is not None and len(meta):
        row = meta[:, 0].astype(np.int64)
        exact = meta[:, 1].view(np.uint64)
        keys.append(_mix(exact ^ np.uint64(_EXACT_TAG)))
        rows.append(row)
        pos = np.flatnonzero(meta[:, 3] >= MIN_NEAR_CHARS).astype(np.int64)
        for band in range(BANDS):
            k = state._band_keys(band, pos)
            tag = np.uint64((_BAND_TAG * (band + 1)) & 0xFFFFFFFFFFFFFFFF)
            keys.append(_mix(_mix(k) ^ tag))
            rows.append(row[pos])
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return [(empty, empty) for _ in range(parts)]
    allk = np.concatenate(keys)
    allr = np.concatenate(rows)
    dest = (allk % np.uint64(parts)).astype(np.int64)
    out = []
    for p in range(parts):
        m = dest == p
        out.append((allk[m].view(np.int64), allr[m]))
    return out


def shared_rows(*pieces: tuple[I64, I64]) -> I64:
    """Rows whose key (exact hash or band) another row shares: the candidate rows. Memory: the
    keys and rows, one sort order and two boolean masks (no per-bucket arrays)."""
    import numpy as np

    ks = [k for k, _ in pieces if len(k)]
    if not ks:
        return np.zeros(0, dtype=np.int64)
    keys = np.concatenate(ks)
    del ks
    rows = np.concatenate([r for k, r in pieces if len(k)])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    same = keys[1:] == keys[:-1]
    del keys
    shared = np.zeros(len(order), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    del same
    return np.unique(rows[order[shared]])


def reduce_state(state: NearDuplicateState | None, candidates: I64) -> NearDuplicateState | None:
    """A copy of ``state`` holding only the candidate rows; its row count and template counts
    stay those of all the rows it saw (``finish`` reports them)."""
    import numpy as np

    if state is None:
        return None
    state._drain()
    meta = state._meta()
    keep = np.flatnonzero(np.isin(meta[:, 0], candidates))
    small = object.__new__(type(state))
    small.__dict__.update({k: copy.copy(v) for k, v in state.__dict__.items()})
    small._sig_chunks, small._meta_chunks, small._fill = [], [], 0
    small._inflight = []
    if len(keep):
        sig = state._sig_rows(keep.astype(np.int64))
        sub = meta[keep]
        small._store(lambda: sig, sub)
    seen = len(meta) + int(getattr(state, "_others", 0))
    small._others = seen - len(keep)  # type: ignore[attr-defined]
    return small


def total_rows(state: Any) -> int:
    """Rows a (possibly reduced) state stands for."""
    return int(state._count()) + int(getattr(state, "_others", 0))


def merge_reduced(a: Any, b: Any) -> Any:
    """Merge two reduced states with the check's own ``merge``, keeping the dropped-row count
    (``None``: the check failed in a partition, and the failure is reported there)."""
    if a is None or b is None:
        return None
    from scanners.dataset.dups import NearDuplicateCheck

    check = NearDuplicateCheck()
    others = int(getattr(a, "_others", 0)) + int(getattr(b, "_others", 0))
    # NumPy arrays handed over by the engine's object store are read-only views; ``merge``
    # appends into ``a``'s buffers, so it gets its own copy.
    out = check.merge(copy.deepcopy(a), b)
    out._others = others  # type: ignore[attr-defined]
    return out


def finish_reduced(check: Any, state: Any, info: Any) -> Sequence[Any]:
    """``check.finish`` on a reduced state, with the row count of all rows in its summary."""
    others = int(getattr(state, "_others", 0))
    if others:
        groups = state._groups

        def full_groups() -> tuple[list[Any], int]:
            got, n = groups()
            return got, n + others

        state._groups = full_groups
    return list(check.finish(state, info))
