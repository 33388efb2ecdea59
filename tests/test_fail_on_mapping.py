"""--fail-on / fail_on select by OWASP LLM Top 10 or MITRE ATLAS id besides a severity."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from supplychain.cli import main
from supplychain.core.errors import ConfigError
from supplychain.core.model import (
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Finding,
    Location,
    Report,
    Rule,
    RuleId,
    ScanResult,
    Severity,
    Status,
)
from supplychain.policy import (
    FailOn,
    Ignore,
    Policy,
    apply,
    parse_fail_on,
    parse_policy,
    rule_selectors,
    with_fail_on,
)

TODAY = dt.date(2026, 1, 1)
LEAK = Rule(
    RuleId("SEC001"), "t", Severity.HIGH, "e", "r", owasp_llm=("LLM02",), atlas=("AML.T0055",)
)
POISON = Rule(
    RuleId("DAT001"), "t", Severity.MEDIUM, "e", "r", owasp_llm=("LLM04",), atlas=("AML.T0020",)
)


def _finding(rule: Rule, severity: Severity) -> Finding:
    return Finding(
        rule=rule.id,
        severity=severity,
        confidence=Confidence.HIGH,
        message="m",
        location=Location(path=f"{rule.id}-{severity.label}"),
    )


def _report(*findings: Finding) -> Report:
    return Report(
        tool_version="t",
        target=("x",),
        started_at="2026-01-01T00:00:00Z",
        seconds=0.0,
        files=(ArtifactRecord(path="x", kind=ArtifactKind.TEXT, size=1, sha256="0" * 64),),
        findings=findings,
        results=(ScanResult(scanner="s", path="x", status=Status.SCANNED),),
        rules=(LEAK, POISON),
    )


def test_parse_forms() -> None:
    assert parse_fail_on("high") == FailOn(Severity.HIGH, frozenset())
    assert parse_fail_on("owasp:llm02") == FailOn(None, frozenset({"owasp:LLM02"}))
    both = parse_fail_on("medium, atlas:aml.t0020")
    assert both == FailOn(Severity.MEDIUM, frozenset({"atlas:AML.T0020"}))
    assert parse_fail_on(["low", "owasp:LLM03"]).ids == {"owasp:LLM03"}


@pytest.mark.parametrize(
    "bad", ["owasp:LLM11", "owasp:LLM2", "atlas:T0020", "mitre:AML.T0020", "", "high,low"]
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_fail_on(bad)


def test_rule_selectors() -> None:
    assert rule_selectors(LEAK) == {"owasp:LLM02", "atlas:AML.T0055"}


def test_selector_fails_on_mapped_finding_below_threshold() -> None:
    report = _report(_finding(LEAK, Severity.LOW), _finding(POISON, Severity.MEDIUM))
    assert apply(report, Policy(), TODAY).verdict.passed  # type: ignore[union-attr]
    verdict = apply(report, Policy(fail_on_ids=frozenset({"owasp:LLM02"})), TODAY).verdict
    assert verdict is not None and not verdict.passed
    assert verdict.violations == 1
    assert any("mapped to owasp:LLM02" in r for r in verdict.reasons)
    atlas = apply(report, Policy(fail_on_ids=frozenset({"atlas:AML.T0020"})), TODAY).verdict
    assert atlas is not None and not atlas.passed


def test_selector_ignores_info_suppressed_and_unmapped() -> None:
    report = _report(_finding(LEAK, Severity.INFO), _finding(POISON, Severity.MEDIUM))
    assert apply(report, Policy(fail_on_ids=frozenset({"owasp:LLM02"})), TODAY).verdict.passed  # type: ignore[union-attr]
    low = _report(_finding(LEAK, Severity.LOW))
    waived = Policy(
        fail_on_ids=frozenset({"owasp:LLM02"}), ignores=(Ignore(reason="known", rule="SEC001"),)
    )
    assert apply(low, waived, TODAY).verdict.passed  # type: ignore[union-attr]


def test_selector_never_weakens_severity_gate() -> None:
    report = _report(_finding(POISON, Severity.HIGH))
    verdict = apply(report, Policy(fail_on_ids=frozenset({"owasp:LLM02"})), TODAY).verdict
    assert verdict is not None and not verdict.passed  # HIGH still fails the default gate
    assert verdict.violations == 1  # counted once, not twice


def test_with_fail_on_adds_selectors_and_replaces_severity() -> None:
    base = Policy(fail_on=Severity.MEDIUM, fail_on_ids=frozenset({"owasp:LLM04"}))
    merged = with_fail_on(base, parse_fail_on("owasp:LLM02"))
    assert merged.fail_on is Severity.MEDIUM
    assert merged.fail_on_ids == {"owasp:LLM02", "owasp:LLM04"}
    assert with_fail_on(base, parse_fail_on("low")).fail_on is Severity.LOW


def test_policy_file_accepts_selectors() -> None:
    policy = parse_policy({"fail_on": ["high", "owasp:LLM02"]}, "p")
    assert policy.fail_on is Severity.HIGH and policy.fail_on_ids == {"owasp:LLM02"}
    assert parse_policy({"fail_on": "atlas:AML.T0020"}, "p").fail_on is Severity.HIGH
    with pytest.raises(ConfigError, match="unknown fail-on selector"):
        parse_policy({"fail_on": "owasp:LLM42"}, "p")
    with pytest.raises(ConfigError):
        parse_policy({"fail_on": 3}, "p")


def test_cli_fail_on_owasp_selector(tmp_path: Path) -> None:
    rows = [{"text": f"write to user{i}@gmail.com"} for i in range(3)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["data", str(data), "-q", "--checks", "sensitive"]
    assert main(args) == 0  # LOW e-mail findings pass the default gate
    assert main([*args, "--fail-on", "owasp:LLM02"]) == 1
    assert main([*args, "--fail-on", "atlas:AML.T0057"]) == 1
    assert main([*args, "--fail-on", "owasp:LLM03"]) == 0
    assert main([*args, "--fail-on", "owasp:LLM99"]) == 2
