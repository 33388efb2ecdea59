"""The engine-neutral units of a distributed dataset run: observe a partition, merge, finish.

A distributed engine only schedules these three functions; what they compute is the dataset
checks' own mergeable API (``init``/``observe``/``merge``/``finish`` in
``scanners.dataset.common``), so the findings are those of one pass over the same rows.
States are plain data of our own types, handed between our own processes by the engine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanners.dataset.common import DatasetInfo, DatasetOptions, Record, split_head
from scanners.dataset.readers import ReadIssues, dataset_facts, reader_findings
from scanners.dataset.runner import MAX_COUNTED_LABELS
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import Confidence, FactValue, Finding, Location, Severity
from supplychain.core.rules import GEN001, GEN002
from supplychain.distributed.dups_shuffle import CHECK, finish_reduced
from supplychain.distributed.shards import (
    Partition,
    PartitionReader,
    ReadPlan,
    carrier,
    merge_issues,
)

BATCH_ROWS = 1024
"""Records handed to each check's ``observe`` at once."""


@dataclass(slots=True)
class PartState:
    """What one partition (or a merged run of adjacent partitions) has seen."""

    first: int
    """Index of the first partition covered (merges keep partition order)."""
    states: dict[str, Any]
    """Check name → that check's state."""
    issues: ReadIssues = field(default_factory=ReadIssues)
    rows: int = 0
    """Records handed to the checks."""
    failed: list[str] = field(default_factory=list)
    """Checks that crashed (``name at row N: error``): the run's outcome is FAILED."""
    broken: list[tuple[str, str, bool]] = field(default_factory=list)
    """Shards that broke while read: (name, why, is a limit)."""
    labels: set[str] = field(default_factory=set)
    """Distinct labels seen (at most ``MAX_COUNTED_LABELS``, as one pass counts them)."""


def selected_checks(options: DatasetOptions, has_text: bool) -> list[Any]:
    """The check instances to run, in registry order (text checks dropped for tabular data,
    exactly as the single-machine runner does)."""
    from scanners.dataset.runner import DATASET_CHECKS

    chosen = [
        cls() for cls in DATASET_CHECKS if options.checks is None or cls.name in options.checks
    ]
    if not has_text:
        chosen = [c for c in chosen if not getattr(c, "needs_text", True)]
    return chosen


def observe_partition(
    part: Partition,
    read_plan: ReadPlan,
    options: DatasetOptions,
    limits: Limits,
    plans: dict[str, object],
) -> PartState:
    """Read one partition once and feed every selected check in batches (``plans``: each
    check's ``prepare`` over the dataset's head, computed once on the driver)."""
    checks = [c for c in selected_checks(options, bool(read_plan.plan.text)) if c.name in plans]
    live = {c.name: c for c in checks}
    state = PartState(first=part.index, states={c.name: c.init(plans[c.name]) for c in checks})
    reader = PartitionReader(part, read_plan, options, limits)
    batch: list[Record] = []

    def flush() -> None:
        for record in batch:
            if record.label is not None and len(state.labels) < MAX_COUNTED_LABELS:
                state.labels.add(record.label)
        for name in list(live):
            check = live[name]
            try:
                state.states[name] = check.observe(state.states[name], batch)
            except (MemoryError, RecursionError):
                raise
            except Exception as exc:
                state.failed.append(f"{name} at rows {batch[0].index}-{batch[-1].index}: {exc!r}")
                del live[name]
        state.rows += len(batch)
        batch.clear()

    try:
        for record in reader.records():
            batch.append(record)
            if len(batch) >= BATCH_ROWS:
                flush()
    except LimitExceeded as exc:
        state.broken.append((part.name, str(exc), True))
    except ArtifactError as exc:
        state.broken.append((part.name, str(exc), False))
    if batch:
        flush()
    state.issues = reader.issues
    for name in set(state.states) - set(live):
        state.states[name] = None
    return state


def observe_split(
    part: Partition,
    read_plan: ReadPlan,
    options: DatasetOptions,
    limits: Limits,
    plans: dict[str, object],
    reducers: int,
) -> tuple[Any, ...]:
    """``observe_partition``, with the duplicates state taken out (it stays in the object store)
    and its shuffle keys split for ``reducers`` (see ``dups_shuffle``): (state, dups, *keys)."""
    from supplychain.distributed.dups_shuffle import CHECK, band_keys

    state = observe_partition(part, read_plan, options, limits, plans)
    dups = state.states.pop(CHECK, None)
    return (state, dups, *band_keys(dups, reducers))


