"""Discovery fails closed: links (and the Hugging Face cache), special files, walk errors.

Every case is built in ``tmp_path`` by the test. The "malicious" pickle is built opcode by opcode
(``tests/pickle_builders.py``) and is inert: at most ``os.system('echo supplychain-sample')``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from supplychain.cli import main
from supplychain.core.errors import ConfigError
from supplychain.core.model import Report, Severity, Status
from supplychain.discover import TargetError, claims_model_format, discover
from supplychain.engine import ScanOptions, scan_paths
from tests.fakes import MarkerScanner
from tests.pickle_builders import call_pickle

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EVIL = call_pickle("os", "system", "echo supplychain-sample")
COMMIT = "86b5e0934494bd15c9632b12f734a8a67f723594"
OTHER_COMMIT = "dd4bc8b21efa05ec961e3efc4ee5e3832a3679c7"


def _blob(repo: Path, data: bytes) -> str:
    """Store ``data`` as ``blobs/<sha256>`` (the LFS naming) and return the blob name."""
    name = hashlib.sha256(data).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / name).write_bytes(data)
    return name


def _snapshot(repo: Path, commit: str, files: dict[str, bytes]) -> Path:
    """``snapshots/<commit>/<file> -> ../../blobs/<sha>``, as huggingface_hub lays it out."""
    snap = repo / "snapshots" / commit
    for rel, data in files.items():
        blob = _blob(repo, data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(rel).parts) + 1
        link.symlink_to(Path(*([".."] * depth)) / "blobs" / blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A fake HF hub cache: one repo with a malicious pickle, one clean repo, cache markers."""
    hub = tmp_path / "hub"
    bad = hub / "models--org--name"
    _snapshot(
        bad,
        COMMIT,
        {
            "pytorch_model.bin": EVIL,
            "config.json": (SAMPLES / "benign" / "config.json").read_bytes(),
        },
    )
    # A second revision linking the same malicious blob: scanned once, reported for both names.
    _snapshot(bad, OTHER_COMMIT, {"pytorch_model.bin": EVIL})
    # The negative cache: empty files saying "absent at this commit". Not content.
    (bad / ".no_exist" / COMMIT).mkdir(parents=True)
    (bad / ".no_exist" / COMMIT / "model.safetensors").write_bytes(b"")
    clean = hub / "models--org--clean"
    _snapshot(
        clean,
        COMMIT,
        {
            "config.json": (SAMPLES / "benign" / "config.json").read_bytes(),
            "model.safetensors": (SAMPLES / "benign" / "model.safetensors").read_bytes(),
            "sub/tokenizer_config.json": (
                SAMPLES / "benign" / "tokenizer_config.json"
            ).read_bytes(),
        },
    )
    (hub / ".locks" / "models--org--name").mkdir(parents=True)
    (hub / ".locks" / "models--org--name" / "abc.lock").write_bytes(b"")
    return hub


