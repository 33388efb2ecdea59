"""Command line: a thin shell over ``supplychain.service`` and the output formats.

``main(argv) -> int`` is what the console script and tests call. It is the only place (with the
future server) that turns exceptions into exit codes.
"""

from __future__ import annotations

import argparse
import enum
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn, TextIO, cast

from supplychain.core.errors import ConfigError, SupplyChainError
from supplychain.core.model import Report, Rule, Severity
from supplychain.policy import FailOn, Policy, parse_fail_on

if TYPE_CHECKING:
    from supplychain.cache import VerdictCache
    from supplychain.core.settings import Settings
    from supplychain.formats.base import Format

log = logging.getLogger("supplychain")


class ExitCode(enum.IntEnum):
    """ClamAV-style exit codes, as fickling uses."""

    CLEAN = 0
    """The policy is satisfied."""
    VIOLATION = 1
    """The policy failed: a finding at or above fail-on (not suppressed), an expired ignore, a
    file inside a scanned directory that could not be analysed, or (--strict) a skipped file."""
    ERROR = 2
    """Operational: usage or configuration error, a target or output path that cannot be used,
    or a run that analysed nothing."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` owns every exit code."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fail_on(text: str) -> FailOn:
    try:
        return parse_fail_on(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_output_options(p: argparse.ArgumentParser) -> None:
    from supplychain.formats import FORMATS

    p.add_argument("--format", "-f", choices=sorted(FORMATS), default="table")
    p.add_argument("--output", "-o", type=Path, help="write the report here (after the run)")
    p.add_argument(
        "--fail-on",
        type=_fail_on,
        help="lowest failing severity (default: high), and/or owasp:LLM02, atlas:AML.T0020 "
        "selectors (comma-separated): findings of rules mapped to them fail too",
    )
    p.add_argument("--policy", type=Path, help="policy file (default: nearest supplychain.toml)")
    p.add_argument("--strict", action="store_true", help="fail on files that were not analysed")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary on stderr")
    p.add_argument(
        "--sarif-root", type=Path, help="SARIF URIs relative to this (default: git top level)"
    )
    p.add_argument(
        "--jobs", "-j", type=int, default=os.cpu_count() or 1, help="files scanned in parallel"
    )


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    """``--cache`` / ``--no-cache`` / ``--verify-cache`` (see ``supplychain.cache``)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--cache",
        type=Path,
        metavar="PATH",
        help="verdict cache file (default: SUPPLYCHAIN_CACHE, else the policy's [cache] path, "
        "else none)",
    )
    group.add_argument("--no-cache", action="store_true", help="never open a verdict cache")
    p.add_argument(
        "--verify-cache",
        action="store_true",
        help="re-hash every file instead of trusting size/mtime/inode (cached verdicts still used)",
    )


