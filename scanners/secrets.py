"""Credential detectors for text shipped with models and datasets; values are never echoed.

Each detector is a provider key format (with its checksum where the provider publishes one:
GitHub and npm tokens carry a CRC32 of their random part), a structural check (PEM private-key
blocks with a real base64 body, JWTs whose header decodes to JSON naming an ``alg``, connection
URLs with a ``user:password@``), or, last and least trusted, a ``password=``/``secret=``
assignment whose value also has to look random (entropy is a secondary signal only).
Placeholders (``YOUR_API_KEY``, ``xxxx``, ``<token>``, ``sk-...``, AWS's documented example
keys) are negatives: a gate that cries wolf gets switched off.

Text is matched as ``latin-1`` decoded bytes with ASCII-only classes, so match offsets are byte
offsets and every secret format (all ASCII) is found even inside otherwise UTF-8 text.
Evidence is built only by ``redact``: the kind, the first 4 characters and a sha256 prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from supplychain.core.model import Confidence, Rule, Severity, escape_evidence
from supplychain.core.rules import make_rule

DISCLOSURE = ("LLM02",)
"""OWASP LLM Top 10 (2025): sensitive information disclosure."""
ATLAS_CREDENTIALS = ("AML.T0055",)
"""MITRE ATLAS: unsecured credentials."""
_REFS = ("https://genai.owasp.org/llmrisk/llm022025-sensitive-information-disclosure/",)

SEC001 = make_rule(
    "SEC001",
    "Provider API key or token",
    Severity.HIGH,
    "A credential in a provider's key format (GitHub, Slack, Stripe, AWS, Google, Azure, OpenAI, "
    "Anthropic, Hugging Face, npm, PyPI) is shipped with the model or dataset. Anyone who "
    "downloads the repository can use it, and a model trained on it can repeat it.",
    "Revoke the credential at the provider now (removing the file does not un-leak it), then "
    "remove it from the repository history and load secrets from the environment instead.",
    cwe=798,
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_CREDENTIALS,
    references=_REFS,
)
SEC002 = make_rule(
    "SEC002",
    "Private key block",
    Severity.HIGH,
    "A PEM private key (RSA, EC, OpenSSH, PGP, or a cloud service-account JSON's private_key) "
    "with a real base64 body is shipped with the model or dataset.",
    "Treat the key as compromised: rotate it, remove it from the history, and keep keys out of "
    "model and dataset repositories.",
    cwe=321,
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_CREDENTIALS,
    references=_REFS,
)
SEC003 = make_rule(
    "SEC003",
    "JSON Web Token",
    Severity.MEDIUM,
    "A signed JWT (header decodes to JSON with an alg) is embedded. A bearer token grants access "
    "until it expires; many are long-lived.",
    "Invalidate the token (rotate its signing key or session) and remove it.",
    cwe=522,
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_CREDENTIALS,
    references=_REFS,
)
SEC004 = make_rule(
    "SEC004",
    "Connection string with a password",
    Severity.HIGH,
    "A database or broker URL (postgres, mysql, mongodb, redis, amqp, mssql) carries a "
    "user:password pair.",
    "Change the password and pass connection settings through the environment or a secret "
    "store, never in files shipped with the model.",
    cwe=798,
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_CREDENTIALS,
    references=_REFS,
)
SEC005 = make_rule(
    "SEC005",
    "Hard-coded password or secret assignment",
    Severity.MEDIUM,
    "A password=/secret=/token= assignment whose value looks random (high entropy, no "
    "placeholder). No provider format confirms it, so confidence is low.",
    "If the value is a real secret, rotate it and read it from the environment instead.",
    cwe=798,
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_CREDENTIALS,
    references=_REFS,
)

SECRET_RULES: tuple[Rule, ...] = (SEC001, SEC002, SEC003, SEC004, SEC005)


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """One credential found in a text; ``value`` stays in memory only (never printed)."""

    kind: str
    """Stable detector name, e.g. ``github-token``."""
    rule: Rule
    start: int
    end: int
    value: str = field(repr=False)
    severity: Severity
    confidence: Confidence

    @property
    def redacted(self) -> str:
        """Printable evidence: kind, first 4 characters and a hash, never the value."""
        return redact(self.kind, self.value)


def redact(kind: str, value: str) -> str:
    """``kind ghp_… sha256:0123456789ab``: enough to find and dedupe a secret, not to use it.

    Four characters of a provider prefix or a 30+ character secret carry no usable entropy;
    the hash lets a reviewer check a candidate value against the finding without printing it.
    """
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    shown = value[: min(4, len(value) // 5)]  # a short password keeps at most a fifth visible
    return f"{kind} {escape_evidence(shown)}… sha256:{digest}"


# ---------------------------------------------------------------------------------------------
# Shared predicates
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER_WORDS = (
    "example",
    "your",
    "xxxx",
    "placeholder",
    "dummy",
    "redacted",
    "changeme",
    "change_me",
    "replace",
    "insert",
    "sample",
    "fake",
    "secret_here",
    "token_here",
    "key_here",
    "abcdef",
    "123456",
    "password",
    "<",
    ">",
    "${",
    "{{",
    "%s",
    "...",
    "…",
    "***",
)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def is_placeholder(value: str) -> bool:
    """Documentation filler rather than a credential: template words, runs, too few symbols."""
    low = value.lower()
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return True
    if re.search(r"(.)\1{5,}", value):  # xxxxxx, 000000, ------
        return True
    core = re.sub(r"[^A-Za-z0-9]", "", value)
    return len(set(core)) < min(8, max(3, len(core) // 3))


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, width: int) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(_B62[rem])
    return "".join(reversed(out)).rjust(width, "0")


def crc32_token_ok(body: str) -> bool:
    """GitHub/npm scheme: the last 6 characters are base62(CRC32(the 30 before them))."""
    random_part, check = body[:-6], body[-6:]
    return _base62(zlib.crc32(random_part.encode()), 6) == check


def _b64url_json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------------

Verdict = tuple[Severity, Confidence] | None
"""A detector's judgement of one regex match: ``None`` rejects it."""


