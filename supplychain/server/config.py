"""Start-up options of the server, frozen once ``supplychain serve`` has parsed its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024

DEFAULT_MAX_UPLOAD = 1024 * MIB
"""``--max-upload``: the largest artifact ``POST /v1/scan`` accepts as multipart upload."""
DEFAULT_MAX_BODY = 4 * MIB
"""Cap on every other request body (an AdmissionReview of a large Pod is well under 1 MiB)."""
DEFAULT_ADMISSION_BUDGET = 2.0
"""``--admission-budget``: seconds an admission request waits for an inline scan."""
DEFAULT_QUEUE = 64
DEFAULT_WORKERS = 2
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs; the token is kept out of ``repr`` so it is never logged."""

    root: Path
    """Every path a request names must resolve under this directory."""
    token: str | None = field(default=None, repr=False)
    """The bearer token; ``None`` only with ``insecure_no_auth``."""
    insecure_no_auth: bool = False
    cache_path: Path | None = None
    """The verdict cache (SQLite) shared with the CLI and CI; ``None``: no cache."""
    verdicts_path: Path | None = None
    """Verdicts by OCI manifest digest (SQLite); ``None``: kept in memory for this process."""
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_body: int = DEFAULT_MAX_BODY
    admission_budget: float = DEFAULT_ADMISSION_BUDGET
    queue_size: int = DEFAULT_QUEUE
    workers: int = DEFAULT_WORKERS
    body_timeout: float = 30.0
    """Seconds a request may go without sending the next piece of its body (408 after)."""
    max_connections: int = 256
    """Concurrent connections uvicorn serves before answering 503 (``limit_concurrency``)."""
    retry_after: int = 5
    """Seconds in ``Retry-After`` when the queue is full."""
    upload_dir: Path | None = None
    """Where uploads are spooled (a fresh temporary directory under it per upload)."""
    policy_path: Path | None = None
    """A ``supplychain.toml`` policy; ``None``: the default policy."""
    memo: bool = True
    """Answer admission for an unchanged, settled model tree from memory (``server.memo``)."""

    def __post_init__(self) -> None:
        if self.token is None and not self.insecure_no_auth:
            raise ValueError("a token is required unless insecure_no_auth is set")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the token must be at least {MIN_TOKEN_LENGTH} characters")
        if self.max_upload < 1 or self.max_body < 1:
            raise ValueError("body caps must be positive")
        if self.admission_budget < 0:
            raise ValueError("the admission budget must not be negative")
        if self.body_timeout <= 0 or self.max_connections < 1:
            raise ValueError("the body timeout and the connection cap must be positive")
        if self.queue_size < 1 or self.workers < 1:
            raise ValueError("the queue size and the worker count must be at least 1")
