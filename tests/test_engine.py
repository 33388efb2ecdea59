"""The engine: discovery, sniffing dispatch, fail-closed outcomes, symlinks, determinism."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from scanners.base import Artifact, ScanContext
from supplychain.core.errors import ConfigError
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity, Status
from supplychain.engine import ScanOptions, scan_paths
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
    (tmp_path / "b.txt").write_text("clean")
    real_open = os.open

    def deny(file: object, *a: object, **k: object) -> int:
        if str(file).endswith("a.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    failed = [r for r in report.results if r.status is Status.FAILED]
    assert [r.path for r in failed] == ["a.txt"]
    assert [f.rule for f in report.findings] == ["GEN005"]


def test_symlink_out_of_root_is_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("MARKER")
    root = tmp_path / "model"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    (root / "inner.txt").write_text("clean")
    report = scan_paths([root], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.rule for f in report.findings] == ["GEN004"]
    finding = report.findings[0]
    assert finding.location.path == "link.txt" and finding.severity >= Severity.HIGH
    assert str(outside) in finding.message and finding.evidence == str(outside)
    assert {r.path for r in report.files} == {"inner.txt"}


def test_symlink_inside_root_is_scanned_once_and_reported_under_each_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real.txt").write_text("MARKER")
    (tmp_path / "alias.txt").symlink_to("real.txt")
    opened: list[str] = []
    real_open = os.open

    def count(file: object, *a: object, **k: object) -> int:
        opened.append(str(file))
        return real_open(file, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", count)
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [p for p in opened if p.endswith("real.txt")] == [str(tmp_path / "real.txt")]
    by_path = {f.location.path: f for f in report.findings}
    assert set(by_path) == {"alias.txt", "real.txt"}
    assert "real.txt" in by_path["alias.txt"].evidence  # the link target is in the evidence
    assert {r.path for r in report.files} == {"alias.txt", "real.txt"}


def test_fifo_is_a_high_finding_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [(r.path, r.status) for r in report.results] == [("pipe", Status.SKIPPED)]
    (finding,) = report.findings
    assert finding.rule == "GEN008" and finding.severity >= Severity.HIGH
    assert "FIFO" in finding.message


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


# -- issue #12: lazy registry, path-free per-file results, process pool ------------------------


def test_registry_specs_match_scanner_kinds() -> None:
    """``BUILTIN_SPECS`` repeats each scanner's kinds (to import lazily): they must not drift.

    If this fails, a scanner's ``kinds`` changed: update its line in ``scanners/__init__.py``.
    """
    from scanners import BUILTIN_SCANNERS, BUILTIN_SPECS

    assert len(BUILTIN_SPECS) == len(BUILTIN_SCANNERS)
    for spec, cls in zip(BUILTIN_SPECS, BUILTIN_SCANNERS, strict=True):
        assert spec.load() is cls
        assert spec.kinds == cls.kinds, f"{cls.__name__}: spec {spec.kinds} != {cls.kinds}"


def _timeless(result: object) -> object:
    from dataclasses import replace as dc_replace

    from supplychain.engine import FileResult

    assert isinstance(result, FileResult)
    return dc_replace(result, results=tuple(dc_replace(r, seconds=0.0) for r in result.results))


def test_same_bytes_under_two_names_give_equal_results_before_names_are_applied(
    tmp_path: Path,
) -> None:
    import pickle as _stdlib_pickle  # building a hostile test input, never loading one

    from supplychain.discover import discover
    from supplychain.engine import FILE_PLACEHOLDER, _scan_item, apply_names

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo supplychain-sample",))

    data = _stdlib_pickle.dumps(Payload(), protocol=4)
    for where in ("a", "b/c"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "model.pkl").write_bytes(data)
    items = discover([tmp_path]).items
    assert len(items) == 2
    first, second = (_scan_item(item, ScanOptions()) for item in items)
    assert first.findings and _timeless(first) == _timeless(second)
    assert {f.location.path for f in first.findings} == {FILE_PLACEHOLDER}
    named = apply_names(second, items[1].names)
    assert {f.location.path for f in named.findings} == {"b/c/model.pkl"}
    assert {r.path for r in named.records} == {"b/c/model.pkl"}


def _tree(root: Path) -> None:
    import io as _io
    import pickle as _stdlib_pickle  # building test inputs only
    import zipfile

    for i in range(12):
        (root / f"p{i}.pkl").write_bytes(_stdlib_pickle.dumps({"i": i, "v": list(range(50))}))
    (root / "evil.pkl").write_bytes(
        b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93"
        b"\x8c\x04echo\x85R."
    )
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.pkl", _stdlib_pickle.dumps([1, 2, 3]))
    (root / "bundle.zip").write_bytes(buf.getvalue())
    (root / "notes.txt").write_text("hello")
    os.symlink("p1.pkl", root / "alias.pkl")


def _comparable(report: object) -> tuple[object, ...]:
    from dataclasses import replace as dc_replace

    from supplychain.core.model import Report

    assert isinstance(report, Report)
    return (
        report.files,
        report.findings,
        tuple(dc_replace(r, seconds=0.0) for r in report.results),
        report.facts,
        report.rules,
    )


def test_process_pool_output_is_identical_to_serial(tmp_path: Path) -> None:
    _tree(tmp_path)
    serial = scan_paths([tmp_path], ScanOptions(jobs=1))
    processes = scan_paths([tmp_path], ScanOptions(jobs=2, executor="process"))
    threads = scan_paths([tmp_path], ScanOptions(jobs=2, executor="thread"))
    assert serial.findings  # the tree is not trivially clean
    assert {"alias.pkl", "bundle.zip"} <= {r.path for r in serial.files}
    assert _comparable(processes) == _comparable(serial) == _comparable(threads)


def test_auto_executor_picks_processes_for_many_importable_scanners(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from supplychain.engine import PROCESS_MIN_BYTES, PROCESS_MIN_FILES, _executor

    many = PROCESS_MIN_FILES
    pool = _executor(ScanOptions(jobs=2), many)
    assert isinstance(pool, ProcessPoolExecutor)
    pool.shutdown()

    class Local(MarkerScanner):
        pass

    pool = _executor(ScanOptions(jobs=2, scanners=(Local,)), many)
    assert isinstance(pool, ThreadPoolExecutor)  # a test-local class cannot cross processes
    pool.shutdown()
    assert _executor(ScanOptions(jobs=2), 1) is None
    assert _executor(ScanOptions(jobs=1), many) is None
    small = _executor(ScanOptions(jobs=2), many, total_bytes=PROCESS_MIN_BYTES - 1)
    assert isinstance(small, ThreadPoolExecutor)  # a small model directory stays on threads
    small.shutdown()


def test_scanning_one_small_file_imports_no_heavy_module(tmp_path: Path) -> None:
    import json as _json
    import struct
    import subprocess
    import sys

    raw = _json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    target = tmp_path / "m.safetensors"
    target.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    code = (
        "import sys\n"
        "from supplychain.cli import main\n"
        f"code = main(['scan', '-q', '-f', 'json', '-o', {str(tmp_path / 'r.json')!r}, "
        f"{str(target)!r}])\n"
        "heavy = {'numpy', 'sklearn', 'rich', 'jinja2', 'h5py', 'pyarrow', 'torch', 'onnx',\n"
        "         'yaml', 'pandas', 'scanners.dataset.runner', 'scanners.code_scan',\n"
        "         'scanners.keras_scan', 'scanners.onnx_scan', 'scanners.gguf_scan'}\n"
        "print(code, sorted(m for m in sys.modules if m in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split(None, 1) == ["0", "[]\n"]


def test_unguarded_host_script_is_never_re_run_by_workers(tmp_path: Path) -> None:
    """Code on stdin (or a script without a main guard) that scans with jobs=2 runs once."""
    import subprocess
    import sys

    from supplychain.engine import PROCESS_MIN_BYTES

    blob = bytes(range(256)) * (PROCESS_MIN_BYTES // 256 // 5 + 1)  # big enough for processes
    for i in range(6):
        (tmp_path / f"{i}.dat").write_bytes(blob)
    code = (
        "import supplychain\n"
        f"report = supplychain.scan([{str(tmp_path)!r}], jobs=2)\n"
        "print('ran', len(report.files))\n"
    )
    out = subprocess.run(
        [sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ran", "6"]
