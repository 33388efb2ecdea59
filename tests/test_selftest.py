"""Gate self-test files: each is its format, each is blocked for the right reason, each harmless."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from supplychain import selftest
from supplychain.cli import main
from supplychain.core.model import ArtifactKind

EXPECTED: dict[str, tuple[ArtifactKind, tuple[str, ...]]] = {
    "pickle": (ArtifactKind.PICKLE, ("PKL",)),
    "torch": (ArtifactKind.TORCH_ZIP, ("PKL",)),
    "joblib": (ArtifactKind.PICKLE, ("PKL",)),
    "numpy": (ArtifactKind.NUMPY_NPY, ("NPY", "PKL")),
    "keras": (ArtifactKind.KERAS_ZIP, ("KER",)),
    "gguf": (ArtifactKind.GGUF, ("TPL",)),
    "onnx": (ArtifactKind.ONNX, ("ONX",)),
    "code": (ArtifactKind.PYTHON_SOURCE, ("COD",)),
    "dataset": (ArtifactKind.DATASET_JSONL, ("DAT",)),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, selftest.Outcome]:
    directory = tmp_path_factory.mktemp("selftest")
    return {o.test.name: o for o in selftest.run_selftest(directory)}


def test_every_format_has_a_test_file() -> None:
    assert set(selftest.BY_NAME) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_test_file_is_blocked_for_its_own_reason(
    name: str, outcomes: dict[str, selftest.Outcome]
) -> None:
    outcome = outcomes[name]
    assert outcome.blocked, outcome.reason
    _, families = EXPECTED[name]
    assert any(rule.startswith(families) for rule in outcome.rules), outcome.rules


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_test_file_is_identified_as_its_format(
    name: str, outcomes: dict[str, selftest.Outcome]
) -> None:
    outcome = outcomes[name]
    assert outcome.kinds == (EXPECTED[name][0].value,)
    assert outcome.failed == 0  # blocked by a finding, not by a scanner failure


def test_dataset_canaries_both_fire(outcomes: dict[str, selftest.Outcome]) -> None:
    rules = set(outcomes["dataset"].rules)
    assert rules & {"DAT018", "DAT019"}, rules  # the trigger canary
    assert "DAT035" in rules  # the injection canary


def test_payloads_are_harmless_echoes() -> None:
    """Every command a test file carries is exactly ``echo supplychain-testfile``."""
    for test in selftest.TEST_FILES:
        data = test.build()
        if test.name == "keras":  # the Lambda "bytecode" is a base64 stand-in, not code
            code = re.search(rb'"code": "([A-Za-z0-9+/=]+)"', data)
            assert code is not None
            data = base64.b64decode(code.group(1))
        if test.name in ("onnx", "dataset"):
            assert b"os.system" not in data and b"popen" not in data
        else:
            assert selftest.ECHO in data, test.name
        for word in (b"rm ", b"curl", b"wget", b"/bin/sh", b"nc ", b"eval("):
            assert word not in data, (test.name, word)


def test_selftest_command_passes_and_lists_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest"]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.strip()]
    assert len(lines) == len(selftest.TEST_FILES)
    assert all(line.startswith("blocked") for line in lines)
    assert "PASS" in out.err


def test_selftest_fails_when_a_file_gets_through(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def gguf_blind(path: Path, test: selftest.TestFile) -> selftest.Outcome:
        return selftest.Outcome(test, test.name != "gguf", (), "")

    monkeypatch.setattr(selftest, "check", gguf_blind)
    assert main(["selftest"]) == 1
    out = capsys.readouterr()
    assert "NOT BLOCKED  gguf" in out.out and "not blocked: gguf" in out.err


def test_testfile_writes_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testfile", "pickle", "-o", str(tmp_path / "t.pkl")]) == 0
    assert (tmp_path / "t.pkl").read_bytes() == selftest.raw_pickle()
    assert main(["testfile", "gguf", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "testfile.gguf").read_bytes().startswith(b"GGUF")
    assert main(["scan", str(tmp_path / "t.pkl"), "-q"]) == 1
    assert main(["testfile", "--list"]) == 0
    assert "onnx" in capsys.readouterr().out
    assert main(["testfile", "nope"]) == 2
