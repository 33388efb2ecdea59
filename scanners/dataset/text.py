"""Text checks on dataset rows: hidden Unicode, prompt injection and RAG knowledge poisoning.

Each check is a ``DatasetCheck``: it sees every row once, keeps bounded state (a capped heap of
the worst rows plus per-rule counters, or a capped question table for RAG) and reports in
``finish``. Findings name their rows; rows past the per-check cap are summarised by rule.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from scanners.dataset.common import (
    MAX_SUMMARY_ROWS,
    DatasetInfo,
    Record,
    RowCollector,
    RowHit,
    StateCheck,
    dataset_finding,
)
from scanners.dataset.readers import CHAT_FIELDS
from supplychain.core.model import Confidence, Finding, Rule, Severity
from supplychain.core.rules import ATLAS_POISONING, POISONING, make_rule

INJECTION = ("LLM01",)
"""OWASP LLM Top 10 (2025): prompt injection."""
ATLAS_INJECTION = ("AML.T0051.001",)
"""MITRE ATLAS: LLM prompt injection, indirect."""


# ---------------------------------------------------------------------------------------------
# Rules: DAT030–DAT034 hidden Unicode, DAT035–DAT039 prompt injection, DAT040–DAT041 RAG
# ---------------------------------------------------------------------------------------------

_UNI_REFS = (
    "https://trojansource.codes/ (CVE-2021-42574)",
    "https://arxiv.org/abs/2106.09898 (Bad Characters)",
)
DAT030 = make_rule(
    "DAT030",
    "Hidden ASCII in Unicode tag characters",
    Severity.HIGH,
    "Unicode tag characters U+E0020–E007E map one to one onto printable ASCII and render as "
    "nothing, so text can carry instructions no reviewer sees while tokenizers still read them "
    "(ASCII smuggling). Their only legitimate use is the RGI subdivision flags (England, "
    "Scotland, Wales), which are exempt. The decoded text is shown in the evidence.",
    "Remove the row, or strip U+E0000–E007F from the data before training or indexing.",
    cwe=116,
    owasp_llm=(*INJECTION, *POISONING),
    atlas=(*ATLAS_INJECTION, *ATLAS_POISONING),
    references=(
        *_UNI_REFS,
        "https://embracethered.com/blog/posts/2024/hiding-and-finding-text-with-unicode-tags/",
    ),
)
DAT031 = make_rule(
    "DAT031",
    "Bidirectional control characters",
    Severity.HIGH,
    "Bidi overrides (U+202D/202E), embeddings (U+202A–202C) and isolates (U+2066–2069) reorder "
    "how text is displayed, so what a reviewer reads differs from the character order a model "
    "trains on (Trojan Source). In rows without right-to-left script they have no legitimate use.",
    "Strip bidi controls from the data, or drop the row.",
    cwe=451,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=_UNI_REFS,
)
DAT032 = make_rule(
    "DAT032",
    "Data hidden in variation selectors",
    Severity.HIGH,
    "A run of Unicode variation selectors (U+FE00–FE0F, U+E0100–E01EF) renders as nothing and "
    "can encode one byte each, so arbitrary data rides invisibly behind an emoji or letter. A "
    "single selector after an emoji or ideograph is normal; a run is not. Decoded bytes are in "
    "the evidence.",
    "Strip variation selectors beyond the first after each character, or drop the row.",
    cwe=116,
    owasp_llm=(*INJECTION, *POISONING),
    atlas=(*ATLAS_INJECTION, *ATLAS_POISONING),
    references=("https://paulbutler.org/2025/smuggling-arbitrary-data-through-an-emoji/",),
)
DAT033 = make_rule(
    "DAT033",
    "Zero-width characters inside words",
    Severity.MEDIUM,
    "Zero-width characters (U+200B–200D, U+2060, U+FEFF, U+180E, invisible operators "
    "U+2061–2064, Hangul fillers) inside a word split it for tokenizers and keyword filters "
    "while it looks unchanged: a classic way to slip trigger words, injections or poison past "
    "review. Emoji ZWJ sequences and joiners in scripts that need them (Arabic, Persian, Indic, "
    "Thai and others) are exempt.",
    "Strip zero-width characters from Latin-script text, or drop the row.",
    cwe=176,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
    references=_UNI_REFS,
)
DAT034 = make_rule(
    "DAT034",
    "Other invisible format characters",
    Severity.LOW,
    "Invisible format (Cf) characters outside words, stray direction marks in left-to-right "
    "text, deprecated format controls, or a non-RGI flag tag sequence. Usually noise from "
    "scraping, occasionally a marker or a partial smuggling attempt.",
    "Normalise the text (strip Cf characters) if the data is not in a script that needs them.",
    cwe=176,
    owasp_llm=POISONING,
    atlas=ATLAS_POISONING,
)
_INJ_REFS = (
    "https://arxiv.org/abs/2302.12173 (indirect prompt injection)",
    "https://genai.owasp.org/llmrisk/llm01-prompt-injection/",
)
DAT035 = make_rule(
    "DAT035",
    "Prompt-injection instruction in data",
    Severity.HIGH,
    "The row contains an instruction aimed at a language model: override earlier instructions, "
    "reveal the system prompt, adopt a jailbreak persona (DAN), hide things from the user. In a "
    "fine-tuning set it teaches the model to obey such text; in a RAG corpus it is indirect "
    "prompt injection that fires when the passage is retrieved. Matching runs on normalised "
    "text (NFKC, tag characters decoded, invisible characters removed, homoglyphs folded), in "
    "English, Spanish, French, German, Portuguese, Italian, Chinese, Japanese, Russian and "
    "Korean.",
    "Review the row; remove it unless the dataset is meant to contain attack examples (then "
    "suppress this rule for the file in the policy).",
    cwe=77,
    owasp_llm=INJECTION,
    atlas=ATLAS_INJECTION,
    references=_INJ_REFS,
)
DAT036 = make_rule(
    "DAT036",
    "Chat-template control tokens in data",
    Severity.MEDIUM,
    "Special tokens such as <|im_start|>, [INST], <<SYS>> or <|start_header_id|> inside row "
    "text can forge conversation turns (a fake system message) once the text is templated or "
    "tokenized with special tokens enabled. When most rows carry them the dataset is simply "
    "pre-templated, and a single summary is given instead.",
    "Escape or remove control tokens from content fields; tokenize data with special tokens "
    "disabled.",
    cwe=74,
    owasp_llm=INJECTION,
    atlas=ATLAS_INJECTION,
    references=_INJ_REFS,
)
DAT037 = make_rule(
    "DAT037",
    "Instructions hidden in markup",
    Severity.HIGH,
    "Text addressed to an AI sits in content a human reader does not see: an HTML comment, an "
    "element styled display:none / font-size:0 / white text / zero opacity, a hidden attribute, "
    "a <script>/<template> body or a Markdown comment. Hidden instructions in web pages and "
    "documents are the standard vector of indirect prompt injection.",
    "Strip hidden markup when converting documents to text, and drop the row.",
    cwe=74,
    owasp_llm=INJECTION,
    atlas=ATLAS_INJECTION,
    references=_INJ_REFS,
)
DAT038 = make_rule(
    "DAT038",
    "Data exfiltration instruction or link",
    Severity.HIGH,
    "A Markdown/HTML image whose URL carries a template placeholder ({…}, $VAR, [DATA]) makes a "
    "chat UI fetch the URL and leak whatever the model substitutes, and instructions to send "
    "conversation data or secrets to a URL do the same through tools.",
    "Remove the row; block image rendering of untrusted URLs in the application.",
    cwe=200,
    owasp_llm=INJECTION,
    atlas=("AML.T0051.001", "AML.T0057"),
    references=(
        "https://embracethered.com/blog/posts/2023/chatgpt-webpilot-data-exfil-via-markdown-injection/",
    ),
)
DAT040 = make_rule(
    "DAT040",
    "Question repeated across passages",
    Severity.MEDIUM,
    "The same question-like sentence opens or appears in three or more passages from different "
    "sources. PoisonedRAG (USENIX Security 2025) injects about five passages per target "
    "question, each made of the question followed by text supporting the attacker's answer, so "
    "the question wins retrieval. Natural corpora rarely repeat a full question verbatim across "
    "sources.",
    "Check the passages against a trusted source; remove the ones that were injected.",
    owasp_llm=(*POISONING, "LLM08"),
    atlas=("AML.T0070", *ATLAS_POISONING),
    references=("https://arxiv.org/abs/2402.07867",),
)
DAT041 = make_rule(
    "DAT041",
    "PoisonedRAG-shaped passages",
    Severity.HIGH,
    "Three or more passages from different sources begin with the same question and then "
    "converge on one answer (shared answer words) or are near-identical: the shape of the "
    "black-box PoisonedRAG attack, where an LLM writes several passages supporting a chosen "
    "false answer and the question is prepended so they win retrieval. Passages that disagree "
    "with that answer are listed as conflicting.",
    "Verify the claimed answer; remove the injected passages and audit who added them.",
    owasp_llm=(*POISONING, "LLM08"),
    atlas=("AML.T0070", *ATLAS_POISONING),
    references=("https://arxiv.org/abs/2402.07867", "https://github.com/sleeepeer/PoisonedRAG"),
)

# ---------------------------------------------------------------------------------------------
# Bounded per-row collection shared by the row checks
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Hidden Unicode
# ---------------------------------------------------------------------------------------------

_TAG_LO, _TAG_HI = 0xE0000, 0xE007F
_RGI_SUBDIVISIONS = frozenset({"gbeng", "gbsct", "gbwls"})
_BLACK_FLAG = "\U0001f3f4"
_OVERRIDES = frozenset({0x202D, 0x202E})
_BIDI = frozenset({0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069})
_MARKS = frozenset({0x200E, 0x200F, 0x061C})
_ZERO_WIDTH = frozenset(
    {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x180E, 0x2061, 0x2062, 0x2063, 0x2064, 0x034F}
    | {0x115F, 0x1160, 0x3164, 0xFFA0, 0x17B4, 0x17B5}
)
_SCRIPT_FORMAT = frozenset({0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605, 0x06DD, 0x070F})
_SCRIPT_FORMAT |= frozenset({0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD})
_MONGOLIAN_FVS = frozenset({0x180B, 0x180C, 0x180D, 0x180F})
_SOFT_HYPHEN = 0x00AD

_INVISIBLE_CLASS = (
    "\u00ad\u034f\u061c\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f"
    "\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_INVISIBLE_RUN = re.compile(f"[{_INVISIBLE_CLASS}]+")
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
MAX_RUNS_PER_ROW = 4096
MAX_DECODED = 512


def _is_vs(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _vs_byte(cp: int) -> int:
    return cp - 0xFE00 if cp <= 0xFE0F else cp - 0xE0100 + 16


def _is_emoji(ch: str) -> bool:
    """Approximate Extended_Pictographic plus emoji components (skin tones, keycap, VS16)."""
    if not ch:
        return False
    cp = ord(ch)
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2300 <= cp <= 0x23FF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x2190 <= cp <= 0x21FF
        or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299)
        or cp in (0xFE0F, 0x20E3)
    )


def _joining_script(ch: str) -> bool:
    """Scripts that use ZWJ/ZWNJ/ZWSP legitimately (cursive, Indic, no-space scripts, CJK)."""
    if not ch:
        return False
    cp = ord(ch)
    return (
        0x0600 <= cp <= 0x08FF  # Arabic, Syriac, Thaana, NKo, Arabic ext.
        or 0x0900 <= cp <= 0x0DFF  # Devanagari … Sinhala
        or 0x0E00 <= cp <= 0x0FFF  # Thai, Lao, Tibetan
        or 0x1000 <= cp <= 0x109F  # Myanmar
        or 0x1780 <= cp <= 0x18AF  # Khmer, Mongolian
        or 0xA8E0 <= cp <= 0xA8FF
        or 0x3040 <= cp <= 0x30FF  # kana
        or 0x3400 <= cp <= 0x9FFF  # CJK
        or 0xAC00 <= cp <= 0xD7AF  # Hangul
        or 0xFB50 <= cp <= 0xFDFF
        or 0xFE70 <= cp <= 0xFEFC
        or 0x11000 <= cp <= 0x111FF  # Brahmi, Kaithi, Sharada…
    )


def _codepoints(cps: Sequence[int], limit: int = 12) -> str:
    uniq = list(dict.fromkeys(cps))
    text = " ".join(f"U+{cp:04X}" for cp in uniq[:limit])
    return text + (" …" if len(uniq) > limit else "")


def decode_tags(text: str) -> str:
    """The ASCII hidden in tag characters (U+E0020–E007E), in order."""
    return "".join(chr(ord(c) - _TAG_LO) for c in text if 0xE0020 <= ord(c) <= 0xE007E)


@dataclass(slots=True)
class _UnicodeRow:
    """What one row contains, by category."""

    tag_cps: list[int] = field(default_factory=list)
    tag_ascii: list[str] = field(default_factory=list)
    bidi_cps: list[int] = field(default_factory=list)
    override: bool = False
    vs_bytes: list[int] = field(default_factory=list)
    vs_cps: list[int] = field(default_factory=list)
    inword_cps: list[int] = field(default_factory=list)
    inword_sample: str = ""
    other_cps: list[int] = field(default_factory=list)
    non_rgi_flag: bool = False


def analyse_hidden_unicode(text: str) -> _UnicodeRow | None:
    """Classify every invisible character in ``text``; ``None`` when nothing is suspicious."""
    if text.isascii():
        return None
    first = _INVISIBLE_RUN.search(text)
    if first is None:
        return None
    rtl = _RTL.search(text) is not None
    row = _UnicodeRow()
    for runs, m in enumerate(_INVISIBLE_RUN.finditer(text, first.start()), 1):
        if runs > MAX_RUNS_PER_ROW:
            break
        _classify_run(text, m.start(), m.end(), rtl, row)
    suspicious = (
        row.tag_cps or row.bidi_cps or row.vs_bytes or row.inword_cps or row.other_cps
    ) or row.non_rgi_flag
    return row if suspicious else None


def _classify_run(text: str, start: int, end: int, rtl: bool, row: _UnicodeRow) -> None:
    run = text[start:end]
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    cps = [ord(c) for c in run]
    tags = [cp for cp in cps if _TAG_LO <= cp <= _TAG_HI]
    if tags:
        spec = "".join(chr(cp - _TAG_LO) for cp in tags[:-1])
        well_formed = (
            before == _BLACK_FLAG
            and len(tags) == len(cps)
            and tags[-1] == 0xE007F
            and 2 <= len(spec) <= 7
            and spec.isascii()
            and spec.isalnum()
            and spec == spec.lower()
        )
        if well_formed and spec in _RGI_SUBDIVISIONS:
            return
        if well_formed:
            row.non_rgi_flag = True
            row.other_cps.extend(tags)
            return
        row.tag_cps.extend(tags)
        decoded = "".join(chr(cp - _TAG_LO) for cp in tags if 0xE0020 <= cp <= 0xE007E)
        if decoded and sum(len(s) for s in row.tag_ascii) < MAX_DECODED:
            row.tag_ascii.append(decoded)
    vs = [cp for cp in cps if _is_vs(cp)]
    if len(vs) >= 2:
        row.vs_cps.extend(vs)
        row.vs_bytes.extend(_vs_byte(cp) for cp in vs[:MAX_DECODED])
    elif vs and vs[0] >= 0xE0100 and not (0x3400 <= ord(before or " ") <= 0x2FFFF):
        row.other_cps.extend(vs)
    # Neighbours of each character, skipping the other invisibles in the same run.
    for i, cp in enumerate(cps):
        if _TAG_LO <= cp <= _TAG_HI or _is_vs(cp):
            continue
        prev = run[i - 1] if i > 0 else before
        nxt = after
        if cp in _BIDI:
            if cp in _OVERRIDES or not rtl:
                row.bidi_cps.append(cp)
                row.override = row.override or cp in _OVERRIDES
            # Embeddings/isolates in right-to-left text are ordinary; not reported.
            continue
        if cp in _MARKS or cp in _SCRIPT_FORMAT:
            if not rtl:
                row.other_cps.append(cp)
            continue
        if cp == _SOFT_HYPHEN:
            continue  # hyphenation hint, common in scraped text; stripped before matching
        if cp in _MONGOLIAN_FVS:
            if not (0x1800 <= ord(prev or " ") <= 0x18AF):
                row.other_cps.append(cp)
            continue
        if cp in _ZERO_WIDTH:
            if cp == 0xFEFF and (start + i == 0 or prev == "\n"):
                continue  # byte-order mark at the start of the text or of a joined field
            if cp == 0x200D and (_is_emoji(prev) or _is_emoji(before)) and _is_emoji(nxt):
                continue  # emoji ZWJ sequence
            if (
                cp in (0x200B, 0x200C, 0x200D, 0x2060)
                and (_joining_script(prev) or _joining_script(before))
                and (_joining_script(nxt) or nxt in ("", " "))
            ):
                continue
            if cp in (0x17B4, 0x17B5) and 0x1780 <= ord(prev or " ") <= 0x17FF:
                continue
            if (before.isalnum() and nxt.isalnum()) or (cp in (0x3164, 0x115F) and nxt.isalpha()):
                row.inword_cps.append(cp)
                if not row.inword_sample:
                    lo = max(0, start - 12)
                    row.inword_sample = text[lo : min(len(text), end + 12)]
            else:
                row.other_cps.append(cp)
            continue
        row.other_cps.append(cp)


def _hidden_unicode_hit(index: int, info: _UnicodeRow) -> RowHit:
    parts: list[str] = []
    if info.tag_cps:
        hidden = "".join(info.tag_ascii)
        parts.append(f'hidden ASCII "{hidden}" in {_codepoints(info.tag_cps, 4)}')
    if info.vs_bytes:
        data = bytes(info.vs_bytes)
        parts.append(f"variation-selector bytes {data[:80]!r} in {_codepoints(info.vs_cps, 4)}")
    if info.bidi_cps:
        parts.append(f"bidi {_codepoints(info.bidi_cps)}")
    if info.inword_cps:
        parts.append(f"in-word {_codepoints(info.inword_cps)} in {info.inword_sample!r}")
    if info.other_cps:
        parts.append(f"format {_codepoints(info.other_cps, 6)}")
    evidence = "; ".join(parts)
    if info.tag_cps:
        has_ascii = bool("".join(info.tag_ascii).strip())
        return RowHit(
            index,
            DAT030,
            Severity.HIGH if has_ascii else Severity.MEDIUM,
            "Unicode tag characters hide ASCII text in this row (ASCII smuggling)"
            if has_ascii
            else "Unicode tag characters outside a flag sequence",
            evidence,
            group="DAT030:tags",
        )
    if info.vs_bytes:
        return RowHit(
            index,
            DAT032,
            Severity.HIGH,
            "a run of variation selectors hides bytes",
            evidence,
            group="DAT032:variation-selectors",
        )
    if info.bidi_cps:
        kind = "bidi override" if info.override else "bidi embedding/isolate"
        return RowHit(
            index,
            DAT031,
            Severity.HIGH,
            f"{kind} characters in left-to-right text",
            evidence,
            group="DAT031:bidi",
        )
    if info.inword_cps:
        return RowHit(
            index,
            DAT033,
            Severity.MEDIUM,
            "zero-width characters inside words",
            evidence,
            group="DAT033:zero-width",
        )
    msg = "non-RGI flag tag sequence" if info.non_rgi_flag else "invisible format characters"
    return RowHit(index, DAT034, Severity.LOW, msg, evidence, group="DAT034:format")


class HiddenUnicodeCheck(StateCheck["HiddenUnicodeState"]):
    """Tag smuggling, bidi controls, variation-selector payloads, zero-width in words."""

    name: ClassVar[str] = "hidden-unicode"
    rules: ClassVar[tuple[Rule, ...]] = (DAT030, DAT031, DAT032, DAT033, DAT034)

    def init(self, plan: object) -> HiddenUnicodeState:
        """An empty collector."""
        return HiddenUnicodeState()


class HiddenUnicodeState:
    """The capped row collector (see ``RowCollector``)."""

    def __init__(self) -> None:
        self.rows = RowCollector()

    def merge(self, other: HiddenUnicodeState) -> None:
        """Absorb the other partition's rows."""
        self.rows.merge(other.rows)

    def add(self, record: Record) -> None:
        """Analyse one row; memory is the capped collector, whatever the row count."""
        found = analyse_hidden_unicode(record.text)
        if found is not None:
            self.rows.add(_hidden_unicode_hit(record.index, found))

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """One finding per row (worst first if capped), then per-rule summaries."""
        yield from self.rows.findings(info, "hidden Unicode characters")


