"""Optional extras: which libraries each one brings, and the skip a scanner raises without them.

A plain ``pip install supplychain`` reads every model format the malicious samples use; heavy
parts are extras (``pyproject.toml``): ``[datasets]`` (the dataset checks), ``[keras]`` (HDF5
through h5py), ``[archives]`` (7z and LZ4). A scanner that needs one calls ``require`` before
it starts; a missing library is a ``MissingDependency`` whose text is the install command, which
the engine reports as a skip (a failure under ``--strict``).
"""

from __future__ import annotations

import importlib.util

from supplychain.core.errors import MissingDependency

EXTRAS: dict[str, tuple[str, ...]] = {
    "archives": ("py7zr", "lz4"),
    "datasets": ("scipy", "pyarrow"),
    "keras": ("h5py",),
}
"""Import names each extra provides (the distribution names are in ``pyproject.toml``)."""


def install_command(extra: str) -> str:
    """The command that installs ``extra`` (quoted for shells that glob ``[...]``)."""
    return f"pip install 'supplychain[{extra}]'"


def _importable(module: str) -> bool:
    try:
        # sys.modules[name] = None (an import blocked on purpose) gives None here, like absence.
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The libraries of ``extra`` (or only ``modules`` of it) that cannot be imported."""
    return [m for m in (modules or EXTRAS[extra]) if not _importable(m)]


def dependency_error(extra: str, modules: list[str]) -> MissingDependency:
    """The skip for ``modules`` of ``extra``: its message is the install command."""
    return MissingDependency(
        f"{', '.join(modules)} not installed; install with: {install_command(extra)}"
    )


def require(extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise ``MissingDependency`` (naming the install command) unless ``extra`` is installed.

    ``modules`` narrows the check to the libraries this scan needs (LZ4 frames need ``lz4``,
    not ``py7zr``).
    """
    absent = missing(extra, modules)
    if absent:
        raise dependency_error(extra, absent)


__all__ = ["EXTRAS", "dependency_error", "install_command", "missing", "require"]
