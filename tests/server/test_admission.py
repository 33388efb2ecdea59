"""POST /v1/admission: allow only when every model passes; deny naming the model and the rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import AUTH, CountingScan, review

MakeClient = Callable[..., tuple[TestClient, CountingScan]]
DIGEST_OK = "sha256:" + "1" * 64
DIGEST_BAD = "sha256:" + "2" * 64
DIGEST_NEW = "sha256:" + "3" * 64


def _admit(client: TestClient, body: Any) -> dict[str, Any]:
    r = client.post("/v1/admission", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
    return dict(doc["response"])


def test_clean_model_is_admitted_with_same_uid(client: TestClient) -> None:
    resp = _admit(client, review(uid="uid-clean-1", models="clean"))
    assert resp["uid"] == "uid-clean-1"
    assert resp["allowed"] is True
    assert "status" not in resp


def test_malicious_model_is_denied_naming_model_and_rule(client: TestClient) -> None:
    resp = _admit(client, review(uid="uid-evil", models="clean, evil.pkl"))
    assert resp["uid"] == "uid-evil"
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    message = resp["status"]["message"]
    assert "evil.pkl" in message and "PKL001" in message and "critical" in message
    assert "'clean'" not in message
    assert resp["auditAnnotations"] == {"verdict": "deny"}


def test_empty_model_directory_is_denied(client: TestClient) -> None:
    resp = _admit(client, review(models="empty"))
    assert resp["allowed"] is False
    assert "'empty'" in resp["status"]["message"] and "analysed" in resp["status"]["message"]


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "nope.bin", "%2e%2e/x"])
def test_bad_or_missing_model_path_is_denied_without_scan(
    make_client: MakeClient, bad: str
) -> None:
    client, scan = make_client()
    resp = _admit(client, review(models=f"clean,{bad}"))
    assert resp["allowed"] is False
    assert repr(bad) in resp["status"]["message"]
    assert all(p.name == "clean" for p in scan.calls)


def test_image_volume_unknown_digest_is_not_yet_scanned(client: TestClient) -> None:
    resp = _admit(client, review(images=[f"harbor.x/ml/llama@{DIGEST_NEW}"]))
    assert resp["allowed"] is False
    assert "not yet scanned" in resp["status"]["message"]
    assert "harbor.x/ml/llama" in resp["status"]["message"]


def test_image_volume_verdicts_from_the_store(client: TestClient) -> None:
    store = client.app.state.supplychain.verdicts  # type: ignore[attr-defined]
    store.record(DIGEST_OK, True, "passed")
    store.record(DIGEST_BAD, False, "blocked: PKL001 (critical)", ("PKL001",))
    assert _admit(client, review(images=[f"r.x/a@{DIGEST_OK}"]))["allowed"] is True
    resp = _admit(client, review(images=[f"r.x/a@{DIGEST_OK}", f"r.x/b@{DIGEST_BAD}"]))
    assert resp["allowed"] is False
    assert "r.x/b" in resp["status"]["message"] and "PKL001" in resp["status"]["message"]
    assert "r.x/a@" not in resp["status"]["message"]


def test_image_by_tag_is_denied(client: TestClient) -> None:
    store = client.app.state.supplychain.verdicts  # type: ignore[attr-defined]
    store.record(DIGEST_OK, True, "passed")
    resp = _admit(client, review(images=["r.x/a:latest"]))
    assert resp["allowed"] is False and "not pinned" in resp["status"]["message"]


def test_pod_without_models_is_allowed(client: TestClient) -> None:
    assert _admit(client, review())["allowed"] is True


def test_non_pod_kind_is_allowed_with_warning(client: TestClient) -> None:
    resp = _admit(client, review(kind="ConfigMap", models="evil.pkl"))
    assert resp["allowed"] is True
    assert any("Pods only" in w for w in resp["warnings"])


def test_delete_is_allowed(client: TestClient) -> None:
    body = review(models="evil.pkl", operation="DELETE")
    assert _admit(client, body)["allowed"] is True


def _mutate(path: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = review(models="clean")
    node: Any = body
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return body


@pytest.mark.parametrize(
    "body",
    [
        _mutate("apiVersion", "admission.k8s.io/v1beta1"),
        _mutate("kind", "Pod"),
        _mutate("request", KeyError),
        _mutate("request", "x"),
        _mutate("request.uid", KeyError),
        _mutate("request.uid", 7),
        _mutate("request.uid", ""),
        _mutate("request.kind", KeyError),
        _mutate("request.object", None),
        _mutate("request.object.metadata.annotations", ["x"]),
        _mutate("request.object.metadata.annotations", {"supplychain/models": 3}),
        _mutate("request.object.spec.volumes", {"a": 1}),
        _mutate("request.object.spec.volumes", [{"name": "m", "image": {"reference": 5}}]),
        [],
        "review",
    ],
)
def test_malformed_review_is_400(client: TestClient, body: Any) -> None:
    r = client.post("/v1/admission", json=body, headers=AUTH)
    assert r.status_code == 400
    assert "malformed" in r.json()["error"]


def test_not_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/admission", content=b"\xff\xfe", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_too_many_models_is_denied(client: TestClient) -> None:
    models = ",".join(f"m{i}" for i in range(40))
    resp = _admit(client, review(models=models))
    assert resp["allowed"] is False and "at most" in resp["status"]["message"]


def test_over_budget_denies_not_yet_scanned_then_retry_is_answered(
    make_client: MakeClient,
) -> None:
    gate = threading.Event()
    client, scan = make_client(gate=gate, admission_budget=0.2)
    t0 = time.monotonic()
    resp = _admit(client, review(uid="first", models="clean"))
    assert time.monotonic() - t0 < 5
    assert resp["uid"] == "first" and resp["allowed"] is False
    assert "not yet scanned" in resp["status"]["message"]
    # A retry while the scan is still running waits on the same job (no second scan).
    resp = _admit(client, review(uid="second", models="clean"))
    assert resp["allowed"] is False
    assert len(scan.calls) == 1
    gate.set()
    queue = client.app.state.supplychain.queue  # type: ignore[attr-defined]
    end = time.monotonic() + 30
    while queue.running or queue.depth:
        assert time.monotonic() < end
        time.sleep(0.01)
    resp = _admit(client, review(uid="third", models="clean"))
    assert resp["uid"] == "third" and resp["allowed"] is True


def test_full_queue_is_503_and_nothing_admitted(make_client: MakeClient, root: Path) -> None:
    gate = threading.Event()
    client, _scan = make_client(gate=gate, admission_budget=0.05, queue_size=1, workers=1)
    for name in ("a", "b", "c"):
        (root / name).mkdir()
        (root / name / "model.safetensors").write_bytes(
            (root / "clean" / "model.safetensors").read_bytes()
        )
    first = _admit(client, review(models="a"))  # running, held at the gate
    second = _admit(client, review(models="b"))  # queued
    assert first["allowed"] is False and second["allowed"] is False
    r = client.post("/v1/admission", json=review(models="c"), headers=AUTH)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) >= 1
    assert "allowed" not in r.text
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'supplychain_admission_total{decision="allow"}' not in metrics
    gate.set()


def test_failed_scan_is_denied(make_client: MakeClient, root: Path) -> None:
    client, _scan = make_client()

    def boom(path: Path) -> Any:
        raise RuntimeError("scanner crashed")

    client.app.state.supplychain.scan = boom  # type: ignore[attr-defined]
    resp = _admit(client, review(models="clean"))
    assert resp["allowed"] is False and "scan failed" in resp["status"]["message"]


def test_verdict_store_refuses_bad_digests(tmp_path: Path) -> None:
    from supplychain.server.verdicts import VerdictStore

    store = VerdictStore(tmp_path / "v.sqlite")
    with pytest.raises(ValueError):
        store.record("sha256:XYZ", True, "x")
    assert store.lookup("sha256:" + "A" * 64) is None
    store.record(DIGEST_OK, False, "blocked: PKL001 (critical)", ("PKL001",))
    store.close()
    again = VerdictStore(tmp_path / "v.sqlite")  # persisted across processes/restarts
    got = again.lookup(DIGEST_OK)
    assert got is not None and got.passed is False and got.rules == ("PKL001",)


def test_corrupt_verdict_store_is_an_error(tmp_path: Path) -> None:
    """A store that is not SQLite stops the server (exit 2), never an empty store that admits."""
    from supplychain.server.cli import cmd_serve
    from supplychain.server.verdicts import VerdictStore, VerdictStoreError

    bad = tmp_path / "corrupt.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(VerdictStoreError):
        VerdictStore(bad)
    assert callable(cmd_serve)


# -- the fast path: a model tree unchanged since it was judged ---------------------------------
@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every file as settled (the real window is SETTLE_SECONDS after the last change)."""
    from supplychain.server import memo

    monkeypatch.setattr(memo, "SETTLE_SECONDS", -3600.0)