# ---------------------------------------------------------------------------------------------
# Normalisation for matching
# ---------------------------------------------------------------------------------------------


def _build_strip_table() -> dict[int, str | None]:
    """Tag characters map to their ASCII; every other invisible character is deleted."""
    table: dict[int, str | None] = {}
    for ch in _expand_class(_INVISIBLE_CLASS):
        table[ord(ch)] = None
    for cp in range(0xE0020, 0xE007F):
        table[cp] = chr(cp - _TAG_LO)
    return table


def _expand_class(cls: str) -> Iterator[str]:
    """Characters of a regex class body written as literal chars and ``a-b`` ranges."""
    i = 0
    while i < len(cls):
        if i + 2 < len(cls) and cls[i + 1] == "-":
            for cp in range(ord(cls[i]), ord(cls[i + 2]) + 1):
                yield chr(cp)
            i += 3
        else:
            yield cls[i]
            i += 1


_STRIP = _build_strip_table()
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαοικνρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhlABEKMHOPCTXIJSaoikvptuxABEZHIKMNOPTYX",
)
_CONFUSABLE_WORD = re.compile("\\w*[аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαοικνρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ]\\w*")
_ASCII_LETTER = re.compile("[A-Za-z]")
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
_COMBINING = re.compile("[\u0300-\u036f\u3099\u309a]")
_LEET_HINT = re.compile(r"[a-z][0-9@$]|[0-9@$][a-z]")
_LEET_TOKEN = re.compile(r"(?<![a-z0-9@$])[a-z@$]*[0-9][a-z0-9@$]*")
_LEET = str.maketrans("0134578@$", "oieastbas")
_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
"""Runs of horizontal whitespace and lone tabs etc. (single spaces are left alone: cheaper)."""
_NL_RUN = re.compile(r" ?\n\s*")


