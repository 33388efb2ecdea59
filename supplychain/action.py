"""The GitHub Action's script: ``python -m supplychain.action`` (``action.yml`` only calls this).

1. **What to scan**: the given paths, else the model and dataset files a pull request changes:
   from the event payload (``GITHUB_EVENT_PATH``) through the REST API "list pull request files"
   (paginated; ``GITHUB_API_URL`` honoured, so tests point it at a fake server), else with
   ``git diff --name-only base...head`` (plain plumbing with hooks and external diff/textconv
   off; nothing from the checked-out repository can run).
2. **Scan** each file on its own, named by its repository path, judged once by the policy.
3. **Report**: SARIF written to a file and uploaded to code scanning (gzip + base64 ``sarif``,
   ``commit_sha``, ``ref``); on a fork (head repository ≠ base repository) or when the upload is
   refused (read-only token: 403/404), workflow-command annotations instead. A Markdown table of
   the findings always goes to ``GITHUB_STEP_SUMMARY``; ``verdict`` and ``sarif-file`` go to
   ``GITHUB_OUTPUT``.
4. **Exit** with the CLI's codes: 0 pass, 1 the policy failed, 2 operational error.

Nothing here loads an artifact; the token is only ever sent to ``GITHUB_API_URL``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import gzip
import html
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from supplychain.core.errors import ConfigError, SupplyChainError
from supplychain.core.model import Report, Severity, escape_evidence

MODEL_SUFFIXES = frozenset(
    {
        ".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".pt2", ".joblib", ".jbl", ".npy",
        ".npz", ".keras", ".h5", ".hdf5", ".pb", ".onnx", ".safetensors", ".gguf", ".ggml",
        ".tflite", ".mlmodel", ".msgpack", ".model", ".llamafile", ".jinja", ".j2", ".zip",
        ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".lz4", ".jsonl", ".csv", ".tsv",
        ".parquet", ".arrow", ".cbm", ".ubj", ".dill", ".skops", ".mar", ".nemo",
    }
)  # fmt: skip
"""Suffixes of model, archive and dataset files a pull request may add."""
MODEL_NAMES = re.compile(
    r"(^|/)(config\.json|tokenizer_config\.json|generation_config\.json|chat_template\.json"
    r"|preprocessor_config\.json|adapter_config\.json|dataset_info\.json|state\.json"
    r"|modeling_[^/]*\.py|configuration_[^/]*\.py|tokenization_[^/]*\.py|[^/]*\.ya?ml)$"
)
"""Text files beside weights that carry code references or chat templates."""
SUMMARY_ROWS = 200
"""Findings listed in the job summary (GitHub caps a summary at 1 MiB)."""
ANNOTATIONS = 50
"""Annotations emitted (GitHub shows the first 10 errors and 10 warnings of a step)."""
MAX_UPLOAD = 10 * 2**20
"""GitHub's limit on a gzipped SARIF upload."""
HTTP_TIMEOUT = 30.0
MAX_PAGES = 30
""""List pull request files" returns at most 3,000 files (30 pages of 100)."""


def is_model_file(path: str) -> bool:
    """Would a scan of this repository path be useful (weights, archives, data, configs)?"""
    lower = path.lower()
    return Path(lower).suffix in MODEL_SUFFIXES or bool(MODEL_NAMES.search(lower))


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The parts of a ``pull_request`` event the script needs."""

    number: int
    base_sha: str
    head_sha: str
    base_repo: str
    head_repo: str

    @property
    def from_fork(self) -> bool:
        """A fork's token is read-only: SARIF upload is not permitted."""
        return self.head_repo != self.base_repo


