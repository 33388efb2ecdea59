"""SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

Binary artifacts have no lines, so every result sits on line 1 of its file and carries the
archive member chain and byte offset in its message and properties. Skipped and failed files
become tool execution notifications, never silence.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, TextIO

from supplychain.model import Finding, Report, Rule, Severity, Status

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/supplychain-dev/supplychain"

# NOTE: GitHub maps security-severity to critical (>= 9.0), high (7.0-8.9), medium (4.0-6.9),
# low (0.1-3.9): https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _level(severity: Severity) -> str:
    if severity >= Severity.HIGH:
        return "error"
    if severity is Severity.MEDIUM:
        return "warning"
    return "note"


def _rule_object(rule: Rule) -> dict[str, Any]:
    help_text = f"{rule.explanation}\n\nRemediation: {rule.remediation}"
    markdown = f"{rule.explanation}\n\n**Remediation:** {rule.remediation}"
    if rule.references:
        markdown += "\n\n" + "\n".join(f"- <{ref}>" for ref in rule.references)
    return {
        "id": rule.id,
        "name": "".join(w.capitalize() for w in rule.title.replace("-", " ").split()),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": help_text, "markdown": markdown},
        "defaultConfiguration": {"level": _level(rule.severity)},
        "properties": {
            "tags": list(rule.tags),
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "precision": "high",
        },
    }


def _result(finding: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    loc = finding.location
    where = "!".join(loc.member)
    text = finding.message
    if where:
        text += f" (in {where})"
    if finding.evidence:
        text += f": {finding.evidence}"
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "level": _level(finding.severity),
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": loc.path, "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": 1},
                },
            }
        ],
        "partialFingerprints": {"supplychainFingerprint/v1": finding.fingerprint},
        "properties": {
            "severity": finding.severity.label,
            "confidence": finding.confidence.label,
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "member": list(loc.member),
            "offset": loc.offset,
            "rows": list(loc.rows[:1000]),
            "evidence": finding.evidence,
        },
    }
    if finding.rule in rule_index:
        result["ruleIndex"] = rule_index[finding.rule]
    if finding.suppressed is not None:
        result["suppressions"] = [{"kind": "external", "justification": finding.suppressed}]
    return result


def report_to_sarif(report: Report) -> dict[str, Any]:
    """Build the SARIF log as plain data."""
    used = {f.rule for f in report.findings}
    rules = [r for r in report.rules if r.id in used]
    rule_index: dict[str, int] = {str(r.id): i for i, r in enumerate(rules)}
    notifications: list[dict[str, Any]] = []
    for r in report.results:
        if r.status is Status.SCANNED or r.expected:
            continue
        where = "!".join((r.path, *r.member))
        notifications.append(
            {
                "level": "error" if r.status is Status.FAILED else "warning",
                "message": {"text": f"{r.status.value}: {where}: {r.reason}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": r.path, "uriBaseId": "%SRCROOT%"}
                        }
                    }
                ],
                "descriptor": {"id": f"{r.scanner}/{r.status.value}"},
            }
        )
    verdict = report.verdict
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "supplychain",
                        "version": report.tool_version,
                        "semanticVersion": report.tool_version,
                        "informationUri": INFO_URI,
                        "rules": [_rule_object(r) for r in rules],
                    }
                },
                "automationDetails": {"id": f"supplychain/{report.command}/"},
                "invocations": [
                    {
                        "executionSuccessful": not report.failed,
                        "startTimeUtc": report.started_at,
                        "toolExecutionNotifications": notifications,
                        "properties": {
                            "verdict": "pass" if verdict and verdict.passed else "fail",
                            "verdictReasons": list(verdict.reasons) if verdict else [],
                        },
                    }
                ],
                "results": [_result(f, rule_index) for f in report.findings],
            }
        ],
    }


class SarifFormat:
    """See ``Format``; SARIF 2.1.0 as accepted by GitHub code scanning."""

    name: ClassVar[str] = "sarif"

    def render(self, report: Report, out: TextIO) -> None:
        """See ``Format.render``."""
        json.dump(report_to_sarif(report), out, indent=2, ensure_ascii=False)
        out.write("\n")
