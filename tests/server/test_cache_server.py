"""The server shares the CLI's verdict cache: a re-scan answers from it; a bad cache stops it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from supplychain.core.errors import SupplyChainError
from supplychain.server.config import ServerConfig
from supplychain.server.metrics import Metrics
from supplychain.server.scanning import make_scan
from tests.server.conftest import AUTH, TOKEN, CountingScan

MakeClient = Callable[..., tuple[TestClient, CountingScan]]


def test_rescan_is_answered_from_the_cache(make_client: MakeClient, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    client, _ = make_client(cache_path=cache)
    time.sleep(2.2)  # the cache never trusts the identity of a file changed in the last 2 s
    first = client.post("/v1/scan", json={"path": "evil.pkl"}, headers=AUTH).json()
    second = client.post("/v1/scan", json={"path": "evil.pkl"}, headers=AUTH).json()
    assert first["timings"]["cache_hits"] == 0
    assert second["timings"]["cache_hits"] == 1
    assert second["verdict"] == first["verdict"] == "fail"
    assert [f["rule"] for f in second["findings"]] == [f["rule"] for f in first["findings"]]
    assert cache.stat().st_size > 0


def test_cache_metric_counts_hits(root: Path, tmp_path: Path) -> None:
    metrics = Metrics()
    scan = make_scan(
        ServerConfig(root=root, token=TOKEN, cache_path=tmp_path / "c.sqlite"), metrics
    )
    time.sleep(2.2)
    scan(root / "clean")
    scan(root / "clean")
    assert metrics.value("supplychain_cache_hits_total") >= 4
    assert metrics.value("supplychain_scans_total", outcome="pass") == 2


def test_corrupt_cache_stops_the_server(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a cache" * 500)
    with pytest.raises(SupplyChainError):
        make_scan(ServerConfig(root=root, token=TOKEN, cache_path=bad), Metrics())
    done = subprocess.run(
        [sys.executable, "-m", "supplychain", "serve", "--root", str(root), "--cache", str(bad)],
        env={"SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(bad) in done.stderr