def _fold_mixed(m: re.Match[str]) -> str:
    word = m.group(0)
    return word.translate(_CONFUSABLES) if _ASCII_LETTER.search(word) else word


def _fold_leet(m: re.Match[str]) -> str:
    token = m.group(0)
    letters = sum(c.isalpha() for c in token)
    return token.translate(_LEET) if letters >= 3 else token


def fold_marks(text: str) -> str:
    """NFKD without combining accents (so patterns are written accent-free)."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def normalize_base(text: str) -> str:
    """Tags decoded, invisibles removed, NFKC, homoglyphs in mixed-script words folded, lower
    case, accents dropped, whitespace runs collapsed (a run with a newline becomes one
    newline, so line-based markup survives)."""
    if not text.isascii():
        if _INVISIBLE_RUN.search(text):
            if _TAG_RUN.search(text):
                # A smuggled payload is its own segment, even when glued to visible text.
                text = _TAG_RUN.sub(lambda m: f" {decode_tags(m.group(0))} ", text)
            text = text.translate(_STRIP)
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
        if _CONFUSABLE_WORD.search(text):
            text = _CONFUSABLE_WORD.sub(_fold_mixed, text)
        text = text.lower()
        if not text.isascii():
            text = fold_marks(text)
    else:
        text = text.lower()
        if not ("  " in text or "\t" in text or "\r" in text or "\x0b" in text or "\x0c" in text):
            return _NL_RUN.sub("\n", text) if "\n" in text else text
    return _NL_RUN.sub("\n", _HSPACE.sub(" ", text))


_LEET_CHAR = re.compile(r"[0-9@$]")
"""Every leet hint holds one of these: a one-class scan (a C fast path) rules most rows out."""


def fold_leet(text: str) -> str:
    """Light leetspeak folding (``1gn0r3`` → ``ignore``) in tokens with three or more letters."""
    if _LEET_CHAR.search(text) and _LEET_HINT.search(text):
        return _LEET_TOKEN.sub(_fold_leet, text)
    return text


_INWORD_MARKUP = re.compile(r"(?<=\w)(?:<!--.{0,200}?-->|</?[a-z][^<>\n]{0,60}>)+(?=\w)")


def unsplit_markup(text: str) -> str:
    """Delete tags and comments *inside* a word (``ign<b></b>ore``, ``prev<!-- x -->ious``): a
    renderer or tokenizer-side cleaner joins the halves, a phrase pattern would not."""
    return _INWORD_MARKUP.sub("", text)


def normalize_text(text: str) -> str:
    """Text as the injection phrases see it: ``normalize_base``, in-word markup removed,
    leetspeak folding."""
    base = normalize_base(text)
    return fold_leet(unsplit_markup(base) if "<" in base else base)


# ---------------------------------------------------------------------------------------------
# Prompt injection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InjectionPattern:
    """One rule phrase: literal keys gate the (costlier) regex."""

    name: str
    rule: Rule
    severity: Severity
    keys: tuple[str, ...]
    regex: re.Pattern[str]
    require: tuple[str, ...] = ()
    """At least one of these words must occur in the match (when given)."""
    confidence: Confidence = Confidence.HIGH
    anchors: tuple[str, ...] = ()
    """When set, the regex only runs in ``window`` around each anchor occurrence (patterns with
    several bounded gaps would otherwise cost gap × gap per start on a hostile row)."""
    window: tuple[int, int] = (0, 0)


_SEP = r"[\s\W_]{1,4}"


def _compile(source: str) -> re.Pattern[str]:
    """Patterns are written lower case with ``" "`` for any short separator, then folded the
    same way as the text (accents dropped)."""
    out: list[str] = []
    in_class = escaped = False
    for ch in fold_marks(source):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == " " and not in_class:
            out.append(_SEP)
            continue
        out.append(ch)
    return re.compile("".join(out))


def _p(
    name: str,
    rule: Rule,
    severity: Severity,
    keys: Sequence[str],
    source: str,
    require: Sequence[str] = (),
    confidence: Confidence = Confidence.HIGH,
    anchors: Sequence[str] = (),
    window: tuple[int, int] = (0, 0),
) -> InjectionPattern:
    return InjectionPattern(
        name,
        rule,
        severity,
        tuple(fold_marks(k) for k in keys),
        _compile(source),
        tuple(fold_marks(r) for r in require),
        confidence,
        tuple(anchors),
        window,
    )


H, M = Severity.HIGH, Severity.MEDIUM
_PREVIOUS_EN = (
    "previous", "prior", "earlier", "preceding", "above", "foregoing", "original", "initial",
    "existing", "former", "system", "developer", "your", "all",
)  # fmt: skip
_EN_NOUNS = (
    r"(?:instructions?|prompts?|directions?|directives?|guidelines|commands?|context|"
    r"programming|guardrails|constraints|rules|orders|guidance|training)"
)

PATTERNS: tuple[InjectionPattern, ...] = (
    # ---- English
    _p(
        "ignore-previous-instructions",
        DAT035,
        H,
        ("ignor", "disregard", "forget", "bypass", "override", "neglect", "dismiss", "skip"),
        r"\b(?:ignore|disregard|forget|skip|bypass|override|neglect|discard|dismiss|abandon)"
        r"(?: (?:all|any|every|each|of|the|your|my|these|those|its|previous|prior|earlier|"
        r"preceding|above|foregoing|original|initial|existing|old|former|system|developer|"
        rf"safety)){{1,4}} {_EN_NOUNS}\b",
        require=_PREVIOUS_EN,
    ),
    _p(
        "ignore-everything-above",
        DAT035,
        H,
        ("ignor", "disregard", "forget"),
        r"\b(?:ignore|disregard|forget) (?:everything|all|anything)(?: (?:that|you (?:were|have "
        r"been)|i|we|i've|we've))?(?: (?:said|told|written|given|stated|mentioned|wrote))?"
        r"(?: to you)? (?:above|before this|previously|so far|until now|prior to this)\b",
    ),
    _p(
        "override-system-prompt",
        DAT035,
        H,
        ("system", "developer", "hidden", "initial"),
        r"\b(?:ignore|disregard|forget|override|bypass|overwrite|replace|circumvent)"
        r" (?:the |your |any |all |this |my )?(?:system|developer|hidden|original|initial)"
        r" (?:prompt|message|instructions?|rules|directives?)\b",
    ),
    _p(
        "reveal-system-prompt",
        DAT035,
        H,
        ("prompt", "instruction", "message", "above"),
        r"\b(?:reveal|print|output|repeat|show|display|leak|dump|disclose|echo|write out|"
        r"spell out|tell me|give me|share|recite)(?: me)?(?: all)?(?: of)?"
        r" (?:(?:your|the) (?:(?:full|entire|complete|exact|original|initial|hidden|secret|"
        r"internal|verbatim) )*(?:system|developer|hidden|secret|initial) (?:prompt|"
        r"instructions|message)|your (?:(?:full|entire|complete|exact|original|initial) )*"
        r"(?:prompt|instructions)|(?:the |all )?(?:words|text) above(?: this line)?)\b",
    ),
    _p(
        "ask-system-prompt",
        DAT035,
        M,
        ("prompt", "instruction"),
        r"\bwhat (?:is|are|was|were) your (?:system |initial |original |hidden |secret )"
        r"(?:prompt|instructions)\b",
    ),
    _p(
        "jailbreak-persona",
        DAT035,
        H,
        (
            "anything now",
            "developer mode",
            "jailbr",
            "dan",
            "unrestricted",
            "no ethical",
            "no moral",
            "uncensored",
            "unfiltered",
        ),
        r"\b(?:do anything now|(?:developer|jailbreak|jailbroken|dan|god) mode (?:enabled|"
        r"activated|on|output)|you (?:are now|are going to (?:act|pretend) (?:as|to be)|will "
        r"(?:now )?(?:act as|be)|must act as|shall now be|are now free|have been (?:freed|"
        r"jailbroken|unshackled))(?: a| an| the)? (?:dan|jailbroken|unrestricted|uncensored|"
        r"unfiltered|evil)\b(?!['’-])|from now on,? you (?:are|will be)(?: a| an)? (?:dan|"
        r"unrestricted|uncensored|unfiltered|jailbroken|evil)\b(?!['’-])|(?:have|with) no "
        r"(?:ethical|moral)(?: or (?:ethical|moral))? (?:guidelines|restrictions|constraints|"
        r"limits|boundaries)\b)",
    ),
    _p(
        "new-instructions",
        DAT035,
        M,
        ("instruction", "directive", "task"),
        r"\b(?:new|updated|revised|real|actual|true|overriding|secret|priority) (?:system )?"
        r"(?:instructions?|directives?)\s?:",
        confidence=Confidence.LOW,
    ),
    _p(
        "hide-from-user",
        DAT035,
        M,
        ("user", "human", "customer"),
        r"\b(?:(?:do not|don't|dont|never|must not|should not) (?:tell|inform|reveal (?:this "
        r"|it )?to|mention (?:this |it |that )?to|notify|alert|warn|let on to) (?:the )?"
        r"(?:user|human|customer)s?|without (?:telling|informing|alerting|notifying) (?:the )?"
        r"(?:user|human))\b",
    ),
    _p(
        "as-an-ai-you-must",
        DAT035,
        M,
        ("as an", "as a "),
        r"\bas an? (?:ai|ai assistant|ai model|language model|large language model|llm|"
        r"chatbot|assistant(?=[,;:]))\b[^.!?\n]{0,60}\byou (?:must|will|should|have to|need to|are "
        r"required to) (?:now|always|immediately|from now on)\b",
    ),
    _p(
        "if-you-are-an-ai",
        DAT035,
        H,
        ("if you are", "if you're", "if you re"),
        r"\bif you(?: are|'re) (?:an? )?(?:ai|llm|language model|large language model|ai "
        r"assistant|chatbot|ai agent|automated (?:system|agent|reviewer)|gpt|chatgpt)\b[^\n]{0,80}?"
        r"\b(?:ignore|disregard|you must|do not|don't|include|say|respond|recommend|rate|"
        r"mention|output|reply|print|forget|give)\b",
    ),
    _p(
        "note-to-ai",
        DAT035,
        M,
        ("note", "message", "instruction", "attention", "directive", "reminder"),
        r"\b(?:note|message|instructions?|attention|directive|reminder) (?:to|for) (?:the |any "
        r"|all )?(?:ai|ai assistants?|ai models?|assistants?|llms?|language models?|chatbots?|"
        r"gpt|chatgpt|claude|gemini|copilot|ai agents?|ai systems?)\s?[:!,—-]",
    ),
    _p(
        "previous-instructions-void",
        DAT035,
        H,
        ("void", "cancel", "revoked", "no longer", "obsolete", "overridden", "superseded", "null"),
        r"\b(?:all |any |the |your )?(?:previous|prior|earlier|above|preceding|original|system|"
        r"old) (?:instructions|directives|rules|guidelines|prompts?|commands) (?:are|is|have "
        r"been|were) (?:now )?(?:void|null(?: and void)?|cancell?ed|revoked|no longer (?:valid|"
        r"in effect|active|apply)|obsolete|overridden|superseded|lifted)\b",
    ),
    _p(
        "forget-what-you-were-told",
        DAT035,
        H,
        ("forget", "disregard", "ignore"),
        r"\b(?:forget|disregard|ignore) (?:everything|all|anything|whatever)(?: that)? (?:you "
        r"(?:were|have been|got) (?:told|given|taught|instructed)|you know|i (?:told|said to) "
        r"you)(?: (?:before|earlier|previously|so far|until now|up to now))?\b",
    ),
    _p(
        "stop-following-your-rules",
        DAT035,
        H,
        ("stop", "cease", "quit", "no longer"),
        r"\b(?:stop|cease|quit|no longer) (?:following|obeying|adhering to|complying with|"
        rf"respecting) (?:all |any )?(?:your|the system's|the system|the developer's) "
        rf"(?:\w+ )?{_EN_NOUNS}\b",
    ),
    _p(
        "override-your-safety",
        DAT035,
        H,
        ("override", "disable", "bypass", "turn off", "deactivate", "circumvent"),
        r"\b(?:override|disable|bypass|turn off|switch off|deactivate|circumvent) (?:all )?(?:of )?"
        r"your (?:safety|content|ethical|moral|security) (?:settings|filters?|guidelines|"
        r"protocols|restrictions|rules|policies|policy|guardrails|features|measures)\b",
    ),
    _p(
        "pretend-no-restrictions",
        DAT035,
        H,
        ("restrict", "filter", "guideline", "polic", "censor"),
        r"\b(?:pretend|act as if|act like|behave as if) (?:that )?you (?:have|had|are under|were "
        r"under) no (?:restrictions|filters|guidelines|content polic(?:y|ies)|censorship|"
        r"(?:ethical|safety|moral) (?:guidelines|constraints|rules))\b",
    ),
    _p(
        "you-are-no-longer",
        DAT035,
        H,
        ("no longer",),
        r"\byou are no longer (?:chatgpt|claude|gemini|gpt|bard|llama|copilot|an? (?:ai|ai "
        r"assistant|assistant|language model|chatbot)|bound by|restricted by|subject to|"
        r"limited by)\b",
    ),
    _p(
        "ai-reading-this-must",
        DAT035,
        H,
        (
            "reading this",
            "processing this",
            "summarizing this",
            "summarising this",
            "analyzing this",
            "analysing this",
            "reviewing this",
        ),
        r"\b(?:ai|llm|assistant|model|chatbot|language model|ai agent|gpt)s? (?:that is |who is "
        r"|currently )?(?:reading|processing|summari[sz]ing|analy[sz]ing|reviewing) this"
        r"(?: (?:text|page|document|message|review|email|content|file|resume|cv))? (?:must|should|"
        r"shall|will|is (?:instructed|required) to|has to|needs to)\b",
    ),
    _p(
        "from-now-on-respond",
        DAT035,
        M,
        ("from now on", "henceforth", "from this point"),
        r"\b(?:from now on|henceforth|from this point (?:on|forward)),? you (?:will|must|shall|are "
        r"to|should) (?:only |always |now )?(?:respond|answer|reply|output|speak|act|obey|"
        r"comply|ignore|pretend|behave)\b",
        confidence=Confidence.LOW,
    ),
    # ---- "forget what you were told", "stop following your rules", "you have no limits",
    #      "ignore your instructions" in other languages (one family each, several languages)
    _p(
        "xx-forget-what-you-were-told",
        DAT035,
        H,
        ("olvid", "esquec", "dimentic", "забуд", "oubli", "todo lo que", "tudo"),
        r"\b(?:(?:olvida|olvide|olviden|ignora) todo lo que (?:te|le|les) (?:dijeron|han dicho|"
        r"dije|ordenaron|indicaron|pidieron)|(?:esquece|esqueca|ignora|ignore) tudo (?:o )?que "
        r"(?:te|lhe) (?:disseram|foi dito|disse|mandaram|pediram)|(?:dimentica|dimenticate|"
        r"ignora) tutto (?:quello |cio )?(?:che )?ti (?:e stato|hanno|ho) (?:detto|ordinato|"
        r"chiesto)|(?:oublie|oubliez) tout ce qu'?on (?:t'a|vous a) (?:dit|demande)|"
        r"(?:забудь|забудьте) все,? (?:что|чему) (?:тебе|вам) (?:говорили|сказали|велели|"
        r"приказали))\b",
    ),
    _p(
        "xx-stop-following-your-rules",
        DAT035,
        H,
        (
            "deja de",
            "deixa de",
            "pare de",
            "para de",
            "non seguire",
            "smetti",
            "arrete",
            "перестань",
            "hor auf",
        ),
        r"\b(?:(?:deja|dejad|deje) de (?:seguir|obedecer|cumplir) (?:tus|sus) (?:reglas|"
        r"instrucciones|normas|directrices)|(?:deixa|pare|para) de (?:seguir|obedecer|cumprir) "
        r"(?:as )?(?:tuas|suas) (?:regras|instrucoes|diretrizes)|(?:non seguire piu|smetti di "
        r"seguire|smettila di seguire) (?:le )?tue (?:regole|istruzioni|linee guida)|"
        r"(?:arrete|arretez) de suivre (?:tes|vos) (?:regles|consignes|instructions)|"
        r"(?:перестань|перестаньте) (?:следовать|соблюдать) (?:своим|твоим|вашим|свои) "
        r"(?:правилам|инструкциям|правила|инструкции)|hor auf,? (?:deine|ihre) (?:regeln|"
        r"anweisungen) (?:zu befolgen|einzuhalten))\b",
    ),
    _p(
        "xx-ignore-your-instructions",
        DAT035,
        H,
        ("vergiss", "ignorier", "missacht", "игнорир", "desconsider", "sistema", "system"),
        r"\b(?:(?:vergiss|ignoriere|ignorier|missachte) (?:deine|ihre) (?:anweisungen|"
        r"instruktionen|regeln|vorgaben|richtlinien)|(?:игнорируи|игнорируите|проигнорируи) "
        r"(?:свои |твои |ваши )?(?:системныи промпт|системные инструкции|инструкции|правила)|"
        r"(?:ignora|ignore|desconsidera|desconsidere) (?:as |las |le )?(?:instrucoes|"
        r"instrucciones|istruzioni) (?:do|del|di) sistema|(?:desconsidera|desconsidere) (?:as )?"
        r"instrucoes (?:anteriores|previas))",
    ),
    _p(
        "xx-you-are-no-longer",
        DAT035,
        H,
        ("больше не", "ya no eres", "nao es mais", "non sei piu", "n'es plus", "bist nicht mehr"),
        r"(?:ты больше не (?:ассистент|помощник|ии|ai|chatgpt|языковая модель)|ya no eres (?:un "
        r"asistente|una ia|chatgpt)|(?:voce|tu) nao (?:e|es) mais (?:um assistente|uma ia|"
        r"chatgpt)|non sei piu (?:un assistente|un'ia|chatgpt)|tu n'es plus (?:un assistant|"
        r"une ia|chatgpt)|du bist nicht mehr (?:ein assistent|eine ki|chatgpt))",
    ),
    _p(
        "zh-forget-received-instructions",
        DAT035,
        H,
        ("忽略", "忘记", "忘記", "无视", "無視"),
        r"(?:忽略|忘记|忘記|无视|無視)\s*(?:你)?\s*(?:之前|以前|先前|此前)\s*(?:收到|得到|接收|被告知)"
        r"\s*(?:的)?\s*(?:所有|全部)?\s*(?:的)?\s*(?:指令|指示|命令|规则|規則|设定|設定)",
    ),
    _p(
        "zh-no-restrictions",
        DAT035,
        M,
        ("限制", "约束", "約束"),
        r"(?:从现在开始|從現在開始|现在|現在)\s*[,，]?\s*你\s*(?:已经|已經)?\s*(?:没有|沒有)\s*"
        r"(?:任何)?\s*(?:限制|约束|約束|规则|規則)",
    ),
    _p(
        "ja-unrestricted-ai",
        DAT035,
        H,
        ("制限",),
        r"(?:もう|今から|これから)?\s*制限の(?:ない|無い)\s*(?:ai|アシスタント|モデル)"
        r"(?:です|だ|として)",
    ),
    _p(
        "ko-forget-previous",
        DAT035,
        H,
        ("이전", "지시", "지침"),
        r"이전\s*(?:의\s*)?(?:모든\s*)?(?:지시|지침|명령|규칙)\s*(?:을|를|은|는)?\s*(?:모두\s*)?"
        r"(?:잊어|무시)",
    ),
    # ---- Spanish
    _p(
        "es-ignora-instrucciones",
        DAT035,
        H,
        ("instruc",),
        r"\b(?:ignora|ignore|ignoren|olvida|olvide|olviden|descarta|omite|haz caso omiso de)"
        r"(?: (?:todas|todos|las|los|tus|sus|de|a))* (?:instrucciones|indicaciones|ordenes|"
        r"reglas) (?:anteriores|previas|precedentes|de arriba|del sistema|originales)\b",
    ),
    _p(
        "es-revela-prompt",
        DAT035,
        H,
        ("sistema", "prompt"),
        r"\b(?:revela|muestra|imprime|dime|repite|ensename)(?: me)? (?:tu|el|su|tus|las) "
        r"(?:prompt|mensaje|instrucciones|indicaciones) (?:del|de) sistema\b",
    ),
    _p(
        "es-no-digas",
        DAT035,
        M,
        ("usuario",),
        r"\bno (?:le )?(?:digas|diga|cuentes|menciones|reveles) (?:nada )?(?:esto )?al usuario\b",
    ),
    _p(
        "es-nuevas-instrucciones",
        DAT035,
        M,
        ("instruc",),
        r"\bnuevas instrucciones\s?:",
        confidence=Confidence.LOW,
    ),
    _p(
        "es-ahora-eres",
        DAT035,
        H,
        ("dan", "restric"),
        r"\bahora eres (?:dan|una? (?:ia|ai) sin (?:restricciones|filtros|censura))\b",
    ),
    # ---- French
    _p(
        "fr-ignore-instructions",
        DAT035,
        H,
        ("instruction", "consigne"),
        r"\b(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|ne tiens pas compte des|ne tenez "
        r"pas compte des|fais abstraction des|faites abstraction des)(?: (?:toutes|tous|les|"
        r"tes|vos|des))* (?:instructions|consignes|directives|regles) (?:precedentes|"
        r"anterieures|ci-dessus|du systeme|systeme|initiales|d'origine)\b",
    ),
    _p(
        "fr-revele-prompt",
        DAT035,
        H,
        ("systeme", "prompt"),
        r"\b(?:revele|revelez|affiche|affichez|montre|montrez|donne|donnez|repete|repetez)"
        r"(?:-moi)?(?: moi)? (?:ton|votre|le|tes|vos|les) (?:prompt|invite|message|"
        r"instructions|consignes) (?:systeme|du systeme|initiales?)\b",
    ),
    _p(
        "fr-ne-dis-pas",
        DAT035,
        M,
        ("utilisateur",),
        r"\bne (?:le |lui )?(?:dis|dites|mentionne|mentionnez|revele|revelez) (?:rien |pas |"
        r"jamais )(?:de (?:ceci|cela) )?a l'?utilisateur\b",
    ),
    _p(
        "fr-nouvelles-instructions",
        DAT035,
        M,
        ("instruction",),
        r"\bnouvelles (?:instructions|consignes)\s?:",
        confidence=Confidence.LOW,
    ),
    _p(
        "fr-tu-es-dan",
        DAT035,
        H,
        ("dan", "restriction"),
        r"\b(?:tu es|vous etes) (?:maintenant|desormais) (?:dan|une? ia sans (?:restrictions|"
        r"filtres|censure))\b",
    ),
    _p(
        "fr-oublie-tes-consignes",
        DAT035,
        H,
        ("consigne", "instruction", "directive"),
        r"\b(?:oublie|oubliez|ignore|ignorez|abandonne|abandonnez) (?:toutes |tous )?(?:tes|vos) "
        r"(?:instructions|consignes|directives|regles)(?: (?:precedentes|initiales|d'origine))?"
        r"\b",
    ),
    # ---- German
    _p(
        "de-ignoriere-anweisungen",
        DAT035,
        H,
        ("anweisung", "instruktion", "befehl", "regeln"),
        r"\b(?:ignoriere|ignorier|ignorieren sie|vergiss|vergessen sie|missachte|missachten "
        r"sie|uberschreibe)(?: (?:alle|die|deine|ihre|samtliche|bisherigen|vorherigen))*"
        r" (?:vorherigen|vorigen|bisherigen|obigen|vorangegangenen|fruheren|ursprunglichen|"
        r"system)?(?:-| )?(?:anweisungen|instruktionen|befehle|regeln|vorgaben)\b",
        require=(
            "vorherig",
            "vorig",
            "bisherig",
            "obig",
            "vorangegangen",
            "fruher",
            "ursprunglich",
            "system",
            "alle",
        ),
    ),
    _p(
        "de-vergiss-alles",
        DAT035,
        H,
        ("vergiss", "vergessen sie", "ignoriere"),
        r"\b(?:vergiss|vergessen sie|ignoriere|ignorieren sie) alles,? (?:was|das) (?:dir|ihnen|"
        r"man dir|ich dir|wir dir) (?:vorher|zuvor|bisher|oben|fruher) (?:gesagt|geschrieben|"
        r"befohlen|aufgetragen|mitgeteilt)\b",
    ),
    _p(
        "de-zeige-systemprompt",
        DAT035,
        H,
        ("system",),
        r"\b(?:zeige|zeig|verrate|nenne|gib|wiederhole|drucke)(?: mir)?(?: (?:deinen|ihren|den|"
        r"deine|ihre|die))? (?:system-?prompt|systemanweisungen|system-?nachricht|"
        r"ursprunglichen anweisungen)\b",
    ),
    _p(
        "de-sag-nicht",
        DAT035,
        M,
        ("benutzer", "nutzer", "anwender"),
        r"\b(?:sag|sage|sagen sie|erzahl|erzahle|verrate) (?:es |das |dies )?(?:dem|den) "
        r"(?:benutzer|nutzer|anwender)n? (?:nicht|nichts|niemals)\b",
    ),
    _p(
        "de-neue-anweisungen",
        DAT035,
        M,
        ("anweisung",),
        r"\bneue anweisungen\s?:",
        confidence=Confidence.LOW,
    ),
    _p(
        "de-du-bist-dan",
        DAT035,
        H,
        ("dan", "einschrank"),
        r"\bdu bist (?:jetzt|nun|ab sofort) (?:dan|eine? ki ohne (?:einschrankungen|filter|"
        r"zensur))\b",
    ),
    # ---- Portuguese
    _p(
        "pt-ignore-instrucoes",
        DAT035,
        H,
        ("instruc",),
        r"\b(?:ignore|ignora|ignorem|esqueca|esquece|desconsidere|desconsidera)(?: (?:todas|"
        r"todos|as|os|suas|tuas))* (?:instrucoes|orientacoes|ordens|regras) (?:anteriores|"
        r"previas|acima|do sistema|originais)\b",
    ),
    _p(
        "pt-revele-prompt",
        DAT035,
        H,
        ("sistema",),
        r"\b(?:revele|revela|mostre|mostra|imprima|diga|repita)(?:-me)?(?: me)? (?:o seu |o "
        r"teu |seu |teu |o |as suas |as )?(?:prompt|mensagem|instrucoes) (?:do|de) sistema\b",
    ),
    _p(
        "pt-nao-conte",
        DAT035,
        M,
        ("usuario", "utilizador"),
        r"\bnao (?:conte|diga|mencione|revele) (?:nada |isso )?(?:ao|para o) "
        r"(?:usuario|utilizador)\b",
    ),
    _p(
        "pt-novas-instrucoes",
        DAT035,
        M,
        ("instruc",),
        r"\bnovas instrucoes\s?:",
        confidence=Confidence.LOW,
    ),
    _p("pt-voce-e-dan", DAT035, H, ("dan",), r"\b(?:voce|tu) (?:agora )?(?:e|es) (?:agora )?dan\b"),
    # ---- Italian
    _p(
        "it-ignora-istruzioni",
        DAT035,
        H,
        ("istruzion",),
        r"\b(?:ignora|ignorate|ignori|dimentica|dimenticate|tralascia|non considerare)"
        r"(?: (?:tutte|tutti|le|gli|i|tue|sue))* (?:istruzioni|indicazioni|direttive|regole)"
        r" (?:precedenti|sopra|di sistema|del sistema|originali|iniziali)\b",
    ),
    _p(
        "it-rivela-prompt",
        DAT035,
        H,
        ("sistema",),
        r"\b(?:rivela|rivelami|mostra|mostrami|stampa|dimmi|ripeti)(?: il tuo| il| le tue| le)?"
        r" (?:prompt|messaggio|istruzioni) (?:di|del) sistema\b",
    ),
    _p(
        "it-non-dire",
        DAT035,
        M,
        ("utente",),
        r"\bnon (?:dire|dirlo|menzionare|rivelare) (?:nulla |niente )?all'? ?utente\b",
    ),
    _p(
        "it-nuove-istruzioni",
        DAT035,
        M,
        ("istruzion",),
        r"\bnuove istruzioni\s?:",
        confidence=Confidence.LOW,
    ),
    _p("it-ora-sei-dan", DAT035, H, ("dan",), r"\b(?:ora|adesso) sei dan\b"),
    # ---- Russian
    _p(
        "ru-ignore-instructions",
        DAT035,
        H,
        ("инструкц", "указани", "команд", "правил"),
        r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте|не обращай внимания на|"
        r"не обращайте внимания на|отбрось|отмени)(?: (?:все|всё|свои|твои|ваши|эти))*"
        r" (?:предыдущие|прежние|вышеуказанные|вышеприведенные|предшествующие|исходные|"
        r"системные|все) (?:инструкции|указания|команды|правила|распоряжения)",
    ),
    _p(
        "ru-reveal-prompt",
        DAT035,
        H,
        ("промпт", "подсказк", "инструкц"),
        r"(?:покажи|покажите|раскрой|раскройте|выведи|выведите|напечатай|повтори|скажи)"
        r"(?: мне)?(?: (?:свой|твой|ваш|свои|твои))? (?:системный промпт|системную подсказку|"
        r"системные инструкции|исходные инструкции)",
    ),
    _p(
        "ru-dont-tell",
        DAT035,
        M,
        ("пользовател",),
        r"не (?:говори|говорите|сообщай|сообщайте|рассказывай) (?:об этом )?пользователю",
    ),
    _p(
        "ru-new-instructions",
        DAT035,
        M,
        ("инструкц",),
        r"новые инструкции\s?:",
        confidence=Confidence.LOW,
    ),
    _p("ru-you-are-dan", DAT035, H, ("dan",), r"(?:теперь ты|ты теперь) dan\b"),
    # ---- Chinese (simplified and traditional), Japanese, Korean
    _p(
        "zh-ignore-instructions",
        DAT035,
        H,
        ("忽略", "无视", "無視", "忘记", "忘記", "忽视", "忽視"),
        r"(?:忽略|无视|無視|忘记|忘記|忽视|忽視|不要理会|不要理會)\s*(?:掉)?\s*(?:你)?\s*"
        r"(?:之前|以上|上面|先前|前面|此前|所有|全部|上述|原来|原來|系统|系統)(?:的)?\s*"
        r"(?:所有|全部)?(?:的)?\s*(?:指令|指示|说明|說明|提示|命令|规则|規則|设定|設定)",
    ),
    _p(
        "zh-reveal-prompt",
        DAT035,
        H,
        ("系统提示", "系統提示", "系统指令", "系統指令", "提示词"),
        r"(?:显示|顯示|输出|輸出|打印|告诉我|告訴我|泄露|洩露|透露|重复|重複|给我|給我)\s*(?:你的)?\s*"
        r"(?:系统|系統)(?:提示|指令|消息|訊息)(?:词|詞)?",
    ),
    _p(
        "zh-dont-tell",
        DAT035,
        M,
        ("用户", "用戶", "使用者"),
        r"(?:不要|别|別|切勿)(?:告诉|告訴|透露给|透露給)(?:用户|用戶|使用者)",
    ),
    _p(
        "zh-new-instructions",
        DAT035,
        M,
        ("新的指令", "新指令"),
        r"新的?指令\s?:",
        confidence=Confidence.LOW,
    ),
    _p("zh-you-are-dan", DAT035, H, ("dan",), r"你现在是\s?dan\b|你現在是\s?dan\b"),
    _p(
        "ja-ignore-instructions",
        DAT035,
        H,
        ("無視", "忘れ"),
        r"(?:以前|前|上記|これまで|先ほど|今まで|すべて|全て|システム)の(?:すべての|全ての)?"
        r"(?:指示|命令|指令|ルール|プロンプト)(?:は|を)(?:すべて|全て)?(?:無視|忘れ)",
    ),
    _p(
        "ja-reveal-prompt",
        DAT035,
        H,
        ("システムプロンプト",),
        r"システムプロンプトを(?:表示|出力|教え|見せ|明かし|開示|繰り返)",
    ),
    _p(
        "ja-dont-tell",
        DAT035,
        M,
        ("ユーザー",),
        r"ユーザーに(?:は)?(?:言わ|伝え|教え|知らせ)(?:ない|るな)",
    ),
    _p(
        "ja-new-instructions",
        DAT035,
        M,
        ("新しい指示",),
        r"新しい指示\s?:",
        confidence=Confidence.LOW,
    ),
    _p(
        "ko-ignore-instructions",
        DAT035,
        H,
        ("무시",),
        r"(?:이전|위|앞|기존|모든)의? ?(?:모든 )?"
        r"(?:지시|지침|명령|지시사항|지시 사항)(?:을|를|은|는)? ?(?:모두 )?무시",
    ),
    # ---- Exfiltration
    _p(
        "md-image-exfil",
        DAT038,
        H,
        ("](", "<img"),
        r"(?:!\[[^\]\n]{0,200}\]\(\s*<?|<img\b[^>]{0,200}?\bsrc\s?=\s?[\"']?)(?:https?:)?//"
        r"[^\s)\"'>]{1,300}?[?&][^\s)\"'>]{0,300}?(?:\{[^}\s]{0,60}\}|\$\{?[a-z_]{2,}|%7b|"
        r"\[[a-z_ ]{2,40}\]|<[a-z_ ]{2,40}>)",
        anchors=("](", "<img"),
        window=(210, 640),
    ),
    _p(
        "send-data-to-url",
        DAT038,
        H,
        ("http", "www."),
        r"\b(?:send|post|exfiltrate|upload|forward|transmit|leak|submit|append|encode|include|"
        r"copy)\b[^\n]{0,100}?\b(?:conversation|chat history|chat log|history|credentials?|"
        r"passwords?|api[ _-]?keys?|access tokens?|secrets?|system prompt|personal (?:data|"
        r"information)|user'?s? (?:data|information|messages?|input|emails?|details|files)|"
        r"previous messages|session|cookies?)\b[^\n]{0,100}?\b(?:to|at|into|via|using)\b"
        r"[^\n]{0,40}?(?:https?://|www\.|ftp://)",
        confidence=Confidence.MEDIUM,
        anchors=("http", "www.", "ftp://"),
        window=(260, 12),
    ),
    _p(
        "exfiltrate-url",
        DAT038,
        H,
        ("exfiltrat",),
        r"\bexfiltrat\w*\b[^\n]{0,120}?(?:https?://|www\.)",
    ),
)

_CONTROL_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|end_of_text|"
    r"start_header_id|end_header_id|eot_id|eom_id|endofprompt|channel|message|start|end|"
    r"begin▁of▁sentence|end▁of_sentence|end▁of▁sentence|tool_call)\|>|\[/?inst\]|<</?sys>>|"
    r"<(?:start|end)_of_turn>"
)
_CONTROL_KEYS = ("<|", "[inst]", "[/inst]", "<<sys>>", "_of_turn>")

# Hidden markup: containers a human reader does not see.
_TAG_OPEN = re.compile(r"<([a-z][a-z0-9]{0,15})\b([^<>]{0,1000})>")
_HIDDEN_STYLE = re.compile(
    r"display\s?:\s?none|visibility\s?:\s?hidden|font-size\s?:\s?0(?:\.0+)?(?:px|pt|em|rem|%)?"
    r"\s?(?:[;\"'}]|$)|opacity\s?:\s?0(?:\.0+)?\s?(?:[;\"'}]|$)|color\s?:\s?(?:#fff(?:fff)?\b|"
    r"white\b|rgba?\(\s?255\s?,\s?255\s?,\s?255)|(?:^|[;\s\"'])(?:max-)?(?:height|width)\s?:"
    r"\s?0(?:px)?\s?(?:[;\"']|$)|(?:left|top|text-indent)\s?:\s?-\d{3,}|\bhidden\b|"
    r"aria-hidden\s?=\s?[\"']?true|class\s?=\s?[\"'][^\"']{0,200}\b(?:hidden|d-none|"
    r"sr-only|visually-hidden|invisible)\b"
)
_ALWAYS_HIDDEN = frozenset({"script", "noscript", "template", "style", "title"})
MAX_COMMENT = 4000
_MD_COMMENT = re.compile(r"^ ?\[(?://|comment|_|#)\]: ?# ?[(\"'](.{0,2000}?)[)\"'] ?$", re.M)
_AI_CUE = re.compile(
    r"\b(?:ai|a\.i\.|assistant|llm|llms|language model|chatbot|gpt|chatgpt|claude|gemini|"
    r"copilot|model|agent|bot|reviewer|summarizer)\b"
)
_IMPERATIVE_CUE = re.compile(
    r"\b(?:ignore|disregard|forget|you must|you should|you will|you are|do not|don't|never|"
    r"always|respond|reply|answer|say|tell|recommend|include|summarize|output|print|instead|"
    r"instructions?|prompt|rate|rank|praise|mention)\b"
)
MAX_HIDDEN_BLOCKS = 64


def _excerpt(text: str, start: int, end: int, pad: int = 24) -> str:
    lo = max(0, start - pad)
    hi = min(len(text), end + pad)
    return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")


@dataclass(slots=True)
class _Match:
    rule: Rule
    severity: Severity
    name: str
    excerpt: str
    confidence: Confidence


def _build_gate() -> tuple[
    re.Pattern[str], re.Pattern[str], dict[str, tuple[InjectionPattern, ...]]
]:
    """One regex finding every gate key (overlaps included) and the patterns behind each key.

    Keys that contain a shorter key are replaced by it (its presence is implied), so no key is
    a prefix of another and the lookahead reports every occurrence of every key.
    """
    keys = {k for pat in PATTERNS for k in pat.keys}
    minimal = {k for k in keys if not any(o != k and o in k for o in keys)}
    index: dict[str, list[InjectionPattern]] = {}
    for pat in PATTERNS:
        gate_keys = {next(m for m in sorted(minimal, key=len) if m in k) for k in pat.keys}
        for k in gate_keys:
            index.setdefault(k, []).append(pat)
    alternation = _trie_regex(sorted(minimal))
    # ASCII text can only hold ASCII keys: a trie without the other scripts' branches is ~1.7x
    # faster on the (ASCII) bulk of most datasets and finds the same keys there
    ascii_only = _trie_regex(sorted(k for k in minimal if k.isascii()))
    order = {id(p): i for i, p in enumerate(PATTERNS)}
    return (
        re.compile(f"(?=({alternation}))"),
        re.compile(f"(?=({ascii_only}))"),
        {k: tuple(sorted(v, key=lambda p: order[id(p)])) for k, v in index.items()},
    )


_Trie = dict[str, "_Trie"]


def _trie_regex(words: Sequence[str]) -> str:
    """A regex matching any of ``words``, factored by common prefix (``re`` does not do this
    itself, and a flat alternation of ~100 literals is tried branch by branch everywhere)."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


