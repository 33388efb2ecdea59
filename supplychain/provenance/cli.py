"""CLI for provenance: ``verify``, ``lock``, and the ``--hf/--revision/--lock`` options of ``scan``.

Registered on the main parser like the other command modules (``add_commands``), so
``supplychain/cli.py`` only calls ``add_commands``, ``add_scan_options`` and ``scan_hook``. A
scan takes the provenance path (one report, one verdict) when asked (``--hf``, ``--lock``,
signature options, an ``hf://`` target) or by itself when its one directory is an HF cache
snapshot or holds a ``supplychain.lock``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supplychain.core.errors import ConfigError

if TYPE_CHECKING:
    from supplychain.policy import Policy
    from supplychain.provenance.verify import ProvenanceOptions

# cache, hub, lockfile and verify (manifest, rules, signing) are imported where used: building
# the parser and a plain file scan must not pay for them (start-up budget, bench/README.md).

HF_SCHEME = "hf://"


def _say(message: str) -> None:
    """One line on stderr (the report owns stdout)."""
    sys.stderr.write(message + "\n")


def add_scan_options(p: argparse.ArgumentParser, *, keep: bool = True) -> None:
    """The provenance options shared by ``scan`` and ``verify``."""
    g = p.add_argument_group("provenance")
    g.add_argument("--hf", metavar="ORG/NAME", help="verify every file against this Hub repo")
    g.add_argument("--revision", help="branch, tag or commit (default main; pin a commit)")
    g.add_argument("--repo-type", choices=("model", "dataset"), default="model")
    g.add_argument("--lock", type=Path, help="verify against this lock file (offline)")
    g.add_argument("--public-key", type=Path, help="verify model.sig with this EC public key")
    g.add_argument(
        "--certificate-chain",
        type=Path,
        action="append",
        default=[],
        help="verify model.sig with this certificate chain (repeatable)",
    )
    g.add_argument("--signature", type=Path, help="signature bundle (default: PATH/model.sig)")
    g.add_argument(
        "--require-signature", action="store_true", help="fail when the model is not signed"
    )
    if keep:
        g.add_argument(
            "--keep", type=Path, help="with hf://: keep the download here when the verdict passes"
        )


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``verify`` and ``lock``."""
    from supplychain.cli import _add_output_options

    verify = sub.add_parser("verify", help="scan and verify a directory against its source")
    verify.add_argument("paths", nargs=1, metavar="PATH")
    _add_output_options(verify)
    add_scan_options(verify, keep=False)
    verify.set_defaults(handler=cmd_verify)

    lock = sub.add_parser("lock", help="write a lock file of every file's size and sha256")
    lock.add_argument("path", type=Path, metavar="PATH")
    lock.add_argument("--hf", metavar="ORG/NAME", help="verify against this repo and record it")
    lock.add_argument("--revision")
    lock.add_argument("--repo-type", choices=("model", "dataset"), default="model")
    lock.add_argument("-o", "--output", type=Path, help="lock file (default PATH/supplychain.lock)")
    lock.set_defaults(handler=cmd_lock)


def options_from(args: argparse.Namespace) -> ProvenanceOptions:
    """Provenance options from parsed arguments."""
    from supplychain.provenance.verify import ProvenanceOptions

    return ProvenanceOptions(
        hf=getattr(args, "hf", None),
        revision=getattr(args, "revision", None),
        repo_type=getattr(args, "repo_type", "model"),
        lock=getattr(args, "lock", None),
        signature=getattr(args, "signature", None),
        public_key=getattr(args, "public_key", None),
        certificate_chain=tuple(getattr(args, "certificate_chain", ()) or ()),
        require_signature=bool(getattr(args, "require_signature", False)),
    )


def with_policy(options: ProvenanceOptions, policy: Policy) -> ProvenanceOptions:
    """Fill signature options the command line left unset from the policy's ``[signing]``."""
    from dataclasses import replace

    signing = policy.signing
    return replace(
        options,
        public_key=options.public_key or (Path(signing.public_key) if signing.public_key else None),
        certificate_chain=options.certificate_chain
        or tuple(Path(c) for c in signing.certificate_chain),
        require_signature=options.require_signature or signing.require,
    )


def _policy_signing(args: argparse.Namespace) -> bool:
    """The policy file asks for signature verification (a key, a chain or ``require``)."""
    from supplychain.cli import _load_policy

    signing = _load_policy(args).signing
    return bool(signing.public_key or signing.certificate_chain or signing.require)


def _asked(args: argparse.Namespace) -> bool:
    """Any provenance option given (read from ``args`` so a plain scan never imports verify)."""
    return any(
        getattr(args, name, None)
        for name in ("hf", "lock", "public_key", "certificate_chain", "signature")
    ) or bool(getattr(args, "require_signature", False))


def _auto(paths: list[str]) -> bool:
    """One directory that is an HF cache snapshot (or repo folder) or holds a lock file."""
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return False
    from supplychain.provenance import cache, lockfile

    root = Path(paths[0])
    if cache.SNAPSHOT_DIR.match(root.name) and (root / "snapshots").is_dir():
        return True  # an HF cache repo folder (its ref is resolved, or refused, in _run)
    return cache.find_snapshot(root) is not None or (root / lockfile.LOCK_NAME).is_file()


def scan_hook(args: argparse.Namespace) -> int | None:
    """Run ``scan`` through provenance when it applies; ``None`` lets the plain scan run."""
    paths = [str(p) for p in args.paths]
    if any(p.startswith(HF_SCHEME) for p in paths):
        return _scan_hf(args, paths)
    if getattr(args, "keep", None) is not None:
        raise ConfigError("--keep only applies to an hf:// target")
    if not (_asked(args) or _auto(paths) or _policy_signing(args)):
        return None
    return _run(args, options_from(args), "scan")