@dataclass(frozen=True, slots=True)
class Detector:
    """A regex that proposes candidates and a validator that accepts, grades or rejects them."""

    kind: str
    rule: Rule
    pattern: re.Pattern[str]
    check: Callable[[re.Match[str], str], Verdict]
    needles: tuple[str, ...]
    """Lower-case literals every match contains: the pattern only runs in windows around them."""
    group: int | str = 0
    """The regex group holding the secret value (what is redacted and hashed)."""
    back: int = 0
    """How far before a needle a match may start."""
    reach: int = 400
    """How far past a needle a match may end."""


_HIGH = (Severity.HIGH, Confidence.HIGH)
_B = r"(?<![A-Za-z0-9_\-])"
"""Left word boundary that also treats ``-`` as part of a token."""
_E = r"(?![A-Za-z0-9_\-])"


def _value(m: re.Match[str], group: int | str) -> str:
    return m.group(group) or ""


def _plain(min_entropy: float = 3.0) -> Callable[[re.Match[str], str], Verdict]:
    def check(m: re.Match[str], text: str) -> Verdict:
        value = m.group("v") if "v" in m.re.groupindex else m.group(0)
        if is_placeholder(value) or entropy(value) < min_entropy:
            return None
        return _HIGH

    return check


def _github(m: re.Match[str], text: str) -> Verdict:
    body = m.group(0)[4:]
    return _HIGH if crc32_token_ok(body) else None


def _npm(m: re.Match[str], text: str) -> Verdict:
    body = m.group(0)[4:]
    if crc32_token_ok(body):
        return _HIGH
    if is_placeholder(body) or entropy(body) < 4.0:
        return None
    return (Severity.HIGH, Confidence.MEDIUM)