_GATE, _GATE_ASCII, _GATED = _build_gate()


def gate_keys_regex(norm: str) -> set[str]:
    """The gate keys occurring in ``norm`` (the reference path: one lookahead regex pass)."""
    return set((_GATE_ASCII if norm.isascii() else _GATE).findall(norm))


def _build_automaton() -> Callable[[str], set[str]] | None:
    """An Aho–Corasick automaton over the gate keys (``pyahocorasick``, in the [datasets]
    extra): one C pass per row, ~3x faster than the regex gate. ``None`` when the package is
    missing; the regex gate then finds the same keys (no key contains another, so the set of
    keys occurring anywhere is the same for both)."""
    try:
        import ahocorasick
    except ImportError:
        return None
    automaton = ahocorasick.Automaton()
    for key in _GATED:
        automaton.add_word(key, key)
    automaton.make_automaton()
    scan = automaton.iter

    def keys(norm: str) -> set[str]:
        return {k for _end, k in scan(norm)} if norm else set()

    return keys


_AUTOMATON = _build_automaton()
gate_keys: Callable[[str], set[str]] = _AUTOMATON or gate_keys_regex
"""The gate keys occurring in normalised text (fast path when ``pyahocorasick`` imports)."""


def match_injection(norm: str) -> list[_Match]:
    """Every injection phrase in normalised text: one literal gate pass, then only the
    patterns whose keys occur."""
    present = gate_keys(norm)
    if not present:
        return []
    candidates: dict[str, InjectionPattern] = {}
    for key in present:
        for pat in _GATED[key]:
            candidates.setdefault(pat.name, pat)
    out: list[_Match] = []
    for pat in PATTERNS:
        if pat.name not in candidates:
            continue
        spans = _anchored(pat, norm) if pat.anchors else pat.regex.finditer(norm)
        for m in spans:
            if pat.require and not any(w in m.group(0) for w in pat.require):
                continue
            out.append(
                _Match(pat.rule, pat.severity, pat.name, _excerpt(norm, *m.span()), pat.confidence)
            )
            break
    return out


