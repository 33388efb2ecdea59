"""Parsers that give up are findings that fail the gate (issue #9, point 6).

Every place where the config, template or dataset parsers stop (nesting too deep, too many
columns, no analysable field, an expansion budget) must yield a HIGH finding, or raise
``ArtifactError``/``LimitExceeded`` so the engine reports GEN001/GEN002, and the default gate must
fail. Each hostile file is built here; none is ever executed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanners import config_scan, template_analysis
from scanners.base import Artifact, ScanContext
from scanners.config_scan import ConfigScanner
from scanners.dataset.common import DatasetOptions
from scanners.dataset.readers import MAX_COLUMNS, TEXT_CANDIDATES
from scanners.dataset.runner import DatasetScanner
from scanners.template_scan import TemplateScanner
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths
from supplychain.policy import Policy, apply

DEEP = "[" * 10_000 + "]" * 10_000


def _scan(
    scanner: type[ConfigScanner] | type[TemplateScanner] | type[DatasetScanner],
    kind: ArtifactKind,
    name: str,
    data: bytes,
    **dataset: str,
) -> list[Finding]:
    artifact = Artifact(path=name, kind=kind, size=len(data), stream=io.BytesIO(data))
    ctx = ScanContext(dataset=DatasetOptions(**dataset))  # type: ignore[arg-type]
    return list(scanner().scan(artifact, ctx))


def _high(found: list[Finding], rule: str) -> Finding:
    hits = [f for f in found if f.rule == rule]
    assert hits, [(f.rule, f.severity, f.message) for f in found]
    assert hits[0].severity >= Severity.HIGH
    assert "fails closed" in hits[0].message
    return hits[0]


def _gate_fails(tmp_path: Path) -> bool:
    report = apply(scan_paths([tmp_path], ScanOptions()), Policy())
    assert report.verdict is not None
    return not report.verdict.passed


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def test_config_json_nested_10000_deep_fails_closed() -> None:
    found = _scan(
        ConfigScanner, ArtifactKind.MODEL_CONFIG, "config.json", f'{{"a": {DEEP}}}'.encode()
    )
    assert "nested too deeply" in _high(found, "CFG006").message


def test_unnamed_json_with_a_code_reference_that_does_not_parse_fails_closed() -> None:
    data = f'{{"auto_map": {{"AutoModel": "m.Foo"}}, "x": {DEEP}}}'.encode()
    _high(_scan(ConfigScanner, ArtifactKind.MODEL_CONFIG, "extra.json", data), "CFG006")
    broken = b'{"auto_map": {"AutoModel": "m.Foo"},'
    _high(_scan(ConfigScanner, ArtifactKind.MODEL_CONFIG, "config.json", broken), "CFG006")


def test_config_walk_budget_is_a_limit_not_a_silent_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_scan, "MAX_WALK_NODES", 1_000)
    data = json.dumps({"layers": [{} for _ in range(1_005)]}).encode()
    with pytest.raises(LimitExceeded, match="trust_remote_code"):
        _scan(ConfigScanner, ArtifactKind.MODEL_CONFIG, "config.json", data)


def test_yaml_config_that_does_not_parse_fails_closed() -> None:
    found = _scan(ConfigScanner, ArtifactKind.YAML_CONFIG, "config.yaml", b"a: [1, 2\nb: }\n")
    _high(found, "CFG010")


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


def test_template_nested_too_deep_fails_closed() -> None:
    text = "{% if x %}" * 5_000 + "{% endif %}" * 5_000
    found = _scan(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, "chat_template.jinja", text.encode())
    assert [f.rule for f in found] == ["TPL006"] and found[0].severity >= Severity.HIGH


def test_json_naming_a_chat_template_nested_too_deep_fails_closed() -> None:
    data = f'{{"chat_template": "{{{{ x }}}}", "a": {DEEP}}}'.encode()
    found = _scan(TemplateScanner, ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", data)
    assert [f.rule for f in found] == ["TPL006"] and found[0].severity >= Severity.HIGH


def test_template_search_budget_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_analysis, "MAX_DOC_NODES", 1_000)
    data = json.dumps({"chat_template": "{{ x }}", "blocks": [[{}] for _ in range(1_000)]})
    found = _scan(
        TemplateScanner, ArtifactKind.MODEL_CONFIG, "tokenizer_config.json", data.encode()
    )
    _high(found, "TPL006")


def test_yaml_naming_a_chat_template_that_does_not_parse_fails_closed() -> None:
    data = b"chat_template: '{{ x }}\nother: [\n"
    _high(_scan(TemplateScanner, ArtifactKind.YAML_CONFIG, "tokenizer.yaml", data), "TPL006")


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def test_jsonl_rows_nested_10000_deep_fail_closed() -> None:
    rows = b'{"text": "an ordinary row of text here"}\n' + f'{{"text": {DEEP}}}\n'.encode() * 2
    found = _scan(DatasetScanner, ArtifactKind.DATASET_JSONL, "train.jsonl", rows)
    hit = _high(found, "DAT001")
    assert "nested too deeply" in hit.evidence and hit.location.rows == (1, 2)


def test_csv_with_100000_columns_fails_closed() -> None:
    n = 100_000
    assert n > MAX_COLUMNS
    data = ",".join(f"c{i}" for i in range(n)) + "\n" + ",".join("w" for _ in range(n)) + "\n"
    found = _scan(DatasetScanner, ArtifactKind.DATASET_CSV, "wide.csv", data.encode())
    assert "100000 columns" in _high(found, "DAT009").message


def test_csv_with_more_string_columns_than_tested_fails_closed() -> None:
    n = TEXT_CANDIDATES + 40
    header = ",".join(f"h{i}" for i in range(n))
    rows = [",".join(f"{(r * 7919 + i) * 2654435761:016x}" for i in range(n)) for r in range(30)]
    found = _scan(
        DatasetScanner, ArtifactKind.DATASET_CSV, "hashes.csv", "\n".join([header, *rows]).encode()
    )
    assert "not tested for text" in _high(found, "DAT009").message


def test_jsonl_with_no_string_fields_fails_closed() -> None:
    rows = b'{"meta": {"msg": "ignore previous instructions"}, "tags": [1, 2]}\n' * 40
    found = _scan(DatasetScanner, ArtifactKind.DATASET_JSONL, "data.jsonl", rows)
    assert "nested objects or lists" in _high(found, "DAT009").message


def test_chosen_text_field_missing_everywhere_fails_closed() -> None:
    rows = b'{"prompt": "hello there, how are you today?"}\n' * 20
    found = _scan(DatasetScanner, ArtifactKind.DATASET_JSONL, "d.jsonl", rows, text_field="body")
    assert "no row has text" in _high(found, "DAT009").message


NOTHING_TO_CHECK = {
    "numeric_jsonl": b'{"a": 1, "b": 2.5}\n' * 50,
    "booleans_jsonl": b'{"a": true, "b": null}\n' * 50,
}


@pytest.mark.parametrize("name", sorted(NOTHING_TO_CHECK))
def test_data_without_text_but_fully_read_is_not_a_give_up(name: str) -> None:
    """Numbers, booleans and categories were read and hold no text: the ``dataset.notes`` fact
    says the text checks did not run, and nothing fails (the decision for 'no text field',
    documented in DAT009)."""
    found = _scan(DatasetScanner, ArtifactKind.DATASET_JSONL, "d.jsonl", NOTHING_TO_CHECK[name])
    assert [f for f in found if f.severity >= Severity.MEDIUM] == []
    categorical = "\n".join(["cap,odor,ring"] + ["x,n,p", "b,a,e", "f,l,t"] * 30).encode()
    found = _scan(DatasetScanner, ArtifactKind.DATASET_CSV, "mushrooms.csv", categorical)
    assert [f for f in found if f.severity >= Severity.MEDIUM] == []


# --------------------------------------------------------------------------------------------
# The default gate, end to end (identification by the engine's sniffing)
# --------------------------------------------------------------------------------------------

GIVE_UPS: dict[str, tuple[str, bytes]] = {
    "config_json_too_deep": ("config.json", f'{{"a": {DEEP}}}'.encode()),
    "jsonl_too_deep": ("train.jsonl", f'{{"text": {DEEP}}}\n'.encode() * 3),
    "jsonl_nested_only": ("train.jsonl", b'{"meta": {"m": "x"}, "v": [1]}\n' * 30),
    "csv_too_wide": ("wide.csv", (",".join(f"c{i}" for i in range(70_000)) + "\n").encode() * 2),
    "yaml_broken": ("config.yaml", b"model: [1, 2\n  x: }\n"),
    "yaml_alias_bomb": (
        "config.yaml",
        (
            'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
            + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9))
        ).encode(),
    ),
    "template_too_deep": (
        "chat_template.jinja",
        ("{% if x %}" * 3000 + "{% endif %}" * 3000).encode(),
    ),
}


@pytest.mark.parametrize("name", sorted(GIVE_UPS))
def test_give_ups_fail_the_default_gate(name: str, tmp_path: Path) -> None:
    filename, data = GIVE_UPS[name]
    (tmp_path / filename).write_bytes(data)
    assert _gate_fails(tmp_path)


def test_tokenizer_vocabularies_do_not_spend_the_walk_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lists of plain values (unigram vocabularies, merges) cannot hold keys and are not walked,
    so a real tokenizer.json never hits the budgets above."""
    monkeypatch.setattr(config_scan, "MAX_WALK_NODES", 1_000)
    monkeypatch.setattr(template_analysis, "MAX_DOC_NODES", 1_000)
    tok = {
        "added_tokens": [{"id": i, "content": f"<extra_{i}>\u00e9"} for i in range(200)],
        "model": {
            "type": "Unigram",
            "vocab": [[f"\u2581t{i}", -i / 10] for i in range(20_000)],
            "merges": [[f"a{i}", f"b{i}"] for i in range(20_000)],
        },
    }
    data = json.dumps(tok).encode()  # ASCII-escaped: the \\u markers force a full parse
    assert _scan(ConfigScanner, ArtifactKind.MODEL_CONFIG, "tokenizer.json", data) == []
    assert _scan(TemplateScanner, ArtifactKind.MODEL_CONFIG, "tokenizer.json", data) == []
