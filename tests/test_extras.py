"""Optional extras: without one, the scanner that needs it skips with the install command as the
reason (the default gate still passes on the skip alone), and ``--strict`` fails on it.

Each case runs the real CLI in a subprocess whose ``sys.modules`` blocks the extra's libraries
(``sys.modules[name] = None`` makes ``import name`` raise), next to a control run without the
block, so the skip is caused by the missing library and nothing else.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scanners._extras import EXTRAS, install_command
from tests.scanners.test_archive_scan import PAYLOAD


def _seven_zip(path: Path) -> None:
    import py7zr

    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(PAYLOAD, "model.pkl")


def _lz4(path: Path) -> None:
    import lz4.frame

    path.write_bytes(lz4.frame.compress(PAYLOAD))


def _hdf5(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})


def _jsonl(path: Path) -> None:
    rows = [{"text": f"row {i} about the weather", "label": i % 2} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _weights(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))


CASES: list[tuple[str, str, str, Callable[[Path], None], tuple[str, ...]]] = [
    ("archives", "archive", "a.7z", _seven_zip, ("py7zr",)),
    ("archives", "archive", "model.pkl.lz4", _lz4, ("lz4", "lz4.frame")),
    ("keras", "keras", "model.h5", _hdf5, ("h5py",)),
    ("datasets", "dataset", "rows.jsonl", _jsonl, ("scipy",)),
]


def _run(target: Path, out: Path, blocked: tuple[str, ...], *flags: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "from supplychain.cli import main\n"
        f"raise SystemExit(main(['scan', '-q', '-f', 'json', '-o', {str(out)!r}, "
        f"*{list(flags)!r}, {str(target)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


def _outcome(report: dict, scanner: str) -> dict:  # type: ignore[type-arg]
    found = [o for o in report["outcomes"] if o["scanner"] == scanner and not o["member"]]
    assert len(found) == 1, report["outcomes"]
    return found[0]


@pytest.mark.parametrize(
    ("extra", "scanner", "name", "make", "blocked"), CASES, ids=lambda v: str(v)
)
def test_a_missing_extra_is_a_skip_naming_the_install_command(
    tmp_path: Path,
    extra: str,
    scanner: str,
    name: str,
    make: Callable[[Path], None],
    blocked: tuple[str, ...],
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    make(target / name)
    _weights(target / "weights.safetensors")  # something is analysed: a lone skip is exit 2
    _, control = _run(target, tmp_path / "control.json", ())
    assert _outcome(control, scanner)["status"] == "scanned"

    code, report = _run(target, tmp_path / "blocked.json", blocked)
    outcome = _outcome(report, scanner)
    assert outcome["status"] == "skipped"
    assert install_command(extra) in outcome["reason"]
    assert blocked[0] in outcome["reason"]
    assert code == 0  # a skip alone does not fail the default gate

    strict, report = _run(target, tmp_path / "strict.json", blocked, "--strict")
    assert strict == 1
    assert any("--strict" in reason for reason in report["verdict_reasons"])


def test_every_extra_is_declared_in_pyproject_and_pulled_by_test_and_all() -> None:
    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    base = " ".join(project["dependencies"]).lower()
    for extra in EXTRAS:
        assert extra in optional, extra
        assert f"supplychain[{extra}" not in base
        for pulls in ("test", "all"):
            assert any(extra in spec for spec in optional[pulls] if "supplychain[" in spec), (
                extra,
                pulls,
            )
    for heavy in ("scikit-learn", "pyarrow", "h5py", "py7zr", "lz4", "cleanlab"):
        assert heavy not in base, f"{heavy} is still a base dependency"


def test_the_hdf5_child_is_not_needed_for_a_keras_zip(tmp_path: Path) -> None:
    """``.keras`` zips (the Quickstart's sample) need no extra: only HDF5 does."""
    from tests.scanners.test_keras_scan import _keras_zip, _model

    target = tmp_path / "m.keras"
    target.write_bytes(_keras_zip(_model()))
    code, report = _run(target, tmp_path / "k.json", ("h5py",))
    assert _outcome(report, "keras")["status"] == "scanned"
    assert code in (0, 1)
