"""The server's scan function and how a judged report becomes a model verdict.

One policy and one settings object for the life of the server (loaded at start-up, so a bad
policy stops the server instead of failing every request), the shared verdict cache when
``--cache`` is given, and ``judge``: pass only when the policy passed AND something was analysed
(an empty directory or a model nothing could read is never admitted).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supplychain.core.model import Report
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
    from supplychain.policy import Policy, load_policy

    policy = load_policy(config.policy_path) if config.policy_path else Policy()
    settings = service.settings_from_policy(policy)
    service.check_policy(policy, settings)
    cache_kw = _cache_kwargs(config)
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


def _cache_kwargs(config: ServerConfig) -> dict[str, Any]:
    """``cache=`` for ``service.run`` once the verdict cache exists (issue #15, cache part)."""
    if config.cache_path is None:
        return {}
    from supplychain import service

    if "cache" not in inspect.signature(service.run).parameters:
        from supplychain.core.errors import ConfigError

        raise ConfigError("--cache: this build has no verdict cache")
    from supplychain.cache import VerdictCache  # type: ignore[import-not-found,unused-ignore]

    return {"cache": VerdictCache.open(config.cache_path)}


def _cache_hits(report: Report) -> int:
    """Files the verdict cache answered (``Report.cache_hits`` once the cache exists)."""
    hits = getattr(report, "cache_hits", 0)
    return hits if isinstance(hits, int) else 0
