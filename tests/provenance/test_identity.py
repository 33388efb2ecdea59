"""Near-miss publisher names (data-driven) and fresh-commit detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supplychain.provenance.identity import KNOWN_PUBLISHERS, fresh_commit, near_miss


@pytest.mark.parametrize(
    ("owner", "imitated"),
    [
        ("meta-llarna", "meta-llama"),  # rn → m
        ("meta-Ilama", "meta-llama"),  # capital I for l
        ("mistral-ai", "mistralai"),  # one insertion
        ("mistrala", "mistralai"),  # one deletion
        ("microsfot", "microsoft"),  # transposition
        ("g00gle", "google"),  # digits for letters
        ("stabi1ityai", "stabilityai"),
        ("nvidla", "nvidia"),
        ("оpenai", "openai"),  # Cyrillic о
        ("deepseek_ai", "deepseek-ai"),
    ],
)
def test_near_misses_are_found(owner: str, imitated: str) -> None:
    assert near_miss(owner) == imitated


@pytest.mark.parametrize(
    "owner", ["meta-llama", "Qwen", "google-bert", "acme-lab", "my-own-models", "bert", "xyz"]
)
def test_real_and_unrelated_owners_are_not(owner: str) -> None:
    assert near_miss(owner) is None


def test_list_is_data_and_extensible() -> None:
    assert "meta-llama" in KNOWN_PUBLISHERS
    assert near_miss("acme-1ab", frozenset({"acme-lab"})) == "acme-lab"


def test_fresh_commit_only_in_established_repos() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    old = now - timedelta(days=400)
    assert fresh_commit(old, now - timedelta(days=1), now)
    assert not fresh_commit(old, now - timedelta(days=30), now)
    assert not fresh_commit(now - timedelta(days=5), now - timedelta(days=1), now)
    assert not fresh_commit(None, now, now)


def test_the_no_internet_guard_refuses_other_hosts() -> None:
    """The autouse guard of these tests (conftest ``no_internet``) really refuses the network."""
    import socket

    with pytest.raises(OSError, match="never touch the internet"):
        socket.getaddrinfo("huggingface.co", 443)
    with socket.socket() as s, pytest.raises(OSError, match="tried to connect"):
        s.connect(("10.255.255.1", 443))
