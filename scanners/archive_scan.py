"""Archives and compression wrappers: walk members as bounded streams and hand each to the engine.

Nothing here analyses content. Every member is spooled (bounded RAM) and dispatched with kind
``UNKNOWN``, so the engine sniffs it by its bytes: a pickle inside a 7z (nullifAI), a gzip-wrapped
joblib pickle (google/saferpickle#41) or a zip inside a zip reaches the right scanner whatever it
is called. What the container itself does wrong (traversal names, links, CRC and header
disagreements, duplicate names, bombs) is reported here as ``ARC`` findings.

Member names are data: they are never joined to a filesystem path and nothing is ever extracted
to disk. The walking, spooling, budgets and ``ARC`` rules are the container toolkit
(``scanners.containers``), shared with the torch, Keras, NumPy and data-format scanners; this
module only routes each container kind to its walker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners.base import Artifact, ScanContext
from scanners.containers import (
    ARC008,
    ARC013,
    ARC_RULES,
    COMPRESSED_KINDS,
    Spool,
    TreeBudget,
    decompressed,
    inner_name,
    legacy_member,
    tree_budget,
    walk_7z,
    walk_tar,
    walk_zip,
)
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Rule


class ArchiveScanner:
    """Generic archives (zip, tar, 7z) and compression wrappers: check, then dispatch members."""

    name: ClassVar[str] = "archive"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.ZIP, ArtifactKind.TAR, ArtifactKind.SEVEN_ZIP} | COMPRESSED_KINDS
    )
    rules: ClassVar[tuple[Rule, ...]] = (*ARC_RULES, ARC013)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Walk the container; every member goes back to the engine to be sniffed and scanned."""
        kind = artifact.kind
        if kind is ArtifactKind.ZIP:
            yield from walk_zip(artifact, ctx)
        elif kind is ArtifactKind.TAR:
            # A tar whose first member is not sys_info is still a legacy torch checkpoint to
            # torch.load; its storages/tensors members are cut into pickles the same way.
            yield from walk_tar(artifact, ctx, handler=lambda m: legacy_member(m, ctx))
        elif kind is ArtifactKind.SEVEN_ZIP:
            yield from walk_7z(artifact, ctx)
        elif kind in COMPRESSED_KINDS:
            yield from self._unwrap(artifact, ctx)

    def _unwrap(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        with tree_budget(ctx, artifact) as tree:
            yield from self._unwrap_in(artifact, ctx, tree)

    def _unwrap_in(
        self, artifact: Artifact, ctx: ScanContext, tree: TreeBudget
    ) -> Iterator[Finding]:
        trailing: list[int] = []
        tree.member()
        spool = Spool(tree)
        error = spool.fill(decompressed(artifact.stream, artifact.kind, ctx, trailing))
        if error is not None and not isinstance(error, LimitExceeded) and not spool.size:
            spool.file.close()
            raise error
        child = artifact.child(
            inner_name(artifact.name, artifact.kind),
            ArtifactKind.UNKNOWN,
            spool.size,
            spool.stream(),
        )
        try:
            if spool.size:
                yield from ctx.dispatch(child)
        finally:
            spool.file.close()
        if trailing:
            yield artifact.finding(
                ARC008,
                f"data after the end of the {artifact.kind.value} stream",
                offset=trailing[0],
            )
        if error is not None:
            raise error
