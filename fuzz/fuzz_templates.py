"""Fuzz the chat-template analyser (``scanners.template_scan``) and the model-config reader.

A template arrives three ways: a bare ``.jinja`` file, a ``chat_template.json`` and the
``chat_template`` key of ``tokenizer_config.json`` (which the config scanner also reads)."""

from __future__ import annotations

from fuzz._common import Target, run_targets
from scanners.config_scan import ConfigScanner
from scanners.template_scan import TemplateScanner
from supplychain.core.model import ArtifactKind

TARGETS: tuple[Target, ...] = (
    Target(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, "chat_template.jinja"),
    Target(TemplateScanner, ArtifactKind.CHAT_TEMPLATE, "chat_template.json"),
    Target(TemplateScanner, ArtifactKind.MODEL_CONFIG, "tokenizer_config.json"),
    Target(ConfigScanner, ArtifactKind.MODEL_CONFIG, "config.json"),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """One fuzz iteration: every target on the same bytes."""
    run_targets(TARGETS, data)


if __name__ == "__main__":
    import sys

    from fuzz.__main__ import run

    raise SystemExit(run("fuzz_templates", sys.argv[1:]))
