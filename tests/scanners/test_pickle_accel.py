"""Differential tests: the compiled skimmer (``scanners._pickle_accel``) against the pure-Python
reference (``PickleMachine._skim_py``), on valid, truncated and mutated pickles of every protocol.

Where the extension is not built these tests compare the pure path with itself and still check
its results; ``SUPPLYCHAIN_REQUIRE_ACCEL=1`` (set where a compiler is guaranteed) makes a missing
extension a failure.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import random
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

import scanners.pickle_vm as pv
from scanners.pickle_vm import OPAQUE_CODE, PAD, RICH_CODE, UNSET, PickleMachine, Stats, Stop
from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import Limits

ACCEL: ModuleType | None = pv._accel_module


@contextmanager
def accel(module: ModuleType | None) -> Iterator[None]:
    saved = pv._accel
    pv._accel = module
    try:
        yield
    finally:
        pv._accel = saved


def test_accelerator_is_built_when_required() -> None:
    if os.environ.get("SUPPLYCHAIN_REQUIRE_ACCEL") == "1":
        assert ACCEL is not None, "scanners._pickle_accel was not built (no C compiler?)"
        assert hasattr(ACCEL, "skim")
    # Either way the pure path walks a batch-heavy pickle to its STOP.
    data = pickle.dumps(list(range(5000)), protocol=4)
    with accel(None):
        machine = PickleMachine(io.BytesIO(data))
        events = list(machine.walk())
    assert isinstance(events[-1], Stop)
    assert machine._skim_hits > 0


def test_pure_python_env_var_disables_the_accelerator() -> None:
    import subprocess
    import sys

    code = "import scanners.pickle_vm as pv; print(pv._accel is None)"
    env = dict(os.environ, SUPPLYCHAIN_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


# ---- random data -------------------------------------------------------------------------


def scalar(rng: random.Random) -> object:
    kind = rng.randrange(12)
    if kind == 0:
        return rng.randrange(256)
    if kind == 1:
        return rng.randrange(-(2**31), 2**31)
    if kind == 2:
        return rng.randrange(-(2**70), 2**70)
    if kind == 3:
        return rng.random()
    if kind == 4:
        return rng.choice(["a", "key", "é", "日本", "\ud800x", "\U0001f600", ""])
    if kind == 5:
        return "s" * rng.randrange(200, 400)  # BINUNICODE, not SHORT_BINUNICODE
    if kind == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    if kind == 7:
        return rng.choice([None, True, False])
    if kind == 8:
        return f"user{rng.randrange(10**6)}"
    if kind == 9:
        return bytearray(b"xy")
    if kind == 10:
        return collections.OrderedDict(a=1)  # a REDUCE: the skim abandons
    return complex(1, 2)


def value(rng: random.Random, depth: int, shared: list[object]) -> object:
    if shared and rng.random() < 0.1:
        return rng.choice(shared)  # a memo fetch (BINGET)
    if depth <= 0 or rng.random() < 0.5:
        return scalar(rng)
    kind = rng.randrange(5)
    size = rng.randrange(6)
    items = [value(rng, depth - 1, shared) for _ in range(size)]
    made: object
    if kind == 0:
        made = tuple(items)
    elif kind == 1:
        made = items
    elif kind == 2:
        made = {
            rng.choice(["id", "name", 3, (1, 2), "tags"]) if rng.random() < 0.8 else (1, (2,)): v
            for v in items
        }
    elif kind == 3:
        made = {rng.choice(["a", "b", "c"]) for _ in items}
    else:
        made = (tuple(items), rng.random())
    if rng.random() < 0.3:
        shared.append(made)
    return made


def big_pickle(rng: random.Random, protocol: int) -> bytes:
    """A list/dict long enough that later batches land in a full preview (skimmed)."""
    shared: list[object] = []
    rows = [value(rng, 3, shared) for _ in range(rng.randrange(40, 400))]
    if rng.random() < 0.3:
        top: object = {f"k{i}": row for i, row in enumerate(rows)}
    elif rng.random() < 0.2:
        top = dict(enumerate(rows))
    else:
        top = rows
    return pickle.dumps(top, protocol=protocol)


Outcome = tuple[str, tuple[str, int | None] | None, Stats, int]


def outcome(data: bytes, limits: Limits | None, module: ModuleType | None) -> Outcome:
    with accel(module):
        machine = PickleMachine(io.BytesIO(data), limits)
        events: list[object] = []
        error: tuple[str, int | None] | None = None
        try:
            for ev in machine.walk():
                events.append(ev)
        except LimitExceeded as exc:
            error = (str(exc), exc.offset)
    return repr(events), error, machine.stats, machine.position


def assert_same(data: bytes, limits: Limits | None = None) -> Outcome:
    fast = outcome(data, limits, ACCEL)
    ref = outcome(data, limits, None)
    assert fast == ref
    return ref


def mutate(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(raw))
        choice = rng.randrange(3)
        if choice == 0:
            raw[at] = rng.randrange(256)
        elif choice == 1:
            raw[at] = rng.choice(b"()\x94q\x68\x6a\x8c\x58\x43etu\x85\x86\x87\x8a\x95}]N")
        else:
            del raw[at : at + rng.randrange(1, 4)]
    return bytes(raw)


# ---- whole walks ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_valid_pickles_walk_identically(protocol: int) -> None:
    rng = random.Random(protocol)
    for _ in range(25):
        data = big_pickle(rng, protocol)
        events, error, _, _ = assert_same(data)
        assert error is None
        assert "Stop(" in str(events)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_truncated_and_mutated_pickles_walk_identically(protocol: int) -> None:
    rng = random.Random(100 + protocol)
    for _ in range(25):
        data = big_pickle(rng, protocol)
        assert_same(data[: rng.randrange(1, len(data))])
        for _ in range(6):
            assert_same(mutate(rng, data))


def test_limits_trip_identically() -> None:
    rng = random.Random(7)
    data = pickle.dumps([value(rng, 2, []) for _ in range(3000)], protocol=4)
    for limits in (
        Limits(max_pickle_ops=5000),
        Limits(max_pickle_memo=50),
        Limits(max_pickle_stack=40),
        Limits(max_pickle_string=100),  # keep < 256: no skimming at all
    ):
        assert_same(data, limits)


def test_benchmark_shape_skims_to_the_same_result() -> None:
    items: list[object] = []
    for i in range(20_000):
        kind = i & 3
        if kind == 0:
            items.append(
                {"id": i, "name": f"user{i}", "score": 0.5, "tags": ("a", "b"), "ok": True}
            )
        elif kind == 1:
            items.append((i, 0.25, f"s{i}"))
        elif kind == 2:
            items.append(i / 7)
        else:
            items.append(f"string number {i}")
    for protocol in (2, 3, 4, 5):
        _, error, stats, _ = assert_same(pickle.dumps(items, protocol=protocol))
        assert error is None and stats.opcodes > 100_000


# ---- the skim itself, at every MARK of hostile buffers ---------------------------------------


def skim_once(
    data: bytes,
    i: int,
    memo: list[int],
    into_dict: bool,
    eof: bool,
    base: int,
    module: ModuleType | None,
) -> tuple[object, list[int], int, int]:
    machine = PickleMachine(io.BytesIO(data))
    machine._buf = data + PAD if eof else data
    machine._real = len(data)
    machine._eof = eof
    machine._base = base
    codes = array("q", memo)
    with accel(module):
        try:
            got: object = machine._skim(i, codes, into_dict)
        except Exception as exc:  # compared, not swallowed
            got = ("raised", type(exc).__name__)
    if isinstance(got, tuple) and len(got) == 4:
        j, ops, last, at = got
        shown = "NOTHING" if last is pv._NOTHING else (type(last).__name__, last)
        got = (j, ops, shown, at)
    return got, codes.tolist(), machine._skim_hits, machine._skim_misses


def test_skim_matches_the_reference_at_every_mark_of_mutated_buffers() -> None:
    rng = random.Random(42)
    compared = accepted = 0
    for round_ in range(120):
        protocol = rng.choice([2, 3, 4, 5])
        data = big_pickle(rng, protocol)
        if round_ % 3:
            data = mutate(rng, data)
        if round_ % 5 == 0:
            data = data[: rng.randrange(1, len(data))]
        marks = [k for k, b in enumerate(data) if b == 0x28]
        for k in rng.sample(marks, min(len(marks), 12)):
            memo = [OPAQUE_CODE] * rng.choice([0, 50, 5000])
            if rng.random() < 0.5:  # some fetches hit non-constants (the skim must abandon)
                noise = [RICH_CODE, UNSET, rng.randrange(len(data))]
                memo = [rng.choice(noise) if rng.random() < 0.02 else c for c in memo]
            eof = rng.random() < 0.7
            base = rng.choice([0, 1 << 40])
            into_dict = rng.random() < 0.4
            args = (data, k + 1, memo, into_dict, eof, base)
            fast = skim_once(*args, ACCEL)
            ref = skim_once(*args, None)
            assert fast == ref, (round_, k)
            compared += 1
            accepted += ref[2]
    assert compared > 500
    assert accepted > 50  # the comparison covered batches that were really skimmed


def test_skim_of_a_batch_at_the_buffer_end_is_abandoned_by_both() -> None:
    body = b"(" + b"K\x01" * 40 + b"e"
    for cut in range(1, len(body) + 1):
        for eof in (True, False):
            fast = skim_once(body[:cut], 1, [], False, eof, 0, ACCEL)
            ref = skim_once(body[:cut], 1, [], False, eof, 0, None)
            assert fast == ref
    whole = skim_once(body, 1, [], False, True, 0, None)
    assert whole[0] == (len(body), 41, "NOTHING", 0)
    assert skim_once(body, 1, [], True, True, 0, None)[0] is None  # APPENDS into a dict


@pytest.mark.parametrize(
    "item",
    [b"\x8c\x02\xed\xa0", b"\x8c\x02\xff\xfe", b"X\x02\x00\x00\x00\xc3\xa9", b"X\xff\xff\xff\x7f"],
)
def test_skim_validates_text_like_the_reference(item: bytes) -> None:
    data = b"(" + item + b"\x94e" + bytes(300)
    fast = skim_once(data, 1, [], False, True, 0, ACCEL)
    ref = skim_once(data, 1, [], False, True, 0, None)
    assert fast == ref
