"""Model cards (``README.md`` with YAML front matter): ``card.*`` facts for the AI-BOM.

The front matter is what the Hugging Face Hub reads as card data (licence, base model, datasets,
languages, task, library, evaluation results). It is read line by line up to the closing ``---``
under a byte cap, composed with PyYAML's safe composer and turned into plain values under a node
and depth budget (``scanners._yaml.load_yaml_bounded``: alias bombs stop at the budget), never
constructed. Facts report only what the card says; nothing is inferred. A card whose front
matter cannot be analysed (not UTF-8, unterminated, bad YAML, not a mapping, over a budget) is a
HIGH finding: the BOM would otherwise silently lose its licence and lineage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners._yaml import YamlError, load_yaml_bounded
from scanners.base import Artifact, ScanContext
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, FactValue, Finding, Rule, Severity
from supplychain.core.rules import make_rule

MAX_FRONT_MATTER_BYTES = 1 << 20
"""Longest front matter read (real ones, even with large model-index tables, are KiB)."""
MAX_FRONT_MATTER_NODES = 50_000
"""YAML nodes built from the front matter, alias expansions included."""
MAX_METRICS = 32
"""Evaluation results kept as ``card.metrics.<i>.*`` facts."""

MDC001 = make_rule(
    "MDC001",
    "Model card front matter could not be analysed",
    Severity.HIGH,
    "The README opens a YAML front matter block (a '---' line) that is not UTF-8, is never "
    "closed, does not parse as YAML or is not a mapping. Hub tooling reads licence, base model and "
    "datasets from it; an unreadable block means the AI-BOM cannot state them, and a lenient "
    "parser elsewhere may read something else. Unanalysed fails closed.",
    "Fix the front matter (a YAML mapping between two '---' lines) or inspect the card by hand.",
    cwe=20,
)
MDC002 = make_rule(
    "MDC002",
    "Model card front matter exceeds the analysis budget",
    Severity.HIGH,
    "The front matter is larger than the byte cap, nests too deeply, or expands (through YAML "
    "aliases) to more nodes than the budget: the shape of an alias bomb aimed at tools that read "
    "card data. Analysis stopped there, so the card's facts are missing.",
    "Shrink the front matter; real cards hold a few KiB of plain keys and no aliases.",
    cwe=400,
)
MDC003 = make_rule(
    "MDC003",
    "Model card front matter names Python objects",
    Severity.HIGH,
    "The front matter carries '!!python/...' tags. A tool that loads card data with an unsafe "
    "yaml.load would construct (run) them; card data has no reason to name Python callables.",
    "Remove the tagged values and treat the repository as hostile until reviewed.",
    cwe=502,
)
CARD_RULES: tuple[Rule, ...] = (MDC001, MDC002, MDC003)

_LIST_KEYS = ("base_model", "datasets", "language", "tags", "metrics")
"""Card keys that may be a string or a list of strings (``card.<key>`` is always a tuple)."""
_TEXT_KEYS = (
    "license",
    "license_name",
    "license_link",
    "base_model_relation",
    "pipeline_tag",
    "library_name",
    "model_name",
    "model_type",
)
_METRIC_FIELDS = ("type", "name", "value")


class FrontMatterError(ValueError):
    """The front matter block is unterminated or not UTF-8."""


def read_front_matter(artifact: Artifact, cap: int = MAX_FRONT_MATTER_BYTES) -> str:
    """The text between the opening and closing ``---`` lines, read line by line under ``cap``."""
    stream = artifact.stream
    stream.seek(0)
    first = stream.readline(cap)
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    if first.rstrip(b"\r\n").rstrip(b" \t") != b"---":
        raise FrontMatterError("the file does not open with a '---' line")
    lines: list[bytes] = []
    size = 0
    while True:
        line = stream.readline(cap - size + 1)
        if not line:
            raise FrontMatterError("the front matter has no closing '---' (or '...') line")
        if line.rstrip(b"\r\n").rstrip(b" \t") in (b"---", b"..."):
            break
        size += len(line)
        if size > cap:
            raise LimitExceeded(f"front matter is over the {cap}-byte cap")
        lines.append(line)
    try:
        return b"".join(lines).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrontMatterError(f"the front matter is not UTF-8 (byte {exc.start})") from None


def card_facts(doc: dict[str, object]) -> Iterator[tuple[str, FactValue]]:
    """``card.*`` facts from parsed front matter: only keys that are there, with usable values."""
    keys = tuple(sorted(doc))
    if keys:
        yield "card.keys", keys
    for key in _TEXT_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            yield f"card.{key}", value.strip()
        elif key == "license" and isinstance(value, list) and _strings(value):
            yield "card.licenses", _strings(value)  # several licences: listed, never combined
    for key in _LIST_KEYS:
        values = _strings(doc.get(key))
        if values:
            yield f"card.{key}", values
    yield from _model_index(doc.get("model-index"))


def _strings(value: object) -> tuple[str, ...]:
    """A string or a list of strings as a tuple (other shapes give nothing)."""
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())
    return ()


def _model_index(index: object) -> Iterator[tuple[str, FactValue]]:
    """``model-index`` results: ``card.model_index.name`` and ``card.metrics.<i>.*`` facts."""
    if not isinstance(index, list):
        return
    count = 0
    for entry in index:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            yield "card.model_index.name", name.strip()
        results = entry.get("results")
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            task = result.get("task")
            dataset = result.get("dataset")
            task_type = task.get("type") if isinstance(task, dict) else None
            data_name = None
            if isinstance(dataset, dict):
                data_name = dataset.get("name") or dataset.get("type")
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if not isinstance(metric, dict) or count >= MAX_METRICS:
                    continue
                value = metric.get("value")
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    continue
                prefix = f"card.metrics.{count}"
                count += 1
                for field in _METRIC_FIELDS:
                    got = metric.get(field)
                    if isinstance(got, bool):
                        continue
                    if isinstance(got, int | float) or (isinstance(got, str) and got.strip()):
                        yield f"{prefix}.{field}", got.strip() if isinstance(got, str) else got
                if isinstance(task_type, str) and task_type.strip():
                    yield f"{prefix}.task", task_type.strip()
                if isinstance(data_name, str) and data_name.strip():
                    yield f"{prefix}.dataset", data_name.strip()
    if count:
        yield "card.metrics.count", count


class ModelCardScanner:
    """Reads a model card's front matter into ``card.*`` facts; unreadable cards fail closed."""

    name: ClassVar[str] = "model-card"
    version: ClassVar[str] = "1"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.MODEL_CARD})
    rules: ClassVar[tuple[Rule, ...]] = CARD_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``: one finding at most, else facts."""
        cap = min(MAX_FRONT_MATTER_BYTES, ctx.limits.max_header_bytes)
        try:
            text = read_front_matter(artifact, cap)
            parsed = load_yaml_bounded(text, max_nodes=MAX_FRONT_MATTER_NODES)
        except FrontMatterError as exc:
            yield artifact.finding(MDC001, f"{artifact.name}: {exc}; the card was not analysed")
            return
        except YamlError as exc:
            yield artifact.finding(
                MDC001,
                f"{artifact.name}: the front matter does not parse as YAML ({exc}); the card "
                "was not analysed",
            )
            return
        except LimitExceeded as exc:
            yield artifact.finding(
                MDC002, f"{artifact.name}: {exc}; the card was not analysed", evidence=str(exc)
            )
            return
        for tag in sorted(set(parsed.python_tags)):
            yield artifact.finding(
                MDC003,
                f"front matter tag {tag.removeprefix('tag:yaml.org,2002:')!r} would construct a "
                "Python object under an unsafe yaml.load",
                evidence=tag,
            )
        docs = parsed.documents
        if not docs:
            return  # an empty block ("---\n---"): nothing to state, nothing hidden
        doc = docs[0]
        if len(docs) != 1 or not isinstance(doc, dict):
            shape = f"{len(docs)} documents" if len(docs) != 1 else type(doc).__name__
            yield artifact.finding(
                MDC001,
                f"{artifact.name}: the front matter is not one YAML mapping ({shape}); the card "
                "was not analysed",
            )
            return
        for key, value in card_facts(doc):
            ctx.emit(artifact.fact(key, value))


__all__ = [
    "CARD_RULES",
    "MDC001",
    "MDC002",
    "MDC003",
    "FrontMatterError",
    "ModelCardScanner",
    "card_facts",
    "read_front_matter",
]
