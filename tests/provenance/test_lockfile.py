"""``supplychain lock`` then verification against the lock: round trip, drift, missing, extra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supplychain.core.model import Severity
from supplychain.provenance import lockfile
from supplychain.provenance.verify import LockRefused, ProvenanceOptions, create_lock, run_verify
from tests.provenance.conftest import REPO_ID
from tests.provenance.fakehub import Failure, FakeHub
from tests.provenance.helpers import by_rule, download, prv, states


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    (root / "sub" / "weights.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}" * 50)
    return root


def test_round_trip_and_lock_found_beside_the_model(model: Path) -> None:
    text = create_lock(model, ProvenanceOptions(), model / lockfile.LOCK_NAME)
    assert (model / lockfile.LOCK_NAME).read_text() == text
    report = run_verify([model], ProvenanceOptions())  # auto: supplychain.lock beside the model
    assert [f for f in prv(report) if f.severity > Severity.INFO] == []
    assert states(report) == {"config.json": "verified", "sub/weights.safetensors": "verified"}
    assert ("provenance.lock", lockfile.LOCK_NAME) in report.extra


def test_lock_format_is_diff_friendly(model: Path) -> None:
    text = create_lock(model, ProvenanceOptions())
    lines = text.splitlines()
    assert [json.loads(line.rstrip(","))["path"] for line in lines[1:-1]] == [
        "config.json",
        "sub/weights.safetensors",
    ]
    doc = json.loads(text)
    assert doc["format"] == "supplychain-lock" and doc["version"] == 1 and doc["source"] is None


def test_drift_missing_and_extra_are_caught(model: Path, tmp_path: Path) -> None:
    lock = tmp_path / "elsewhere.lock"
    create_lock(model, ProvenanceOptions(), lock)
    (model / "config.json").write_text('{"model_type": "bert", "auto_map": {}}\n')
    (model / "sub" / "weights.safetensors").unlink()
    (model / "sub" / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    report = run_verify([model], ProvenanceOptions(lock=lock))
    assert [f.location.path for f in by_rule(report, "PRV101")] == ["config.json"]
    assert [f.location.path for f in by_rule(report, "PRV102")] == ["sub/weights.safetensors"]
    assert [f.location.path for f in by_rule(report, "PRV103")] == ["sub/evil.pkl"]
    assert report.verdict is not None and not report.verdict.passed


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"format": "other", "version": 1, "files": []}',
        '{"format": "supplychain-lock", "version": 9, "files": []}',
        '{"format": "supplychain-lock", "version": 1, "files": [{"path": "../x", "size": 1,'
        ' "sha256": "' + "0" * 64 + '"}]}',
        '{"format": "supplychain-lock", "version": 1, "files": [{"path": "a", "size": 1}]}',
    ],
)
def test_unusable_lock_fails_closed(model: Path, tmp_path: Path, text: str) -> None:
    lock = tmp_path / "bad.lock"
    lock.write_text(text)
    report = run_verify([model], ProvenanceOptions(lock=lock))
    assert len(by_rule(report, "PRV106")) == 1
    assert report.verdict is not None and not report.verdict.passed


def test_lock_with_hf_records_the_commit(fakehub: FakeHub, tmp_path: Path) -> None:
    path = download(fakehub.url, REPO_ID, tmp_path / "dl")
    commit = fakehub.repos[("model", REPO_ID)].commit
    text = create_lock(path, ProvenanceOptions(hf=REPO_ID))
    assert json.loads(text)["source"] == {
        "repo": REPO_ID,
        "repo_type": "model",
        "commit": commit,
        "revision": "main",
    }
    assert ".cache/huggingface" not in text
    (path / "config.json").write_text("{}")
    with pytest.raises(LockRefused, match=r"PRV101 config\.json"):
        create_lock(path, ProvenanceOptions(hf=REPO_ID))
    fakehub.fail(Failure(status=503))
    with pytest.raises(LockRefused, match="PRV106"):
        create_lock(path, ProvenanceOptions(hf=REPO_ID))


def test_git_and_hf_metadata_dirs_are_never_part_of_the_set(model: Path, tmp_path: Path) -> None:
    (model / ".git" / "lfs" / "objects").mkdir(parents=True)
    (model / ".git" / "lfs" / "objects" / "blob").write_bytes(b"x" * 100)
    (model / ".cache" / "huggingface").mkdir(parents=True)
    (model / ".cache" / "huggingface" / "x.metadata").write_text("abc\n")
    text = create_lock(model, ProvenanceOptions())
    assert ".git" not in text and ".cache" not in text
    lock = tmp_path / "m.lock"
    lock.write_text(text)
    report = run_verify([model], ProvenanceOptions(lock=lock))
    assert [f for f in prv(report) if f.severity > Severity.INFO] == []


def test_a_record_without_a_digest_is_hashed_not_trusted(model: Path) -> None:
    """An engine record with no sha256 (e.g. a file it did not hash) never reads as a mismatch."""
    from supplychain.core.model import ArtifactKind, ArtifactRecord
    from supplychain.provenance.manifest import local_files

    data = (model / "config.json").read_bytes()
    rec = ArtifactRecord("config.json", ArtifactKind.MODEL_CONFIG, len(data), "")
    local = local_files(model, [rec])
    import hashlib

    assert local["config.json"].digest("sha256") == hashlib.sha256(data).hexdigest()