def _pkl(report: Report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.findings:
        if f.severity >= Severity.HIGH:
            out.setdefault(f.location.path, set()).add(f.rule)
    return out


def test_hf_snapshot_dir_scans_blobs_and_names_the_snapshot_file(hub: Path) -> None:
    snap = hub / "models--org--name" / "snapshots" / COMMIT
    report = scan_paths([snap])
    high = _pkl(report)
    assert set(high) == {"pytorch_model.bin"}, high
    assert any(r.startswith("PKL") for r in high["pytorch_model.bin"])
    finding = next(f for f in report.findings if f.location.path == "pytorch_model.bin")
    blob = hashlib.sha256(EVIL).hexdigest()
    assert blob in finding.evidence  # the link target is named
    assert not any("blobs/" in f.location.path for f in report.findings)
    assert {r.path for r in report.files} == {"pytorch_model.bin", "config.json"}


def test_hf_repo_dir_reports_every_snapshot_name_never_the_blob(hub: Path) -> None:
    report = scan_paths([hub / "models--org--name"])
    high = _pkl(report)
    assert set(high) == {
        f"snapshots/{COMMIT}/pytorch_model.bin",
        f"snapshots/{OTHER_COMMIT}/pytorch_model.bin",
    }, high
    assert not any(f.location.path.startswith("blobs/") for f in report.findings)
    assert not any(r.path.startswith("blobs/") for r in report.files)
    # The empty negative-cache entry is a benign, expected skip (not an "empty weights" alarm).
    marker = next(r for r in report.results if ".no_exist/" in r.path)
    assert marker.status is Status.SKIPPED and marker.expected


def test_hf_blob_scanned_once_even_when_several_snapshots_name_it(
    hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = os.open

    def count(file: object, *a: object, **k: object) -> int:
        opened.append(str(file))
        return real_open(file, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", count)
    scan_paths([hub], ScanOptions(jobs=1))
    blob = hashlib.sha256(EVIL).hexdigest()
    assert sum(1 for p in opened if p.endswith(blob)) == 1


def test_hf_unreferenced_blob_is_still_scanned_under_its_blob_name(hub: Path) -> None:
    repo = hub / "models--org--name"
    orphan = _blob(repo, call_pickle("os", "system", "echo supplychain-sample", proto=2))
    report = scan_paths([repo])
    assert f"blobs/{orphan}" in _pkl(report)


def test_hf_hub_root_finds_the_bad_repo_and_passes_nothing_silently(hub: Path) -> None:
    report = scan_paths([hub])
    assert set(_pkl(report)) == {
        f"models--org--name/snapshots/{COMMIT}/pytorch_model.bin",
        f"models--org--name/snapshots/{OTHER_COMMIT}/pytorch_model.bin",
    }
    assert not [r for r in report.results if r.status is Status.FAILED]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("models--org--name/snapshots/" + COMMIT, 1),
        ("models--org--name", 1),
        ("", 1),
        ("models--org--clean/snapshots/" + COMMIT, 0),
        ("models--org--clean", 0),
    ],
)
def test_hf_cache_exit_codes_from_the_cli(hub: Path, where: str, expected: int) -> None:
    out = hub.parent / "r.json"
    assert main(["scan", str(hub / where), "-q", "-f", "json", "-o", str(out)]) == expected


def test_a_link_given_as_target_is_resolved_and_scanned(hub: Path) -> None:
    link = hub / "models--org--name" / "snapshots" / COMMIT / "pytorch_model.bin"
    report = scan_paths([link])
    assert "pytorch_model.bin" in _pkl(report)
    assert [r.path for r in report.files] == ["pytorch_model.bin"]
    assert any(r.status is Status.SCANNED for r in report.results)


def test_plain_link_target_outside_any_cache(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("MARKER")
    (tmp_path / "given.txt").symlink_to(tmp_path / "real.txt")
    report = scan_paths([tmp_path / "given.txt"], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.location.path for f in report.findings] == ["given.txt"]


def test_link_out_of_root_fails_the_default_gate_and_says_where(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("token")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer.json").symlink_to(secret)
    report = scan_paths([model])
    (finding,) = [f for f in report.findings if f.rule == "GEN004"]
    assert finding.severity >= Severity.HIGH and str(secret) in finding.message
    assert main(["scan", str(model), "-q"]) == 1


def test_hf_link_into_another_repos_blobs_is_out_of_root(hub: Path) -> None:
    """Only a repo's own blobs/ are followed: a snapshot link into a sibling repo is GEN004."""
    snap = hub / "models--org--clean" / "snapshots" / COMMIT
    other = hashlib.sha256(EVIL).hexdigest()
    (snap / "extra.bin").symlink_to(hub / "models--org--name" / "blobs" / other)
    report = scan_paths([snap])
    assert [f.location.path for f in report.findings if f.rule == "GEN004"] == ["extra.bin"]


def test_dangling_link_is_a_high_finding(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").symlink_to(tmp_path / "not-there")
    report = scan_paths([tmp_path])
    (finding,) = [f for f in report.findings if f.rule == "GEN006"]
    assert finding.location.path == "model.safetensors" and "dangling" in finding.message
    assert finding.severity >= Severity.HIGH
    assert main(["scan", str(tmp_path), "-q"]) == 1


def test_link_loop_is_a_finding_and_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "a.bin").symlink_to(tmp_path / "b.bin")
    (tmp_path / "b.bin").symlink_to(tmp_path / "a.bin")
    (tmp_path / "self.bin").symlink_to("self.bin")
    report = scan_paths([tmp_path])
    loops = sorted(f.location.path for f in report.findings if f.rule == "GEN006")
    assert loops == ["a.bin", "b.bin", "self.bin"]
    assert all("loop" in f.message for f in report.findings if f.rule == "GEN006")
    assert main(["scan", str(tmp_path), "-q"]) == 1


def test_link_loop_given_as_target_is_operational(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "a")
    with pytest.raises(TargetError, match="cannot resolve"):
        discover([tmp_path / "a"])
    (tmp_path / "d").symlink_to(tmp_path / "nowhere")
    with pytest.raises(TargetError, match="dangling"):
        discover([tmp_path / "d"])


def test_link_to_directory_inside_root_is_walked_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("MARKER")
    (tmp_path / "alias").symlink_to("real", target_is_directory=True)
    report = scan_paths([tmp_path], ScanOptions(scanners=(MarkerScanner,)))
    assert [f.location.path for f in report.findings] == ["real/a.txt"]
    skip = next(r for r in report.results if r.path == "alias")
    assert skip.expected and "real" in skip.reason


def _run_with_timeout(fn: object, seconds: float) -> object:
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the scan blocked on a special file"
    return box[0]


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors", "weights.gguf"])
def test_fifo_named_like_weights_fails_the_gate_without_blocking(tmp_path: Path, name: str) -> None:
    (tmp_path / "config.json").write_text("{}")
    os.mkfifo(tmp_path / name)
    report = _run_with_timeout(lambda: scan_paths([tmp_path]), 20)
    assert isinstance(report, Report)
    (finding,) = [f for f in report.findings if f.rule == "GEN008"]
    assert finding.location.path == name and finding.severity >= Severity.HIGH
    assert "FIFO" in finding.message and "model weights" in finding.message


def test_fifo_as_target_and_through_a_link_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    (tmp_path / "model.bin").symlink_to(fifo)
    report = _run_with_timeout(lambda: scan_paths([fifo]), 20)
    assert isinstance(report, Report)
    assert [f.rule for f in report.findings] == ["GEN008"]
    report = _run_with_timeout(lambda: scan_paths([tmp_path]), 20)
    assert isinstance(report, Report)
    assert sorted(f.location.path for f in report.findings if f.rule == "GEN008") == [
        "model.bin",
        "pipe.pt",
    ]


def test_fifo_cli_subprocess_exits_1_within_timeout(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pytorch_model.bin")
    proc = subprocess.run(
        [sys.executable, "-m", "supplychain", "scan", str(tmp_path), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and '"GEN008"' in proc.stdout


def test_socket_with_any_name_is_a_finding(tmp_path: Path) -> None:
    import socket

    sock_path = tmp_path / "notes.txt"
    # AF_UNIX paths are limited to ~107 bytes: bind from inside the directory.
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("notes.txt")
            report = scan_paths([tmp_path])
    finally:
        os.chdir(cwd)
    (finding,) = report.findings
    assert finding.rule == "GEN008" and "socket" in finding.message
    assert finding.severity >= Severity.HIGH and sock_path.name == finding.location.path


def test_character_device_target_is_never_read() -> None:
    # /dev/zero would never end and /dev/random could block: a read must never happen.
    report = _run_with_timeout(lambda: scan_paths([Path("/dev/zero")]), 20)
    assert isinstance(report, Report)
    assert [f.rule for f in report.findings] == ["GEN008"]
    assert "character device" in report.findings[0].message


def test_empty_directory_analyses_nothing_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(tmp_path), "-q", "-f", "json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nothing was analysed" in err


def test_only_unrecognised_files_analyse_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blob.dat").write_bytes(bytes(range(256)) * 8)
    assert main(["scan", str(tmp_path), "-q", "-f", "json"]) == 2
    assert "nothing was analysed" in capsys.readouterr().err


def _vanish_on_list(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Remove ``victim`` just before the walk lists it: a real race, and works as root."""
    real = os.scandir

    def racing(path: object = ".") -> object:
        if Path(str(path)) == victim and victim.exists():
            shutil.rmtree(victim)
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", racing)


def test_unreadable_subdirectory_is_a_finding_not_an_omission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    sub = tmp_path.resolve() / "weights"
    sub.mkdir()
    (sub / "pytorch_model.bin").write_bytes(EVIL)
    if os.geteuid() != 0:
        sub.chmod(0)  # a real permission error when not root …
    else:
        _vanish_on_list(monkeypatch, sub)  # … and a real listing error when root
    try:
        report = scan_paths([tmp_path.resolve()])
        if os.geteuid() != 0:
            assert main(["scan", str(tmp_path.resolve()), "-q"]) == 1
    finally:
        if sub.exists():
            sub.chmod(0o755)
    (finding,) = [f for f in report.findings if f.rule == "GEN007"]
    assert finding.location.path == "weights" and finding.severity >= Severity.HIGH
    assert any(r.path == "weights" and r.status is Status.FAILED for r in report.results)
    if os.geteuid() == 0:  # the race removed the directory; recreate it and race again
        sub.mkdir()
        assert main(["scan", str(tmp_path.resolve()), "-q"]) == 1


def test_entry_vanishing_during_the_walk_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "gone.bin").write_bytes(EVIL)
    import supplychain.discover as disc

    real_stat = disc._entry_stat

    def racing(entry: os.DirEntry[str]) -> os.stat_result:
        if entry.name == "gone.bin":
            Path(entry.path).unlink(missing_ok=True)  # the entry vanishes after the listing
        return real_stat(entry)

    monkeypatch.setattr(disc, "_entry_stat", racing)
    report = scan_paths([tmp_path])
    (finding,) = [f for f in report.findings if f.rule == "GEN005"]
    assert finding.location.path == "gone.bin" and finding.severity >= Severity.HIGH


def test_file_vanishing_between_discovery_and_open_is_a_finding_in_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pkl").write_bytes(EVIL)
    import supplychain.engine as engine

    real = engine.discover

    def racing(paths: object) -> object:
        found = real(paths)  # type: ignore[arg-type]
        (tmp_path / "model.pkl").unlink()
        return found

    monkeypatch.setattr(engine, "discover", racing)
    report = scan_paths([tmp_path])
    (finding,) = [f for f in report.findings if f.rule == "GEN005"]
    assert finding.location.path == "model.pkl" and "vanished" in finding.message
    # …but the same race on a file named on the command line is operational (exit 2).
    (tmp_path / "model.pkl").write_bytes(EVIL)
    with pytest.raises(TargetError, match="vanished"):
        scan_paths([tmp_path / "model.pkl"])


def test_missing_target_and_path_through_a_file_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="no such file"):
        discover([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="no such file"):
        discover([tmp_path / "file" / "child"])


@pytest.mark.parametrize(
    ("name", "claims"),
    [
        ("pytorch_model.bin", True),
        ("model.safetensors", True),
        ("x.GGUF", True),
        ("w.onnx", True),
        ("m.h5", True),
        ("m.keras", True),
        ("m.pt", True),
        ("m.pth", True),
        ("m.ckpt", True),
        ("m.pkl", True),
        ("m.joblib", True),
        ("m.npy", True),
        ("flax_model.msgpack", True),
        ("README.md", False),
        ("notes.txt", False),
    ],
)
def test_model_format_names(name: str, claims: bool) -> None:
    assert claims_model_format(name) is claims


def test_unlistable_directory_named_on_the_command_line_is_operational(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path.resolve() / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    _vanish_on_list(monkeypatch, target)
    with pytest.raises(TargetError, match="cannot read"):
        discover([target])


def test_hf_bookkeeping_files_are_expected_skips_only_when_empty(tmp_path: Path) -> None:
    local = tmp_path / "local_dir"
    (local / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (local / ".cache" / "huggingface" / "download" / "model.safetensors.lock").write_bytes(b"")
    (local / ".cache" / "huggingface" / "download" / "evil.lock").write_bytes(EVIL)
    (local / "config.json").write_text("{}")
    report = scan_paths([local])
    lock = next(r for r in report.results if r.path.endswith("model.safetensors.lock"))
    assert lock.expected and lock.status is Status.SKIPPED
    assert any(f.location.path.endswith("evil.lock") for f in report.findings)


def test_same_file_named_twice_on_the_command_line_is_reported_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("MARKER")
    report = scan_paths(
        [tmp_path / "a.txt", tmp_path / "a.txt"], ScanOptions(scanners=(MarkerScanner,))
    )
    assert [f.location.path for f in report.findings] == ["a.txt"]


def test_a_link_to_a_directory_given_as_target_is_walked(hub: Path, tmp_path: Path) -> None:
    alias = tmp_path / "my-cache"
    alias.symlink_to(hub, target_is_directory=True)
    report = scan_paths([alias])
    assert f"models--org--name/snapshots/{COMMIT}/pytorch_model.bin" in _pkl(report)
    snap_alias = tmp_path / "snap"
    snap_alias.symlink_to(hub / "models--org--name" / "snapshots" / COMMIT)
    assert "pytorch_model.bin" in _pkl(scan_paths([snap_alias]))
