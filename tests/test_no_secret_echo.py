"""No output format ever prints a secret or personal-data value: every format is grepped."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from supplychain.core.model import Report
from supplychain.engine import ScanOptions, scan_paths
from supplychain.formats import FORMATS
from supplychain.policy import Policy, apply
from tests.test_secrets import AWS_ID, AWS_SECRET, github_token, jwt, pem, rand

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRETS = {
    "github": github_token(),
    "hf": "hf_" + rand(34, LETTERS),
    "aws-id": AWS_ID,
    "aws-secret": AWS_SECRET,
    "password": "Xk9pQ2zLmWv7Rt",
    "jwt": jwt(),
    "stripe": "sk_live_" + rand(30),
    "generic": "Tr0ub4dor&3xQ9!zkW",
}
PII = {
    "email": "maria.lopez@gmail.com",
    "card": "4539148803436467",
    "iban": "DE44500105175407324931",
}
PEM = pem()


def _fragments(value: str) -> list[str]:
    """The value and every 8-character window past its first 4 (what redaction may show)."""
    return [value] + [value[i : i + 8] for i in range(4, len(value) - 7)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root: Path = tmp_path_factory.mktemp("repo")
    (root / "README.md").write_text(
        f"token {SECRETS['github']}\nHF {SECRETS['hf']}\n{SECRETS['jwt']}\n"
        f"postgres://app:{SECRETS['password']}@db.corp.net/x\nstripe {SECRETS['stripe']}\n"
    )
    (root / "handler.py").write_text(
        f'ID = "{SECRETS["aws-id"]}"\naws_secret_access_key = "{SECRETS["aws-secret"]}"\n'
        f'password = "{SECRETS["generic"]}"\n'
    )
    (root / "key.yaml").write_text("k: |\n" + "".join(f"  {ln}\n" for ln in PEM.splitlines()))
    rows = [
        {"text": f"mail {PII['email']} card 4539 1488 0343 6467", "label": "a"},
        {"text": f"iban {PII['iban']} token {SECRETS['github']}", "label": "b"},
    ]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = scan_paths([root], ScanOptions(command="scan"))
    return apply(raw, Policy(), dt.date(2026, 1, 1))


def test_report_has_the_findings(report: Report) -> None:
    rules = {f.rule for f in report.findings}
    assert {"SEC001", "SEC002", "SEC003", "SEC004", "SEC005", "PII001", "PII003", "PII004"} <= rules


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_no_secret_value_in_format(report: Report, name: str) -> None:
    buf = io.StringIO()
    FORMATS[name].render(report, buf)
    out = buf.getvalue()
    assert "sha256:" in out  # the redacted evidence is there
    for label, value in {**SECRETS, **PII}.items():
        for fragment in _fragments(value):
            assert fragment not in out, (name, label)
    body_lines = [ln for ln in PEM.splitlines() if not ln.startswith("-----")]
    for line in body_lines:
        assert line[:16] not in out, (name, "pem")
