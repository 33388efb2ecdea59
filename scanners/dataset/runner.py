"""The dataset scanner: one streaming pass over a dataset file, feeding every enabled check.

Rows come from ``scanners.dataset.readers`` (JSONL, CSV/TSV, Parquet, Arrow), are capped at
``Limits.max_dataset_rows``, and each ``DatasetCheck`` sees every row once and keeps bounded
state. Memory is bounded by the checks' sketches and one record/batch, never by the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from scanners._extras import require
from scanners.base import Artifact, ScanContext
from scanners.dataset.common import DatasetCheck, DatasetInfo, Record, RowError, head_length
from scanners.dataset.readers import READER_RULES, dataset_facts, open_reader, reader_findings
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Finding, Rule, Severity
from supplychain.core.rules import GEN002


class DatasetCheckError(RuntimeError):
    """A check crashed on a row; the others finished, and the outcome is reported as failed."""


class DatasetScanner:
    """Poisoning and injection signals in training/RAG datasets, in one bounded pass."""

    name: ClassVar[str] = "dataset"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {
            ArtifactKind.DATASET_JSONL,
            ArtifactKind.DATASET_CSV,
            ArtifactKind.DATASET_PARQUET,
            ArtifactKind.DATASET_ARROW,
        }
    )
    rules: ClassVar[tuple[Rule, ...]] = ()
    """Filled in at the end of the module: reader rules plus every check's rules."""

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Stream the rows once; report the reader's findings, then each check's.

        The head (the first rows the checks' plans need) is read first and each check
        ``prepare``s its plan from it; then every row, head included, is observed in batches.
        """
        require("datasets")  # a skip naming the install command without the extra
        selected = ctx.dataset.checks
        checks: list[DatasetCheck[Any]] = [
            cls() for cls in DATASET_CHECKS if selected is None or cls.name in selected
        ]
        reader = open_reader(artifact, ctx)
        cap = ctx.limits.max_dataset_rows
        rows = 0
        capped = False
        broken: ArtifactError | None = None
        failed: list[str] = []
        records = reader.records()
        labels: set[str] = set()

        def limited() -> Iterator[Record]:
            nonlocal rows, capped
            for record in records:
                if rows >= cap:
                    capped = True
                    return
                rows += 1
                if record.label is not None and len(labels) < MAX_COUNTED_LABELS:
                    labels.add(record.label)
                yield record

        stream = limited()
        hrows, hchars = head_length(checks)
        head: list[Record] = []
        try:
            try:
                chars = 0
                for record in stream:
                    head.append(record)
                    chars += len(record.text)
                    if len(head) >= max(1, hrows) or chars >= max(1, hchars):
                        break
            except ArtifactError as exc:
                broken = exc  # the rows before the break are still analysed, then reported
            if head and not reader.plan.text:
                # No text field (a numeric/tabular file): text checks would report its
                # numbers and category codes as duplicated or conflicting "texts".
                checks = [c for c in checks if not getattr(c, "needs_text", True)]
            states: list[tuple[DatasetCheck[Any], Any]] = []
            for check in checks:
                try:
                    states.append((check, check.init(check.prepare(head))))
                except (MemoryError, RecursionError):
                    raise
                except Exception as exc:
                    failed.append(f"{check.name} in prepare: {exc!r}")
            states = _observe(states, head, failed)
            del head
            if broken is None:
                try:
                    batch: list[Record] = []
                    for record in stream:
                        batch.append(record)
                        if len(batch) >= BATCH_ROWS:
                            states = _observe(states, batch, failed)
                            batch = []
                    states = _observe(states, batch, failed)
                except ArtifactError as exc:
                    states = _observe(states, batch, failed)
                    broken = exc
        finally:
            records.close()  # runs the reader's cleanup even when the row cap stopped us early
        info = DatasetInfo(
            path=artifact.path,
            member=artifact.member,
            text_field=reader.plan.text_name,
            label_field=reader.plan.label,
            id_field=reader.plan.id,
            rows=rows,
            numeric_fields=tuple(reader.plan.numeric),
        )
        for key, value in dataset_facts(info, reader, len(labels)):
            ctx.emit(artifact.fact(key, value))
        yield from reader_findings(info, reader)
        if capped:
            yield artifact.finding(
                GEN002,
                f"dataset row limit reached: only the first {cap} rows were analysed",
                evidence=f"max_dataset_rows={cap}",
                severity=Severity.HIGH,
            )
        # each state is dropped once reported, so one check's analysis does not run while the
        # others' states (duplicate signatures: ~420 bytes/row) are still held
        states.reverse()
        while states:
            check, state = states.pop()
            try:
                yield from check.finish(state, info)
            except (MemoryError, RecursionError):
                raise
            except Exception as exc:
                failed.append(f"{check.name} in finish: {exc!r}")
            del state
        if broken is not None:
            raise broken
        if failed:
            raise DatasetCheckError("dataset check failed: " + "; ".join(failed))


MAX_COUNTED_LABELS = 100_000
"""Distinct labels counted for the ``dataset.labels`` fact (a count at the cap means more)."""
BATCH_ROWS = 512
"""Rows per ``observe`` call."""


def _observe(
    states: list[tuple[DatasetCheck[Any], Any]], batch: list[Record], failed: list[str]
) -> list[tuple[DatasetCheck[Any], Any]]:
    """Feed one batch to every state; a check that raises is dropped (and named)."""
    if not batch:
        return states
    kept = []
    for check, state in states:
        try:
            kept.append((check, check.observe(state, batch)))
        except (MemoryError, RecursionError):
            raise
        except RowError as exc:
            failed.append(f"{check.name} at row {exc.row}: {exc.error!r}")
        except Exception as exc:
            failed.append(f"{check.name} at rows {batch[0].index}-{batch[-1].index}: {exc!r}")
    return kept


# Part A (this package's text checks) and part B (duplicates, labels, triggers, outliers).
# Imported here, after the scanner, so the check modules can import the reader helpers freely.
from scanners.dataset.dups import NearDuplicateCheck  # noqa: E402
from scanners.dataset.labels import LabelFlipCheck  # noqa: E402
from scanners.dataset.outliers import OutlierCheck  # noqa: E402
from scanners.dataset.sensitive import SensitiveDataCheck  # noqa: E402
from scanners.dataset.tabular import TabularOutlierCheck  # noqa: E402
from scanners.dataset.text import (  # noqa: E402
    HiddenUnicodeCheck,
    PromptInjectionCheck,
    RagPoisoningCheck,
)
from scanners.dataset.triggers import BackdoorTriggerCheck  # noqa: E402

DATASET_CHECKS: tuple[type[DatasetCheck[Any]], ...] = (
    HiddenUnicodeCheck,
    PromptInjectionCheck,
    RagPoisoningCheck,
    NearDuplicateCheck,
    LabelFlipCheck,
    BackdoorTriggerCheck,
    OutlierCheck,
    TabularOutlierCheck,
    SensitiveDataCheck,
)
"""Every dataset check, selectable by ``DatasetCheck.name`` (``--checks``)."""


def _all_rules() -> tuple[Rule, ...]:
    seen: dict[str, Rule] = {}
    for rule in READER_RULES:
        seen.setdefault(rule.id, rule)
    for check in DATASET_CHECKS:
        for rule in check.rules:
            seen.setdefault(rule.id, rule)
    return tuple(sorted(seen.values(), key=lambda r: r.id))


DatasetScanner.rules = _all_rules()

__all__ = ["DATASET_CHECKS", "DatasetCheckError", "DatasetScanner"]
