"""supplychain: ML supply-chain and data-poisoning inspector that never executes what it scans.

The public Python API (everything in ``__all__``; the rest of the package is internal)::

    import supplychain

    report = supplychain.scan(["./model"])            # default settings and policy
    report.verdict.passed, report.findings, report.facts

    settings = supplychain.Settings(allow_imports=frozenset({"mylab.*"}))
    report = supplychain.scan(["./model"], settings, policy=supplychain.Policy(strict=True))
    key = (report.files[0].sha256, report.settings_fingerprint)   # a verdict-cache key

``scan`` is the same service function the CLI calls; importing this package stays cheap (the
engine and scanners load on the first ``scan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from supplychain.core import __version__ as __version__
from supplychain.core.errors import ConfigError, SupplyChainError
from supplychain.core.limits import Limits
from supplychain.core.model import (
    ArtifactKind,
    ArtifactRecord,
    Confidence,
    Fact,
    Finding,
    Location,
    Report,
    Rule,
    ScanResult,
    Severity,
    Status,
    Verdict,
)
from supplychain.core.settings import Settings

if TYPE_CHECKING:
    from supplychain.policy import Policy


def scan(
    paths: Sequence[str | Path],
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    jobs: int = 1,
) -> Report:
    """Scan files and directories and judge them: a ``Report`` with its ``verdict`` set.

    ``settings`` decide what the scan finds (limits, allowed imports, scanners, sections);
    ``policy`` decides how the findings are judged (fail-on, strict, ignores) and defaults to the
    built-in policy. Never raises for hostile content (that is a finding); raises
    ``SupplyChainError`` for unusable targets or settings.
    """
    from supplychain import service
    from supplychain.policy import Policy

    judged_by = policy if policy is not None else Policy()
    chosen = settings if settings is not None else service.settings_from_policy(judged_by)
    return service.run(paths, chosen, judged_by, jobs=jobs)


def __getattr__(name: str) -> object:
    """``Policy`` is loaded on first use (keeps ``import supplychain`` light)."""
    if name == "Policy":
        from supplychain.policy import Policy

        return Policy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArtifactKind",
    "ArtifactRecord",
    "Confidence",
    "ConfigError",
    "Fact",
    "Finding",
    "Limits",
    "Location",
    "Policy",
    "Report",
    "Rule",
    "ScanResult",
    "Settings",
    "Severity",
    "Status",
    "SupplyChainError",
    "Verdict",
    "__version__",
    "scan",
]
