"""``supplychain scan --engine ray``: the engine's per-file work as Ray tasks, same report, and
the verdict cache still answers unchanged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supplychain import service
from supplychain.cache import VerdictCache
from supplychain.core.model import Report
from supplychain.formats import FORMATS
from supplychain.policy import Policy

pytestmark = pytest.mark.ray

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _doc(report: Report) -> dict[str, object]:
    import io

    out = io.StringIO()
    FORMATS["json"].render(report, out)
    doc = json.loads(out.getvalue())
    for key in ("started_at", "seconds", "timings"):
        doc.pop(key, None)
    for outcome in doc["outcomes"]:  # type: ignore[attr-defined]
        outcome.pop("seconds", None)  # how long each scanner took
    return doc


def _run(executor: str, cache: VerdictCache | None = None) -> Report:
    policy = Policy()
    settings = service.settings_from_policy(policy)
    return service.run(
        [SAMPLES],
        settings,
        policy,
        jobs=2,
        executor=executor,
        cache=cache,  # type: ignore[arg-type]
    )


def test_scan_on_ray_equals_a_local_scan(cluster: str) -> None:
    local = _run("serial")
    distributed = _run("ray")
    assert len(local.files) > 20 and local.findings
    assert _doc(distributed) == _doc(local)
    assert distributed.verdict is not None and not distributed.verdict.passed


def test_scan_on_ray_fills_and_reads_the_verdict_cache(cluster: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with VerdictCache.open(path) as cache:
        first = _run("ray", cache)
    with VerdictCache.open(path) as cache:
        second = _run("ray", cache)
    assert first.cache_hits == 0
    assert second.cache_hits > 0.5 * len(second.files)
    assert _doc(second) == _doc(first)