_AWS_EXAMPLE_IDS = frozenset({"AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"})
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")
_AWS_SECRET_WINDOW = 300


def _aws_secret_near(text: str, start: int, end: int) -> bool:
    window = text[max(0, start - _AWS_SECRET_WINDOW) : end + _AWS_SECRET_WINDOW]
    for cand in _AWS_SECRET.finditer(window):
        value = cand.group(1)
        if (
            not is_placeholder(value)
            and entropy(value) > 4.2
            and any(c.isdigit() for c in value)
            and any(c.islower() for c in value)
            and any(c.isupper() for c in value)
        ):
            return True
    return False


def _aws_key_id(m: re.Match[str], text: str) -> Verdict:
    value = m.group(0)
    if value in _AWS_EXAMPLE_IDS or value.endswith("EXAMPLE") or is_placeholder(value[4:]):
        return None
    if _aws_secret_near(text, m.start(), m.end()):
        return _HIGH  # key id with its secret: a usable credential pair
    return (Severity.MEDIUM, Confidence.HIGH)  # an id alone names an account, grants nothing


def _aws_labelled_secret(m: re.Match[str], text: str) -> Verdict:
    value = m.group("v")
    if is_placeholder(value) or entropy(value) < 4.0 or "EXAMPLEKEY" in value:
        return None
    return _HIGH


def _stripe(m: re.Match[str], text: str) -> Verdict:
    value = m.group(0)
    if is_placeholder(value.split("_", 2)[2]) or entropy(value) < 3.5:
        return None
    if "_test_" in value:
        return (Severity.MEDIUM, Confidence.HIGH)  # test-mode keys move no money
    return _HIGH


_PEM_BODY = re.compile(r"(?:\\[nr]|[\s\"'])+")


def _pem(m: re.Match[str], text: str) -> Verdict:
    body = _PEM_BODY.sub("", m.group("body"))
    body = re.sub(r"^(?:[A-Za-z-]+:[^\\\n]*)+", "", body)  # Proc-Type/DEK-Info headers
    if len(body) < 64 or is_placeholder(body) or entropy(body) < 4.5:
        return None
    if not re.fullmatch(r"[A-Za-z0-9+/=:,\-]+", body):
        return None
    return _HIGH


def _jwt(m: re.Match[str], text: str) -> Verdict:
    header_part, payload_part, signature = m.group(0).split(".")
    header = _b64url_json(header_part)
    payload = _b64url_json(payload_part)
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        return None
    if header["alg"].lower() == "none" or not isinstance(payload, dict):
        return None
    if len(signature) < 16 or is_placeholder(signature):
        return None
    return (Severity.MEDIUM, Confidence.HIGH)


_CONN_PLACEHOLDERS = frozenset(
    {"pass", "pwd", "passwd", "secret", "password", "pw", "root", "admin", "test", "guest"}
    | {"postgres", "mysql", "redis", "mongo", "rabbitmq", "changeme", "example", "default"}
)


def _conn(m: re.Match[str], text: str) -> Verdict:
    password = m.group("v")
    user = m.group("user")
    host = m.group("host").lower()
    if password.lower() in _CONN_PLACEHOLDERS or is_placeholder(password):
        return None
    if password.lower() == user.lower():
        return None  # postgres:postgres, guest:guest: a default account, no secret
    if password.startswith(("$", "%", "{", "(")) or user.startswith(("$", "{", "<")):
        return None
    if host.endswith((".example", ".example.com", "example.com", ".example.org", ".invalid")):
        return None
    if host in {"host", "hostname", "server", "your-host"}:
        return None
    return _HIGH


_GENERIC_KEYS = (
    r"password|passwd|pwd|secret|secret[_-]?key|client[_-]?secret|api[_-]?key|apikey|"
    r"access[_-]?token|auth[_-]?token|private[_-]?key|token"
)
_GENERIC_NEEDLES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "api-key",
    "apikey",
    "access_token",
    "access-token",
    "auth_token",
    "auth-token",
    "private_key",
    "private-key",
    "token",
)
_CODE_VALUE = re.compile(
    r"^(?:os\.|env|getenv|self\.|config\.|settings\.|none$|null$|true$|false$)"
)


