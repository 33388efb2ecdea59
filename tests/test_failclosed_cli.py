"""Exit codes from the real CLI in a subprocess: 2 is operational (one line, no traceback), 1 is
only ever "the policy failed".

Unreadability is built so it also holds as root (where ``chmod 000`` does not stop reads): a path
component that is a file, a link loop or a dangling link as the target, and races injected by a
small shim that runs the real ``supplychain.cli.main``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.pickle_builders import call_pickle

EVIL = call_pickle("os", "system", "echo supplychain-sample")


def _cli(*args: str, shim: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``supplychain`` in a fresh interpreter, optionally after a race-injecting ``shim``."""
    code = textwrap.dedent(shim) + "\nimport sys\nfrom supplychain.cli import main\n"
    code += f"sys.exit(main({list(args)!r}))\n"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def _operational(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert err.count("\n") == 0, err
    assert "Traceback" not in proc.stderr and err.startswith("supplychain: error:"), err
    for word in words:
        assert word in err, err


@pytest.fixture
def model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    return model


def test_output_directory_missing_exits_2(model: Path, tmp_path: Path) -> None:
    proc = _cli("scan", str(model), "-o", str(tmp_path / "no" / "such" / "r.json"))
    _operational(proc, "cannot write report", "not a directory")


def test_output_directory_is_a_file_exits_2(model: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    proc = _cli("scan", str(model), "-o", str(tmp_path / "afile" / "r.json"))
    _operational(proc, "cannot write report")


def test_output_path_is_a_directory_exits_2(model: Path, tmp_path: Path) -> None:
    proc = _cli("scan", str(model), "-o", str(tmp_path))
    _operational(proc, "is a directory")


def test_output_unwritable_at_write_time_exits_2(model: Path, tmp_path: Path) -> None:
    # Works as root too: the directory vanishes after the pre-check, before the report is written.
    out = tmp_path / "out"
    out.mkdir()
    shim = f"""
        import shutil
        import supplychain.engine as engine
        real = engine.scan_paths
        def racing(*a, **k):
            report = real(*a, **k)
            shutil.rmtree({str(out)!r})
            return report
        engine.scan_paths = racing
    """
    proc = _cli("scan", str(model), "-o", str(out / "r.json"), shim=shim)
    _operational(proc, "cannot write report")


@pytest.mark.parametrize("how", ["component-is-a-file", "link-loop", "dangling-link", "missing"])
def test_unreadable_target_exits_2(tmp_path: Path, how: str) -> None:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "target"
    if how == "component-is-a-file":
        target = tmp_path / "afile" / "model.bin"
    elif how == "link-loop":
        target.symlink_to(target)
    elif how == "dangling-link":
        target.symlink_to(tmp_path / "nowhere")
    proc = _cli("scan", str(target))
    _operational(proc, str(target))


def test_target_without_read_permission_exits_2(tmp_path: Path) -> None:
    """As non-root: chmod 000. As root: /proc/self/mem (a regular file whose read fails)."""
    if os.geteuid() != 0:
        target = tmp_path / "model.bin"
        target.write_bytes(EVIL)
        target.chmod(0)
    else:
        target = Path("/proc/self/mem")
    proc = _cli("scan", str(target))
    _operational(proc, str(target))


def test_target_vanishing_before_open_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "model.pkl"
    target.write_bytes(EVIL)
    shim = f"""
        import os
        import supplychain.engine as engine
        real = engine.discover
        def racing(paths):
            found = real(paths)
            os.unlink({str(target)!r})
            return found
        engine.discover = racing
    """
    _operational(_cli("scan", str(target), shim=shim), "vanished")


def test_target_vanishing_mid_scan_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "model.pkl"
    target.write_bytes(EVIL)
    shim = f"""
        import os
        import supplychain.engine as engine
        real = engine.sha256_stream
        def racing(fh, *a, **k):
            got = real(fh, *a, **k)
            if os.path.exists({str(target)!r}):
                os.unlink({str(target)!r})
            return got
        engine.sha256_stream = racing
    """
    _operational(_cli("scan", str(target), shim=shim), "vanished")


def test_file_vanishing_mid_scan_inside_a_directory_fails_the_gate_with_exit_1(
    model: Path,
) -> None:
    victim = model / "model.pkl"
    victim.write_bytes(EVIL)
    shim = f"""
        import os
        import supplychain.engine as engine
        real = engine.sha256_stream
        def racing(fh, *a, **k):
            got = real(fh, *a, **k)
            victim = {str(victim)!r}
            if os.path.exists(victim) and os.fstat(fh.fileno()).st_ino == os.stat(victim).st_ino:
                os.unlink(victim)  # gone after it was opened and read, before the scan ends
            return got
        engine.sha256_stream = racing
    """
    proc = _cli("scan", str(model), "-f", "json", "--fail-on", "critical", shim=shim)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert '"GEN003"' in proc.stdout and "vanished" in proc.stdout


def test_empty_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _operational(_cli("scan", str(empty), "-q"), "nothing was analysed")


def test_policy_ignore_with_unknown_rule_exits_2(model: Path) -> None:
    (model / "supplychain.toml").write_text(
        '[[ignore]]\nrule = "PKL999"\nreason = "typo in the rule id"\n'
    )
    _operational(_cli("scan", str(model)), "unknown rule", "PKL999")


def test_policy_ignore_with_wrong_case_rule_matches(model: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (model / "link").symlink_to(tmp_path / "secret")
    assert _cli("scan", str(model), "-q").returncode == 1  # GEN004 fails the gate
    (model / "supplychain.toml").write_text(
        '[[ignore]]\nrule = "gen004"\npath = "link"\nreason = "reviewed fixture"\n'
    )
    proc = _cli("scan", str(model), "-q", "-f", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"suppression_reason": "reviewed fixture"' in proc.stdout


def test_policy_failure_alone_is_exit_1_never_2(model: Path) -> None:
    (model / "weights.pkl").write_bytes(EVIL)
    proc = _cli("scan", str(model), "-q")
    assert proc.returncode == 1 and proc.stderr == ""
