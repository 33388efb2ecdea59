"""Provenance orchestration: the scanned file records in, findings and per-file states out.

``verify_dir`` takes the directory and the engine's records (path, size, sha256 of the scanned
bytes) and checks them against every source asked for: a Hub commit (``--hf``), a lock file
(``--lock`` or ``supplychain.lock`` beside the model), an HF cache snapshot (recognised by its
layout, verified offline) and a model-signing bundle. ``attach`` adds the result to a report:
findings, the PRV rules, and per-file states as facts (``provenance.state`` / ``.expected`` /
``.actual`` / ``.algorithm`` / ``.reason``) so the JSON report and the AI-BOM can mark hashes as
verified. ``run_verify`` is the service function: scan, verify, judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from supplychain.core.model import Confidence, Fact, Finding, Location, Report, Rule, Severity
from supplychain.policy import Policy, apply
from supplychain.provenance import cache, hub, identity, lockfile, signing
from supplychain.provenance.manifest import Comparison, FileState, compare, local_files
from supplychain.provenance.rules import (
    ALL_RULES,
    PRV105,
    PRV106,
    PRV107,
    PRV108,
    PRV109,
    PRV110,
    PRV111,
)

if TYPE_CHECKING:
    from supplychain.engine import ProgressCallback

SCANNER = "provenance"


@dataclass(frozen=True, slots=True)
class ProvenanceOptions:
    """What to verify against (every field optional; a cache snapshot is always recognised)."""

    hf: str | None = None
    revision: str | None = None
    repo_type: str = "model"
    lock: Path | None = None
    auto_lock: bool = True
    """Use ``supplychain.lock`` found beside the model when ``lock`` is not given."""
    signature: Path | None = None
    public_key: Path | None = None
    certificate_chain: tuple[Path, ...] = ()
    require_signature: bool = False
    token: str | None = None
    timeout: float = hub.DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Verification:
    """Everything provenance adds to a report."""

    findings: tuple[Finding, ...] = ()
    states: tuple[FileState, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    commit: str | None = None


def _f(rule: Rule, path: str, message: str, evidence: str = "", sev: object = None) -> Finding:
    from supplychain.core.model import Severity

    return Finding(
        rule=rule.id,
        severity=sev if isinstance(sev, Severity) else rule.severity,
        confidence=Confidence.HIGH,
        message=message,
        location=Location(path=path),
        evidence=evidence,
    )


def _merge_states(into: dict[str, FileState], new: Sequence[FileState]) -> None:
    """Worst state wins per path (a mismatch against any source is a mismatch)."""
    rank = {"verified": 0, "extra": 2, "unverifiable": 1, "missing": 3, "mismatch": 4}
    for s in new:
        old = into.get(s.path)
        if old is None or rank.get(s.state, 1) > rank.get(old.state, 1):
            into[s.path] = s


def _hf_scan_findings(snap: hub.HubSnapshot, status: hub.FileStatus | str) -> list[Finding]:
    """HF's scan verdicts as corroborating findings; anything not scanned is unknown."""
    out: list[Finding] = []
    per_file = status.status if isinstance(status, hub.FileStatus) else status
    sec = snap.security
    levels: dict[str, str] = {}
    issues = sec.get("filesWithIssues", []) if isinstance(sec, dict) else []
    for item in issues if isinstance(issues, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            levels[item["path"]] = str(item.get("level", ""))
    if isinstance(per_file, dict):
        for path, status in per_file.items():
            if status in ("unsafe", "caution"):
                levels.setdefault(path, status)
    for path, level in sorted(levels.items()):
        sev = Severity.HIGH if level == "unsafe" else Severity.MEDIUM
        out.append(_f(PRV108, path, f"Hugging Face marks {path} {level!r}", level, sev))
    if sec is None or sec.get("scansDone") is not True:
        out.append(_f(PRV109, ".", "Hugging Face's scan is not done: unknown, not clean"))
    elif isinstance(per_file, str):
        out.append(_f(PRV109, ".", f"per-file scan status unavailable ({per_file}): unknown"))
    else:
        unscanned = sorted(p for p, s in per_file.items() if s not in ("safe", "unsafe", "caution"))
        if unscanned:
            msg = f"{len(unscanned)} file(s) not scanned by Hugging Face: unknown, not clean"
            out.append(_f(PRV109, ".", msg, ", ".join(unscanned)))
    return out


def _hub_findings(snap: hub.HubSnapshot, per_file: hub.FileStatus | str) -> list[Finding]:
    out: list[Finding] = []
    if snap.revision.lower() != snap.commit:
        msg = f"revision {snap.revision!r} is a moving name; it resolved to commit {snap.commit}"
        out.append(_f(PRV105, ".", msg, snap.commit))
    for flag, on in (
        ("private", snap.private),
        ("gated", bool(snap.gated)),
        ("disabled", snap.disabled),
    ):
        if on:
            out.append(_f(PRV107, ".", f"{snap.repo_id} is {flag} on the Hub", flag))
    if snap.repo_type == "model":
        out.extend(_hf_scan_findings(snap, per_file))
    owner = snap.repo_id.split("/", 1)[0]
    imitated = identity.near_miss(owner)
    if imitated is not None:
        out.append(_f(PRV110, ".", f"owner {owner!r} is a near miss of {imitated!r}", imitated))
    changed = snap.last_modified
    if isinstance(per_file, hub.FileStatus) and per_file.latest_change is not None:
        changed = per_file.latest_change  # this revision's newest file commit, not the repo head
    if identity.fresh_commit(snap.created_at, changed):
        created = f"{snap.created_at:%Y-%m-%d}"
        msg = f"commit {snap.commit[:12]} changed files days ago in a repo created {created}"
        out.append(_f(PRV111, ".", msg, str(changed)))
    return out


def verify_dir(root: Path, records: Sequence[object], options: ProvenanceOptions) -> Verification:
    """Verify the directory ``root`` (whose scan produced ``records``) against ``options``."""
    from supplychain.core.model import ArtifactRecord

    recs = [r for r in records if isinstance(r, ArtifactRecord)]
    local = local_files(root, recs)
    findings: list[Finding] = []
    states: dict[str, FileState] = {}
    extra: list[tuple[str, str]] = []
    commit: str | None = None
    hub_manifest = None
    sig_name = (options.signature or root / signing.SIGNATURE_NAME).name
    ignore = (lockfile.LOCK_NAME, sig_name)

    snap_dir = cache.find_snapshot(root)
    if snap_dir is not None:
        got = cache.verify_snapshot(snap_dir, local)
        findings.extend(got.findings)
        _merge_states(states, got.states)
        extra.append(("provenance.cache", f"{snap_dir.repo_id}@{snap_dir.commit}"))
        commit = snap_dir.commit

    if options.hf:
        try:
            snap = hub.resolve(
                options.hf,
                options.revision,
                repo_type=options.repo_type,
                token=options.token,
                timeout=options.timeout,
            )
        except hub.HubError as exc:
            msg = f"could not verify against {options.hf}@{options.revision or 'main'}: {exc}"
            findings.append(_f(PRV106, ".", msg, exc.kind))
            for path in sorted(local):
                _merge_states(states, [FileState(path, "unverifiable", reason=f"hub: {exc.kind}")])
        else:
            commit = snap.commit
            hub_manifest = snap.manifest
            per_file: hub.FileStatus | str = "datasets have no scan status"
            if snap.repo_type == "model":
                try:
                    per_file = hub.file_scan_status(
                        snap, token=options.token, timeout=options.timeout
                    )
                except hub.HubError as exc:
                    per_file = exc.kind
            findings.extend(_hub_findings(snap, per_file))
            got = compare(snap.manifest, local, ignore=ignore)
            findings.extend(got.findings)
            _merge_states(states, got.states)
            extra += [
                ("provenance.repo", f"{snap.repo_type}:{snap.repo_id}"),
                ("provenance.revision", snap.revision),
                ("provenance.commit", snap.commit),
                ("provenance.endpoint", snap.endpoint),
            ]

    lock_path = options.lock
    if lock_path is None and options.auto_lock and (root / lockfile.LOCK_NAME).is_file():
        lock_path = root / lockfile.LOCK_NAME
    if lock_path is not None:
        try:
            manifest = lockfile.read(lock_path)
        except lockfile.LockError as exc:
            findings.append(_f(PRV106, ".", f"lock file unusable: {exc}", lock_path.name))
        else:
            got = compare(manifest, local, ignore=ignore)
            findings.extend(got.findings)
            _merge_states(states, got.states)
            extra.append(("provenance.lock", str(lock_path.name)))

    findings.extend(
        signing.verify(
            root,
            local,
            signature=options.signature,
            public_key=options.public_key,
            certificate_chain=options.certificate_chain,
            require=options.require_signature,
            hub=hub_manifest,
        )
    )
    return Verification(
        tuple(findings), tuple(states[p] for p in sorted(states)), tuple(extra), commit
    )


def state_facts(states: Sequence[FileState]) -> tuple[Fact, ...]:
    """Per-file verification states as facts (the JSON report's per-file provenance)."""
    out: list[Fact] = []
    for s in states:
        loc = Location(path=s.path)
        out.append(Fact("provenance.state", s.state, loc, SCANNER))
        for key, value in (
            ("algorithm", s.algorithm),
            ("expected", s.expected),
            ("actual", s.actual),
            ("reason", s.reason),
        ):
            if value:
                out.append(Fact(f"provenance.{key}", value, loc, SCANNER))
    return tuple(out)


def attach(report: Report, verification: Verification) -> Report:
    """The report with the verification's findings, PRV rules, states and source facts added."""
    rules = {r.id: r for r in (*report.rules, *ALL_RULES)}
    findings = sorted((*report.findings, *verification.findings), key=Finding.sort_key)
    facts = sorted((*report.facts, *state_facts(verification.states)), key=Fact.sort_key)
    return replace(
        report,
        findings=tuple(findings),
        rules=tuple(sorted(rules.values(), key=lambda r: r.id)),
        facts=tuple(facts),
        extra=(*report.extra, *verification.extra),
    )


def verification_root(paths: Sequence[str | Path]) -> Path | None:
    """The directory a scan's records are relative to (one directory target), else ``None``."""
    if len(paths) != 1:
        return None
    root = Path(paths[0])
    return root if root.is_dir() else None


def run_verify(
    paths: Sequence[str | Path],
    options: ProvenanceOptions,
    policy: Policy | None = None,
    *,
    jobs: int = 1,
    command: str = "verify",
    progress: ProgressCallback | None = None,
) -> Report:
    """Scan ``paths`` (one directory), verify its provenance, and judge it: one report."""
    from supplychain import service
    from supplychain.core.errors import ConfigError

    policy = policy or Policy()
    root = verification_root(paths)
    if root is None:
        raise ConfigError("provenance verification needs exactly one directory")
    settings = service.settings_from_policy(policy, command=command)
    service.check_policy(policy, settings)
    report = service.scan_report(paths, settings, jobs=jobs, progress=progress)
    report = attach(report, verify_dir(root, report.files, options))
    return apply(report, policy)


__all__ = [
    "Comparison",
    "ProvenanceOptions",
    "Verification",
    "attach",
    "run_verify",
    "state_facts",
    "verify_dir",
]


class LockRefused(Exception):
    """``supplychain lock --hf`` found the directory does not match the commit."""


def create_lock(root: Path, options: ProvenanceOptions, output: Path | None = None) -> str:
    """The lock text for the directory ``root`` (and write it to ``output`` when given).

    With ``options.hf`` the directory is verified against the commit first, and the lock records
    the repo and commit; a directory that does not match (or a Hub that cannot be asked) is
    refused, so a lock never pins bytes the publisher did not release.
    """
    if not root.is_dir():
        raise LockRefused(f"{root} is not a directory")
    local = local_files(root)
    source: dict[str, str] | None = None
    snapshot = cache.find_snapshot(root)
    if options.hf or snapshot is not None:
        got = verify_dir(root, (), replace(options, lock=None, auto_lock=False))
        bad = [f for f in got.findings if f.severity >= Severity.HIGH]
        if bad:
            shown = "; ".join(f"{f.rule} {f.location.path}: {f.message}" for f in bad[:5])
            raise LockRefused(f"not locking: {len(bad)} problem(s) against the source: {shown}")
        assert got.commit is not None
        if options.hf:
            source = {
                "repo": options.hf,
                "repo_type": options.repo_type,
                "commit": got.commit,
                "revision": options.revision or "main",
            }
        elif snapshot is not None:  # an HF cache snapshot names its repo and commit
            source = {
                "repo": snapshot.repo_id,
                "repo_type": snapshot.repo_type,
                "commit": snapshot.commit,
                "revision": snapshot.commit,
            }
    if output is not None and output.parent.resolve() == root.resolve():
        local.pop(output.name, None)
    text = lockfile.render(local, source)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    return text
