"""SARIF 2.1.0 that GitHub code scanning places on the right file and line.

- **URIs** are relative to the repository root (``%SRCROOT%``), whatever directory was scanned and
  wherever the command ran: the root is ``--sarif-root``, else ``GITHUB_WORKSPACE`` when the
  targets are inside it, else the git top level found by walking up for ``.git`` (a directory or
  a gitfile; git itself is never run, so no hook or config of an untrusted repository can act).
  Without any of them the URIs stay relative to the scanned folder, as the report's paths are.
- **Regions**: byte offsets into text files (code, chat templates, JSON configs: the template
  and config scanners report the byte of the offending construct or value) become line and
  UTF-16 column by reading the file up to the offset (bounded memory); JSONL rows are lines; only
  a finding WITHOUT an offset in a text file is placed on the first occurrence of its evidence
  when that is unambiguous enough to find. Binary files have no lines: line 1, with the archive
  member chain and byte offset in the message, ``logicalLocations`` and properties.
- **Severity**: GitHub reads ``security-severity`` from the rule only, so there is one SARIF
  rule per (rule, severity) actually emitted: ``PKL001`` at its default severity, ``PKL001/medium``
  when a scanner lowered it. INFO rules carry no ``security-severity`` (GitHub shows a note).
- **Limits** (GitHub's documented ones): 25,000 results and rules per run, 20 tags per rule, one
  location per result, long messages cut; anything dropped is said in a notification and in the
  run's properties.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import quote

from supplychain.core.model import ArtifactKind, Finding, Report, Rule, Severity, Status

URI_SAFE = "/-._~!$&'()*+,;=:@"
"""RFC 3986 path characters kept as they are; everything else is percent-encoded."""
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
REPOSITORY_URL = "https://github.com/supplychain-dev/supplychain"
"""NOTE: pyproject has no ``[project.urls]``; installed metadata wins when it names one."""

MAX_RESULTS = 25_000
MAX_RULES = 25_000
MAX_TAGS = 20
MAX_MESSAGE = 4_000
"""Characters of result message kept (GitHub truncates long messages in its UI)."""
EVIDENCE_MIN = 8
"""Shorter evidence (``true``, ``os``) is too common to place a finding by where it occurs."""
REGION_READ_LIMIT = 64 * 2**20
"""Bytes of a text file kept in memory to place offsets and evidence; an offset beyond them is
placed by counting lines chunk by chunk."""
REGION_CHUNK = 1 << 20

# NOTE: GitHub maps security-severity to critical (>= 9.0), high (7.0-8.9), medium (4.0-6.9),
# low (0.1-3.9): https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
SECURITY_SEVERITY: Mapping[Severity, str | None] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: None,
}

TEXT_KINDS = frozenset(
    {
        ArtifactKind.PYTHON_SOURCE,
        ArtifactKind.CHAT_TEMPLATE,
        ArtifactKind.MODEL_CONFIG,
        ArtifactKind.YAML_CONFIG,
        ArtifactKind.DATASET_JSONL,
        ArtifactKind.DATASET_CSV,
        ArtifactKind.HF_DATASET_META,
        ArtifactKind.TEXT,
    }
)
"""Kinds whose byte offsets map to lines a reviewer can see on GitHub."""


def repository_url() -> str:
    """The project's repository: installed metadata's ``Source``/``Repository`` URL, else ours."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("supplychain").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in {"source", "repository", "homepage"} and url.strip():
                return str(url).strip().rstrip("/")
    except Exception:  # NOTE: metadata is optional decoration, never fatal
        return REPOSITORY_URL
    return REPOSITORY_URL


def rules_doc_url() -> str:
    """``docs/rules.md`` in the repository: the ``informationUri`` and every rule's ``helpUri``."""
    return f"{repository_url()}/blob/main/docs/rules.md"


def find_git_root(start: Path) -> Path | None:
    """The nearest ancestor (or ``start``) holding ``.git`` as a directory or a gitfile.

    Pure filesystem: git is never run, so nothing in the scanned repository's config or hooks
    can execute.
    """
    here = start if start.is_dir() else start.parent
    for candidate in (here, *here.parents):
        marker = candidate / ".git"
        try:
            if marker.is_dir() or marker.is_file():
                return candidate
        except OSError:
            return None
    return None


