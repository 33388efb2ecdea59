"""Model-signing bundles: a key pair made here, a model signed with ``model-signing``, tampered."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from supplychain.core.model import Severity
from supplychain.provenance import signing
from supplychain.provenance.manifest import ExpectedFile, Manifest
from supplychain.provenance.verify import ProvenanceOptions, run_verify
from tests.provenance.helpers import by_rule

pytest.importorskip("model_signing", reason="the supplychain[signing] extra is not installed")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A P-256 key pair in PEM files: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp_path / "key.pem", tmp_path / "key.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


@pytest.fixture
def signed(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    """A model directory signed with ``model-signing`` (``model.sig`` inside it)."""
    from model_signing import hashing
    from model_signing import signing as ms

    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    (root / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}" * 40)
    ignore = [Path("model.sig")]
    hcfg = hashing.Config().use_file_serialization(ignore_paths=ignore)  # type: ignore[no-untyped-call]
    cfg = ms.Config().use_elliptic_key_signer(private_key=keys[0])  # type: ignore[no-untyped-call]
    cfg = cfg.set_hashing_config(hcfg)
    cfg.sign(root, root / "model.sig")
    return root


def test_signed_model_verifies(signed: Path, keys: tuple[Path, Path]) -> None:
    report = run_verify([signed], ProvenanceOptions(public_key=keys[1], require_signature=True))
    assert [f.severity for f in by_rule(report, "PRV115")] == [Severity.INFO]
    assert [f for f in report.findings if f.rule in ("PRV116", "PRV117", "PRV118")] == []
    assert report.verdict is not None and report.verdict.passed


def test_tampered_file_names_the_file(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "config.json").write_text('{"model_type": "bert", "auto_map": {}}\n')
    report = run_verify([signed], ProvenanceOptions(public_key=keys[1]))
    hits = by_rule(report, "PRV116")
    assert [f.location.path for f in hits] == ["config.json"], [f.message for f in hits]
    assert hits[0].severity is Severity.CRITICAL
    assert by_rule(report, "PRV115") == []
    assert report.verdict is not None and not report.verdict.passed


def test_wrong_key_is_invalid(signed: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other.pub"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    report = run_verify([signed], ProvenanceOptions(public_key=other))
    assert len(by_rule(report, "PRV116")) == 1 and by_rule(report, "PRV115") == []


def test_file_added_after_signing_is_not_covered(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "extra.bin").write_bytes(b"\x80\x04K\x01.")
    report = run_verify([signed], ProvenanceOptions(public_key=keys[1]))
    assert [f.location.path for f in by_rule(report, "PRV118")] == ["extra.bin"]
    assert report.verdict is not None and not report.verdict.passed


def test_unsigned_when_required_is_high(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "config.json").write_text("{}\n")
    report = run_verify([root], ProvenanceOptions(public_key=keys[1], require_signature=True))
    assert [f.severity for f in by_rule(report, "PRV117")] == [Severity.HIGH]
    assert run_verify([root], ProvenanceOptions(public_key=keys[1])).findings == ()


def test_malformed_bundle_is_invalid(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "model.sig").write_text('{"dsseEnvelope": {"payload": "!!"}}')
    report = run_verify([signed], ProvenanceOptions(public_key=keys[1]))
    assert len(by_rule(report, "PRV116")) == 1


def test_signed_digest_cross_checked_with_hub(signed: Path, keys: tuple[Path, Path]) -> None:
    data = (signed / "model.safetensors").read_bytes()
    good = hashlib.sha256(data).hexdigest()
    for hub_sha, expect in ((good, 0), ("f" * 64, 1)):
        hub = Manifest(
            "hf:x/y@abc",
            {"model.safetensors": ExpectedFile("model.safetensors", len(data), sha256=hub_sha)},
        )
        found = signing.verify(signed, {}, public_key=keys[1], hub=hub)
        assert len([f for f in found if f.rule == "PRV119"]) == expect


def test_signed_file_deleted_is_named(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "model.safetensors").unlink()
    report = run_verify([signed], ProvenanceOptions(public_key=keys[1]))
    hits = by_rule(report, "PRV116")
    assert [f.location.path for f in hits] == ["model.safetensors"], [f.message for f in hits]
    assert "missing" in hits[0].message


def _scan_json(target: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    import json

    from supplychain.cli import main

    capsys.readouterr()
    code = main(["scan", str(target), "--format", "json", "--quiet", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_policy_file_public_key_verifies_the_signature(
    signed: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The policy beside the model (found by walking up) names the key relative to itself.
    (signed.parent / "supplychain.toml").write_text('[signing]\npublic_key = "key.pub"\n')
    code, report = _scan_json(signed, capsys)
    rules = {f["rule"] for f in report["findings"]}
    assert code == 0 and "PRV115" in rules, rules
    (signed / "config.json").write_text('{"model_type": "bert", "auto_map": {}}\n')
    code, report = _scan_json(signed, capsys)
    assert code == 1
    assert [f["location"]["path"] for f in report["findings"] if f["rule"] == "PRV116"] == [
        "config.json"
    ]


def test_policy_file_require_fails_an_unsigned_model(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "config.json").write_text("{}\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[signing]\npublic_key = "{keys[1]}"\nrequire = true\n')
    code, report = _scan_json(root, capsys, "--policy", str(policy))
    assert code == 1
    assert any(f["rule"] == "PRV117" for f in report["findings"])
    policy.write_text(f'[signing]\npublic_key = "{keys[1]}"\n')
    code, _ = _scan_json(root, capsys, "--policy", str(policy))
    assert code == 0


def test_policy_signing_table_rejects_unknown_keys(tmp_path: Path) -> None:
    from supplychain import policy as pol
    from supplychain.core.errors import ConfigError

    path = tmp_path / "p.toml"
    path.write_text('[signing]\npublic_keys = "k.pub"\n')
    with pytest.raises(ConfigError, match="public_keys"):
        pol.load_policy(path)
    path.write_text('[signing]\npublic_key = "k.pub"\ncertificate_chain = ["a.pem"]\n')
    loaded = pol.load_policy(path).signing
    assert loaded.public_key == str(tmp_path / "k.pub")
    assert loaded.certificate_chain == (str(tmp_path / "a.pem"),)
