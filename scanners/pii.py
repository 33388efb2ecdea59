"""Personal-data detectors for dataset rows: each candidate must pass a checksum or format rule.

* e-mail addresses (reserved and documentation domains such as ``example.com`` are negatives);
* phone numbers, validated by ``phonenumbers`` (Google's libphonenumber metadata: maintained,
  pure Python, no native code) when it is installed; without it a documented NANP/E.164 regex
  is used and ``PHONE_BACKEND`` says so. The 555-0100..0199 fictional range is a negative;
* payment cards: Luhn plus issuer (IIN) ranges and lengths; published test numbers are negatives;
* IBANs: per-country length plus ISO 13616 mod-97; the documented example IBANs are negatives;
* national ids: US SSN (format rules: no 000/666/9xx area, 00 group, 0000 serial, no advertised
  numbers), UK NINO (format and prefix rules), German Steuer-ID (ISO 7064 MOD 11,10 check digit
  and digit-frequency rule, only next to a tax-id word since any 11 digits pass 1 in 10);
* IP addresses: only *global* (public) IPv4/IPv6 are personal data; private, loopback,
  link-local, multicast, reserved and documentation ranges (RFC 5737/3849) are not reported.

A match on a line that calls itself an example (``example``, ``e.g.``, ``sample``, ``dummy``,
``fake``, ``test card``) is a negative: documentation is not personal data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from supplychain.core.model import Rule, Severity
from supplychain.core.rules import make_rule

DISCLOSURE = ("LLM02",)
ATLAS_LEAKAGE = ("AML.T0057",)
"""MITRE ATLAS: LLM data leakage."""
_REFS = ("https://genai.owasp.org/llmrisk/llm022025-sensitive-information-disclosure/",)


def _pii_rule(rule_id: str, title: str, severity: Severity, what: str) -> Rule:
    return make_rule(
        rule_id,
        title,
        severity,
        f"Dataset rows contain {what}. A model fine-tuned on them, or a RAG index serving them, "
        "can disclose them to any user; their processing needs a legal basis. Severity grows "
        "with the number of rows and the kind of data.",
        "Remove or pseudonymise the values before training or indexing (a PII scrubber), or "
        "document why they are there and waive the finding with a reason.",
        cwe=359,
        owasp_llm=DISCLOSURE,
        atlas=ATLAS_LEAKAGE,
        references=_REFS,
    )


PII001 = _pii_rule("PII001", "E-mail addresses in dataset", Severity.LOW, "e-mail addresses")
PII002 = _pii_rule("PII002", "Phone numbers in dataset", Severity.LOW, "phone numbers")
PII003 = _pii_rule(
    "PII003", "Payment card numbers in dataset", Severity.MEDIUM, "payment card numbers (Luhn)"
)
PII004 = _pii_rule("PII004", "IBANs in dataset", Severity.MEDIUM, "bank account numbers (IBAN)")
PII005 = _pii_rule(
    "PII005",
    "National identification numbers in dataset",
    Severity.MEDIUM,
    "national identification numbers (US SSN, UK NINO, German tax id)",
)
PII006 = _pii_rule("PII006", "Public IP addresses in dataset", Severity.LOW, "public IP addresses")
PII007 = make_rule(
    "PII007",
    "Phone detection degraded",
    Severity.INFO,
    "The phonenumbers library is not installed, so phone numbers were matched by a NANP/E.164 "
    "regex only: fewer countries, no per-country validity check.",
    "Install supplychain[sensitive] (phonenumbers) for validated international phone numbers.",
    owasp_llm=DISCLOSURE,
    atlas=ATLAS_LEAKAGE,
)
PII_RULES: tuple[Rule, ...] = (PII001, PII002, PII003, PII004, PII005, PII006, PII007)


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One personal-data value found in a text; ``value`` is never printed (see ``redact``)."""

    kind: str
    """``email``, ``phone``, ``card``, ``iban``, ``us-ssn``, ``uk-nino``, ``de-steuer-id``,
    ``ipv4``, ``ipv6``."""
    rule: Rule
    start: int
    end: int
    value: str = field(repr=False)


_EXAMPLE_LINE = re.compile(
    r"example|e\.g\.|for instance|sample|dummy|fake|placeholder|test (?:card|number)|lorem",
    re.IGNORECASE,
)


