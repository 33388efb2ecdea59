"""Run one harness under atheris: ``python -m fuzz <harness> [libFuzzer options] [corpus dirs]``.

Only the project's packages are instrumented (``scanners``, ``supplychain``), not the standard
library or third-party code. They must be imported for the first time inside
``atheris.instrument_imports``, so any copy already imported (when a harness file is run as a
script) is dropped from ``sys.modules`` first.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

INSTRUMENTED = ("scanners", "supplychain")


def _forget(prefixes: tuple[str, ...]) -> None:
    """Drop earlier, uninstrumented copies of the product and of every harness module.

    ``fuzz._common`` goes too: it holds the product's exception classes, which must be the ones
    the re-imported scanners raise.
    """
    for name in list(sys.modules):
        if name.split(".")[0] in prefixes or (name.startswith("fuzz.") and name != "fuzz.__main__"):
            del sys.modules[name]


def run(harness: str, argv: list[str]) -> int:
    """Instrument the product, import ``fuzz.<harness>`` and fuzz its ``TestOneInput``."""
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    _forget(INSTRUMENTED)
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        module = importlib.import_module(f"fuzz.{harness.removesuffix('.py')}")
    target: Callable[[bytes], None] = module.TestOneInput
    atheris.Setup([sys.argv[0], *argv], target)
    atheris.Fuzz()
    return 0


def main() -> int:
    """Command-line entry: first argument is the harness name (``fuzz_zip`` or ``zip``)."""
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)  # noqa: T201
        return 2
    name = sys.argv[1]
    if not name.startswith("fuzz_"):
        name = "fuzz_" + name
    return run(name, sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
