"""The service layer: policy + flags → typed ``Settings`` → a scan → a judged ``Report``.

The CLI is a thin shell over these functions, and the coming server calls the same ones, so the
two can never drift. Each command is one function returning a ``Report``:

- ``run_scan``: every scanner (``supplychain scan``);
- ``run_data``: only the dataset analysis, with its typed ``DatasetOptions`` section
  (``supplychain data``);
- ``verify`` / ``sbom`` / ``deps`` will be further functions here with the same shape (settings
  in, report out) — the seam is ``scan_report`` plus a ``Settings`` carrying their sections.

A verdict cache sits between ``scan_report`` and the engine: its key is each file's sha256
plus ``Settings.fingerprint()`` (stored on the report as ``settings_fingerprint``); per-file
results are path-free (``engine.FileResult``), so one cached result serves every name. Pass it
as ``cache=`` to ``scan_report``/``run``/``run_scan``/``run_data``; the server calls
``run_scan(settings, paths, cache=VerdictCache.open(path))`` (``run_scan`` also takes
``(paths, policy)``). ``Report.cache_hits`` counts the files answered from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, overload

from scanners.dataset.common import DatasetOptions
from scanners.deps_options import DepsOptions
from supplychain.core.errors import ConfigError
from supplychain.core.model import Report, Rule
from supplychain.core.settings import Settings
from supplychain.engine import Executor_, ProgressCallback, ScanOptions, rules_for, scan_paths
from supplychain.policy import Policy, apply, check_rule_ids

if TYPE_CHECKING:
    from supplychain.cache import VerdictCache


def deps_options(policy: Policy) -> DepsOptions:
    """The dependency audit's settings section from the policy's ``[deps]`` table (the CLI has
    already folded its flags in); the endpoint falls back to ``SUPPLYCHAIN_OSV_URL``, then OSV."""
    import os

    from scanners.deps_options import OSV_DEFAULT_URL

    deps = policy.deps
    url = deps.osv_url or os.environ.get("SUPPLYCHAIN_OSV_URL") or OSV_DEFAULT_URL
    timeout = deps.timeout if deps.timeout is not None else DepsOptions().timeout
    return DepsOptions(
        online=deps.online, osv_url=url, require_hashes=deps.require_hashes, timeout=timeout
    )


def settings_from_policy(
    policy: Policy,
    *,
    command: str = "scan",
    scanners: tuple[type[object], ...] | None = None,
    sections: Sequence[object] = (),
) -> Settings:
    """The per-file settings a policy implies (fail-on, strict and ignores stay in the policy)."""
    deps = deps_options(policy)
    if deps != DepsOptions() and not any(isinstance(s, DepsOptions) for s in sections):
        sections = (*sections, deps)  # the default section is left out: same fingerprint
    return Settings(
        limits=policy.limits,
        allow_imports=policy.allow_imports,
        scanners=scanners,
        sections=tuple(sections),
        command=command,
    )


def data_settings(
    policy: Policy,
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    id_field: str | None = None,
    checks: frozenset[str] | None = None,
) -> Settings:
    """Settings for ``supplychain data``: the dataset scanner alone, with its typed section."""
    try:
        from scanners.dataset.runner import DATASET_CHECKS, DatasetScanner
    except ImportError as exc:
        raise ConfigError(f"dataset analysis is not available: {exc}") from None
    if checks is not None:
        known = frozenset(c.name for c in DATASET_CHECKS)
        unknown = checks - known
        if unknown:
            choices = ", ".join(sorted(known))
            raise ConfigError(
                f"unknown check(s) {', '.join(sorted(unknown))} (choose from {choices})"
            )
    section = DatasetOptions(
        text_field=text_field, label_field=label_field, id_field=id_field, checks=checks
    )
    return settings_from_policy(
        policy, command="data", scanners=(DatasetScanner,), sections=(section,)
    )


def scan_options(settings: Settings, *, jobs: int = 1, executor: Executor_ = "auto") -> ScanOptions:
    """The engine's options for ``settings`` (how to run: jobs and executor are not settings)."""
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    dataset = settings.section(DatasetOptions) or DatasetOptions()
    return ScanOptions(
        limits=settings.limits,
        extra_allowed_imports=settings.allow_imports,
        jobs=jobs,
        scanners=settings.scanners,  # type: ignore[arg-type]
        command=settings.command,
        dataset=dataset,
        sections=settings.sections,
        executor=executor,
    )


def all_rules() -> tuple[Rule, ...]:
    """Every rule any built-in scanner, report-level check, provenance or the engine can emit."""
    from scanners import BUILTIN_SCANNERS
    from supplychain.checks import BUILTIN_REPORT_CHECKS
    from supplychain.provenance.rules import ALL_RULES as PROVENANCE_RULES

    rules = {r.id: r for r in rules_for(BUILTIN_SCANNERS)}
    for check in BUILTIN_REPORT_CHECKS:
        for r in check.rules:
            rules.setdefault(r.id, r)
    for r in PROVENANCE_RULES:
        rules.setdefault(r.id, r)
    return tuple(sorted(rules.values(), key=lambda r: r.id))


def check_policy(policy: Policy, settings: Settings) -> None:
    """Reject a policy whose ignores name unknown rules (only loads the catalogue if needed)."""
    if not any(w.rule is not None for w in policy.ignores):
        return
    known = {r.id for r in all_rules()}
    if settings.scanners is not None:
        known |= {r.id for r in rules_for(settings.scanners)}  # type: ignore[arg-type]
    check_rule_ids(policy, known)


