"""Sensitive-data benchmark: accuracy against detect-secrets and a regex/checksum baseline, and
the cost of the ``sensitive`` dataset check next to the poisoning checks on 100k rows.

Accuracy: a labelled corpus of lines is generated from its own templates and seeds (none of the
unit tests' strings): real-format positives (valid checksums, random bodies) for every secret and
personal-data kind, and hard negatives beside each (wrong checksum, Luhn failure, placeholders,
documented example keys/IBANs/cards, example domains, private/documentation IPs, version strings,
bare digit runs). A line is a positive for a family (``secret`` or ``pii``) when it carries one
value of that family; each method predicts per line and family.

* ``ours``      -- ``scanners.secrets.find_secrets`` / ``scanners.pii.find_pii``
* ``detect-secrets`` -- Yelp's detect-secrets ``scan_line`` with its default plugins (secrets
  only: it has no personal-data detectors)
* ``baseline``  -- provider-prefix regexes, and email/phone/IPv4/SSN regexes plus Luhn and
  mod-97 checksums, with no placeholder, context or range rules

Timing: a synthetic 100k-row JSONL (2% of rows carry a value) through ``DatasetScanner`` with the
poisoning checks only, the ``sensitive`` check only, and every check.

    python bench/bench_sensitive.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanners.pii import find_pii, iban_ok, luhn_ok
from scanners.secrets import _base62, find_secrets

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
LETTERS = ALNUM[:52]
WORDS = [
    "model",
    "training",
    "data",
    "batch",
    "loss",
    "layer",
    "token",
    "weight",
    "review",
    "customer",
    "order",
    "support",
    "answer",
    "question",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "from",
    "this",
    "that",
    "we",
    "you",
]


class Gen:
    """Value generators with one seeded RNG (deterministic corpus)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def s(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def words(self, n: int) -> str:
        return " ".join(self.r.choice(WORDS) for _ in range(n))

    def gh(self, prefix: str = "ghp_", valid: bool = True) -> str:
        body = self.s(30)
        check = _base62(zlib.crc32(body.encode()), 6)
        if not valid:
            check = check[:-1] + ("x" if check[-1] != "x" else "y")
        return prefix + body + check

    def card(self, valid: bool = True) -> str:
        prefix = self.r.choice(["4", "51", "55", "2221", "6011"])
        body = prefix + self.s(15 - len(prefix), "0123456789")
        for d in "0123456789":
            if luhn_ok(body + d) == valid:
                num = body + d
                return " ".join(num[i : i + 4] for i in range(0, 16, 4))
        raise AssertionError

    def iban(self, valid: bool = True) -> str:
        bban = self.s(18, "0123456789")
        for check in range(100):
            cand = f"DE{check:02d}{bban}"
            if iban_ok(cand) == valid:
                return cand
        raise AssertionError

    def ssn(self) -> str:
        return f"{self.r.randint(100, 665)}-{self.r.randint(10, 99)}-{self.r.randint(1000, 9999)}"

    def phone(self) -> str:
        return (
            f"({self.r.randint(201, 989)}) {self.r.randint(201, 989)}-{self.r.randint(1000, 9999)}"
        )

    def jwt(self) -> str:
        import base64

        def enc(obj: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        return f"{enc({'alg': 'RS256'})}.{enc({'sub': self.s(8), 'exp': 1900000000})}.{self.s(86)}"


Case = tuple[str, str | None]
"""(line, family): family is ``secret``, ``pii`` or ``None`` (a hard negative)."""


def corpus(seed: int = 2026, repeat: int = 20) -> list[Case]:
    """The labelled lines: each template drawn ``repeat`` times with fresh values."""
    g = Gen(seed)
    makers: list[Callable[[], Case]] = [
        # secrets, real formats
        lambda: (f"export GITHUB_TOKEN={g.gh()}", "secret"),
        lambda: (f"npm config set //registry.npmjs.org/:_authToken {g.gh('npm_')}", "secret"),
        lambda: (f"client = OpenAI(api_key='sk-proj-{g.s(74, ALNUM + '_-')}')", "secret"),
        lambda: (f"ANTHROPIC_API_KEY=sk-ant-api03-{g.s(93, ALNUM + '_-')}AA", "secret"),
        lambda: (f"login(token='hf_{g.s(34, LETTERS)}')", "secret"),
        lambda: (f"stripe.api_key = 'sk_live_{g.s(99)}'", "secret"),
        lambda: (
            f"aws_access_key_id = AKIA{g.s(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')} "
            f"aws_secret_access_key = {g.s(40, ALNUM + '/+')}",
            "secret",
        ),
        lambda: (
            f"SLACK_BOT=xoxb-{g.s(12, '0123456789')}-{g.s(13, '0123456789')}-{g.s(24)}",
            "secret",
        ),
        lambda: (f"url = 'postgresql://etl:{g.s(18)}@10.1.2.3:5432/warehouse'", "secret"),
        lambda: (f"MONGO=mongodb+srv://app:{g.s(20)}@cluster1.a1b2c.mongodb.net", "secret"),
        lambda: (f"headers = {{'Authorization': 'Bearer {g.jwt()}'}}", "secret"),
        lambda: (f"twine upload -p pypi-AgEIcHlwaS5vcmc{g.s(120, ALNUM + '_-')}", "secret"),
        lambda: (f"GOOGLE_API_KEY=AIza{g.s(35, ALNUM + '_-')}", "secret"),
        # personal data
        lambda: (
            f"{g.words(5)} email me: {g.s(6, LETTERS).lower()}.{g.s(5, LETTERS).lower()}@gmail.com",
            "pii",
        ),
        lambda: (f"{g.words(4)} my cell is {g.phone()} {g.words(3)}", "pii"),
        lambda: (f"{g.words(3)} charge card {g.card()} thanks", "pii"),
        lambda: (f"{g.words(3)} wire to {g.iban()} today", "pii"),
        lambda: (f"{g.words(2)} SSN {g.ssn()} on file", "pii"),
        lambda: (
            f"{g.words(3)} login from {g.r.randint(11, 99)}.{g.r.randint(0, 255)}."
            f"{g.r.randint(0, 255)}.{g.r.randint(1, 254)}",
            "pii",
        ),
        # hard negatives
        lambda: (f"export GITHUB_TOKEN={g.gh(valid=False)}", None),
        lambda: ("export GITHUB_TOKEN=ghp_" + "x" * 36, None),
        lambda: ("client = OpenAI(api_key='sk-...')", None),
        lambda: ("HF_TOKEN=<your token here>", None),
        lambda: ("api_key = 'YOUR_API_KEY'", None),
        lambda: ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", None),
        lambda: ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),
        lambda: ("url = 'postgresql://user:password@localhost:5432/db'", None),
        lambda: ("password = os.environ['DB_PASSWORD']", None),
        lambda: (f"checksum = '{g.s(40, '0123456789abcdef')}'", None),
        lambda: (f"sha = {g.s(64, '0123456789abcdef')}", None),
        lambda: (f"{g.words(3)} card {g.card(valid=False)} declined", None),
        lambda: (f"{g.words(3)} use test card 4242 4242 4242 4242", None),
        lambda: (f"{g.words(3)} iban {g.iban(valid=False)}", None),
        lambda: (f"{g.words(3)} e.g. jane@{g.s(5, LETTERS).lower()}.io", None),
        lambda: (f"{g.words(3)} contact someone@example.com", None),
        lambda: (f"{g.words(3)} server 192.168.{g.r.randint(0, 255)}.{g.r.randint(1, 254)}", None),
        lambda: (f"{g.words(3)} docs at 203.0.113.{g.r.randint(1, 254)}", None),
        lambda: (
            f"{g.words(2)} version {g.r.randint(1, 9)}.{g.r.randint(0, 20)}."
            f"{g.r.randint(0, 9)}.{g.r.randint(0, 9)}",
            None,
        ),
        lambda: (f"{g.words(3)} order {g.s(10, '0123456789')} shipped", None),
        lambda: (f"{g.words(3)} call 555-01{g.r.randint(10, 99)}", None),
        lambda: (f"{g.words(3)} ref 000-{g.r.randint(10, 99)}-{g.r.randint(1000, 9999)}", None),
        lambda: (f"{g.words(3)} icon@2x.png", None),
        lambda: (f"{g.words(8)}", None),
    ]
    return [make() for _ in range(repeat) for make in makers]


# --- methods ---------------------------------------------------------------------------------


def ours(line: str) -> set[str]:
    fams = set()
    if next(iter(find_secrets(line)), None) is not None:
        fams.add("secret")
    if next(iter(find_pii(line)), None) is not None:
        fams.add("pii")
    return fams


def detect_secrets_method() -> Callable[[str], set[str]] | None:
    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings
    except ImportError:
        return None

    def run(line: str) -> set[str]:
        with default_settings():
            return {"secret"} if any(True for _ in scan_line(line)) else set()

    return run


_BASE_SECRET = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{36}|npm_[A-Za-z0-9]{36}|sk-[A-Za-z0-9_\-.]{3,}|hf_[A-Za-z0-9]{30,}|"
    r"[sr]k_live_[A-Za-z0-9]{20,}|AKIA[A-Z0-9]{16}|xox[baprs]-[A-Za-z0-9\-]{10,}|"
    r"[a-z+]+://[^:\s/]+:[^@\s]+@|eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+|"
    r"pypi-[A-Za-z0-9_\-]{50,}|AIza[0-9A-Za-z_\-]{35}|(?:password|secret|api_key|token)\s*=\s*\S+",
    re.IGNORECASE,
)
_BASE_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_BASE_PHONE = re.compile(r"\(?\d{3}\)?[ .-]\d{3}-\d{4}|\b555-\d{4}\b")
_BASE_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_BASE_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_BASE_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_BASE_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b")


