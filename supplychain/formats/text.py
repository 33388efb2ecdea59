"""Terminal view: findings grouped by file with coloured severities, then a summary line.

When the output is not a terminal the same content is printed as plain lines (nothing decorative
when piped). Every attacker-controlled string was already escaped in ``Finding.__post_init__``;
rich markup in it is escaped here as well.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar, TextIO

from supplychain.core.model import Finding, Report, Severity

COLOURS = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def summary_line(report: Report) -> str:
    """One line: verdict, counts by severity, skipped and failed files."""
    active = [f for f in report.findings if f.suppressed is None]
    counts = [
        f"{sum(1 for f in active if f.severity is s)} {s.label}"
        for s in sorted(Severity, reverse=True)
        if any(f.severity is s for f in active)
    ]
    files = len({r.path for r in report.files if not r.member})
    verdict = report.verdict
    state = "PASS" if verdict is not None and verdict.passed else "FAIL"
    text = f"{state}: {len(active)} finding(s)"
    if counts:
        text += f" ({', '.join(counts)})"
    text += f" in {files} file(s)"
    suppressed = len(report.findings) - len(active)
    if suppressed:
        text += f", {suppressed} suppressed"
    unexpected = [r for r in report.skipped if not r.expected]
    text += f"; {len(unexpected)} skipped, {len(report.failed)} failed"
    if verdict is not None:
        text += f"; fail-on {verdict.fail_on.label}"
    return text


def _where(finding: Finding) -> str:
    loc = finding.location
    parts = ["!".join(loc.member)] if loc.member else []
    if loc.offset is not None:
        parts.append(f"@{loc.offset}")
    if loc.rows:
        shown = ",".join(str(r) for r in loc.rows[:8])
        parts.append(f"rows {shown}{'…' if len(loc.rows) > 8 else ''}")
    return " ".join(parts)


class TableFormat:
    """See ``Format``; the human view for terminals and logs."""

    name: ClassVar[str] = "table"

    def render(self, report: Report, out: TextIO) -> None:
        """See ``Format.render``."""
        is_tty = getattr(out, "isatty", lambda: False)()
        if is_tty:
            self._render_rich(report, out)
        else:
            self._render_plain(report, out)

    @staticmethod
    def _grouped(report: Report) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = defaultdict(list)
        for f in report.findings:
            groups[f.location.path].append(f)
        return dict(sorted(groups.items(), key=lambda kv: (-max(f.severity for f in kv[1]), kv[0])))

    def _render_plain(self, report: Report, out: TextIO) -> None:
        kinds = {r.path: r for r in report.files if not r.member}
        for path, findings in self._grouped(report).items():
            rec = kinds.get(path)
            head = path if rec is None else f"{path} ({rec.kind.value}, {_human_size(rec.size)})"
            out.write(f"{head}\n")
            for f in findings:
                sup = f" [suppressed: {f.suppressed}]" if f.suppressed else ""
                where = _where(f)
                out.write(
                    f"  {f.severity.label.upper():8} {f.rule}  {f.message}"
                    f"{'  [' + where + ']' if where else ''}{sup}\n"
                )
                if f.evidence:
                    out.write(f"           {f.evidence}\n")
        for r in report.results:
            if r.status.value == "failed" or (r.status.value == "skipped" and not r.expected):
                where = "!".join((r.path, *r.member))
                out.write(f"{r.status.value.upper()}: {where}: {r.reason}\n")
        if report.verdict is not None:
            for reason in report.verdict.reasons:
                out.write(f"- {reason}\n")
        out.write(summary_line(report) + "\n")

    def _render_rich(self, report: Report, out: TextIO) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console(file=out, highlight=False, soft_wrap=False)
        kinds = {r.path: r for r in report.files if not r.member}
        for path, findings in self._grouped(report).items():
            rec = kinds.get(path)
            title = escape(path)
            if rec is not None:
                title += f" [dim]({rec.kind.value}, {_human_size(rec.size)})[/dim]"
            table = Table(title=title, title_justify="left", show_header=True, expand=False)
            table.add_column("Severity", no_wrap=True)
            table.add_column("Rule", no_wrap=True)
            table.add_column("Finding")
            table.add_column("Where", overflow="fold")
            for f in findings:
                sev = f"[{COLOURS[f.severity]}]{f.severity.label.upper()}[/]"
                text = escape(f.message)
                if f.evidence:
                    text += f"\n[dim]{escape(f.evidence)}[/dim]"
                if f.suppressed:
                    text += f"\n[green]suppressed: {escape(f.suppressed)}[/green]"
                table.add_row(sev, f.rule, text, escape(_where(f)))
            console.print(table)
        for r in report.results:
            if r.status.value == "failed" or (r.status.value == "skipped" and not r.expected):
                colour = "red" if r.status.value == "failed" else "yellow"
                where = escape("!".join((r.path, *r.member)))
                console.print(f"[{colour}]{r.status.value.upper()}[/]: {where}: {escape(r.reason)}")
        if report.verdict is not None:
            for reason in report.verdict.reasons:
                console.print(f"[bold]-[/bold] {escape(reason)}")
        passed = report.verdict is not None and report.verdict.passed
        style = "bold green" if passed else "bold red"
        console.print(f"[{style}]{escape(summary_line(report))}[/]")
