"""The one pickle recogniser and the one hidden-magic table (``scanners._magic``)."""

from __future__ import annotations

import pickle  # building benign inputs only; nothing is ever loaded
import random

import pytest

from scanners._magic import (
    HIDDEN_MAGIC,
    LEGACY_MAGIC,
    hidden_magic,
    is_legacy_torch,
    is_pickle_stream,
    pickle_at_start,
    walk_pickle,
)
from tests.scanners.test_archive_scan import BENIGN, PAYLOAD

LONG_STRING_STASH = (
    b"\x80\x02cbuiltins\nprint\nq\x00X" + (200_000).to_bytes(4, "little") + b"a" * 200_000
)
"""An import, then a string operand far longer than the 64 KiB window a container peeks at."""


def test_strict_recognises_a_payload_and_not_data() -> None:
    assert is_pickle_stream(PAYLOAD, strict=True)
    assert not is_pickle_stream(BENIGN, strict=True)  # no import: cannot run code
    assert not is_pickle_stream(b"\x80\x01" + PAYLOAD[2:], strict=True)  # protocol 1 PROTO
    assert not is_pickle_stream(PAYLOAD[2:], strict=True)  # no PROTO at all


def test_strict_recognises_a_stash_cut_by_the_peek_window() -> None:
    window = LONG_STRING_STASH[: 64 * 1024]
    walk = walk_pickle(window)
    assert not walk.complete and walk.undecodable and walk.imports == ("builtins.print",)
    # fewer than STRICT_MIN_OPS opcodes before the cut: not enough to call it a pickle
    assert not is_pickle_stream(window, strict=True)
    padded = b"\x80\x02" + b"K\x010" * 8 + LONG_STRING_STASH[2:]
    assert is_pickle_stream(padded[: 64 * 1024], strict=True)


def test_strict_stays_quiet_on_random_tensor_bytes() -> None:
    rng = random.Random(12)
    hits = sum(
        is_pickle_stream(bytes([0x80, rng.randint(2, 5)]) + rng.randbytes(4096), strict=True)
        for _ in range(3000)
    )
    assert hits == 0


@pytest.mark.parametrize(
    ("data", "name", "whole"),
    [
        (PAYLOAD, "", True),
        (BENIGN, "", True),
        (BENIGN, "x.pkl", True),
        (b"hello world\n", "notes.txt", True),
        (pickle.dumps({"a": [1, 2]}, protocol=0), "", True),
        (PAYLOAD[:20], "model.bin", False),
    ],
)
def test_identification_mode_is_the_sniff_bar(data: bytes, name: str, whole: bool) -> None:
    assert is_pickle_stream(data, name=name, whole=whole) is pickle_at_start(data, name, whole)


def test_hidden_magic_names_what_a_hole_starts_like() -> None:
    assert hidden_magic(b"\x80\x04\x95rest") == "pickle protocol 4"
    assert hidden_magic(b"PK\x03\x04....") == "zip archive"
    assert hidden_magic(b"\x93NUMPY\x01\x00") == "numpy array"
    assert hidden_magic(b"\x1f\x8b\x08") == "gzip stream"
    assert hidden_magic(b"\x00" * 16) is None
    assert len({magic for magic, _ in HIDDEN_MAGIC}) == len(HIDDEN_MAGIC)


def test_legacy_torch_magic_in_any_protocol() -> None:
    for protocol in range(0, 6):
        assert is_legacy_torch(pickle.dumps(LEGACY_MAGIC, protocol=protocol))
    assert not is_legacy_torch(pickle.dumps(LEGACY_MAGIC + 1, protocol=2))
