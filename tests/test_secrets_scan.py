"""`scan` finds secrets in a model repository's README, configs, notebooks and code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import scanners.secrets_scan as secrets_scan
from scanners import BUILTIN_SPECS
from scanners.base import Artifact, ScanContext
from scanners.secrets_scan import SecretsScanner
from supplychain.core.model import ArtifactKind, Severity
from supplychain.engine import scan_paths
from tests.test_secrets import AWS_ID, AWS_SECRET, github_token, pem, rand

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _repo(root: Path) -> dict[str, str]:
    """A model repository with one secret per kind of file; returns file -> detector kind."""
    (root / "README.md").write_text(
        "---\nlicense: mit\n---\n# My model\n\nDownload with\n\n"
        f"    huggingface-cli login --token hf_{rand(34, LETTERS)}\n"
    )
    (root / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": 8, "wandb_key": github_token()})
    )
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Train\n"]},
            {
                "cell_type": "code",
                "source": [f'db = "postgresql://trainer:{rand(16)}@db.corp.net/runs"\n'],
            },
        ],
        "metadata": {},
        "nbformat": 4,
    }
    (root / "train.ipynb").write_text(json.dumps(notebook, indent=1))
    (root / "handler.py").write_text(
        f'import os\nKEY_ID = "{AWS_ID}"\nAWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\n'
    )
    (root / "deploy.yaml").write_text(
        "service:\n  key: |\n" + "".join("    " + line + "\n" for line in pem().splitlines())
    )
    (root / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return {
        "README.md": "huggingface-token",
        "config.json": "github-token",
        "train.ipynb": "connection-string",
        "handler.py": "aws-access-key-id",
        "deploy.yaml": "private-key",
    }


def test_scan_finds_secrets_in_every_repo_file(tmp_path: Path) -> None:
    expected = _repo(tmp_path)
    report = scan_paths([tmp_path])
    found = {(f.location.path, f.evidence.split(" ")[0]) for f in report.findings}
    for path, kind in expected.items():
        assert (path, kind) in found, (path, kind, sorted(found))
    assert all(
        f.severity >= Severity.HIGH
        for f in report.findings
        if f.rule.startswith("SEC") and f.evidence.split(" ")[0] != "password-assignment"
    )


def test_line_number_and_byte_offset(tmp_path: Path) -> None:
    token = github_token()
    text = "é line one\nline two\n\nkey = " + token + "\n"
    (tmp_path / "NOTES.txt").write_text(text, encoding="utf-8")
    report = scan_paths([tmp_path])
    (finding,) = [f for f in report.findings if f.rule == "SEC001"]
    assert "on line 4" in finding.message
    raw = text.encode("utf-8")
    assert finding.location.offset == raw.index(token.encode())


def _artifact(data: bytes) -> Artifact:
    return Artifact(path="big.txt", kind=ArtifactKind.TEXT, size=len(data), stream=io.BytesIO(data))


@pytest.mark.parametrize("where", [0, 1, 2])
def test_secret_straddling_chunks_found_once(monkeypatch: pytest.MonkeyPatch, where: int) -> None:
    """A small chunk and overlap: a secret across a chunk edge is seen whole, and only once."""
    monkeypatch.setattr(secrets_scan, "CHUNK", 256)
    monkeypatch.setattr(secrets_scan, "OVERLAP", 64)
    token = github_token()
    filler = ("lorem ipsum dolor\n" * 40).encode()
    cut = 256 - 10 + where * 5  # straddles the first chunk edge
    data = filler[:cut] + b" " + token.encode() + b"\n" + filler
    findings = list(SecretsScanner().scan(_artifact(data), ScanContext()))
    assert [f.location.offset for f in findings] == [cut + 1]
    line = data[:cut].count(b"\n") + 1
    assert f"on line {line}" in findings[0].message


def test_many_secrets_across_chunks_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets_scan, "CHUNK", 300)
    monkeypatch.setattr(secrets_scan, "OVERLAP", 80)
    tokens = [github_token(seed=i) for i in range(20)]
    data = "".join(f"row {i} {t} padding padding\n" for i, t in enumerate(tokens)).encode()
    offsets = [f.location.offset for f in SecretsScanner().scan(_artifact(data), ScanContext())]
    assert offsets == [data.index(t.encode()) for t in tokens]


def test_registered_for_text_kinds_including_notebooks() -> None:
    (spec,) = [s for s in BUILTIN_SPECS if s.attr == "SecretsScanner"]
    assert spec.kinds == SecretsScanner.kinds
    assert ArtifactKind.TEXT in spec.kinds  # notebooks and READMEs are sniffed as TEXT


def test_clean_repository_has_no_secret_findings(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        "Set `HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx` or `api_key = YOUR_API_KEY`.\n"
        "Example AWS key: AKIAIOSFODNN7EXAMPLE\n"
        "postgres://user:password@localhost:5432/db\n"
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 30522}))
    report = scan_paths([tmp_path])
    assert [f for f in report.findings if f.rule.startswith("SEC")] == []
