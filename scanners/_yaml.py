"""Bounded, safe YAML for every scanner that reads YAML (configs, templates, model cards).

The safe loader only composes nodes; this module turns them into plain values itself, under a
node budget (alias bombs) and a depth cap, and never constructs a tagged object (``!!python/``
tags are recorded as strings, for the scanner to report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanners.base import Artifact, ScanContext
from supplychain.core.errors import LimitExceeded

MAX_YAML_BYTES = 8 * 2**20
"""Largest YAML text analysed; a bigger file is a limit finding."""


def may_hold_keys(value: object) -> bool:
    """A dict, or a list with a container in it: only those can hold a key at any depth."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(isinstance(v, dict | list) for v in value)


MAX_YAML_NODES = 200_000
"""Nodes built from a YAML document, counting every alias expansion (billion-laughs bound)."""
MAX_YAML_DEPTH = 256
"""Nesting depth of YAML collections; deeper documents are a limit finding, not a crash."""
_PY_TAG = "tag:yaml.org,2002:python/"
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(?:\.|\$|end\b|range\b|if\s+\.|include\s+\"|toYaml\b)")


class YamlError(ValueError):
    """The text is not YAML (syntax error, or a parser that gave up)."""


@dataclass(slots=True)
class YamlDoc:
    """Plain values of every document in a YAML stream, and what the parse saw on the way."""

    documents: list[object]
    python_tags: list[str]
    """``!!python/...`` tags: objects an unsafe ``yaml.load`` would construct (and run)."""


def load_yaml_bounded(text: str, *, max_nodes: int = MAX_YAML_NODES) -> YamlDoc:
    """Compose YAML with the safe loader and turn the node graph into plain values ourselves.

    Never constructs tagged objects (tags are only read as strings). Aliases are expanded under a
    node budget, so an alias bomb raises ``LimitExceeded`` after ``max_nodes`` instead of
    exhausting memory; deep nesting raises ``LimitExceeded`` too. Syntax errors raise
    ``YamlError``.
    """
    import yaml  # type: ignore[import-untyped]

    try:
        roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:
        raise LimitExceeded("YAML nested too deeply to parse") from None
    except yaml.YAMLError as exc:
        raise YamlError(" ".join(str(exc).split())[:160]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise YamlError(short_error(exc)) from None
    budget = [max_nodes]
    tags: list[str] = []
    docs = [_plain(root, 0, budget, tags) for root in roots if root is not None]
    return YamlDoc(documents=docs, python_tags=tags)


def _plain(node: object, depth: int, budget: list[int], tags: list[str]) -> object:
    """One composed node as a plain value (str/bool/int/float/None, list, dict with str keys)."""
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise LimitExceeded(
            "YAML expands to more than the node budget (alias bomb or huge document)"
        )
    if depth > MAX_YAML_DEPTH:
        raise LimitExceeded(f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
    tag = getattr(node, "tag", "") or ""
    if tag.startswith(_PY_TAG) and len(tags) < 20:
        tags.append(tag)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node.value, tag)
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, depth + 1, budget, tags) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        out: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = _plain(key_node, depth + 1, budget, tags)
            out[key if isinstance(key, str) else repr(key)] = _plain(
                value_node, depth + 1, budget, tags
            )
        return out
    return None


def _scalar(value: str, tag: str) -> object:
    """Resolved YAML 1.1 core scalars; everything else stays the source text."""
    if tag == "tag:yaml.org,2002:bool":
        return value.lower() in ("true", "yes", "on", "y")
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:int" and len(value) < 40:
        try:
            return int(value.replace("_", ""), 0)
        except ValueError:
            return value
    return value


def read_yaml_text(artifact: Artifact, ctx: ScanContext) -> str | None:
    """The YAML text (``None`` when not UTF-8); over ``MAX_YAML_BYTES`` is a limit finding."""
    cap = min(ctx.limits.max_header_bytes, MAX_YAML_BYTES)
    if artifact.size > cap:
        raise LimitExceeded(f"YAML of {artifact.size} bytes is over the {cap}-byte analysis cap")
    artifact.stream.seek(0)
    data = artifact.stream.read(cap + 1)
    if len(data) > cap:
        raise LimitExceeded(f"YAML is over the {cap}-byte analysis cap")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def looks_like_go_template(text: str) -> bool:
    """Helm/Go-templated YAML (``{{ .Values.x }}``) is not YAML until rendered by its tool."""
    return _GO_TEMPLATE.search(text) is not None


def short_error(exc: BaseException) -> str:
    """An exception as at most 160 characters of evidence."""
    text = str(exc) or type(exc).__name__
    return text[:160]


__all__ = [
    "MAX_YAML_BYTES",
    "YamlDoc",
    "YamlError",
    "load_yaml_bounded",
    "looks_like_go_template",
    "may_hold_keys",
    "read_yaml_text",
    "short_error",
]
