"""Fixtures for the server tests: a root with a clean and a malicious model, an app, a client."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient  # the [server] extra is part of the test extra

from supplychain.server.app import create_app
from supplychain.server.config import ServerConfig
from supplychain.server.scanning import make_scan

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_root(base: Path) -> Path:
    """``root/clean`` (benign model directory), ``root/evil.pkl`` (os.system pickle)."""
    root = base / "root"
    root.mkdir()
    shutil.copytree(SAMPLES / "benign", root / "clean")
    shutil.copy(SAMPLES / "malicious" / "reduce_os_system.pkl", root / "evil.pkl")
    (root / "empty").mkdir()
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)


class CountingScan:
    """The real scan function, counting calls and optionally held at a gate."""

    def __init__(self, config: ServerConfig, gate: threading.Event | None = None) -> None:
        from supplychain.server.metrics import Metrics

        self.real = make_scan(config, Metrics())
        self.gate = gate
        self.calls: list[Path] = []
        self.lock = threading.Lock()

    def __call__(self, path: Path) -> Any:
        with self.lock:
            self.calls.append(path)
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        return self.real(path)


@pytest.fixture
def make_client(
    root: Path,
) -> Iterator[Callable[..., tuple[TestClient, CountingScan]]]:
    """``make_client(gate=None, **config)`` → (entered TestClient, its CountingScan)."""
    opened: list[TestClient] = []
    gates: list[threading.Event] = []

    def make(gate: threading.Event | None = None, **kw: Any) -> tuple[TestClient, CountingScan]:
        kw.setdefault("token", TOKEN)
        config = ServerConfig(root=root, **kw)
        scan = CountingScan(config, gate)
        client = TestClient(create_app(config, scan=scan))
        client.__enter__()
        opened.append(client)
        if gate is not None:
            gates.append(gate)
        return client, scan

    yield make
    for gate in gates:
        gate.set()
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., tuple[TestClient, CountingScan]]) -> TestClient:
    return make_client()[0]


def review(
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    models: str | None = None,
    images: list[str] | None = None,
    kind: str = "Pod",
    operation: str = "CREATE",
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview for a Pod using ``models`` and ``images``."""
    annotations = {"supplychain/models": models} if models is not None else {}
    volumes = [
        {"name": f"model{i}", "image": {"reference": ref, "pullPolicy": "IfNotPresent"}}
        for i, ref in enumerate(images or [])
    ]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
            "name": "infer-0",
            "namespace": "ml",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:ml:deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": "infer-0", "annotations": annotations},
                "spec": {
                    "containers": [{"name": "srv", "image": "python:3.11-slim"}],
                    "volumes": volumes,
                },
            },
            "oldObject": None,
            "dryRun": False,
        },
    }
