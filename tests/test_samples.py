"""Samples: committed files match the generator, and each scans to exactly its expected rules."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from supplychain.cli import main
from supplychain.core.model import Severity
from supplychain.engine import ScanOptions, scan_paths

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED: dict[str, list[str]] = tomllib.loads((SAMPLES / "expected.toml").read_text())["files"]


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # NOTE: importing the generator would write samples/__pycache__/ (Python's default); that
    # directory is not a sample, and a scan of samples/ must not meet it either.
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def _is_sample(path: Path) -> bool:
    """A committed sample: not the generator, its docs, or interpreter/tool caches."""
    rel = path.relative_to(SAMPLES)
    return (
        path.is_file()
        and len(rel.parts) > 1
        and not any(part == "__pycache__" or part.startswith(".") for part in rel.parts)
    )


def test_committed_samples_match_the_generator() -> None:
    built: dict[str, bytes] = _generator().build()  # type: ignore[attr-defined]
    for rel, data in built.items():
        assert (SAMPLES / rel).read_bytes() == data, f"{rel} is stale: run make_samples.py"
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*") if _is_sample(p)}
    assert on_disk == set(built), "samples/ holds files the generator does not make"
    assert set(EXPECTED) == set(built), "expected.toml must list every sample"


@pytest.fixture(scope="module")
def report() -> object:
    return scan_paths([SAMPLES], ScanOptions(jobs=2))


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_sample_raises_exactly_its_expected_rules(rel: str, report: object) -> None:
    found = {f.rule for f in report.findings if f.location.path == rel}  # type: ignore[attr-defined]
    assert found == set(EXPECTED[rel])


def test_benign_samples_are_clean_and_fully_analysed(report: object) -> None:
    for f in report.findings:  # type: ignore[attr-defined]
        if f.location.path.startswith("benign/"):
            assert f.severity < Severity.MEDIUM, f
    for r in report.results:  # type: ignore[attr-defined]
        if r.path.startswith("benign/"):
            assert r.status.value == "scanned" or r.expected, r


def test_demo_exit_codes(tmp_path: Path) -> None:
    out = str(tmp_path / "report.json")
    assert main(["scan", str(SAMPLES), "-q", "-f", "json", "-o", out]) == 1
    assert main(["scan", str(SAMPLES / "benign"), "-q", "-f", "json", "-o", out]) == 0


def test_python_caches_beside_the_samples_are_not_samples() -> None:
    """Regression: with bytecode writing on (the default), samples/__pycache__/ broke the suite."""
    cache = SAMPLES / "__pycache__" / "make_samples.cpython-311.pyc"
    assert not _is_sample(cache)
    assert not _is_sample(SAMPLES / "malicious" / "__pycache__" / "x.pyc")
    assert not _is_sample(SAMPLES / "make_samples.py")
    assert _is_sample(SAMPLES / "benign" / "config.json")
    existed = (SAMPLES / "__pycache__").exists()
    _generator()
    assert existed or not (SAMPLES / "__pycache__").exists(), "importing the generator wrote .pyc"
