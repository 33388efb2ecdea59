"""Repo identity: near-miss owner names of well-known publishers, and suspiciously fresh commits.

The publisher list is data (``KNOWN_PUBLISHERS``). A near miss is an owner that is not on the list
but equals a listed one after folding look-alike characters (``rn``→``m``, ``0``→``o``, Cyrillic
``а``→``a``…), or is one edit (insert, delete, substitute, swap) away from one.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

KNOWN_PUBLISHERS: frozenset[str] = frozenset(
    {
        "meta-llama", "facebook", "google", "google-bert", "google-t5", "openai",
        "microsoft", "mistralai", "qwen", "deepseek-ai", "stabilityai", "tiiuae",
        "bigscience", "bigcode", "eleutherai", "huggingfaceh4", "huggingfacetb",
        "huggingface", "nvidia", "apple", "ibm-granite", "allenai", "sentence-transformers",
        "openai-community", "distilbert", "cohereforai", "coherelabs", "anthropic",
        "amazon", "salesforce", "intel", "databricks", "mosaicml", "01-ai", "thudm",
        "zai-org", "baichuan-inc", "internlm", "xai-org", "black-forest-labs",
        "runwayml", "compvis", "laion", "nomic-ai", "baai", "intfloat", "jinaai",
        "unsloth", "thebloke", "lmsys", "timm", "pyannote", "speechbrain", "moonshotai",
    }
)  # fmt: skip
"""Owners of widely used models (lower case), curated; extend as data."""

CONFUSABLES: tuple[tuple[str, str], ...] = (
    ("rn", "m"), ("vv", "w"), ("cl", "d"), ("0", "o"), ("1", "l"), ("i", "l"),
    ("3", "e"), ("5", "s"), ("_", "-"), (".", "-"),
)  # fmt: skip
"""Look-alike sequences folded before comparing (after NFKC and Cyrillic/Greek folding)."""

_SCRIPT_FOLD = str.maketrans(
    {"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i",
     "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ο": "o", "α": "a", "ε": "e", "ι": "i",
     "κ": "k", "ν": "v", "τ": "t", "ρ": "p"}
)  # fmt: skip

RECENT = timedelta(days=3)
ESTABLISHED = timedelta(days=90)


def _fold(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).lower().translate(_SCRIPT_FOLD)
    for seq, repl in CONFUSABLES:
        text = text.replace(seq, repl)
    return text


def _one_edit(a: str, b: str) -> bool:
    """Levenshtein distance 1, or one adjacent transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def near_miss(owner: str, known: frozenset[str] = KNOWN_PUBLISHERS) -> str | None:
    """The well-known publisher ``owner`` imitates, or ``None`` (an exact owner is no near miss)."""
    low = owner.lower()
    if low in known:
        return None
    folded = _fold(owner)
    for pub in sorted(known):
        if len(pub) < 4:
            continue
        if folded == _fold(pub) or _one_edit(low, pub) or _one_edit(folded, _fold(pub)):
            return pub
    return None


def fresh_commit(
    created: datetime | None, modified: datetime | None, now: datetime | None = None
) -> bool:
    """Whether the last change is very recent in a repo with a long history."""
    if created is None or modified is None:
        return False
    now = now or datetime.now(UTC)
    return modified - created >= ESTABLISHED and now - modified <= RECENT