def baseline(line: str) -> set[str]:
    fams = set()
    if _BASE_SECRET.search(line):
        fams.add("secret")
    cards = (re.sub(r"\D", "", m.group(0)) for m in _BASE_CARD.finditer(line))
    if (
        _BASE_EMAIL.search(line)
        or _BASE_PHONE.search(line)
        or _BASE_IP.search(line)
        or _BASE_SSN.search(line)
        or any(13 <= len(c) <= 19 and luhn_ok(c) for c in cards)
        or any(iban_ok(m.group(0)) for m in _BASE_IBAN.finditer(line))
    ):
        fams.add("pii")
    return fams


def score(cases: list[Case], method: Callable[[str], set[str]], family: str) -> dict[str, float]:
    tp = fp = fn = 0
    for line, fam in cases:
        predicted = family in method(line)
        truth = fam == family
        tp += predicted and truth
        fp += predicted and not truth
        fn += truth and not predicted
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


# --- timing ----------------------------------------------------------------------------------


def write_rows(path: Path, rows: int, seed: int = 7) -> None:
    g = Gen(seed)
    values = [
        lambda: f"mail {g.s(7, LETTERS).lower()}@outlook.com",
        lambda: f"phone {g.phone()}",
        lambda: f"card {g.card()}",
        lambda: f"token {g.gh()}",
    ]
    labels = ["pos", "neg", "neutral"]
    with path.open("w") as fh:
        for i in range(rows):
            text = g.words(g.r.randint(20, 50))
            if g.r.random() < 0.02:
                text += " " + g.r.choice(values)()
            fh.write(json.dumps({"id": i, "text": text, "label": g.r.choice(labels)}) + "\n")


