"""supplychain: ML supply-chain and data-poisoning inspector that never executes what it scans."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
