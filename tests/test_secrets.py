"""Secret detectors: a positive for each provider format and near-miss negatives beside it.

Tokens are built in code (random bodies, real checksums) so no credential-shaped literal sits in
the repository for other scanners to trip over.
"""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest

from scanners.secrets import (
    SEC001,
    SEC002,
    SEC003,
    SEC004,
    SEC005,
    _base62,
    crc32_token_ok,
    find_secrets,
    redact,
)
from supplychain.core.model import Severity

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def rand(n: int, alphabet: str = ALNUM, seed: int = 7) -> str:
    """A deterministic random-looking string."""
    rng = random.Random(seed * 1000 + n)
    return "".join(rng.choice(alphabet) for _ in range(n))


def github_token(prefix: str = "ghp_", seed: int = 1) -> str:
    """A token in GitHub's format with a valid CRC32 checksum."""
    body = rand(30, seed=seed)
    return prefix + body + _base62(zlib.crc32(body.encode()), 6)


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(header: object | None = None) -> str:
    head = b64url(header if header is not None else {"alg": "HS256", "typ": "JWT"})
    return f"{head}.{b64url({'sub': '1234567890', 'iat': 1516239022})}.{rand(43, seed=3)}"


def pem(kind: str = "RSA ") -> str:
    body = base64.b64encode(random.Random(5).randbytes(600)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


AWS_ID = "AKIA" + rand(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", seed=9)
AWS_SECRET = rand(38, seed=11) + "/+"

POSITIVES: dict[str, tuple[str, str]] = {
    "github-token": (f"token = '{github_token()}'", "github-token"),
    "github-oauth": (github_token("gho_", 2), "github-token"),
    "github-fine-grained": (
        f"github_pat_{rand(22)}_{rand(59, seed=2)}",
        "github-fine-grained-token",
    ),
    "npm": (github_token("npm_", 4), "npm-token"),
    "slack": (
        f"SLACK=xoxb-{rand(13, '0123456789')}-{rand(12, '0123456789')}-{rand(24)}",
        "slack-token",
    ),
    "slack-webhook": (
        f"https://hooks.slack.com/services/T{rand(10, 'ABCDEFGHJK0123456789')}/"
        f"B{rand(10, 'ABCDEFGHJK0123456789', 3)}/{rand(24, seed=4)}",
        "slack-webhook",
    ),
    "stripe": (f"stripe.api_key = 'sk_live_{rand(24)}'", "stripe-key"),
    "aws-pair": (
        f"aws_access_key_id={AWS_ID}\naws_secret_access_key={AWS_SECRET}",
        "aws-access-key-id",
    ),
    "google": ("key=AIza" + rand(35, seed=6), "google-api-key"),
    "azure-storage": (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={rand(86)}==",
        "azure-storage-key",
    ),
    "azure-client-secret": (f"secret: abc8Q~{rand(34)}", "azure-client-secret"),
    "openai-project": (f"OPENAI_API_KEY=sk-proj-{rand(64)}", "openai-key"),
    "openai-legacy": (f"sk-{rand(20)}T3BlbkFJ{rand(20, seed=8)}", "openai-key"),
    "anthropic": (f"sk-ant-api03-{rand(93)}AA", "anthropic-key"),
    "huggingface": (f"HF_TOKEN=hf_{rand(34, LETTERS)}", "huggingface-token"),
    "pypi": (f"password = pypi-AgEIcHlwaS5vcmc{rand(70)}", "pypi-token"),
    "gitlab": (f"CI_TOKEN=glpat-{rand(20, ALNUM + '_-')}", "gitlab-token"),
    "slack-app": (
        f"xapp-1-A{rand(10, 'ABCDEFGHJK0123456789')}-{rand(13, '0123456789')}-"
        f"{rand(64, '0123456789abcdef')}",
        "slack-app-token",
    ),
    "sendgrid": (f"SENDGRID_API_KEY=SG.{rand(22)}.{rand(43, seed=5)}", "sendgrid-key"),
    "shopify": (f"shpat_{rand(32, '0123456789abcdef')}", "shopify-token"),
    "databricks": (f"DATABRICKS_TOKEN=dapi{rand(32, '0123456789abcdef')}", "databricks-token"),
    "replicate": (f"REPLICATE_API_TOKEN=r8_{rand(37)}", "replicate-token"),
    "groq": (f"GROQ_API_KEY=gsk_{rand(52)}", "groq-key"),
    "pem": (pem(), "private-key"),
    "pem-openssh": (pem("OPENSSH "), "private-key"),
    "gcp-service-account": (
        json.dumps({"type": "service_account", "private_key": pem("") + "\n"}),
        "private-key",
    ),
    "jwt": (f"Authorization: Bearer {jwt()}", "jwt"),
    "postgres": (
        f"DATABASE_URL=postgresql://app:{rand(14)}@db.corp.net:5432/prod",
        "connection-string",
    ),
    "mongodb": (f"mongodb+srv://svc:{rand(16)}@cluster0.abcde.mongodb.net/", "connection-string"),
    "redis": (f"redis://default:{rand(20)}@cache.internal:6379/0", "connection-string"),
    "amqp": (f"amqp://worker:{rand(12)}@rabbit.corp.net/vhost", "connection-string"),
    "generic": ('db_password = "Tr0ub4dor&3xQ9!zkW"', "password-assignment"),
}

NEGATIVES: dict[str, str] = {
    "github-wrong-checksum": github_token()[:-1] + ("A" if github_token()[-1] != "A" else "B"),
    "github-too-short": "ghp_" + rand(30),
    "aws-example-id": "AKIAIOSFODNN7EXAMPLE",
    "aws-example-pair": "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "openai-ellipsis": 'OPENAI_API_KEY="sk-..."',
    "openai-x": "sk-proj-" + "x" * 60,
    "your-api-key": "api_key = YOUR_API_KEY",
    "angle-token": "token: <token>",
    "env-lookup": 'password = os.environ["DB_PASSWORD"]',
    "hf-placeholder": "hf_" + "x" * 34,
    "stripe-publishable": "pk_live_" + rand(24),
    "gitlab-placeholder": "glpat-xxxxxxxxxxxxxxxxxxxx",
    "sendgrid-elided": "SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "databricks-short": "dapi" + "0123456789abcdef" + "01234567",
    "groq-placeholder": "gsk_" + "YOUR_GROQ_KEY_HERE_" * 3,
    "stripe-placeholder": "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
    "pem-elided": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "pem-public": "-----BEGIN PUBLIC KEY-----\n" + rand(300) + "\n-----END PUBLIC KEY-----",
    "jwt-not-json": "eyJ" + rand(30) + ".eyJ" + rand(30) + "." + rand(40),
    "jwt-no-alg": jwt({"typ": "JWT"}),
    "jwt-alg-none": jwt({"alg": "none"}),
    "conn-placeholder": "postgres://user:password@localhost:5432/db",
    "conn-env": "postgres://app:${DB_PASSWORD}@db/prod",
    "conn-example-host": f"mysql://app:{rand(12)}@db.example.com/x",
    "conn-no-password": "postgres://app@db.corp.net/prod",
    "generic-low-entropy": 'password = "aaaaaaaaaaaaaaaa"',
    "generic-word": "secret_key = my_secret_value",
    "generic-example-line": 'password = "Tr0ub4dor&3xQ9!zkW"  # example',
    "generic-short": 'password = "Ab1!"',
    "generic-fstring": 'password = f"{prefix}Xk9pQ2zLm{suffix}"',
    "generic-call": "token = TokenElement(id=1425, text='x')",
    "generic-annotation": "private_key: Ed25519PrivateKey",
    "generic-dotted-name": "client_secret = constants.OAUTH_CLIENT_SECRET",
    "conn-default-account": "postgresql://postgres:postgres@localhost:5432/db",
}


@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_detector_positive(name: str) -> None:
    text, kind = POSITIVES[name]
    kinds = [m.kind for m in find_secrets(text)]
    assert kind in kinds, (name, kinds)


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_detector_near_miss_negative(name: str) -> None:
    found = [(m.kind, m.redacted) for m in find_secrets(NEGATIVES[name])]
    assert found == [], name


def test_github_checksum_is_crc32_base62() -> None:
    token = github_token()
    assert crc32_token_ok(token[4:])
    assert not crc32_token_ok(token[4:-6] + "000000")


def test_aws_id_alone_is_medium_and_with_secret_high() -> None:
    alone = [m for m in find_secrets(f"id {AWS_ID}") if m.kind == "aws-access-key-id"]
    paired = [m for m in find_secrets(POSITIVES["aws-pair"][0]) if m.kind == "aws-access-key-id"]
    assert alone[0].severity is Severity.MEDIUM
    assert paired[0].severity is Severity.HIGH


def test_stripe_test_key_is_medium() -> None:
    (match,) = find_secrets(f"sk_test_{rand(24)}")
    assert match.severity is Severity.MEDIUM


def test_rules_by_family() -> None:
    rule = {name: next(iter(find_secrets(t))).rule for name, (t, _) in POSITIVES.items()}
    assert rule["github-token"] is SEC001
    assert rule["pem"] is SEC002
    assert rule["jwt"] is SEC003
    assert rule["postgres"] is SEC004
    assert rule["generic"] is SEC005


def test_redaction_never_contains_the_value() -> None:
    for text, _ in POSITIVES.values():
        for match in find_secrets(text):
            shown = match.redacted
            assert match.value not in shown
            assert len(shown.split(" ")[1].rstrip("…")) <= 4
            assert "sha256:" in shown
            assert repr(match).find(match.value) == -1


def test_redact_short_values_show_at_most_a_fifth() -> None:
    assert redact("password", "hunter2xyz").split(" ")[1] == "hu…"


def test_one_span_reported_once() -> None:
    text = f"GITHUB_TOKEN={github_token()}"
    assert len(list(find_secrets(text))) == 1


def test_offsets_hold_when_lowercasing_changes_length() -> None:
    """'İ'.lower() has two characters; the detector windows must not drift off the token."""
    token = github_token()
    text = "İ" * 300 + " token " + token
    (match,) = find_secrets(text)
    assert text[match.start : match.end] == token


def test_prose_without_needles_is_cheap() -> None:
    """No needle, no regex: 8 MiB of zeros and prose are rejected by str.find alone."""
    import time

    blob = "\x00" * (8 << 20) + "plain words only " * 1000
    started = time.perf_counter()
    assert list(find_secrets(blob)) == []
    assert time.perf_counter() - started < 2.0
