"""Template scanner: chat templates in template files, JSON and YAML configs.

The analysis lives in ``scanners.template_analysis`` (shared with the GGUF scanner, whose
metadata carries ``tokenizer.chat_template``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

from scanners._jsonpos import BOM, JsonSource, byte_offset
from scanners._yaml import YamlError, load_yaml_bounded, read_yaml_text
from scanners.base import Artifact, ScanContext
from scanners.template_analysis import (
    MAX_TEMPLATE_BYTES,
    TEMPLATE_RULES,
    TPL006,
    analyze_template,
    document_templates,
    looks_like_template,
    may_name_chat_template,
    may_name_template,
    pairs_keep_all,
    template_findings,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Finding, Rule


class TemplateScanner:
    """Chat templates in ``*.jinja`` / ``chat_template.json`` files and JSON model configs."""

    name: ClassVar[str] = "template"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.CHAT_TEMPLATE, ArtifactKind.MODEL_CONFIG, ArtifactKind.YAML_CONFIG}
    )
    rules: ClassVar[tuple[Rule, ...]] = TEMPLATE_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Configs are read up to ``max_header_bytes``; larger ones fail."""
        if artifact.kind is ArtifactKind.YAML_CONFIG:
            yield from self._yaml(artifact, ctx)
            return
        cap = ctx.limits.max_header_bytes
        if artifact.size > cap:
            raise LimitExceeded(f"{artifact.kind.value} file of {artifact.size} bytes over {cap}")
        artifact.stream.seek(0)
        raw = artifact.stream.read(cap + 1)
        if len(raw) > cap:
            raise LimitExceeded(f"{artifact.kind.value} file larger than {cap} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"not UTF-8 text: {exc.reason}", exc.start) from None
        is_json = artifact.kind is ArtifactKind.MODEL_CONFIG or artifact.name.lower().endswith(
            ".json"
        )
        bom = len(BOM) if raw.startswith(BOM) else 0
        if not is_json:
            yield from template_findings(
                artifact, text, artifact.name, position=lambda pos: byte_offset(text, pos, bom)
            )
            return
        if artifact.kind is ArtifactKind.MODEL_CONFIG and not may_name_chat_template(text):
            # Big tokenizer.json files need no parse when the key cannot be in them.
            return
        try:
            doc = json.loads(text, object_pairs_hook=pairs_keep_all)
        except (RecursionError, ValueError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            pos = getattr(exc, "pos", None)
            at = None if pos is None else byte_offset(text, pos, bom)  # json counts characters
            if artifact.kind is ArtifactKind.CHAT_TEMPLATE:
                raise ArtifactError(f"invalid JSON: {reason}", at) from None
            # NOTE: the config scanner reports broken configs in general; we speak up only when
            # a chat template is in there, unanalysed.
            if "chat_template" in text:
                yield artifact.finding(
                    TPL006,
                    f"file names a chat_template but is not valid JSON ({reason[:120]})",
                    evidence=text[:80],
                    offset=at,
                )
            return
        yield from document_templates(artifact, doc, JsonSource(raw))

    def _yaml(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """``chat_template`` (and other template keys) at any depth of a YAML file.

        The config scanner reports YAML that does not parse or hits a limit; here we speak up only
        when such a file names a chat template, which then goes unanalysed.
        """
        text = read_yaml_text(artifact, ctx)
        if text is None or not may_name_template(text):
            return
        try:
            parsed = load_yaml_bounded(text)
        except (YamlError, LimitExceeded) as exc:
            if "chat_template" not in text:
                return  # the config scanner reports the broken or oversized YAML itself
            yield artifact.finding(
                TPL006,
                f"file names a chat_template but could not be parsed as YAML ({str(exc)[:120]}); "
                "the template was not analysed, so this fails closed",
                evidence=text[:80],
            )
            return
        for doc in parsed.documents:
            yield from document_templates(artifact, doc)


__all__ = [
    "MAX_TEMPLATE_BYTES",
    "TEMPLATE_RULES",
    "TemplateScanner",
    "analyze_template",
    "looks_like_template",
    "template_findings",
]
