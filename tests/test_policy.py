"""Policy: loading, ignores with reasons and expiry, fail-on, strict, fail closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from supplychain.errors import ConfigError
from supplychain.model import (
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Finding,
    Location,
    Report,
    RuleId,
    ScanResult,
    Severity,
    Status,
)
from supplychain.policy import Ignore, Policy, apply, find_policy, load_policy


def _report(*findings: Finding, results: tuple[ScanResult, ...] = ()) -> Report:
    return Report(
        tool_version="0",
        target=("t",),
        started_at="2026-01-01T00:00:00+00:00",
        seconds=0.0,
        files=(ArtifactRecord("m/a.pkl", ArtifactKind.PICKLE, 1, "0" * 64),),
        findings=findings,
        results=(ScanResult("pickle", "m/a.pkl", Status.SCANNED), *results),
    )


def _f(rule: str, sev: Severity, path: str = "m/a.pkl") -> Finding:
    return Finding(
        rule=RuleId(rule),
        severity=sev,
        confidence=Confidence.HIGH,
        message="x",
        location=Location(path=path),
    )


def test_fail_on_threshold(today: dt.date) -> None:
    report = _report(_f("PKL002", Severity.MEDIUM))
    assert apply(report, Policy(), today).verdict.passed  # type: ignore[union-attr]
    failed = apply(report, Policy(fail_on=Severity.MEDIUM), today).verdict
    assert failed is not None and not failed.passed and failed.violations == 1


def test_ignore_suppresses_but_keeps_the_finding_with_reason(today: dt.date) -> None:
    report = _report(_f("PKL001", Severity.CRITICAL), _f("PKL001", Severity.CRITICAL, "other.pkl"))
    policy = Policy(ignores=(Ignore(reason="vendor model, reviewed", rule="PKL001", path="m/*"),))
    out = apply(report, policy, today)
    assert len(out.findings) == 2
    by_path = {f.location.path: f for f in out.findings}
    assert by_path["m/a.pkl"].suppressed == "vendor model, reviewed"
    assert by_path["other.pkl"].suppressed is None
    assert out.verdict is not None and not out.verdict.passed


def test_expired_ignore_stops_applying_and_fails_the_run(today: dt.date) -> None:
    report = _report(_f("PKL002", Severity.MEDIUM))
    policy = Policy(
        ignores=(Ignore(reason="temp", rule="PKL002", expires=today - dt.timedelta(days=1)),)
    )
    out = apply(report, policy, today)
    assert out.findings[0].suppressed is None
    assert out.verdict is not None and not out.verdict.passed
    assert any("expired" in r for r in out.verdict.reasons)
    still_valid = Policy(ignores=(Ignore(reason="temp", rule="PKL002", expires=today),))
    assert apply(report, still_valid, today).verdict.passed  # type: ignore[union-attr]


def test_failed_outcome_fails_closed(today: dt.date) -> None:
    report = _report(results=(ScanResult("pickle", "m/a.pkl", Status.FAILED, "bug"),))
    verdict = apply(report, Policy(), today).verdict
    assert verdict is not None and not verdict.passed and verdict.errors == 1


def test_strict_fails_on_unexpected_skips_only(today: dt.date) -> None:
    results = (
        ScanResult("engine", "blob", Status.SKIPPED, "unrecognised format"),
        ScanResult("engine", "README.md", Status.SKIPPED, "plain text", expected=True),
    )
    report = _report(results=results)
    assert apply(report, Policy(), today).verdict.passed  # type: ignore[union-attr]
    strict = apply(report, Policy(strict=True), today).verdict
    assert strict is not None and not strict.passed and strict.errors == 1


def test_load_supplychain_toml(tmp_path: Path) -> None:
    path = tmp_path / "supplychain.toml"
    path.write_text(
        'fail_on = "medium"\nstrict = true\nallow_imports = ["mylib.Model"]\n'
        "[limits]\nmax_nesting = 2\n"
        '[[ignore]]\nrule = "PKL002"\npath = "vendor/**"\nreason = "ok"\nexpires = 2027-01-01\n'
    )
    policy = load_policy(path)
    assert policy.fail_on is Severity.MEDIUM and policy.strict
    assert policy.allow_imports == frozenset({"mylib.Model"})
    assert policy.limits.max_nesting == 2
    assert policy.ignores[0].expires == dt.date(2027, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fail_on = 'severe'", "unknown severity"),
        ("failon = 'high'", "unknown key"),
        ("[[ignore]]\nrule = 'PKL001'", "needs a reason"),
        ("[[ignore]]\nreason = 'x'", "needs a rule, a path or a fingerprint"),
        ("[[ignore]]\nrule='X'\nreason='x'\nexpires='soon'", "date"),
        ("[limits]\nmax_nesting = 0", "positive"),
        ("[limits]\nmax_things = 3", "unknown limit"),
        ("this is not toml", "invalid TOML"),
    ],
)
def test_broken_policy_is_a_clear_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "supplychain.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_policy_found_by_walking_up_and_in_pyproject(tmp_path: Path) -> None:
    model = tmp_path / "repo" / "models" / "m"
    model.mkdir(parents=True)
    assert find_policy([model]) is None or not str(find_policy([model])).startswith(str(tmp_path))
    (tmp_path / "repo" / "pyproject.toml").write_text(
        "[project]\nname='x'\n[tool.supplychain]\nfail_on='low'\n"
    )
    found = find_policy([model])
    assert found == tmp_path / "repo" / "pyproject.toml"
    assert load_policy(found).fail_on is Severity.LOW
    (tmp_path / "repo" / "models" / "supplychain.toml").write_text("fail_on='critical'\n")
    assert find_policy([model]) == tmp_path / "repo" / "models" / "supplychain.toml"
