"""Dataset checks on a distributed engine (issue #19): the same checks, run as engine jobs.

``shards`` is engine-neutral: it turns a list of Parquet/JSONL shards (local paths or object-store
URIs) into partitions with deterministic global row offsets, reads one partition into ``Record``s
with the product's own readers, and keeps each partition's reader issues mergeable.
``ray_engine`` runs the partitions as Ray tasks, merges the checks' states in a tree and finishes
on the driver. Nothing here is imported unless ``--engine ray`` is asked for, and Ray itself is an
optional extra (``pip install 'supplychain[ray]'``).
"""

ENGINES = ("local", "ray")
"""Values of ``supplychain data --engine``."""

RAY_EXTRA = "pip install 'supplychain[ray]'"
"""What to run when Ray is missing (named in the error, exit 2)."""

__all__ = ["ENGINES", "RAY_EXTRA"]
