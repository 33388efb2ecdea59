"""The sensitive-data fast paths agree with their reference paths (issue #17, speed).

``find_secrets`` stops at a one-pass needle gate (Aho–Corasick, or a trie regex without
``pyahocorasick``): both must answer exactly "does any detector's needle occur", as the 65
``in`` scans they replace did. The dataset check memoises short clean values (labels,
categorical columns): its findings must equal those of a check without the memo. Random rows
plus adversarial ones built from needles, their fragments, case changes and odd Unicode.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scanners.dataset.sensitive as sensitive_mod
import scanners.secrets as secrets_mod
from scanners.dataset.common import DatasetInfo, Record, run_check
from scanners.dataset.sensitive import SensitiveDataCheck, _combined_gate, _reference_gate
from scanners.secrets import _NEEDLES, _needle_automaton, _regex_has_needle, find_secrets

NEEDLES = sorted({n for n, _i in _NEEDLES})
PIECES = [
    *NEEDLES,
    *(n[:-1] for n in NEEDLES if len(n) > 1),
    *(n[1:] for n in NEEDLES if len(n) > 1),
    *(n.upper() for n in NEEDLES),
    "İ",
    "\u0130aws",
    "\ud800",
    "ß",
    "ﬁ",
    "\u200b",
    " ",
    "=",
    "password=Xk9#mQ2$vL7!pR4z",
    "AKIAZ4Q7R2LMNOPQRS3T",
    "ghp_" + "a" * 36,
    "postgres://admin:Sup3rS3cret@db.internal:5432/app",
    "call me at (650) 253-0000",
    "mail jane.roe@acme-corp.com",
    "@",
    "::",
    ":",
    "7",
    "٣",
    "１",
    "fe80::1",
    "8.8.8.8",
]
ROWS = st.lists(st.sampled_from(PIECES) | st.text(max_size=12), max_size=8).map("".join)


def _reference_has_needle(low: str) -> bool:
    return any(needle in low for needle, _i in _NEEDLES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_needle_gates_agree_with_in_scans(text: str) -> None:
    low = text.lower()
    expected = _reference_has_needle(low)
    assert _regex_has_needle(low) is expected
    automaton = _needle_automaton()
    if automaton is not None:
        assert automaton(low) is expected
    assert secrets_mod.has_needle(low) is expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_combined_gate_agrees_with_the_detectors_gates(text: str) -> None:
    """One pass for both gates answers exactly what the two detectors' own gates answer."""
    assert _combined_gate()(text) == _reference_gate(text)
    assert sensitive_mod._gate(text) == _reference_gate(text)


def test_combined_gate_cases() -> None:
    gate = _combined_gate()
    assert gate("plain words only") == (False, False)
    assert gate("call 555") == (False, True)
    assert gate("123 then a PASSWORD") == (True, True)
    assert gate("token token then a@b") == (True, True)
    assert gate("Token only") == (True, False)
    assert gate("fe80::") == (False, True)
    assert gate("٣ arabic digit only") == (False, False)  # \d is ASCII in find_pii


def test_every_needle_opens_the_gate_alone_and_embedded() -> None:
    automaton = _needle_automaton()
    for needle in NEEDLES:
        for text in (needle, f"xx {needle} yy", f"{needle.upper()}Z"):
            assert _regex_has_needle(text.lower()), needle
            if automaton is not None:
                assert automaton(text.lower()), needle
    assert not _regex_has_needle("the quick brown fox jumps over the lazy dog")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_find_secrets_same_with_each_gate(text: str) -> None:
    fast = [(m.kind, m.start, m.end) for m in find_secrets(text)]
    saved = secrets_mod.has_needle
    try:
        secrets_mod.has_needle = _reference_has_needle
        slow = [(m.kind, m.start, m.end) for m in find_secrets(text)]
    finally:
        secrets_mod.has_needle = saved
    assert fast == slow


def test_secret_found_through_the_gate() -> None:
    kinds = {m.kind for m in find_secrets("config: postgres://admin:Sup3rS3cret@db.internal/app")}
    assert kinds, "a connection URL with a password must pass the gate and be reported"


def _findings(rows: list[Record], memo: bool, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    info = DatasetInfo("d.jsonl", (), "text", "label", "id", len(rows))
    if not memo:
        monkeypatch.setattr(sensitive_mod, "CLEAN_MAX_CHARS", -1)
    try:
        found = run_check(SensitiveDataCheck(), rows, info, parts=(len(rows) // 2,))
    finally:
        monkeypatch.undo()
    return [(f.rule, f.message, f.location.rows, f.evidence, f.severity) for f in found]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ROWS, ROWS, ROWS), min_size=1, max_size=12))
def test_clean_memo_does_not_change_findings(cells: list[tuple[str, str, str]]) -> None:
    rows = [
        Record(i, text, label=label, id=str(i), extra=(("note", note), ("city", "Paris")))
        for i, (text, label, note) in enumerate(cells)
    ]
    with pytest.MonkeyPatch.context() as mp:
        memo = _findings(rows, True, mp)
    with pytest.MonkeyPatch.context() as mp:
        plain = _findings(rows, False, mp)
    assert memo == plain


def test_labels_holding_secrets_are_reported_every_row() -> None:
    """A repeated label is memoised only when clean: one holding an e-mail counts on each row."""
    rows = [Record(i, "ordinary text", label="owner jane.roe@acme-corp.com") for i in range(12)]
    info = DatasetInfo("d.jsonl", (), "text", "label", None, len(rows))
    found = [f for f in run_check(SensitiveDataCheck(), rows, info) if "email" in f.message]
    assert found and found[0].message.startswith("12 row(s)")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ROWS, ROWS), min_size=1, max_size=12))
def test_check_findings_same_with_either_gate(cells: list[tuple[str, str]]) -> None:
    rows = [Record(i, text, label=label) for i, (text, label) in enumerate(cells)]
    info = DatasetInfo("d.jsonl", (), "text", "label", None, len(rows))

    def run() -> list[object]:
        found = run_check(SensitiveDataCheck(), rows, info)
        return [(f.rule, f.message, f.location.rows, f.evidence, f.severity) for f in found]

    fast = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sensitive_mod, "_gate", _reference_gate)
        slow = run()
    assert fast == slow
