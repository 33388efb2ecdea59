"""One self-contained HTML report a reviewer opens in a browser.

No external request is possible: CSS and JS are inline and allowed only by their sha256 in a
strict ``Content-Security-Policy`` (``default-src 'none'``, no ``connect-src``, no images except
``data:``), and there is no URL to fetch anyway. Every string from the artifact (file and member
names, messages, evidence, trace lines) goes through ``html.escape``; the report never puts
artifact text in an attribute other than quoted, escaped ``data-*``/``title`` values.

Sections: the verdict, severity filters, findings by file, archive member trees, dataset findings
with their rows (duplicate clusters, label flips, triggers) and, for top-level pickles, the
decompiled trace ``supplychain explain`` prints (static: the file is walked, never loaded) with
the lines naming the dangerous call highlighted.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import ClassVar, TextIO

from supplychain.core.model import ArtifactKind, ArtifactRecord, Finding, Report, Severity, Status

TRACE_LINES = 400
"""Trace lines shown per pickle (the whole trace is one ``supplychain explain`` away)."""
TRACE_BYTES = 64 * 2**20
"""Largest pickle file traced inline."""
DATASET_RULES_PREFIX = "DAT"
ZIP_KINDS = frozenset({ArtifactKind.TORCH_ZIP, ArtifactKind.ZIP, ArtifactKind.NUMPY_NPZ})
"""Containers whose pickle members are traced (one level deep, like ``supplychain explain``)."""

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
header{padding:16px 24px;color:#fff}
header.pass{background:#1a7f37}header.fail{background:#cf222e}
h1{margin:0;font-size:20px}main{padding:16px 24px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:0 0 16px;padding:12px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eaeef2;padding:4px 6px;
text-align:left;vertical-align:top}code,pre{font:12px/1.4 ui-monospace,monospace}
pre{overflow:auto;background:#f6f8fa;padding:8px;margin:0}
.sev{font-weight:600;text-transform:uppercase;font-size:11px}
.sev-critical{color:#8250df}.sev-high{color:#cf222e}.sev-medium{color:#9a6700}
.sev-low{color:#0969da}.sev-info{color:#57606a}
.hit{background:#ffebe9;color:#82071e;font-weight:700;display:block}
.suppressed{opacity:.55}.filters label{margin-right:12px}
ul.tree{margin:0;padding-left:18px}
"""

