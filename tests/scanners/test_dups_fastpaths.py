"""The near-duplicate check's fast paths agree with their reference paths (issue #17, speed).

MinHash runs a batch in cache-sized pieces of rows (every permutation over one piece before the
next) on worker threads: its signatures must equal the plain definition (per row, the minimum of
``a*h mod 2**32`` over the row's shingle hashes, low 16 bits; rows without shingles all zero)
for any piece size and thread count. LSH band keys are read as uint64 words of 8 bands at once:
they must equal the 4 slots packed by shifts. Random rows plus empty, one-character, repeated,
very long and non-ASCII ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scanners.dataset.dups as dups
from scanners.dataset.common import Record, normalise, shingle_hashes
from scanners.dataset.dups import BAND_ROWS, BANDS, NUM_PERM, NearDuplicateCheck, minhash

TEXTS = st.lists(
    st.text(max_size=80)
    | st.sampled_from(["", "a", "ab", "x" * 300, "é" * 7, "😀 ok", "the same row", "\x00\x00"]),
    min_size=1,
    max_size=40,
)


def _reference(texts: list[str]) -> np.ndarray:
    hashes, first, lens = shingle_hashes(texts)
    a, _b = dups._perm_params(NUM_PERM)
    out = np.zeros((len(texts), NUM_PERM), dtype=np.uint16)
    for i, (f, n) in enumerate(zip(first, lens, strict=True)):
        if n:
            row = hashes[f : f + n].astype(np.uint64)
            prod = (row[None, :] * a[:, None].astype(np.uint64)) & np.uint64(0xFFFFFFFF)
            out[i] = (prod.min(axis=1) & np.uint64(0xFFFF)).astype(np.uint16)
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.sampled_from([1, 7, 64, 65_536]), st.sampled_from([1, 2, 3]))
def test_minhash_pieces_equal_the_definition(texts: list[str], piece: int, workers: int) -> None:
    norm = [normalise(t) for t in texts]
    want = _reference(norm)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dups, "_PIECE", piece)
        mp.setattr(dups, "_WORKERS", workers)
        mp.setattr(dups, "_PARALLEL_MIN", 0)
        got = minhash(*shingle_hashes(norm))
    assert got.shape == want.shape
    assert (got == want).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_band_keys_equal_the_shifted_slots(texts: list[str]) -> None:
    check = NearDuplicateCheck()
    state = check.observe(check.init(((), ())), [Record(i, t) for i, t in enumerate(texts)])
    state._drain()
    n = state._count()
    pos = np.arange(n, dtype=np.int64)[::-1].copy()  # any order
    sigs = state._sig_rows(pos)
    for band in range(BANDS):
        block = sigs[:, band * BAND_ROWS : (band + 1) * BAND_ROWS].astype(np.uint64)
        want = np.zeros(len(pos), dtype=np.uint64)
        for j in range(BAND_ROWS):
            want |= block[:, j] << np.uint64(16 * j)
        assert (state._band_keys(band, pos) == want).all()
        assert (state._band_block(band, band + 1, pos)[:, 0] == want).all()