def _open_cache(args: argparse.Namespace, policy: Policy) -> VerdictCache | None:
    """The verdict cache this run uses, opened and checked, or ``None``."""
    from supplychain.cache import DEFAULT_TIMEOUT, VerdictCache, resolve_path

    path = resolve_path(
        getattr(args, "cache", None),
        no_cache=getattr(args, "no_cache", False),
        policy_path=policy.cache.path,
    )
    verify = getattr(args, "verify_cache", False)
    if path is None:
        if verify:
            raise ConfigError(
                "--verify-cache needs a cache: --cache PATH, SUPPLYCHAIN_CACHE or [cache] path"
            )
        return None
    timeout = policy.cache.timeout if policy.cache.timeout is not None else DEFAULT_TIMEOUT
    return VerdictCache.open(path, timeout=timeout, verify=verify)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommands carry their handler in ``handler``."""
    parser = _Parser(
        prog="supplychain",
        description="Find code in ML models, tampering and poisoned data without executing them.",
    )
    from supplychain import init_policy, selftest
    from supplychain.server import cli as server_cli

    parser.add_argument("--version", action=init_policy.VersionAction)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    scan = sub.add_parser("scan", help="scan model files and directories")
    scan.add_argument("paths", nargs="+", metavar="PATH")
    _add_output_options(scan)
    _add_cache_options(scan)
    from supplychain.deps import cli as deps_cli
    from supplychain.provenance import cli as provenance_cli

    provenance_cli.add_scan_options(scan)
    deps_cli.add_scan_options(scan)
    scan.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where files are scanned: here (default) or as Ray tasks (--jobs: local cluster CPUs)",
    )
    scan.add_argument("--engine-address", help="Ray cluster (default: RAY_ADDRESS, else local)")
    scan.set_defaults(handler=cmd_scan)

    data = sub.add_parser("data", help="look for poisoning in datasets")
    data.add_argument("paths", nargs="+", metavar="PATH")
    data.add_argument("--text-field")
    data.add_argument("--label-field")
    data.add_argument("--id-field")
    data.add_argument("--checks", help="comma-separated checks to run (default: all)")
    data.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where the checks run: here (default) or on a Ray cluster (shards as one dataset)",
    )
    data.add_argument(
        "--engine-address", help="cluster to connect to (default: RAY_ADDRESS, else a local one)"
    )
    data.add_argument(
        "--workers", type=int, default=2, help="CPUs of the local cluster started for the run"
    )
    _add_output_options(data)
    _add_cache_options(data)
    data.set_defaults(handler=cmd_data)

    rules = sub.add_parser("rules", help="list the rules, or explain one")
    rules.add_argument("rule", nargs="?")
    rules.add_argument("--markdown", action="store_true", help="print the catalogue as Markdown")
    rules.set_defaults(handler=cmd_rules)

    explain = sub.add_parser("explain", help="print the decompiled trace of a pickle")
    explain.add_argument("file", type=Path)
    explain.set_defaults(handler=cmd_explain)
    selftest.add_commands(sub)
    init_policy.add_commands(sub)
    provenance_cli.add_commands(sub)
    deps_cli.add_commands(sub)
    from supplychain import sbom_cli

    sbom_cli.add_commands(sub)
    server_cli.add_commands(sub)
    init_policy.add_help_epilogs(parser)
    return parser


def _load_policy(args: argparse.Namespace) -> Policy:
    from supplychain import policy as pol

    path = args.policy or pol.find_policy(args.paths)
    loaded = pol.load_policy(path) if path is not None else pol.Policy()
    if args.fail_on is not None:
        loaded = pol.with_fail_on(loaded, args.fail_on)
    if args.strict:
        loaded = replace(loaded, strict=True)
    from supplychain.deps.cli import with_flags

    return with_flags(loaded, args)  # --deps-online/--offline, --osv-url, SUPPLYCHAIN_OSV_URL


class _Progress:
    """A progress bar on stderr, shown only on a terminal and only once a scan takes a moment."""

    DELAY = 0.5

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.bar: object | None = None
        self.task: object | None = None

    def __call__(self, done: int, total: int, path: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.started < self.DELAY or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            progress = Progress(console=Console(file=sys.stderr), transient=True)
            progress.start()
            self.bar = progress
            self.task = progress.add_task("scanning", total=total)
        from rich.progress import Progress, TaskID

        assert isinstance(self.bar, Progress)
        assert isinstance(self.task, int)
        self.bar.update(TaskID(self.task), completed=done, description=path[-40:])

    def close(self) -> None:
        if self.bar is None:
            return
        from rich.progress import Progress

        if isinstance(self.bar, Progress):
            self.bar.stop()


def _check_output(target: Path | None) -> None:
    """Refuse a report path we could not write *before* scanning (exit 2, one line)."""
    if target is None:
        return
    directory = target.parent if str(target.parent) else Path()
    if not directory.is_dir():
        raise ConfigError(f"cannot write report to {target}: {directory} is not a directory")
    if target.is_dir():
        raise ConfigError(f"cannot write report to {target}: it is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write report to {target}: {directory} is not writable")


def _write_report(report: Report, fmt: Format, target: Path) -> None:
    directory = target.parent if str(target.parent) else Path()
    tmp_name: str | None = None
    try:
        # Written to a temp file then renamed: a failed run never leaves half a report behind.
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=directory, delete=False, suffix=".tmp"
        ) as tmp:
            tmp_name = tmp.name
            fmt.render(report, cast(TextIO, tmp))
        Path(tmp.name).replace(target)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise ConfigError(f"cannot write report to {target}: {exc.strerror or exc}") from None


def _emit(report: Report, args: argparse.Namespace) -> int:
    from supplychain.formats import FORMATS
    from supplychain.formats.text import summary_line
    from supplychain.policy import analysed_files

    fmt = FORMATS[args.format]
    if args.format == "sarif" and args.sarif_root is not None:
        from supplychain.formats.sarif import SarifFormat

        fmt = SarifFormat(root=args.sarif_root)
    if args.output is not None:
        _write_report(report, fmt, args.output)
    else:
        fmt.render(report, sys.stdout)
        sys.stdout.flush()
    if not args.quiet and (args.output is not None or args.format != "table"):
        print(summary_line(report), file=sys.stderr)
    code = exit_code(report)
    if analysed_files(report) == 0:
        targets = " ".join(args.paths)
        label = "error" if code is ExitCode.ERROR else "warning"
        print(
            f"supplychain: {label}: nothing was analysed in {targets}: empty, or no file in a "
            "format any scanner handles (not a pass)",
            file=sys.stderr,
        )
    return int(code)


def exit_code(report: Report) -> ExitCode:
    """Map the verdict to an exit code: 1 is only ever "the policy failed".

    A run that analysed nothing (and found nothing at the gate) is an operational error (2):
    there was nothing to judge, which must never read as a pass.
    """
    from supplychain.policy import analysed_files

    verdict = report.verdict
    if verdict is None:
        return ExitCode.ERROR
    if verdict.passed:
        return ExitCode.CLEAN
    if analysed_files(report) == 0 and verdict.violations == 0:
        return ExitCode.ERROR
    return ExitCode.VIOLATION


def _run(args: argparse.Namespace, settings_for: Callable[[Policy], Settings]) -> int:
    """Policy and flags → settings → the service's judged report → output and exit code."""
    from supplychain import service

    policy = _load_policy(args)
    assert isinstance(policy, Policy)
    settings = settings_for(policy)
    service.check_policy(policy, settings)
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    _check_output(args.output)
    cache = _open_cache(args, policy)
    progress = _Progress(enabled=not args.quiet)
    executor: Literal["auto", "ray"] = "auto"
    if getattr(args, "engine", "local") == "ray":  # scan --engine ray (docs/distributed.md)
        executor = "ray"
        if args.engine_address:
            os.environ["RAY_ADDRESS"] = args.engine_address
    try:
        report = service.run(
            args.paths,
            settings,
            policy,
            jobs=args.jobs,
            executor=executor,
            progress=progress,
            cache=cache,
        )
    finally:
        progress.close()
        if cache is not None:
            cache.close()
    return _emit(report, args)


