"""In-process route tests: auth, scans, path escapes, body caps, busy queue, token never logged."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from supplychain.server.config import ServerConfig
from tests.server.conftest import AUTH, SAMPLES, TOKEN, CountingScan

MakeClient = Callable[..., tuple[TestClient, CountingScan]]


# -- auth -------------------------------------------------------------------------------------
def test_healthz_is_open(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer ünïcödé".encode("latin-1")},
        {"X-ScannerAdapter-API-Key": TOKEN},
    ],
)
@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/metrics"), ("POST", "/v1/scan"), ("POST", "/v1/admission")]
)
def test_missing_or_wrong_token_is_401_and_runs_nothing(
    make_client: MakeClient, headers: dict[str, object], method: str, url: str
) -> None:
    client, scan = make_client()
    r = client.request(method, url, json={"path": "evil.pkl"}, headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in r.text
    assert scan.calls == []


def test_insecure_no_auth_serves_without_token(make_client: MakeClient) -> None:
    client, _ = make_client(token=None, insecure_no_auth=True)
    assert client.get("/metrics").status_code == 200


def test_config_refuses_no_token_and_short_token(root: Path) -> None:
    with pytest.raises(ValueError, match="token is required"):
        ServerConfig(root=root)
    with pytest.raises(ValueError, match="at least"):
        ServerConfig(root=root, token="short")
    assert TOKEN not in repr(ServerConfig(root=root, token=TOKEN))


def test_token_never_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, root: Path
) -> None:
    client, _ = make_client()
    # NOTE: the CLI sets the "supplychain" logger to WARNING when an earlier test ran main().
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="supplychain"):
        client.post("/v1/scan", json={"path": "clean"}, headers=AUTH)
        client.post(
            "/v1/scan", json={"path": "clean"}, headers={"Authorization": "Bearer " + "z" * 20}
        )
        client.post("/v1/admission", json={"x": 1}, headers=AUTH)
        metrics = client.get("/metrics", headers=AUTH).text
    assert caplog.records, "the server logged nothing"
    assert any(getattr(r, "fields", {}).get("status") == 401 for r in caplog.records)
    assert TOKEN not in caplog.text and "z" * 20 not in caplog.text
    assert TOKEN not in metrics


def test_json_log_lines_carry_no_token(caplog: pytest.LogCaptureFixture) -> None:
    from supplychain.server.logs import JsonFormatter

    rec = logging.LogRecord("supplychain.server", logging.INFO, "x", 1, "request", None, None)
    rec.fields = {"path": "/v1/scan", "status": 200}
    line = JsonFormatter().format(rec)
    assert '"path": "/v1/scan"' in line and '"level": "info"' in line


# -- scans ------------------------------------------------------------------------------------
def test_scan_clean_model_passes(client: TestClient) -> None:
    r = client.post("/v1/scan", json={"path": "clean"}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "pass"
    assert body["summary"]["files"] >= 4
    assert body["schema_version"] and body["settings_fingerprint"]


def test_scan_malicious_model_fails_with_cli_json(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/v1/scan", json={"path": "evil.pkl"}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "fail"
    assert "PKL001" in {f["rule"] for f in body["findings"]}
    # Same document as `supplychain scan --format json` (up to times and paths).
    from supplychain.cli import main

    out = tmp_path / "cli.json"
    assert (
        main(
            [
                "scan",
                "-q",
                "-f",
                "json",
                "-o",
                str(out),
                str(SAMPLES / "malicious" / "reduce_os_system.pkl"),
            ]
        )
        == 1
    )
    import json

    cli = json.loads(out.read_text())
    assert set(cli) == set(body)
    assert [f["rule"] for f in cli["findings"]] == [f["rule"] for f in body["findings"]]


@pytest.mark.parametrize(
    "bad",
    [
        "../outside",
        "clean/../../outside",
        "/etc/passwd",
        "link-out",
        "link-out/secret.pkl",
        "%2e%2e/outside",
        "%2E%2E%2Foutside",
        "clean\x00.pkl",
        "..\\outside",
        "C:/Windows",
        "",
        "a" * 5000,
    ],
)
def test_path_escapes_are_400_and_never_scanned(
    make_client: MakeClient, root: Path, bad: str
) -> None:
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.pkl").write_bytes(
        (SAMPLES / "malicious" / "reduce_os_system.pkl").read_bytes()
    )
    if not (root / "link-out").exists():
        os.symlink(outside, root / "link-out")
    client, scan = make_client()
    r = client.post("/v1/scan", json={"path": bad}, headers=AUTH)
    assert r.status_code == 400, r.text
    assert "path refused" in r.json()["error"]
    assert scan.calls == []


@pytest.mark.parametrize("body", [{"path": 3}, {"path": ["a"]}, {"paths": "clean"}, ["clean"], {}])
def test_scan_body_shape_is_400(client: TestClient, body: object) -> None:
    assert client.post("/v1/scan", json=body, headers=AUTH).status_code == 400


def test_scan_not_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/scan", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_missing_path_is_404(client: TestClient) -> None:
    assert client.post("/v1/scan", json={"path": "nope.bin"}, headers=AUTH).status_code == 404


def test_link_inside_root_is_scanned(client: TestClient, root: Path) -> None:
    os.symlink(root / "evil.pkl", root / "alias.bin")
    r = client.post("/v1/scan", json={"path": "alias.bin"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["verdict"] == "fail"


# -- uploads ----------------------------------------------------------------------------------
def test_upload_is_scanned_then_deleted(make_client: MakeClient, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    client, _ = make_client(upload_dir=spool)
    data = (SAMPLES / "malicious" / "reduce_os_system.pkl").read_bytes()
    r = client.post("/v1/scan", files={"file": ("../../x.pkl", data)}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "fail" and "PKL001" in {f["rule"] for f in body["findings"]}
    assert list(spool.iterdir()) == []
    r = client.post(
        "/v1/scan",
        files={"file": ("ok.safetensors", (SAMPLES / "benign" / "model.safetensors").read_bytes())},
        headers=AUTH,
    )
    assert r.json()["verdict"] == "pass"
    assert list(spool.iterdir()) == []


def test_upload_over_cap_is_413(make_client: MakeClient, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    client, scan = make_client(max_upload=100_000, upload_dir=spool)
    r = client.post("/v1/scan", files={"file": ("big.bin", b"\0" * 300_000)}, headers=AUTH)
    assert r.status_code == 413
    assert scan.calls == [] and list(spool.iterdir()) == []


def test_streamed_body_over_cap_is_413_without_content_length(
    make_client: MakeClient, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    client, scan = make_client(max_upload=100_000, upload_dir=spool)
    boundary = "xyzzy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(40):
            yield b"\1" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        "/v1/scan",
        content=chunks(),
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413
    assert scan.calls == [] and list(spool.iterdir()) == []


def test_json_body_over_cap_is_413(make_client: MakeClient) -> None:
    client, _ = make_client(max_body=1000)
    r = client.post("/v1/admission", content=b"{" + b" " * 5000 + b"}", headers=AUTH)
    assert r.status_code == 413


def test_multipart_without_file_part_is_400(client: TestClient) -> None:
    r = client.post("/v1/scan", data={"path": "clean"}, files={"other": ("a", b"x")}, headers=AUTH)
    assert r.status_code == 400


# -- busy ---------------------------------------------------------------------------------------
def test_full_queue_is_503_with_retry_after(make_client: MakeClient) -> None:
    gate = threading.Event()
    client, scan = make_client(gate=gate, queue_size=1, workers=1)
    results: list[int] = []

    def call(path: str) -> None:
        results.append(client.post("/v1/scan", json={"path": path}, headers=AUTH).status_code)

    t1 = threading.Thread(target=call, args=("clean",))
    t1.start()
    _wait_for(lambda: len(scan.calls) == 1)
    t2 = threading.Thread(target=call, args=("evil.pkl",))
    t2.start()
    _wait_for(lambda: client.app.state.supplychain.queue.depth == 1)  # type: ignore[attr-defined]
    r = client.post("/v1/scan", json={"path": "clean"}, headers=AUTH)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    gate.set()
    t1.join(30)
    t2.join(30)
    assert sorted(results) == [200, 200]  # both accepted jobs finished
    metrics = client.get("/metrics", headers=AUTH).text
    assert "supplychain_rejected_total 1" in metrics


def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition never held"
        time.sleep(0.01)


def test_metrics_text(client: TestClient) -> None:
    client.post("/v1/scan", json={"path": "clean"}, headers=AUTH)
    client.post("/v1/scan", json={"path": "evil.pkl"}, headers=AUTH)
    r = client.get("/metrics", headers=AUTH)
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for needle in (
        "# TYPE supplychain_scans_total counter",
        "supplychain_queue_depth 0",
        'supplychain_request_seconds_bucket{le="+Inf",route="/v1/scan"} 2',
        "supplychain_cache_hits_total",
    ):
        assert needle in text, needle


def test_unknown_route_is_404_not_5xx(client: TestClient) -> None:
    assert client.get("/nope", headers=AUTH).status_code == 404
    assert client.get("/v1/scan", headers=AUTH).status_code == 405


def test_shutdown_finishes_accepted_jobs(make_client: MakeClient) -> None:
    """Lifespan shutdown drains: a job accepted before shutdown still completes."""
    gate = threading.Event()
    client, scan = make_client(gate=gate, workers=1)
    queue = client.app.state.supplychain.queue  # type: ignore[attr-defined]
    job = queue.submit(scan, client.app.state.supplychain.config.root / "clean")  # type: ignore[attr-defined]
    threading.Timer(0.2, gate.set).start()
    client.__exit__(None, None, None)
    assert queue.status(job).value == "done"
    assert queue.closed


def test_json_scan_body_is_capped_by_max_body_not_max_upload(make_client: MakeClient) -> None:
    client, scan = make_client(max_body=1000, max_upload=10_000_000)
    big = {"path": "a" * 3000}
    r = client.post("/v1/scan", json=big, headers=AUTH)
    assert r.status_code == 413
    assert scan.calls == []


def test_scan_that_raises_is_500_json_never_a_pass(client: TestClient) -> None:
    def boom(path: Path) -> None:
        raise RuntimeError("parser exploded")

    client.app.state.supplychain.scan = boom  # type: ignore[attr-defined]
    r = client.post("/v1/scan", json={"path": "clean"}, headers=AUTH)
    assert r.status_code == 500
    assert "scan failed: RuntimeError: parser exploded" in r.json()["error"]


def test_scan_reports_are_not_kept_after_answering(client: TestClient) -> None:
    queue = client.app.state.supplychain.queue  # type: ignore[attr-defined]
    for _ in range(3):
        assert client.post("/v1/scan", json={"path": "evil.pkl"}, headers=AUTH).status_code == 200
    assert queue.completed == 3
    assert len(queue._entries) == 0