_PROVIDER_SHAPE = re.compile(
    r"^(?:gh[pousr]_|github_pat_|npm_|xox|xapp-|sk_|rk_|AKIA|ASIA|AIza|sk-|hf_|api_org_|pypi-|eyJ|"
    r"gl(?:pat|dt|rt|ptt|cbt|oas)-|SG\.|shp(?:at|ca|pa|ss)_|dapi|r8_|gsk_)"
)
"""Values a provider detector already judged (a wrong checksum must not come back as generic)."""


_EXPRESSION = re.compile(r"[(){}\[\]]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
"""Brackets (a call, an f-string/template interpolation, a subscript) or a dotted name: code
that computes the value, not a literal secret."""


def _generic(m: re.Match[str], text: str) -> Verdict:
    value = m.group("v")
    if _PROVIDER_SHAPE.match(value) or _EXPRESSION.search(value):
        return None
    if not m.group("q") and re.fullmatch(r"[A-Za-z_]\w*", value, re.ASCII):
        return None  # an unquoted identifier: a variable or a type annotation, not a literal
    if len(value) < 12 or is_placeholder(value) or _CODE_VALUE.match(value.lower()):
        return None
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    if classes < 3 or entropy(value) < 3.5:
        return None
    if re.fullmatch(r"[a-z]+(?:[_.-][a-z]+)*", value, re.IGNORECASE):  # identifiers, words
        return None
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    line = text[line_start : line_end if line_end >= 0 else len(text)].lower()
    if any(w in line for w in ("example", "e.g.", "for instance", "dummy", "fake")):
        return None
    return (Severity.MEDIUM, Confidence.LOW)


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | flags)