def _example_context(text: str, start: int, end: int) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return bool(_EXAMPLE_LINE.search(line))


# --- e-mail ----------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![A-Za-z0-9\-])",
    re.ASCII,
)
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost", "local", "internal"})
_FILE_TLDS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "js", "css", "py", "ts", "json", "html", "md"}
)
_PLACEHOLDER_LOCALS = frozenset(
    {
        "user",
        "username",
        "name",
        "email",
        "you",
        "your",
        "yourname",
        "someone",
        "foo",
        "bar",
        "test",
        "john.doe",
        "jane.doe",
        "git",
        "noreply",
        "no-reply",
        "donotreply",
    }
)


def _emails(text: str) -> Iterator[PiiMatch]:
    for m in _EMAIL.finditer(text):
        if m.start() and text[m.start() - 1] in ":/":
            continue  # user:password@host in a URL, not an address
        local, domain, tld = m.group(1).lower(), m.group(2).lower(), m.group(3).lower()
        if tld in _RESERVED_TLDS or tld in _FILE_TLDS:
            continue
        if domain in _RESERVED_DOMAINS or domain.endswith(
            tuple("." + d for d in _RESERVED_DOMAINS)
        ):
            continue
        if local in _PLACEHOLDER_LOCALS or "your" in local or "example" in local:
            continue
        if _example_context(text, m.start(), m.end()):
            continue
        yield PiiMatch("email", PII001, m.start(), m.end(), m.group(0))


# --- phone -----------------------------------------------------------------------------------

_phonenumbers: Any
try:
    import phonenumbers as _phonenumbers

    PHONE_BACKEND = "phonenumbers"
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _phonenumbers = None
    PHONE_BACKEND = "regex"
"""``phonenumbers`` (validated, every country) or ``regex`` (NANP and E.164 shapes only)."""

_PHONE_CANDIDATE = re.compile(
    r"(?<![\w.+/-])(\+?\(?\d{1,4}\)?(?:[ .\-]?\(?\d{1,5}\)?){2,6})(?![\w/-])|"
    r"(?<![\w.+/-])(\+\d{8,15})(?![\w/-])",
    re.ASCII,
)
_PHONE_WORDS = re.compile(r"phone|tel\b|mobile|cell|call|fax|whatsapp|sms|contact", re.IGNORECASE)
_NANP_FALLBACK = re.compile(r"^(?:\+?1[ .\-]?)?\(?[2-9]\d{2}\)?[ .\-]?[2-9]\d{2}[ .\-]\d{4}$")
_E164_FALLBACK = re.compile(r"^\+[1-9][\d .\-]{7,17}\d$")
_FICTIONAL = re.compile(r"555[ .\-]?01\d\d$")
"""North American numbers reserved for fiction (555-0100..0199)."""
_UK_DRAMA = re.compile(
    r"(?:^|44|0)(?:2079460|7700900|1\d\d4960|1914980|1632960|8081570|9098790)\d{3}$"
)
"""Ofcom's numbers reserved for drama (020 7946 0xxx, 07700 900xxx, 0113 496 0xxx…), as digits."""


_NATIONAL_REGIONS = ("GB", "DE", "FR", "IN", "AU", "ES", "IT", "NL", "BR", "JP")
"""Regions tried for a number in national format (leading 0, no ``+``) next to a phone word."""


def _phone_valid(candidate: str, backend: str, context: bool = False) -> bool:
    if backend == "phonenumbers" and _phonenumbers is not None:
        region = None if candidate.startswith("+") else "US"
        try:
            number = _phonenumbers.parse(candidate, region)
            if _phonenumbers.is_valid_number(number):
                return True
        except _phonenumbers.NumberParseException:
            pass
        if region == "US" and _NANP_FALLBACK.match(candidate):
            # Numbering plans change and synthetic data uses unassigned area codes; a formatted
            # NANP shape (area and exchange 2-9xx) is still a phone number.
            return True
        if region == "US" and context and candidate.startswith(("0", "(0")):
            for other in _NATIONAL_REGIONS:
                try:
                    if _phonenumbers.is_valid_number(_phonenumbers.parse(candidate, other)):
                        return True
                except _phonenumbers.NumberParseException:
                    continue
        return False
    return bool(_NANP_FALLBACK.match(candidate) or _E164_FALLBACK.match(candidate))


