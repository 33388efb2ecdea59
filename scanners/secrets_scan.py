"""Secrets in the text shipped with a model: README/model cards, configs, notebooks, code.

The stream is read in bounded chunks with an overlap, so memory stays at one chunk whatever the
file size and a secret that straddles two chunks is still seen whole. Bytes are decoded as
latin-1 (one character per byte: match offsets are byte offsets, and every secret format is
ASCII). Findings carry the byte offset in ``Location.offset`` and the line number in the
message; evidence is ``secrets.redact`` output only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners.base import Artifact, ScanContext
from scanners.secrets import SECRET_RULES, find_secrets
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Rule

CHUNK = 1 << 20
"""Bytes read per step."""
OVERLAP = 16 << 10
"""Bytes carried into the next step: longer than any secret we match (a 4096-bit PEM key is
about 3.3 KB; the PEM pattern stops at 12,000 characters)."""


class SecretsScanner:
    """Credentials (provider keys, private keys, JWTs, connection strings) in text files."""

    name: ClassVar[str] = "secrets"
    version: ClassVar[str] = "1"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {
            ArtifactKind.CHAT_TEMPLATE,
            ArtifactKind.MODEL_CARD,
            ArtifactKind.MODEL_CONFIG,
            ArtifactKind.PYTHON_SOURCE,
            ArtifactKind.REQUIREMENTS,
            ArtifactKind.TEXT,
            ArtifactKind.YAML_CONFIG,
        }
    )
    rules: ClassVar[tuple[Rule, ...]] = SECRET_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Stream the text once; yield one finding per secret (the engine caps them per file)."""
        stream = artifact.stream
        stream.seek(0)
        budget = ctx.limits.max_read_bytes
        carry = ""
        carry_start = 0  # absolute offset of ``carry``'s first byte
        lines_before = 0  # newlines before ``carry``
        reported: set[tuple[int, str]] = set()
        read = 0
        while True:
            chunk = stream.read(CHUNK)
            read += len(chunk)
            if read > budget:
                raise LimitExceeded(f"text larger than max_read_bytes ({budget})")
            eof = not chunk
            buf = carry + chunk.decode("latin-1")
            # Matches starting in the tail may be cut off: leave them to the next round.
            horizon = len(buf) if eof else max(0, len(buf) - OVERLAP)
            for match in find_secrets(buf):
                if match.start >= horizon:
                    continue
                absolute = carry_start + match.start
                key = (absolute, match.kind)
                if key in reported:
                    continue
                reported.add(key)
                line = lines_before + buf.count("\n", 0, match.start) + 1
                yield artifact.finding(
                    match.rule,
                    f"{match.rule.title} ({match.kind}) on line {line}",
                    evidence=match.redacted,
                    offset=absolute,
                    severity=match.severity,
                    confidence=match.confidence,
                )
            if eof:
                break
            keep_from = max(0, len(buf) - OVERLAP)
            lines_before += buf.count("\n", 0, keep_from)
            carry_start += keep_from
            carry = buf[keep_from:]
            reported = {k for k in reported if k[0] >= carry_start}


__all__ = ["CHUNK", "OVERLAP", "SecretsScanner"]
