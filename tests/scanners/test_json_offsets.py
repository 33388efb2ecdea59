"""Exact byte offsets for template and config findings (issue #16 follow-up).

Every assertion reads the raw bytes at the reported offset: the mapper from decoded JSON string
positions back through escapes, the member locator (duplicate keys resolve to the value Python's
``json`` keeps), and the scanners that use them.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanners._jsonpos import JsonSource, byte_offset, members, string_offset
from scanners.base import Artifact, ScanContext
from scanners.config_scan import ConfigScanner
from scanners.template_scan import TemplateScanner
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Finding

# -- the string mapper ---------------------------------------------------------------------------

TRICKY = 'a\nb"c\\d/é\u00e9€😀\U0001f600中\t\x01z'
RAW_TOKENS = [
    json.dumps(TRICKY).encode(),  # \n \" \\ \u00e9 \ud83d\ude00 escapes
    json.dumps(TRICKY, ensure_ascii=False).encode(),  # raw UTF-8, 2/3/4-byte characters
    b'"a\\/b\\u00e9\\uD83D\\uDE00\\ud83d x\\u4e2d"',  # escaped '/', upper-case pair, lone high
]


def _check_mapper(raw: bytes, start: int = 0) -> None:
    """Each decoded character is exactly the raw slice between its offset and the next one."""
    decoded = json.loads(raw[start:])
    offsets = [string_offset(raw, start, i) for i in range(len(decoded) + 1)]
    assert offsets[0] == start + 1
    assert raw[offsets[-1] : offsets[-1] + 1] == b'"'  # past the end: the closing quote
    for i, char in enumerate(decoded):
        piece = raw[offsets[i] : offsets[i + 1]]
        assert json.loads(b'"' + piece + b'"') == char, (i, piece)


@pytest.mark.parametrize("raw", RAW_TOKENS)
def test_string_mapper_walks_every_escape(raw: bytes) -> None:
    _check_mapper(raw)
    _check_mapper(b'{"k": ' + raw, 6)  # not at the start of the buffer


def test_surrogate_pair_is_one_character_and_twelve_bytes() -> None:
    raw = b'"\\ud83d\\ude00X"'
    assert json.loads(raw) == "\U0001f600X"
    assert string_offset(raw, 0, 1) == 13 and raw[13:14] == b"X"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_string_mapper_on_any_text(text: str, ascii_only: bool) -> None:
    _check_mapper(json.dumps(text, ensure_ascii=ascii_only).encode())


def test_byte_offset_counts_utf8_bytes() -> None:
    assert byte_offset("é😀中x", 3) == 2 + 4 + 3
    assert byte_offset("abc", 1, base=3) == 4


# -- the member locator ----------------------------------------------------------------------------


def test_locator_pretty_and_minified_agree_on_values() -> None:
    doc = {"é😀": "中文", "a": [1, {"b": [True, None, "x\ny"]}], "c": {"d": {"e": "f"}}}
    for raw in (
        json.dumps(doc).encode(),
        json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(doc, indent=4, ensure_ascii=False).encode(),
        b"\xef\xbb\xbf \r\n" + json.dumps(doc, indent="\t").encode(),
    ):
        src = JsonSource(raw)
        at = src.value_offset(("a", 1, "b", 2))
        assert at is not None and raw[at:].startswith(b'"x\\ny"')
        at = src.value_offset(("c", "d"))
        assert at is not None and json.loads(raw[at : raw.index(b"}", at) + 1]) == {"e": "f"}
        key = src.key_offset(("é😀",))
        assert key is not None and json.loads(raw[key : raw.index(b'"', key + 1) + 1]) == "é😀"
        assert src.value_offset(("a", 5)) is None and src.value_offset(("zz",)) is None


def test_locator_duplicate_keys_last_wins_like_json() -> None:
    raw = b'{"k": {"x": "first"}, "k": {"x": "second"}, "z": 1}'
    assert json.loads(raw)["k"]["x"] == "second"
    src = JsonSource(raw)
    at = src.value_offset(("k", "x"))
    assert at is not None and raw[at:].startswith(b'"second"')
    first = src.value_offset((("k", 0), "x"))
    assert first is not None and raw[first:].startswith(b'"first"')
    assert src.duplicate_key("k") == raw.rindex(b'"k"')
    assert src.duplicate_key("z") is None


def test_locator_escaped_key_and_members() -> None:
    raw = b'{"chat\\u005ftemplate": "v", "n": [{"a": 1}, [2, 3], "s"]}'
    assert JsonSource(raw).value_offset(("chat_template",)) == raw.index(b'"v"')
    items = list(members(raw, raw.index(b"[")))
    assert [m[0] for m in items] == [0, 1, 2]
    assert [raw[v : v + 1] for _, _, v in items] == [b"{", b"[", b'"']


def test_nested_values_with_brackets_and_quotes_in_strings_are_skipped() -> None:
    raw = b'{"a": {"s": "}]\\"[{", "t": ["]", {"u": "\\\\"}, []]}, "b": "x", "c": [[["{"]]]}'
    assert json.loads(raw)["a"]["t"][1] == {"u": "\\"}
    src = JsonSource(raw)
    assert src.value_offset(("b",)) == raw.index(b'"x"')
    assert src.value_offset(("a", "t", 1, "u")) == raw.index(b'"\\\\"')
    assert src.value_offset(("c", 0, 0, 0)) == raw.rindex(b'"{"')


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _JSON, max_size=5), st.sampled_from([None, 1]))
def test_every_member_decodes_back_to_its_value(doc: dict[str, object], indent: int | None) -> None:
    raw = json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    src = JsonSource(raw)
    decoder = json.JSONDecoder()
    for key, value in doc.items():
        at = src.value_offset((key,))
        assert at is not None
        assert decoder.raw_decode(raw[at:].decode())[0] == value
        if isinstance(value, list) and value:
            last = src.value_offset((key, len(value) - 1))
            assert last is not None
            assert decoder.raw_decode(raw[last:].decode())[0] == value[-1]


# -- the scanners ----------------------------------------------------------------------------------


def _scan(raw: bytes, name: str, kind: ArtifactKind, config: bool = False) -> list[Finding]:
    artifact = Artifact(path=name, kind=kind, size=len(raw), stream=io.BytesIO(raw))
    scanner = ConfigScanner() if config else TemplateScanner()
    return list(scanner.scan(artifact, ScanContext()))


def _at(raw: bytes, finding: Finding) -> bytes:
    offset = finding.location.offset
    assert offset is not None, finding
    return raw[offset:]


# Escapes and multi-byte characters BEFORE the offending construct inside the template.
TEMPLATE = (
    "{# é 😀 中 #}\n"
    '{{ "say \\"hi\\"" }}\t\u00e9\U0001f600\n'
    "{% for m in messages %}{{ m['content'] }}{% endfor %}\n"
    "  {{ lipsum.__globals__ }}"
)


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_template_offset_is_the_construct_in_the_file(indent: int | None, ascii_only: bool) -> None:
    doc = {"note": "héllo 😀 中文 \n", "chat_template": TEMPLATE}
    raw = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    found = _scan(raw, "tokenizer_config.json", ArtifactKind.MODEL_CONFIG)
    tpl001 = [f for f in found if f.rule == "TPL001"]
    assert tpl001 and _at(raw, tpl001[0]).startswith(b"__globals__ }}")


def test_template_list_and_nested_keys() -> None:
    doc = {
        "é": "中",
        "chat_template": [
            {"name": "default", "template": "{{ x }}"},
            {"template": "{{ '\u00e9' }}\n{{ x.__class__ }}", "name": "rag"},
        ],
        "extra": {"prompt_template": "{% for a in b %}{{ a.__subclasses__() }}{% endfor %}"},
    }
    raw = json.dumps(doc, indent=1).encode()
    found = _scan(raw, "tokenizer_config.json", ArtifactKind.MODEL_CONFIG)
    rag = next(f for f in found if "rag" in f.message)
    assert _at(raw, rag).startswith(b"__class__ }}")
    nested = next(f for f in found if "prompt_template" in f.message)
    assert _at(raw, nested).startswith(b"__subclasses__()")


def test_duplicate_chat_template_each_copy_points_at_its_own_value() -> None:
    raw = (
        b'{"chat_template": "\\u00e9 {{ lipsum.__globals__ }}", "x": "\xe4\xb8\xad", '
        b'"chat_template": "{% include \'evil\' %}"}'
    )
    found = _scan(raw, "tokenizer_config.json", ArtifactKind.MODEL_CONFIG)
    by_rule = {f.rule: f for f in found}
    assert _at(raw, by_rule["TPL001"]).startswith(b"__globals__")
    assert _at(raw, by_rule["TPL005"]).startswith(b"include 'evil'")
    # The duplicate-key finding points at the copy the loader (Python's json) uses: the last.
    assert by_rule["TPL007"].location.offset == raw.rindex(b'"chat_template"')


def test_plain_template_file_offsets_count_bytes_and_bom() -> None:
    text = "é😀中 {{ 'x' }}\r\n\r\n  {{ cycler.__init__.__globals__ }}"
    for raw in (text.encode(), b"\xef\xbb\xbf" + text.encode()):
        found = _scan(raw, "chat_template.jinja", ArtifactKind.CHAT_TEMPLATE)
        tpl001 = next(f for f in found if f.rule == "TPL001")
        assert _at(raw, tpl001).startswith(b"__globals__ }}")


def test_template_syntax_error_points_at_its_line() -> None:
    raw = json.dumps({"é": "😀", "chat_template": "{{ a }}\n\u00e9\n{% if %}"}).encode()
    (found,) = _scan(raw, "tokenizer_config.json", ArtifactKind.MODEL_CONFIG)
    assert found.rule == "TPL006" and _at(raw, found).startswith(b"{% if %}")


def test_invalid_json_offsets_are_bytes_not_characters() -> None:
    raw = '{"é😀中": "ééé", "chat_template": "x",}'.encode()
    want = raw.rindex(b"}")
    (tpl,) = _scan(raw, "tokenizer_config.json", ArtifactKind.MODEL_CONFIG)
    assert tpl.rule == "TPL006" and tpl.location.offset == want
    (cfg,) = _scan(raw, "config.json", ArtifactKind.MODEL_CONFIG, config=True)
    assert cfg.rule == "CFG006" and cfg.location.offset == want
    with pytest.raises(ArtifactError) as err:
        _scan(b"\xef\xbb\xbf" + raw, "chat_template.json", ArtifactKind.CHAT_TEMPLATE)
    assert err.value.offset == want + 3
    bad_utf8 = b'{"a": "\xc3\xa9\xff"}'
    (cfg,) = _scan(bad_utf8, "config.json", ArtifactKind.MODEL_CONFIG, config=True)
    assert cfg.rule == "CFG006" and cfg.location.offset == bad_utf8.index(b"\xff")


@pytest.mark.parametrize("indent", [None, 2])
def test_config_findings_point_at_their_values(indent: int | None) -> None:
    doc = {
        "é😀中": "文",
        "auto_map": {
            "AutoConfig": "configuration_x.XConfig",
            "AutoTokenizer": [None, "other/repo--tok.Fast"],
            "AutoModel": "../../etc/evil.Model",
        },
        "custom_pipelines": {"t": {"impl": "pipe.Pipe"}},
        "nested": {"list": [{"trust_remote_code": True}]},
    }
    raw = json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    found = _scan(raw, "config.json", ArtifactKind.MODEL_CONFIG, config=True)
    by_rule = {f.rule: f for f in found}
    assert _at(raw, by_rule["CFG001"]).startswith(b'"configuration_x.XConfig"')
    assert _at(raw, by_rule["CFG002"]).startswith(b'"other/repo--tok.Fast"')
    assert _at(raw, by_rule["CFG003"]).startswith(b'"../../etc/evil.Model"')
    assert _at(raw, by_rule["CFG004"]).startswith(b'"pipe.Pipe"')
    assert _at(raw, by_rule["CFG005"]).startswith(b"true")


def test_config_duplicate_keys_point_at_the_value_the_loader_uses() -> None:
    raw = (
        b'{"auto_map": {"AutoModel": "harmless.Model"}, "\xc3\xa9": 1,\n'
        b' "auto_map": {"AutoModel": "evil/repo--m.Model"}}'
    )
    found = _scan(raw, "config.json", ArtifactKind.MODEL_CONFIG, config=True)
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {"CFG002", "CFG007"}
    assert _at(raw, by_rule["CFG002"]).startswith(b'"evil/repo--m.Model"')
    assert by_rule["CFG007"].location.offset == raw.rindex(b'"auto_map"')


def test_diffusers_component_offset() -> None:
    raw = json.dumps({"_class_name": ["../x", "P"], "unet": ["diffusers", "U"]}).encode()
    found = _scan(raw, "model_index.json", ArtifactKind.MODEL_CONFIG, config=True)
    (cfg003,) = [f for f in found if f.rule == "CFG003"]
    assert _at(raw, cfg003).startswith(b'["../x", "P"]')
