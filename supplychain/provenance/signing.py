"""OpenSSF model-signing bundles (``model.sig``), verified offline with ``model-signing``.

The bundle is a Sigstore bundle whose DSSE payload is an in-toto statement listing each file's
digest. ``model-signing`` checks the signature (a public key, or a certificate chain) and the
files it lists; this module adds what a gate needs: the file named in each mismatch, files
present but not covered by the signature, and a cross-check of the signed sha256 against the
Hub's LFS sha256. The library is the ``supplychain[signing]`` extra; without it a required
signature fails closed with a message saying so.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from supplychain.core.model import Confidence, Finding, Location, Rule
from supplychain.provenance.manifest import LocalFile, Manifest, ignored
from supplychain.provenance.rules import PRV115, PRV116, PRV117, PRV118, PRV119

SIGNATURE_NAME = "model.sig"
DEFAULT_IGNORED = (".gitattributes", ".gitignore", SIGNATURE_NAME)
BUNDLE_LIMIT = 16 * 2**20


def _f(rule: Rule, path: str, message: str, evidence: str = "") -> Finding:
    return Finding(
        rule=rule.id,
        severity=rule.severity,
        confidence=Confidence.HIGH,
        message=message,
        location=Location(path=path),
        evidence=evidence,
    )


def signed_digests(sig: Path) -> dict[str, tuple[str, str]]:
    """Signed file name → (algorithm, digest) from the bundle's in-toto statement (unverified)."""
    raw = sig.read_bytes()[: BUNDLE_LIMIT + 1]
    if len(raw) > BUNDLE_LIMIT:
        raise ValueError("signature bundle too large")
    bundle = json.loads(raw)
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    predicate = payload.get("predicate", {})
    out: dict[str, tuple[str, str]] = {}
    for r in predicate.get("resources", []):
        out[str(r["name"])] = (str(r.get("algorithm", "")), str(r["digest"]))
    if not out:  # legacy Digests/v0.1: per-file subjects
        for s in payload.get("subject", []):
            for alg, dig in s.get("digest", {}).items():
                out[str(s["name"])] = (str(alg), str(dig))
    return out


def verify(
    root: Path,
    local: Mapping[str, LocalFile],
    *,
    signature: Path | None = None,
    public_key: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    require: bool = False,
    hub: Manifest | None = None,
) -> list[Finding]:
    """Findings for the signature of the model at ``root`` (none when unsigned and not required)."""
    sig = signature or root / SIGNATURE_NAME
    sig_rel = sig.name if sig.parent == root else str(sig)
    if not sig.is_file():
        if require:
            return [_f(PRV117, ".", f"no signature ({sig.name}) but a signature is required")]
        return []
    if public_key is None and not certificate_chain:
        if require:
            msg = "signature present but no --public-key or --certificate-chain to verify it with"
            return [_f(PRV117, sig_rel, msg)]
        return []
    try:
        from model_signing import verifying
    except ImportError as exc:
        msg = f"model-signing is not installed (pip install 'supplychain[signing]'): {exc}"
        return [_f(PRV117, sig_rel, msg)]
    try:
        signed = signed_digests(sig)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return [_f(PRV116, sig_rel, f"signature bundle is malformed: {type(exc).__name__}")]
    findings: list[Finding] = []
    try:
        cfg = verifying.Config()  # type: ignore[no-untyped-call]
        if public_key is not None:
            cfg = cfg.use_elliptic_key_verifier(public_key=public_key)
        else:
            cfg = cfg.use_certificate_verifier(
                certificate_chain=list(certificate_chain), log_fingerprints=False
            )
        cfg.set_ignore_unsigned_files(True)
        cfg.verify(root, sig)
    except Exception as exc:
        text = str(exc)
        named = set(re.findall(r"Hash mismatch for \\*'([^'\\]+)\\*'", text))
        gone: set[str] = set()
        for name, (alg, digest) in signed.items():  # name the files ourselves where we can
            lf = local.get(name)
            if lf is None:  # never open a name taken from the bundle: the local set decides
                gone.add(name)
            elif alg == "sha256" and lf.digest("sha256") not in (digest, None):
                named.add(name)
        findings.extend(
            _f(PRV116, name, f"{name} does not match the signed digest", sig_rel)
            for name in sorted(named)
        )
        findings.extend(
            _f(PRV116, name, f"signed file {name} is missing", sig_rel) for name in sorted(gone)
        )
        if not findings:
            msg = f"signature does not verify: {type(exc).__name__}: {text[:300]}"
            findings.append(_f(PRV116, sig_rel, msg))
        return findings
    findings.extend(
        _f(PRV118, path, f"{path} is not covered by {sig.name}", sig_rel)
        for path in sorted(local)
        if path not in signed and not ignored(path, DEFAULT_IGNORED) and path != sig_rel
    )
    if hub is not None:
        for name, (alg, digest) in sorted(signed.items()):
            exp = hub.files.get(name)
            if exp is not None and exp.sha256 and alg == "sha256" and exp.sha256 != digest:
                msg = f"{name}: signed sha256 {digest[:16]}…, Hub LFS sha256 {exp.sha256[:16]}…"
                findings.append(_f(PRV119, name, msg, hub.source))
    findings.append(_f(PRV115, sig_rel, f"{sig.name} verifies for {len(signed)} file(s)"))
    return findings
