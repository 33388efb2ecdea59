"""Schemathesis against the published ``/openapi.json``: no 5xx, and the token always enforced.

Every operation is called twice per generated case: with the token (any answer but a server
error), and with a wrong token (401 everywhere but ``/healthz``, and nothing scanned).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from supplychain.server.app import create_app
from supplychain.server.config import ServerConfig
from tests.server.conftest import AUTH, TOKEN, CountingScan, make_root

WRONG = {"Authorization": "Bearer " + "w" * len(TOKEN)}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    root = make_root(tmp_path_factory.mktemp("openapi"))
    config = ServerConfig(root=root, token=TOKEN, max_upload=64 * 1024, admission_budget=5.0)
    scan = CountingScan(config)
    application = create_app(config, scan=scan)
    application.state.counting = scan
    yield application
    application.state.supplychain.queue.shutdown()


def _check(case: schemathesis.Case, app: FastAPI) -> None:
    counting = app.state.counting
    before = len(counting.calls)
    denied = case.call(headers=WRONG)
    if case.path == "/healthz":
        assert denied.status_code == 200
    else:
        assert denied.status_code == 401, (case.method, case.path, denied.status_code)
        assert len(counting.calls) == before, "a request without the token ran a scan"
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if case.path == "/v1/admission" and response.status_code == 200:
        _check_admission(case.body, response.json()["response"])


def _check_admission(body: Any, answer: dict[str, Any]) -> None:
    """Same uid; a Pod is admitted only if every model is the clean one (the store is empty)."""
    request = body["request"]
    assert answer["uid"] == request["uid"]
    kind = request["kind"]
    if not answer["allowed"] or kind.get("kind") != "Pod" or kind.get("group") != "":
        return
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return
    pod = request.get("object") or {}
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get("supplychain/models", "")
    models = {m.strip() for m in raw.split(",") if m.strip()}
    assert models <= {"clean", "clean/", "./clean"}, models
    volumes = (pod.get("spec") or {}).get("volumes") or []
    assert not [v for v in volumes if isinstance(v, dict) and v.get("image")], volumes


def test_no_server_error_and_auth_always_enforced(app: FastAPI) -> None:
    # NOTE: schemathesis' pytest plugin does not run under this pytest; its strategies do.
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    seen = []
    for result in api.get_all_operations():
        operation = result.ok()
        seen.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def run(case: schemathesis.Case) -> None:
            _check(case, app)

        run()
    assert {"POST /v1/scan", "POST /v1/admission", "GET /metrics", "GET /healthz"} <= set(seen)


def test_openapi_publishes_routes_and_bearer_scheme(app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/docs").status_code == 404
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert {"/healthz", "/metrics", "/v1/scan", "/v1/admission"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    scan_body = doc["paths"]["/v1/scan"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(scan_body)
