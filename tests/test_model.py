"""The report model: ordering, escaping, fingerprints."""

from __future__ import annotations

import pytest

from supplychain.core.limits import Limits
from supplychain.core.model import (
    Confidence,
    Finding,
    Location,
    RuleId,
    Severity,
    escape_evidence,
)


def _finding(**kw: object) -> Finding:
    base: dict[str, object] = {
        "rule": RuleId("TST001"),
        "severity": Severity.HIGH,
        "confidence": Confidence.HIGH,
        "message": "m",
        "location": Location(path="a/b.pt", member=("archive/data.pkl",), offset=7),
        "evidence": "os.system('x')",
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_severity_is_ordered_and_parses() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse(" High ") is Severity.HIGH
    with pytest.raises(ValueError, match="choose from"):
        Severity.parse("severe")


def test_evidence_escapes_terminal_and_bidi_controls_and_truncates() -> None:
    text = "a\x1b[31mred\u202eevil\U000e0041" + "x" * 1000
    out = escape_evidence(text, limit=60)
    assert "\x1b" not in out and "\u202e" not in out and "\U000e0041" not in out
    assert "\\x1b" in out and "\\u202e" in out and "\\U000e0041" in out
    assert out.endswith("…") and len(out) <= 61


def test_finding_evidence_is_escaped_on_construction() -> None:
    f = _finding(evidence="\x07bell")
    assert f.evidence == "\\x07bell"


def test_fingerprint_is_stable_and_ignores_wording_but_not_place() -> None:
    a = _finding()
    assert a.fingerprint == _finding(message="other words").fingerprint
    assert a.fingerprint != _finding(location=Location(path="a/b.pt", offset=8)).fingerprint
    assert a.fingerprint != _finding(rule=RuleId("TST002")).fingerprint
    assert len(a.fingerprint) == 32


def test_limits_reject_non_positive_values() -> None:
    with pytest.raises(ValueError, match="max_nesting"):
        Limits(max_nesting=0)
    with pytest.raises(ValueError):
        Limits(max_read_bytes=-1)


def test_location_describe_names_members_offset_rows() -> None:
    loc = Location(path="m.bin", member=("a.zip", "data.pkl"), offset=3, rows=tuple(range(12)))
    text = loc.describe()
    assert text.startswith("m.bin!a.zip!data.pkl @3 rows 0,1,2")
    assert "+2" in text


def test_report_carries_facts_and_fingerprint_with_empty_defaults() -> None:
    from supplychain.core.model import Fact, Location, Report

    bare = Report(tool_version="0", target=(), started_at="", seconds=0.0)
    assert bare.facts == () and bare.settings_fingerprint == ""
    fact = Fact(key="tensor.count", value=3, location=Location("m.safetensors"), scanner="x")
    assert fact.value == 3  # numbers are kept as numbers
    other = Fact(key="format", value="gguf", location=Location("a.gguf"))
    assert sorted([fact, other], key=Fact.sort_key) == [other, fact]


def test_fact_is_frozen() -> None:
    import dataclasses

    from supplychain.core.model import Fact, Location

    fact = Fact(key="k", value="v", location=Location("f"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fact.key = "other"  # type: ignore[misc]
