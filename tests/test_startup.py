"""Start-up cost of a plain one-file scan: modules it must not import (issue #12).

The CPU budget itself is measured in ``bench/bench_jobs.py`` (timings never live in unit tests);
these tests pin the import set that budget depends on, so a top-level import added to the CLI
or the provenance hook shows up as a named failure instead of a slow drift.
"""

from __future__ import annotations

import collections
import json
import pickle  # writing a benign input only; nothing is ever loaded
import struct
import subprocess
import sys
from pathlib import Path

import pytest

# Provenance verification (manifest hashing, Hub client, lock files, signatures) only runs for
# hf:// targets, provenance options or a directory that is a cache snapshot / holds a lock file.
PROVENANCE_ONLY = (
    "supplychain.provenance.cache",
    "supplychain.provenance.hub",
    "supplychain.provenance.lockfile",
    "supplychain.provenance.manifest",
    "supplychain.provenance.signing",
    "supplychain.provenance.verify",
)


def _small_files(tmp_path: Path) -> dict[str, Path]:
    raw = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    st = tmp_path / "m.safetensors"
    st.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    pk = tmp_path / "m.pkl"
    pk.write_bytes(pickle.dumps({"a": collections.OrderedDict(x=[1, 2])}, protocol=4))
    return {"safetensors": st, "pickle": pk}


def _modules_after_scan(target: Path, out: Path) -> tuple[str, list[str]]:
    code = (
        "import sys\n"
        "from supplychain.cli import main\n"
        f"code = main(['scan', '-q', '-f', 'json', '-o', {str(out)!r}, {str(target)!r}])\n"
        f"watch = {PROVENANCE_ONLY!r}\n"
        "print(code, sorted(m for m in sys.modules if m in watch))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    status, rest = done.stdout.split(None, 1)
    return status, json.loads(rest.replace("'", '"'))


@pytest.mark.parametrize("kind", ["safetensors", "pickle"])
def test_plain_file_scan_imports_no_provenance_machinery(tmp_path: Path, kind: str) -> None:
    """A file target without provenance options never imports the verification modules."""
    status, loaded = _modules_after_scan(_small_files(tmp_path)[kind], tmp_path / "r.json")
    assert status == "0"
    assert loaded == []


def test_directory_with_lock_file_still_takes_the_provenance_path(tmp_path: Path) -> None:
    """The lazy hook still finds a lock file next to the models (verification is not skipped)."""
    _small_files(tmp_path)
    (tmp_path / "supplychain.lock").write_text("not a lock file\n")
    out = tmp_path.parent / f"{tmp_path.name}-r.json"
    code = (
        "import sys\n"
        "from supplychain.cli import main\n"
        f"code = main(['scan', '-q', '-f', 'json', '-o', {str(out)!r}, {str(tmp_path)!r}])\n"
        "print(code, 'supplychain.provenance.verify' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.split()[-1:] == ["True"], done.stderr
    assert not done.stdout.startswith("0 "), "a broken lock file must not pass the gate"
