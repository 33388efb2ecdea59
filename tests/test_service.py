"""The service layer (settings in, judged report out) and the report-level pass after the scans."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest

from scanners.base import Artifact, ScanContext
from scanners.dataset.common import DatasetOptions
from supplychain import service
from supplychain.checks import BUILTIN_REPORT_CHECKS, ReportView, ShardIndexCheck
from supplychain.core.errors import ConfigError
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity, Status
from supplychain.core.settings import Settings
from supplychain.engine import ScanOptions, scan_paths
from supplychain.policy import Ignore, Policy
from tests.fakes import TST001, MarkerScanner


def _safetensors() -> bytes:
    raw = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(8)


def _index(
    directory: Path, shards: dict[str, str], name: str = "model.safetensors.index.json"
) -> None:
    (directory / name).write_text(json.dumps({"metadata": {}, "weight_map": shards}))


def _rules(report: object) -> list[str]:
    return sorted(f.rule for f in report.findings)  # type: ignore[attr-defined]


# -- service -------------------------------------------------------------------------------------


def test_run_scan_returns_a_judged_report_with_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors").write_bytes(_safetensors())
    report = service.run_scan([tmp_path])
    assert report.verdict is not None and report.verdict.passed
    assert report.settings_fingerprint == service.settings_from_policy(Policy()).fingerprint()


def test_policy_limits_and_imports_reach_the_scanners(tmp_path: Path) -> None:
    """No per-feature threading: the policy becomes Settings, the engine hands scanners them."""
    seen: list[object] = []

    class Probe:
        name: ClassVar[str] = "probe"
        kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.TEXT})
        rules: ClassVar[tuple[Rule, ...]] = ()

        def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
            seen.append((ctx.limits.max_nesting, ctx.extra_allowed_imports))
            seen.append(ctx.settings(DatasetOptions))
            return iter(())

    (tmp_path / "a.txt").write_text("hello")
    policy = Policy(allow_imports=frozenset({"lab.*"}))
    policy = replace(policy, limits=replace(policy.limits, max_nesting=2))
    section = DatasetOptions(text_field="body")
    settings = service.settings_from_policy(policy, scanners=(Probe,), sections=(section,))
    service.run([tmp_path], settings, policy)
    assert seen == [(2, frozenset({"lab.*"})), section]


def test_context_settings_falls_back_to_defaults_and_to_the_dataset_field() -> None:
    assert ScanContext().settings(DatasetOptions) == DatasetOptions()
    legacy = ScanContext(dataset=DatasetOptions(id_field="id"))
    assert legacy.settings(DatasetOptions).id_field == "id"


def test_data_settings_reject_unknown_checks() -> None:
    with pytest.raises(ConfigError, match="unknown check"):
        service.data_settings(Policy(), checks=frozenset({"no-such-check"}))


def test_jobs_below_one_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--jobs"):
        service.run_scan([tmp_path], jobs=0)


def test_unknown_rule_in_an_ignore_is_rejected_by_the_service(tmp_path: Path) -> None:
    policy = Policy(ignores=(Ignore(reason="x", rule="ZZZ999"),))
    with pytest.raises(ConfigError, match="unknown rule"):
        service.run_scan([tmp_path], policy)


def test_report_check_rules_are_in_the_catalogue() -> None:
    ids = {r.id for r in service.all_rules()}
    assert {"PRV001", "PRV002", "PRV003", "PRV004", "GEN001"} <= ids


def test_cli_is_a_shell_over_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from supplychain.cli import main

    (tmp_path / "m.safetensors").write_bytes(_safetensors())
    assert main(["scan", "-q", "-f", "json", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings_fingerprint"] == service.settings_from_policy(Policy()).fingerprint()


# -- report-level pass -----------------------------------------------------------------------------


def test_shard_index_with_every_shard_is_clean(tmp_path: Path) -> None:
    for i in (1, 2):
        (tmp_path / f"model-0000{i}-of-00002.safetensors").write_bytes(_safetensors())
    _index(
        tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    )
    report = service.run_scan([tmp_path])
    assert _rules(report) == [] and report.verdict is not None and report.verdict.passed


@pytest.mark.parametrize(
    "shard", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "C:\\w.bin"]
)
def test_index_naming_a_file_outside_the_directory_is_prv001(tmp_path: Path, shard: str) -> None:
    (tmp_path / "model.safetensors").write_bytes(_safetensors())
    _index(tmp_path, {"a": "model.safetensors", "b": shard})
    report = service.run_scan([tmp_path])
    assert "PRV001" in _rules(report)
    assert report.verdict is not None and not report.verdict.passed


def test_missing_shard_is_prv002_and_high_for_a_pickle_shard(tmp_path: Path) -> None:
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(_safetensors())
    _index(
        tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    )
    report = scan_paths([tmp_path])
    missing = [f for f in report.findings if f.rule == "PRV002"]
    assert len(missing) == 1 and missing[0].severity is Severity.MEDIUM
    assert "model-00002-of-00002.safetensors" in missing[0].message
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _index(bin_dir, {"a": "pytorch_model-00001.bin"}, name="pytorch_model.bin.index.json")
    severities = {f.severity for f in scan_paths([bin_dir]).findings if f.rule == "PRV002"}
    assert severities == {Severity.HIGH}


def test_extra_weights_beside_the_index_are_prv003(tmp_path: Path) -> None:
    (tmp_path / "model-00001-of-00001.safetensors").write_bytes(_safetensors())
    (tmp_path / "smuggled.safetensors").write_bytes(_safetensors())
    _index(tmp_path, {"a": "model-00001-of-00001.safetensors"})
    extra = [f for f in scan_paths([tmp_path]).findings if f.rule == "PRV003"]
    assert len(extra) == 1 and "smuggled.safetensors" in extra[0].message
    assert extra[0].severity is Severity.LOW


def test_index_named_alone_on_the_command_line_does_not_claim_missing_shards(
    tmp_path: Path,
) -> None:
    _index(tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "../x.safetensors"})
    rules = _rules(scan_paths([tmp_path / "model.safetensors.index.json"]))
    assert rules == ["PRV001"]  # an escape is wrong wherever the index is; absence is not known


def test_index_that_is_not_a_weight_map_is_prv004(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": [1, 2]}')
    (tmp_path / "model.safetensors").write_bytes(_safetensors())
    assert "PRV004" in _rules(scan_paths([tmp_path]))


def test_index_changed_after_the_scan_is_not_judged_from_new_bytes(tmp_path: Path) -> None:
    _index(tmp_path, {"a": "model.safetensors"})
    (tmp_path / "model.safetensors").write_bytes(_safetensors())
    report = scan_paths([tmp_path])
    record = next(r for r in report.files if r.path.endswith("index.json"))
    view = ReportView(files=report.files, opened={record.path: tmp_path / record.path})
    assert view.read(record, 1 << 20) is not None
    _index(tmp_path, {"a": "../elsewhere.safetensors"})
    assert view.read(record, 1 << 20) is None
    assert [f.rule for f in ShardIndexCheck().check(view)] == ["PRV004"]


def test_hf_cache_snapshot_names_are_used_for_the_index(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--m"
    blobs = repo / "blobs"
    snap = repo / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    (blobs / "1").write_bytes(_safetensors())
    (blobs / "2").write_text(json.dumps({"weight_map": {"a": "model.safetensors"}}))
    os.symlink("../../blobs/1", snap / "model.safetensors")
    os.symlink("../../blobs/2", snap / "model.safetensors.index.json")
    report = scan_paths([tmp_path])
    assert not [f for f in report.findings if f.rule.startswith("PRV")]


def test_a_report_check_that_raises_fails_closed(tmp_path: Path) -> None:
    class Broken:
        name: ClassVar[str] = "broken"
        rules: ClassVar[tuple[Rule, ...]] = ()

        def check(self, view: ReportView) -> Iterator[Finding]:
            raise RuntimeError("bug")

    (tmp_path / "a.txt").write_text("x")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,), report_checks=(Broken,)))
    failed = [r for r in report.results if r.status is Status.FAILED]
    assert [r.scanner for r in failed] == ["check:broken"]


def test_report_checks_see_every_record_and_fact(tmp_path: Path) -> None:
    seen: list[ReportView] = []

    class Spy:
        name: ClassVar[str] = "spy"
        rules: ClassVar[tuple[Rule, ...]] = (TST001,)

        def check(self, view: ReportView) -> Iterator[Finding]:
            seen.append(view)
            return iter(())

    (tmp_path / "m.safetensors").write_bytes(_safetensors())
    (tmp_path / "b.txt").write_text("x")
    scan_paths([tmp_path], ScanOptions(report_checks=(Spy,)))
    (view,) = seen
    assert {r.path for r in view.files} == {"m.safetensors", "b.txt"}
    assert view.facts_for("m.safetensors", "tensor.count")[0].value == 1


def test_builtin_report_checks_is_an_explicit_tuple() -> None:
    from supplychain.deps.audit import DependencyAudit

    assert BUILTIN_REPORT_CHECKS == (ShardIndexCheck, DependencyAudit)
    assert isinstance(Settings().fingerprint(), str)


def test_format_registry_names_match_their_classes() -> None:
    from supplychain.formats import FORMATS

    assert sorted(FORMATS) == ["html", "json", "sarif", "table"]
    for name in FORMATS:
        assert FORMATS[name].name == name
