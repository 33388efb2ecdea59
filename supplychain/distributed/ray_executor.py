"""``supplychain scan --engine ray``: the engine's per-file work as Ray tasks.

The engine already runs each file through one module-level function (``engine._scan_outcome``)
in a pool and assembles the report in the parent (names, verdict cache, report-level checks).
``RayExecutor`` is that pool on a Ray cluster: ``map`` submits one task per file and yields the
results in order, so the report is the one ``--jobs`` gives. Identity hits of the verdict cache
are answered on the driver before any task is submitted (unchanged files are not read at all);
digest lookups and stores go through the cache as with the process pool.

Workers open files by path: on a cluster of several machines the scanned tree must be on a
file system every node mounts at the same path (``docs/distributed.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from supplychain.core.errors import SupplyChainError
from supplychain.distributed.ray_engine import EngineError, _first_line, ray_cluster


class RayExecutor(Executor):
    """A ``concurrent.futures`` executor over a Ray cluster (``RAY_ADDRESS`` or a local one of
    ``num_workers`` CPUs, started here and stopped by ``shutdown``)."""

    def __init__(self, num_workers: int = 2, address: str | None = None) -> None:
        self._cluster = ray_cluster(address, num_workers)
        self._ray = self._cluster.__enter__()
        self._remotes: dict[Callable[..., Any], Any] = {}

    def _remote(self, fn: Callable[..., Any]) -> Any:
        if fn not in self._remotes:
            self._remotes[fn] = self._ray.remote(fn)
        return self._remotes[fn]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """One task; its result as a ``concurrent.futures.Future``."""
        future: Future[Any] = self._remote(fn).remote(*args, **kwargs).future()
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Submit every call at once (an argument repeated by identity, like the engine's
        options, is put in the object store once) and yield the results in order."""
        remote = self._remote(fn)
        shared: dict[int, Any] = {}

        def put(value: Any) -> Any:
            key = id(value)
            if key not in shared:
                shared[key] = (value, self._ray.put(value))
            return shared[key][1]

        refs = [
            remote.remote(args[0], *(put(a) for a in args[1:]))
            for args in zip(*iterables, strict=True)
        ]
        return self._results(refs, timeout)

    def _results(self, refs: list[Any], timeout: float | None) -> Iterator[Any]:
        ray = self._ray
        for ref in refs:
            try:
                yield ray.get(ref, timeout=timeout)
            except SupplyChainError:
                raise
            except ray.exceptions.RayError as exc:
                raise EngineError(f"a Ray task failed: {_first_line(exc)}") from None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the local cluster started for the run (a cluster we connected to stays)."""
        cluster, self._cluster = self._cluster, None  # type: ignore[assignment]
        if cluster is not None:
            cluster.__exit__(None, None, None)
