"""Hostile input through the whole engine: mutated samples never crash a scanner.

Every committed sample is truncated, bit-flipped, spliced and repeated under its own name (so
sniffing and every scanner see it); the scan must finish with no FAILED outcome, and a file that
claimed a format and broke must not come out clean-and-unanalysed.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from supplychain.core.limits import Limits
from supplychain.core.model import Status
from supplychain.engine import ScanOptions, scan_paths

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FILES = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and p.parent != SAMPLES and p.suffix != ".md"
)


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(count):
        b = bytearray(data)
        match i % 5:
            case 0:
                b = b[: rng.randrange(0, max(len(b), 1))]
            case 1:
                for _ in range(rng.randint(1, 8)):
                    if b:
                        b[rng.randrange(len(b))] = rng.randrange(256)
            case 2:
                cut = rng.randrange(0, max(len(b), 1))
                b = b[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b[cut:]
            case 3:
                b = b * rng.randint(2, 4)
            case _:
                if len(b) > 2:
                    lo = rng.randrange(len(b) - 1)
                    hi = rng.randrange(lo + 1, len(b))
                    b = b[:lo] + b[hi:]
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("sample", FILES, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_mutated_samples_never_crash_a_scanner(sample: Path, tmp_path: Path) -> None:
    rng = random.Random(sample.name)
    for i, data in enumerate(_mutations(sample.read_bytes(), rng, 25)):
        case = tmp_path / f"m{i:02d}"
        case.mkdir()
        (case / sample.name).write_bytes(data)
    report = scan_paths([tmp_path], ScanOptions(limits=Limits(max_nesting=3), jobs=2))
    failed = [(r.path, r.scanner, r.reason) for r in report.results if r.status is Status.FAILED]
    assert failed == []
