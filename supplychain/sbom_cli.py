"""``supplychain sbom``: scan (and verify) a model, analyse its datasets, write a CycloneDX ML-BOM.

The command is a thin shell: the scan runs through ``supplychain.service`` (through provenance
verification when ``--hf`` is given or the directory is an HF cache snapshot or holds a lock),
each ``--dataset`` through the dataset analysis, then ``sbom.build`` turns the judged reports
into one document and validates it strictly. Exit codes: 0 when the BOM was written (it carries
the verdict; ``--fail-on-verdict`` makes a failed verdict exit 1), 2 on any error, including a
BOM that does not validate (nothing is written then).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supplychain.core.errors import ConfigError

if TYPE_CHECKING:
    from supplychain.core.model import Report
    from supplychain.policy import Policy


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``sbom``."""
    from supplychain.cli import _fail_on

    p = sub.add_parser("sbom", help="write a CycloneDX ML-BOM (AI-BOM) of a model")
    p.add_argument("path", metavar="PATH", help="model directory (or file), or hf://ORG/NAME[@REV]")
    p.add_argument("--hf", metavar="ORG/NAME", help="verify against this Hub repo; purl + commit")
    p.add_argument("--revision", help="branch, tag or commit (default main; pin a commit)")
    p.add_argument(
        "--dataset",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a dataset the model was trained or evaluated on (repeatable); analysed and listed",
    )
    p.add_argument("--spec", choices=("1.6", "1.7"), default="1.6", help="CycloneDX version")
    p.add_argument(
        "--environment",
        action="store_true",
        help="list the running environment's installed distributions as libraries",
    )
    p.add_argument("--output", "-o", type=Path, help="write the BOM here (default: stdout)")
    p.add_argument("--serial", help="serial number (UUID) instead of a random one")
    p.add_argument(
        "--timestamp", help="ISO-8601 time instead of now (default: $SOURCE_DATE_EPOCH if set)"
    )
    p.add_argument("--policy", type=Path, help="policy file (default: nearest supplychain.toml)")
    p.add_argument("--fail-on", type=_fail_on, help="lowest failing severity (default: high)")
    p.add_argument("--strict", action="store_true", help="fail on files that were not analysed")
    p.add_argument("--fail-on-verdict", action="store_true", help="exit 1 when the verdict fails")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    p.add_argument(
        "--jobs", "-j", type=int, default=os.cpu_count() or 1, help="files scanned in parallel"
    )
    from supplychain.deps import cli as deps_cli

    deps_cli.add_scan_options(p)  # --deps-online/--osv-url: advisories for shipped requirements
    p.set_defaults(handler=cmd_sbom)


def parse_serial(text: str | None) -> uuid.UUID | None:
    """``--serial``: a UUID, with or without the ``urn:uuid:`` prefix."""
    if text is None:
        return None
    try:
        return uuid.UUID(text.removeprefix("urn:uuid:"))
    except ValueError:
        raise ConfigError(f"--serial is not a UUID: {text!r:.80}") from None


def parse_timestamp(text: str | None, env: dict[str, str] | None = None) -> dt.datetime | None:
    """``--timestamp`` (ISO-8601), else ``SOURCE_DATE_EPOCH`` (seconds), else ``None`` (now)."""
    environ = os.environ if env is None else env
    if text is not None:
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"--timestamp is not an ISO-8601 time: {text!r:.80}") from None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"SOURCE_DATE_EPOCH is not a Unix time: {epoch!r:.40}") from None
    return None


def _scan(args: argparse.Namespace, policy: Policy) -> Report:
    """The judged model report: through provenance when asked or recognised, else a plain scan."""
    from supplychain import service
    from supplychain.provenance import cli as provenance_cli

    path = str(args.path)
    if args.hf or (args.path.is_dir() and provenance_cli._auto([path])):
        if not args.path.is_dir():
            raise ConfigError("--hf needs a model directory")
        from supplychain.provenance.verify import ProvenanceOptions, run_verify

        options = provenance_cli.with_policy(
            ProvenanceOptions(hf=args.hf, revision=args.revision), policy
        )
        return run_verify([path], options, policy, jobs=args.jobs, command="scan")
    return service.run_scan([path], policy, jobs=args.jobs)