def _absolute(path: str | Path) -> Path:
    """Absolute without resolving links: the names a reviewer sees in the repository."""
    return Path(os.path.abspath(path))  # noqa: PTH100  # NOTE: resolve() would follow links


def sarif_root(
    targets: Sequence[str | Path],
    explicit: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path | None:
    """The directory URIs are relative to (see the module docstring for the order)."""
    if explicit is not None:
        return _absolute(explicit)
    if not targets:
        return None
    first = _absolute(targets[0])
    workspace = (os.environ if env is None else env).get("GITHUB_WORKSPACE")
    if workspace:
        ws = _absolute(workspace)
        if all(_absolute(t).is_relative_to(ws) for t in targets):
            return ws
    return find_git_root(first)


@dataclass(frozen=True, slots=True)
class PathMap:
    """Turns a report path (relative to what was scanned) into a repository URI and a file."""

    root: Path | None
    bases: Mapping[str, Path]
    """First path component (or ``""`` for a single target) → the absolute base it joins."""

    @classmethod
    def build(cls, targets: Sequence[str | Path], root: Path | None) -> PathMap:
        """Mirror ``discover``'s naming: one directory target → paths inside it; one file or
        several targets → paths start with the target's own name."""
        bases: dict[str, Path] = {}
        if len(targets) == 1:
            given = _absolute(targets[0])
            bases[""] = given if given.is_dir() else given.parent
        else:
            for t in targets:
                given = _absolute(t)
                bases.setdefault(given.name, given.parent)
        return cls(root, bases)

    def file(self, rel: str) -> Path | None:
        """The scanned file on disk, if we can tell."""
        if "" in self.bases:
            return self.bases[""] / rel
        base = self.bases.get(rel.split("/", 1)[0])
        return None if base is None else base / rel

    def uri(self, rel: str) -> str:
        """Repository-relative URI reference (percent-encoded: a name may hold ``%``, ``#``,
        spaces); the report path when the file is outside the root."""
        fs = self.file(rel)
        if self.root is None or fs is None or not fs.is_relative_to(self.root):
            return quote(rel, safe=URI_SAFE)
        return quote(fs.relative_to(self.root).as_posix(), safe=URI_SAFE)


def _level(severity: Severity) -> str:
    if severity >= Severity.HIGH:
        return "error"
    if severity is Severity.MEDIUM:
        return "warning"
    return "note"


def sarif_rule_id(rule: Rule | None, finding: Finding) -> str:
    """``RULE`` at the rule's default severity, ``RULE/<severity>`` otherwise."""
    if rule is None or finding.severity == rule.severity:
        return str(finding.rule)
    return f"{finding.rule}/{finding.severity.label}"


def _rule_object(rule_id: str, rule: Rule | None, severity: Severity) -> dict[str, Any]:
    properties: dict[str, Any] = {"precision": "high", "severity": severity.label}
    security = SECURITY_SEVERITY[severity]
    if security is not None:
        properties["security-severity"] = security
    doc = rules_doc_url()
    if rule is None:
        properties["tags"] = ["security"]
        return {
            "id": rule_id,
            "shortDescription": {"text": rule_id},
            "helpUri": doc,
            "defaultConfiguration": {"level": _level(severity)},
            "properties": properties,
        }
    properties["tags"] = list(rule.tags[:MAX_TAGS])
    help_text = f"{rule.explanation}\n\nRemediation: {rule.remediation}"
    markdown = f"{rule.explanation}\n\n**Remediation:** {rule.remediation}"
    if rule.references:
        markdown += "\n\n" + "\n".join(f"- <{ref}>" for ref in rule.references)
    if severity != rule.severity:
        note = f"\n\n(Reported at {severity.label}; the rule's default is {rule.severity.label}.)"
        help_text += note
        markdown += note
    return {
        "id": rule_id,
        "name": "".join(w.capitalize() for w in rule.title.replace("-", " ").split()),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": help_text, "markdown": markdown},
        "helpUri": doc,
        "defaultConfiguration": {"level": _level(severity)},
        "properties": properties,
    }


def _utf16_width(data: bytes) -> int:
    return len(data.decode("utf-8", "replace").encode("utf-16-le")) // 2


_CONTINUATION = bytes(range(0x80, 0xC0))
_FOUR_BYTE_LEADS = tuple(bytes([b]) for b in range(0xF0, 0xF8))


def _utf16_units(data: bytes) -> int:
    """UTF-16 code units of UTF-8 bytes, counted without decoding (a chunk may cut a character):
    one per lead byte, two for a four-byte sequence."""
    leads = data.translate(None, _CONTINUATION)
    return len(leads) + sum(leads.count(b) for b in _FOUR_BYTE_LEADS)


def _region_at(data: bytes, offset: int) -> dict[str, int]:
    """Line and UTF-16 column (SARIF's default ``columnKind``) of a byte offset, 1-based."""
    head = data[:offset]
    line_start = head.rfind(b"\n") + 1
    return {"startLine": head.count(b"\n") + 1, "startColumn": _utf16_width(head[line_start:]) + 1}


class _Texts:
    """Reads each text file once (bounded) to place offsets and evidence on lines."""

    def __init__(self, paths: PathMap, kinds: Mapping[str, ArtifactKind]) -> None:
        self.paths = paths
        self.kinds = kinds
        self.cache: dict[str, bytes | None] = {}

    def data(self, rel: str) -> bytes | None:
        if rel not in self.cache:
            fs = self.paths.file(rel)
            data: bytes | None = None
            if fs is not None:
                try:
                    with fs.open("rb") as fh:
                        data = fh.read(REGION_READ_LIMIT)
                except OSError:
                    data = None
            self.cache[rel] = data
        return self.cache[rel]

    def region(self, finding: Finding) -> dict[str, int]:
        loc = finding.location
        kind = self.kinds.get(loc.path)
        if loc.member or kind not in TEXT_KINDS:
            return {"startLine": 1}
        if loc.rows and kind is ArtifactKind.DATASET_JSONL:
            return {"startLine": loc.rows[0] + 1}
        data = self.data(loc.path)
        if data is None:
            return {"startLine": 1}
        if loc.offset is not None:
            # The scanner's exact byte offset wins; the evidence search is only for findings
            # that carry none.
            if 0 <= loc.offset <= len(data):
                return _region_at(data, loc.offset)
            if loc.offset > 0 and len(data) >= REGION_READ_LIMIT:
                return self._streamed(loc.path, loc.offset)
            return {"startLine": 1}
        found = _find_evidence(data, finding.evidence)
        return _region_at(data, found) if found is not None else {"startLine": 1}

    def _streamed(self, rel: str, offset: int) -> dict[str, int]:
        """Line and UTF-16 column of an offset past the cached head, counted chunk by chunk
        (memory bounded whatever the file and line length)."""
        fs = self.paths.file(rel)
        if fs is None:
            return {"startLine": 1}
        line, column, read = 1, 0, 0
        try:
            with fs.open("rb") as fh:
                while read < offset:
                    chunk = fh.read(min(REGION_CHUNK, offset - read))
                    if not chunk:
                        return {"startLine": 1}  # the file shrank: no place to point at
                    read += len(chunk)
                    newline = chunk.rfind(b"\n")
                    if newline == -1:
                        column += _utf16_units(chunk)
                    else:
                        line += chunk.count(b"\n")
                        column = _utf16_units(chunk[newline + 1 :])
        except OSError:
            return {"startLine": 1}
        return {"startLine": line, "startColumn": column + 1}


def _find_evidence(data: bytes, evidence: str) -> int | None:
    """First place the (untruncated, unescaped) evidence occurs, raw or JSON-string-escaped."""
    if len(evidence) < EVIDENCE_MIN or evidence.endswith("…") or "\\" in evidence:
        return None
    for needle in (evidence, json.dumps(evidence, ensure_ascii=False)[1:-1]):
        pos = data.find(needle.encode("utf-8"))
        if pos != -1:
            return pos
    return None


def _message(finding: Finding) -> str:
    loc = finding.location
    text = finding.message
    if loc.member:
        text += f" (in archive member {'!'.join(loc.member)})"
    if loc.offset is not None and loc.member:
        text += f" at byte {loc.offset} of the member"
    if loc.rows:
        shown = ", ".join(str(r) for r in loc.rows[:10])
        more = f" and {len(loc.rows) - 10} more" if len(loc.rows) > 10 else ""
        text += f" [rows {shown}{more}]"
    if finding.evidence:
        text += f": {finding.evidence}"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def _result(
    finding: Finding, rule_id: str, index: int, uri: str, region: dict[str, int]
) -> dict[str, Any]:
    loc = finding.location
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
            "region": region,
        },
    }
    if loc.member:
        location["logicalLocations"] = [
            {"fullyQualifiedName": "!".join(loc.member), "name": loc.member[-1], "kind": "resource"}
        ]
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": _level(finding.severity),
        "message": {"text": _message(finding)},
        "locations": [location],
        "partialFingerprints": {"supplychainFingerprint/v1": finding.fingerprint},
        "properties": {
            "rule": str(finding.rule),
            "severity": finding.severity.label,
            "confidence": finding.confidence.label,
            "member": list(loc.member),
            "offset": loc.offset,
            "rows": list(loc.rows[:1000]),
            "evidence": finding.evidence,
        },
    }
    if finding.group is not None:
        result["properties"]["group"] = finding.group
    if finding.suppressed is not None:
        result["suppressions"] = [{"kind": "external", "justification": finding.suppressed}]
    return result