def read_event(path: str | None) -> PullRequest | None:
    """The pull request of the triggering event, if it is one."""
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the event payload {path}: {exc}") from None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pr, dict):
        return None
    try:
        return PullRequest(
            number=int(pr["number"]),
            base_sha=str(pr["base"]["sha"]),
            head_sha=str(pr["head"]["sha"]),
            base_repo=str(pr["base"]["repo"]["full_name"]),
            head_repo=str((pr["head"].get("repo") or {}).get("full_name", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"unexpected pull_request payload: missing {exc}") from None


class GitHub:
    """The two REST calls we make, against ``GITHUB_API_URL`` only."""

    def __init__(self, api_url: str, token: str | None) -> None:
        self.api = api_url.rstrip("/")
        self.token = token

    def _request(
        self, url: str, data: bytes | None = None, method: str = "GET"
    ) -> tuple[int, Any, Mapping[str, str]]:
        if not url.startswith(self.api + "/"):
            raise ConfigError(f"refusing to send the token outside {self.api}: {url}")
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "supplychain-action",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:  # noqa: S310
                body = resp.read()
                status, hdrs = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read()), dict(exc.headers or {})
        return status, _json(body), hdrs

    def changed_files(self, repo: str, number: int) -> list[str]:
        """Paths a pull request adds or modifies, following ``Link: rel="next"`` pages."""
        url: str | None = f"{self.api}/repos/{repo}/pulls/{number}/files?per_page=100"
        files: list[str] = []
        pages = 0
        while url is not None and pages < MAX_PAGES:
            status, body, headers = self._request(url)
            if status != 200 or not isinstance(body, list):
                raise ConfigError(f"listing pull request files failed: HTTP {status}")
            files.extend(
                str(item.get("filename", ""))
                for item in body
                if isinstance(item, dict) and item.get("status") != "removed"
            )
            url = _next_link(headers.get("Link") or headers.get("link") or "")
            pages += 1
        return [f for f in files if f]

    def upload_sarif(self, repo: str, sarif: Mapping[str, Any], commit: str, ref: str) -> int:
        """POST to code scanning; the HTTP status (202 accepted)."""
        zipped = gzip.compress(json.dumps(sarif).encode())
        if len(zipped) > MAX_UPLOAD:
            return 413  # GitHub would refuse it; annotations and the summary still report
        packed = base64.b64encode(zipped).decode()
        body = json.dumps({"commit_sha": commit, "ref": ref, "sarif": packed}).encode()
        status, _, _ = self._request(
            f"{self.api}/repos/{repo}/code-scanning/sarifs", data=body, method="POST"
        )
        return status


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', part)
        if m:
            return m.group(1)
    return None


def git_changed_files(workspace: Path, base: str, head: str) -> list[str]:
    """``git diff --name-only base...head`` with nothing configurable by the repository on."""
    for sha in (base, head):
        if not re.fullmatch(r"[0-9a-fA-F]{7,64}", sha):
            raise ConfigError(f"not a commit id: {sha!r}")
    cmd = [
        "git",
        "-c", "core.hooksPath=/dev/null",
        "-c", "core.fsmonitor=false",
        "-c", "diff.external=",
        "-C", str(workspace),
        "diff", "--no-ext-diff", "--no-textconv", "--name-only", "--diff-filter=ACMRT", "-z",
        f"{base}...{head}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(cmd, capture_output=True, check=False, env=env, timeout=120)
    if done.returncode != 0:
        raise ConfigError(f"git diff failed: {done.stderr.decode(errors='replace').strip()}")
    return [p for p in done.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _rename(report: Report, name: str, is_dir: bool) -> Report:
    """A one-target report's paths (relative to the target) → repository paths.

    Findings and facts are copied field-preserving (``replace`` would escape evidence twice).
    """
    base = Path(name).name

    def repath(path: str) -> str:
        if is_dir:
            return f"{name.rstrip('/')}/{path}" if name not in ("", ".") else path
        return name if path == base else path

    def moved(obj: Any) -> Any:
        new = copy.copy(obj)
        object.__setattr__(new, "location", replace(obj.location, path=repath(obj.location.path)))
        return new

    return replace(
        report,
        findings=tuple(moved(f) for f in report.findings),
        facts=tuple(moved(f) for f in report.facts),
        files=tuple(replace(r, path=repath(r.path)) for r in report.files),
        results=tuple(replace(r, path=repath(r.path)) for r in report.results),
    )


def scan_files(workspace: Path, names: Sequence[str], fail_on: Severity | None) -> Report:
    """Scan each file alone (so equal base names never collide) and judge them together."""
    from supplychain import policy as pol
    from supplychain import service

    found = pol.find_policy([workspace / names[0]]) if names else None
    policy = pol.load_policy(found) if found is not None else pol.Policy()
    if fail_on is not None:
        policy = replace(policy, fail_on=fail_on)
    settings = service.settings_from_policy(policy)
    service.check_policy(policy, settings)
    parts = [
        _rename(service.scan_report([workspace / n], settings, jobs=1), n, (workspace / n).is_dir())
        for n in names
    ]
    first = parts[0]
    rules = {r.id: r for p in parts for r in p.rules}
    merged = replace(
        first,
        target=(str(workspace),),
        seconds=sum(p.seconds for p in parts),
        findings=tuple(sorted((f for p in parts for f in p.findings), key=lambda f: f.sort_key())),
        facts=tuple(f for p in parts for f in p.facts),
        files=tuple(r for p in parts for r in p.files),
        results=tuple(r for p in parts for r in p.results),
        rules=tuple(sorted(rules.values(), key=lambda r: r.id)),
    )
    return pol.apply(merged, policy)


def _md(text: str, limit: int = 200) -> str:
    """A Markdown table cell that artifact text cannot break out of (no HTML, no pipes)."""
    cell = escape_evidence(text, limit=limit)
    for ch in "\\`*_[]|#!~":
        cell = cell.replace(ch, "\\" + ch)
    return html.escape(cell, quote=False)


def summary_markdown(report: Report, note: str = "") -> str:
    """The job summary: verdict and a table of findings, worst first."""
    verdict = report.verdict
    passed = verdict is not None and verdict.passed
    active = [f for f in report.findings if f.suppressed is None]
    files = len({r.path for r in report.files if not r.member})
    lines = [
        f"## supplychain: {'✅ PASS' if passed else '❌ FAIL'}",
        "",
        f"{len(active)} finding(s) in {files} file(s).",
    ]
    if verdict is not None:
        lines += [f"- {_md(r)}" for r in verdict.reasons]
    if note:
        lines += ["", _md(note, 1000)]
    if active:
        lines += [
            "",
            "| Severity | Rule | File | Where | Message |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in active[:SUMMARY_ROWS]:
            loc = f.location
            where = "!".join(loc.member)
            if loc.offset is not None:
                where += f" @{loc.offset}"
            if loc.rows:
                where += " rows " + ",".join(str(r) for r in loc.rows[:5])
            lines.append(
                f"| {f.severity.label} | {_md(f.rule)} | {_md(loc.path)} | {_md(where)} "
                f"| {_md(f.message)} |"
            )
        if len(active) > SUMMARY_ROWS:
            lines.append(f"\n{len(active) - SUMMARY_ROWS} more in the SARIF file.")
    return "\n".join(lines) + "\n"


def _command_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(sarif: Mapping[str, Any]) -> Iterator[str]:
    """``::error file=…,line=…,title=…::message`` lines from the SARIF results (same places)."""
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"][:ANNOTATIONS]:
        if result.get("suppressions"):
            continue
        phys = result["locations"][0]["physicalLocation"]
        level = {"error": "error", "warning": "warning"}.get(result["level"], "notice")
        props = [
            f"file={_command_property(urllib.parse.unquote(phys['artifactLocation']['uri']))}",
            f"line={int(phys['region']['startLine'])}",
        ]
        if "startColumn" in phys["region"]:
            props.append(f"col={int(phys['region']['startColumn'])}")
        title = rules[result["ruleIndex"]].get("shortDescription", {}).get("text", "")
        rule_id = result["ruleId"]
        props.append(f"title={_command_property(f'{rule_id}: {title}')}")
        yield f"::{level} {','.join(props)}::{_command_data(result['message']['text'])}"


def _append(path: str | None, text: str) -> None:
    if path:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(text)


def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The whole Action step; returns the exit code."""
    env = os.environ if env is None else env
    args = _parser().parse_args(argv)
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").absolute()
    github = GitHub(env.get("GITHUB_API_URL", "https://api.github.com"), env.get("GITHUB_TOKEN"))
    repo = env.get("GITHUB_REPOSITORY", "")
    pr = read_event(env.get("GITHUB_EVENT_PATH"))
    notes: list[str] = []

    if args.paths:
        names = [p for raw in args.paths for p in raw.split() if p]
    elif pr is not None:
        try:
            names = github.changed_files(pr.base_repo, pr.number)
        except (ConfigError, OSError) as exc:
            notes.append(f"API listing failed ({exc}); used git diff")
            names = git_changed_files(workspace, pr.base_sha, pr.head_sha)
        names = [n for n in names if is_model_file(n)]
    else:
        names = ["."]
    existing = [n for n in names if (workspace / n).exists()]
    sarif_path = Path(args.sarif_file)
    _append(env.get("GITHUB_OUTPUT"), f"sarif-file={sarif_path}\n")
    if not existing:
        _append(
            env.get("GITHUB_STEP_SUMMARY"),
            "## supplychain: nothing to scan\n\nNo model or dataset files changed.\n",
        )
        _append(env.get("GITHUB_OUTPUT"), "verdict=pass\n")
        return 0
    fail_on = Severity.parse(args.fail_on) if args.fail_on else None
    report = scan_files(workspace, existing, fail_on)

    from supplychain.cli import exit_code
    from supplychain.formats.sarif import report_to_sarif

    sarif = report_to_sarif(report, root=workspace, env=env)
    sarif_path.write_text(json.dumps(sarif, indent=2, ensure_ascii=False) + "\n", "utf-8")

    uploaded = False
    if args.upload != "never" and repo:
        if pr is not None and pr.from_fork:
            notes.append("pull request from a fork: SARIF upload is not permitted; annotations")
        else:
            commit = env.get("GITHUB_SHA") or (pr.head_sha if pr else "")
            ref = env.get("GITHUB_REF") or (f"refs/pull/{pr.number}/head" if pr else "")
            status = github.upload_sarif(repo, sarif, commit, ref)
            uploaded = status in (200, 201, 202)
            if not uploaded:
                notes.append(f"SARIF upload refused (HTTP {status}); annotations instead")
    if not uploaded:
        for line in annotation_lines(sarif):
            sys.stdout.write(line + "\n")
    code = exit_code(report)
    verdict = "pass" if report.verdict is not None and report.verdict.passed else "fail"
    _append(env.get("GITHUB_STEP_SUMMARY"), summary_markdown(report, "; ".join(notes)))
    _append(env.get("GITHUB_OUTPUT"), f"verdict={verdict}\n")
    return int(code)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m supplychain.action", description=__doc__)
    p.add_argument("paths", nargs="*", help="paths to scan (default: files the PR changes)")
    p.add_argument("--fail-on", help="lowest failing severity (default: the policy's)")
    p.add_argument("--sarif-file", default="supplychain.sarif")
    p.add_argument("--upload", choices=("auto", "never"), default="auto")
    return p


def main() -> None:
    """Console entry: exit with the step's code; our errors are one line and exit 2."""
    try:
        code = run()
    except SupplyChainError as exc:
        sys.stderr.write(f"::error::supplychain: {_command_data(str(exc))}\n")
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
