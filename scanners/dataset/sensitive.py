"""Sensitive data in dataset rows: credentials and personal data, counted per field, redacted.

Every field of every row goes through ``scanners.secrets`` and ``scanners.pii``: the text,
label, id and source fields the shared reader plans, and every other column, which the reader
carries in ``Record.extra`` because this check sets ``wants_extra_fields`` (nested JSON
flattened to dotted names, numbers as their exact digits). An extra value is checked as
``name: value`` so the column name gives the detectors their context (``phone: 6502530000``).

State is bounded: per (kind, field) a count, a few sample rows and a few redacted samples;
at most ``MAX_FIELDS`` extra field names are tallied. Fields a row's bounds left unread are
reported as DAT009 (HIGH, fail closed). Severity follows kind and volume:

* credentials: the detector's severity (a provider key is HIGH at any volume: a model trained
  on it can repeat it);
* payment cards, IBANs, national ids: MEDIUM, HIGH from ``BULK_ROWS`` rows;
* e-mail, phone, public IP: LOW, MEDIUM from ``BULK_ROWS`` rows (contact data is common in web
  text; a gate failing on one address would be switched off).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from scanners.dataset.common import EXTRA_CUT, DatasetInfo, Record, StateCheck, dataset_finding
from scanners.dataset.readers import DAT009
from scanners.pii import PHONE_BACKEND, PII007, PII_RULES, find_pii, might_hold_pii
from scanners.secrets import NEEDLES, SECRET_RULES, find_secrets, has_needle, redact
from supplychain.core.model import Confidence, Finding, Rule, Severity

BULK_ROWS = 10
"""Rows of one kind in one field from which the finding is raised a level."""
SAMPLE_ROWS = 5
SAMPLE_VALUES = 3
CLEAN_CACHE = 8192
CLEAN_MAX_CHARS = 128
"""Short extra values found clean are remembered (up to this many, then the memo restarts):
categorical columns (city, status, version) repeat the same values on every row."""
MAX_FIELDS = 256
"""Distinct extra field names tallied; later names are counted under ``OTHER_FIELDS``."""
OTHER_FIELDS = "(other fields)"
_SPECIAL = frozenset({"card", "iban", "us-ssn", "uk-nino", "de-steuer-id"})
"""Financial and government identifiers: misuse harms the person directly."""


Gate = Callable[[str], tuple[bool, bool]]


def _reference_gate(value: str) -> tuple[bool, bool]:
    """(may hold a secret, may hold personal data): the two detectors' own gates."""
    return has_needle(value.lower()), might_hold_pii(value)


def _combined_gate() -> Gate:
    """Both gates in one Aho–Corasick pass over the lowered value (``pyahocorasick``): the
    secret needles plus ``@``, the ASCII digits and ``::``, which ``lower()`` neither makes nor
    removes. Most dataset rows hold none and cost one pass instead of two; once personal data
    is possible the needles alone finish the job (no Python step per digit)."""
    try:
        import ahocorasick  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _reference_gate
    automaton = ahocorasick.Automaton()
    for needle in NEEDLES:
        automaton.add_word(needle, True)
    for mark in ("@", "::", *string.digits):
        automaton.add_word(mark, False)
    automaton.make_automaton()
    scan = automaton.iter

    def gate(value: str) -> tuple[bool, bool]:
        low = value.lower()
        secret = False
        for _end, is_needle in scan(low):
            if not is_needle:
                return secret or has_needle(low), True
            secret = True
        return secret, False

    return gate


@dataclass(slots=True)
class _Tally:
    """Bounded state for one (kind, field)."""

    rule: Rule
    severity: Severity
    confidence: Confidence
    rows: int = 0
    last_row: int = -1
    sample_rows: list[int] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    samples_rows: list[int] = field(default_factory=list)
    """The row of each sample (so merged tallies keep the lowest rows' samples)."""

    def add(self, row: int, evidence: str) -> None:
        if row != self.last_row:
            self.rows += 1
            self.last_row = row
            if len(self.sample_rows) < SAMPLE_ROWS:
                self.sample_rows.append(row)
        if len(self.samples) < SAMPLE_VALUES and evidence not in self.samples:
            self.samples.append(evidence)
            self.samples_rows.append(row)

    def merge(self, other: _Tally) -> None:
        """Add another partition's tally of the same (kind, field)."""
        self.rows += other.rows
        self.severity = max(self.severity, other.severity)
        self.confidence = max(self.confidence, other.confidence)
        self.sample_rows = sorted(self.sample_rows + other.sample_rows)[:SAMPLE_ROWS]
        pairs = sorted(
            zip(self.samples_rows + other.samples_rows, self.samples + other.samples, strict=False)
        )
        self.samples, self.samples_rows = [], []
        for row, text in pairs:
            if len(self.samples) < SAMPLE_VALUES and text not in self.samples:
                self.samples.append(text)
                self.samples_rows.append(row)


class SensitiveDataCheck(StateCheck["SensitiveState"]):
    """Credentials and personal data in dataset rows (counts per field, redacted samples)."""

    name: ClassVar[str] = "sensitive"
    rules: ClassVar[tuple[Rule, ...]] = (*SECRET_RULES, *PII_RULES)
    """DAT009 (fields left unread) is the reader's rule, listed by the scanner."""
    wants_extra_fields: ClassVar[bool] = True
    """Ask the reader for every column, not only the planned ones (``Record.extra``)."""
    needs_text: ClassVar[bool] = False
    """A tabular file (no text field) still has e-mail, phone and key columns to check."""

    def __init__(self, phone_backend: str | None = None) -> None:
        self.phone_backend = phone_backend or PHONE_BACKEND

    def init(self, plan: object) -> SensitiveState:
        """Empty tallies."""
        return SensitiveState(self.phone_backend)


