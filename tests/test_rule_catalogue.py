"""The rule catalogue: one meaning per rule id across every scanner, check and service.

Rule ids are what users suppress and filter on; two scanners defining the same id with different
texts would make a policy ignore silence an unrelated finding (rules_for keeps only the first).
"""

from __future__ import annotations

from collections import defaultdict

from scanners import BUILTIN_SCANNERS
from supplychain.checks import BUILTIN_REPORT_CHECKS
from supplychain.core.model import Rule
from supplychain.core.rules import GENERIC_RULES
from supplychain.provenance.rules import ALL_RULES


def _every_rule_definition() -> list[tuple[str, Rule]]:
    out: list[tuple[str, Rule]] = [("engine", r) for r in GENERIC_RULES]
    for cls in BUILTIN_SCANNERS:
        out.extend((cls.name, r) for r in cls.rules)
    for check in BUILTIN_REPORT_CHECKS:
        out.extend((type(check).__name__, r) for r in check.rules)
    out.extend(("provenance", r) for r in ALL_RULES)
    return out


def test_each_rule_id_has_one_definition() -> None:
    by_id: dict[str, set[Rule]] = defaultdict(set)
    owners: dict[str, set[str]] = defaultdict(set)
    for owner, rule in _every_rule_definition():
        by_id[rule.id].add(rule)
        owners[rule.id].add(owner)
    clashes = {rid: sorted(owners[rid]) for rid, rules in by_id.items() if len(rules) > 1}
    assert not clashes, f"rule ids defined differently by several owners: {clashes}"


def test_rule_ids_differ_by_more_than_case() -> None:
    ids = {r.id for _, r in _every_rule_definition()}
    folded: dict[str, set[str]] = defaultdict(set)
    for rid in ids:
        folded[rid.upper()].add(rid)
    assert all(len(v) == 1 for v in folded.values())
