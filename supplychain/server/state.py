"""What every route shares: config, job queue, verdict store, metrics, the scan function.

Routes (and the Harbor adapter's router) reach it with ``get_state(request)``; it lives on
``app.state.supplychain``, set by ``create_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from supplychain.server.config import ServerConfig
from supplychain.server.jobs import JobQueue
from supplychain.server.memo import VerdictMemo
from supplychain.server.metrics import Metrics
from supplychain.server.verdicts import VerdictStore

if TYPE_CHECKING:
    from starlette.requests import Request

    from supplychain.core.model import Report

ScanFn = Callable[[Path], "Report"]


@dataclass
class ServerState:
    config: ServerConfig
    queue: JobQueue
    verdicts: VerdictStore
    metrics: Metrics
    scan: ScanFn
    """Scan one resolved path and return the judged report (the server's policy and cache)."""
    memo: VerdictMemo = field(default_factory=VerdictMemo)
    """Admission's fast path: verdicts of unchanged model trees (``memo``)."""


def get_state(request: Request) -> ServerState:
    state = request.app.state.supplychain
    assert isinstance(state, ServerState)
    return state
