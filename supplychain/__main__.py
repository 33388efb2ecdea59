"""``python -m supplychain``."""

from supplychain.cli import main

raise SystemExit(main())
