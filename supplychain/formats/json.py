"""Versioned, deterministic JSON report (documented in ``docs/report-schema.md``)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar, TextIO

from supplychain.core.model import Fact, Finding, Report, Severity

SCHEMA_VERSION = "1.0"


def finding_to_dict(finding: Finding, report: Report) -> dict[str, Any]:
    """One finding as a JSON object (shared by the JSON format and the future server)."""
    loc = finding.location
    rule = report.rule(finding.rule)
    return {
        "rule": finding.rule,
        "title": rule.title if rule else finding.rule,
        "severity": finding.severity.label,
        "confidence": finding.confidence.label,
        "message": finding.message,
        "file": loc.path,
        "location": {
            "path": loc.path,
            "member": list(loc.member),
            "offset": loc.offset,
            "rows": list(loc.rows),
        },
        "evidence": finding.evidence,
        "group": finding.group,
        "fingerprint": finding.fingerprint,
        "suppressed": finding.suppressed is not None,
        "suppression_reason": finding.suppressed,
    }


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    """One fact as a JSON object (tuples become arrays; text is already escaped)."""
    value = list(fact.value) if isinstance(fact.value, tuple) else fact.value
    return {
        "key": fact.key,
        "value": value,
        "file": fact.location.path,
        "member": list(fact.location.member),
        "scanner": fact.scanner,
    }


def summarize(report: Report) -> dict[str, Any]:
    """Counts by severity, rule and outcome; unsuppressed findings only in ``by_severity``."""
    active = [f for f in report.findings if f.suppressed is None]
    by_sev = Counter(f.severity.label for f in active)
    by_rule = Counter(f.rule for f in active)
    return {
        "files": len({r.path for r in report.files if not r.member}),
        "artifacts": len(report.files),
        "findings": len(active),
        "suppressed": len(report.findings) - len(active),
        "by_severity": {s.label: by_sev.get(s.label, 0) for s in sorted(Severity, reverse=True)},
        "by_rule": dict(sorted(by_rule.items())),
        "scanned": sum(1 for r in report.results if r.status.value == "scanned"),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole report as plain JSON-ready data, in a fixed key and item order."""
    verdict = report.verdict
    by_scanner: dict[str, float] = {}
    for r in report.results:
        by_scanner[r.scanner] = by_scanner.get(r.scanner, 0.0) + r.seconds
    used = sorted({f.rule for f in report.findings})
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "supplychain", "version": report.tool_version},
        "command": report.command,
        "target": list(report.target),
        "started_at": report.started_at,
        "verdict": "pass" if verdict is not None and verdict.passed else "fail",
        "verdict_reasons": list(verdict.reasons) if verdict else ["policy not evaluated"],
        "fail_on": verdict.fail_on.label if verdict else None,
        "summary": summarize(report),
        "files": [
            {
                "path": r.path,
                "member": list(r.member),
                "kind": r.kind.value,
                "size": r.size,
                "sha256": r.sha256,
            }
            for r in report.files
        ],
        "findings": [finding_to_dict(f, report) for f in report.findings],
        "outcomes": [
            {
                "scanner": r.scanner,
                "file": r.path,
                "member": list(r.member),
                "status": r.status.value,
                "reason": r.reason,
                "seconds": round(r.seconds, 4),
            }
            for r in report.results
        ],
        "rules": [
            {
                "id": rule.id,
                "title": rule.title,
                "severity": rule.severity.label,
                "cwe": rule.cwe,
                "owasp_llm": list(rule.owasp_llm),
                "atlas": list(rule.atlas),
            }
            for rule in report.rules
            if rule.id in used
        ],
        "extra": dict(report.extra),
        "facts": [fact_to_dict(f) for f in report.facts],
        "settings_fingerprint": report.settings_fingerprint,
        "timings": {
            "total_seconds": report.seconds,
            "by_scanner": {k: round(v, 4) for k, v in sorted(by_scanner.items())},
            "cache_hits": report.cache_hits,
        },
    }


class JsonFormat:
    """See ``Format``; machine-readable and diff-friendly."""

    name: ClassVar[str] = "json"

    def render(self, report: Report, out: TextIO) -> None:
        """See ``Format.render``."""
        json.dump(report_to_dict(report), out, indent=2, ensure_ascii=False)
        out.write("\n")
