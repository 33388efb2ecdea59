"""The dependency audit's typed settings section (read by the requirements scanner and the audit).

Kept in its own tiny module so building ``Settings`` never imports the parser or the network
client; as a ``Settings`` section it is part of the settings fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OSV_DEFAULT_URL = "https://api.osv.dev/v1/query"
"""OSV's public query endpoint; air-gapped users point ``--osv-url`` at a mirror."""


@dataclass(frozen=True, slots=True)
class DepsOptions:
    """``[deps]`` policy table plus ``--deps-online`` / ``--osv-url`` / ``--offline`` flags."""

    online: bool = False
    """Look vulnerabilities up (network). ``scan`` is offline unless asked; ``deps`` is online."""
    osv_url: str = OSV_DEFAULT_URL
    """The full OSV-compatible ``/v1/query`` URL."""
    require_hashes: bool = False
    """Every requirement must carry ``--hash`` (DEP002 becomes HIGH)."""
    timeout: float = 10.0
    """Seconds one HTTP request may take."""
    budget: float = 120.0
    """Seconds the whole lookup may take, retries and ``Retry-After`` waits included."""
    workers: int = 4
    """Queries in flight at once."""


_PIP_NAME = re.compile(
    r"^(?:[\w.-]*[-_.])?(?:requirements|constraints)(?:[-_.][\w.-]*)?\.(?:txt|in)$"
)
"""``requirements.txt``, ``requirements-dev.in``, ``dev-requirements.txt``, ``constraints.txt``."""


def requirements_format(name: str) -> str | None:
    """Which requirement-file format a base name (any case) is, or ``None``.

    ``pip`` (requirements/constraints files), ``pyproject``, ``pylock``, ``uv``, ``poetry``,
    ``pipfile``. Identification by name is deliberate: these are text files whose meaning comes
    from the name pip, uv or poetry open them by. Only the base name counts (a directory such as
    ``requirements/dev.txt`` does not): the verdict cache keys results by content and base name.
    """
    lname = name.rsplit("/", 1)[-1].lower()
    if _PIP_NAME.match(lname):
        return "pip"
    if lname == "pyproject.toml":
        return "pyproject"
    if lname == "pylock.toml" or (lname.startswith("pylock.") and lname.endswith(".toml")):
        return "pylock"
    return {"uv.lock": "uv", "poetry.lock": "poetry", "pipfile.lock": "pipfile"}.get(lname)


def is_requirements_path(path: str) -> bool:
    """Whether a report path names a requirement or lock file (``supplychain deps`` selects
    these; module-level so a process pool can pickle it)."""
    return requirements_format(path) is not None


__all__ = ["OSV_DEFAULT_URL", "DepsOptions", "is_requirements_path", "requirements_format"]
