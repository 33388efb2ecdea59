"""Denylist entries derived from evidence (regenerated and reviewed; see ``bench``/``tools``).

Filled by the derivation script; ``scanners.allowlist`` unions it into ``DENY``.
"""

from __future__ import annotations

from typing import Final

DERIVED_DENY: Final[frozenset[str]] = frozenset()

__all__ = ["DERIVED_DENY"]
