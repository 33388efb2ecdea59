"""``supplychain data --engine ray``: dataset checks as Ray tasks on an existing or local cluster.

What runs where:

- driver: lists the shards, detects the field plan on the first shard's head (as the
  single-machine reader does), computes every partition's global row offset from shard order and
  the surveyed row counts, and runs each check's ``finish`` on the merged state;
- one task per shard (``survey``): kind by content, size, sha256, and cut points with row counts;
- one task per partition (``observe``): the product's reader over that byte range / row-group
  range, each check's ``observe`` in batches;
- a tree of ``merge`` tasks over adjacent partitions (order kept), so the driver receives one
  state.

Cluster: ``address`` (``--engine-address``) or ``RAY_ADDRESS`` connects to a running cluster;
with neither, a local cluster of ``num_workers`` CPUs is started for the run (no dashboard, its
temp dir under the run's temp directory) and shut down after. A Ray session already initialised
in this process (a notebook, a test fixture) is used as it is and left running.

Fail closed: a shard that is not Parquet/JSONL, unreadable or over a limit is a GEN001/GEN002
finding; a check that crashes is a FAILED outcome; a cluster that cannot be reached, a task that
dies or a worker running another supplychain version is an ``EngineError`` (exit 2).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scanners.dataset.common import DatasetOptions, head_length
from supplychain.core import __version__
from supplychain.core.errors import ConfigError, SupplyChainError
from supplychain.core.model import (
    ArtifactRecord,
    Confidence,
    Fact,
    Finding,
    Location,
    ScanResult,
    Status,
)
from supplychain.core.rules import GEN001, GEN002
from supplychain.core.settings import Settings
from supplychain.distributed import RAY_EXTRA
from supplychain.distributed.dups_shuffle import (
    CHECK,
    available,
    merge_reduced,
    reduce_state,
    reducers_for,
    shared_rows,
)
from supplychain.distributed.shards import (
    KINDS,
    PARTITION_BYTES,
    PARTITION_ROWS,
    ReadPlan,
    ShardSurvey,
    dataset_label,
    detect_plan,
    expand_paths,
    plan_partitions,
    survey_shard,
)
from supplychain.distributed.work import (
    PartState,
    finish,
    make_plans,
    merge_parts,
    observe_partition,
    observe_split,
    read_head,
    selected_checks,
)

MAX_IN_FLIGHT_PER_WORKER = 4
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a TCP connection to the cluster's address before giving up (exit 2)."""
"""Partition tasks submitted ahead per worker (bounds the states waiting in the object store)."""


class EngineError(SupplyChainError):
    """The distributed engine could not run (no cluster, a task died): exit 2, never a pass."""


@dataclass(frozen=True, slots=True)
class DistributedResult:
    """The report parts a distributed data run produced (the service assembles the Report)."""

    files: tuple[ArtifactRecord, ...]
    findings: tuple[Finding, ...]
    results: tuple[ScanResult, ...]
    facts: tuple[Fact, ...]
    seconds: float


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray: {RAY_EXTRA}") from None
    return ray


@contextmanager
def ray_cluster(
    address: str | None = None, num_workers: int = 2, temp_root: str | None = None
) -> Iterator[Any]:
    """Connect to ``address`` / ``RAY_ADDRESS``, or start a local cluster for the run."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    tmp: str | None = None
    try:
        if address:
            _probe(address)
            ray.init(address=address, log_to_driver=False)
        else:
            if num_workers < 1:
                raise ConfigError("--workers must be at least 1")
            tmp = tempfile.mkdtemp(prefix="scray-", dir=temp_root or _short_temp_root())
            ray.init(
                num_cpus=num_workers,
                include_dashboard=False,
                _temp_dir=tmp,
                log_to_driver=False,
            )
    except SupplyChainError:
        raise
    except Exception as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        where = address or "a local Ray cluster"
        raise EngineError(f"cannot start or reach {where}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _short_temp_root() -> str | None:
    """The temp directory, unless its path is too long for Ray's Unix sockets (107 bytes with
    Ray's ~70-byte session/socket suffix): then ``/tmp``."""
    root = tempfile.gettempdir()
    if len(root) > 30 and Path("/tmp").is_dir() and os.access("/tmp", os.W_OK):  # noqa: S108
        return "/tmp"  # noqa: S108
    return None