def _notifications(report: Report, paths: PathMap) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    for r in report.results:
        if r.status is Status.SCANNED or r.expected:
            continue
        where = "!".join((r.path, *r.member))
        notes.append(
            {
                "level": "error" if r.status is Status.FAILED else "warning",
                "message": {"text": f"{r.status.value}: {where}: {r.reason}"[:MAX_MESSAGE]},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": paths.uri(r.path), "uriBaseId": "%SRCROOT%"}
                        }
                    }
                ],
                "descriptor": {"id": f"{r.scanner}/{r.status.value}"},
            }
        )
    return notes


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Worst and unsuppressed first, so a truncation drops the least important results."""
    return sorted(findings, key=lambda f: (f.suppressed is not None, *f.sort_key()))


def report_to_sarif(
    report: Report, root: str | Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Build the SARIF log as plain data (``root`` is ``--sarif-root``)."""
    base = sarif_root(report.target, root, env)
    paths = PathMap.build(report.target, base)
    kinds = {r.path: r.kind for r in report.files if not r.member}
    texts = _Texts(paths, kinds)
    docs = {str(r.id): r for r in report.rules}

    findings = _ordered(report.findings)
    dropped = max(0, len(findings) - MAX_RESULTS)
    findings = findings[:MAX_RESULTS]
    rule_objects: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for f in findings:
        doc = docs.get(str(f.rule))
        rid = sarif_rule_id(doc, f)
        if rid not in rule_index:
            if len(rule_objects) >= MAX_RULES:
                dropped += 1
                continue
            rule_index[rid] = len(rule_objects)
            rule_objects.append(_rule_object(rid, doc, f.severity))
        results.append(
            _result(f, rid, rule_index[rid], paths.uri(f.location.path), texts.region(f))
        )

    notifications = _notifications(report, paths)
    if dropped:
        notifications.append(
            {
                "level": "warning",
                "message": {
                    "text": f"{dropped} least severe results left out: GitHub accepts at most "
                    f"{MAX_RESULTS} results per run; the JSON report has them all"
                },
                "descriptor": {"id": "supplychain/truncated"},
            }
        )
    verdict = report.verdict
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "supplychain",
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "informationUri": rules_doc_url(),
                "rules": rule_objects,
            }
        },
        "automationDetails": {"id": f"supplychain/{report.command}/"},
        "columnKind": "utf16CodeUnits",
        "invocations": [
            {
                "executionSuccessful": not report.failed,
                "startTimeUtc": report.started_at,
                "toolExecutionNotifications": notifications,
                "properties": {
                    "verdict": "pass" if verdict and verdict.passed else "fail",
                    "verdictReasons": list(verdict.reasons) if verdict else [],
                },
            }
        ],
        "results": results,
        "properties": {"truncatedResults": dropped},
    }
    if base is not None:
        uri = base.as_uri()
        run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": uri if uri.endswith("/") else uri + "/"}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


@dataclass(frozen=True)
class SarifFormat:
    """See ``Format``; SARIF 2.1.0 as accepted by GitHub code scanning.

    ``root`` is ``--sarif-root``; without it the root is found as the module docstring says.
    """

    root: Path | None = None
    name: ClassVar[str] = "sarif"

    def render(self, report: Report, out: TextIO) -> None:
        """See ``Format.render``."""
        json.dump(report_to_sarif(report, self.root), out, indent=2, ensure_ascii=False)
        out.write("\n")
