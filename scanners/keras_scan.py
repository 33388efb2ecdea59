"""Keras v3 ``.keras`` zips and Keras/legacy HDF5 files: walk the model config, never load it.

The config analysis lives in ``scanners.keras_config`` (shared with the SavedModel scanner);
zip members go through the container toolkit (``scanners.containers``) under the tree budget;
HDF5 is read by libhdf5 only in a child process (``scanners._h5_child``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar

from scanners import _zip
from scanners._extras import require
from scanners._magic import HDF5_MAGIC
from scanners._paths import is_outside_path, is_url
from scanners.base import Artifact, ScanContext
from scanners.containers import Spool, TreeBudget, tree_budget
from scanners.keras_config import (
    KER001,
    KER002,
    KER003,
    KER004,
    KER005,
    KER006,
    KER007,
    KER008,
    analyze_config,
    emit_config_facts,
    hits_to_findings,
    parse_json_config,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity

EXPECTED_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})
OPTIONAL_MEMBERS = frozenset({"model.weights.npz", "model.weights.json"})


class KerasScanner:
    """See ``Scanner``: ``.keras`` archives and HDF5 files (Keras 2 ``.h5`` and plain data)."""

    name: ClassVar[str] = "keras"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.KERAS_ZIP, ArtifactKind.HDF5}
    )
    rules: ClassVar[tuple[Rule, ...]] = (
        KER001,
        KER002,
        KER003,
        KER004,
        KER005,
        KER006,
        KER007,
        KER008,
    )

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``."""
        if artifact.kind is ArtifactKind.HDF5:
            yield from self._scan_hdf5(artifact, ctx)
        else:
            yield from self._scan_zip(artifact, ctx)

    # ---- .keras zip -------------------------------------------------------------------------

    def _scan_zip(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        with tree_budget(ctx, artifact) as tree:
            yield from self._scan_zip_in(artifact, ctx, tree)

    def _scan_zip_in(
        self, artifact: Artifact, ctx: ScanContext, tree: TreeBudget
    ) -> Iterator[Finding]:
        stream, limits = artifact.stream, ctx.limits
        directory = _zip.read_directory(stream, artifact.size, limits.max_archive_members)
        for problem in directory.problems:
            yield artifact.finding(KER006, f"zip: {problem}", evidence=problem)
        counts: dict[str, int] = {}
        for entry in directory.entries:
            counts[entry.name] = counts.get(entry.name, 0) + 1
        for name, n in counts.items():
            if n > 1:
                yield artifact.finding(
                    KER006,
                    f"member {name!r} appears {n} times: a loader may read another copy",
                    evidence=name,
                    severity=Severity.HIGH,
                )
        total = sum(e.size for e in directory.entries)
        if total > limits.max_archive_total_bytes:
            raise LimitExceeded(f"archive expands to {total} bytes")
        configs = [e for e in directory.entries if e.name == "config.json"]
        errors: list[ArtifactError] = []
        for entry in configs:
            try:
                yield from self._zip_config(artifact, ctx, entry)
            except ArtifactError as exc:
                errors.append(exc)
        for entry in directory.entries:
            yield from self._zip_member(artifact, ctx, entry, tree)
        if errors:
            raise errors[0]
        if not configs:
            raise ArtifactError(".keras archive has no config.json")

    def _zip_config(
        self, artifact: Artifact, ctx: ScanContext, entry: _zip.ZipEntry
    ) -> Iterator[Finding]:
        limits = ctx.limits
        _zip.resolve(artifact.stream, entry, artifact.size)
        data = b"".join(
            _zip.iter_member(
                artifact.stream,
                entry,
                limits.max_header_bytes,
                limits.max_archive_ratio,
                min_bomb_bytes=limits.min_bomb_bytes,
            )
        )
        config = parse_json_config(data, "config.json", limits)
        emit_config_facts(artifact, ctx, config)
        yield from hits_to_findings(artifact, ctx, analyze_config(config, "config.json"))

    def _zip_member(
        self, artifact: Artifact, ctx: ScanContext, entry: _zip.ZipEntry, tree: TreeBudget
    ) -> Iterator[Finding]:
        name = entry.name
        if is_outside_path(name) or "\\" in name:
            yield artifact.finding(
                KER006,
                f"member name {name!r} escapes the archive when extracted",
                evidence=name,
                severity=Severity.HIGH,
            )
        elif not (
            name in EXPECTED_MEMBERS or name in OPTIONAL_MEMBERS or name.startswith("assets/")
        ):
            yield artifact.finding(
                KER006,
                f"unexpected member {name!r} in a .keras archive",
                evidence=name,
                severity=Severity.LOW,
            )
        if entry.is_dir or name in ("config.json", "metadata.json"):
            return
        _zip.resolve(artifact.stream, entry, artifact.size)
        for problem in entry.problems:
            yield artifact.finding(
                KER006, f"member {name!r}: {problem}", evidence=f"{name}: {problem}"
            )
        chunks = _zip.iter_member(
            artifact.stream,
            entry,
            ctx.limits.max_read_bytes,
            ctx.limits.max_archive_ratio,
            min_bomb_bytes=ctx.limits.min_bomb_bytes,
        )
        tree.member()
        spool = Spool(tree)
        error = spool.fill(chunks)
        try:
            if error is not None:
                raise error
            child = artifact.child(name, ArtifactKind.UNKNOWN, spool.size, spool.stream())
            yield from ctx.dispatch(child)
        finally:
            spool.file.close()

    # ---- HDF5 -------------------------------------------------------------------------------

    def _scan_hdf5(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        if not _has_hdf5_signature(artifact.stream, artifact.size):
            # Named .h5 but no superblock anywhere libhdf5 looks: h5py would refuse it too, so
            # don't pay a child process (~1 s) per such file (found by fuzz/fuzz_engine.py).
            raise ArtifactError("HDF5: no superblock signature at offset 0 or 512 * 2**n")
        require("keras")  # h5py, in the child process
        result = _read_hdf5_in_child(artifact, ctx)
        if result.get("error"):
            raise ArtifactError(f"HDF5: cannot read ({result['error']})")
        configs: list[tuple[str, object]] = []
        for key, text in result.get("configs", []):
            if not isinstance(text, str):
                raise ArtifactError(f"HDF5 attribute {key} is not text")
            raw = text.encode("utf-8", "replace")  # lone surrogates from a hostile attribute
            configs.append((key, parse_json_config(raw, key, ctx.limits)))
        links = [tuple(map(str, link)) for link in result.get("links", [])]
        if result.get("limit"):
            raise LimitExceeded(str(result["limit"]))
        for key, config in configs:
            if key == "model_config":
                emit_config_facts(artifact, ctx, config)
            yield from hits_to_findings(artifact, ctx, analyze_config(config, key))
        for what, where, target in links:
            outside = is_outside_path(target) or is_url(target)
            yield artifact.finding(
                KER007,
                f"HDF5 {what} at {where} reads {target!r}"
                + (" outside the model directory" if outside else ""),
                evidence=f"{where} -> {target}",
                severity=Severity.HIGH if outside else None,
            )


HDF5_SIGNATURE = HDF5_MAGIC


def _has_hdf5_signature(stream: BinaryIO, size: int) -> bool:
    """Whether the superblock signature sits where libhdf5 searches: 0, then 512, 1024, 2048…"""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        stream.seek(offset)
        if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


H5_CHILD_SECONDS = 30
"""Wall-clock cap for the sandboxed HDF5 read (real Keras files take well under a second)."""


def _read_hdf5_in_child(artifact: Artifact, ctx: ScanContext) -> dict[str, Any]:
    """Run ``scanners._h5_child`` on the artifact with a timeout; never h5py in this process.

    NOTE: a file on disk is read by path, so the child sees the file as it is now; the engine's
    changed-during-scan check (GEN003) covers a swap. Archive members are copied to a temporary
    file first (bounded by ``max_read_bytes``).
    """
    tmp: Any = None
    try:
        if artifact.fs_path is not None:
            path = str(artifact.fs_path)
        else:
            tmp = tempfile.NamedTemporaryFile(suffix=".h5")  # noqa: SIM115 - closed below
            artifact.stream.seek(0)
            copied = 0
            while block := artifact.stream.read(1 << 20):
                copied += len(block)
                if copied > ctx.limits.max_read_bytes:
                    raise LimitExceeded(f"HDF5 member over {ctx.limits.max_read_bytes} bytes")
                tmp.write(block)
            tmp.flush()
            path = tmp.name
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "scanners._h5_child", path],
                capture_output=True,
                timeout=H5_CHILD_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LimitExceeded(
                f"HDF5 parser did not finish within {H5_CHILD_SECONDS} s (hostile or corrupt file)"
            ) from None
        if proc.returncode != 0:
            raise ArtifactError(f"HDF5 parser died (exit status {proc.returncode})")
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise ArtifactError("HDF5 parser gave no result") from None
        if not isinstance(result, dict):
            raise ArtifactError("HDF5 parser gave no result")
        return result
    finally:
        if tmp is not None:
            tmp.close()