DETECTORS: tuple[Detector, ...] = (
    Detector(
        "github-token",
        SEC001,
        _rx(_B + r"gh[pousr]_[A-Za-z0-9]{36}" + _E),
        _github,
        needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    Detector(
        "github-fine-grained-token",
        SEC001,
        _rx(_B + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + _E),
        _plain(4.0),
        needles=("github_pat_",),
    ),
    Detector("npm-token", SEC001, _rx(_B + r"npm_[A-Za-z0-9]{36}" + _E), _npm, needles=("npm_",)),
    Detector(
        "slack-token",
        SEC001,
        _rx(_B + r"xox[baprse]-(?:\d{8,13}-){1,3}[A-Za-z0-9\-]{20,64}" + _E),
        _plain(3.5),
        needles=("xox",),
    ),
    Detector(
        "slack-webhook",
        SEC001,
        _rx(
            r"https://hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/(?P<v>[A-Za-z0-9]{24})"
        ),
        _plain(3.5),
        needles=("hooks.slack.com",),
        back=8,
    ),
    Detector(
        "stripe-key",
        SEC001,
        _rx(_B + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,99}" + _E),
        _stripe,
        needles=("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
    ),
    Detector(
        "aws-access-key-id",
        SEC001,
        _rx(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Z0-9])"),
        _aws_key_id,
        needles=("akia", "asia", "abia", "acca"),
    ),
    Detector(
        "aws-secret-access-key",
        SEC001,
        _rx(
            r"aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
            re.IGNORECASE,
        ),
        _aws_labelled_secret,
        group="v",
        needles=("aws",),
    ),
    Detector(
        "google-api-key",
        SEC001,
        _rx(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E),
        _plain(3.5),
        needles=("aiza",),
    ),
    Detector(
        "azure-storage-key",
        SEC001,
        _rx(r"AccountKey=(?P<v>[A-Za-z0-9+/]{86}==)"),
        _plain(4.5),
        group="v",
        needles=("accountkey=",),
    ),
    Detector(
        "azure-client-secret",
        SEC001,
        _rx(
            r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])"
        ),
        _plain(4.0),
        needles=("q~",),
        back=4,
    ),
    Detector(
        "openai-key",
        SEC001,
        _rx(
            _B
            + r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,200}"
            + r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"
            + _E
        ),
        _plain(4.0),
        needles=("sk-",),
    ),
    Detector(
        "anthropic-key",
        SEC001,
        _rx(_B + r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{80,110}" + _E),
        _plain(4.0),
        needles=("sk-ant-",),
    ),
    Detector(
        "huggingface-token",
        SEC001,
        _rx(_B + r"(?:hf_|api_org_)[A-Za-z0-9]{34}" + _E),
        _plain(3.8),
        needles=("hf_", "api_org_"),
    ),
    Detector(
        "pypi-token",
        SEC001,
        _rx(_B + r"pypi-Ag(?:EIcHlwaS5vcmc|ENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}" + _E),
        _plain(4.0),
        needles=("pypi-ag",),
    ),
    Detector(
        "gitlab-token",
        SEC001,
        _rx(_B + r"gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_\-]{20,64}" + _E),
        _plain(3.5),
        needles=("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "gloas-"),
    ),
    Detector(
        "slack-app-token",
        SEC001,
        _rx(_B + r"xapp-\d-[A-Z0-9]{9,12}-\d{10,14}-[a-f0-9]{64}" + _E),
        _plain(3.5),
        needles=("xapp-",),
    ),
    Detector(
        "sendgrid-key",
        SEC001,
        _rx(_B + r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _E),
        _plain(4.0),
        needles=("sg.",),
    ),
    Detector(
        "shopify-token",
        SEC001,
        _rx(_B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E),
        _plain(3.0),
        needles=("shpat_", "shpca_", "shppa_", "shpss_"),
    ),
    Detector(
        "databricks-token",
        SEC001,
        _rx(_B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E),
        _plain(3.0),
        needles=("dapi",),
    ),
    Detector(
        "replicate-token",
        SEC001,
        _rx(_B + r"r8_[A-Za-z0-9]{37}" + _E),
        _plain(3.8),
        needles=("r8_",),
    ),
    Detector(
        "groq-key",
        SEC001,
        _rx(_B + r"gsk_[A-Za-z0-9]{52}" + _E),
        _plain(4.0),
        needles=("gsk_",),
    ),
    Detector(
        "private-key",
        SEC002,
        _rx(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?P<body>[\s\S]{0,12000}?)"
            r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        ),
        _pem,
        needles=("private key",),
        back=40,
        reach=12200,
    ),
    Detector(
        "jwt",
        SEC003,
        _rx(_B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}" + _E),
        _jwt,
        needles=("eyj",),
        reach=4000,
    ),
    Detector(
        "connection-string",
        SEC004,
        _rx(
            r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver)"
            r"(?:\+[a-z0-9]+)?://(?P<user>[^\s:/@\"'<>]{1,64}):(?P<v>[^\s@/\"'<>]{3,128})@"
            r"(?P<host>[A-Za-z0-9.\-_\[\]:]{1,253})",
            re.IGNORECASE,
        ),
        _conn,
        needles=("postgres", "mysql", "mariadb", "mongodb", "redis", "amqp", "mssql", "sqlserver"),
        reach=700,
    ),
    Detector(
        "password-assignment",
        SEC005,
        _rx(
            r"(?<![A-Za-z0-9])(?:" + _GENERIC_KEYS + r")[\"']?\s*(?::=|=>|[:=])\s*"
            r"(?P<q>[\"'`]?)(?P<v>[^\s\"'`,;]{8,128})(?P=q)",
            re.IGNORECASE,
        ),
        _generic,
        group="v",
        needles=_GENERIC_NEEDLES,
        reach=300,
    ),
)
"""Every secret detector, most specific first (a span taken by one is not reported again)."""


