"""``supplychain init``, ``--version``, ``--help`` examples and shell completion."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pytest

from supplychain import policy as pol
from supplychain.cli import build_parser, main
from supplychain.core.limits import Limits
from supplychain.init_policy import _commands, policy_template


def test_init_writes_a_policy_the_real_loader_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    written = tmp_path / "supplychain.toml"
    loaded = pol.load_policy(written)
    assert replace(loaded, source=None) == pol.Policy()
    text = written.read_text()
    for key in pol._TOP_KEYS | pol._IGNORE_KEYS:
        assert re.search(rf"(?m)^#? ?\[*{key}\]*( =|$)", text), key
    for f in fields(Limits):
        assert f"{f.name} = {getattr(Limits(), f.name)}" in text
    assert main(["init"]) == 2  # never overwrites
    assert main(["init", "--force"]) == 0


def test_the_commented_waiver_example_is_valid_once_uncommented() -> None:
    text = policy_template()
    block = text.split("# [[ignore]]", 1)[1].split("\n\n", 1)[0]
    waiver = "[[ignore]]\n" + "\n".join(line[2:] for line in block.strip().splitlines())
    data = tomllib.loads(waiver)
    parsed = pol.parse_policy(data, "example")
    assert parsed.ignores[0].reason and parsed.ignores[0].rule == "PKL002"


def test_init_pyproject_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--pyproject"]) == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n' + capsys.readouterr().out)
    assert replace(pol.load_policy(pyproject), source=None) == pol.Policy()
    assert pol.find_policy([tmp_path]) == pyproject


def test_version_names_python_extras_and_the_pickle_helper(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("supplychain ")
    assert "Python 3." in out and "optional packages:" in out
    assert re.search(r"pickle skimmer: (compiled|pure Python|unavailable)", out)


def test_every_command_help_has_examples_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = sorted(_commands(build_parser()))
    assert {"scan", "data", "rules", "explain", "init", "selftest", "testfile"} <= set(names)
    for name in [*names, None]:
        with pytest.raises(SystemExit):
            main([name, "--help"] if name else ["--help"])
        out = capsys.readouterr().out
        assert "examples:" in out and "exit codes:" in out, name
        assert "supplychain " in out.split("examples:", 1)[1]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for name in _commands(build_parser()):
        assert name in script
    assert "--fail-on" in script and "--sarif-root" in script
    if shell == "bash" and shutil.which("bash"):
        check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
