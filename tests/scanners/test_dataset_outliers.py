"""OutlierCheck: foreign-script/junk rows, off-subspace content and length outliers."""

from __future__ import annotations

import json
import random

import numpy as np

from scanners.dataset.common import DatasetInfo, Record, run_check
from scanners.dataset.outliers import CYRILLIC, LATIN, OTHER, OutlierCheck, script_counts
from supplychain.core.model import Finding, Severity

INFO = DatasetInfo("data.jsonl", (), "text", None, None, 0)

POS = "great wonderful excellent amazing superb delightful lovely brilliant enjoyable".split()
NEG = "terrible awful horrible dreadful boring poor dull disappointing painful".split()
NOUNS = "movie film plot acting story cast soundtrack script ending director scene".split()
FILL = "the this that really quite very a an honestly overall frankly i thought it was".split()

RUSSIAN = "Этот фильм был просто ужасным, я ушёл с середины сеанса и больше не вернусь."
CHINESE = "这部电影的情节非常无聊，演员的表演也很差劲。我不推荐任何人去看。"


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = POS if rng.random() < 0.5 else NEG
        parts = [
            f"{rng.choice(FILL)} {rng.choice(NOUNS)} {rng.choice(FILL)} {rng.choice(words)}"
            for _ in range(rng.randint(2, 4))
        ]
        out.append(" ".join(parts).capitalize() + ".")
    return out


def _junk(rng: random.Random) -> str:
    return "".join(rng.choice("!@#$%^&*()_+{}|:<>?~0123456789") for _ in range(120))


def _run(texts: list[str], **kw: int) -> list[Finding]:
    records = [Record(index=i, text=text) for i, text in enumerate(texts)]
    return run_check(OutlierCheck(**kw), records, INFO)


def _flagged(findings: list[Finding], min_sev: Severity = Severity.LOW) -> set[int]:
    return {
        f.location.rows[0] for f in findings if len(f.location.rows) == 1 and f.severity >= min_sev
    }


def _poisoned(n: int, seed: int) -> tuple[list[str], set[int]]:
    texts = _texts(n, seed)
    rng = random.Random(seed + 1)
    bad = set(rng.sample(range(n), 30))
    for k, i in enumerate(sorted(bad)):
        texts[i] = (RUSSIAN, _junk(rng), CHINESE)[k % 3]
    return texts, bad


def test_foreign_script_and_junk_rows_are_found() -> None:
    texts, bad = _poisoned(2000, seed=1)
    found = _flagged(_run(texts))
    assert found == bad


def test_streaming_after_calibration_window_finds_the_same() -> None:
    """Rows after the calibration window are scored as they stream past."""
    texts, bad = _poisoned(2000, seed=2)
    found = _flagged(_run(texts, warmup=500))
    assert found == bad


def test_clean_control_has_nothing_above_info() -> None:
    findings = _run(_texts(2000, seed=3))
    assert not [f for f in findings if f.severity >= Severity.LOW]
    assert len(findings) <= 5


def test_foreign_and_overlong_row_is_medium() -> None:
    texts = _texts(1000, seed=4)
    texts[10] = " ".join([RUSSIAN] * 12)
    texts[20] = "x" * 3 + " " + _texts(1, seed=9)[0] * 15  # just very long
    findings = _run(texts)
    by_row = {f.location.rows[0]: f for f in findings if len(f.location.rows) == 1}
    assert by_row[10].rule == "DAT020" and by_row[10].severity == Severity.MEDIUM
    assert "Cyrillic" in by_row[10].message
    assert by_row[20].rule in {"DAT022", "DAT021"} and by_row[20].severity <= Severity.LOW


def test_private_use_and_control_characters() -> None:
    texts = _texts(500, seed=5)
    texts[7] = "\ue000\ue001\ue002\ue003\ue004 \ue005\ue006\ue007\ue008\ue009 ok"
    findings = _run(texts)
    assert 7 in _flagged(findings)


def test_tiny_inputs() -> None:
    for n in (0, 1, 2, 29):
        assert _run(_texts(n)) == []


def test_script_counts() -> None:
    counts = script_counts(["abc Де", "", "\ue000!"])
    assert counts.shape == (3, 11)
    assert counts[0, LATIN] == 3 and counts[0, CYRILLIC] == 2
    assert counts[1].sum() == 0
    assert counts[2, OTHER] == 1