def _phones(text: str, backend: str) -> Iterator[PiiMatch]:
    for m in _PHONE_CANDIDATE.finditer(text):
        candidate = (m.group(1) or m.group(2)).strip()
        digits = re.sub(r"\D", "", candidate)
        if not 8 <= len(digits) <= 15:
            continue
        formatted = candidate.startswith("+") or bool(re.search(r"[ .\-()]", candidate))
        context = bool(_PHONE_WORDS.search(text[max(0, m.start() - 40) : m.start()]))
        if not formatted and not context:
            continue  # a bare digit run is an id, an amount or a timestamp far more often
        if re.fullmatch(r"\d{4}[-./]\d{2}[-./]\d{2}", candidate) or re.fullmatch(
            r"\d{1,3}(?:\.\d{1,3}){3}", candidate
        ):
            continue  # dates and IPv4 addresses
        if _FICTIONAL.search(candidate) or _UK_DRAMA.search(digits) or len(set(digits)) <= 2:
            continue
        if not _phone_valid(candidate, backend, context) or _example_context(
            text, m.start(), m.end()
        ):
            continue
        yield PiiMatch("phone", PII002, m.start(1 if m.group(1) else 2), m.end(), candidate)


# --- payment cards ---------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\d\-.])(\d(?:[ \-]?\d){11,18})(?![\d\-]|\.\d)", re.ASCII)
_TEST_CARDS = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "4012888888881881",
        "4000056655665556",
        "5555555555554444",
        "5105105105105100",
        "5200828282828210",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "378734493671000",
        "6011111111111117",
        "6011000990139424",
        "3530111333300000",
        "3566002020360505",
        "30569309025904",
        "38520000023237",
        "36227206271667",
        "6200000000000005",
        "4000000000000002",
        "4000000000000077",
        "4000000000009995",
        "4222222222222",
        "4000000000000010",
    }
)


def luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 check every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The issuer whose IIN range and length fit, or ``None`` (not a payment card)."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    return None


def _cards(text: str) -> Iterator[PiiMatch]:
    for m in _CARD.finditer(text):
        raw = m.group(1)
        if re.search(r"[ \-]{2}", raw):
            continue
        digits = re.sub(r"\D", "", raw)
        if digits in _TEST_CARDS or len(set(digits)) <= 2 or card_brand(digits) is None:
            continue
        if " " in raw or "-" in raw:
            groups = re.split(r"[ \-]", raw)
            if not all(2 <= len(g) <= 6 for g in groups):
                continue  # 4-4-4-4, 4-6-5, 4-4-4-4-3: not arbitrary separators
        if not luhn_ok(digits) or _example_context(text, m.start(), m.end()):
            continue
        yield PiiMatch("card", PII003, m.start(1), m.end(1), digits)


# --- IBAN ------------------------------------------------------------------------------------

IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}
"""ISO 13616 registry lengths."""
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)(?![A-Za-z0-9])"
)
_EXAMPLE_IBANS = frozenset(
    {
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "GB29NWBK60161331926819",
        "CH9300762011623852957",
    }
)


def iban_ok(iban: str) -> bool:
    """Registry length plus the mod-97 check (ISO 7064) every IBAN carries."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _ibans(text: str) -> Iterator[PiiMatch]:
    for m in _IBAN.finditer(text):
        iban = m.group(1).replace(" ", "")
        if iban in _EXAMPLE_IBANS or not iban_ok(iban):
            continue
        if _example_context(text, m.start(), m.end()):
            continue
        yield PiiMatch("iban", PII004, m.start(1), m.end(1), iban)


# --- national ids ----------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\d\-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d\-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security)\b[^0-9]{0,20}(\d{9})(?!\d)", re.IGNORECASE)
_SSN_ADVERTISED = frozenset({"078051120", "219099999", "123456789"})
_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"(?![A-Za-z0-9])"
)
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_STEUER = re.compile(
    r"(?:steuer[- ]?id|steuerliche identifikationsnummer|identifikationsnummer|idnr|tax id|tin)"
    r"\D{0,20}(\d{2} ?\d{3} ?\d{3} ?\d{3})(?!\d)",
    re.IGNORECASE,
)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA format rules: no 000/666/9xx area, no 00 group, no 0000 serial, not advertised."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_ADVERTISED


def steuer_id_ok(digits: str) -> bool:
    """German tax id: 11 digits, no leading 0, digit-frequency rule, ISO 7064 MOD 11,10."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    counts = [digits[:10].count(d) for d in set(digits[:10])]
    if not (max(counts) in (2, 3) and sum(1 for c in counts if c > 1) == 1):
        return False
    product = 10
    for ch in digits[:10]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(digits[10])