def scan_report(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    jobs: int = 1,
    executor: Executor_ = "auto",
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report:
    """Scan ``paths`` with ``settings``: an unjudged report carrying the settings fingerprint.

    With ``cache``, unchanged files are answered from the verdict cache (``supplychain.cache``).
    """
    fingerprint = settings.fingerprint()
    options = scan_options(settings, jobs=jobs, executor=executor)
    options = replace(options, cache=cache, fingerprint=fingerprint)
    report = scan_paths(paths, options, progress)
    return replace(report, settings_fingerprint=fingerprint)


def run(
    paths: Sequence[str | Path],
    settings: Settings,
    policy: Policy,
    *,
    jobs: int = 1,
    executor: Executor_ = "auto",
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report:
    """Check the policy against the settings, scan, and judge: the report with its verdict."""
    check_policy(policy, settings)
    report = scan_report(
        paths, settings, jobs=jobs, executor=executor, progress=progress, cache=cache
    )
    return apply(report, policy)


@overload
def run_scan(
    paths: Sequence[str | Path],
    policy: Policy | None = None,
    /,
    *,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report: ...
@overload
def run_scan(
    settings: Settings,
    paths: Sequence[str | Path],
    /,
    *,
    policy: Policy | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report: ...
def run_scan(
    first: Sequence[str | Path] | Settings,
    second: Sequence[str | Path] | Policy | None = None,
    /,
    *,
    policy: Policy | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report:
    """``supplychain scan``: ``run_scan(paths, policy)`` (every built-in scanner, settings from
    the policy) or ``run_scan(settings, paths, policy=...)`` (the server: settings it built);
    judged by ``policy`` (default policy)."""
    if isinstance(first, Settings):
        if second is None or isinstance(second, Policy):
            raise TypeError("run_scan(settings, paths): paths missing")
        judged = policy or Policy()
        return run(second, first, judged, jobs=jobs, progress=progress, cache=cache)
    if isinstance(second, Policy):
        policy = second
    elif second is not None:
        raise TypeError("run_scan(paths, policy): the second argument must be a Policy")
    judged = policy or Policy()
    return run(
        first, settings_from_policy(judged), judged, jobs=jobs, progress=progress, cache=cache
    )


def run_data(
    paths: Sequence[str | Path],
    policy: Policy | None = None,
    *,
    options: DatasetOptions | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    cache: VerdictCache | None = None,
) -> Report:
    """``supplychain data``: the dataset analysis with ``options``, judged by ``policy``."""
    policy = policy or Policy()
    opts = options or DatasetOptions()
    settings = data_settings(
        policy,
        text_field=opts.text_field,
        label_field=opts.label_field,
        id_field=opts.id_field,
        checks=opts.checks,
    )
    return run(paths, settings, policy, jobs=jobs, progress=progress, cache=cache)


def run_data_distributed(
    paths: Sequence[str | Path],
    settings: Settings,
    policy: Policy,
    *,
    engine: str = "ray",
    address: str | None = None,
    workers: int = 2,
) -> Report:
    """``supplychain data --engine ray``: the same checks and report model, run as jobs of a
    distributed engine (``supplychain.distributed``); ``address`` or the engine's environment
    names an existing cluster, else a local one is started for the run."""
    import datetime

    from supplychain.core import __version__
    from supplychain.core.model import Finding

    check_policy(policy, settings)
    if engine != "ray":
        raise ConfigError(f"unknown engine {engine!r} (choose from local, ray)")
    from supplychain.distributed.ray_engine import run_dataset_on_ray

    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    got = run_dataset_on_ray(
        [str(p) for p in paths], settings, address=address, num_workers=workers
    )
    report = Report(
        tool_version=__version__,
        target=tuple(str(p) for p in paths),
        started_at=started_at,
        seconds=round(got.seconds, 3),
        files=tuple(sorted(got.files, key=lambda r: (r.path, r.member))),
        findings=tuple(sorted(got.findings, key=Finding.sort_key)),
        results=got.results,
        rules=rules_for(settings.scanners or ()),  # type: ignore[arg-type]
        command="data",
        facts=got.facts,
        settings_fingerprint=settings.fingerprint(),
    )
    return apply(report, policy)


def run_deps(
    paths: Sequence[str | Path],
    policy: Policy | None = None,
    *,
    options: DepsOptions | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
) -> Report:
    """``supplychain deps``: the requirements scanner and the dependency audit only, over the
    requirement files under ``paths`` (nothing else is read), judged by ``policy``.

    ``options`` default to the policy's ``[deps]`` with the lookup on (``deps`` is online unless
    told ``--offline``, which the CLI passes as ``options``)."""
    from scanners.deps_options import is_requirements_path
    from scanners.requirements_scan import RequirementsScanner
    from supplychain.deps.audit import DependencyAudit

    policy = policy or Policy()
    opts = options if options is not None else replace(deps_options(policy), online=True)
    settings = settings_from_policy(
        policy, command="deps", scanners=(RequirementsScanner,), sections=(opts,)
    )
    check_policy(policy, settings)
    run_options = replace(
        scan_options(settings, jobs=jobs),
        report_checks=(DependencyAudit,),
        select=is_requirements_path,  # weights are never read: only requirement files
    )
    report = scan_paths(paths, run_options, progress)
    report = replace(report, settings_fingerprint=settings.fingerprint())
    return apply(report, policy)


__all__ = [
    "all_rules",
    "check_policy",
    "data_settings",
    "run",
    "run_data",
    "run_data_distributed",
    "run_deps",
    "run_scan",
    "scan_options",
    "scan_report",
    "settings_from_policy",
]