def _write(text: str, target: Path) -> None:
    """Temp file then rename: a failed run never leaves half a BOM behind."""
    directory = target.parent if str(target.parent) else Path()
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=directory, delete=False, suffix=".tmp"
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(text)
        Path(tmp_name).replace(target)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the BOM to {target}: {exc.strerror or exc}") from None


def _from_hub(args: argparse.Namespace, policy: Policy) -> Report:
    """``hf://ORG/NAME[@REV]``: download pinned to the commit into a quarantine, verify, scan."""
    import shutil

    from supplychain.provenance import cli as provenance_cli
    from supplychain.provenance import hub

    repo_type, repo_id, rev = provenance_cli.parse_hf_target(args.path)
    if repo_type != "model":
        raise ConfigError("sbom describes a model: give hf://ORG/NAME (datasets go in --dataset)")
    if args.hf and args.hf != repo_id:
        raise ConfigError("--hf names another repo than the hf:// target")
    try:
        snap = hub.resolve(repo_id, rev or args.revision)
    except hub.HubError as exc:
        raise ConfigError(f"cannot resolve {args.path}: {exc}") from None
    quarantine = Path(tempfile.mkdtemp(prefix="supplychain-sbom-"))
    try:
        dest = quarantine / repo_id.replace("/", "--")
        try:
            hub.download(repo_id, snap.commit, str(dest))
        except hub.HubError as exc:
            raise ConfigError(f"cannot download {args.path}: {exc}") from None
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        args.path, args.hf, args.revision = dest, repo_id, snap.commit
        return _scan(args, policy)
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)


def cmd_sbom(args: argparse.Namespace) -> int:
    """``supplychain sbom PATH``: 0 written (the BOM carries the verdict), 2 on any error."""
    import sbom
    from supplychain import service
    from supplychain.cli import _check_output, _load_policy
    from supplychain.policy import analysed_files
    from supplychain.provenance.cli import HF_SCHEME

    remote = args.path.startswith(HF_SCHEME)
    if not remote:
        args.path = Path(args.path)
        if not args.path.exists():
            raise ConfigError(f"{args.path} does not exist")
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    serial = parse_serial(args.serial)
    timestamp = parse_timestamp(args.timestamp)
    args.paths = [str(args.path)]  # where the policy is looked for (as `scan hf://` does)
    policy = _load_policy(args)
    _check_output(args.output)
    report = _from_hub(args, policy) if remote else _scan(args, policy)
    datasets = [
        sbom.DatasetInput(name=str(path), report=service.run_data([path], policy, jobs=args.jobs))
        for path in args.dataset
    ]
    try:
        text = sbom.build(
            report,
            datasets=datasets,
            environment=sbom.environment() if args.environment else (),
            spec=args.spec,
            serial=serial,
            timestamp=timestamp,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A builder bug on odd input must still be one line and exit 2, never a traceback.
        raise sbom.BomError(f"cannot build the BOM: {type(exc).__name__}: {exc}") from None
    if args.output is not None:
        _write(text, args.output)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    verdict = report.verdict
    passed = verdict is not None and verdict.passed
    if not args.quiet:
        where = args.output if args.output is not None else "stdout"
        sys.stderr.write(
            f"supplychain: CycloneDX {args.spec} ML-BOM written to {where} "
            f"(validated; verdict {'pass' if passed else 'fail'})\n"
        )
        if analysed_files(report) == 0:
            sys.stderr.write(
                f"supplychain: warning: nothing was analysed in {args.path} (not a pass)\n"
            )
    return 1 if args.fail_on_verdict and not passed else 0
