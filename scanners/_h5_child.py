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
from typing import Any

MEMORY_CAP = 4 * 2**30
CONFIG_KEYS = ("model_config", "training_config")


def extract(path: str) -> dict[str, Any]:
    """Configs (text or None when not text) and external links; errors as strings."""
    import h5py

    from scanners.keras_scan import _attr_text, _h5_links
    from supplychain.core.errors import LimitExceeded

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


def main() -> None:
    """Entry point of the child process."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    sys.stdout.write(json.dumps(extract(sys.argv[1])))


if __name__ == "__main__":
    main()