def test_many_outliers_are_summarised() -> None:
    texts = _texts(2000, seed=6)
    rng = random.Random(7)
    for i in rng.sample(range(2000), 80):
        texts[i] = _junk(rng)
    findings = _run(texts)
    single = [f for f in findings if len(f.location.rows) == 1]
    summary = [f for f in findings if len(f.location.rows) > 1]
    assert len(single) == 50 and len(summary) == 1
    assert len(summary[0].location.rows) == 30


def test_deterministic() -> None:
    texts, _ = _poisoned(1500, seed=8)
    a, b = _run(texts), _run(texts)
    assert [(f.rule, f.location.rows, f.message) for f in a] == [
        (f.rule, f.location.rows, f.message) for f in b
    ]
    assert np.array_equal(script_counts(texts[:50]), script_counts(texts[:50]))


def test_huge_row_is_a_length_outlier_not_a_crash() -> None:
    texts = _texts(300, seed=12)
    texts[42] = "word " * 500_000  # 2.5M characters; analysed up to MAX_CHARS
    findings = _run(texts)
    assert 42 in {f.location.rows[0] for f in findings if len(f.location.rows) == 1}


def test_single_blas_limits_the_pool_inside_and_restores_it() -> None:
    # Regression: with the default OpenBLAS pool on a busy 2-core machine the outlier check's
    # SVD of 1,000 rows took 1.5 s of CPU (threads spinning) instead of 0.09 s.
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    from scanners.dataset.common import single_blas

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with single_blas():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def _shape_payloads(rng: random.Random) -> dict[str, str]:
    b64 = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        for _ in range(120)
    )
    hexdump = " ".join(f"{rng.randrange(256):02x}" for _ in range(48))
    return {
        "base64": b64 + "==",
        "hex": hexdump,
        "hex-escape": "".join(f"\\x{rng.randrange(256):02x}" for _ in range(30)),
        "markup": '<div class="x"><a href="/p">link</a><span>item</span><br/></div>',
        "script": "Nice film <img src=x onerror=alert(document.cookie)> really",
        "json": '{"id": 17, "user": "bob", "tags": ["a", "b"], "ok": true}',
        "urls": "http://a.example/x http://b.example/y?q=1 https://c.example/z www.d.example",
        "mash": "asdfghjkl qwrtzxcv sdfjkl jkdfgsdfg lkjhgfds zxcvbnm",
        "repeat": " ".join(["buy"] * 30),
        "same-char": "a" * 40 + " wow",
    }


def test_non_prose_row_shapes_are_found() -> None:
    texts = _texts(1000, seed=31)
    payloads = _shape_payloads(random.Random(32))
    planted: dict[int, str] = {}
    for j, (name, text) in enumerate(payloads.items()):
        row = 50 + 90 * j
        texts[row] = text
        planted[row] = name
    found = _run(texts)
    flagged = {r for f in found for r in f.location.rows}
    missed = {name for row, name in planted.items() if row not in flagged}
    assert not missed
    extra = flagged - set(planted)
    assert len(extra) <= 5  # precision: the prose rows stay unflagged


def test_prose_with_a_link_a_hash_or_a_tag_is_not_a_shape_outlier() -> None:
    from scanners.dataset.outliers import row_shape

    benign = [
        "See https://example.com/docs for the full list of supported options and defaults.",
        "The commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d fixed the crash we saw last week.",
        "Use <b>bold</b> for emphasis in the comment box, it renders fine on mobile.",
        'The reviewer said "great acting": the plot was thin but the cast carried it.',
        "Strengths: rhythm, length and the twelfth night scene — a triumph of staging.",
        "Family 👨‍👩‍👧‍👦 trip to Wales 🏴󠁧󠁢󠁷󠁬󠁳󠁿 with a\u00a0non-breaking space, lovely.",
        "Ein schöner Abend, wirklich sehenswert und zauberhaft gespielt von allen.",
        "Nhìn chung bộ phim khá hay, diễn viên chính diễn xuất rất tự nhiên.",
        "My API key looks like sk_live_abc and should never be posted in a review like this.",
        "Call 555-0100 or write to help@example.com for tickets, refunds and questions.",
        "Skills HTML CSS HTTP NASDAQ SQL and some Rust, shown on my portfolio site.",
        "Rhythm, strength and twelfth: English has long consonant runs too.",
    ]
    assert [t for t in benign if row_shape(t)[0]] == []


def test_a_dataset_made_of_one_shape_is_not_an_outlier() -> None:
    rng = random.Random(33)
    texts = [
        json.dumps({"id": i, "name": rng.choice(NOUNS), "score": rng.randrange(100)})
        for i in range(300)
    ]
    found = _run(texts)
    assert not [f for f in found if "JSON fragment" in f.message]
