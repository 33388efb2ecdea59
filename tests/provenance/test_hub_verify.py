"""``verify --hf`` against the fake Hub: clean downloads verify, each tampering is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from supplychain.core.model import Severity
from supplychain.provenance.verify import ProvenanceOptions, run_verify
from tests.provenance.conftest import REPO_ID, repo_files
from tests.provenance.fakehub import Failure, FakeHub, FakeRepo, lfs_pointer
from tests.provenance.helpers import by_rule, download, prv, states


@pytest.fixture
def pinned(fakehub: FakeHub, tmp_path: Path) -> tuple[Path, str]:
    """A download pinned to the commit, and the commit."""
    commit = fakehub.repos[("model", REPO_ID)].commit
    return download(fakehub.url, REPO_ID, tmp_path / "dl", commit), commit


def test_untouched_download_verifies_clean(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert [f for f in prv(report) if f.severity > Severity.INFO] == []
    st = states(report)
    assert set(st) == set(repo_files())
    assert set(st.values()) == {"verified"}
    assert report.verdict is not None and report.verdict.passed
    assert ("provenance.commit", commit) in report.extra


def test_modified_lfs_and_git_files_are_critical(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    for name in ("model.safetensors", "config.json"):
        target = path / name
        data = bytearray(target.read_bytes())
        data[-2] ^= 1
        target.write_bytes(bytes(data))
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    hits = {f.location.path: f for f in by_rule(report, "PRV101")}
    assert set(hits) == {"model.safetensors", "config.json"}
    assert all(f.severity is Severity.CRITICAL for f in hits.values())
    assert states(report)["model.safetensors"] == "mismatch"
    assert report.verdict is not None and not report.verdict.passed


def test_missing_file_is_high(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    (path / "tokenizer" / "vocab.txt").unlink()
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    (hit,) = by_rule(report, "PRV102")
    assert hit.location.path == "tokenizer/vocab.txt" and hit.severity is Severity.HIGH
    assert states(report)["tokenizer/vocab.txt"] == "missing"
    assert report.verdict is not None and not report.verdict.passed


def test_extra_file_is_high(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    (path / "extra" / "modeling_evil.py").write_text("print('supplychain-sample')\n")
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    (hit,) = by_rule(report, "PRV103")
    assert hit.location.path == "extra/modeling_evil.py" and hit.severity is Severity.HIGH
    assert states(report)["extra/modeling_evil.py"] == "extra"


def test_lfs_pointer_instead_of_content(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(lfs_pointer(data))
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    (hit,) = by_rule(report, "PRV104")
    assert hit.location.path == "model.safetensors" and hit.severity is Severity.HIGH
    assert by_rule(report, "PRV101") == []


def test_unpinned_revision_is_medium_with_the_commit(pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision="main"))
    (hit,) = by_rule(report, "PRV105")
    assert hit.severity is Severity.MEDIUM and hit.evidence == commit
    assert report.verdict is not None and report.verdict.passed


def test_tag_resolves_and_is_unpinned(fakehub: FakeHub, pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    fakehub.repos[("model", REPO_ID)].branches = {"v1.0": commit, "main": commit}
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision="v1.0"))
    assert [f.evidence for f in by_rule(report, "PRV105")] == [commit]
    assert set(states(report).values()) == {"verified"}


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure(status=500), "server"),
        (Failure(status=401), "auth"),
        (Failure(status=403), "auth"),
        (Failure(status=404, code="RepoNotFound"), "not-found"),
        (Failure(status=404, code="RevisionNotFound"), "not-found"),
        (Failure(status=401, code="GatedRepo"), "auth"),
        (Failure(status=429), "rate-limit"),
        (Failure(truncate=True), "malformed"),
        (Failure(stall=3.0), "timeout"),
    ],
)
def test_hub_failures_fail_closed(
    fakehub: FakeHub, pinned: tuple[Path, str], failure: Failure, kind: str
) -> None:
    path, commit = pinned
    fakehub.fail(failure)
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit, timeout=1.0))
    (hit,) = by_rule(report, "PRV106")
    assert hit.severity is Severity.HIGH and hit.evidence == kind, hit.message
    assert set(states(report).values()) == {"unverifiable"}
    assert report.verdict is not None and not report.verdict.passed


def test_unknown_repo_and_connection_refused_fail_closed(
    fakehub: FakeHub, pinned: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = pinned
    report = run_verify([path], ProvenanceOptions(hf="acme-lab/nope"))
    assert [f.evidence for f in by_rule(report, "PRV106")] == ["not-found"]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, timeout=2.0))
    assert [f.evidence for f in by_rule(report, "PRV106")] == ["network"]


@pytest.mark.parametrize(
    "fields",
    [
        {"siblings": [{"rfilename": "config.json", "size": 1, "blobId": "not-hex"}]},
        {"siblings": [{"rfilename": "config.json", "size": 1}]},
        {"siblings": [{"rfilename": "m.bin", "size": 9, "lfs": {"sha256": "x" * 64, "size": 9}}]},
        {"siblings": [{"rfilename": "../evil.py", "size": 1, "blobId": "a" * 40}]},
        {"siblings": [{"rfilename": "config.json", "size": -1, "blobId": "a" * 40}]},
        {"sha": "main"},
        {"sha": None},
    ],
)
def test_malformed_hub_fields_fail_closed(
    fakehub: FakeHub, pinned: tuple[Path, str], fields: dict[str, object]
) -> None:
    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    original = repo.info

    def bad_info(c: str, security: bool) -> dict[str, object]:
        doc = original(c, security)
        doc.update(fields)
        return doc

    repo.info = bad_info  # type: ignore[method-assign,assignment]
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert [f.evidence for f in by_rule(report, "PRV106")] == ["malformed"]


def test_token_is_sent_and_never_printed(
    fakehub: FakeHub, pinned: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, commit = pinned
    secret = "hf_SeCrEtToKeN1234567890abcdef"
    monkeypatch.setenv("HF_TOKEN", secret)
    fakehub.fail(Failure(status=401, only="/api/"))
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert f"Bearer {secret}" in fakehub.auth
    text = repr(report)
    assert secret not in text and by_rule(report, "PRV106")


def test_hf_scan_status_is_corroborating_only(fakehub: FakeHub, pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    repo.flagged = {"extra/weights.bin": "unsafe", "config.json": "caution"}
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    sev = {f.location.path: f.severity for f in by_rule(report, "PRV108")}
    assert sev == {"extra/weights.bin": Severity.HIGH, "config.json": Severity.MEDIUM}
    repo.flagged, repo.scans_done = {}, False
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert len(by_rule(report, "PRV109")) == 1 and by_rule(report, "PRV108") == []


def test_private_gated_disabled_are_info(fakehub: FakeHub, pinned: tuple[Path, str]) -> None:
    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    repo.private, repo.gated, repo.disabled = True, "manual", True
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    hits = by_rule(report, "PRV107")
    assert sorted(f.evidence for f in hits) == ["disabled", "gated", "private"]
    assert {f.severity for f in hits} == {Severity.INFO}


def test_near_miss_publisher_and_dataset_repo(fakehub: FakeHub, tmp_path: Path) -> None:
    files = {"data.jsonl": b'{"text": "hi"}\n', "README.md": b"# d\n"}
    repo = fakehub.add(FakeRepo("meta-llarna/data", files, repo_type="dataset"))
    dest = tmp_path / "ds"
    dest.mkdir()
    for name, data in files.items():
        (dest / name).write_bytes(data)
    opts = ProvenanceOptions(hf="meta-llarna/data", revision=repo.commit, repo_type="dataset")
    report = run_verify([dest], opts)
    assert [f.evidence for f in by_rule(report, "PRV110")] == ["meta-llama"]
    assert set(states(report).values()) == {"verified"}
    assert by_rule(report, "PRV109") == []  # datasets have no scan status to report


def test_fresh_commit_in_an_old_repo_is_low(fakehub: FakeHub, pinned: tuple[Path, str]) -> None:
    from datetime import UTC, datetime, timedelta

    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    recent = datetime.now(UTC) - timedelta(hours=20)
    repo.last_modified = recent.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert [f.severity for f in by_rule(report, "PRV111")] == [Severity.LOW]


def test_scanned_digest_is_the_one_verified_no_second_read(
    pinned: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LFS files are verified with the sha256 the engine computed: never read a second time."""
    from supplychain.provenance import manifest
    from supplychain.provenance.verify import verify_dir
    from supplychain.service import run_scan

    path, commit = pinned
    scanned = run_scan([path]).files
    reads: list[str] = []
    real_digest = manifest.LocalFile.digest

    def counting(self: manifest.LocalFile, algorithm: str) -> str | None:
        if (algorithm == "sha256" and self.sha256 is None) or algorithm == "git-sha1":
            reads.append(self.path)
        return real_digest(self, algorithm)

    monkeypatch.setattr(manifest.LocalFile, "digest", counting)
    got = verify_dir(path, scanned, ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert {s.state for s in got.states} == {"verified"}
    lfs = {"model.safetensors", "extra/weights.bin"}
    assert not lfs & set(reads)
    assert set(reads) == set(repo_files()) - lfs  # only small git files get their sha1 pass


def test_per_file_hf_status_unsafe_and_unscanned(
    fakehub: FakeHub, pinned: tuple[Path, str]
) -> None:
    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    repo.file_status = {"extra/weights.bin": "unsafe", "README.md": "unscanned"}
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert [(f.location.path, f.severity) for f in by_rule(report, "PRV108")] == [
        ("extra/weights.bin", Severity.HIGH)
    ]
    (unknown,) = by_rule(report, "PRV109")
    assert unknown.evidence == "README.md"
    assert any(r.startswith("POST /api/models/") and "/paths-info/" in r for r in fakehub.requests)


def test_per_file_status_failure_is_unknown_not_unverified(
    fakehub: FakeHub, pinned: tuple[Path, str]
) -> None:
    """HF's scan is corroborating: losing it is 'unknown', the digests still verify."""
    path, commit = pinned
    fakehub.fail(Failure(status=500, only="/paths-info/"))
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    (unknown,) = by_rule(report, "PRV109")
    assert "server" in unknown.message and by_rule(report, "PRV106") == []
    assert set(states(report).values()) == {"verified"}


def test_recent_repo_head_but_old_pinned_content_is_not_fresh(
    fakehub: FakeHub, pinned: tuple[Path, str]
) -> None:
    """The fresh-commit check dates the pinned content (files' lastCommit), not the repo head."""
    from datetime import UTC, datetime, timedelta

    path, commit = pinned
    repo = fakehub.repos[("model", REPO_ID)]
    repo.last_modified = (datetime.now(UTC) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    repo.files_changed = "2024-01-01T00:00:00.000Z"
    report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=commit))
    assert by_rule(report, "PRV111") == []


def test_mirror_endpoint_with_a_path_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Artifactory-style HF_ENDPOINT (a path under the host) is used for every call."""
    mirror = FakeHub(prefix="/artifactory/api/huggingfaceml/hf-remote").start()
    try:
        repo = mirror.add(FakeRepo(REPO_ID, repo_files(), lfs=frozenset({"model.safetensors"})))
        import huggingface_hub.constants as constants

        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "home"))
        monkeypatch.setattr(constants, "ENDPOINT", mirror.url)  # the client's telemetry too
        template = mirror.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        path = download(mirror.url, REPO_ID, tmp_path / "m", repo.commit)
        report = run_verify([path], ProvenanceOptions(hf=REPO_ID, revision=repo.commit))
        assert set(states(report).values()) == {"verified"}
        assert ("provenance.endpoint", mirror.url) in report.extra
        assert all("/artifactory/api/huggingfaceml/hf-remote/" in r for r in mirror.requests)
    finally:
        mirror.stop()
