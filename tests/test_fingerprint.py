"""The settings fingerprint: stable across runs and processes, flipped by every input that can
change a per-file verdict, blind to everything that cannot (paths, format, jobs, fail-on)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import supplychain.core.settings as settings_mod
from scanners.dataset.common import DatasetOptions
from supplychain.core.limits import Limits
from supplychain.core.model import Severity
from supplychain.core.settings import Settings
from supplychain.policy import Policy
from supplychain.service import data_settings, scan_report, settings_from_policy
from tests.fakes import MarkerScanner

BASE = Settings()


def test_fingerprint_is_a_stable_hex_digest() -> None:
    fp = BASE.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert Settings().fingerprint() == fp


def test_fingerprint_is_the_same_in_another_process() -> None:
    settings_mod._code_digests.cache_clear()  # sources may have changed since first hashed
    settings_mod._module_digest.cache_clear()
    code = "from supplychain.core.settings import Settings; print(Settings().fingerprint())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == BASE.fingerprint()


@pytest.mark.parametrize(
    "changed",
    [
        Settings(limits=Limits(max_pickle_ops=1000)),
        Settings(limits=Limits(max_nesting=2)),
        Settings(allow_imports=frozenset({"mylab.*"})),
        Settings(scanners=(MarkerScanner,)),
        Settings(sections=(DatasetOptions(text_field="text"),)),
        Settings(sections=(DatasetOptions(checks=frozenset({"duplicates"})),)),
        Settings(command="data"),
    ],
    ids=["limits", "nesting", "allow_imports", "scanners", "dataset_field", "checks", "command"],
)
def test_each_verdict_input_flips_the_fingerprint(changed: Settings) -> None:
    assert changed.fingerprint() != BASE.fingerprint()


def test_order_of_set_valued_inputs_does_not_matter() -> None:
    a = Settings(allow_imports=frozenset({"a.*", "b.c", "d.e"}))
    b = Settings(allow_imports=frozenset({"d.e", "b.c", "a.*"}))
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("component", ["scanners", "allowlist", "denylist", "engine"])
def test_code_digests_flip_it(component: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = settings_mod._code_digests()
    assert set(real) == {"scanners", "allowlist", "denylist", "engine"}
    changed = {**real, component: "0" * 64}
    before = BASE.fingerprint()
    monkeypatch.setattr(settings_mod, "_code_digests", lambda: changed)
    assert BASE.fingerprint() != before


def test_tool_version_flips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = BASE.fingerprint()
    monkeypatch.setattr(settings_mod, "__version__", "999.0")
    assert BASE.fingerprint() != before


def test_allowlist_source_is_part_of_the_scanners_digest(tmp_path: Path) -> None:
    """Editing the allowlist (or derived denylist) file changes the digest the key uses."""
    source = Path(settings_mod.__file__).resolve().parents[2] / "scanners" / "allowlist.py"
    first = settings_mod._digest_files([source])
    copy = tmp_path / "allowlist.py"
    copy.write_bytes(source.read_bytes() + b"\n# one more entry\n")
    assert settings_mod._digest_files([copy]) != first


def test_policy_knobs_that_only_judge_do_not_flip_it() -> None:
    policy = Policy()
    base = settings_from_policy(policy).fingerprint()
    for judged in (
        replace(policy, fail_on=Severity.LOW),
        replace(policy, strict=True),
        replace(policy, source="elsewhere/supplychain.toml"),
    ):
        assert settings_from_policy(judged).fingerprint() == base
    assert settings_from_policy(
        replace(policy, allow_imports=frozenset({"x.y"}))
    ).fingerprint() != (base)
    assert settings_from_policy(replace(policy, limits=Limits(max_nesting=1))).fingerprint() != base


def test_paths_jobs_and_executor_do_not_flip_it(tmp_path: Path) -> None:
    for name in "abcd":
        (tmp_path / f"{name}.txt").write_text(f"MARKER {name}")
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("clean")
    settings = Settings(scanners=(MarkerScanner,))
    fps = {
        scan_report([tmp_path], settings, jobs=1).settings_fingerprint,
        scan_report([other], settings, jobs=2, executor="thread").settings_fingerprint,
        scan_report([tmp_path], settings, jobs=2, executor="process").settings_fingerprint,
    }
    assert fps == {settings.fingerprint()}


def test_data_settings_carry_the_dataset_section() -> None:
    settings = data_settings(Policy(), text_field="prompt")
    section = settings.section(DatasetOptions)
    assert section is not None and section.text_field == "prompt"
    assert settings.fingerprint() != data_settings(Policy(), text_field="other").fingerprint()


def test_settings_reject_two_sections_of_one_type() -> None:
    with pytest.raises(ValueError, match="one settings section per type"):
        Settings(sections=(DatasetOptions(), DatasetOptions(text_field="t")))
