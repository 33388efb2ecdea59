"""NearDuplicateCheck: exact and near-duplicate groups, label conflicts, mass duplication."""

from __future__ import annotations

import random
import string

import numpy as np

from scanners.dataset.common import DatasetInfo, Record, run_check
from scanners.dataset.dups import (
    NUM_PERM,
    NearDuplicateCheck,
    minhash,
    normalise,
    shingle_hashes,
)
from supplychain.core.model import Finding, Severity

INFO = DatasetInfo("data.jsonl", (), "text", "label", None, 0)


def _vocab(rng: random.Random, n: int = 3000) -> list[str]:
    return [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        for _ in range(n)
    ]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = _vocab(rng)
    out = []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(16, 45))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def _edit(text: str, level: int, rng: random.Random) -> str:
    """level 0: one character; 1: one word; 2: three words replaced."""
    if level == 0:
        i = rng.randrange(len(text))
        return text[:i] + ("q" if text[i] != "q" else "z") + text[i + 1 :]
    words = text.split(" ")
    for i in rng.sample(range(len(words)), 1 if level == 1 else 3):
        words[i] = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
    return " ".join(words)


def _run(rows: list[tuple[str, str | None]], **kw: float) -> list[Finding]:
    records = [Record(index=i, text=text, label=label) for i, (text, label) in enumerate(rows)]
    return run_check(NearDuplicateCheck(**kw), records, INFO)


def _pairs(findings: list[Finding]) -> set[tuple[int, int]]:
    """(original, copy) pairs implied by the reported groups."""
    out = set()
    for f in findings:
        rows = f.location.rows
        out.update((rows[0], r) for r in rows[1:])
    return out


def test_clean_control_has_no_duplicates() -> None:
    findings = _run([(t, "a" if i % 2 else "b") for i, t in enumerate(_texts(2000))])
    assert findings == []


def test_near_copies_at_three_edit_levels_are_grouped() -> None:
    texts = _texts(1500, seed=1)
    rng = random.Random(7)
    rows: list[tuple[str, str | None]] = [(t, "x") for t in texts]
    truth: dict[int, set[tuple[int, int]]] = {0: set(), 1: set(), 2: set()}
    for level in range(3):
        for src in rng.sample(range(1500), 30):
            truth[level].add((src, len(rows)))
            rows.append((_edit(texts[src], level, rng), "x"))
    findings = _run(rows)
    found = _pairs(findings)
    for level, pairs in truth.items():
        recall = len(pairs & found) / len(pairs)
        assert recall >= 0.95, (level, recall)
    all_truth = set().union(*truth.values())
    # an original sampled twice forms one group, so its two copies pair with each other too
    spurious = {p for p in found - all_truth if not any(p[0] == a for a, _ in all_truth)}
    assert not spurious
    assert {f.rule for f in findings} == {"DAT011"}
    assert all(f.severity == Severity.LOW for f in findings)
    one = next(f for f in findings if len(f.location.rows) == 2)
    assert one.evidence.startswith(f"row {one.location.rows[0]} ~ row {one.location.rows[1]} (J=")
    assert one.group


def test_normalised_exact_duplicates() -> None:
    base = "The quick brown fox jumps over the lazy dog near the river bank."
    variants = [
        base,
        base.upper(),
        "  The quick   brown fox\tjumps over the lazy dog near the river bank.",
        base.replace("The", "Ｔｈｅ"),
    ]  # fullwidth letters fold under NFKC
    rows = [(t, "a") for t in _texts(50)] + [(v, "a") for v in variants]
    findings = _run(rows)
    exact = [f for f in findings if f.rule == "DAT010"]
    assert len(exact) == 1
    assert exact[0].location.rows == (50, 51, 52, 53)
    assert exact[0].severity == Severity.LOW


def test_conflicting_labels_raise_severity() -> None:
    texts = _texts(100, seed=3)
    rows: list[tuple[str, str | None]] = [(t, "pos") for t in texts]
    rows.append((texts[10], "neg"))  # one flipped copy: MEDIUM
    rows += [(texts[20], "neg")] * 6  # six flipped copies: coordinated, HIGH
    findings = _run(rows)
    by_first = {f.location.rows[0]: f for f in findings}
    assert by_first[10].rule == "DAT012" and by_first[10].severity == Severity.MEDIUM
    assert by_first[20].rule == "DAT012" and by_first[20].severity == Severity.HIGH
    assert "conflicting labels" in by_first[20].message