def _parse_checks(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    return frozenset(n.strip() for n in raw.split(",") if n.strip())


def cmd_scan(args: argparse.Namespace) -> int:
    """``supplychain scan``: every registered scanner over files and directories."""
    from supplychain.oci_cli import scan_oci, wants_oci
    from supplychain.provenance.cli import scan_hook
    from supplychain.service import settings_from_policy

    if wants_oci(args):  # oci://REGISTRY/REPO[:TAG][@DIGEST]: pull, verify digests, scan
        return scan_oci(args)
    verified = scan_hook(args)  # --hf/--lock/hf:// or a cache snapshot: scan + verify, one verdict
    return _run(args, settings_from_policy) if verified is None else verified


def cmd_data(args: argparse.Namespace) -> int:
    """``supplychain data``: only the dataset analysis, with field and check choices."""
    from supplychain.service import data_settings

    checks = _parse_checks(args.checks)
    if args.engine != "local":
        return _run_distributed(args, checks)
    return _run(
        args,
        lambda policy: data_settings(
            policy,
            text_field=args.text_field,
            label_field=args.label_field,
            id_field=args.id_field,
            checks=checks,
        ),
    )


def _run_distributed(args: argparse.Namespace, checks: frozenset[str] | None) -> int:
    """``supplychain data --engine ray``: the same settings and report, run on a cluster."""
    from supplychain import service

    if getattr(args, "cache", None) is not None or getattr(args, "verify_cache", False):
        raise ConfigError("--cache/--verify-cache are not used by data --engine ray")

    policy = _load_policy(args)
    assert isinstance(policy, Policy)
    settings = service.data_settings(
        policy,
        text_field=args.text_field,
        label_field=args.label_field,
        id_field=args.id_field,
        checks=checks,
    )
    _check_output(args.output)
    report = service.run_data_distributed(
        args.paths,
        settings,
        policy,
        engine=args.engine,
        address=args.engine_address,
        workers=args.workers,
    )
    return _emit(report, args)


def all_rules() -> tuple[Rule, ...]:
    """Every rule any built-in scanner, report-level check or the engine can emit."""
    from supplychain.service import all_rules as catalogue

    return catalogue()


def cmd_rules(args: argparse.Namespace) -> int:
    """``supplychain rules [RULE]``: the rule catalogue, or one rule explained."""
    rules = all_rules()
    out: TextIO = sys.stdout
    if args.rule:
        wanted = args.rule.upper()
        match = next((r for r in rules if r.id == wanted), None)
        if match is None:
            raise ConfigError(f"unknown rule {args.rule!r}; run `supplychain rules` for the list")
        out.write(f"{match.id}: {match.title}\n")
        out.write(f"Default severity: {match.severity.label}\n")
        if match.cwe is not None:
            out.write(f"CWE: CWE-{match.cwe}\n")
        if match.owasp_llm:
            out.write(f"OWASP LLM Top 10 (2025): {', '.join(match.owasp_llm)}\n")
        if match.atlas:
            out.write(f"MITRE ATLAS: {', '.join(match.atlas)}\n")
        out.write(f"\n{match.explanation}\n\nRemediation: {match.remediation}\n")
        for ref in match.references:
            out.write(f"See: {ref}\n")
        return ExitCode.CLEAN
    if args.markdown:
        out.write(rules_markdown(rules))
        return ExitCode.CLEAN
    for r in rules:
        tags = ",".join((*r.owasp_llm, *r.atlas))
        out.write(f"{r.id}  {r.severity.label:8}  {r.title}  [{tags}]\n")
    return ExitCode.CLEAN


def rules_markdown(rules: Sequence[Rule]) -> str:
    """The rule catalogue as a Markdown table (``docs/rules.md`` is generated from this)."""
    lines = [
        "# Rules",
        "",
        "Generated by `supplychain rules --markdown`; `supplychain rules RULE` explains one.",
        "",
        "| Rule | Default severity | Title | CWE | OWASP LLM 2025 | MITRE ATLAS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rules:
        cwe = f"CWE-{r.cwe}" if r.cwe is not None else ""
        title = r.title.replace("|", "\\|")
        lines.append(
            f"| {r.id} | {r.severity.label} | {title} | {cwe} | {', '.join(r.owasp_llm)} "
            f"| {', '.join(r.atlas)} |"
        )
    return "\n".join(lines) + "\n"


def cmd_explain(args: argparse.Namespace) -> int:
    """``supplychain explain FILE``: the decompiled trace of a pickle, never executed.

    The trace comes from ``scanners.explain`` (streamed, escaped lines); this only prints it.
    """
    try:
        from scanners.explain import explain_file
    except ImportError as exc:
        raise ConfigError(f"pickle trace is not available: {exc}") from None
    from supplychain.core.errors import ArtifactError

    path: Path = args.file
    out = sys.stdout
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            for line in explain_file(fh, size, path.name):
                out.write(line + "\n")
        except ArtifactError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return ExitCode.CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn our errors into exit code 2 with one clear line."""
    parser = build_parser()
    verbose = 0
    try:
        args = parser.parse_args(argv)
        verbose = args.verbose
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        log.setLevel(
            logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING
        )
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return ExitCode.ERROR
        return int(handler(args))
    except SupplyChainError as exc:
        if verbose >= 2:
            raise
        print(f"supplychain: error: {exc.diagnostics()}", file=sys.stderr)
        return ExitCode.ERROR
    except BrokenPipeError:
        # NOTE: `supplychain scan … | head` must not print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.ERROR
    except OSError as exc:
        # Operational trouble we did not foresee (disk full, I/O error): one line, exit 2.
        if verbose >= 2:
            raise
        name = f" {exc.filename}" if exc.filename else ""
        print(f"supplychain: error:{name} {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("supplychain: interrupted", file=sys.stderr)
        return 130
