"""Shared helpers: download from the fake Hub with the real client, and read report parts."""

from __future__ import annotations

from pathlib import Path

from supplychain.core.model import Finding, Report, Severity


def download(endpoint: str, repo_id: str, dest: Path, revision: str = "main") -> Path:
    """``snapshot_download`` into a plain directory (what a user's ``--local-dir`` holds)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, local_dir=dest, endpoint=endpoint))


def cache_download(endpoint: str, repo_id: str, cache: Path, revision: str = "main") -> Path:
    """``snapshot_download`` into an HF cache: the snapshot directory."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, endpoint=endpoint))


def prv(report: Report) -> list[Finding]:
    """Provenance findings (``PRV1xx``)."""
    return [f for f in report.findings if f.rule.startswith("PRV1")]


def by_rule(report: Report, rule: str) -> list[Finding]:
    """Findings of one rule."""
    return [f for f in report.findings if f.rule == rule]


def states(report: Report) -> dict[str, str]:
    """Path → provenance state from the report's facts."""
    return {f.location.path: str(f.value) for f in report.facts if f.key == "provenance.state"}


def worst(findings: list[Finding]) -> Severity | None:
    """Worst severity in ``findings``."""
    return max((f.severity for f in findings), default=None)