def cmd_verify(args: argparse.Namespace) -> int:
    """``supplychain verify PATH``: scan and verify against the sources given (one verdict)."""
    from supplychain.provenance import lockfile

    if not (_asked(args) or _auto([str(p) for p in args.paths]) or _policy_signing(args)):
        raise ConfigError(
            "nothing to verify against: give --hf ORG/NAME, --lock FILE, --public-key or "
            "--certificate-chain, or a directory that is an HF cache snapshot or holds "
            f"{lockfile.LOCK_NAME}"
        )
    return _run(args, options_from(args), "verify")


def _run(args: argparse.Namespace, options: ProvenanceOptions, command: str) -> int:
    from supplychain.cli import _check_output, _emit, _load_policy, _Progress
    from supplychain.provenance import cache
    from supplychain.provenance.verify import run_verify

    if len(args.paths) != 1 or not Path(args.paths[0]).is_dir():
        raise ConfigError("provenance verification needs exactly one directory")
    repo_dir = Path(args.paths[0])
    snapshot = cache.snapshot_of_repo_dir(repo_dir, options.revision)
    if snapshot is not None:  # an HF cache repo folder: verify the snapshot its ref names
        args.paths = [str(snapshot)]
    elif cache.SNAPSHOT_DIR.match(repo_dir.name) and (repo_dir / "snapshots").is_dir():
        raise ConfigError(f"{repo_dir}: no cached snapshot for {options.revision or 'main'}")
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    policy = _load_policy(args)
    options = with_policy(options, policy)
    _check_output(args.output)
    progress = _Progress(enabled=not args.quiet)
    try:
        report = run_verify(
            args.paths, options, policy, jobs=args.jobs, command=command, progress=progress
        )
    finally:
        progress.close()
    commit = dict(report.extra).get("provenance.commit")
    if commit and not args.quiet:
        _say(f"supplychain: verified against commit {commit} (pin it)")
    return _emit(report, args)


def parse_hf_target(text: str) -> tuple[str, str, str | None]:
    """``hf://[datasets/]ORG/NAME[@REV]`` → (repo type, repo id, revision)."""
    from supplychain.provenance import hub

    rest = text[len(HF_SCHEME) :]
    repo_type = "model"
    for prefix, kind in (("datasets/", "dataset"), ("models/", "model")):
        if rest.startswith(prefix):
            repo_type, rest = kind, rest[len(prefix) :]
    repo_id, _, rev = rest.partition("@")
    if not hub.REPO_ID.match(repo_id):
        raise ConfigError(f"not a Hub target (hf://ORG/NAME[@REV]): {text!r:.120}")
    return repo_type, repo_id, rev or None


def _scan_hf(args: argparse.Namespace, paths: list[str]) -> int:
    """Download into a quarantine directory pinned to the resolved commit, verify and scan it."""
    from supplychain.provenance import hub
    from supplychain.provenance.verify import ProvenanceOptions

    if len(paths) != 1:
        raise ConfigError("an hf:// target must be the only target")
    repo_type, repo_id, rev = parse_hf_target(paths[0])
    if args.hf and args.hf != repo_id:
        raise ConfigError("--hf names another repo than the hf:// target")
    rev = rev or args.revision
    try:
        snap = hub.resolve(repo_id, rev, repo_type=repo_type)
    except hub.HubError as exc:
        raise ConfigError(f"cannot resolve {paths[0]}: {exc}") from None
    quarantine = Path(tempfile.mkdtemp(prefix="supplychain-hf-"))
    try:
        dest = quarantine / repo_id.replace("/", "--")
        try:
            hub.download(repo_id, snap.commit, str(dest), repo_type=repo_type)
        except hub.HubError as exc:
            raise ConfigError(f"cannot download {paths[0]}: {exc}") from None
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        args.paths = [str(dest)]
        options = options_from(args)
        options = ProvenanceOptions(
            **{**_fields(options), "hf": repo_id, "revision": rev, "repo_type": repo_type}
        )
        code = _run(args, options, "scan")
        if not args.quiet:
            _say(f"supplychain: {repo_id} revision {rev or 'main'} = {snap.commit} (pin it)")
        if args.keep is not None:
            if code == 0:
                shutil.copytree(dest, args.keep, symlinks=True, dirs_exist_ok=False)
                _say(f"supplychain: kept in {args.keep}")
            else:
                _say("supplychain: not kept: the verdict did not pass")
        return code
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)


def _fields(options: ProvenanceOptions) -> dict[str, Any]:
    from supplychain.provenance.verify import ProvenanceOptions

    return {name: getattr(options, name) for name in ProvenanceOptions.__slots__}


def cmd_lock(args: argparse.Namespace) -> int:
    """``supplychain lock PATH [-o FILE]``: 0 written, 1 refused (directory ≠ commit), 2 error."""
    from supplychain.provenance import lockfile
    from supplychain.provenance.verify import LockRefused, ProvenanceOptions, create_lock

    root: Path = args.path
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    output = args.output or root / lockfile.LOCK_NAME
    options = ProvenanceOptions(hf=args.hf, revision=args.revision, repo_type=args.repo_type)
    try:
        text = create_lock(root, options, output)
    except LockRefused as exc:
        _say(f"supplychain: {exc}")
        return 1
    except (OSError, lockfile.LockError) as exc:
        raise ConfigError(f"cannot write lock file {output}: {exc}") from None
    count = text.count('"path"')
    _say(f"supplychain: locked {count} file(s) in {output}")
    return 0