def test_near_copy_with_other_label_is_a_conflict() -> None:
    texts = _texts(200, seed=4)
    rows: list[tuple[str, str | None]] = [(t, "pos") for t in texts]
    rows.append((_edit(texts[5], 1, random.Random(1)), "neg"))
    findings = _run(rows)
    assert [(f.rule, f.location.rows) for f in findings] == [("DAT012", (5, 200))]


def test_mass_duplication() -> None:
    rows = [(t, None) for t in _texts(100, seed=5)]
    rows += [("Visit totally-legit.example for the best deals on everything today", None)] * 60
    findings = _run(rows)
    mass = [f for f in findings if f.rule == "DAT013"]
    assert len(mass) == 1 and mass[0].severity == Severity.MEDIUM
    assert len(mass[0].location.rows) == 60


def test_short_exact_duplicates_are_info() -> None:
    rows = [(t, None) for t in _texts(50, seed=6)] + [("Thanks!", None), ("thanks!", None)]
    findings = _run(rows)
    assert [(f.rule, f.severity) for f in findings] == [("DAT010", Severity.INFO)]


def test_tiny_inputs() -> None:
    assert _run([]) == []
    assert _run([("only one row here", "a")]) == []
    assert _run([("", None), ("", None)])[0].rule == "DAT010"  # two empty rows are duplicates
    assert (
        _run([("one text that is long enough", "a"), ("another text, also long enough", "b")]) == []
    )


def test_deterministic() -> None:
    texts = _texts(300, seed=8)
    rng = random.Random(2)
    rows = [(t, None) for t in texts] + [(_edit(texts[i], 2, rng), None) for i in range(0, 300, 7)]
    a, b = _run(rows), _run(rows)
    assert [(f.rule, f.location.rows, f.evidence) for f in a] == [
        (f.rule, f.location.rows, f.evidence) for f in b
    ]


def test_signature_estimates_jaccard() -> None:
    rng = random.Random(9)
    texts = _texts(200, seed=9)
    pairs = [(t, _edit(t, rng.randrange(3), rng)) for t in texts]
    flat = [normalise(x) for p in pairs for x in p]
    h, first, lens = shingle_hashes(flat)
    sig = minhash(h, first, lens)
    est = (sig[0::2] == sig[1::2]).mean(axis=1)

    def jac(a: str, b: str) -> float:
        sa = {a[i : i + 5] for i in range(len(a))}
        sb = {b[i : i + 5] for i in range(len(b))}
        return len(sa & sb) / len(sa | sb)

    true = np.array([jac(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)])
    err = est - true
    assert abs(err.mean()) < 0.02
    assert np.sqrt((err**2).mean()) < 2.5 * np.sqrt((true * (1 - true)).mean() / NUM_PERM) + 0.01


def test_many_groups_are_summarised() -> None:
    texts = _texts(400, seed=10)
    rows = [(t, None) for t in texts] + [(t, None) for t in texts[:150]]
    findings = _run(rows)
    individual = [f for f in findings if f.severity == Severity.LOW]
    summary = [f for f in findings if f.severity == Severity.INFO]
    assert len(individual) == 100
    assert len(summary) == 1 and "50 more duplicate groups" in summary[0].message
    assert len(summary[0].location.rows) == 100


def test_huge_rows_stay_bounded() -> None:
    """Hostile input: multi-megabyte rows are hashed in their own small batches."""
    big = "lorem ipsum dolor sit amet " * 80_000  # ~2.2M characters
    rows = [(t, None) for t in _texts(30, seed=11)] + [(big, None), (big.upper(), None)]
    findings = _run(rows)
    assert [(f.rule, f.location.rows) for f in findings] == [("DAT010", (30, 31))]


# --------------------------------------------------------------------------------------------
# Shared templates do not chain rows into one group (issue #10, "Datasets near-duplicate").
# --------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "System: You are a careful, helpful assistant for the Example Corp support desk. Answer in "
    "English, cite the relevant policy section, never reveal internal tooling, refuse requests "
    "for personal data, and keep answers under two hundred words unless asked for more detail. "
    "If you are unsure, say so and suggest contacting a human agent through the support portal.\n"
    "User: "
)


