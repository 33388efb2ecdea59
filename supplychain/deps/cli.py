"""CLI for the dependency audit: ``supplychain deps`` and the ``--deps-online`` options of ``scan``.

Registered on the main parser like the provenance commands: ``supplychain/cli.py`` calls
``add_commands(sub)`` and ``add_scan_options(scan)``, and ``with_flags`` when it loads the
policy, so the flags land in the policy's ``[deps]`` table and from there in the typed
``DepsOptions`` settings section (covered by the settings fingerprint).

Precedence for the endpoint: ``--osv-url`` > ``SUPPLYCHAIN_OSV_URL`` > ``[deps] osv_url`` > OSV.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from supplychain.core.errors import ConfigError

if TYPE_CHECKING:
    from supplychain.policy import Policy

OSV_ENV = "SUPPLYCHAIN_OSV_URL"

EPILOG = """examples:
  supplychain deps .
  supplychain deps requirements.txt -f json -o deps.json
  SUPPLYCHAIN_OSV_URL=https://osv.mirror.internal/v1/query supplychain deps model/
  supplychain deps model/ --offline          # static checks only, no network

exit codes:
  0  no finding at or above --fail-on (default high)
  1  a finding at or above --fail-on: a vulnerable pin, a dependency that could not be audited,
     an extra index, a local-path requirement, a typosquat, an unparseable file
  2  usage or configuration error, or no requirement file found
"""


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("timeout must be in (0, 600] seconds")
    return value


def add_scan_options(p: argparse.ArgumentParser, *, deps_command: bool = False) -> None:
    """``--deps-online`` (scan) or ``--offline`` (deps), ``--osv-url``, ``--osv-timeout``."""
    g = p.add_argument_group("dependency audit")
    if deps_command:
        g.add_argument(
            "--offline", action="store_true", help="parse and check only: no vulnerability lookup"
        )
    else:
        g.add_argument(
            "--deps-online",
            action="store_true",
            help="look up the vulnerabilities of requirement files found (OSV; network)",
        )
    g.add_argument(
        "--osv-url",
        metavar="URL",
        help=f"OSV-compatible /v1/query URL (default: ${OSV_ENV}, the policy's [deps] osv_url, "
        "or https://api.osv.dev/v1/query)",
    )
    g.add_argument(
        "--osv-timeout", type=_timeout, metavar="SECONDS", help="per-request timeout (default 10)"
    )


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``deps``."""
    from supplychain.cli import _add_output_options

    deps = sub.add_parser(
        "deps",
        help="audit requirement files: static checks and known vulnerabilities (OSV)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deps.add_argument("paths", nargs="+", metavar="PATH")
    _add_output_options(deps)
    add_scan_options(deps, deps_command=True)
    deps.set_defaults(handler=cmd_deps, deps_command=True)


def with_flags(policy: Policy, args: argparse.Namespace) -> Policy:
    """The policy with the command line's dependency-audit flags and the environment applied."""
    deps = policy.deps
    if getattr(args, "deps_command", False):
        deps = replace(deps, online=not getattr(args, "offline", False))
    elif getattr(args, "deps_online", False):
        deps = replace(deps, online=True)
    url = getattr(args, "osv_url", None) or os.environ.get(OSV_ENV) or deps.osv_url
    if url:
        # NOTE: imported only here: the client pulls in urllib/http.client/ssl, which a plain
        # scan's start-up must not pay for.
        from supplychain.deps.osv import check_url

        deps = replace(deps, osv_url=check_url(url))
    timeout = getattr(args, "osv_timeout", None)
    if timeout is not None:
        deps = replace(deps, timeout=timeout)
    return replace(policy, deps=deps)


def cmd_deps(args: argparse.Namespace) -> int:
    """``supplychain deps PATH...``: the requirements scanner and the audit, online by default."""
    from supplychain import service
    from supplychain.cli import _check_output, _emit, _load_policy

    policy = _load_policy(args)
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    _check_output(args.output)
    options = service.deps_options(policy)  # with_flags set online (unless --offline)
    report = service.run_deps(args.paths, policy, options=options, jobs=args.jobs)
    if not any(f.key == "dependency.audit" for f in report.facts):
        raise ConfigError(
            f"no requirement file found in {' '.join(args.paths)} (requirements*.txt, "
            "constraints*.txt, pyproject.toml, pylock.toml, uv.lock, poetry.lock, Pipfile.lock)"
        )
    return _emit(report, args)


__all__ = ["OSV_ENV", "add_commands", "add_scan_options", "cmd_deps", "with_flags"]
