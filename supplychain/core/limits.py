"""Resource caps shared by every scanner, in one validated object."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps that bound time and memory on hostile input. Going over one is a finding (GEN002)."""

    max_read_bytes: int = 64 * 2**30
    """Largest file (or archive member) the scanners will read."""
    max_header_bytes: int = 100 * 2**20
    """Largest header a format may declare (safetensors JSON, GGUF metadata, ONNX/Keras config)."""
    max_archive_members: int = 10_000
    """Members of one archive."""
    max_archive_total_bytes: int = 64 * 2**30
    """Bytes one archive, and one whole tree of nested containers, may expand to."""
    max_archive_ratio: int = 200
    """Largest uncompressed/compressed ratio of one archive member (zip bomb), and of a whole
    tree of nested containers against the size of its outermost container."""
    min_bomb_bytes: int = 64 * 2**20
    """The ratio check applies only past this many expanded bytes: small, very compressible
    data (sparse arrays, zero-filled buffers) is common in real archives and is no bomb."""
    max_nesting: int = 4
    """Deepest archive-in-archive (or pickle-in-pickle) recursion."""
    max_container_members: int = 20_000
    """Members handed on across a whole tree of nested containers (one top-level file)."""
    max_container_seconds: int = 900
    """Wall-clock budget for walking one tree of nested containers: a hang guard, far above
    what any real archive needs, so that no container can hold a scan forever."""
    max_pickle_ops: int = 500_000_000
    """A CPU-time bound (pickle has no loops: opcodes <= bytes); ~2 min of analysis."""
    max_pickle_memo: int = 1_000_000
    max_pickle_stack: int = 100_000
    max_pickle_string: int = 256 * 2**20
    """Longest string/bytes operand kept in memory; longer ones are skipped over as opaque data."""
    max_findings_per_file: int = 200
    max_dataset_rows: int = 5_000_000
    max_line_bytes: int = 16 * 2**20
    """Longest dataset line or record read into memory."""
    max_requirements: int = 10_000
    """Requirements read from one requirement or lock file and its includes (real lock files
    hold a few hundred)."""
    max_include_depth: int = 8
    """Deepest chain of ``-r`` / ``-c`` requirement-file includes followed."""
    max_lockfile_bytes: int = 32 * 2**20
    """Largest TOML / JSON requirement or lock file parsed (TOML is read whole)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")


@dataclass(slots=True)
class ContainerTally:
    """What the containers inside one top-level file have cost so far (mutable, per file).

    Carried by the scan context, which the engine creates per top-level file, so every nested
    container of that file (at any depth, and behind any pickle payload) draws on one budget.
    The archive scanner checks it against ``Limits``; this object only counts.
    """

    base: int = 0
    """Size of the first container opened (or of the top-level file, once one is seen)."""
    started: float | None = None
    """``time.monotonic()`` when the first container was opened."""
    expanded: int = 0
    """Bytes produced by container walkers so far."""
    members: int = 0
    """Members handed on so far."""
    spent: str | None = None
    """Why the budget ran out, once it has; every later charge fails at once."""


@dataclass(frozen=True, slots=True)
class OciLimits:
    """Caps on pulling an OCI artifact (``supplychain.oci``): a registry is untrusted input too.

    Not part of ``Limits``: they bound the download, not the verdict on bytes, so they stay out
    of the settings fingerprint. Going over one fails the pull (never a partial scan).
    """

    max_manifest_bytes: int = 4 * 2**20
    """Largest manifest or index (the OCI distribution spec's recommended 4 MiB)."""
    max_layers: int = 4_096
    """Layers one manifest may list."""
    max_blob_bytes: int = 64 * 2**30
    """Largest single layer (declared and streamed); matches ``Limits.max_read_bytes``."""
    max_total_bytes: int = 128 * 2**30
    """Bytes one artifact may download in total (layers, plus any decompressed zstd layer)."""
    max_zstd_ratio: int = 200
    """Largest expanded/compressed ratio of a zstd layer decompressed to a tar in the temp dir."""
    max_redirects: int = 5
    max_token_bytes: int = 1 * 2**20
    """Largest token-service response."""
    timeout_seconds: int = 30
    """Connect and per-read timeout of each request."""
    deadline_seconds: int = 6 * 3600
    """Wall-clock budget of one whole pull (a registry dripping bytes cannot hold a worker)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class OsvLimits:
    """Caps on the dependency audit's OSV client (``supplychain.deps.osv``): the vulnerability
    service is input too. Like ``OciLimits``, they bound the lookup, not the verdict on bytes;
    timeouts and the time budget are ``[deps]`` settings. Going over one is "could not audit"
    (DEP022, HIGH), never a pass."""

    max_response_bytes: int = 32 * 2**20
    """Largest answer read (OSV's biggest per-package answers are a few MB)."""
    max_pages: int = 20
    """``next_page_token`` pages followed for one query."""
    max_attempts: int = 4
    """Tries per request (the first plus retries), all inside the time budget."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")
