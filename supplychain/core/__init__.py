"""The ground floor: pure data and types every layer may import (model, rules, errors, limits,
settings). Nothing here imports a scanner, the engine, the service or an output format
(``tests/test_layering.py``), so the arrows of the house run one way: up from here."""

__version__ = "0.1.0"
"""The release version (setuptools reads it here; ``supplychain.__version__`` re-exports it)."""