def time_checks(path: Path, checks: frozenset[str] | None) -> float:
    from scanners.dataset.common import DatasetOptions
    from scanners.dataset.runner import DatasetScanner
    from supplychain.engine import ScanOptions, scan_paths

    options = ScanOptions(
        scanners=(DatasetScanner,), dataset=DatasetOptions(checks=checks), command="data"
    )
    start = time.perf_counter()
    scan_paths([path], options)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="draws per corpus template")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()

    cases = corpus(repeat=args.repeat)
    methods: dict[str, Callable[[str], set[str]]] = {"ours": ours, "baseline": baseline}
    ds = detect_secrets_method()
    if ds is not None:
        methods["detect-secrets"] = ds
    print(
        f"corpus: {len(cases)} lines, "
        f"{sum(f == 'secret' for _, f in cases)} secret, {sum(f == 'pii' for _, f in cases)} pii, "
        f"{sum(f is None for _, f in cases)} hard negatives"
    )
    print("| method | family | precision | recall | F1 | tp | fp | fn |")
    print("|---|---|---|---|---|---|---|---|")
    for name, method in methods.items():
        for family in ("secret", "pii"):
            if name == "detect-secrets" and family == "pii":
                continue
            s = score(cases, method, family)
            print(
                f"| {name} | {family} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} "
                f"| {s['tp']:.0f} | {s['fp']:.0f} | {s['fn']:.0f} |"
            )
    if args.skip_timing:
        return 0
    from scanners.dataset.runner import DATASET_CHECKS

    poisoning = frozenset(c.name for c in DATASET_CHECKS if c.name != "sensitive")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        write_rows(path, args.rows)
        t_poison = time_checks(path, poisoning)
        t_sensitive = time_checks(path, frozenset({"sensitive"}))
        t_all = time_checks(path, None)
    print(
        f"\n{args.rows} rows: poisoning checks {t_poison:.2f} s, "
        f"sensitive check {t_sensitive:.2f} s "
        f"({t_sensitive / t_poison:.2f}x), all checks {t_all:.2f} s "
        f"({t_all / t_poison:.2f}x of poisoning alone)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