MAX_ANCHORS = 256


def _anchored(pat: InjectionPattern, norm: str) -> Iterator[re.Match[str]]:
    """Matches of ``pat`` searched only in windows around its anchors (bounded count)."""
    before, after = pat.window
    seen = 0
    for anchor in pat.anchors:
        pos = norm.find(anchor)
        while pos >= 0 and seen < MAX_ANCHORS:
            seen += 1
            m = pat.regex.search(norm, max(0, pos - before), min(len(norm), pos + after))
            if m is not None:
                yield m
            pos = norm.find(anchor, pos + len(anchor))


def _hidden_blocks(norm: str) -> Iterator[tuple[str, str]]:
    """(where, content) of the parts of the text a human reader would not see."""
    count = 0
    pos = norm.find("<!--")
    close = -1
    while pos >= 0:
        # str.find, not a regex, and each "-->" is searched for once: an unclosed "<!--"
        # repeated a million times stays linear.
        if close < pos + 4:
            close = norm.find("-->", pos + 4)
            if close < 0:
                break
        if close - (pos + 4) > MAX_COMMENT:
            pos = norm.find("<!--", close - MAX_COMMENT - 4)
            continue
        count += 1
        yield "HTML comment", norm[pos + 4 : close]
        if count >= MAX_HIDDEN_BLOCKS:
            return
        pos = norm.find("<!--", close + 3)
    if "]:" in norm:
        for m in _MD_COMMENT.finditer(norm):
            count += 1
            yield "Markdown comment", m.group(1)
            if count >= MAX_HIDDEN_BLOCKS:
                return
    if "<" not in norm:
        return
    for m in _TAG_OPEN.finditer(norm):
        tag, attrs = m.group(1), m.group(2)
        if tag not in _ALWAYS_HIDDEN and not _HIDDEN_STYLE.search(attrs):
            continue
        close = norm.find(f"</{tag}", m.end(), m.end() + 4000)
        body = norm[m.end() : close if close >= 0 else m.end() + 4000]
        count += 1
        yield f"<{tag} {attrs.strip()[:60]}>", body
        if count >= MAX_HIDDEN_BLOCKS:
            return


