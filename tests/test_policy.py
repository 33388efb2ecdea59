"""Policy: loading, ignores with reasons and expiry, fail-on, strict, fail closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from supplychain.core.errors import ConfigError
from supplychain.core.model import (
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


def test_ignore_rule_ids_are_case_insensitive(today: dt.date, tmp_path: Path) -> None:
    path = tmp_path / "supplychain.toml"
    path.write_text('[[ignore]]\nrule = " pkl001 "\nreason = "reviewed"\n')
    policy = load_policy(path)
    assert policy.ignores[0].rule == "PKL001"
    out = apply(_report(_f("PKL001", Severity.CRITICAL)), policy, today)
    assert out.verdict is not None and out.verdict.passed
    assert out.findings[0].suppressed == "reviewed"


@pytest.mark.parametrize("rule", ["PKL999", "pk1001", "GEN04", ""])
def test_ignore_naming_an_unknown_rule_is_rejected(tmp_path: Path, rule: str) -> None:
    from scanners import BUILTIN_SCANNERS
    from supplychain.engine import rules_for
    from supplychain.policy import check_rule_ids

    path = tmp_path / "supplychain.toml"
    path.write_text(f'[[ignore]]\nrule = "{rule}"\nreason = "typo"\n')
    with pytest.raises(ConfigError, match="rule"):
        check_rule_ids(load_policy(path), (r.id for r in rules_for(BUILTIN_SCANNERS)))


def _accepted_policy_keys() -> frozenset[str]:
    from dataclasses import fields

    from supplychain.core.limits import Limits
    from supplychain.policy import _IGNORE_KEYS, _TOP_KEYS

    return _TOP_KEYS | _IGNORE_KEYS | {f.name for f in fields(Limits)}


def test_every_policy_key_a_rule_text_names_is_accepted(tmp_path: Path) -> None:
    """Remediation advice must work when followed: a named policy key must parse.

    A snake_case word in a sentence about the policy or a limit, or any ``max_``/``min_`` word,
    is taken as a policy key; each one must load from a real policy file.
    """
    import re

    from scanners import BUILTIN_SCANNERS
    from supplychain.engine import rules_for

    accepted = _accepted_policy_keys()
    named: dict[str, set[str]] = {}
    for rule in rules_for(BUILTIN_SCANNERS):
        for text in (rule.remediation, rule.explanation):
            for sentence in re.split(r"(?<=[.;])\s+", text):
                policyish = re.search(r"\bpolic|\blimit|\[limits\]|\braise\b", sentence, re.I)
                for word in re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", sentence):
                    if policyish or word.startswith(("max_", "min_")):
                        named.setdefault(word, set()).add(rule.id)
    assert "max_line_bytes" in named  # the scan above does see policy keys in rule texts
    unknown = {w: sorted(ids) for w, ids in named.items() if w not in accepted}
    assert not unknown, f"rule texts name policy keys the policy rejects: {unknown}"
    # …and each one really loads (a list-valued top key, an int-valued limit).
    from supplychain.core.limits import Limits

    limit_names = set(Limits.__dataclass_fields__)
    for word in named:
        path = tmp_path / f"{word}.toml"
        if word in limit_names:
            path.write_text(f"[limits]\n{word} = {getattr(Limits(), word) + 1}\n")
        elif word.endswith("imports"):
            path.write_text(f'{word} = ["mylab.models.TinyNet"]\n')
        else:
            continue
        load_policy(path)


def test_extra_allowed_imports_is_an_alias_of_allow_imports(tmp_path: Path) -> None:
    path = tmp_path / "supplychain.toml"
    path.write_text('allow_imports = ["a.b"]\nextra_allowed_imports = ["c.*"]\n')
    assert load_policy(path).allow_imports == frozenset({"a.b", "c.*"})


def test_suppression_keeps_evidence_and_fingerprint_unchanged(today: dt.date) -> None:
    finding = Finding(
        rule=RuleId("PKL001"),
        severity=Severity.CRITICAL,
        confidence=Confidence.HIGH,
        message="m \x1b[31m",
        location=Location(path="m/a.pkl"),
        evidence="os.system('\x1b]0;x\x07')",
    )
    policy = Policy(ignores=(Ignore(reason="ok", rule="PKL001"),))
    (out,) = apply(_report(finding), policy, today).findings
    assert out.suppressed == "ok"
    assert (out.evidence, out.message, out.fingerprint) == (
        finding.evidence,
        finding.message,
        finding.fingerprint,
    )


def test_a_report_that_analysed_nothing_never_passes(today: dt.date) -> None:
    empty = Report(tool_version="0", target=("t",), started_at="x", seconds=0.0)
    verdict = apply(empty, Policy(), today).verdict
    assert verdict is not None and not verdict.passed
    assert any("nothing was analysed" in r for r in verdict.reasons)
