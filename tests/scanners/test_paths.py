"""The one path-escape test (``scanners._paths.path_escape``) and the containers that use it."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from scanners._paths import is_outside_path, path_escape
from tests.scanners.test_archive_scan import make_zip, rules, scan_file

LONG_BENIGN = "a/" * 30_000 + "model.bin"
LONG_HOSTILE = "a/" * 30_000 + "../../etc/cron.d/x"

HOSTILE = [
    ("..", "parent-directory traversal"),
    ("../x", "parent-directory traversal"),
    ("a/../../x", "parent-directory traversal"),
    ("a/b/..", "parent-directory traversal"),
    ("/etc/passwd", "absolute path"),
    ("//server/share/x", "absolute path"),
    ("\\\\server\\share\\x", "absolute path"),
    ("\\windows\\system32\\x.dll", "absolute path"),
    ("C:\\Windows\\x.dll", "absolute path"),
    ("c:/x", "absolute path"),
    ("C:x", "absolute path"),  # drive-relative: the current directory of drive C:
    ("a\\..\\..\\x", "parent-directory traversal"),
    ("..\\x", "parent-directory traversal"),
    ("x\x00.txt", "NUL byte in name"),
    ("\x00", "NUL byte in name"),
    ("\u2025/x", "parent-directory traversal"),  # TWO DOT LEADER, NFKC ".."
    ("\uff0e\uff0e/x", "parent-directory traversal"),  # fullwidth full stops
    ("a/\u2024\u2024/b", "parent-directory traversal"),  # ONE DOT LEADER twice
    ("\uff0fetc\uff0fpasswd", "absolute path"),  # fullwidth solidus
    ("\uff3c\uff3cserver\uff3cshare", "absolute path"),  # fullwidth reverse solidus
    (".. /x", "parent-directory traversal"),  # Win32 strips trailing spaces
    ("a/.../b", "parent-directory traversal"),  # and trailing dots
    (LONG_HOSTILE, "parent-directory traversal"),
]

BENIGN = [
    "model.bin",
    "archive/data/0",
    "a/.hidden",
    "..foo",
    "foo..",
    "a/..b/c",
    ".",
    "./a",
    "~$report.docx",  # extractors never expand ~
    "caf\u00e9/\u00fcber.txt",
    LONG_BENIGN,
]


@pytest.mark.parametrize(("name", "why"), HOSTILE, ids=lambda v: repr(v)[:40])
def test_hostile_names_escape(name: str, why: str) -> None:
    assert path_escape(name) == why
    assert is_outside_path(name)


@pytest.mark.parametrize("name", BENIGN, ids=lambda v: repr(v)[:40])
def test_plain_relative_names_do_not(name: str) -> None:
    assert path_escape(name) is None


def test_home_counts_only_for_loaders_that_expand_it() -> None:
    assert path_escape("~/.ssh/id_rsa") is None
    assert path_escape("~/.ssh/id_rsa", home=True) == "home-directory path"
    assert is_outside_path("~root/.bashrc")


def test_long_names_are_judged_in_linear_time() -> None:
    started = time.process_time()
    for _ in range(20):
        assert path_escape(LONG_HOSTILE + "\u00e9") is not None
    # A hang guard, not a benchmark: 20 walks of a 60 000-character name.
    assert time.process_time() - started < 5


ZIP_HOSTILE = [n for n, _ in HOSTILE if "\x00" not in n]
"""``zipfile`` cuts a name at NUL, so NUL names are covered by the direct test above."""


@pytest.mark.parametrize("name", ZIP_HOSTILE, ids=lambda v: repr(v)[:40])
def test_zip_members_are_judged_by_the_one_test(tmp_path: Path, name: str) -> None:
    report = scan_file(tmp_path, "a.zip", make_zip([("ok.txt", b"x"), (name, b"data")]))
    assert "ARC001" in rules(report)


@pytest.mark.parametrize("name", [n for n, _ in HOSTILE if "\x00" not in n][:12])
def test_tar_members_are_judged_by_the_one_test(tmp_path: Path, name: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size = 4
        tf.addfile(info, io.BytesIO(b"data"))
    report = scan_file(tmp_path, "a.tar", buf.getvalue())
    assert "ARC001" in rules(report)


@pytest.mark.parametrize("name", BENIGN[:6])
def test_benign_zip_members_are_not_flagged(tmp_path: Path, name: str) -> None:
    report = scan_file(tmp_path, "a.zip", make_zip([(name, b"data")]))
    assert "ARC001" not in rules(report)


def test_no_scanner_keeps_its_own_parent_directory_check() -> None:
    """Member and path names are judged in ``scanners/_paths.py`` only (config_scan's check is of
    dotted module references, not paths)."""
    root = Path(__file__).resolve().parents[2] / "scanners"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("_paths.py", "config_scan.py"):
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            own_check = '"..")' in code or "'..')" in code or '".." in' in code
            if own_check and "startswith" not in code:
                offenders.append(f"{path.relative_to(root)}:{lineno}: {line.strip()}")
    assert offenders == []
