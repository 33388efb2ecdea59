"""The coverage page: which OWASP LLM Top 10 (2025) and MITRE ATLAS entries the rules cover.

Generated from the rule table (every ``Rule`` carries its ``owasp_llm`` and ``atlas`` ids), so
the page cannot drift from the code: ``python -m supplychain.coverage > docs/coverage.md``, and
``tests/test_coverage_page.py`` fails when the committed page is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from supplychain.core.model import Rule

OWASP_LLM_2025: tuple[tuple[str, str, str], ...] = (
    ("LLM01", "Prompt Injection", "Injected instructions in training/RAG rows and templates."),
    (
        "LLM02",
        "Sensitive Information Disclosure",
        "Secrets and personal data shipped or trained on.",
    ),
    ("LLM03", "Supply Chain", "Code and tampering hidden in model artifacts and their files."),
    ("LLM04", "Data and Model Poisoning", "Poisoned, backdoored or mislabelled dataset rows."),
    ("LLM05", "Improper Output Handling", "Templates and configs that render unsafe output."),
    ("LLM06", "Excessive Agency", ""),
    ("LLM07", "System Prompt Leakage", ""),
    ("LLM08", "Vector and Embedding Weaknesses", "Poisoned passages aimed at a RAG index."),
    ("LLM09", "Misinformation", ""),
    ("LLM10", "Unbounded Consumption", ""),
)
"""Every OWASP Top 10 for LLM Applications 2025 entry, with what the rules here look for."""

NOT_COVERED = (
    "a runtime property of the deployed application (tool permissions, output use, prompts, "
    "rate limits), not of the artifacts a supply-chain scanner reads"
)

ATLAS_NAMES: dict[str, str] = {
    "AML.T0010": "ML Supply Chain Compromise",
    "AML.T0011": "User Execution",
    "AML.T0018": "Backdoor ML Model",
    "AML.T0019": "Publish Poisoned Datasets",
    "AML.T0020": "Poison Training Data",
    "AML.T0051": "LLM Prompt Injection",
    "AML.T0051.001": "LLM Prompt Injection: Indirect",
    "AML.T0055": "Unsecured Credentials",
    "AML.T0057": "LLM Data Leakage",
    "AML.T0058": "Publish Poisoned Models",
    "AML.T0070": "RAG Poisoning",
}
"""Names of the MITRE ATLAS techniques the rules cite (an id missing here prints bare)."""

_FAMILIES: dict[str, str] = {
    "ARC": "archives",
    "CFG": "model configs",
    "COD": "Python code",
    "DAT": "datasets",
    "DEP": "Python dependencies",
    "FMT": "data formats",
    "GEN": "any artifact",
    "GGF": "GGUF",
    "IDN": "identification",
    "KER": "Keras/HDF5",
    "MDC": "model cards",
    "NPY": "NumPy",
    "ONX": "ONNX",
    "PII": "personal data in datasets",
    "PKL": "pickle",
    "PRV": "provenance",
    "SEC": "secrets",
    "SFT": "safetensors",
    "TFM": "TensorFlow",
    "TPL": "chat templates",
}


def _how(rules: Sequence[Rule]) -> str:
    families = sorted({r.id[:3] for r in rules})
    return ", ".join(f"{_FAMILIES.get(f, f)} ({f})" for f in families)


def _rule_list(rules: Sequence[Rule]) -> str:
    return ", ".join(r.id for r in sorted(rules, key=lambda r: r.id))


def coverage_markdown(rules: Iterable[Rule]) -> str:
    """The Markdown page for ``rules``: deterministic, one table per taxonomy."""
    table = sorted(rules, key=lambda r: r.id)
    lines = [
        "# Coverage: OWASP LLM Top 10 (2025) and MITRE ATLAS",
        "",
        "Generated from the rule table by `python -m supplychain.coverage > docs/coverage.md`;",
        "a test fails when this page is stale. Every rule carries its taxonomy ids (see",
        "`supplychain rules`), and `--fail-on owasp:LLM02` or `--fail-on atlas:AML.T0020` fails",
        "a run on any finding (above info) of a rule mapped to that entry.",
        "",
        "## OWASP Top 10 for LLM Applications 2025",
        "",
        "| Entry | Covered | How (rule families) | Rules |",
        "|---|---|---|---|",
    ]
    for ident, name, what in OWASP_LLM_2025:
        hits = [r for r in table if ident in r.owasp_llm]
        if hits:
            how = f"{what} Checked in: {_how(hits)}." if what else f"Checked in: {_how(hits)}."
            lines.append(
                f"| {ident} {name} | yes ({len(hits)} rules) | {how} | {_rule_list(hits)} |"
            )
        else:
            lines.append(f"| {ident} {name} | no | Out of scope: {NOT_COVERED}. | |")
    lines += [
        "",
        "## MITRE ATLAS techniques",
        "",
        "| Technique | How (rule families) | Rules |",
        "|---|---|---|",
    ]
    techniques = sorted({t for r in table for t in r.atlas})
    for tech in techniques:
        hits = [r for r in table if tech in r.atlas]
        name = ATLAS_NAMES.get(tech, "")
        label = f"{tech} {name}".strip()
        lines.append(f"| {label} | {_how(hits)} | {_rule_list(hits)} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the page for the built-in rule catalogue."""
    from supplychain.service import all_rules

    sys.stdout.write(coverage_markdown(all_rules()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ATLAS_NAMES", "OWASP_LLM_2025", "coverage_markdown", "main"]
