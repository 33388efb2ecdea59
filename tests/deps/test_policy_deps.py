"""The ``[deps]`` policy table and the settings section it becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanners.deps_options import OSV_DEFAULT_URL, DepsOptions
from supplychain import service
from supplychain.cli import main
from supplychain.core.errors import ConfigError
from supplychain.policy import DepsPolicy, Policy, load_policy
from tests.deps.fakeosv import FakeOsv


def test_the_table_parses_and_rejects_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "supplychain.toml"
    path.write_text(
        '[deps]\nonline = true\nosv_url = "https://osv.mirror/v1/query"\n'
        "require_hashes = true\ntimeout = 3\n"
    )
    assert load_policy(path).deps == DepsPolicy(
        online=True, osv_url="https://osv.mirror/v1/query", require_hashes=True, timeout=3.0
    )
    for bad in ("online = 1", "onlin = true", 'timeout = "x"', "timeout = 0", "osv_url = 3"):
        path.write_text(f"[deps]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_policy(path)


def test_settings_section_and_fingerprint() -> None:
    default = service.settings_from_policy(Policy())
    assert default.section(DepsOptions) is None  # the default adds nothing to the fingerprint
    online = service.settings_from_policy(Policy(deps=DepsPolicy(online=True)))
    assert online.section(DepsOptions) == DepsOptions(online=True, osv_url=OSV_DEFAULT_URL)
    assert online.fingerprint() != default.fingerprint()
    hashes = service.settings_from_policy(Policy(deps=DepsPolicy(require_hashes=True)))
    assert hashes.fingerprint() not in (online.fingerprint(), default.fingerprint())


def test_policy_online_makes_scan_look_up(
    tmp_path: Path, osv: FakeOsv, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").write_text("torch==2.1.0\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[deps]\nonline = true\nosv_url = "{osv.url}"\n')
    assert main(["scan", str(model), "--policy", str(policy), "-q", "-f", "json"]) == 1
    assert "GHSA-torch-0001" in capsys.readouterr().out
    assert len(osv.requests) == 1
    # --osv-url on the command line wins over the policy's endpoint (a dead one here)
    policy.write_text('[deps]\nonline = true\nosv_url = "http://127.0.0.1:9/v1/query"\n')
    code = main(
        ["scan", str(model), "--policy", str(policy), "--osv-url", osv.url, "-q", "-f", "json"]
    )
    assert code == 1 and len(osv.requests) == 2
