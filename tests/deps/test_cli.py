"""``supplychain scan --deps-online`` and ``supplychain deps`` as a user runs them (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.deps.fakeosv import FakeOsv

SETUP_PY = """
import pathlib
pathlib.Path({marker!r}).write_text("setup.py ran")
from setuptools import setup
setup(name="pkg", version="0.1")
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("SUPPLYCHAIN_OSV_URL", None) if env is None else None
    return subprocess.run(
        [sys.executable, "-m", "supplychain", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


def model_dir(tmp_path: Path, requirements: str) -> tuple[Path, Path]:
    """A model directory shipping requirements and a local package whose setup.py leaves a
    marker if anything ever runs it."""
    root = tmp_path / "model"
    (root / "pkg").mkdir(parents=True)
    marker = tmp_path / "MARKER"
    (root / "pkg" / "setup.py").write_text(SETUP_PY.format(marker=str(marker)))
    (root / "requirements.txt").write_text(requirements)
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    return root, marker


def test_scan_deps_online_fails_the_gate_on_a_vulnerable_pin(tmp_path: Path, osv: FakeOsv) -> None:
    root, _ = model_dir(tmp_path, "torch==2.1.0\n")
    out = tmp_path / "report.json"
    got = cli(
        "scan", str(root), "--deps-online", "--osv-url", osv.url, "-f", "json", "-o", str(out)
    )
    assert got.returncode == 1, got.stderr
    report = json.loads(out.read_text())
    rules = {(f["rule"], f["severity"]) for f in report["findings"]}
    assert ("DEP020", "critical") in rules
    assert any("GHSA-torch-0001" in f["message"] for f in report["findings"])
    assert len(osv.requests) == 1


def test_scan_is_offline_by_default(tmp_path: Path, osv: FakeOsv) -> None:
    root, _ = model_dir(tmp_path, "torch==2.1.0\n")
    got = cli("scan", str(root), "--osv-url", osv.url, "-f", "json")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)
    assert [f["rule"] for f in report["findings"] if f["rule"].startswith("DEP")] == ["DEP023"]
    assert osv.requests == []


def test_deps_command(tmp_path: Path, osv: FakeOsv) -> None:
    root, _ = model_dir(tmp_path, "torch==2.2.0\nrequests==2.31.0\n")
    got = cli("deps", str(root), "--osv-url", osv.url, "-f", "json")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)
    assert report["findings"] == []
    assert report["command"] == "deps"
    assert {f["value"] for f in report["facts"] if f["key"] == "dependency.audit"} == {"online"}
    assert len(osv.requests) == 2
    offline = cli("deps", str(root), "--offline", "--osv-url", osv.url, "-f", "json")
    assert offline.returncode == 0 and len(osv.requests) == 2


def test_deps_honours_the_environment_variable(tmp_path: Path, osv: FakeOsv) -> None:
    root, _ = model_dir(tmp_path, "torch==2.1.0\n")
    got = cli("deps", str(root), "-f", "json", env={"SUPPLYCHAIN_OSV_URL": osv.url})
    assert got.returncode == 1, got.stderr
    assert len(osv.requests) == 1


def test_deps_outage_fails_closed_and_nothing_found_is_an_error(
    tmp_path: Path, osv: FakeOsv
) -> None:
    root, _ = model_dir(tmp_path, "torch==2.1.0\n")
    osv.mode = "malformed"
    got = cli("deps", str(root), "--osv-url", osv.url, "-f", "json")
    assert got.returncode == 1
    assert [f["rule"] for f in json.loads(got.stdout)["findings"]] == ["DEP022"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    nothing = cli("deps", str(empty), "--osv-url", osv.url)
    assert nothing.returncode == 2 and "no requirement file" in nothing.stderr
    bad = cli("deps", str(root), "--osv-url", "ftp://mirror/v1/query")
    assert bad.returncode == 2 and "OSV URL" in bad.stderr


def test_nothing_from_the_tree_ever_runs(tmp_path: Path, osv: FakeOsv) -> None:
    root, marker = model_dir(tmp_path, "-e ./pkg\n./pkg\ntorch==2.1.0\n")
    scan = cli("scan", str(root), "--deps-online", "--osv-url", osv.url, "-f", "json")
    deps = cli("deps", str(root), "--osv-url", osv.url, "-f", "json")
    assert not marker.exists()
    for got in (scan, deps):
        assert got.returncode == 1, got.stderr
        findings = json.loads(got.stdout)["findings"]
        local = [f for f in findings if f["rule"] == "DEP009"]
        assert len(local) == 2 and all(f["severity"] == "high" for f in local)
    assert not marker.exists()