def read_head(
    parts: Sequence[Partition],
    read_plan: ReadPlan,
    options: DatasetOptions,
    limits: Limits,
    rows: int,
    chars: int,
) -> list[Record]:
    """The dataset's first records (``rows`` rows or ``chars`` characters of text, inclusive),
    across as many leading partitions as needed: the head the checks' plans are made from."""

    def stream() -> Iterator[Record]:
        for part in parts:
            try:
                yield from PartitionReader(part, read_plan, options, limits).records()
            except ArtifactError:
                return  # the observe task of that partition reports the break

    return split_head(stream(), max(1, rows), max(1, chars))


def make_plans(
    options: DatasetOptions, has_text: bool, head: Sequence[Record]
) -> dict[str, object]:
    """Each selected check's plan from the dataset's head (as the single-pass runner does)."""
    return {check.name: check.prepare(head) for check in selected_checks(options, has_text)}


def merge_parts(a: PartState, b: PartState, options: DatasetOptions, has_text: bool) -> PartState:
    """Combine two adjacent partition states (``a`` covers the earlier rows)."""
    if b.first < a.first:
        a, b = b, a
    # States from an engine's object store may hold read-only NumPy views, and ``merge`` updates
    # its first argument: work on a copy (states are bounded sketches, the copy is small).
    a = copy.deepcopy(a)
    checks = {c.name: c for c in selected_checks(options, has_text)}
    states: dict[str, Any] = {}
    failed = a.failed + b.failed
    for name in a.states:
        x, y = a.states[name], b.states.get(name)
        if x is None or y is None:
            states[name] = None
            continue
        try:
            states[name] = checks[name].merge(x, y)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            failed.append(f"{name} in merge: {exc!r}")
            states[name] = None
    return PartState(
        first=a.first,
        states=states,
        issues=merge_issues(a.issues, b.issues),
        rows=a.rows + b.rows,
        failed=failed,
        broken=a.broken + b.broken,
        labels=_capped_union(a.labels, b.labels),
    )


def _capped_union(a: set[str], b: set[str]) -> set[str]:
    """Union of two label sets up to ``MAX_COUNTED_LABELS`` (only the count is reported)."""
    out = set(a)
    for label in b:
        if len(out) >= MAX_COUNTED_LABELS:
            break
        out.add(label)
    return out


def finish(
    final: PartState,
    read_plan: ReadPlan,
    options: DatasetOptions,
    label: str,
    cap: int | None,
) -> tuple[list[Finding], list[str], list[tuple[str, FactValue]]]:
    """The dataset's findings (readers first, then each check's), the checks that failed, and
    the dataset facts of one pass (fields used, rows, labels...)."""
    plan = read_plan.plan
    info = DatasetInfo(
        path=label,
        member=(),
        text_field=plan.text_name,
        label_field=plan.label,
        id_field=plan.id,
        rows=final.rows,
        numeric_fields=tuple(plan.numeric),
    )
    reader = carrier(read_plan, final.issues)
    facts = dataset_facts(info, reader, len(final.labels))  # type: ignore[arg-type]
    findings = list(reader_findings(info, reader))  # type: ignore[arg-type]
    if cap is not None:
        findings.append(
            Finding(
                rule=GEN002.id,
                severity=Severity.HIGH,
                confidence=Confidence.HIGH,
                message=f"dataset row limit reached: only the first {cap} rows were analysed",
                location=Location(path=label),
                evidence=f"max_dataset_rows={cap}",
            )
        )
    failed = list(final.failed)
    for check in selected_checks(options, bool(plan.text)):
        state = final.states.get(check.name)
        if state is None:
            continue
        try:
            if check.name == CHECK and hasattr(state, "_others"):
                findings.extend(finish_reduced(check, state, info))
            else:
                findings.extend(check.finish(state, info))
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            failed.append(f"{check.name} in finish: {exc!r}")
    for name, why, limit in final.broken:
        rule = GEN002 if limit else GEN001
        findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                confidence=Confidence.HIGH,
                message=f"dataset shard could not be read to the end: {why}",
                location=Location(path=name),
                evidence=why[:200],
            )
        )
    return findings, failed, facts