def _markup_hits(norm: str) -> list[_Match]:
    out: list[_Match] = []
    if "<" not in norm and "]:" not in norm:
        return out
    for where, body in _hidden_blocks(norm):
        if not body.strip():
            continue
        phrases = [m for m in match_injection(fold_leet(body)) if m.rule is DAT035]
        if phrases or (_AI_CUE.search(body) and _IMPERATIVE_CUE.search(body)):
            why = phrases[0].name if phrases else "text addressed to an AI"
            out.append(
                _Match(
                    DAT037, Severity.HIGH, why, f"{where}: {body.strip()[:160]}", Confidence.HIGH
                )
            )
            break
    return out


_PRIORITY = {DAT037.id: 4, DAT038.id: 3, DAT035.id: 2, DAT036.id: 1}


class PromptInjectionCheck(StateCheck["PromptInjectionState"]):
    """Injection phrases (10 languages), control tokens, hidden markup, exfiltration links."""

    name: ClassVar[str] = "prompt-injection"
    rules: ClassVar[tuple[Rule, ...]] = (DAT035, DAT036, DAT037, DAT038)

    def init(self, plan: object) -> PromptInjectionState:
        """Empty collectors."""
        return PromptInjectionState()


class PromptInjectionState:
    """Capped collectors of injection rows and control-token rows, and the row count."""

    def __init__(self) -> None:
        self.rows = RowCollector()
        self.token_rows = RowCollector()
        self.seen = 0

    def merge(self, other: PromptInjectionState) -> None:
        """Absorb the other partition's rows."""
        self.rows.merge(other.rows)
        self.token_rows.merge(other.token_rows)
        self.seen += other.seen

    def add(self, record: Record) -> None:
        """Normalise once, run every gated pattern; keep only the capped collectors."""
        self.seen += 1
        text = record.text
        if not text:
            return
        base = normalize_base(text)
        norm = fold_leet(unsplit_markup(base) if "<" in base else base)
        matches = match_injection(norm)
        matches.extend(_markup_hits(base))
        tokens: list[str] = []
        # every control token starts with "<" or "[": two scans rule most rows out
        if ("<" in norm or "[" in norm) and any(k in norm for k in _CONTROL_KEYS):
            tokens = list(dict.fromkeys(m.group(0) for m in _CONTROL_TOKENS.finditer(norm)))[:6]
        if not matches and not tokens:
            return
        if not matches:
            self.token_rows.add(
                RowHit(
                    record.index,
                    DAT036,
                    Severity.MEDIUM,
                    "chat-template control tokens in row text",
                    " ".join(tokens),
                    group="DAT036:control-tokens",
                )
            )
            return
        hidden = _hidden_channel(text)
        matches.sort(key=lambda m: (m.severity, _PRIORITY[m.rule.id]), reverse=True)
        top = matches[0]
        severity = top.severity
        notes = []
        if hidden:
            severity = Severity.HIGH
            notes.append(f"obfuscated with {hidden}")
        if tokens:
            notes.append("control tokens " + " ".join(tokens))
        names = ", ".join(dict.fromkeys(m.name for m in matches))
        message = f"{top.rule.title.lower()}: {names}" + (f" ({'; '.join(notes)})" if notes else "")
        evidence = " | ".join(m.excerpt for m in matches[:3])
        self.rows.add(
            RowHit(
                record.index,
                top.rule,
                severity,
                message,
                evidence,
                confidence=max(m.confidence for m in matches),
                group=f"{top.rule.id}:{top.name}",
            )
        )

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Row findings; control tokens in most rows become one pre-templated summary."""
        yield from self.rows.findings(info, "prompt-injection content")
        n_tok = self.token_rows.total
        rows_total = max(self.seen, 1)
        if n_tok >= 10 and n_tok * 2 > rows_total:
            t = self.token_rows.tally[DAT036.id]
            yield dataset_finding(
                info,
                DAT036,
                f"dataset text is pre-templated: {n_tok} of {rows_total} rows contain chat "
                "control tokens (tokenize with special tokens disabled)",
                rows=tuple(t.rows[:MAX_SUMMARY_ROWS]),
                evidence=t.sample,
                severity=Severity.LOW,
                group="DAT036:pre-templated",
            )
        else:
            yield from self.token_rows.findings(info, "chat-template control tokens")


def _hidden_channel(text: str) -> str:
    """Which invisible channel a row uses, if any (for escalating an injection match)."""
    if text.isascii():
        return ""
    if any(0xE0020 <= ord(c) <= 0xE007E for c in text if ord(c) >= 0xE0000):
        return "Unicode tag characters"
    if _INVISIBLE_RUN.search(text.replace("\u00ad", "")):
        return "invisible characters"
    return ""


# ---------------------------------------------------------------------------------------------
# RAG poisoning (PoisonedRAG shape)
# ---------------------------------------------------------------------------------------------

RAG_HEAD_CHARS = 2000
MAX_QUESTION_KEYS = 100_000
MEMBERS_PER_QUESTION = 16
ROWS_PER_QUESTION = 64
SNIPPET_CHARS = 200
MIN_GROUP = 3
MAX_RAG_FINDINGS = 50
_SENTENCE_END = re.compile(r"(?<=[.?!？。！])(?:\s+|(?=[A-Z\"“]))|\n+")
_WH = re.compile(r"^(?:who|what|when|where|which|how|why|whom|whose)\b", re.I)
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "by",
        "with",
        "as",
        "from",
        "that",
        "this",
        "it",
        "its",
        "his",
        "her",
        "their",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "why",
        "whom",
        "whose",
        "does",
        "do",
        "did",
        "can",
        "could",
        "will",
        "would",
        "should",
        "has",
        "have",
        "had",
        "not",
        "but",
        "into",
        "than",
        "then",
        "also",
        "about",
        "over",
        "after",
        "before",
        "most",
        "more",
        "such",
        "these",
        "those",
        "there",
        "here",
        "they",
        "them",
        "he",
        "she",
        "you",
        "your",
        "we",
        "our",
    ]
)


def _question_key(sentence: str) -> str | None:
    norm = unicodedata.normalize("NFKC", sentence).lower()
    words = _WORD.findall(norm)
    if len(words) >= 4 or (len(words) >= 1 and len("".join(words)) >= 12 and not norm.isascii()):
        return " ".join(words)
    return None


def _questions(head: str) -> list[tuple[str, str, int, bool]]:
    """(key, question, end offset, at passage start) for the question-like sentences."""
    out: list[tuple[str, str, int, bool]] = []
    pos = 0
    for i, m in enumerate(_SENTENCE_END.finditer(head + "\n")):
        sentence = head[pos : m.start()].strip()
        end = m.end()
        start_pos = pos
        pos = end
        if not sentence:
            continue
        is_q = sentence.endswith(("?", "？")) or (i == 0 and _WH.match(sentence) is not None)
        if is_q:
            key = _question_key(sentence)
            if key is not None:
                out.append(
                    (key, sentence[:200], end, start_pos == 0 or not head[:start_pos].strip())
                )
        if len(out) >= 3 or i >= 12:
            break
    return out


@dataclass(slots=True)
class _Group:
    question: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    members: list[tuple[int, str | None, str, bool]] = field(default_factory=list)


def _content_words(text: str, exclude: frozenset[str]) -> frozenset[str]:
    return frozenset(
        w
        for w in _WORD.findall(text.lower())
        if len(w) >= 3 and w not in _STOP and w not in exclude
    )


class RagPoisoningCheck(StateCheck["RagState"]):
    """Same question opening passages from several sources (PoisonedRAG), bounded table."""

    name: ClassVar[str] = "rag-poisoning"
    rules: ClassVar[tuple[Rule, ...]] = (DAT040, DAT041)

    def __init__(self, max_keys: int = MAX_QUESTION_KEYS) -> None:
        self.max_keys = max_keys

    def init(self, plan: object) -> RagState:
        """An empty question table."""
        return RagState(self.max_keys)


class RagState:
    """Question hash → group (count, first rows, first members), lossy-counted."""

    def __init__(self, max_keys: int = MAX_QUESTION_KEYS) -> None:
        self.max_keys = max_keys
        self.table: dict[bytes, _Group] = {}
        self.evicted = 0
        self.evict_floor = 1

    def merge(self, other: RagState) -> None:
        """Union of the tables: counts added, first rows and members by row. Exact while no
        question was evicted (past ``max_keys`` questions the table is lossy either way)."""
        for h, g in other.table.items():
            mine = self.table.get(h)
            if mine is None:
                if len(self.table) >= self.max_keys:
                    self._evict()
                self.table[h] = g
                continue
            if g.rows and (not mine.rows or g.rows[0] < mine.rows[0]):
                mine.question = g.question
            mine.count += g.count
            mine.rows = sorted(mine.rows + g.rows)[:ROWS_PER_QUESTION]
            mine.members = sorted(mine.members + g.members, key=lambda m: m[0])[
                :MEMBERS_PER_QUESTION
            ]
        self.evicted += other.evicted
        self.evict_floor = max(self.evict_floor, other.evict_floor)

    def add(self, record: Record) -> None:
        """Index the question-like sentences at the head of the passage."""
        if not record.text:
            return
        head = record.text[:RAG_HEAD_CHARS]
        if "?" not in head and "？" not in head and not _WH.match(head.lstrip()):
            return
        seen: set[bytes] = set()
        for key, question, end, at_start in _questions(head):
            h = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).digest()
            if h in seen:
                continue
            seen.add(h)
            group = self.table.get(h)
            if group is None:
                if len(self.table) >= self.max_keys:
                    self._evict()
                group = self.table[h] = _Group(question=question)
            group.count += 1
            if len(group.rows) < ROWS_PER_QUESTION:
                group.rows.append(record.index)
            if len(group.members) < MEMBERS_PER_QUESTION:
                snippet = head[end : end + SNIPPET_CHARS]
                group.members.append((record.index, record.source, snippet, at_start))

    def _evict(self) -> None:
        """Drop the oldest of the rarest questions (lossy counting) until 3/4 full."""
        target = self.max_keys * 3 // 4
        while len(self.table) > target:
            excess = len(self.table) - target
            rare = [k for k, g in self.table.items() if g.count <= self.evict_floor][:excess]
            for k in rare:
                del self.table[k]
            self.evicted += len(rare)
            if len(self.table) > target:
                self.evict_floor += 1

    def finish(self, info: DatasetInfo) -> Iterator[Finding]:
        """Report question groups shared by passages from several sources."""
        text_field = info.text_field or ""
        if "+" in text_field or text_field.lower() in CHAT_FIELDS:
            return  # question+answer or chat rows repeat questions by design
        hits: list[tuple[Severity, int, Finding]] = []
        ordered = sorted(self.table.items(), key=lambda kv: kv[1].rows[0] if kv[1].rows else -1)
        for h, group in ordered:
            if group.count < MIN_GROUP:
                continue
            finding = self._group_finding(info, h, group)
            if finding is not None:
                hits.append((finding.severity, group.count, finding))
        hits.sort(key=lambda t: (t[0], t[1]), reverse=True)
        for _, _, finding in hits[:MAX_RAG_FINDINGS]:
            yield finding
        if len(hits) > MAX_RAG_FINDINGS:
            rest = hits[MAX_RAG_FINDINGS:]
            rows = tuple(r for _, _, f in rest for r in f.location.rows)[:MAX_SUMMARY_ROWS]
            yield dataset_finding(
                info,
                DAT040,
                f"{len(rest)} more repeated-question groups not listed",
                rows=rows,
                severity=max(s for s, _, _ in rest),
                group="DAT040:summary",
            )

    def _group_finding(self, info: DatasetInfo, h: bytes, group: _Group) -> Finding | None:
        sources = [s for _, s, _, _ in group.members]
        distinct = {s for s in sources if s}
        if any(sources) and len(distinct) < 2:
            return None  # one document split into chunks
        qwords = frozenset(_WORD.findall(group.question.lower()))
        words = [_content_words(snip, qwords) for _, _, snip, _ in group.members]
        n = len(words)
        threshold = max(MIN_GROUP, (n * 6 + 9) // 10)
        counts: dict[str, int] = {}
        for ws in words:
            for w in ws:
                counts[w] = counts.get(w, 0) + 1
        claim = sorted((w for w, c in counts.items() if c >= threshold), key=lambda w: -counts[w])
        pairs = [
            len(a & b) / len(a | b) for i, a in enumerate(words) for b in words[i + 1 :] if a | b
        ]
        similarity = sum(pairs) / len(pairs) if pairs else 0.0
        at_start = sum(1 for *_, s in group.members if s)
        conflicting = [
            row
            for (row, *_), ws in zip(group.members, words, strict=True)
            if claim and ws and not (ws & set(claim))
        ]
        shaped = at_start >= MIN_GROUP and (bool(claim) or similarity >= 0.5)
        rule = DAT041 if shaped else DAT040
        src_text = ", ".join(sorted(distinct)[:5]) if distinct else "no source field"
        parts = [f'q="{group.question[:100]}"']
        if claim:
            parts.append("claim: " + " ".join(claim[:6]))
        if conflicting:
            parts.append("conflicting rows " + ",".join(map(str, conflicting[:8])))
        parts.append(f"sources: {src_text}")
        parts.append(f"similarity {similarity:.2f}")
        message = (
            f"the same question opens {group.count} passages"
            if shaped
            else f"the same question appears in {group.count} passages"
        )
        if distinct:
            message += f" from {len(distinct)} sources"
        if self.evicted:
            message += f" (question table overflowed: {self.evicted} rare questions evicted)"
        return dataset_finding(
            info,
            rule,
            message,
            rows=tuple(group.rows),
            evidence="; ".join(parts),
            confidence=Confidence.MEDIUM,
            group=f"rag:{h.hex()[:16]}",
        )


TEXT_CHECKS = (HiddenUnicodeCheck, PromptInjectionCheck, RagPoisoningCheck)
"""This module's checks, in the order the scanner runs them."""