def _national_ids(text: str) -> Iterator[PiiMatch]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)) and not _example_context(
            text, m.start(), m.end()
        ):
            yield PiiMatch("us-ssn", PII005, m.start(), m.end(), m.group(0))
    for m in _SSN_CONTEXT.finditer(text):
        d = m.group(1)
        if ssn_ok(d[:3], d[3:5], d[5:]) and not _example_context(text, m.start(), m.end()):
            yield PiiMatch("us-ssn", PII005, m.start(1), m.end(1), d)
    for m in _NINO.finditer(text):
        nino = m.group(1).replace(" ", "")
        if nino[:2] in _NINO_BAD_PREFIX or _example_context(text, m.start(), m.end()):
            continue
        yield PiiMatch("uk-nino", PII005, m.start(1), m.end(1), nino)
    for m in _STEUER.finditer(text):
        digits = m.group(1).replace(" ", "")
        if steuer_id_ok(digits) and not _example_context(text, m.start(), m.end()):
            yield PiiMatch("de-steuer-id", PII005, m.start(1), m.end(1), digits)


# --- IP addresses ----------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])((?:\d{1,3}\.){3}\d{1,3})(?![\w]|\.\d)", re.ASCII)
_IPV6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{1,4}:){2,7}:?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4}){0,6})(?![\w:])",
    re.ASCII,
)
_VERSION_BEFORE = re.compile(r"(?:\bv|version|release|build)\s*$", re.IGNORECASE)


def _ips(text: str) -> Iterator[PiiMatch]:
    for m in _IPV4.finditer(text):
        try:
            addr = ipaddress.IPv4Address(m.group(1))
        except ValueError:
            continue
        if not addr.is_global or addr.is_multicast:
            continue  # private, loopback, link-local, reserved, documentation (RFC 5737)
        if _VERSION_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        yield PiiMatch("ipv4", PII006, m.start(1), m.end(1), m.group(1))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            try:
                addr6 = ipaddress.IPv6Address(m.group(1))
            except ValueError:
                continue
            if not addr6.is_global or addr6.is_multicast or addr6.ipv4_mapped is not None:
                continue  # ULA, link-local, loopback, documentation 2001:db8::/32
            yield PiiMatch("ipv6", PII006, m.start(1), m.end(1), m.group(1))


# --- entry point -----------------------------------------------------------------------------

_PREFILTER = re.compile(r"[@\d]|::", re.ASCII)


def might_hold_pii(text: str) -> bool:
    """``find_pii``'s gate: every kind needs an ``@``, an ASCII digit or ``::`` (IPv6)."""
    return _PREFILTER.search(text) is not None


def find_pii(text: str, *, phone_backend: str | None = None) -> Iterator[PiiMatch]:
    """Every personal-data value in ``text`` (overlaps resolved: most specific kind wins)."""
    if not _PREFILTER.search(text):
        return
    backend = phone_backend or PHONE_BACKEND
    taken: list[tuple[int, int]] = []
    finders: tuple[Callable[[str], Iterator[PiiMatch]], ...] = (
        _emails,
        _ibans,
        _cards,
        _national_ids,
        _ips,
        lambda t: _phones(t, backend),
    )
    for finder in finders:
        for match in finder(text):
            if any(s < match.end and match.start < e for s, e in taken):
                continue
            taken.append((match.start, match.end))
            yield match


__all__ = [
    "IBAN_LENGTHS",
    "PHONE_BACKEND",
    "PII001",
    "PII002",
    "PII003",
    "PII004",
    "PII005",
    "PII006",
    "PII007",
    "PII_RULES",
    "PiiMatch",
    "card_brand",
    "find_pii",
    "iban_ok",
    "luhn_ok",
    "might_hold_pii",
    "ssn_ok",
    "steuer_id_ok",
]
