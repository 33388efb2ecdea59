"""Model cards: front matter becomes ``card.*`` facts; hostile front matter fails closed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from scanners.sniff import sniff
from supplychain import scan
from supplychain.core.model import ArtifactKind, Report, Severity

CARD = """---
license: apache-2.0
base_model:
- google-bert/bert-base-uncased
base_model_relation: finetune
datasets: [imdb, "  "]
language: en
pipeline_tag: text-classification
library_name: transformers
tags: [sentiment]
model-index:
- name: tiny-imdb
  results:
  - task: {type: text-classification}
    dataset: {name: IMDB, type: imdb}
    metrics:
    - {type: accuracy, value: 0.93, name: Accuracy}
    - {type: f1, value: 91}
---
# tiny-imdb

Body text with a stray --- line:
---
"""


def _scan(tmp_path: Path, name: str, data: bytes) -> Report:
    (tmp_path / name).write_bytes(data)
    return scan([tmp_path])


def _facts(report: Report) -> dict[str, object]:
    return {f.key: f.value for f in report.facts}


def test_front_matter_becomes_card_facts(tmp_path: Path) -> None:
    report = _scan(tmp_path, "README.md", CARD.encode())
    assert report.files[0].kind is ArtifactKind.MODEL_CARD
    assert not report.findings
    facts = _facts(report)
    assert facts["card.license"] == "apache-2.0"
    assert facts["card.base_model"] == ("google-bert/bert-base-uncased",)
    assert facts["card.base_model_relation"] == "finetune"
    assert facts["card.datasets"] == ("imdb",)  # blank entries are not invented datasets
    assert facts["card.language"] == ("en",)
    assert facts["card.pipeline_tag"] == "text-classification"
    assert facts["card.library_name"] == "transformers"
    assert facts["card.model_index.name"] == "tiny-imdb"
    assert facts["card.metrics.count"] == 2
    assert facts["card.metrics.0.type"] == "accuracy"
    assert facts["card.metrics.0.value"] == "0.93"
    assert facts["card.metrics.0.dataset"] == "IMDB"
    assert facts["card.metrics.0.task"] == "text-classification"
    assert facts["card.metrics.1.value"] == 91
    assert "card.metrics.1.name" not in facts
    assert {f.scanner for f in report.facts} == {"model-card"}


def test_absent_keys_give_no_facts(tmp_path: Path) -> None:
    report = _scan(tmp_path, "README.md", b"---\nlicense: mit\n---\n# x\n")
    facts = _facts(report)
    assert facts == {"card.keys": ("license",), "card.license": "mit"}


def test_readme_without_front_matter_stays_text(tmp_path: Path) -> None:
    data = b"# just a readme\n---\nlicense: mit\n"
    assert sniff(io.BytesIO(data), len(data), "README.md") is ArtifactKind.TEXT
    front = b"---\nlicense: mit\n---\n"
    assert sniff(io.BytesIO(front), len(front), "README.md") is ArtifactKind.MODEL_CARD
    assert sniff(io.BytesIO(front), len(front), "notes.md") is ArtifactKind.TEXT


def test_card_is_still_searched_for_secrets(tmp_path: Path) -> None:
    token = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bD1fH3j"
    report = _scan(tmp_path, "README.md", f"---\nlicense: mit\n---\nHF_TOKEN={token}\n".encode())
    assert any(f.rule.startswith("SEC") for f in report.findings), report.findings


ALIAS_BOMB = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    ("body", "rule", "words"),
    [
        pytest.param(ALIAS_BOMB + "---\n", "MDC002", "budget", id="alias-bomb"),
        pytest.param(
            "---\n" + "k: " + "v" * 80 + "\n" * 1 + ("x: y\n" * 230_000) + "---\n",
            "MDC002",
            "cap",
            id="huge",
        ),
        pytest.param("---\n" + "[" * 400 + "]" * 400 + "\n---\n", "MDC002", "deep", id="deep"),
        pytest.param("---\n- a\n- b\n---\n", "MDC001", "not one YAML mapping", id="list"),
        pytest.param("---\njust text\n---\n", "MDC001", "not one YAML mapping", id="scalar"),
        pytest.param("---\nlicense: [mit\n---\n", "MDC001", "does not parse", id="bad-yaml"),
        pytest.param("---\nlicense: mit\n# never closed\n", "MDC001", "no closing", id="open"),
        pytest.param(
            "---\nx: !!python/object/apply:os.system ['echo hi']\n---\n",
            "MDC003",
            "python/object/apply",
            id="python-tag",
        ),
    ],
)
def test_hostile_front_matter_fails_closed(
    tmp_path: Path, body: str, rule: str, words: str
) -> None:
    report = _scan(tmp_path, "README.md", body.encode())
    assert report.files[0].kind is ArtifactKind.MODEL_CARD
    hits = [f for f in report.findings if f.rule == rule]
    assert hits, report.findings
    assert hits[0].severity >= Severity.HIGH
    assert words in hits[0].message
    assert not report.failed
    assert not any(f.key.startswith("card.") and f.key != "card.keys" for f in report.facts) or (
        rule == "MDC003"
    )


def test_front_matter_not_utf8_fails_closed(tmp_path: Path) -> None:
    report = _scan(tmp_path, "README.md", b"---\nlicense: \xff\xfe mit\n---\n")
    assert report.files[0].kind is ArtifactKind.MODEL_CARD
    assert [f.rule for f in report.findings] == ["MDC001"]
    assert "not UTF-8" in report.findings[0].message


def test_config_facts(tmp_path: Path) -> None:
    config = (
        b'{"model_type": "llama", "architectures": ["LlamaForCausalLM", 3], '
        b'"problem_type": "single_label_classification", "num_labels": 2, '
        b'"id2label": {"0": "a", "1": "b", "2": "c"}, "torch_dtype": "bfloat16", '
        b'"transformers_version": "4.44.0", "use_cache": true, '
        b'"auto_map": {"AutoModel": "modeling_x.XModel", "AutoConfig": "org/other--conf_x.C"}}'
    )
    report = _scan(tmp_path, "config.json", config)
    facts = _facts(report)
    assert facts["config.model_type"] == "llama"
    assert facts["config.architectures"] == ("LlamaForCausalLM",)
    assert facts["config.problem_type"] == "single_label_classification"
    assert facts["config.num_labels"] == 2
    assert facts["config.id2label.count"] == 3
    assert facts["config.torch_dtype"] == "bfloat16"
    assert facts["config.transformers_version"] == "4.44.0"
    assert facts["config.auto_map.files"] == ("modeling_x.py", "org/other--conf_x.py")
    assert "config.use_cache" not in facts


def test_other_json_configs_give_no_config_facts(tmp_path: Path) -> None:
    report = _scan(tmp_path, "tokenizer_config.json", b'{"model_type": "bert"}')
    assert not [f for f in report.facts if f.key.startswith("config.")]


def test_arbitrary_front_matter_never_fails_the_scanner() -> None:
    """Any bytes after a '---' line: facts or an MDC finding, never a crash (failed outcome)."""
    import tempfile

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from scanners.base import Artifact, ScanContext
    from scanners.modelcard_scan import ModelCardScanner
    from supplychain.core.limits import Limits

    pieces = st.sampled_from(
        [
            "license: mit\n",
            "a: &x [1, 2]\n",
            "b: *x\n",
            "c: *nope\n",
            "- item\n",
            "model-index:\n- results:\n  - metrics:\n    - {type: acc, value: 1}\n",
            "datasets: {a: 1}\n",
            "base_model: [1, {x: y}, null]\n",
            "key: !!python/name:os.system ''\n",
            "k: !!binary aGk=\n",
            "---\n",
            "...\n",
            "\t\x00\x1b[31m\n",
            ": :\n",
            "[\n",
        ]
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(pieces, max_size=12), st.binary(max_size=40))
    def check(parts: list[str], tail: bytes) -> None:
        data = ("---\n" + "".join(parts)).encode() + tail
        with tempfile.TemporaryFile() as fh:
            fh.write(data)
            fh.seek(0)
            art = Artifact(
                path="README.md", kind=ArtifactKind.MODEL_CARD, size=len(data), stream=fh
            )
            ctx = ScanContext(limits=Limits())
            findings = list(ModelCardScanner().scan(art, ctx))  # raises nothing
        assert all(f.rule.startswith("MDC") for f in findings)
        assert all(f.key.startswith("card.") for f in ctx.facts)
        if any(f.severity >= Severity.HIGH for f in findings if f.rule != "MDC003"):
            assert not ctx.facts  # an unanalysed card states nothing

    check()
