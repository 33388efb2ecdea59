"""Cross-checks against real PyTorch files (``-m framework``; off by default, needs torch).

The default suite never imports torch: these tests prove the hand-built checkpoints elsewhere
match what ``torch.save`` really writes, and that real checkpoints scan clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from supplychain.core.model import Severity, Status
from supplychain.engine import ScanOptions, scan_paths

pytestmark = pytest.mark.framework


def _scan(path: Path) -> object:
    return scan_paths([path], ScanOptions(jobs=1))


def _assert_clean(report: object, at_most: Severity = Severity.LOW) -> None:
    bad = [f for f in report.findings if f.severity > at_most]  # type: ignore[attr-defined]
    assert bad == []
    assert not report.failed  # type: ignore[attr-defined]


def test_state_dict_zip_format_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    report = _scan(tmp_path)
    assert report.files[0].kind.value == "torch-zip"  # type: ignore[attr-defined]
    _assert_clean(report, Severity.INFO)


def test_legacy_state_dict_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {"w": torch.ones(3, 3), "b": torch.zeros(3), "step": 7}
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    report = _scan(tmp_path)
    assert report.files[0].kind.value == "torch-legacy"  # type: ignore[attr-defined]
    _assert_clean(report, Severity.INFO)


def test_whole_module_pickle_is_at_most_medium(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    _assert_clean(_scan(tmp_path), Severity.MEDIUM)


def test_torchscript_archive_is_scanned_without_high_findings(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Tanh()))
    torch.jit.save(scripted, tmp_path / "model.pt")
    report = _scan(tmp_path)
    members = {r.member[-1].rsplit("/", 1)[-1] for r in report.files if r.member}  # type: ignore[attr-defined]
    assert "data.pkl" in members and "constants.pkl" in members
    assert any(r.status is Status.SCANNED and r.scanner == "pickle" for r in report.results)  # type: ignore[attr-defined]
    _assert_clean(report, Severity.MEDIUM)
