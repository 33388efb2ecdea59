"""Rules in one place: the rule type, severity and confidence, the taxonomy, the engine's rules.

Scanners declare their own rules with ``make_rule`` beside the code that emits them; the engine's
own rules (GEN*) live here because no scanner owns them. Pure data: no I/O, no project imports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

RuleId = NewType("RuleId", str)


class Severity(enum.IntEnum):
    """How bad a finding is. Ordered, so ``max()`` and ``>=`` need no helpers."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a severity name case-insensitively; raise ``ValueError`` naming the choices."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        """Lower-case name used in every output format."""
        return self.name.lower()


class Confidence(enum.IntEnum):
    """How sure the analysis is; separate from severity (a heuristic can be severe but unsure)."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def label(self) -> str:
        """Lower-case name used in every output format."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule's documentation: everything a reviewer needs to understand and act on a finding."""

    id: RuleId
    title: str
    severity: Severity
    """Default severity; a scanner may raise or lower it per finding with a reason."""
    explanation: str
    remediation: str
    cwe: int | None = None
    owasp_llm: tuple[str, ...] = ()
    """OWASP Top 10 for LLM Applications (2025) ids, e.g. ``LLM03``."""
    atlas: tuple[str, ...] = ()
    """MITRE ATLAS technique ids, e.g. ``AML.T0010``."""
    references: tuple[str, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        """Taxonomy tags as shown in SARIF and ``supplychain rules``."""
        tags = ["security"]
        if self.cwe is not None:
            tags.append(f"external/cwe/cwe-{self.cwe}")
        tags.extend(f"owasp-llm/{t}" for t in self.owasp_llm)
        tags.extend(f"mitre-atlas/{t}" for t in self.atlas)
        return tuple(tags)


SUPPLY_CHAIN = ("LLM03",)
"""OWASP LLM Top 10 (2025): supply chain."""
POISONING = ("LLM04",)
"""OWASP LLM Top 10 (2025): data and model poisoning."""
ATLAS_CODE_IN_MODEL = ("AML.T0010", "AML.T0011")
"""ML supply chain compromise; user execution of an unsafe ML artifact."""
ATLAS_POISONING = ("AML.T0020",)
"""Poison training data."""


def make_rule(
    rule_id: str,
    title: str,
    severity: Severity,
    explanation: str,
    remediation: str,
    *,
    cwe: int | None = None,
    owasp_llm: tuple[str, ...] = SUPPLY_CHAIN,
    atlas: tuple[str, ...] = ATLAS_CODE_IN_MODEL,
    references: tuple[str, ...] = (),
) -> Rule:
    """Shorthand for a ``Rule`` with the supply-chain taxonomy as default."""
    return Rule(
        id=RuleId(rule_id),
        title=title,
        severity=severity,
        explanation=explanation,
        remediation=remediation,
        cwe=cwe,
        owasp_llm=owasp_llm,
        atlas=atlas,
        references=references,
    )


GEN001 = make_rule(
    "GEN001",
    "Malformed artifact",
    Severity.HIGH,
    "The file claims a known format but does not parse. Loaders are often more lenient than "
    "parsers, and attackers break streams right after a payload (nullifAI), so a file we cannot "
    "analyse is never treated as clean.",
    "Re-download the artifact from a trusted source, or convert it to a safe format "
    "(safetensors) in an isolated environment.",
    cwe=20,
)
GEN002 = make_rule(
    "GEN002",
    "Resource limit exceeded",
    Severity.HIGH,
    "Analysis stopped at a resource cap (size, member count, compression ratio, nesting, opcode "
    "count). Bombs and deeply nested containers are used to exhaust scanners and hide payloads "
    "past the point where analysis stops.",
    "Inspect the artifact by hand; raise the limit in the policy only if the artifact is trusted.",
    cwe=400,
)
GEN003 = make_rule(
    "GEN003",
    "File changed during scan",
    Severity.HIGH,
    "The file's size or modification time changed while it was being scanned, so the digest and "
    "the findings may not describe the same bytes.",
    "Scan a stable copy of the artifact.",
    cwe=367,
)
GEN004 = make_rule(
    "GEN004",
    "Symlink leaves the scan root",
    Severity.HIGH,
    "A symbolic link points outside the scanned directory, so its target was not scanned. "
    "Loaders follow links, so a model directory can pull in files that were never reviewed, or "
    "read secrets from the host. (Links from a Hugging Face cache snapshot into the same repo's "
    "blobs/ are followed and scanned, wherever the scan starts.)",
    "Replace the link by the file it should contain, or remove it; or scan the directory that "
    "holds both the link and its target.",
    cwe=59,
)
GEN005 = make_rule(
    "GEN005",
    "Unreadable file",
    Severity.HIGH,
    "The file could not be read, so it could not be analysed.",
    "Check permissions and that the file is complete, then scan again.",
)
GEN006 = make_rule(
    "GEN006",
    "Broken symbolic link",
    Severity.HIGH,
    "A symbolic link is dangling or loops. Nothing was scanned under its name, yet a loader "
    "opens that name: whoever can later create the missing target decides what gets loaded.",
    "Replace the link by the file it should contain, or remove it (re-download an incomplete "
    "Hugging Face cache entry).",
    cwe=59,
)
GEN007 = make_rule(
    "GEN007",
    "Unreadable directory",
    Severity.HIGH,
    "A directory inside the scan could not be listed, so none of its files were analysed. "
    "A loader running with other permissions may still read them.",
    "Check permissions, then scan again.",
)
GEN008 = make_rule(
    "GEN008",
    "Special file (FIFO, socket or device)",
    Severity.HIGH,
    "A FIFO, socket or device sits where a loader may open it. It is never opened by the scan "
    "(a read could block forever), and its content is whatever a writer feeds the reader at load "
    "time, so no scan can vouch for it. Model directories hold regular files only.",
    "Replace it with the regular file it should be, or remove it.",
)
GENERIC_RULES: tuple[Rule, ...] = (GEN001, GEN002, GEN003, GEN004, GEN005, GEN006, GEN007, GEN008)
"""Rules the engine itself emits."""
