"""PII detectors: positives, and near misses that fail the checksum, format or context rule."""

from __future__ import annotations

import pytest

from scanners import pii
from scanners.pii import card_brand, find_pii, iban_ok, luhn_ok, ssn_ok, steuer_id_ok

POSITIVES: dict[str, tuple[str, str]] = {
    "email": ("contact maria.lopez@gmail.com please", "email"),
    "email-plus": ("write to j.smith+ml@uni-heidelberg.de", "email"),
    "phone-us": ("call me on (415) 867-5309 tomorrow", "phone"),
    "phone-intl": ("my number +44 20 3123 4567", "phone"),
    "phone-de": ("Tel. +49 30 901820", "phone"),
    "phone-unassigned-area-formatted": ("my cell is (392) 205-4228 thanks", "phone"),
    "phone-uk-national": ("ring my mobile on 07911 123456 after six", "phone"),
    "phone-de-national": ("Telefon: call 030 901820 tomorrow", "phone"),
    "card-visa-spaced": ("card 4539 1488 0343 6467 exp 09/27", "card"),
    "card-amex": ("amex 3498 765432 10127 ok", "card"),
    "card-mc-2series": ("pay with 2221000000000009", "card"),
    "iban-de": ("IBAN DE44 5001 0517 5407 3249 31", "iban"),
    "iban-gb-compact": ("send to GB33BUKB20201555555555 today", "iban"),
    "ssn": ("her number 536-22-1234.", "us-ssn"),
    "ssn-context": ("SSN: 536221234", "us-ssn"),
    "nino": ("NI number AB 12 34 56 C", "uk-nino"),
    "steuer-id": ("Steuer-ID: 65929970489", "de-steuer-id"),
    "ipv4": ("login from 8.8.4.4 at noon", "ipv4"),
    "ipv6": ("addr 2606:4700:4700::1111 ok", "ipv6"),
}

NEGATIVES: dict[str, str] = {
    "email-example-domain": "send to someone@example.com",
    "email-example-subdomain": "mail ops@mail.example.org now",
    "email-code-sample": "# e.g. write to bob@corp.io",
    "email-retina-asset": "icon@2x.png",
    "email-git-remote": "git@github.com:org/repo.git",
    "email-url-userinfo": "mongodb+srv://app:Zx81pLq@cluster1.a1b2c.mongodb.net",
    "phone-fictional-555": "call 415-555-0123",
    "phone-bare-digits": "order 4158675309 shipped",
    "phone-date": "on 2024-03-15 we met",
    "phone-national-no-context": "batch 07911 123456 shipped",
    "phone-uk-drama-london": "my number +44 20 7946 0018",
    "phone-uk-drama-mobile": "ring my mobile on 07700 900123",
    "card-fails-luhn": "card 4539 1488 0343 6468",
    "card-16-digits-no-iin": "id 1234567812345670",
    "card-test-number": "card 4111 1111 1111 1111",
    "card-marked-example": "Example: 4539 1488 0343 6467",
    "card-inside-longer-number": "ref 945391488034364671",
    "iban-bad-checksum": "IBAN DE44 5001 0517 5407 3249 32",
    "iban-wrong-length": "DE4450010517540732493",
    "iban-documented-example": "GB82 WEST 1234 5698 7654 32",
    "ssn-area-000": "000-12-3456",
    "ssn-area-666": "666-12-3456",
    "ssn-area-9xx": "912-12-3456",
    "ssn-woolworth": "078-05-1120",
    "ssn-bare-no-context": "536221234",
    "nino-bad-prefix": "GB 12 34 56 C",
    "nino-bad-suffix": "AB 12 34 56 E",
    "steuer-bad-check": "Steuer-ID: 65929970488",
    "steuer-no-context": "65929970489",
    "ipv4-private": "10.0.0.1 and 192.168.1.20 and 172.16.0.9",
    "ipv4-documentation": "192.0.2.5 198.51.100.7 203.0.113.9",
    "ipv4-loopback": "127.0.0.1",
    "ipv4-version": "version 1.2.3.4",
    "ipv4-out-of-range": "999.1.1.1",
    "ipv6-documentation": "2001:db8::1",
    "ipv6-link-local": "fe80::1",
    "time": "at 12:34:56",
}


@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_pii_positive(name: str) -> None:
    text, kind = POSITIVES[name]
    kinds = [m.kind for m in find_pii(text)]
    assert kind in kinds, (name, kinds)


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_pii_near_miss_negative(name: str) -> None:
    assert [m.kind for m in find_pii(NEGATIVES[name])] == [], name


def test_luhn_and_iin() -> None:
    assert luhn_ok("4539148803436467")
    assert not luhn_ok("4539148803436468")
    assert card_brand("4539148803436467") == "visa"
    assert card_brand("371449635398431") == "amex"
    assert card_brand("1234567812345670") is None


def test_iban_mod97() -> None:
    assert iban_ok("DE44500105175407324931")
    assert not iban_ok("DE44500105175407324932")
    assert not iban_ok("XX44500105175407324931")


def test_national_id_rules() -> None:
    assert ssn_ok("536", "22", "1234")
    assert not ssn_ok("536", "00", "1234")
    assert not ssn_ok("536", "22", "0000")
    assert steuer_id_ok("65929970489")
    assert not steuer_id_ok("05929970489")
    assert not steuer_id_ok("12345678901")  # no repeated digit: frequency rule fails


def test_phone_regex_fallback_without_phonenumbers() -> None:
    """The documented fallback still finds NANP and E.164 numbers and keeps the negatives."""
    found = [m.kind for m in find_pii("call (415) 867-5309", phone_backend="regex")]
    assert found == ["phone"]
    assert [m.kind for m in find_pii("+44 20 3123 4567", phone_backend="regex")] == ["phone"]
    assert list(find_pii("call 415-555-0123", phone_backend="regex")) == []
    assert list(find_pii("order 4158675309 shipped", phone_backend="regex")) == []


def test_phone_backend_is_phonenumbers_when_installed() -> None:
    assert pii.PHONE_BACKEND == "phonenumbers"


def test_values_not_in_repr() -> None:
    (match,) = find_pii("contact maria.lopez@gmail.com please")
    assert "maria" not in repr(match)
