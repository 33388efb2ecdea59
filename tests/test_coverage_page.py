"""docs/coverage.md is generated from the rule table and must be current."""

from __future__ import annotations

from pathlib import Path

from supplychain.core.model import Rule, RuleId, Severity
from supplychain.coverage import OWASP_LLM_2025, coverage_markdown
from supplychain.service import all_rules

DOC = Path(__file__).resolve().parent.parent / "docs" / "coverage.md"


def test_committed_page_is_current() -> None:
    assert DOC.read_text() == coverage_markdown(all_rules()), (
        "docs/coverage.md is stale: run python -m supplychain.coverage > docs/coverage.md"
    )


def test_every_owasp_entry_is_listed_covered_or_not() -> None:
    rule = Rule(
        RuleId("SEC999"), "t", Severity.HIGH, "e", "r", owasp_llm=("LLM02",), atlas=("AML.T0055",)
    )
    page = coverage_markdown([rule])
    assert len(OWASP_LLM_2025) == 10
    for ident, name, _ in OWASP_LLM_2025:
        assert f"| {ident} {name} |" in page
    assert "| LLM02 Sensitive Information Disclosure | yes (1 rules) |" in page
    assert "| LLM06 Excessive Agency | no |" in page
    assert "| AML.T0055 Unsecured Credentials | secrets (SEC) | SEC999 |" in page


def test_sensitive_rules_map_to_llm02() -> None:
    ids = {r.id for r in all_rules() if "LLM02" in r.owasp_llm}
    assert {"SEC001", "SEC002", "SEC003", "SEC004", "SEC005", "PII001", "PII003"} <= ids
