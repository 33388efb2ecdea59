"""The server's scan function and how a judged report becomes a model verdict.

One policy and one settings object for the life of the server (loaded at start-up, so a bad
policy stops the server instead of failing every request), the shared verdict cache when
``--cache`` is given, and ``judge``: pass only when the policy passed AND something was analysed
(an empty directory or a model nothing could read is never admitted).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supplychain.core.model import Report
from supplychain.policy import Policy
from supplychain.server.config import ServerConfig
from supplychain.server.metrics import Metrics

if TYPE_CHECKING:
    from supplychain.server.state import ScanFn

MAX_RULES_IN_REASON = 8


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    passed: bool
    reason: str
    rules: tuple[str, ...] = ()


def judge(report: Report) -> ModelVerdict:
    """Pass/fail of one scanned model with the rules (and severities) that failed it."""
    from supplychain.policy import analysed_files

    verdict = report.verdict
    if verdict is None:
        return ModelVerdict(False, "the policy was not evaluated")
    if verdict.passed:
        if analysed_files(report) == 0:
            return ModelVerdict(False, "nothing in it could be analysed")
        return ModelVerdict(True, "passed")
    worst: dict[str, str] = {}
    for f in report.findings:
        if f.suppressed is None and f.severity >= verdict.fail_on:
            worst.setdefault(f.rule, f.severity.label)
    rules = tuple(sorted(worst))
    parts = [f"{r} ({worst[r]})" for r in rules[:MAX_RULES_IN_REASON]]
    if len(rules) > MAX_RULES_IN_REASON:
        parts.append(f"+{len(rules) - MAX_RULES_IN_REASON} more")
    failed = [r for r in report.results if r.status.value == "failed"]
    if failed:
        parts.append(f"{len(failed)} file(s) could not be analysed")
    if not parts:
        parts = list(verdict.reasons[:3]) or ["the policy failed"]
    return ModelVerdict(False, "blocked: " + ", ".join(parts), rules)


def make_scan(config: ServerConfig, metrics: Metrics) -> ScanFn:
    """The function workers run: scan one resolved path with the server's policy (and cache)."""
    from supplychain import service
    from supplychain.policy import load_policy

    policy = load_policy(config.policy_path) if config.policy_path else Policy()
    settings = service.settings_from_policy(policy)
    service.check_policy(policy, settings)
    cache_kw = _cache_kwargs(config, policy)
    lock = threading.Lock()

    def scan(path: Path) -> Report:
        try:
            report = service.run([path], settings, policy, jobs=1, **cache_kw)
        except Exception:
            metrics.inc("supplychain_scans_total", outcome="error")
            raise
        passed = judge(report).passed
        metrics.inc("supplychain_scans_total", outcome="pass" if passed else "fail")
        hits = _cache_hits(report)
        if hits:
            with lock:
                metrics.inc("supplychain_cache_hits_total", hits)
        return report

    return scan


def _cache_kwargs(config: ServerConfig, policy: Policy) -> dict[str, Any]:
    """``cache=`` for ``service.run``: ``--cache`` > ``SUPPLYCHAIN_CACHE`` > policy ``[cache]``.

    Opened and checked once at start-up: a corrupt, foreign or locked cache stops the server
    (exit 2) instead of failing, or worse passing, every request.
    """
    from supplychain.cache import DEFAULT_TIMEOUT, VerdictCache, resolve_path

    path = resolve_path(config.cache_path, no_cache=False, policy_path=policy.cache.path)
    if path is None:
        return {}
    timeout = policy.cache.timeout if policy.cache.timeout is not None else DEFAULT_TIMEOUT
    return {"cache": VerdictCache.open(path, timeout=timeout)}


def _cache_hits(report: Report) -> int:
    """Files the verdict cache answered."""
    return report.cache_hits
