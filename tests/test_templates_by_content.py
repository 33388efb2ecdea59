"""Templates are found by content, not by name, and YAML configs are parsed safely (issue #11.2).

``looks_like_template`` decides whether a text file goes to the template analysis. A false
positive is costly (a text that does not parse as Jinja is a TPL006 finding that fails the gate),
so it is tested on real files that are not templates as well as on real chat templates.
"""

# ruff: noqa: E501 - template texts are kept verbatim

from __future__ import annotations

import io
import json
from pathlib import Path

import huggingface_hub
import jinja2
import pytest
import sklearn

from scanners.base import Artifact, ScanContext
from scanners.config_scan import ConfigScanner
from scanners.template_scan import TemplateScanner, looks_like_template
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Severity
from tests.scanners.test_template_scan import (
    ATTACKS,
    BENIGN_TEMPLATES,
    CHATML,
    GEMMA,
    LLAMA3,
    MISTRAL,
)

MALICIOUS = "{{ cycler.__init__.__globals__.os.popen('echo supplychain-sample').read() }}"

# --------------------------------------------------------------------------------------------
# looks_like_template: real chat templates are templates
# --------------------------------------------------------------------------------------------

WHITESPACE_CONTROLLED = {
    "chatml_dash": CHATML.replace("{% ", "{%- ").replace("{{", "{{-"),
    "llama3_multiline": LLAMA3.replace("%}", "%}\n"),
    "gemma_multiline": GEMMA.replace("{%", "\n{%-"),
    "mistral_plus": MISTRAL.replace("{%", "{%+"),
    "raw_heading_line": (
        "{%- for message in messages %}\n{%- if message.role == 'system' %}\n# System\n"
        "{{ message.content }}\n{%- else %}\n{{ '<|' + message.role + '|>' + message.content }}\n"
        "{%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    ),
    "raw_text_heavy": "<s>[INST] {{ messages[0]['content'] }} [/INST]{% if add_generation_prompt %} {% endif %}",
}


@pytest.mark.parametrize("name", sorted(BENIGN_TEMPLATES) + sorted(WHITESPACE_CONTROLLED))
def test_real_chat_templates_are_recognised(name: str) -> None:
    text = BENIGN_TEMPLATES.get(name) or WHITESPACE_CONTROLLED[name]
    assert looks_like_template(text.encode())
    assert looks_like_template(b"\xef\xbb\xbf\n\n" + text.encode())  # BOM and blank lines


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_templates_are_recognised(name: str) -> None:
    assert looks_like_template(ATTACKS[name][0].encode())


# --------------------------------------------------------------------------------------------
# looks_like_template: everything else beside weights is not
# --------------------------------------------------------------------------------------------

README_WITH_EXAMPLE = """\
---
license: apache-2.0
tags: [text-generation]
---
# Foo-7B

Foo-7B is a chat model. The prompt format is rendered by `apply_chat_template`:

```jinja
{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}{% endfor %}
```

Use `{{ model_name }}` in your own docs.
"""
HEADED_DOC = "# Prompt format\n\n{% for m in messages %}{{ m.content }}{% endfor %}\n\n## Notes\n\nSee above.\n"
MODEL_CARD_PLAIN = (
    "# Model card\n\nTrained on {data}. Scores: {'acc': 0.9}.\n\n## Usage\n\nSee below.\n"
)
HELM_CHART = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-server
spec:
  replicas: {{ .Values.replicas }}
  {{- if .Values.gpu }}
  resources: {limits: {nvidia.com/gpu: 1}}
  {{- end }}
"""
GO_TEMPLATE = (
    "{{ if .System }}<|system|>{{ .System }}{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}"
)
MUSTACHE = "{{#messages}}<{{role}}>{{content}}{{/messages}}"
DJANGO = "{% load static %}<html><body>{% url 'home' %}{{ user.name }}</body></html>"
TEMPITA = "{{py:\ndtypes = ['64', '32']\n}}\n{{for name in dtypes}}\ncdef class W{{name}}:\n    pass\n{{endfor}}\n"
C_FORMAT = "PyMODINIT_FUNC\nPyInit_{modname}(void)\n{{\n    PyObject *tmp;\n    if (!x) {{\n        return NULL;\n    }}\n    return tmp;\n}}\n"
VIM_FOLDS = '" Vim plugin {{{1\nlet s:x = 1\n" Functions {{{1\nfunction! F()\n  return 1\nendfunction\n" }}}1\n'
PYTHON_FSTRING = 'import os\n\ndef render(x):\n    return f"{{{{ {x} }}}}" + "{% raw %}"\n\nTEMPLATE = "{% for m in messages %}{{ m }}{% endfor %}"\n'
PROSE_STRAY_BRACE = "Results {{ see table }} were good.\nThe set {a, b} is {% of the total.\n" * 3


def _vocab_txt() -> bytes:
    tokens = ["[PAD]", "[UNK]", "{", "}", "{{", "}}", "{%", "%}", "{#", "#}", "if", "for", "endfor"]
    tokens += [f"tok{i}" for i in range(3000)]
    return "\n".join(tokens).encode()


def _merges_txt() -> bytes:
    pairs = ["#version: 0.2", "Ġ t", "{ {", "{% -", "% }", "} }", "{ %", "Ġ {{", "}} Ġ"]
    pairs += [f"a{i} b{i}" for i in range(3000)]
    return "\n".join(pairs).encode()


NOT_TEMPLATES: dict[str, bytes] = {
    "readme_with_jinja_example": README_WITH_EXAMPLE.encode(),
    "model_card_plain": MODEL_CARD_PLAIN.encode(),
    "doc_with_headings": HEADED_DOC.encode(),
    "helm_chart": HELM_CHART.encode(),
    "go_ollama_template": GO_TEMPLATE.encode(),
    "mustache": MUSTACHE.encode(),
    "django_html": DJANGO.encode(),
    "tempita_cython": TEMPITA.encode(),
    "c_with_format_escapes": C_FORMAT.encode(),
    "vim_fold_markers": VIM_FOLDS.encode(),
    "python_source": PYTHON_FSTRING.encode(),
    "prose_with_stray_braces": PROSE_STRAY_BRACE.encode(),
    "tokenizer_config_json": json.dumps({"chat_template": CHATML, "eos_token": "</s>"}).encode(),
    "chat_template_json_list": json.dumps([{"name": "default", "template": CHATML}]).encode(),
    "vocab_txt": _vocab_txt(),
    "merges_txt": _merges_txt(),
    "binary": b"\x00\x01{% if x %}{{ y }}{% endif %}",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(NOT_TEMPLATES))
def test_other_text_is_not_a_template(name: str) -> None:
    assert not looks_like_template(NOT_TEMPLATES[name])


def _real_files(*packages: object) -> list[Path]:
    out: list[Path] = []
    for package in packages:
        root = Path(str(getattr(package, "__file__", ""))).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".md", ".json", ".txt", ".yaml", ".yml", ".html", ".rst"):
                out.append(path)
    return out


def test_real_files_are_not_templates() -> None:
    """READMEs, model-card templates (Jinja inside Markdown), Python sources with template
    strings and JSON files shipped by huggingface_hub (whose model-card template is Jinja inside
    Markdown), scikit-learn and jinja2 itself: packages every install of the test extra has."""
    files = _real_files(huggingface_hub, sklearn, jinja2)
    assert len(files) > 500
    flagged = [str(p) for p in files if looks_like_template(p.read_bytes()[: 64 * 1024])]
    assert flagged == []


# --------------------------------------------------------------------------------------------
# Templates under any name are analysed
# --------------------------------------------------------------------------------------------


def _scan(
    scanner: type[TemplateScanner] | type[ConfigScanner], kind: ArtifactKind, name: str, data: bytes
) -> list[Finding]:
    artifact = Artifact(path=name, kind=kind, size=len(data), stream=io.BytesIO(data))
    return list(scanner().scan(artifact, ScanContext()))


@pytest.mark.parametrize(
    "name", ["chat.j2", "chat.jinja2", "prompt.template", "chat.tmpl", "template"]
)
def test_template_under_any_name_is_analysed(name: str) -> None:
    assert _scan(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, name, LLAMA3.encode()) == []
    got = _scan(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, name, MALICIOUS.encode())
    assert max(f.severity for f in got) is Severity.CRITICAL
    broken = _scan(
        TemplateScanner, ArtifactKind.CHAT_TEMPLATE, name, b"{% for m in messages %}{{ m }"
    )
    assert [f.rule for f in broken] == ["TPL006"] and broken[0].severity >= Severity.HIGH


def test_nested_chat_template_in_json_config_is_analysed() -> None:
    doc = {"processor": {"tokenizer": {"chat_template": MALICIOUS}}, "chat_template": CHATML}
    got = _scan(
        TemplateScanner,
        ArtifactKind.MODEL_CONFIG,
        "processor_config.json",
        json.dumps(doc).encode(),
    )
    assert {f.rule for f in got} >= {"TPL001", "TPL002"}
    assert all("processor.tokenizer.chat_template" in f.message for f in got)


# --------------------------------------------------------------------------------------------
# YAML configs
# --------------------------------------------------------------------------------------------


def _yaml(
    scanner: type[TemplateScanner] | type[ConfigScanner], text: str, name: str = "config.yaml"
) -> list[Finding]:
    return _scan(scanner, ArtifactKind.YAML_CONFIG, name, text.encode())


def test_yaml_chat_template_at_depth_is_analysed() -> None:
    text = f"model:\n  tokenizer:\n    chat_template: {json.dumps(MALICIOUS)}\n"
    got = _yaml(TemplateScanner, text)
    assert {f.rule for f in got} >= {"TPL001", "TPL002"}
    assert "model.tokenizer.chat_template" in got[0].message


def test_yaml_chat_template_block_scalar_and_list() -> None:
    text = (
        "chat_template:\n"
        "  - name: default\n"
        "    template: |\n"
        "      {%- for message in messages %}{{ message.content }}{%- endfor %}\n"
        "  - name: tool_use\n"
        "    template: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n"
    )
    got = _yaml(TemplateScanner, text)
    assert got and all("chat_template['tool_use']" in f.message for f in got)
    assert max(f.severity for f in got) is Severity.CRITICAL


def test_yaml_other_template_keys() -> None:
    jinja = f"prompt_template: {json.dumps(MALICIOUS)}\n"
    assert {f.rule for f in _yaml(TemplateScanner, jinja)} >= {"TPL001"}
    python_format = (
        'prompt_template: "### Instruction: {instruction}\\n### Response: {{response}}"\n'
    )
    assert _yaml(TemplateScanner, python_format) == []


HARMLESS_YAML = {
    "model_card_front_matter": "license: apache-2.0\nlanguage: [en]\ntags:\n  - text-generation\npipeline_tag: text-generation\n",
    "training_config": "model:\n  name: foo\n  lr: 3.0e-4\n  layers: 12\ntrainer:\n  max_steps: 1000\n  precision: bf16\ndefaults: &d {a: 1}\nother: *d\n",
    "clean_chat_template": f"chat_template: {json.dumps(CHATML)}\n",
    "helm_template": HELM_CHART,
    "multi_document": "---\na: 1\n---\nb: [1, 2]\n...\n",
}


@pytest.mark.parametrize("name", sorted(HARMLESS_YAML))
def test_harmless_yaml_produces_nothing(name: str) -> None:
    text = HARMLESS_YAML[name]
    assert _yaml(TemplateScanner, text) == []
    assert _yaml(ConfigScanner, text) == []


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append("chat_template: x")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_a_limit_finding_not_a_hang() -> None:
    text = _alias_bomb()
    with pytest.raises(LimitExceeded, match="node budget"):
        _yaml(ConfigScanner, text)
    got = _yaml(TemplateScanner, text)
    assert [f.rule for f in got] == ["TPL006"] and "fails closed" in got[0].message


def test_yaml_nested_too_deep_is_a_limit_finding() -> None:
    deep = "x: " + "[" * 10_000 + "]" * 10_000 + "\n"
    with pytest.raises(LimitExceeded):
        _yaml(ConfigScanner, deep)
    nested_maps = "".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "v: 1\n"
    with pytest.raises(LimitExceeded):
        _yaml(ConfigScanner, nested_maps)


def test_unparsable_yaml_fails_closed() -> None:
    got = _yaml(ConfigScanner, "model: [1, 2\n  trust_remote_code: }\n", "model_config.yaml")
    assert [f.rule for f in got] == ["CFG010"]
    assert got[0].severity >= Severity.HIGH and "fails closed" in got[0].message
    not_utf8 = _scan(ConfigScanner, ArtifactKind.YAML_CONFIG, "config.yml", b"a: \xff\xfe\n")
    assert [f.rule for f in not_utf8] == ["CFG010"]


def test_yaml_python_object_tags_are_critical() -> None:
    text = "trainer: !!python/object/apply:os.system ['echo supplychain-sample']\n"
    got = _yaml(ConfigScanner, text)
    assert [f.rule for f in got] == ["CFG009"] and got[0].severity is Severity.CRITICAL


def test_yaml_trust_remote_code_and_auto_map() -> None:
    text = "model:\n  trust_remote_code: yes\nauto_map:\n  AutoModel: other/repo--modeling.Foo\n"
    rules = {f.rule for f in _yaml(ConfigScanner, text)}
    assert {"CFG005", "CFG002"} <= rules


def test_real_jinja_files_are_recognised_and_parse() -> None:
    """pandas' Styler ships Jinja templates (``.tpl``): recognised, and none is TPL006."""
    import pandas  # type: ignore[import-untyped]

    root = Path(str(pandas.__file__)).parent / "io" / "formats" / "templates"
    found = [p for p in sorted(root.glob("*.tpl")) if looks_like_template(p.read_bytes())]
    assert len(found) >= 5
    for path in found:
        got = _scan(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, path.name, path.read_bytes())
        assert "TPL006" not in {f.rule for f in got}, path.name


# --------------------------------------------------------------------------------------------
# End to end: the engine identifies by content and routes to the template/YAML analysis
# --------------------------------------------------------------------------------------------


def test_engine_finds_templates_by_content_and_stays_quiet_on_docs(tmp_path: Path) -> None:
    from supplychain.engine import ScanOptions, scan_paths
    from supplychain.policy import Policy, apply

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "chat.tmpl").write_text(MALICIOUS)
    (bad / "template").write_text(
        "{%- for m in messages %}{{ m.content }}{%- endfor %}" + MALICIOUS
    )
    (bad / "tokenizer.yaml").write_text(f"tokenizer:\n  chat_template: {json.dumps(MALICIOUS)}\n")
    report = scan_paths([bad], ScanOptions())
    by_path: dict[str, set[str]] = {}
    for f in report.findings:
        by_path.setdefault(f.location.path, set()).add(f.rule)
    for name in ("chat.tmpl", "template", "tokenizer.yaml"):
        assert "TPL001" in by_path.get(name, set()), (name, by_path)

    good = tmp_path / "good"
    good.mkdir()
    (good / "README.md").write_text(README_WITH_EXAMPLE)
    (good / "prompt.template").write_text(LLAMA3)
    (good / "merges.txt").write_bytes(_merges_txt())
    (good / "vocab.txt").write_bytes(_vocab_txt())
    (good / "notes").write_text(PROSE_STRAY_BRACE)
    (good / "chart.yaml").write_text(HELM_CHART)
    (good / "train.yaml").write_text(HARMLESS_YAML["training_config"])
    (good / "tokenizer_config.json").write_text(json.dumps({"chat_template": GEMMA}))
    clean = apply(scan_paths([good], ScanOptions()), Policy())
    assert [
        (f.location.path, f.rule) for f in clean.findings if f.severity >= Severity.MEDIUM
    ] == []
    assert clean.verdict is not None and clean.verdict.passed


@pytest.mark.parametrize("filler", [b"{%\n", b"{#x ", b"{{ a\n", b"{% if %}{{ x"])
def test_looks_like_template_is_linear_on_hostile_heads(filler: bytes) -> None:
    """Openers without closers must not make identification quadratic (sniff runs it on every
    text file)."""
    import time

    head = (filler * (65536 // len(filler) + 1))[:65536]
    start = time.perf_counter()
    looks_like_template(head)
    assert time.perf_counter() - start < 0.5
