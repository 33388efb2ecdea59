"""ConfigScanner: auto_map, custom pipelines and trust_remote_code in JSON configs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanners.base import Artifact, ScanContext
from scanners.code_scan import CodeScanner
from scanners.config_scan import ConfigScanner, parse_ref
from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths


def scan_config(
    doc: object, name: str = "config.json", fs_path: Path | None = None, **limits: int
) -> list[Finding]:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    artifact = Artifact(
        path=name,
        kind=ArtifactKind.MODEL_CONFIG,
        size=len(data),
        stream=io.BytesIO(data),
        fs_path=fs_path,
        root=fs_path.parent if fs_path else None,
    )
    ctx = ScanContext(limits=Limits(**limits)) if limits else ScanContext()
    return list(ConfigScanner().scan(artifact, ctx))


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


# -- benign controls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "name"),
    [
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096}, None),
        (
            {"tokenizer_class": "LlamaTokenizer", "chat_template": "{{ x }}"},
            "tokenizer_config.json",
        ),
        ({"trust_remote_code": False}, None),
        ({"auto_map": {}}, None),
        ({"model": {"vocab": {"a": 1}}}, "tokenizer.json"),
        ([1, 2, 3], None),
        (
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
            },
            "model_index.json",
        ),
    ],
)
def test_benign_configs_are_silent(doc: object, name: str | None) -> None:
    assert scan_config(doc, name or "config.json") == []


def test_malformed_json_with_unrelated_name_is_ignored() -> None:
    assert scan_config(b'{"a": ', "vocab.json") == []


# -- auto_map ------------------------------------------------------------------------------------


def test_auto_map_names_each_code_file_once() -> None:
    doc = {
        "model_type": "foo",
        "auto_map": {
            "AutoConfig": "configuration_foo.FooConfig",
            "AutoModel": "modeling_foo.FooModel",
            "AutoModelForCausalLM": "modeling_foo.FooForCausalLM",
        },
    }
    findings = scan_config(doc)
    assert rules(findings) == {"CFG001"}
    assert all(f.severity is Severity.HIGH for f in findings)
    assert sorted(f.evidence for f in findings) == [
        "configuration_foo.FooConfig",
        "modeling_foo.FooModel",
    ]
    modeling = next(f for f in findings if "modeling_foo.py" in f.message)
    assert "AutoModelForCausalLM=FooForCausalLM" in modeling.message


def test_tokenizer_auto_map_pairs_with_null() -> None:
    doc = {"auto_map": {"AutoTokenizer": ["tokenization_foo.FooTokenizer", None]}}
    findings = scan_config(doc, "tokenizer_config.json")
    assert rules(findings) == {"CFG001"}
    assert "tokenization_foo.py" in findings[0].message
    both = {"auto_map": {"AutoTokenizer": ["tok_slow.Slow", "tok_fast.Fast"]}}
    assert len(scan_config(both, "tokenizer_config.json")) == 2


def test_auto_map_in_other_files_is_medium() -> None:
    doc = {"auto_map": {"AutoModel": "modeling_foo.FooModel"}}
    (finding,) = scan_config(doc, "generation_config.json")
    assert finding.rule == "CFG001" and finding.severity is Severity.MEDIUM


def test_cross_repository_reference_is_critical() -> None:
    doc = {"auto_map": {"AutoModel": "someone/else--modeling_foo.FooModel"}}
    (finding,) = scan_config(doc)
    assert finding.rule == "CFG002" and finding.severity is Severity.CRITICAL
    assert "someone/else" in finding.message


@pytest.mark.parametrize(
    "ref",
    ["/tmp/evil.Foo", "../../evil.Foo", "..\\evil.Foo", "C:/x/evil.Foo", "a//b.Foo", "~/x.Foo"],
)
def test_references_escaping_the_model_dir_are_critical(ref: str) -> None:
    findings = scan_config({"auto_map": {"AutoModel": ref}})
    assert rules(findings) == {"CFG003"}
    assert findings[0].severity is Severity.CRITICAL


@pytest.mark.parametrize("entry", ["modeling_foo", "a.b.c", 42, {"x": 1}])
def test_malformed_auto_map_entries_are_reported(entry: object) -> None:
    assert rules(scan_config({"auto_map": {"AutoModel": entry}})) == {"CFG008"}
    assert rules(scan_config({"auto_map": ["modeling_foo.Foo"]})) == {"CFG008"}


def test_parse_ref_matches_transformers_split() -> None:
    ref = parse_ref("org/repo--modeling_x.XModel")
    assert ref is not None and (ref.repo, ref.module, ref.cls) == (
        "org/repo",
        "modeling_x",
        "XModel",
    )
    assert ref.file == "modeling_x.py"
    assert parse_ref("x.y.z") is None
    assert parse_ref("a--b--c.D") is None


def test_presence_of_referenced_file_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    (tmp_path / "modeling_here.py").write_text("x = 1\n")
    doc = {"auto_map": {"AutoModel": "modeling_here.M", "AutoConfig": "configuration_gone.C"}}
    findings = scan_config(doc, fs_path=cfg)
    text = {f.evidence: f.message for f in findings}
    assert "present beside the config" in text["modeling_here.M"]
    assert "MISSING" in text["configuration_gone.C"]


# -- custom pipelines, diffusers, trust flag ------------------------------------------------------


def test_custom_pipeline_impl_is_flagged() -> None:
    doc = {
        "custom_pipelines": {
            "pair-classification": {"impl": "custom_pipe.PairPipeline", "pt": ["AutoModel"]},
            "other": {"impl": "org/repo--pipe.P"},
        }
    }
    findings = scan_config(doc)
    assert rules(findings) == {"CFG004", "CFG002"}


def test_diffusers_custom_pipeline_and_component(tmp_path: Path) -> None:
    index = tmp_path / "model_index.json"
    index.write_text("{}")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "my_unet.py").write_text("x = 1\n")
    doc = {
        "_class_name": ["pipeline_mine", "MyPipeline"],
        "unet": ["my_unet", "MyUNet"],
        "vae": ["diffusers", "AutoencoderKL"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    }
    findings = scan_config(doc, "model_index.json", fs_path=index)
    assert rules(findings) == {"CFG004"}
    assert len(findings) == 2
    assert any("unet/my_unet.py" in f.message for f in findings)


def test_trust_remote_code_true_anywhere_is_flagged() -> None:
    doc = {"model_kwargs": {"trust_remote_code": True}, "trust_remote_code": True}
    findings = scan_config(doc, "config_sentence_transformers.json")
    assert rules(findings) == {"CFG005"}
    assert len(findings) == 2


# -- hostile JSON ------------------------------------------------------------------------------


def test_duplicate_auto_map_key_is_flagged() -> None:
    # A first-wins parser sees an empty auto_map; Python's json (transformers) uses the second.
    data = b'{"auto_map": {}, "model_type": "x", "auto_map": {"AutoModel": "modeling_x.X"}}'
    findings = scan_config(data)
    assert rules(findings) == {"CFG007", "CFG001"}


def test_unicode_escaped_key_is_decoded_like_the_loader_does() -> None:
    data = b'{"auto\\u005fmap": {"AutoModel": "modeling_x.X"}}'
    assert rules(scan_config(data, "tokenizer_config.json")) == {"CFG001"}
    assert rules(scan_config(data, "extra.json")) == {"CFG001"}


@pytest.mark.parametrize(
    "data",
    [
        b'{"auto_map": ',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",  # BOM: transformers reads text with utf-8 and json.loads rejects it
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"n": 1' + b"0" * 5000 + b"}",  # int over CPython's digit limit
        bytes(range(256)),
    ],
)
def test_malformed_config_named_file_is_a_finding(data: bytes) -> None:
    findings = scan_config(data, "config.json")
    assert rules(findings) == {"CFG006"}


def test_malformed_config_mentioning_auto_map_is_high() -> None:
    (finding,) = scan_config(b'{"auto_map": {"AutoModel": "m.X"}', "config.json")
    assert finding.severity is Severity.HIGH


def test_oversized_config_raises_limit() -> None:
    doc = {"pad": "x" * 2000, "auto_map": {"AutoModel": "m.X"}}
    with pytest.raises(LimitExceeded):
        scan_config(doc, "config.json", max_header_bytes=1000)
    # A large JSON nobody loads as a config, without reference keys, is not a config problem.
    assert scan_config({"pad": "x" * 2000}, "big.json", max_header_bytes=1000) == []
    with pytest.raises(LimitExceeded):
        scan_config(doc, "big.json", max_header_bytes=1000)


# -- through the engine ----------------------------------------------------------------------


def test_engine_flags_auto_map_and_import_time_code(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}})
    )
    (model / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["other/repo--tokenization_x.T", None]}})
    )
    (model / "modeling_x.py").write_text("import os\nos.system('echo inert')\n")
    report = scan_paths([model], ScanOptions(scanners=(CodeScanner, ConfigScanner)))
    got = {(f.location.path, f.rule, f.severity) for f in report.findings}
    assert ("config.json", "CFG001", Severity.HIGH) in got
    assert ("tokenizer_config.json", "CFG002", Severity.CRITICAL) in got
    assert ("modeling_x.py", "COD001", Severity.CRITICAL) in got
    assert not report.failed
