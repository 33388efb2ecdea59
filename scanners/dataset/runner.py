"""The dataset scanner: one streaming pass over a dataset file, feeding every enabled check.

Rows come from ``scanners.dataset.readers`` (JSONL, CSV/TSV, Parquet, Arrow), are capped at
``Limits.max_dataset_rows``, and each ``DatasetCheck`` sees every row once and keeps bounded
state. Memory is bounded by the checks' sketches and one record/batch, never by the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from scanners.base import Artifact, ScanContext
from scanners.dataset.common import DatasetCheck, DatasetInfo
from scanners.dataset.readers import READER_RULES, open_reader, reader_findings
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
        """Stream the rows once; report the reader's findings, then each check's."""
        selected = ctx.dataset.checks
        checks: list[DatasetCheck] = [
            cls() for cls in DATASET_CHECKS if selected is None or cls.name in selected
        ]
        reader = open_reader(artifact, ctx)
        cap = ctx.limits.max_dataset_rows
        rows = 0
        capped = False
        broken: ArtifactError | None = None
        failed: list[str] = []
        records = reader.records()
        try:
            for record in records:
                if rows >= cap:
                    capped = True
                    break
                if not rows and not reader.plan.text:
                    # No text field (a numeric/tabular file): text checks would report its
                    # numbers and category codes as duplicated or conflicting "texts".
                    checks = [c for c in checks if not getattr(c, "needs_text", True)]
                rows += 1
                for check in list(checks):
                    try:
                        check.observe(record)
                    except (MemoryError, RecursionError):
                        raise
                    except Exception as exc:
                        failed.append(f"{check.name} at row {record.index}: {exc!r}")
                        checks.remove(check)
        except ArtifactError as exc:
            broken = exc  # report what the rows before the break show, then the break itself
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
        yield from reader_findings(info, reader)
        if capped:
            yield artifact.finding(
                GEN002,
                f"dataset row limit reached: only the first {cap} rows were analysed",
                evidence=f"max_dataset_rows={cap}",
                severity=Severity.HIGH,
            )
        for check in checks:
            try:
                yield from check.finish(info)
            except (MemoryError, RecursionError):
                raise
            except Exception as exc:
                failed.append(f"{check.name} in finish: {exc!r}")
        if broken is not None:
            raise broken
        if failed:
            raise DatasetCheckError("dataset check failed: " + "; ".join(failed))


# Part A (this package's text checks) and part B (duplicates, labels, triggers, outliers).
# Imported here, after the scanner, so the check modules can import the reader helpers freely.
from scanners.dataset.dups import NearDuplicateCheck  # noqa: E402
from scanners.dataset.labels import BackdoorTriggerCheck, LabelFlipCheck  # noqa: E402
from scanners.dataset.outliers import OutlierCheck  # noqa: E402
from scanners.dataset.sensitive import SensitiveDataCheck  # noqa: E402
from scanners.dataset.tabular import TabularOutlierCheck  # noqa: E402
from scanners.dataset.text import (  # noqa: E402
    HiddenUnicodeCheck,
    PromptInjectionCheck,
    RagPoisoningCheck,
)

DATASET_CHECKS: tuple[type[DatasetCheck], ...] = (
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
