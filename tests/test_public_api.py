"""The public Python API: ``supplychain.scan(paths, settings) -> Report`` and ``__all__``."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import supplychain
from supplychain.policy import Policy


def _safetensors(path: Path) -> None:
    raw = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))


def test_all_names_exist_and_are_documented() -> None:
    for name in supplychain.__all__:
        value = getattr(supplychain, name)
        if name != "__version__":
            assert value.__doc__, name
    assert {"scan", "Report", "Finding", "Fact", "Severity", "Settings", "Policy"} <= set(
        supplychain.__all__
    )


def test_scan_returns_a_judged_report(tmp_path: Path) -> None:
    _safetensors(tmp_path / "m.safetensors")
    report = supplychain.scan([tmp_path])
    assert isinstance(report, supplychain.Report)
    assert report.verdict is not None and report.verdict.passed
    assert {f.key for f in report.facts} >= {"format", "tensor.count"}
    assert report.settings_fingerprint == supplychain.Settings().fingerprint()


def test_scan_with_settings_and_policy(tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes(
        b"\x80\x04\x8c\x05mylab\x8c\x03Net\x93)R."
    )  # an import outside the allowlist: at least MEDIUM
    default = supplychain.scan([tmp_path], policy=Policy(fail_on=supplychain.Severity.MEDIUM))
    assert default.verdict is not None and not default.verdict.passed
    allowed = supplychain.scan(
        [tmp_path],
        supplychain.Settings(allow_imports=frozenset({"mylab.*"})),
        policy=Policy(fail_on=supplychain.Severity.MEDIUM),
    )
    assert allowed.verdict is not None and allowed.verdict.passed
    assert allowed.settings_fingerprint != default.settings_fingerprint


def test_unusable_target_raises_a_supplychain_error(tmp_path: Path) -> None:
    with pytest.raises(supplychain.SupplyChainError):
        supplychain.scan([tmp_path / "missing"])


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, supplychain\n"
        "print(sorted(m for m in sys.modules if m.startswith(('scanners', 'supplychain.engine',"
        " 'supplychain.policy', 'numpy'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
