"""AI-BOM: a CycloneDX ML-BOM built from a judged report's records, facts and findings.

Imports only ``supplychain.core`` and ``cyclonedx`` (``tests/test_layering.py``); the command
(``supplychain/sbom_cli.py``) runs the scan, provenance and dataset analysis, then ``build``.
"""

from __future__ import annotations

from sbom.builder import (
    DEFAULT_SPEC,
    SPECS,
    BomError,
    DatasetInput,
    HubSource,
    Library,
    build,
    validate,
)


def environment() -> tuple[Library, ...]:
    """The running interpreter's installed distributions (``--environment``), sorted, unique."""
    from importlib import metadata

    seen: dict[str, Library] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        version = dist.version
        if not name or not version:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        seen.setdefault(key, Library(name=key, version=version))
    return tuple(sorted(seen.values(), key=lambda lib: (lib.name, lib.version)))


__all__ = [
    "DEFAULT_SPEC",
    "SPECS",
    "BomError",
    "DatasetInput",
    "HubSource",
    "Library",
    "build",
    "environment",
    "validate",
]
