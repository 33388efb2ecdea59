"""The dataset 'sensitive' check: counts per field, sample rows, redacted values, severity."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from scanners.dataset_base import DatasetInfo, DatasetOptions, Record
from scanners.dataset_scan import DATASET_CHECKS, DatasetScanner
from scanners.dataset_sensitive import BULK_ROWS, SensitiveDataCheck
from supplychain.engine import ScanOptions, scan_paths
from supplychain.model import Finding, Report, Severity
from tests.test_secrets import github_token

CARD = "4539 1488 0343 6467"


def _run(path: Path) -> Report:
    options = ScanOptions(
        scanners=(DatasetScanner,),
        dataset=DatasetOptions(checks=frozenset({"sensitive"})),
        command="data",
    )
    return scan_paths([path], options)


def _write(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _by_rule(report: Report) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_registered_once() -> None:
    assert [c for c in DATASET_CHECKS if c is SensitiveDataCheck] == [SensitiveDataCheck]


def test_counts_per_field_sample_rows_redacted(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"text": f"reach me at user{i}@gmail.com", "label": "a"} for i in range(3)
    ]
    rows.append({"text": "nothing here", "label": "b"})
    rows.append({"text": f"card {CARD}", "label": "b", "source": "ann.lee@proton.me"})
    report = _run(_write(tmp_path / "d.jsonl", rows))
    found = _by_rule(report)
    emails = sorted(found["PII001"], key=lambda f: f.message)
    assert [f.message for f in emails] == [
        "1 row(s) (20.0%) with email in field 'source'",
        "3 row(s) (60.0%) with email in field 'text'",
    ]
    assert emails[1].location.rows == (0, 1, 2)
    assert "gmail" not in emails[1].evidence and "sha256:" in emails[1].evidence
    (card,) = found["PII003"]
    assert card.location.rows == (4,)
    assert card.severity is Severity.MEDIUM
    assert CARD.replace(" ", "") not in card.evidence


def test_severity_grows_with_volume(tmp_path: Path) -> None:
    few = [{"text": f"card {CARD}"}] * (BULK_ROWS - 1)
    many = [{"text": f"card {CARD}"}] * BULK_ROWS
    few_sev = _by_rule(_run(_write(tmp_path / "few.jsonl", few)))["PII003"][0].severity
    many_sev = _by_rule(_run(_write(tmp_path / "many.jsonl", many)))["PII003"][0].severity
    assert (few_sev, many_sev) == (Severity.MEDIUM, Severity.HIGH)
    emails = [{"text": f"mail x{i}@gmail.com"} for i in range(BULK_ROWS)]
    sev = _by_rule(_run(_write(tmp_path / "e.jsonl", emails)))["PII001"][0].severity
    assert sev is Severity.MEDIUM  # contact data never fails the default gate alone


def test_secret_in_a_row_is_high_at_any_volume(tmp_path: Path) -> None:
    token = github_token()
    rows = [{"text": f"my token is {token}"}, {"text": "fine"}]
    report = _run(_write(tmp_path / "s.jsonl", rows))
    (finding,) = _by_rule(report)["SEC001"]
    assert finding.severity is Severity.HIGH
    assert token not in finding.evidence and token[4:] not in finding.message


def test_clean_dataset_has_no_findings(tmp_path: Path) -> None:
    rows = [
        {"text": "The example address is someone@example.com"},
        {"text": "Use the test card 4111 1111 1111 1111 in staging"},
        {"text": "Call 415-555-0123 for the demo line"},
        {"text": "server at 192.168.0.10, docs at 192.0.2.1"},
        {"text": "build 2.14.1.3 released; order 4158675309 shipped"},
    ]
    report = _run(_write(tmp_path / "c.jsonl", rows))
    assert [f for f in report.findings if f.rule.startswith(("PII", "SEC"))] == []


def test_phone_fallback_reports_degraded_detection() -> None:
    check = SensitiveDataCheck(phone_backend="regex")
    check.observe(Record(index=0, text="call (415) 867-5309"))
    info = DatasetInfo(
        path="d.jsonl", member=(), text_field="text", label_field=None, id_field=None, rows=1
    )
    rules = sorted(f.rule for f in check.finish(info))
    assert rules == ["PII002", "PII007"]