def test_unchanged_model_is_answered_without_a_scan(make_client: MakeClient, settled: None) -> None:
    client, scan = make_client()
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert _admit(client, review(models="evil.pkl"))["allowed"] is False
    n = len(scan.calls)
    for _ in range(5):
        assert _admit(client, review(models="clean"))["allowed"] is True
        resp = _admit(client, review(models="evil.pkl"))
        assert resp["allowed"] is False and "PKL001" in resp["status"]["message"]
    assert len(scan.calls) == n
    assert "supplychain_memo_hits_total 10" in client.get("/metrics", headers=AUTH).text


def test_changed_model_is_scanned_again(make_client: MakeClient, root: Path, settled: None) -> None:
    client, scan = make_client()
    assert _admit(client, review(models="clean"))["allowed"] is True
    # Same name and size class, new bytes: the model swapped for a malicious pickle.
    (root / "clean" / "state_dict.pkl").write_bytes((root / "evil.pkl").read_bytes())
    resp = _admit(client, review(models="clean"))
    assert resp["allowed"] is False and "PKL001" in resp["status"]["message"]
    assert len(scan.calls) == 2


def test_new_file_in_model_is_scanned_again(
    make_client: MakeClient, root: Path, settled: None
) -> None:
    client, scan = make_client()
    assert _admit(client, review(models="clean"))["allowed"] is True
    (root / "clean" / "extra.bin").write_bytes((root / "evil.pkl").read_bytes())
    assert _admit(client, review(models="clean"))["allowed"] is False
    assert len(scan.calls) == 2