def _probe(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast (exit 2) on an address nothing listens at: ``ray.init`` would retry for
    minutes. ``auto`` and other forms without a port are left to Ray."""
    import socket

    target = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            pass
    except OSError as exc:
        raise EngineError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _remote_version() -> str:
    return __version__


def run_dataset_on_ray(
    paths: Sequence[str],
    settings: Settings,
    *,
    address: str | None = None,
    num_workers: int = 2,
    temp_root: str | None = None,
    partition_bytes: int = PARTITION_BYTES,
    partition_rows: int = PARTITION_ROWS,
) -> DistributedResult:
    """Run the dataset checks of ``settings`` over the shards in ``paths`` on Ray (a JSONL
    shard is cut every ``partition_bytes``, Parquet row groups are grouped to
    ``partition_rows``: the findings do not depend on either)."""
    from scanners._extras import require

    require("datasets")  # the readers and checks need it on the driver and the workers
    started = time.monotonic()
    options = settings.section(DatasetOptions) or DatasetOptions()
    shards, skipped = expand_paths(paths)
    label = dataset_label([str(p) for p in paths])
    with ray_cluster(address, num_workers, temp_root) as ray:
        try:
            cuts = (partition_bytes, partition_rows)
            got = _run(ray, shards, options, settings, label, started, cuts)
        except SupplyChainError:
            raise
        except ray.exceptions.RayError as exc:
            raise EngineError(f"a Ray task failed: {_first_line(exc)}") from None
    skips = tuple(
        ScanResult(scanner="dataset", path=name, status=Status.SKIPPED, reason=why)
        for name, why in skipped
    )
    return replace(got, results=got.results + skips)


def _first_line(exc: BaseException) -> str:
    """The task's own exception when Ray carries it (``RayTaskError.cause``), on one line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {str(cause).strip()[:300]}"
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def _run(
    ray: Any,
    shards: list[tuple[str, str]],
    options: DatasetOptions,
    settings: Settings,
    label: str,
    started: float,
    cuts: tuple[int, int],
) -> DistributedResult:
    limits = settings.limits
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    version = ray.get(ray.remote(_remote_version).remote())
    if version != __version__:
        raise EngineError(
            f"the Ray workers run supplychain {version}, this driver {__version__}: install the "
            "same version on the cluster"
        )
    survey = ray.remote(survey_shard)
    surveys: list[ShardSurvey] = ray.get(
        [
            survey.remote(uri, name, limits, piece_bytes=cuts[0], piece_rows=cuts[1])
            for uri, name in shards
        ]
    )
    files = tuple(
        ArtifactRecord(path=s.name, kind=s.kind, size=s.size, sha256=s.sha256) for s in surveys
    )
    findings: list[Finding] = [
        Finding(
            rule=(GEN002 if s.limit else GEN001).id,
            severity=(GEN002 if s.limit else GEN001).severity,
            confidence=Confidence.HIGH,
            message=f"dataset shard not analysed: {s.error}",
            location=Location(path=s.name),
            evidence=s.error[:200],
        )
        for s in surveys
        if s.error
    ]
    facts: list[Fact] = []
    offset = 0
    for s in surveys:
        if not s.error:
            facts.append(
                Fact(
                    key="dataset.row_offset",
                    value=offset,
                    location=Location(path=s.name),
                    scanner="dataset",
                )
            )
            offset += s.rows
    good = [s for s in surveys if not s.error]
    # A shard that is not Parquet/JSONL was not analysed (a skip beside its GEN001); a shard of
    # the right kind that broke was read and judged (its GEN001/GEN002 says why).
    results: list[ScanResult] = [
        ScanResult(
            scanner="dataset",
            path=s.name,
            status=Status.SCANNED if s.kind in KINDS else Status.SKIPPED,
            reason="" if s.kind in KINDS else f"{s.kind.value}: not a Parquet or JSONL shard",
        )
        for s in surveys
        if s.error
    ]
    if not good:
        return DistributedResult(files, tuple(findings), tuple(results), tuple(facts), 0.0)
    read_plan: ReadPlan = ray.get(
        ray.remote(detect_plan).remote(good[0].uri, good[0].name, good[0].kind, options, limits)
    )
    parts, capped = plan_partitions(good, limits.max_dataset_rows)
    has_text = bool(read_plan.plan.text)
    checks = selected_checks(options, has_text)
    rows, chars = head_length(checks)
    head: list[Any] = []
    if rows > 0 and parts:
        head = ray.get(ray.remote(read_head).remote(parts, read_plan, options, limits, rows, chars))
    plans = make_plans(options, has_text, head)
    del head
    final, candidates = _observe_and_merge(
        ray, parts, read_plan, options, settings, plans, has_text, workers
    )
    got, failed, dataset_facts = finish(
        final,
        read_plan,
        options,
        label,
        limits.max_dataset_rows if capped else None,
    )
    findings += got
    facts += [
        Fact(key=key, value=value, location=Location(path=label), scanner="dataset")
        for key, value in dataset_facts
    ]
    facts.append(
        Fact(
            key="dataset.partitions",
            value=len(parts),
            location=Location(path=label),
            scanner="dataset",
        )
    )
    if candidates is not None:
        facts.append(
            Fact(
                key="dataset.duplicate_candidates",
                value=candidates,
                location=Location(path=label),
                scanner="dataset",
            )
        )
    status = Status.FAILED if failed else Status.SCANNED
    reason = ("dataset check failed: " + "; ".join(failed)) if failed else ""
    seconds = time.monotonic() - started
    # The outcome of the one dataset run, on every shard it read (the policy counts files).
    results += [
        ScanResult(scanner="dataset", path=s.name, status=status, reason=reason, seconds=seconds)
        for s in good
    ]
    return DistributedResult(
        files=files,
        findings=tuple(findings),
        results=tuple(results),
        facts=tuple(facts),
        seconds=time.monotonic() - started,
    )


class _Tree:
    """Merges refs in order as they come, like a binary counter: two results of one level
    become one of the next, so at most log2(n) partial results wait at any time."""

    def __init__(self, merge: Any) -> None:
        self.merge = merge
        self.stack: list[tuple[int, Any]] = []

    def push(self, ref: Any) -> None:
        level = 0
        while self.stack and self.stack[-1][0] == level:
            _, left = self.stack.pop()
            ref = self.merge(left, ref)
            level += 1
        self.stack.append((level, ref))

    def root(self) -> Any:
        ref = self.stack.pop()[1]
        while self.stack:
            ref = self.merge(self.stack.pop()[1], ref)
        return ref


def _observe_and_merge(
    ray: Any,
    parts: Sequence[Any],
    read_plan: ReadPlan,
    options: DatasetOptions,
    settings: Settings,
    plans: dict[str, object],
    has_text: bool,
    workers: int,
) -> tuple[PartState, int | None]:
    """Observe every partition (bounded tasks in flight) and merge adjacent states as they
    finish; the duplicates check goes through the band shuffle (``dups_shuffle``). Returns the
    merged state and the number of duplicate candidate rows (``None``: check not selected)."""
    import numpy as np

    if not parts:
        return PartState(first=0, states=_empty_states(plans, options, has_text)), None
    plans_ref = ray.put(plans)
    merge = ray.remote(merge_parts)
    tree = _Tree(lambda a, b: merge.remote(a, b, options, has_text))
    shuffle = CHECK in plans and available(plans[CHECK])
    reducers = reducers_for(sum(p.rows for p in parts))
    if shuffle:
        observe = ray.remote(observe_split).options(num_returns=2 + reducers)
    else:
        observe = ray.remote(observe_partition)
    limit = max(1, workers * MAX_IN_FLIGHT_PER_WORKER)
    in_flight: list[Any] = []
    dup_refs: list[Any] = []
    key_refs: list[Any] = []
    for part in parts:
        if len(in_flight) >= limit:
            _, in_flight = ray.wait(in_flight, num_returns=1)
        if shuffle:
            refs = observe.remote(part, read_plan, options, settings.limits, plans_ref, reducers)
            ref = refs[0]
            dup_refs.append(refs[1])
            key_refs.append(refs[2:])
        else:
            ref = observe.remote(part, read_plan, options, settings.limits, plans_ref)
        in_flight.append(ref)
        tree.push(ref)
    state: PartState = ray.get(tree.root())
    if not shuffle:
        return state, None
    shared = ray.remote(shared_rows)
    found = ray.get([shared.remote(*[k[r] for k in key_refs]) for r in range(reducers)])
    del key_refs
    candidates = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    cand_ref = ray.put(candidates)
    reduce = ray.remote(reduce_state)
    merge_small = ray.remote(merge_reduced)
    small = _Tree(lambda a, b: merge_small.remote(a, b))
    for ref in dup_refs:
        small.push(reduce.remote(ref, cand_ref))
    del dup_refs
    state.states[CHECK] = ray.get(small.root())
    return state, len(candidates)


def _empty_states(
    plans: dict[str, object], options: DatasetOptions, has_text: bool
) -> dict[str, Any]:
    return {c.name: c.init(plans[c.name]) for c in selected_checks(options, has_text)}