class SensitiveState:
    """Per (kind, field) tallies, field names, cut-row counts (see ``SensitiveDataCheck``)."""

    def __init__(self, phone_backend: str) -> None:
        self.phone_backend = phone_backend
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.rows = 0
        self.fields: set[str] = set()
        self.cut_rows = 0
        self.cut_fields = 0
        self.first_cut: list[int] = []
        self.clean: set[str] = set()

    def merge(self, other: SensitiveState) -> None:
        """Add the other partition's tallies and counts (exact up to ``MAX_FIELDS`` names)."""
        for key, tally in other.tallies.items():
            mine = self.tallies.get(key)
            if mine is None:
                self.tallies[key] = tally
            else:
                mine.merge(tally)
        self.rows += other.rows
        for name in sorted(other.fields - self.fields):
            if len(self.fields) < MAX_FIELDS:
                self.fields.add(name)
        self.cut_rows += other.cut_rows
        self.cut_fields += other.cut_fields
        self.first_cut = sorted(self.first_cut + other.first_cut)[:SAMPLE_ROWS]

    def add(self, record: Record) -> None:
        """Run both detector families over each field of the row."""
        self.rows += 1
        for field_name, value in (
            ("text", record.text),
            ("label", record.label),
            ("id", record.id),
            ("source", record.source),
        ):
            if value:
                self._check_memo(record.index, field_name, value)
        for name, value in record.extra:
            if name == EXTRA_CUT:
                self.cut_rows += 1
                self.cut_fields += int(value)
                if len(self.first_cut) < SAMPLE_ROWS:
                    self.first_cut.append(record.index)
                continue
            if name not in self.fields:
                if len(self.fields) >= MAX_FIELDS:
                    name = OTHER_FIELDS
                else:
                    self.fields.add(name)
            leaf = name.rsplit(".", 1)[-1].removesuffix("[]")
            self._check_memo(record.index, "col:" + name, f"{leaf}: {value}")

    def _check_memo(self, row: int, field_name: str, value: str) -> None:
        """``_check``, skipping short values already found clean: labels and categorical
        columns (city, status, version) repeat the same values on every row. Whether a value
        is clean depends on its text alone, so one memo serves every field."""
        if value in self.clean:
            return
        if not self._check(row, field_name, value) and len(value) <= CLEAN_MAX_CHARS:
            if len(self.clean) >= CLEAN_CACHE:
                self.clean.clear()
            self.clean.add(value)

    def _check(self, row: int, field_name: str, value: str) -> bool:
        """Tally every secret and personal-data match of one field value; whether any matched."""
        found = False
        secrets, pii = _gate(value)
        for secret in find_secrets(value) if secrets else ():
            found = True
            tally = self._tally(secret.kind, field_name, secret.rule)
            tally.severity = max(tally.severity, secret.severity)
            tally.confidence = max(tally.confidence, secret.confidence)
            tally.add(row, secret.redacted)
        for match in find_pii(value, phone_backend=self.phone_backend) if pii else ():
            found = True
            tally = self._tally(match.kind, field_name, match.rule)
            tally.add(row, redact(match.kind, match.value))
        return found

    def _tally(self, kind: str, field_name: str, rule: Rule) -> _Tally:
        key = (kind, field_name)
        tally = self.tallies.get(key)
        if tally is None:
            is_secret = rule.id.startswith("SEC")
            contact = not is_secret and kind not in _SPECIAL
            tally = _Tally(
                rule,
                Severity.INFO if is_secret else rule.severity,
                Confidence.LOW
                if is_secret
                else (Confidence.MEDIUM if contact else Confidence.HIGH),
            )
            self.tallies[key] = tally
        return tally

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """One finding per (kind, field), worst first."""
        names = {
            "text": info.text_field or "text",
            "label": info.label_field or "label",
            "id": info.id_field or "id",
            "source": "source",
        }
        for (kind, field_name), tally in sorted(
            self.tallies.items(), key=lambda kv: (-kv[1].rows, kv[0])
        ):
            severity = tally.severity
            if not tally.rule.id.startswith("SEC") and tally.rows >= BULK_ROWS:
                severity = Severity(min(int(severity) + 1, int(Severity.HIGH)))
            share = f"{tally.rows / max(self.rows, 1):.1%}"
            shown = field_name[4:] if field_name.startswith("col:") else names[field_name]
            yield dataset_finding(
                info,
                tally.rule,
                f"{tally.rows} row(s) ({share}) with {kind} in field {shown!r}",
                rows=tally.sample_rows,
                evidence="; ".join(tally.samples),
                severity=severity,
                confidence=tally.confidence,
                group=f"sensitive:{kind}:{field_name}",
            )
        if self.cut_rows:
            yield dataset_finding(
                info,
                DAT009,
                f"{self.cut_rows} row(s) have more fields or deeper nesting than are read: "
                f"{self.cut_fields} field(s) were not checked for sensitive data (fails closed)",
                rows=self.first_cut,
                evidence=f"{self.cut_fields} fields beyond the per-row field/depth bounds",
                group=f"sensitive:cut:{info.path}",
            )
        if self.phone_backend != "phonenumbers" and self.rows:
            yield dataset_finding(
                info,
                PII007,
                "phone numbers were matched by the fallback regex (phonenumbers not installed)",
                evidence="skip reason: phonenumbers not importable",
            )


_gate: Gate = _combined_gate()


__all__ = ["BULK_ROWS", "SensitiveDataCheck"]
