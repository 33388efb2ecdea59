"""The Harbor scanner adapter, driven like Harbor drives it, against a fake OCI registry.

The app runs in-process (FastAPI TestClient, httpx); the registry is a real HTTP server on
127.0.0.1 (tests/fake_registry.py) that demands the Bearer token dance with the robot
credentials the scan request carries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from supplychain.server.harbor import (
    HARBOR_REPORT_MIME,
    METADATA_MIME,
    RAW_REPORT_MIME,
    SBOM_REPORT_MIME,
    SCAN_RESPONSE_MIME,
    UNSCANNABLE,
    VULN_REPORT_MIME,
    negotiate,
)
from tests.fake_registry import (
    OCI_MANIFEST,
    WEIGHT_RAW,
    WEIGHT_TAR_GZ,
    FakeRegistry,
    digest_of,
    fake_registry,
    safetensors_bytes,
    tar_bytes,
)
from tests.pickle_builders import call_pickle
from tests.server.conftest import AUTH, review

EVIL = call_pickle("os", "system", "echo supplychain-sample")
REQUEST_MIME = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
ROBOT = "Basic " + base64.b64encode(b"robot$ml:s3cr3t").decode()

MakeClient = Callable[..., tuple[TestClient, Any]]


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with fake_registry(auth="bearer") as reg:
        yield reg


def scan_request(registry: FakeRegistry, repo: str, digest: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "registry": {"url": registry.url, "authorization": ROBOT},
        "artifact": {"repository": repo, "digest": digest, "tag": "v1", "mime_type": OCI_MANIFEST},
        "enabled_capabilities": [
            {"type": "vulnerability", "produces_mime_types": [VULN_REPORT_MIME]}
        ],
    }
    body.update(over)
    return body


def submit(client: TestClient, body: dict[str, Any]) -> str:
    r = client.post("/api/v1/scan", json=body, headers={**AUTH, "Content-Type": REQUEST_MIME})
    assert r.status_code == 202, r.text
    assert r.headers["content-type"].startswith(SCAN_RESPONSE_MIME.split(";")[0])
    return str(r.json()["id"])


def poll(client: TestClient, scan_id: str, accept: str = VULN_REPORT_MIME) -> Any:
    """Poll like Harbor: 302 with Refresh-After until 200 (at most 60 s here)."""
    deadline = time.monotonic() + 60
    while True:
        r = client.get(
            f"/api/v1/scan/{scan_id}/report",
            headers={**AUTH, "Accept": accept},
            follow_redirects=False,
        )
        if r.status_code != 302:
            return r
        assert int(r.headers["Refresh-After"]) > 0
        assert time.monotonic() < deadline, "the report never became ready"
        time.sleep(0.05)


def test_metadata(client: TestClient) -> None:
    r = client.get("/api/v1/metadata", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.scanner.adapter.metadata+json")
    assert r.headers["content-type"].replace(" ", "") == METADATA_MIME.replace(" ", "")
    doc = r.json()
    assert doc["scanner"]["name"] == "supplychain" and doc["scanner"]["version"]
    cap = doc["capabilities"][0]
    assert cap["type"] == "vulnerability"
    assert "application/vnd.oci.image.manifest.v1+json" in cap["consumes_mime_types"]
    assert "application/vnd.cncf.model.manifest.v1+json" in cap["consumes_mime_types"]
    assert VULN_REPORT_MIME in cap["produces_mime_types"]
    assert HARBOR_REPORT_MIME in cap["produces_mime_types"]
    assert all(isinstance(v, str) for v in doc["properties"].values())


def test_every_harbor_route_needs_the_token(client: TestClient) -> None:
    assert client.get("/api/v1/metadata").status_code == 401
    assert client.post("/api/v1/scan", json={}).status_code == 401
    assert client.get("/api/v1/scan/x/report").status_code == 401
    bad = {"Authorization": "Bearer wrong-token-0123456789"}
    assert client.get("/api/v1/metadata", headers=bad).status_code == 401


def test_clean_model_flow_302_then_report_then_admitted(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    gate = threading.Event()
    client, scan = make_client(gate=gate)
    digest = registry.push_model(
        "ml/clean", [("model.safetensors", safetensors_bytes(), WEIGHT_RAW)]
    )
    scan_id = submit(client, scan_request(registry, "ml/clean", digest))
    # Held at the gate: the report is not ready, Harbor is told when to come back.
    r = client.get(
        f"/api/v1/scan/{scan_id}/report",
        headers={**AUTH, "Accept": VULN_REPORT_MIME},
        follow_redirects=False,
    )
    assert r.status_code == 302 and r.headers["Refresh-After"] == "5"
    gate.set()
    r = poll(client, scan_id)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].replace(" ", "") == VULN_REPORT_MIME.replace(" ", "")
    report = r.json()
    assert report["artifact"]["digest"] == digest and report["artifact"]["repository"] == "ml/clean"
    assert report["vulnerabilities"] == [] and report["severity"] == "Unknown"
    assert report["vendor_attributes"]["verdict"] == "pass"
    assert report["vendor_attributes"]["model_artifact"] is True
    assert len(scan.calls) == 1
    # The robot credentials went through the token service, and only as Basic there.
    assert registry.token_requests and registry.tokens
    # Recorded by digest: the admission webhook admits a Pod mounting it.
    image = f"{registry.host}/ml/clean@{digest}"
    answer = client.post("/v1/admission", json=review(images=[image]), headers=AUTH).json()
    assert answer["response"]["allowed"] is True, answer


def test_malicious_model_maps_findings_and_is_denied(
    client: TestClient, registry: FakeRegistry
) -> None:
    layer = tar_bytes({"model/pytorch_model.bin": EVIL}, compress="gzip")
    digest = registry.push_model(
        "ml/evil",
        [("config.json", b'{"model_type": "bert"}', WEIGHT_RAW), ("model", layer, WEIGHT_TAR_GZ)],
    )
    r = poll(client, submit(client, scan_request(registry, "ml/evil", digest)))
    assert r.status_code == 200
    report = r.json()
    assert report["vendor_attributes"]["verdict"] == "fail"
    assert report["severity"] in ("High", "Critical")
    pkl = [v for v in report["vulnerabilities"] if v["id"].startswith("PKL")]
    assert pkl, report
    item = pkl[0]
    assert item["package"].startswith("model.tar.gz!")  # the layer, then the member chain
    assert item["package"].endswith("!model/pytorch_model.bin")
    assert item["version"] == digest_of(layer)
    assert item["severity"] in ("High", "Critical")
    assert item["description"] and item["vendor_attributes"]["rule"] == item["id"]
    assert all(
        v["severity"] in ("Negligible", "Low", "Medium", "High", "Critical")
        for v in report["vulnerabilities"]
    )
    # Our own JSON report under the raw MIME type.
    raw = poll(client, r.url.path.split("/")[-2], accept=RAW_REPORT_MIME)
    assert raw.headers["content-type"].startswith(RAW_REPORT_MIME)
    assert any(f["rule"].startswith("PKL") for f in raw.json()["findings"])
    # The 1.0 Harbor MIME type gets the same report.
    old = poll(client, r.url.path.split("/")[-2], accept=HARBOR_REPORT_MIME)
    assert old.json()["vulnerabilities"] == report["vulnerabilities"]
    image = f"{registry.host}/ml/evil@{digest}"
    answer = client.post("/v1/admission", json=review(images=[image]), headers=AUTH).json()
    assert answer["response"]["allowed"] is False
    assert "PKL" in answer["response"]["status"]["message"]


def _assert_unscannable(report: dict[str, Any], reason: str) -> None:
    assert report["vulnerabilities"], "an unscannable artifact must never be an empty report"
    first = report["vulnerabilities"][0]
    assert first["id"] == UNSCANNABLE and first["severity"] == "Critical"
    assert report["severity"] == "Critical"
    assert reason in first["description"], first["description"]
    assert report["vendor_attributes"]["verdict"] == "fail"


def test_unscannable_artifacts_are_critical_never_clean(
    client: TestClient, registry: FakeRegistry
) -> None:
    weights = safetensors_bytes()
    digest = registry.push_model("ml/tampered", [("model.safetensors", weights, WEIGHT_RAW)])
    registry.served_bytes[digest_of(weights)] = weights[:-1] + b"\x01"
    r = poll(client, submit(client, scan_request(registry, "ml/tampered", digest)))
    assert r.status_code == 200
    _assert_unscannable(r.json(), "does not match its digest")
    image = f"{registry.host}/ml/tampered@{digest}"
    answer = client.post("/v1/admission", json=review(images=[image]), headers=AUTH).json()
    assert answer["response"]["allowed"] is False

    # A registry error, a missing artifact and wrong robot credentials: same story.
    digest2 = registry.push_model("ml/down", [("a.safetensors", weights, WEIGHT_RAW)])
    registry.faults[f"/v2/ml/down/manifests/{digest2}"] = 500
    r = poll(client, submit(client, scan_request(registry, "ml/down", digest2)))
    _assert_unscannable(r.json(), "HTTP 500")
    r = poll(client, submit(client, scan_request(registry, "ml/none", "sha256:" + "1" * 64)))
    _assert_unscannable(r.json(), "404")
    wrong = scan_request(registry, "ml/clean2", digest2)
    wrong["registry"]["authorization"] = "Basic " + base64.b64encode(b"robot$ml:nope").decode()
    r = poll(client, submit(client, wrong))
    _assert_unscannable(r.json(), "401")
    # Robot credentials never reach a report, the raw report or the stored verdict.
    raw = poll(client, r.url.path.split("/")[-2], accept=RAW_REPORT_MIME)
    stored = client.app.state.supplychain.verdicts.lookup(digest2)  # type: ignore[attr-defined]
    for text in (r.text, raw.text, stored.reason if stored else ""):
        assert "s3cr3t" not in text and "nope" not in text and ROBOT[6:] not in text


def test_a_failed_verdict_without_a_finding_is_critical() -> None:
    """Nothing analysable, or a scanner that failed: no finding says so, the report must."""
    from supplychain.core.model import Report, ScanResult, Status
    from supplychain.oci import Artifact, Descriptor, OciScan, PulledFile
    from supplychain.server.harbor import ScanRequest, harbor_report
    from supplychain.server.scanning import ModelVerdict, judge

    layer = Descriptor(WEIGHT_RAW, "sha256:" + "b" * 64, 3)
    artifact = Artifact(
        "ml/x",
        "sha256:" + "a" * 64,
        "sha256:" + "a" * 64,
        OCI_MANIFEST,
        None,
        Descriptor("application/vnd.cncf.model.config.v1+json", "sha256:" + "c" * 64, 2),
        (layer,),
    )
    request = ScanRequest("https://h", None, "ml/x", artifact.digest, None, None)
    empty = Report(tool_version="0", target=("x",), started_at="", seconds=0.0)
    from supplychain.policy import Policy, apply

    judged = apply(empty, Policy())
    verdict = judge(judged)
    assert not verdict.passed
    doc = harbor_report(request, OciScan(artifact, (PulledFile("w.bin", layer),), judged), verdict)
    _assert_unscannable(doc, "nothing was analysed")
    crashed = apply(
        Report(
            tool_version="0",
            target=("x",),
            started_at="",
            seconds=0.0,
            results=(ScanResult("pickle", "w.bin", Status.FAILED, "RuntimeError: boom"),),
        ),
        Policy(),
    )
    doc = harbor_report(request, OciScan(artifact, (), crashed), judge(crashed))
    _assert_unscannable(doc, "w.bin: pickle: RuntimeError: boom")
    # A passing verdict with no finding is the only empty report.
    doc = harbor_report(request, OciScan(artifact, (), judged), ModelVerdict(True, "passed"))
    assert doc["vulnerabilities"] == [] and doc["vendor_attributes"]["verdict"] == "pass"


def test_invalid_requests(client: TestClient, registry: FakeRegistry) -> None:
    r = client.post(
        "/api/v1/scan", content=b"{not json", headers={**AUTH, "Content-Type": REQUEST_MIME}
    )
    assert r.status_code == 400 and r.json()["error"]["message"]
    good = scan_request(registry, "ml/x", "sha256:" + "a" * 64)
    for broken in (
        {**good, "artifact": {"repository": "ml/x"}},
        {**good, "artifact": {**good["artifact"], "digest": "sha256:xyz"}},
        {**good, "artifact": {**good["artifact"], "repository": "../etc"}},
        {**good, "registry": {"url": "ftp://x"}},
        {**good, "registry": {"url": registry.url, "authorization": "Digest abc"}},
        {"registry": "x", "artifact": []},
    ):
        r = client.post("/api/v1/scan", json=broken, headers=AUTH)
        assert r.status_code == 422, (broken, r.text)
        assert r.headers["content-type"].startswith("application/vnd.scanner.adapter.error+json")
    spdx_only = [{"type": "sbom", "parameters": {"sbom_media_types": ["application/spdx+json"]}}]
    for caps in ([{"type": "license"}], spdx_only):
        r = client.post("/api/v1/scan", json={**good, "enabled_capabilities": caps}, headers=AUTH)
        assert r.status_code == 501, caps
    assert client.get("/api/v1/scan/nope/report", headers=AUTH).status_code == 404
    scan_id = submit(client, good)
    r = client.get(f"/api/v1/scan/{scan_id}/report", headers={**AUTH, "Accept": "text/html"})
    assert r.status_code == 501
    r = client.get(  # an SBOM without ?sbom_media_type=
        f"/api/v1/scan/{scan_id}/report", headers={**AUTH, "Accept": SBOM_REPORT_MIME}
    )
    assert r.status_code == 400


def test_a_v1_scan_job_is_not_a_harbor_report(client: TestClient) -> None:
    """Job ids are shared by the queue; the Harbor route only answers its own jobs."""
    # /v1/scan forgets its jobs once answered, so queue a non-Harbor job (an admission scan
    # or a /v1/scan still running looks like this) and ask the Harbor route for it.
    queue = client.app.state.supplychain.queue  # type: ignore[attr-defined]
    job_id = queue.submit(int, "1")
    queue.wait(job_id, 30)
    assert queue.result(job_id) == 1
    r = client.get(f"/api/v1/scan/{job_id}/report", headers=AUTH)
    assert r.status_code == 404


def test_queue_full_is_503_with_retry_after(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    gate = threading.Event()
    client, scan = make_client(gate=gate, queue_size=1, workers=1)
    digests = [
        registry.push_model(
            f"ml/m{i}",
            [
                ("model.safetensors", safetensors_bytes(), WEIGHT_RAW),
                ("README.md", f"# m{i}\n".encode(), "application/vnd.cncf.model.doc.v1.raw"),
            ],
        )
        for i in range(3)
    ]
    first = submit(client, scan_request(registry, "ml/m0", digests[0]))
    deadline = time.monotonic() + 30
    while not scan.calls:  # the one worker is busy (held at the gate)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = submit(client, scan_request(registry, "ml/m1", digests[1]))  # fills the queue
    r = client.post(
        "/api/v1/scan",
        json=scan_request(registry, "ml/m2", digests[2]),
        headers={**AUTH, "Content-Type": REQUEST_MIME},
    )
    assert r.status_code in (429, 503)
    assert int(r.headers["Retry-After"]) > 0
    assert "full" in r.json()["error"]["message"]
    # The same artifact again joins the queued job instead of being refused or duplicated.
    again = submit(client, scan_request(registry, "ml/m1", digests[1]))
    assert again == second
    gate.set()
    assert poll(client, first).status_code == 200
    assert poll(client, second).status_code == 200


def test_accept_negotiation() -> None:
    assert negotiate("") == VULN_REPORT_MIME
    assert (
        negotiate("application/vnd.security.vulnerability.report;version=1.1") == VULN_REPORT_MIME
    )
    assert negotiate("text/html, " + HARBOR_REPORT_MIME) == HARBOR_REPORT_MIME
    assert negotiate(RAW_REPORT_MIME) == RAW_REPORT_MIME
    assert negotiate("application/vnd.security.sbom.report+json; version=1.0") == SBOM_REPORT_MIME
    assert negotiate("text/html") is None


def test_harbor_flow_against_the_real_server_over_a_socket(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    """``supplychain serve`` in a subprocess: metadata, scan, 302 polling, report, admission."""
    import os
    import socket
    import subprocess
    import sys

    import httpx

    from tests.server.conftest import TOKEN, make_root

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo_root = Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PYTHONPATH": str(repo_root)}
    cmd = [
        sys.executable, "-m", "supplychain", "serve", "--root", str(make_root(tmp_path)),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--verdicts", str(tmp_path / "verdicts.sqlite"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the server exited"
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, "the server never became healthy"
            time.sleep(0.1)
        evil = registry.push_model("ml/evil", [("pytorch_model.bin", EVIL, WEIGHT_RAW)])
        with httpx.Client(base_url=url, timeout=60, headers=AUTH) as http:
            meta = http.get("/api/v1/metadata")
            assert meta.status_code == 200 and meta.json()["scanner"]["name"] == "supplychain"
            r = http.post(
                "/api/v1/scan",
                json=scan_request(registry, "ml/evil", evil),
                headers={"Content-Type": REQUEST_MIME},
            )
            assert r.status_code == 202
            scan_id = r.json()["id"]
            while True:
                r = http.get(f"/api/v1/scan/{scan_id}/report", headers={"Accept": VULN_REPORT_MIME})
                if r.status_code != 302:
                    break
                assert time.monotonic() < end + 60
                time.sleep(0.1)
            assert r.status_code == 200
            report = r.json()
            assert any(v["id"].startswith("PKL") for v in report["vulnerabilities"])
            assert report["severity"] in ("High", "Critical")
            review_body = review(images=[f"{registry.host}/ml/evil@{evil}"])
            answer = http.post("/v1/admission", json=review_body).json()
            assert answer["response"]["allowed"] is False
            assert http.get("/api/v1/metadata", headers={"Authorization": ""}).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_raw_report_is_cut_past_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from supplychain.server import harbor
    from supplychain.service import run_scan

    report = run_scan([Path(__file__).resolve().parent.parent.parent / "samples" / "malicious"])
    full = harbor.raw_report(report)
    assert full["findings"] and "truncated" not in full
    monkeypatch.setattr(harbor, "MAX_RAW", 1000)
    monkeypatch.setattr(harbor, "MAX_ITEMS", 2)
    cut = harbor.raw_report(report)
    assert len(cut["findings"]) == 2 and cut["files"] == []
    assert cut["truncated"]["counts"]["findings"] == len(full["findings"])
    assert cut["verdict"] == "fail"


def test_a_job_dropped_at_shutdown_reports_critical(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    gate = threading.Event()
    client, scan = make_client(gate=gate, queue_size=2, workers=1)
    weights = safetensors_bytes()
    d0 = registry.push_model("ml/a", [("model.safetensors", weights, WEIGHT_RAW)])
    d1 = registry.push_model("ml/team/b", [("w.safetensors", weights, WEIGHT_RAW)])
    submit(client, scan_request(registry, "ml/a", d0))
    deadline = time.monotonic() + 30
    while not scan.calls:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queued = submit(client, scan_request(registry, "ml/team/b", d1))
    client.app.state.supplychain.queue.shutdown(drain=False, timeout=0.1)  # type: ignore[attr-defined]
    r = poll(client, queued)
    assert r.status_code == 200
    report = r.json()
    _assert_unscannable(report, "ShuttingDown: server stopped")
    assert report["artifact"] == {"repository": "ml/team/b", "digest": d1}
    gate.set()


def test_sbom_capability(client: TestClient, registry: FakeRegistry) -> None:
    """Harbor's SBOM capability: a CycloneDX ML-BOM of the layers, from the same scan."""
    meta = client.get("/api/v1/metadata", headers=AUTH).json()
    sbom_cap = next(c for c in meta["capabilities"] if c["type"] == "sbom")
    assert sbom_cap["produces_mime_types"] == [SBOM_REPORT_MIME]
    assert sbom_cap["additional_attributes"]["sbom_media_types"] == [
        "application/vnd.cyclonedx+json"
    ]
    weights = safetensors_bytes()
    digest = registry.push_model("ml/bom", [("model.safetensors", weights, WEIGHT_RAW)])
    caps = [
        {
            "type": "sbom",
            "produces_mime_types": [SBOM_REPORT_MIME],
            "parameters": {"sbom_media_types": ["application/vnd.cyclonedx+json"]},
        }
    ]
    scan_id = submit(client, scan_request(registry, "ml/bom", digest, enabled_capabilities=caps))
    url = f"/api/v1/scan/{scan_id}/report?sbom_media_type=application/vnd.cyclonedx%2Bjson"
    deadline = time.monotonic() + 60
    while (r := client.get(url, headers={**AUTH, "Accept": SBOM_REPORT_MIME})).status_code == 302:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.security.sbom.report+json")
    doc = r.json()
    assert doc["media_type"] == "application/vnd.cyclonedx+json"
    assert doc["artifact"]["digest"] == digest
    bom = doc["sbom"]
    assert bom["bomFormat"] == "CycloneDX"
    assert hashlib.sha256(weights).hexdigest() in json.dumps(bom)  # the layer's file, by hash
    # The vulnerability report of the same job is there too.
    assert poll(client, scan_id).json()["vendor_attributes"]["verdict"] == "pass"
    # An artifact that could not be pulled has no SBOM: 500 with the reason ends the polling.
    bad = submit(client, scan_request(registry, "ml/none", "sha256:" + "2" * 64))
    poll(client, bad)
    bad_url = f"/api/v1/scan/{bad}/report?sbom_media_type=application/vnd.cyclonedx%2Bjson"
    r = client.get(bad_url, headers={**AUTH, "Accept": SBOM_REPORT_MIME})
    assert r.status_code == 500 and "could not be scanned" in r.json()["error"]["message"]