def test_tree_with_a_link_is_never_memoised(
    make_client: MakeClient, root: Path, settled: None
) -> None:
    import os

    client, scan = make_client()
    os.symlink(root / "clean" / "model.safetensors", root / "clean" / "alias.safetensors")
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert len(scan.calls) == 2


def test_fresh_files_are_not_memoised(make_client: MakeClient) -> None:
    client, scan = make_client()  # files were just copied: inside the settle window
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert len(scan.calls) == 2


def _update(models_old: str | None, models_new: str) -> dict[str, Any]:
    body = review(models=models_new, operation="UPDATE")
    if models_old is not None:
        body["request"]["oldObject"] = review(models=models_old)["request"]["object"]
    return body


def test_update_with_unchanged_models_is_allowed_without_scan(make_client: MakeClient) -> None:
    """Label/finalizer edits of a running Pod (its volumes are immutable) are never blocked."""
    client, scan = make_client()
    assert _admit(client, _update("evil.pkl", "evil.pkl"))["allowed"] is True
    assert scan.calls == []


def test_update_that_adds_a_model_is_checked(make_client: MakeClient) -> None:
    client, _ = make_client()
    resp = _admit(client, _update("clean", "clean,evil.pkl"))
    assert resp["allowed"] is False and "evil.pkl" in resp["status"]["message"]


def test_update_without_old_object_is_checked(make_client: MakeClient) -> None:
    client, _ = make_client()
    assert _admit(client, _update(None, "evil.pkl"))["allowed"] is False


def test_policy_file_judges_admission(make_client: MakeClient, tmp_path: Path) -> None:
    """``--policy``: a waiver for the rule admits the model; the rest of the gate is unchanged."""
    policy = tmp_path / "supplychain.toml"
    policy.write_text(
        'fail_on = "high"\n[[ignore]]\nrule = "PKL001"\nreason = "test waiver"\n'
        "expires = 2099-01-01\n"
    )
    client, _ = make_client(policy_path=policy)
    # The sample's only finding is PKL001: waived, the model passes this server's policy.
    assert _admit(client, review(models="evil.pkl"))["allowed"] is True
    assert _admit(client, review(models="clean"))["allowed"] is True


def test_bad_policy_stops_the_server(root: Path, tmp_path: Path) -> None:
    from supplychain.core.errors import SupplyChainError
    from supplychain.server.config import ServerConfig
    from supplychain.server.metrics import Metrics
    from supplychain.server.scanning import make_scan
    from tests.server.conftest import TOKEN

    policy = tmp_path / "bad.toml"
    policy.write_text("fail_on = 'sometimes'\n")
    with pytest.raises(SupplyChainError):
        make_scan(ServerConfig(root=root, token=TOKEN, policy_path=policy), Metrics())


def test_memoised_verdict_expires(
    make_client: MakeClient, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiver can expire: a memoised verdict is re-judged after the TTL."""
    from supplychain.server import memo

    client, scan = make_client()
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert len(scan.calls) == 1
    monkeypatch.setattr(memo, "TTL_SECONDS", -1.0)
    assert _admit(client, review(models="clean"))["allowed"] is True
    assert len(scan.calls) == 2
