"""The fuzz harnesses stay runnable: each imports without atheris and passes its committed seeds.

A harness that raises on a seed would make every fuzzing run stop at once; one that drifts from
the scanners' entry points would fuzz nothing. Replaying seeds needs no fuzzing engine.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fuzz import build_seeds
from fuzz._common import KNOWN, signature

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
SEEDS = FUZZ / "seeds"
SAMPLES = sorted(p for p in (ROOT / "samples").rglob("*") if p.is_file())


def _harness(name: str) -> ModuleType:
    return importlib.import_module(f"fuzz.fuzz_{name}")


def _seed_files(name: str) -> list[Path]:
    dirs = sorted(SEEDS.iterdir()) if name == "engine" else [SEEDS / name]
    return sorted(p for d in dirs for p in d.iterdir() if p.is_file())


def test_every_harness_has_a_module_and_committed_seeds() -> None:
    for name in build_seeds.HARNESSES:
        assert callable(_harness(name).TestOneInput)
        assert _seed_files(name), f"no committed seeds for {name}"


def test_committed_seeds_stay_small() -> None:
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_harnesses_import_without_a_fuzzing_engine() -> None:
    names = ", ".join(f"fuzz.fuzz_{n}" for n in build_seeds.HARNESSES)
    code = (
        "import sys\n"
        "sys.modules['atheris'] = None  # importing it now raises ImportError\n"
        f"import {names}\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_fuzzer_start_drops_every_uninstrumented_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run as ``python -m fuzz.fuzz_x``, the harness, fuzz._common and the product are already
    # imported; a stale fuzz._common would hold exception classes the re-imported scanners
    # never raise, and every ArtifactError would look like a crash.
    import fuzz.fuzz_npy  # noqa: F401
    from fuzz.__main__ import INSTRUMENTED, _forget

    modules = dict(sys.modules)
    monkeypatch.setattr(sys, "modules", modules)
    _forget(INSTRUMENTED)
    left = {n for n in modules if n.split(".")[0] in {"scanners", "supplychain", "fuzz"}}
    assert left <= {"fuzz", "fuzz.__main__"}


def test_replay_tests_do_not_honour_the_known_issue_list() -> None:
    assert KNOWN == frozenset()


@pytest.mark.parametrize("name", build_seeds.HARNESSES)
def test_harness_passes_its_committed_seeds_and_the_samples(name: str) -> None:
    harness = _harness(name)
    for path in [*_seed_files(name), *SAMPLES]:
        try:
            harness.TestOneInput(path.read_bytes())
        except Exception as exc:
            pytest.fail(f"{name} on {path.relative_to(ROOT)}: {signature(exc)}: {exc}")


def test_committed_seeds_match_the_builder(tmp_path: Path) -> None:
    build_seeds.write(tmp_path, with_samples=False)
    built = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(SEEDS) for p in SEEDS.rglob("*") if p.is_file()}
    assert built == committed