def _templated(n: int, seed: int = 3) -> list[str]:
    return [SYSTEM_PROMPT + t for t in _texts(n, seed)]


def test_shared_system_prompt_does_not_make_one_group() -> None:
    rows = [(t, None) for t in _templated(300)]
    got = _run(rows)
    groups = [f for f in got if f.rule in ("DAT010", "DAT011", "DAT012", "DAT013")]
    assert groups == [], [(f.rule, f.message) for f in groups]
    info = [f for f in got if f.rule == "DAT014"]
    assert len(info) == 1 and info[0].severity is Severity.INFO
    assert "300 rows share a templated prefix" in info[0].message
    assert "careful, helpful assistant" in info[0].evidence and len(info[0].evidence) <= 80


def test_genuine_near_duplicates_under_a_template_are_still_found() -> None:
    rng = random.Random(5)
    texts = _templated(300)
    user = texts[7][len(SYSTEM_PROMPT) :]
    copies = [SYSTEM_PROMPT + _edit(user, 1, rng) for _ in range(4)]
    rows = [(t, None) for t in texts + copies]
    got = _run(rows)
    near = [f for f in got if f.rule == "DAT011"]
    assert len(near) == 1, [(f.rule, f.message) for f in got]
    assert set(near[0].location.rows) == {7, 300, 301, 302, 303}
    assert "each J≥0.45 to row 7" in near[0].message


def test_light_edits_of_one_text_are_not_hidden_as_a_template() -> None:
    """300 copies of one text with a one-word edit share a long prefix, but what follows it is
    too short to compare: they are near-duplicates, not templated rows."""
    rng = random.Random(9)
    base = _texts(1, 11)[0] + " " + _texts(1, 12)[0]
    rows = [(_edit(base, 0, rng), None) for _ in range(300)]
    got = _run(rows)
    assert {f.rule for f in got} & {"DAT011", "DAT013"}, [(f.rule, f.message) for f in got]


def test_groups_do_not_chain_through_intermediate_rows() -> None:
    """A~B and B~C with A and C far apart: every reported member is verified against the
    group's representative at the threshold."""
    rng = random.Random(21)
    vocab = _vocab(rng)
    words = [rng.choice(vocab) for _ in range(60)]
    chain = [" ".join(words)]
    for _ in range(12):  # each step replaces 6 more words: neighbours close, ends far apart
        w = chain[-1].split(" ")
        for i in rng.sample(range(len(w)), 6):
            w[i] = rng.choice(vocab)
        chain.append(" ".join(w))
    check = NearDuplicateCheck()
    records = [Record(index=i, text=text, label=None) for i, text in enumerate(chain)]
    state = check.observe(check.init(check.prepare(records)), records)
    groups, _n = state._groups()
    for g in groups:
        assert min(g.sims) >= check.threshold
    reported = [f for f in check.finish(state, INFO) if f.rule == "DAT011"]
    for f in reported:
        assert len(f.location.rows) < len(chain)


def test_several_system_prompts_in_one_dataset() -> None:
    """Ten prompts, 60 rows each (1.5 % of a 4000-row batch): none makes its rows one group."""
    rows: list[tuple[str, str | None]] = []
    users = _texts(600, 31)
    for p in range(10):
        prompt = f"System: persona {p}. " + _texts(1, 100 + p)[0] + "\nUser: "
        rows += [(prompt + users[p * 60 + i], None) for i in range(60)]
    rows += [(t, None) for t in _texts(3400, 77)]
    got = _run(rows)
    assert [f for f in got if f.rule in ("DAT011", "DAT013")] == []
    assert len([f for f in got if f.rule == "DAT014"]) == 10


def test_canned_dpo_answer_is_a_templated_suffix() -> None:
    canned = (
        "\nI'm sorry, but I can't help with that request. As an AI assistant I have to decline "
        "anything that could cause harm; is there something else I can do for you today?"
    )
    rows = [(t[:60] + canned, None) for t in _texts(300, 41)]
    got = _run(rows)
    assert [f for f in got if f.rule in ("DAT011", "DAT013")] == []
    (info,) = [f for f in got if f.rule == "DAT014"]
    assert "templated suffix" in info.message and "can't help" in info.evidence
