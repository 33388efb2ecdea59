"""Offline verification of a Hugging Face cache snapshot (no network at all).

Layout (``huggingface_hub`` 2.x)::

    models--org--name/blobs/<sha256 or git sha1>   content-addressed objects
    models--org--name/refs/main                    40-hex commit
    models--org--name/snapshots/<commit>/<path>    links into blobs/
    models--org--name/trees/<commit>.json          the client's cached tree (when present)

Each snapshot entry's blob is re-hashed against its own name (a 64-hex name is sha256, a 40-hex
one git sha1), and the snapshot's file set is compared with ``trees/<commit>.json`` when present.
The tree is written by the client, so it is unsigned evidence: online verification is stronger.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from supplychain.core.model import Confidence, Finding, Location, Rule
from supplychain.provenance.manifest import (
    Comparison,
    ExpectedFile,
    FileState,
    LocalFile,
    Manifest,
    compare,
)
from supplychain.provenance.rules import PRV106, PRV112, PRV113, PRV114

SNAPSHOT_DIR = re.compile(r"^(models|datasets|spaces)--(.+)$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TREE_LIMIT = 64 * 2**20


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    """A snapshot directory inside an HF cache repo folder."""

    repo_dir: Path
    snapshot: Path
    commit: str
    repo_id: str
    repo_type: str


def find_snapshot(path: Path) -> CacheSnapshot | None:
    """``path`` as a cache snapshot (``…/models--org--name/snapshots/<commit>``), else ``None``."""
    path = Path(os.path.abspath(path))  # noqa: PTH100 - keep the snapshot link, no resolve
    if path.parent.name != "snapshots" or not HEX40.match(path.name):
        return None
    repo_dir = path.parent.parent
    m = SNAPSHOT_DIR.match(repo_dir.name)
    if m is None or not (repo_dir / "blobs").is_dir():
        return None
    kind = {"models": "model", "datasets": "dataset", "spaces": "space"}[m.group(1)]
    return CacheSnapshot(repo_dir, path, path.name, m.group(2).replace("--", "/", 1), kind)


def _blob_name(lf: LocalFile, snap: CacheSnapshot) -> tuple[str, Path] | None:
    """The blob a snapshot link points at, if it points inside this repo's ``blobs/``."""
    try:
        target = Path(os.path.realpath(lf.real))
        blobs = Path(os.path.realpath(snap.repo_dir / "blobs"))
    except OSError:
        return None
    if target.parent != blobs:
        # 2.x may link blobs on to a shared store: judge by the link's own blob name then.
        if not lf.real.is_symlink():
            return None
        link = lf.real.parent / lf.real.readlink()
        if link.parent.name == "blobs":
            return link.name, target
        return None
    return target.name, target


def _tree_manifest(snap: CacheSnapshot) -> Manifest | str | None:
    """The cached tree as a manifest; ``None`` if absent, an error text if unreadable."""
    tree = snap.repo_dir / "trees" / f"{snap.commit}.json"
    if not tree.exists():
        return None
    try:
        raw = tree.read_bytes()[: TREE_LIMIT + 1]
        if len(raw) > TREE_LIMIT:
            return "cached tree is too big"
        doc = json.loads(raw)
        entries = doc["files"]
        if not isinstance(entries, dict):
            return "cached tree has no file map"
        files: dict[str, ExpectedFile] = {}
        for name, meta in entries.items():
            lfs = meta.get("lfs_sha256")
            if isinstance(lfs, str) and HEX64.match(lfs):
                files[name] = ExpectedFile(name, meta.get("lfs_size"), sha256=lfs)
            elif isinstance(meta.get("blob_id"), str) and HEX40.match(meta["blob_id"]):
                files[name] = ExpectedFile(name, meta.get("size"), git_oid=meta["blob_id"])
            else:
                files[name] = ExpectedFile(name, meta.get("size"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return f"cached tree unreadable: {type(exc).__name__}"
    source = f"hf-cache:{snap.repo_id}@{snap.commit[:12]}"
    return Manifest(source, files, snap.repo_id, snap.repo_type, snap.commit)


def verify_snapshot(snap: CacheSnapshot, local: dict[str, LocalFile]) -> Comparison:
    """Blob names against contents, then the file set against the cached tree (if any)."""
    findings: list[Finding] = []
    states: dict[str, FileState] = {}

    def finding(rule: Rule, path: str, msg: str, ev: str = "") -> None:
        findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                confidence=Confidence.HIGH,
                message=msg,
                location=Location(path=path),
                evidence=ev,
            )
        )

    for path, lf in sorted(local.items()):
        named = _blob_name(lf, snap) if lf.real.is_symlink() else None
        if named is None:
            continue
        name, _target = named
        algorithm = "sha256" if HEX64.match(name) else "git-sha1" if HEX40.match(name) else ""
        if not algorithm:
            continue
        got = lf.digest(algorithm)
        if got is None:
            finding(PRV113, path, f"{path}: cache blob unreadable: {lf.error}")
            states[path] = FileState(path, "unverifiable", reason=lf.error)
        elif got != name:
            msg = f"{path}: cache blob {name[:16]}… holds content hashing to {got[:16]}…"
            finding(PRV112, path, msg, f"blob {name}")
            states[path] = FileState(path, "mismatch", algorithm, name, got, "blob name mismatch")
        else:
            states[path] = FileState(path, "verified", algorithm, name, got, "cache blob name")
    manifest = _tree_manifest(snap)
    if isinstance(manifest, str):
        finding(PRV106, ".", f"cache snapshot {snap.commit[:12]}: {manifest}")
    elif manifest is None:
        msg = f"no trees/{snap.commit}.json: the snapshot's file set is not verifiable offline"
        finding(PRV114, ".", msg, snap.commit)
        for path in local:
            if path not in states:
                why = "not a cache link and no cached tree"
                finding(PRV113, path, f"{path}: {why}")
                states[path] = FileState(path, "unverifiable", reason=why)
    else:
        tree = compare(manifest, local)
        findings.extend(tree.findings)
        for s in tree.states:
            prior = states.get(s.path)
            if prior is None or prior.state == "verified":
                states[s.path] = s
    return Comparison(tuple(findings), tuple(states[p] for p in sorted(states)))


def snapshot_of_repo_dir(path: Path, revision: str | None = None) -> Path | None:
    """``models--org--name`` → its snapshot for ``revision`` (``refs/<rev>`` or a commit)."""
    if SNAPSHOT_DIR.match(path.name) is None or not (path / "snapshots").is_dir():
        return None
    rev = revision or "main"
    if HEX40.match(rev):
        commit = rev
    else:
        ref = path / "refs" / rev
        try:
            commit = ref.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not HEX40.match(commit) or ".." in rev.split("/"):
            return None
    snap = path / "snapshots" / commit
    return snap if snap.is_dir() else None
