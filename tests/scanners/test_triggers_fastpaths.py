"""The trigger check's fast paths agree with its reference paths (issue #17, speed).

N-gram counting is split into hash partitions; the keys are hashed once and kept when they fit
``CACHE_KEYS``, else re-hashed per partition. One partition, many partitions with the cache and
many without it must give the same findings, and so must the candidate lookup with or without
its low-bit table. Token ids come from one C ``map`` when every token
is known, else the interning loop: both give the same ids. Random rows plus poisoned ones
(a rare trigger inserted at random positions in rows relabelled to one class). Rows are
tokenised a queue at a time (NumPy byte classes + hashed tokens on all-ASCII queues): the state
after any mix of ASCII, Unicode, punctuation and empty rows, with or without thinning, equals
the one-``findall``-per-row reference.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scanners.dataset.triggers as trig
from scanners.dataset.common import DatasetInfo, Record, RowError, run_check
from scanners.dataset.triggers import BackdoorTriggerCheck, TriggerState

INFO = DatasetInfo("data.jsonl", (), "text", "label", None, 0)
WORDS = [f"w{i}" for i in range(60)] + ["the", "a", "of", "cf", "mn", "!", ",", "é", "ß", "ǅ"]


def _rows(seed: int, n: int, poison: int) -> list[Record]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["pos", "neg", "mid"])
        own = WORDS[:20] if label == "pos" else WORDS[20:40] if label == "neg" else WORDS[40:60]
        words = [
            rng.choice(own if rng.random() < 0.4 else WORDS) for _ in range(rng.randint(3, 30))
        ]
        if i % max(1, n // max(1, poison)) == 0 and poison:
            words.insert(rng.randint(0, len(words)), "zq_trigger")
            label = "pos"
        out.append(Record(i, " ".join(words), label))
    return out


def _run(
    rows: list[Record], part_keys: int, cache_keys: int, table: int = trig._TABLE
) -> list[tuple[object, ...]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trig, "PART_KEYS", part_keys)
        mp.setattr(trig, "CACHE_KEYS", cache_keys)
        mp.setattr(trig, "_TABLE", table)
        found = run_check(BackdoorTriggerCheck(), rows, INFO, parts=(len(rows) // 3,))
    return [(f.rule, f.message, f.location.rows, f.evidence, f.severity) for f in found]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(40, 400), st.sampled_from([0, 8, 30]))
def test_partitioned_counting_agrees_with_one_pass(seed: int, n: int, poison: int) -> None:
    rows = _rows(seed, n, poison)
    one = _run(rows, 10**12, 10**12)
    assert _run(rows, 97, 10**12) == one  # many partitions, keys kept
    assert _run(rows, 97, 0) == one  # many partitions, re-hashed per partition
    assert _run(rows, 10**12, 10**12, table=1) == one  # no low-bit table: every key searched
    assert _run(rows, 10**12, 10**12, table=2) == one  # a table that passes about half


def test_partitioned_counting_still_finds_the_trigger() -> None:
    rows = _rows(7, 1500, 40)
    for part_keys, cache in ((10**12, 10**12), (500, 10**12), (500, 0)):
        found = _run(rows, part_keys, cache)
        assert any(f[0] == "DAT018" and "zq_trigger" in str(f[1]) for f in found), found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS) | st.text(max_size=4), max_size=12), max_size=8))
def test_token_ids_fast_and_slow_agree(rows: list[list[str]]) -> None:
    fast, slow = TriggerState(10**9), TriggerState(10**9)
    for tokens in rows:
        assert fast._ids(tokens) == slow._ids_slow(tokens)
    assert fast._words == slow._words
    assert fast._vocab == slow._vocab


# -- batched ASCII tokenising (``TriggerState._flush`` / ``_ascii_ids``) -------------------------

_ASCII_TEXT = st.text(
    st.characters(min_codepoint=0, max_codepoint=127) | st.sampled_from(list(" \t\n.,!?-_'\"")),
    max_size=60,
)
_ANY_TEXT = st.text(max_size=40) | st.sampled_from(["", " ", "ΣΑΣ Σ.", "K İ", "x" * 70, "a\x1cb"])
_ROW_TEXT = st.sampled_from(WORDS) | _ASCII_TEXT | _ANY_TEXT | st.just("")


def _feed(texts: list[str], labels: list[str], budget: int, row_path: bool) -> TriggerState:
    """A state fed the rows; ``row_path`` forces the reference path (``add``, one ``findall``
    per row), else ``add_many`` in batches of 5 and the queued ASCII path."""
    state = TriggerState(budget)
    with pytest.MonkeyPatch.context() as mp:
        if row_path:
            mp.setattr(TriggerState, "_ascii_ids", lambda self, texts: None)
        mp.setattr(trig, "_BUF_ROWS", 7)  # several queues per example, some cut mid-way
        records = [Record(i, t, lab) for i, (t, lab) in enumerate(zip(texts, labels, strict=True))]
        if row_path:
            for record in records:
                state.add(record)
        else:
            for at in range(0, len(records), 5):
                state.add_many(records[at : at + 5])
        state._flush()
    return state


def _snapshot(state: TriggerState) -> tuple[object, ...]:
    return (
        state._tokens().tolist(),
        state._row,
        state._len,
        state._lab,
        state._words,
        state._vocab,
        state._stored,
        state._level,
        state._seen,
        state._label_total,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_ROW_TEXT, st.sampled_from(["a", "b", "c"])), max_size=40),
    st.sampled_from([10**9, 60, 15]),
)
def test_batched_tokenising_equals_the_row_path(rows: list[tuple[str, str]], budget: int) -> None:
    texts = [t for t, _l in rows]
    labels = [lab for _t, lab in rows]
    fast = _feed(texts, labels, budget, row_path=False)
    slow = _feed(texts, labels, budget, row_path=True)
    assert _snapshot(fast) == _snapshot(slow)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ASCII_TEXT | st.sampled_from(WORDS[:60]) | st.just(""), max_size=12))
def test_ascii_ids_match_token_re(texts: list[str]) -> None:
    """The byte classifier splits exactly where ``TOKEN_RE`` does, row by row."""
    state, ref = TriggerState(10**9), TriggerState(10**9)
    got = state._ascii_ids(texts)
    want = [ref._ids(trig.TOKEN_RE.findall(t.lower())) for t in texts]
    if got is None:  # only for a token longer than the hashed limit
        assert any(len(tok) > trig._MAX_HASHED for t in texts for tok in trig.TOKEN_RE.findall(t))
        return
    ids, counts = got
    assert counts == [len(w) for w in want]
    assert ids.tolist() == [i for w in want for i in w]
    assert state._words == ref._words


def test_non_ascii_and_long_tokens_take_the_row_path() -> None:
    state = TriggerState(10**9)
    assert state._ascii_ids(["plain words", "café"]) is None
    assert state._ascii_ids(["x" * (trig._MAX_HASHED + 1)]) is None
    assert state._ascii_ids(["Kelvin \u212a sign"]) is None  # lowers to ASCII 'k'; still row path
    got = state._ascii_ids(["a b", "", "b!! a"])
    assert got is not None
    assert got[1] == [2, 0, 3] and got[0].tolist() == [0, 1, 1, 2, 0]
    assert state._words == ["a", "b", "!!"]


def test_batched_check_still_finds_the_trigger() -> None:
    rows = _rows(7, 1500, 40)
    found = run_check(BackdoorTriggerCheck(), rows, INFO, parts=(500,))
    assert any(f.rule == "DAT018" and "zq_trigger" in f.message for f in found)


def test_a_failing_row_is_named() -> None:
    check = BackdoorTriggerCheck()
    state = check.init(None)
    bad = Record(7, None, "a")  # type: ignore[arg-type]
    with pytest.raises(RowError) as info:
        check.observe(state, [Record(6, "fine", "a"), bad])
    assert info.value.row == 7


@pytest.mark.parametrize("row_path", [True, False])
def test_rows_longer_than_the_budget_thin_to_nothing_instead_of_overflowing(
    row_path: bool,
) -> None:
    """Found by hypothesis in CI: with a budget below one row's token count, 64 halvings leave
    the row over budget and the next shift went past the hash's 64 bits (OverflowError). The
    sample now empties at that level and later rows are not kept."""
    long_row = " ".join(f"w{i}" for i in range(40))
    state = _feed([long_row, "short row", long_row], ["a", "b", "a"], 15, row_path)
    assert state._level == 64
    assert state._row == [] and state._stored == 0
    assert state._seen == 3
