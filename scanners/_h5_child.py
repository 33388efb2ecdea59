"""Child process that reads one HDF5 file's Keras configs and external references.

The HDF5 C library is not hardened against hostile files: mutated inputs made it spin for
minutes inside ``h5py`` (found by tests/test_robustness.py-style fuzzing). So it never runs in
the scanner's process. The parent (``keras_scan``) starts this module with a wall-clock timeout;
this side caps its own address space. Output is one JSON object on stdout.

Usage: ``python -m scanners._h5_child FILE``
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterator
from typing import Any

from supplychain.core.errors import LimitExceeded

MEMORY_CAP = 4 * 2**30
CONFIG_KEYS = ("model_config", "training_config")
H5_WALK_BUDGET = 200_000
H5_MAX_DEPTH = 64


def extract(path: str) -> dict[str, Any]:
    """Configs (text or None when not text) and external links; errors as strings."""
    import h5py

    out: dict[str, Any] = {"configs": [], "links": [], "error": None, "limit": None}
    try:
        with h5py.File(path, "r") as handle:
            for key in CONFIG_KEYS:
                if key in handle.attrs:
                    out["configs"].append([key, _attr_text(handle.attrs[key])])
            try:
                for link in _h5_links(handle, h5py):
                    out["links"].append(list(link))
            except LimitExceeded as exc:
                out["limit"] = str(exc)
    except Exception as exc:  # h5py raises many exception types on a bad file
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def _attr_text(value: object) -> str | None:
    """An HDF5 attribute holding JSON as str, bytes or a one-element numpy array."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "size", 2) == 1:
        value = item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _h5_links(handle: Any, h5py: Any) -> Iterator[tuple[str, str, str]]:
    """(what, object path, external file) for external links, external storage and VDS."""
    budget = H5_WALK_BUDGET
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(handle, 0)]
    while stack:
        group, depth = stack.pop()
        if depth > H5_MAX_DEPTH:
            raise LimitExceeded(f"HDF5 groups nested deeper than {H5_MAX_DEPTH}")
        for name in group:
            budget -= 1
            if budget < 0:
                raise LimitExceeded(f"HDF5 file has more than {H5_WALK_BUDGET} objects")
            link = group.get(name, getlink=True)
            path = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                yield "external link", path, str(link.filename)
                continue
            if isinstance(link, h5py.SoftLink):
                continue
            obj = group.get(name)
            if obj is None:
                continue
            key = hash(obj.id)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                stack.append((obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                for ext in obj.external or ():
                    yield "external storage", path, _text(ext[0])
                if obj.is_virtual:
                    for source in obj.virtual_sources():
                        if source.file_name != ".":
                            yield "virtual dataset", path, _text(source.file_name)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def main() -> None:
    """Entry point of the child process."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    sys.stdout.write(json.dumps(extract(sys.argv[1])))


if __name__ == "__main__":
    main()