SCRIPT = """
(function(){
  function apply(){
    var shown={};
    document.querySelectorAll('input[data-filter]').forEach(function(box){
      shown[box.getAttribute('data-filter')]=box.checked;});
    document.querySelectorAll('[data-sev]').forEach(function(row){
      row.hidden=!shown[row.getAttribute('data-sev')];});
  }
  document.querySelectorAll('input[data-filter]').forEach(function(box){
    box.addEventListener('change',apply);});
  apply();
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (
    "default-src 'none'; "
    f"style-src {_csp_hash(STYLE)}; "
    f"script-src {_csp_hash(SCRIPT)}; "
    "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'; "
    "frame-src 'none'; object-src 'none'"
)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _sev(severity: Severity) -> str:
    return f'<span class="sev sev-{severity.label}">{severity.label}</span>'


def _rows(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:20])
    return shown + (f" … (+{len(rows) - 20})" if len(rows) > 20 else "")


@dataclass(frozen=True, slots=True)
class _Tree:
    """Member chains of one archive, as nested ``<ul>``."""

    members: tuple[tuple[str, ...], ...]

    def render(self) -> str:
        root: dict[str, dict[str, object]] = {}
        for chain in self.members:
            node = root
            for part in chain:
                node = node.setdefault(part, {})  # type: ignore[assignment]
        return self._ul(root)

    def _ul(self, node: dict[str, dict[str, object]]) -> str:
        items = "".join(
            f"<li><code>{_e(name)}</code>{self._ul(child) if child else ''}</li>"  # type: ignore[arg-type]
            for name, child in sorted(node.items())
        )
        return f'<ul class="tree">{items}</ul>'


def _zip_pickle(path: Path, member: str) -> bytes | None:
    """One pickle member of a torch/zip checkpoint, read with our bounded zip walker."""
    try:
        from scanners import _zip
        from supplychain.core.errors import ArtifactError
        from supplychain.core.limits import Limits
    except ImportError:
        return None
    limits = Limits()
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            directory = _zip.read_directory(fh, size, limits.max_archive_members)
            entry = next((e for e in directory.entries if e.name == member), None)
            if entry is None:
                return None
            _zip.resolve(fh, entry, size)
            return b"".join(_zip.iter_member(fh, entry, TRACE_BYTES, limits.max_archive_ratio))
    except (ArtifactError, OSError):
        return None


def _trace(
    path: Path, evidence: Iterable[str], member: str | None = None
) -> list[tuple[str, bool]] | None:
    """The ``explain`` trace of a pickle (a file, or one zip member) with the lines naming the
    dangerous call marked."""
    try:
        from scanners.pickle_vm import explain
        from supplychain.core.limits import Limits
        from supplychain.core.model import escape_evidence
    except ImportError:
        return None
    needles = [e for e in evidence if len(e) >= 3]
    if member is not None:
        data = _zip_pickle(path, member)
        if data is None:
            return None
    else:
        try:
            if path.stat().st_size > TRACE_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
    out: list[tuple[str, bool]] = []
    try:
        for line in explain(io.BytesIO(data), Limits()):
            text = escape_evidence(line, limit=4000)
            hit = any(n in text for n in needles) or _names_call(text, needles)
            out.append((text, hit))
            if len(out) >= TRACE_LINES:
                out.append(("… (trace cut; run `supplychain explain FILE` for all of it)", False))
                break
    except Exception as exc:  # NOTE: a trace is decoration; the findings stand
        out.append((f"# trace stopped: {type(exc).__name__}", False))
    return out


def _names_call(line: str, needles: Sequence[str]) -> bool:
    """``from os import system`` names ``os.system`` in the evidence."""
    if not line.lstrip("@0123456789 ").startswith("from "):
        return False
    parts = line.split()
    try:
        i = parts.index("from")
        dotted = f"{parts[i + 1]}.{parts[i + 3]}"
    except (ValueError, IndexError):
        return False
    return any(dotted in n for n in needles)


@dataclass(frozen=True)
class HtmlFormat:
    """See ``Format``; a single self-contained HTML page."""

    name: ClassVar[str] = "html"

    def render(self, report: Report, out: TextIO) -> None:
        """See ``Format.render``."""
        out.write(render_html(report))


def _base(report: Report) -> Path | None:
    if len(report.target) != 1:
        return None
    given = Path(report.target[0]).absolute()
    return given if given.is_dir() else given.parent


def render_html(report: Report) -> str:
    """The whole page as a string."""
    verdict = report.verdict
    passed = verdict is not None and verdict.passed
    active = [f for f in report.findings if f.suppressed is None]
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        by_file[f.location.path].append(f)
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>supplychain report: {'PASS' if passed else 'FAIL'}</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<header class="{"pass" if passed else "fail"}"><h1 id="verdict">'
        f"{'PASS' if passed else 'FAIL'}: {len(active)} finding(s) in "
        f"{len({r.path for r in report.files if not r.member})} file(s)</h1>",
    ]
    if verdict is not None:
        parts.append(f"<div>fail-on: {_e(verdict.fail_on.label)}</div>")
        parts.extend(f"<div>{_e(reason)}</div>" for reason in verdict.reasons)
    parts.append(
        f"<div>supplychain {_e(report.tool_version)} · {_e(report.command)} · "
        f"{_e(' '.join(report.target))} · {_e(report.started_at)}</div></header><main>"
    )

    counts = {s: sum(1 for f in active if f.severity is s) for s in Severity}
    boxes = "".join(
        f'<label><input type="checkbox" data-filter="{s.label}" '
        f"{'checked' if s >= Severity.LOW else ''}> {s.label} ({counts[s]})</label>"
        for s in sorted(Severity, reverse=True)
    )
    parts.append(f'<section class="filters"><b>Show:</b> {boxes}</section>')

    parts.append('<section id="findings"><h2>Findings by file</h2>')
    if not report.findings:
        parts.append("<p>No findings.</p>")
    for path in sorted(by_file):
        parts.append(
            f'<h3 class="file">{_e(path)}</h3><table><tr><th>Severity</th><th>Rule</th>'
            "<th>Where</th><th>Message</th><th>Evidence</th></tr>"
        )
        for f in sorted(by_file[path], key=lambda f: f.sort_key()):
            loc = f.location
            where = " ! ".join(loc.member)
            if loc.offset is not None:
                where += f" @{loc.offset}"
            if loc.rows:
                where += f" rows {_rows(loc.rows)}"
            cls = ' class="suppressed"' if f.suppressed is not None else ""
            note = f" (suppressed: {_e(f.suppressed)})" if f.suppressed is not None else ""
            parts.append(
                f'<tr data-sev="{f.severity.label}"{cls}><td>{_sev(f.severity)}</td>'
                f"<td><code>{_e(f.rule)}</code></td><td><code>{_e(where.strip())}</code></td>"
                f"<td>{_e(f.message)}{note}</td><td><code>{_e(f.evidence)}</code></td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")

    parts.extend(_archives(report.files))
    parts.extend(_datasets(report))
    parts.extend(_traces(report, by_file))
    parts.extend(_outcomes(report))
    parts.append(f"</main><script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


def _archives(files: Sequence[ArtifactRecord]) -> list[str]:
    members: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for r in files:
        if r.member:
            members[r.path].append(r.member)
    if not members:
        return []
    out = ['<section id="archives"><h2>Archive members</h2>']
    out.extend(
        f"<h3>{_e(path)}</h3>{_Tree(tuple(members[path])).render()}" for path in sorted(members)
    )
    out.append("</section>")
    return out


def _datasets(report: Report) -> list[str]:
    found = [
        f for f in report.findings if f.rule.startswith(DATASET_RULES_PREFIX) and f.location.rows
    ]
    if not found:
        return []
    groups: dict[str, list[Finding]] = defaultdict(list)
    for f in found:
        rule = report.rule(f.rule)
        title = rule.title if rule is not None else str(f.rule)
        groups[f"{f.rule}: {title}"].append(f)
    out = ['<section id="datasets"><h2>Dataset rows (clusters, label flips, triggers)</h2>']
    for name in sorted(groups):
        out.append(
            f"<h3>{_e(name)}</h3><table><tr><th>#</th><th>Severity</th><th>File</th>"
            "<th>Rows</th><th>Cluster</th><th>Message</th><th>Evidence</th></tr>"
        )
        ranked = sorted(groups[name], key=lambda f: (-int(f.severity), -len(f.location.rows)))
        for rank, f in enumerate(ranked, 1):
            out.append(
                f'<tr data-sev="{f.severity.label}"><td>{rank}</td><td>{_sev(f.severity)}</td>'
                f"<td><code>{_e(f.location.path)}</code></td><td>{_e(_rows(f.location.rows))}</td>"
                f"<td>{_e(f.group or '')}</td><td>{_e(f.message)}</td>"
                f"<td><code>{_e(f.evidence)}</code></td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return out


def _traces(report: Report, by_file: dict[str, list[Finding]]) -> list[str]:
    base = _base(report)
    kinds = {r.path: r.kind for r in report.files if not r.member}
    out: list[str] = []
    for path, findings in sorted(by_file.items()):
        if base is None:
            break
        kind = kinds.get(path)
        places: dict[str | None, list[str]] = defaultdict(list)
        for f in findings:
            member = f.location.member
            if not f.rule.startswith("PKL"):
                continue
            if not member and kind is ArtifactKind.PICKLE:
                places[None].append(f.evidence)
            elif len(member) == 1 and kind in ZIP_KINDS:
                places[member[0]].append(f.evidence)
        for member_name, evidence in sorted(places.items(), key=lambda x: x[0] or ""):
            trace = _trace(base / path, evidence, member_name)
            if not trace:
                continue
            lines = "".join(
                f'<span class="hit">{_e(t)}</span>' if hit else f"{_e(t)}\n" for t, hit in trace
            )
            title = path if member_name is None else f"{path} ! {member_name}"
            out.append(f"<h3>{_e(title)}</h3><pre>{lines}</pre>")
    if not out:
        return []
    return [
        '<section id="traces"><h2>Decompiled pickle traces (never executed)</h2>',
        *out,
        "</section>",
    ]


def _outcomes(report: Report) -> list[str]:
    rows = [r for r in report.results if r.status is not Status.SCANNED and not r.expected]
    if not rows:
        return []
    out = [
        '<section id="outcomes"><h2>Not analysed</h2><table>'
        "<tr><th>Status</th><th>File</th><th>Scanner</th><th>Reason</th></tr>"
    ]
    out.extend(
        f"<tr><td>{_e(r.status.value)}</td><td><code>{_e('!'.join((r.path, *r.member)))}"
        f"</code></td><td>{_e(r.scanner)}</td><td>{_e(r.reason)}</td></tr>"
        for r in rows
    )
    out.append("</table></section>")
    return out