_NEEDLES: tuple[tuple[str, int], ...] = tuple(
    (needle, index) for index, det in enumerate(DETECTORS) for needle in det.needles
)
"""Every (needle, detector index): one ``in`` per needle decides which detectors run at all."""


def _trie_pattern(words: list[str]) -> str:
    """A regex matching any of ``words``, as a character trie (``a(?:ws|kia|…)``): ``re``
    checks one first-character set per position instead of trying every alternative."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        if "" in node:  # a needle ends here: a longer one adds nothing to "is any present"
            return ""
        alts = [re.escape(ch) + build(sub) for ch, sub in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return build(trie)


_ANY_NEEDLE = re.compile(_trie_pattern(sorted({needle for needle, _i in _NEEDLES})))
"""Any needle, in one pass over the lowered text (2× faster than 65 ``in`` scans; rows without
a needle, nearly all of them in a dataset, stop there)."""


def _needle_automaton() -> Callable[[str], bool] | None:
    """Aho–Corasick over the needles when ``pyahocorasick`` is installed (twice as fast again
    as the trie regex; same answer, ``tests/scanners/test_secrets_gate.py``)."""
    try:
        import ahocorasick  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    automaton = ahocorasick.Automaton()
    for needle, _i in _NEEDLES:
        automaton.add_word(needle, needle)
    automaton.make_automaton()
    scan = automaton.iter

    def has_needle(low: str) -> bool:
        for _hit in scan(low):
            return True
        return False

    return has_needle


def _regex_has_needle(low: str) -> bool:
    return _ANY_NEEDLE.search(low) is not None


has_needle: Callable[[str], bool] = _needle_automaton() or _regex_has_needle
"""Whether the lowered text holds any detector's needle (the gate of ``find_secrets``)."""

NEEDLES: tuple[str, ...] = tuple(sorted({needle for needle, _i in _NEEDLES}))
"""Every detector's needle (lowercase): text whose ``lower()`` holds none has no secret."""


def _windows(low: str, det: Detector) -> list[tuple[int, int]]:
    """Merged ``[start, end)`` ranges around every needle of ``det`` in ``low``."""
    spans: list[tuple[int, int]] = []
    size = len(low)
    for needle in det.needles:
        at = low.find(needle)
        while at >= 0:
            spans.append((max(0, at - det.back), min(size, at + det.reach)))
            at = low.find(needle, at + 1)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def find_secrets(text: str) -> Iterator[SecretMatch]:
    """Every credential in ``text``, each span reported once (by its most specific detector).

    A detector's regex only runs in windows around its needles (``str.find`` is a C memchr
    loop), so text without any needle costs one ``lower()`` and a few finds: a 16 MiB file of
    prose or zeros is never fed to a many-alternative regex.
    """
    low = text.lower()
    if not has_needle(low):
        return
    present = {i for needle, i in _NEEDLES if needle in low}
    if not present:
        return
    aligned = len(low) == len(text)  # "İ".lower() is two characters: offsets would drift
    taken: list[tuple[int, int]] = []
    for index, det in enumerate(DETECTORS):
        if index not in present:
            continue
        if aligned:
            windows = _windows(low, det)
        else:
            windows = [(0, len(text))] if any(n in low for n in det.needles) else []
        for win_start, win_end in windows:
            for m in det.pattern.finditer(text, win_start, win_end):
                start, end = m.span(det.group)
                if any(s < end and start < e for s, e in taken):
                    continue
                verdict = det.check(m, text)
                if verdict is None:
                    continue
                taken.append(m.span())
                value = _value(m, det.group)
                yield SecretMatch(det.kind, det.rule, start, end, value, verdict[0], verdict[1])


__all__ = [
    "DETECTORS",
    "NEEDLES",
    "SEC001",
    "SEC002",
    "SEC003",
    "SEC004",
    "SEC005",
    "SECRET_RULES",
    "Detector",
    "SecretMatch",
    "crc32_token_ok",
    "entropy",
    "find_secrets",
    "has_needle",
    "is_placeholder",
    "redact",
]
