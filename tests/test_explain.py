"""``supplychain explain`` streams: members and payloads are never read whole into memory."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from scanners.explain import explain_file
from tests.scanners.test_archive_scan import PAYLOAD, make_zip

BIG = 200 * 2**20
"""Size of the generated member (a sparse file: it takes no disk)."""
RSS_MARGIN_MB = 96
"""Generous: buffering the member (as ``explain`` once did) costs over 200 MB."""


def _sparse_zip_with_big_pickle(path: Path, size: int = BIG) -> None:
    """A stored zip member ``big.pkl``: PROTO 4, BINBYTES8 of ``size`` zero bytes, STOP."""
    head = b"\x80\x04\x8e" + struct.pack("<Q", size)
    tail = b"."
    total = len(head) + size + len(tail)
    crc = zlib.crc32(head)
    zeros = bytes(1 << 20)
    left = size
    while left:
        n = min(left, len(zeros))
        crc = zlib.crc32(zeros[:n], crc)
        left -= n
    crc = zlib.crc32(tail, crc)
    name = b"archive/big.pkl"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, total, total, len(name), 0)
    with path.open("wb") as fh:
        fh.write(local + name + head)
        fh.seek(len(local) + len(name) + len(head) + size)  # the hole: zeros, no disk
        fh.write(tail)
        cd_start = fh.tell()
        central = struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, total, total,
            len(name), 0, 0, 0, 0, 0, 0,
        )  # fmt: skip
        fh.write(central + name)
        cd_size = fh.tell() - cd_start
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, cd_size, cd_start, 0))


def _peak_rss_mb(target: Path) -> tuple[int, str, float]:
    code = (
        "import contextlib, os, resource, sys\n"
        "from supplychain.cli import main\n"
        "with open(os.devnull, 'w') as null, contextlib.redirect_stdout(null):\n"
        f"    rc = main(['explain', {str(target)!r}])\n"
        "print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rc, rss = done.stdout.split()
    return int(rc), done.stderr, float(rss)


def test_explaining_a_200_mb_member_keeps_memory_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.pt"
    _sparse_zip_with_big_pickle(big)
    small = tmp_path / "small.pt"
    _sparse_zip_with_big_pickle(small, size=1024)
    rc_small, _, base = _peak_rss_mb(small)
    rc_big, _, peak = _peak_rss_mb(big)
    assert rc_small == rc_big == 0
    assert peak - base < RSS_MARGIN_MB, (base, peak)


def test_the_big_member_is_traced_to_its_end(tmp_path: Path) -> None:
    big = tmp_path / "big.pt"
    _sparse_zip_with_big_pickle(big, size=32 * 2**20)
    with big.open("rb") as fh:
        lines = list(explain_file(fh, big.stat().st_size, big.name))
    assert lines[0] == "# member archive/big.pkl"
    assert any("result[0]" in line for line in lines)
    assert lines[-1].startswith("# ") and "1 pickle(s)" in lines[-1]


def test_members_and_payloads_are_escaped_and_errors_are_lines(tmp_path: Path) -> None:
    data = make_zip([("a/data.pkl", PAYLOAD), ("a/\x1b[31mred.pkl", PAYLOAD)])
    target = tmp_path / "m.pt"
    target.write_bytes(data)
    with target.open("rb") as fh:
        lines = list(explain_file(fh, len(data), target.name))
    assert "# member a/data.pkl" in lines
    assert not any("\x1b" in line for line in lines)
    assert sum("from builtins import print" in line for line in lines) == 2


def test_a_zip_without_a_directory_cannot_be_explained(tmp_path: Path) -> None:
    from supplychain.core.errors import ArtifactError

    target = tmp_path / "cut.zip"
    target.write_bytes(make_zip([("a.pkl", PAYLOAD)])[:-30])
    with target.open("rb") as fh, pytest.raises(ArtifactError):
        list(explain_file(fh, target.stat().st_size, target.name))
