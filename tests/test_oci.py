"""The OCI client against a real fake registry on 127.0.0.1 (tests/fake_registry.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from supplychain.core.limits import OciLimits
from supplychain.oci import (
    Credentials,
    OciError,
    Reference,
    RegistryClient,
    layout_names,
    parse_challenge,
    safe_name,
    scan_artifact,
)
from tests.fake_registry import (
    KITOPS_CONFIG,
    KITOPS_MODEL_TGZ,
    OCI_INDEX,
    OCI_MANIFEST,
    WEIGHT_RAW,
    WEIGHT_TAR_GZ,
    WEIGHT_TAR_ZSTD,
    FakeRegistry,
    digest_of,
    fake_registry,
    safetensors_bytes,
    tar_bytes,
)
from tests.pickle_builders import call_pickle

EVIL = call_pickle("os", "system", "echo supplychain-sample")
CREDS = Credentials(username="robot$ml", password="s3cr3t")


def _failing_rules(scan_report: object) -> set[str]:
    return {f.rule for f in scan_report.findings if f.severity >= 3}  # type: ignore[attr-defined]


@pytest.fixture
def registry() -> FakeRegistry:
    with fake_registry() as reg:
        yield reg


# -- references, names, challenges ------------------------------------------------------------


def test_reference_parsing() -> None:
    d = "sha256:" + "a" * 64
    r = Reference.parse(f"harbor.example.com:8443/ml/llama:v1@{d}")
    assert (r.registry, r.repository, r.tag, r.digest) == (
        "harbor.example.com:8443",
        "ml/llama",
        "v1",
        d,
    )
    assert r.reference == d
    assert Reference.parse("localhost:5000/m").reference == "latest"
    assert Reference.parse("127.0.0.1:5000/a/b:t").registry_url() == "http://127.0.0.1:5000"
    assert Reference.parse("harbor.x/a/b:t").registry_url() == "https://harbor.x"
    assert Reference.parse("core:8080/a:t").registry_url(frozenset({"core"})) == "http://core:8080"
    for bad in ("ml/llama:v1", "harbor.x/ML/Up", "harbor.x/a@sha256:abc", "harbor.x/a:-t", "x.y/"):
        with pytest.raises(OciError):
            Reference.parse(bad)


def test_safe_names_refuse_escapes() -> None:
    assert safe_name("./model/weights.safetensors") == "model/weights.safetensors"
    assert safe_name("model/") == "model"
    for bad in (
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "a\\b",
        "C:x",
        "a\x00b",
        "",
        ".",
        "a/./b",
    ):
        with pytest.raises(OciError):
            safe_name(bad)


def test_layout_names_refuse_clashes() -> None:
    from supplychain.oci import Descriptor

    def layer(name: str, mt: str = WEIGHT_RAW, n: int = 0) -> Descriptor:
        return Descriptor(mt, "sha256:" + f"{n:064x}", 1, {"org.opencontainers.image.title": name})

    names = layout_names((layer("w.bin"), layer("model", WEIGHT_TAR_GZ, 1), layer("", n=2)))
    assert names[:2] == ("w.bin", "model.tar.gz")
    assert names[2].startswith("layer-002-")
    with pytest.raises(OciError, match="two layers"):
        layout_names((layer("W.bin"), layer("w.bin", n=1)))
    with pytest.raises(OciError, match="directory"):
        layout_names((layer("a"), layer("a/b", n=1)))


def test_challenge_parsing_keeps_quoted_commas() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://h/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://h/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }


def test_credentials_from_harbor_authorization() -> None:
    basic = "Basic " + base64.b64encode(b"robot$ml:pa:ss").decode()
    c = Credentials.from_authorization(basic)
    assert (c.username, c.password, c.token) == ("robot$ml", "pa:ss", None)
    assert "pa:ss" not in repr(c)
    assert Credentials.from_authorization("Bearer abc").token == "abc"
    assert Credentials.from_authorization(None) == Credentials()
    for bad in ("Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Digest x"):
        with pytest.raises(OciError):
            Credentials.from_authorization(bad)


def test_plain_http_only_to_loopback_or_listed_hosts() -> None:
    with pytest.raises(OciError, match="refusing http"):
        RegistryClient("http://registry.example.com:5000")
    RegistryClient(
        "http://registry.example.com:5000", insecure_hosts=frozenset({"registry.example.com"})
    ).close()
    RegistryClient("http://127.0.0.1:1").close()


# -- pulls and scans --------------------------------------------------------------------------


def test_clean_modelpack_artifact_passes(registry: FakeRegistry, tmp_path: Path) -> None:
    weights = safetensors_bytes()
    digest = registry.push_model(
        "ml/clean",
        [
            ("model/model.safetensors", weights, WEIGHT_RAW),
            ("README.md", b"# hi\n", "application/vnd.cncf.model.doc.v1.raw"),
        ],
    )
    scan = scan_artifact(registry.url, "ml/clean", digest, workdir=tmp_path)
    assert scan.artifact.is_model and scan.artifact.digest == digest
    assert [f.name for f in scan.files] == ["model/model.safetensors", "README.md"]
    assert scan.report.verdict is not None and scan.report.verdict.passed, scan.report.findings
    paths = {r.path for r in scan.report.files}
    assert "model/model.safetensors" in paths
    assert any(r.sha256 == digest_of(weights).split(":")[1] for r in scan.report.files)
    assert scan.report.target == (f"{registry.host}/ml/clean@{digest}",)
    assert list(tmp_path.iterdir()) == []  # the temp dir is gone


def test_malicious_pickle_artifact_fails(registry: FakeRegistry) -> None:
    registry.push_model("ml/evil", [("pytorch_model.bin", EVIL, WEIGHT_RAW)], tag="latest")
    scan = scan_artifact(registry.url, "ml/evil", "latest")
    assert scan.report.verdict is not None and not scan.report.verdict.passed
    bad = [f for f in scan.report.findings if f.severity >= 3]
    assert bad and all(f.location.path == "pytorch_model.bin" for f in bad)
    assert any(f.rule.startswith("PKL") for f in bad)


@pytest.mark.parametrize(
    ("media_type", "compress", "config"),
    [
        (WEIGHT_TAR_GZ, "gzip", None),
        (WEIGHT_TAR_ZSTD, "zstd", None),
        (KITOPS_MODEL_TGZ, "gzip", KITOPS_CONFIG),
    ],
)
def test_tar_layers_are_walked_as_archives(
    registry: FakeRegistry, media_type: str, compress: str, config: str | None
) -> None:
    layer = tar_bytes(
        {"model/config.json": b'{"model_type": "bert"}', "model/pytorch_model.bin": EVIL},
        compress=compress,
    )
    kwargs = (
        {
            "artifact_type": None,
            "config_type": config,
            "annotation": "org.opencontainers.image.title",
        }
        if config
        else {}
    )
    digest = registry.push_model("ml/tarred", [("model", layer, media_type)], **kwargs)
    scan = scan_artifact(registry.url, "ml/tarred", digest)
    assert scan.artifact.is_model
    assert not scan.report.verdict.passed
    hits = [f for f in scan.report.findings if f.rule.startswith("PKL") and f.severity >= 3]
    assert hits, scan.report.findings
    assert hits[0].location.path == "model.tar.gz" if compress == "gzip" else "model.tar"
    assert hits[0].location.member[-1] == "model/pytorch_model.bin"


def test_generic_artifact_is_scanned_not_skipped(registry: FakeRegistry) -> None:
    """An artifact that does not say it is a model is still scanned (a disguised pickle fails)."""
    digest = registry.push_model(
        "ml/disguised",
        [("notes.txt", EVIL, "application/octet-stream")],
        artifact_type=None,
        config_type="application/vnd.oci.image.config.v1+json",
        annotation="org.opencontainers.image.title",
    )
    scan = scan_artifact(registry.url, "ml/disguised", digest)
    assert not scan.artifact.is_model
    assert not scan.report.verdict.passed


def test_blob_digest_mismatch_fails_closed(registry: FakeRegistry, tmp_path: Path) -> None:
    digest = registry.push_model(
        "ml/tampered", [("model.safetensors", safetensors_bytes(), WEIGHT_RAW)]
    )
    layer_digest = next(d for d, b in registry.blobs.items() if b == safetensors_bytes())
    tampered = bytearray(safetensors_bytes())
    tampered[-1] ^= 1
    registry.served_bytes[layer_digest] = bytes(tampered)
    with pytest.raises(OciError, match="does not match its digest"):
        scan_artifact(registry.url, "ml/tampered", digest, workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_blob_longer_than_declared_fails(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/long", [("a.bin", b"x" * 10, WEIGHT_RAW)])
    registry.served_bytes[digest_of(b"x" * 10)] = b"x" * 11
    with pytest.raises(OciError, match="declared"):
        scan_artifact(registry.url, "ml/long", digest)


def test_manifest_digest_mismatch_fails(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/m", [("a.bin", b"x", WEIGHT_RAW)])
    media_type, body = registry.manifests[("ml/m", digest)]
    registry.manifests[("ml/m", digest)] = (media_type, body + b" ")
    with pytest.raises(OciError, match="manifest does not match its digest"):
        scan_artifact(registry.url, "ml/m", digest)


def test_size_caps(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/big", [("a.bin", b"x" * 100, WEIGHT_RAW)])
    with pytest.raises(OciError, match="max_blob_bytes"):
        scan_artifact(registry.url, "ml/big", digest, limits=OciLimits(max_blob_bytes=99))
    with pytest.raises(OciError, match="max_total_bytes"):
        scan_artifact(registry.url, "ml/big", digest, limits=OciLimits(max_total_bytes=99))
    with pytest.raises(OciError, match="manifest"):
        scan_artifact(registry.url, "ml/big", digest, limits=OciLimits(max_manifest_bytes=50))
    bomb = tar_bytes({"zeros.bin": b"\0" * (4 * 2**20)}, compress="zstd")
    digest = registry.push_model("ml/zbomb", [("z", bomb, WEIGHT_TAR_ZSTD)])
    with pytest.raises(OciError, match="expands past"):
        scan_artifact(
            registry.url,
            "ml/zbomb",
            digest,
            limits=OciLimits(max_zstd_ratio=2, max_blob_bytes=2**20),
        )


def test_unsafe_layer_name_fails(registry: FakeRegistry, tmp_path: Path) -> None:
    digest = registry.push_model("ml/escape", [("../../outside.bin", EVIL, WEIGHT_RAW)])
    with pytest.raises(OciError, match="refusing to lay it out"):
        scan_artifact(registry.url, "ml/escape", digest, workdir=tmp_path)
    assert not (tmp_path.parent / "outside.bin").exists()


def test_empty_artifact_is_not_clean(registry: FakeRegistry) -> None:
    config = registry.blob(b"{}", "application/vnd.cncf.model.config.v1+json")
    digest = registry.put_manifest(
        "ml/empty", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}
    )
    with pytest.raises(OciError, match="no layers"):
        scan_artifact(registry.url, "ml/empty", digest)


def test_index_picks_the_platformless_manifest(registry: FakeRegistry) -> None:
    child = registry.push_model("ml/idx", [("pytorch_model.bin", EVIL, WEIGHT_RAW)], tag=None)
    size = len(registry.manifests[("ml/idx", child)][1])
    image = registry.push_model(
        "ml/idx", [("x", b"x", "application/vnd.oci.image.layer.v1.tar")], tag=None
    )
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image,
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {"mediaType": OCI_MANIFEST, "digest": child, "size": size},
        ],
    }
    digest = registry.put_manifest("ml/idx", index, tag="multi", media_type=OCI_INDEX)
    scan = scan_artifact(registry.url, "ml/idx", "multi")
    assert scan.artifact.digest == digest and scan.artifact.manifest_digest == child
    assert not scan.report.verdict.passed
    index["manifests"] = [
        index["manifests"][0],
        {**index["manifests"][0], "platform": {"os": "linux", "architecture": "arm64"}},
    ]
    registry.put_manifest("ml/idx", index, tag="images", media_type=OCI_INDEX)
    with pytest.raises(OciError, match="platform"):
        scan_artifact(registry.url, "ml/idx", "images")


# -- auth and redirects ----------------------------------------------------------------------


def test_bearer_token_dance() -> None:
    with fake_registry(auth="bearer") as reg:
        digest = reg.push_model(
            "ml/private", [("model.safetensors", safetensors_bytes(), WEIGHT_RAW)]
        )
        scan = scan_artifact(reg.url, "ml/private", digest, CREDS)
        assert scan.report.verdict.passed
        assert len(reg.token_requests) == 1
        query = reg.token_requests[0].path
        assert (
            "service=fake-registry" in query
            and "scope=repository%3Aml%2Fprivate%3Apull&" in query + "&"
        )
        assert all(
            s.headers.get("Authorization", "").startswith("Bearer ")
            for s in reg.seen[1:]
            if not s.path.startswith("/token")
        )
        with pytest.raises(OciError, match=r"token service .* 401"):
            scan_artifact(reg.url, "ml/private", digest, Credentials("robot$ml", "wrong"))
        with pytest.raises(OciError, match="401"):
            scan_artifact(reg.url, "ml/private", digest, Credentials(token="forged"))


def test_basic_auth() -> None:
    with fake_registry(auth="basic") as reg:
        digest = reg.push_model("ml/b", [("model.safetensors", safetensors_bytes(), WEIGHT_RAW)])
        harbor_value = "Basic " + base64.b64encode(b"robot$ml:s3cr3t").decode()
        scan = scan_artifact(reg.url, "ml/b", digest, Credentials.from_authorization(harbor_value))
        assert scan.report.verdict.passed
        with pytest.raises(OciError, match="none were given"):
            scan_artifact(reg.url, "ml/b", digest)
        with pytest.raises(OciError, match="refused the credentials"):
            scan_artifact(reg.url, "ml/b", digest, Credentials("robot$ml", "nope"))


def test_redirect_to_blob_storage_drops_authorization() -> None:
    with fake_registry(auth="bearer") as reg:
        store = reg.enable_blob_redirect()
        digest = reg.push_model("ml/r", [("pytorch_model.bin", EVIL, WEIGHT_RAW)])
        scan = scan_artifact(reg.url, "ml/r", digest, CREDS)
        assert not scan.report.verdict.passed  # the content did arrive through the redirect
        assert store.seen, "the blob store was never asked"
        for seen in store.seen:
            assert "Authorization" not in seen.headers and "authorization" not in seen.headers
        blob_gets = [s for s in reg.seen if "/blobs/" in s.path]
        assert blob_gets and all(
            s.headers.get("Authorization", "").startswith("Bearer ") for s in blob_gets
        )


def test_redirect_to_plain_http_elsewhere_is_refused(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/r", [("a.bin", b"x", WEIGHT_RAW)])
    registry.redirect_blobs = True

    class Elsewhere:
        url = "http://blobs.example.com"

    registry.blob_store = Elsewhere()  # type: ignore[assignment]
    try:
        with pytest.raises(OciError, match="refusing http"):
            scan_artifact(registry.url, "ml/r", digest)
    finally:
        registry.blob_store = None


# -- faults ----------------------------------------------------------------------------------


def test_server_errors_and_missing_content(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/f", [("a.bin", b"abc", WEIGHT_RAW)])
    with pytest.raises(OciError, match="404"):
        scan_artifact(registry.url, "ml/f", "sha256:" + "0" * 64)
    with pytest.raises(OciError, match="404"):
        scan_artifact(registry.url, "ml/nothere", "v1")
    registry.faults[f"/v2/ml/f/blobs/{digest_of(b'abc')}"] = 500
    with pytest.raises(OciError, match="HTTP 500"):
        scan_artifact(registry.url, "ml/f", digest)
    registry.faults[f"/v2/ml/f/manifests/{digest}"] = 503
    with pytest.raises(OciError, match="HTTP 503"):
        scan_artifact(registry.url, "ml/f", digest)


def test_timeouts(registry: FakeRegistry) -> None:
    digest = registry.push_model("ml/slow", [("a.bin", b"abcdef", WEIGHT_RAW)])
    limits = OciLimits(timeout_seconds=1)
    registry.faults[f"/v2/ml/slow/manifests/{digest}"] = ("sleep", 2.5)
    with pytest.raises(OciError, match="timed out"):
        scan_artifact(registry.url, "ml/slow", digest, limits=limits)
    del registry.faults[f"/v2/ml/slow/manifests/{digest}"]
    registry.faults[f"/v2/ml/slow/blobs/{digest_of(b'abcdef')}"] = ("drip", 2.5)
    with pytest.raises(OciError, match="timed out"):
        scan_artifact(registry.url, "ml/slow", digest, limits=limits)


def test_unreachable_registry() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OciError, match="cannot reach"):
        scan_artifact(f"http://127.0.0.1:{port}", "ml/x", "v1")


def test_docker_v2_manifests_and_media_type_mismatch(registry: FakeRegistry) -> None:
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    layer = registry.blob(EVIL, "application/vnd.docker.image.rootfs.diff.tar.gzip")
    layer["mediaType"] = "application/octet-stream"  # a raw blob, not a tar
    config = registry.blob(b"{}", "application/vnd.docker.container.image.v1+json")
    document = {"schemaVersion": 2, "mediaType": docker, "config": config, "layers": [layer]}
    digest = registry.put_manifest("ml/docker", document, media_type=docker)
    scan = scan_artifact(registry.url, "ml/docker", digest)
    assert scan.artifact.media_type == docker and not scan.artifact.is_model
    assert not scan.report.verdict.passed
    # The registry serves one type, the document claims another: refused, not guessed.
    registry.manifests[("ml/docker", digest)] = (
        OCI_MANIFEST,
        registry.manifests[("ml/docker", digest)][1],
    )
    with pytest.raises(OciError, match="manifest says"):
        scan_artifact(registry.url, "ml/docker", digest)
    # schema 1 and unknown manifest types are refused.
    old = {"schemaVersion": 1, "name": "ml/docker", "fsLayers": []}
    digest = registry.put_manifest(
        "ml/docker", old, media_type="application/vnd.docker.distribution.manifest.v1+prettyjws"
    )
    with pytest.raises(OciError, match="unsupported manifest media type"):
        scan_artifact(registry.url, "ml/docker", digest)


def test_sha512_digests_are_verified(registry: FakeRegistry) -> None:
    import hashlib
    import json

    weights = safetensors_bytes()
    d512 = "sha512:" + hashlib.sha512(weights).hexdigest()
    registry.blobs[d512] = weights
    config = registry.blob(b"{}", "application/vnd.cncf.model.config.v1+json")
    layer = {
        "mediaType": WEIGHT_RAW,
        "digest": d512,
        "size": len(weights),
        "annotations": {"org.opencontainers.image.title": "w.safetensors"},
    }
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    body = json.dumps(document).encode()
    m512 = "sha512:" + hashlib.sha512(body).hexdigest()
    registry.manifests[("ml/s", m512)] = (OCI_MANIFEST, body)
    scan = scan_artifact(registry.url, "ml/s", m512)
    assert scan.report.verdict.passed and scan.files[0].layer.digest == d512
    registry.blobs[d512] = weights[:-1] + b"\x07"
    with pytest.raises(OciError, match="does not match its digest"):
        scan_artifact(registry.url, "ml/s", m512)


def test_hostile_tar_members_stay_inside_the_archive(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    """Tar layers are walked as streams, never extracted: '..' members and links write nothing."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../../../escaped.pkl")
        info.size = len(EVIL)
        tar.addfile(info, io.BytesIO(EVIL))
        link = tarfile.TarInfo("model/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    digest = registry.push_model("ml/hostile", [("model", buf.getvalue(), WEIGHT_TAR_GZ)])
    work = tmp_path / "work"
    work.mkdir()
    scan = scan_artifact(registry.url, "ml/hostile", digest, workdir=work)
    assert not scan.report.verdict.passed
    assert any(
        f.location.member and f.location.member[-1].endswith("escaped.pkl")
        for f in scan.report.findings
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]


def test_safe_name_property() -> None:
    """Whatever an annotation says, an accepted name stays under the root."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(["a", "b", ".", "/", "..", "\\", ":", " ", "\x00", "é", "~"])

    @settings(max_examples=300, derandomize=True, database=None)
    @given(st.lists(alphabet, max_size=12).map("".join))
    def check(raw: str) -> None:
        try:
            name = safe_name(raw)
        except OciError:
            return
        root = Path("/root-dir")
        target = (root / name).resolve()
        assert target.is_relative_to(root) and target != root
        assert ".." not in name.split("/") and not name.startswith("/")

    check()


def test_cli_scan_oci_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``supplychain scan oci://...``: credentials from the environment, exit codes as any scan."""
    import json

    from supplychain.cli import main

    with fake_registry(auth="bearer") as reg:
        evil = reg.push_model("ml/evil", [("pytorch_model.bin", EVIL, WEIGHT_RAW)], tag="v1")
        clean = reg.push_model("ml/clean", [("model.safetensors", safetensors_bytes(), WEIGHT_RAW)])
        monkeypatch.setenv("SUPPLYCHAIN_OCI_USERNAME", "robot$ml")
        monkeypatch.setenv("SUPPLYCHAIN_OCI_PASSWORD", "s3cr3t")
        assert main(["scan", f"oci://{reg.host}/ml/evil:v1", "--format", "json", "--quiet"]) == 1
        doc = json.loads(capsys.readouterr().out)
        assert doc["target"] == [f"{reg.host}/ml/evil@{evil}"]
        assert any(f["rule"].startswith("PKL") for f in doc["findings"])
        assert main(["scan", f"oci://{reg.host}/ml/clean@{clean}", "--quiet"]) == 0
        capsys.readouterr()
        reg.served_bytes[digest_of(safetensors_bytes())] = b"\0" * len(safetensors_bytes())
        assert main(["scan", f"oci://{reg.host}/ml/clean@{clean}", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "does not match its digest" in err and "s3cr3t" not in err
        monkeypatch.setenv("SUPPLYCHAIN_OCI_PASSWORD", "wrong")
        assert main(["scan", f"oci://{reg.host}/ml/evil:v1", "--quiet"]) == 2
        assert "401" in capsys.readouterr().err
        assert main(["scan", "oci://ml/evil:v1"]) == 2  # no registry named
