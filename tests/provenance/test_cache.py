"""Offline verification of a real HF cache snapshot made by ``snapshot_download``, then tampered."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from supplychain.core.model import Severity
from supplychain.provenance.cache import find_snapshot
from supplychain.provenance.verify import ProvenanceOptions, run_verify
from tests.provenance.conftest import REPO_ID, repo_files
from tests.provenance.fakehub import FakeHub
from tests.provenance.helpers import by_rule, cache_download, prv, states


@pytest.fixture
def snapshot(fakehub: FakeHub, tmp_path: Path) -> Path:
    """A cache snapshot downloaded by the real client from the fake Hub."""
    return cache_download(fakehub.url, REPO_ID, tmp_path / "cache")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, fakehub: FakeHub) -> Iterator[None]:
    """No network: the fake Hub is stopped, HF is offline and every socket connect fails."""
    import huggingface_hub.constants as constants

    fakehub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(self: socket.socket, address: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


def blob_of(snapshot: Path, name: str) -> Path:
    return (snapshot / name).resolve()


def test_snapshot_is_recognised(snapshot: Path) -> None:
    snap = find_snapshot(snapshot)
    assert snap is not None and snap.repo_id == REPO_ID and snap.repo_type == "model"
    assert find_snapshot(snapshot.parent) is None
    assert find_snapshot(snapshot / "tokenizer") is None


def test_untouched_snapshot_verifies_offline(snapshot: Path, offline: None) -> None:
    report = run_verify([snapshot], ProvenanceOptions())
    assert [f for f in prv(report) if f.severity > Severity.INFO] == []
    assert states(report) == dict.fromkeys(repo_files(), "verified")
    assert report.verdict is not None and report.verdict.passed


def test_one_byte_changed_in_a_blob(snapshot: Path, offline: None) -> None:
    for name in ("model.safetensors", "config.json"):
        blob = blob_of(snapshot, name)
        data = bytearray(blob.read_bytes())
        data[3] ^= 0x20
        blob.write_bytes(bytes(data))
    report = run_verify([snapshot], ProvenanceOptions())
    assert {f.location.path for f in by_rule(report, "PRV112")} == {
        "model.safetensors",
        "config.json",
    }
    assert {f.location.path for f in by_rule(report, "PRV101")} == {
        "model.safetensors",
        "config.json",
    }
    assert states(report)["config.json"] == "mismatch"
    assert report.verdict is not None and not report.verdict.passed


def test_blob_replaced_by_another_blob(snapshot: Path, offline: None) -> None:
    """A link repointed at a genuine blob of another file: names match, the tree does not."""
    link = snapshot / "config.json"
    target = (snapshot / "README.md").readlink()
    link.unlink()
    link.symlink_to(target)
    report = run_verify([snapshot], ProvenanceOptions())
    assert by_rule(report, "PRV112") == []
    assert [f.location.path for f in by_rule(report, "PRV101")] == ["config.json"]


def test_file_added_and_file_removed(snapshot: Path, offline: None) -> None:
    (snapshot / "modeling_evil.py").write_text("print('supplychain-sample')\n")
    (snapshot / "tokenizer" / "vocab.txt").unlink()
    report = run_verify([snapshot], ProvenanceOptions())
    assert [f.location.path for f in by_rule(report, "PRV103")] == ["modeling_evil.py"]
    assert [f.location.path for f in by_rule(report, "PRV102")] == ["tokenizer/vocab.txt"]
    assert states(report)["modeling_evil.py"] == "extra"


def test_without_cached_tree_the_file_set_is_unverifiable(snapshot: Path, offline: None) -> None:
    snap = find_snapshot(snapshot)
    assert snap is not None
    (snap.repo_dir / "trees" / f"{snap.commit}.json").unlink()
    (snapshot / "dropped.bin").write_bytes(b"\x80\x04K\x01.")
    report = run_verify([snapshot], ProvenanceOptions())
    assert len(by_rule(report, "PRV114")) == 1
    assert [f.location.path for f in by_rule(report, "PRV113")] == ["dropped.bin"]
    assert states(report)["dropped.bin"] == "unverifiable"
    assert states(report)["config.json"] == "verified"
    assert report.verdict is not None and not report.verdict.passed


def test_corrupt_cached_tree_fails_closed(snapshot: Path, offline: None) -> None:
    snap = find_snapshot(snapshot)
    assert snap is not None
    (snap.repo_dir / "trees" / f"{snap.commit}.json").write_text('{"format_version": 1, "fi')
    report = run_verify([snapshot], ProvenanceOptions())
    assert len(by_rule(report, "PRV106")) == 1
    assert report.verdict is not None and not report.verdict.passed


def test_hub_verification_offline_fails_closed(snapshot: Path, offline: None) -> None:
    report = run_verify([snapshot], ProvenanceOptions(hf=REPO_ID))
    assert [f.evidence for f in by_rule(report, "PRV106")] == ["offline"]
    assert report.verdict is not None and not report.verdict.passed


def test_lock_of_a_snapshot_records_repo_and_commit_offline(snapshot: Path, offline: None) -> None:
    import json

    from supplychain.provenance.verify import LockRefused, create_lock

    doc = json.loads(create_lock(snapshot, ProvenanceOptions()))
    assert doc["source"] == {
        "repo": REPO_ID,
        "repo_type": "model",
        "commit": snapshot.name,
        "revision": snapshot.name,
    }
    assert sorted(f["path"] for f in doc["files"]) == sorted(repo_files())
    blob_of(snapshot, "config.json").write_text("{}")
    with pytest.raises(LockRefused, match="PRV112"):
        create_lock(snapshot, ProvenanceOptions())
