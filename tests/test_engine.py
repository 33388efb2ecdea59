"""The engine: discovery, sniffing dispatch, fail-closed outcomes, symlinks, determinism."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from scanners.base import Artifact, ScanContext
from supplychain.engine import ScanOptions, scan_paths
from supplychain.errors import ConfigError
from supplychain.limits import Limits
from supplychain.model import ArtifactKind, Finding, Rule, Status
from tests.fakes import TST001, MarkerScanner


def _scan(*paths: Path, jobs: int = 1) -> object:
    return scan_paths(list(paths), ScanOptions(scanners=(MarkerScanner,), jobs=jobs))


def test_findings_and_hash_of_each_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello MARKER")
    (tmp_path / "b.txt").write_text("clean")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.rule for f in report.findings] == ["TST001"]
    finding = report.findings[0]
    assert finding.location.path == "a.txt" and finding.location.offset == 6
    assert "\x1b" not in finding.evidence
    import hashlib

    digests = {r.path: r.sha256 for r in report.files}
    assert digests["a.txt"] == hashlib.sha256(b"hello MARKER").hexdigest()


def test_scanner_that_raises_is_failed_and_scan_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("BOOM")
    (tmp_path / "b.txt").write_text("MARKER")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    failed = [r for r in report.results if r.status is Status.FAILED]
    assert [r.path for r in failed] == ["a.txt"]
    assert "scanner bug" in failed[0].reason
    assert [f.location.path for f in report.findings] == ["b.txt"]


def test_malformed_input_is_a_finding_with_what_came_before(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("xx BROKEN")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert sorted(f.rule for f in report.findings) == ["GEN001", "TST002"]
    gen = next(f for f in report.findings if f.rule == "GEN001")
    assert gen.location.offset == 3


def test_limit_hit_is_gen002(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("LIMIT")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.rule for f in report.findings] == ["GEN002"]


def test_unknown_kind_is_skipped_with_reason(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(bytes(range(256)) * 4)
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert report.files[0].kind is ArtifactKind.UNKNOWN
    (result,) = report.results
    assert result.status is Status.SKIPPED and result.reason == "unrecognised format"
    assert not result.expected


def test_unreadable_file_fails_even_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    real_open = Path.open

    def deny(self: Path, *a: object, **k: object) -> object:
        if self.name == "a.txt":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", deny)
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [r.status for r in report.results] == [Status.FAILED]
    assert [f.rule for f in report.findings] == ["GEN005"]


def test_symlink_out_of_root_is_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("MARKER")
    root = tmp_path / "model"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    (root / "inner.txt").write_text("clean")
    (root / "inner_link.txt").symlink_to(root / "inner.txt")
    report = scan_paths([root], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.rule for f in report.findings] == ["GEN004"]
    assert report.findings[0].location.path == "link.txt"
    assert {r.path for r in report.files} == {"inner.txt"}
    inner = next(r for r in report.results if r.path == "inner_link.txt")
    assert inner.expected and "inner.txt" in inner.reason


def test_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [(r.path, r.status) for r in report.results] == [("pipe", Status.SKIPPED)]


def test_bad_path_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        scan_paths([tmp_path / "missing"])


def test_parallel_output_is_identical_to_serial(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:02}.txt").write_text("MARKER NOTE" if i % 3 else "clean")
    serial = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,), jobs=1))
    parallel = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,), jobs=4))
    assert serial.findings == parallel.findings
    assert serial.files == parallel.files
    assert [(r.path, r.status) for r in serial.results] == [
        (r.path, r.status) for r in parallel.results
    ]


class _ZipLikeScanner:
    """Container double: every line 'member:<text>' becomes a dispatched member."""

    name: ClassVar[str] = "container"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.TEXT})
    rules: ClassVar[tuple[Rule, ...]] = ()

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        for i, line in enumerate(artifact.stream.read(4096).splitlines()):
            if line.startswith(b"member:"):
                body = line[len(b"member:") :][::-1]
                child = artifact.child(f"m{i}", ArtifactKind.UNKNOWN, len(body), io.BytesIO(body))
                yield from ctx.dispatch(child)


def test_dispatch_sniffs_members_records_them_and_bounds_nesting(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("member:" + "MARKER inside"[::-1] + "\n")
    report = scan_paths([tmp_path], ScanOptions(scanners=(_ZipLikeScanner, MarkerScanner)))
    (finding,) = report.findings
    assert finding.rule == TST001.id and finding.location.member == ("m0",)
    assert any(r.member == ("m0",) for r in report.files)
    # Members that contain members: the engine stops at max_nesting with a GEN002 finding.
    body = "x"
    for _ in range(6):
        body = ("member:" + body)[::-1]
    (tmp_path / "c.txt").write_text(body[::-1] + "\n")
    report = scan_paths(
        [tmp_path],
        ScanOptions(scanners=(_ZipLikeScanner,), limits=Limits(max_nesting=2)),
    )
    assert [f.rule for f in report.findings] == ["GEN002"]
    assert len(report.findings[0].location.member) == 3


def test_single_file_target_is_named_by_its_basename(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("MARKER")
    report = _scan(path)
    assert report.findings[0].location.path == "x.txt"  # type: ignore[attr-defined]


def test_multiple_targets_keep_their_directory_names(tmp_path: Path) -> None:
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "a.txt").write_text("MARKER")
    report = _scan(tmp_path / "one", tmp_path / "two")
    paths = sorted(f.location.path for f in report.findings)  # type: ignore[attr-defined]
    assert paths == ["one/a.txt", "two/a.txt"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("model.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(64), "TFLite recognised"),
        ("model.llamafile", b"MZqFpD='\n" + bytes(64), "llamafile recognised"),
    ],
)
def test_formats_not_analysed_yet_are_skipped_with_that_reason(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(data)
    report = scan_paths([tmp_path])
    (result,) = report.results
    assert result.status is Status.SKIPPED and reason in result.reason and not result.expected
