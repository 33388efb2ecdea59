"""Bounded spools for container members, the handoff to the engine, and the tree budget.

A member is copied into a ``Spool`` (RAM up to ``SPOOL_IN_MEMORY``, then a temporary file) and
handed to ``ctx.dispatch`` as a child artifact, so the engine sniffs and scans it like a file.
One ``TreeBudget`` per top-level file (its counts live in ``ScanContext.containers``) bounds what
every nested container together may expand to, hand on and spend in time.
"""

from __future__ import annotations

import contextlib
import enum
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, BinaryIO

from scanners._io import CHUNK, SPOOL_IN_MEMORY
from scanners.base import Artifact, ScanContext
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import ContainerTally, Limits
from supplychain.core.model import ArtifactKind, Finding
from supplychain.core.rules import GEN001, GEN002

PEEK_BYTES = 64 * 1024
"""How much of a member is read to decide whether it is worth reading whole."""


class Want(enum.Enum):
    """What a container walker should do with one member."""

    SKIP = "skip"
    PEEK = "peek"
    """Read the first ``PEEK_BYTES``; read the whole member only if it starts with a pickle."""
    READ = "read"


MemberHandler = Callable[[Artifact], Iterator[Finding]]
"""Receives a spooled member (a child artifact) and yields findings; default ``ctx.dispatch``."""


class TreeBudget:
    """What a whole tree of nested containers may cost: expanded bytes, members and time.

    Per-archive caps do not stop a recursive bomb (42.zip: every level is small and within
    ratio, the product is petabytes) or overlapping entries (each member is small, together
    they are gigabytes). One budget is shared by every container opened while scanning one
    top-level file (its counts live in ``ScanContext.containers``). Expanded bytes are held to
    the same ratio as a single member: ``max_archive_ratio`` times the size of the outermost
    container (or of the file), at least ``min_bomb_bytes``, at most
    ``max_archive_total_bytes``.
    """

    __slots__ = ("limits", "tally")

    def __init__(self, limits: Limits, tally: ContainerTally) -> None:
        self.limits = limits
        self.tally = tally
        if tally.started is None:
            tally.started = time.monotonic()

    @property
    def allowance(self) -> int:
        """Bytes the whole tree may expand to."""
        lim = self.limits
        by_ratio = max(self.tally.base * lim.max_archive_ratio, lim.min_bomb_bytes)
        return min(by_ratio, lim.max_archive_total_bytes)

    def remaining(self) -> int:
        """Bytes still allowed (0 once spent)."""
        t = self.tally
        return 0 if t.spent is not None else max(self.allowance - t.expanded, 0)

    def exceed(self, message: str) -> LimitExceeded:
        """Mark the budget spent (a bomb was seen: the whole file stops) and return the error."""
        return self._fail(message)

    def _fail(self, message: str) -> LimitExceeded:
        if self.tally.spent is None:
            self.tally.spent = f"container tree: {message}"
        return LimitExceeded(self.tally.spent)

    def _check_spent(self) -> None:
        if self.tally.spent is not None:
            raise LimitExceeded(self.tally.spent)

    def check_time(self) -> None:
        """Raise once the tree has run past ``max_container_seconds``."""
        self._check_spent()
        seconds = self.limits.max_container_seconds
        started = self.tally.started
        if started is not None and time.monotonic() - started > seconds:
            raise self._fail(f"analysis of nested containers took over {seconds} s")

    def charge(self, size: int) -> None:
        """Count ``size`` expanded bytes; raise ``LimitExceeded`` past the allowance."""
        self._check_spent()
        self.tally.expanded += size
        if self.tally.expanded > self.allowance:
            raise self._fail(
                f"nested containers expand past {self.allowance} bytes "
                f"(from {self.tally.base}; ratio cap {self.limits.max_archive_ratio}: "
                "decompression bomb)"
            )
        self.check_time()

    def member(self) -> None:
        """Count one member about to be handed on; raise past ``max_container_members``."""
        self._check_spent()
        self.tally.members += 1
        cap = self.limits.max_container_members
        if self.tally.members > cap:
            raise self._fail(f"more than {cap} members across nested containers")
        self.check_time()


@contextlib.contextmanager
def tree_budget(ctx: ScanContext, artifact: Artifact) -> Iterator[TreeBudget]:
    """The budget of the file ``artifact`` belongs to (see ``TreeBudget``)."""
    tally = ctx.containers
    if tally.base == 0 or artifact.depth == 0:
        tally.base = max(tally.base, artifact.size, 1)
    yield TreeBudget(ctx.limits, tally)


class Spool:
    """A bounded, seekable spool that keeps what it got even when the source fails midway.

    A payload placed at the start of a stream that breaks later (nullifAI) is still handed on.
    """

    def __init__(self, budget: TreeBudget | None = None) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.size = 0
        self.crc = 0
        self.budget = budget

    def write(self, block: bytes) -> None:
        if self.budget is not None:
            self.budget.charge(len(block))
        self.file.write(block)
        self.size += len(block)
        self.crc = zlib.crc32(block, self.crc)

    def fill(self, chunks: Iterable[bytes]) -> ArtifactError | None:
        """Copy ``chunks``; return the error that stopped the copy (limits included), if any."""
        try:
            for block in chunks:
                self.write(block)
        except ArtifactError as exc:
            return exc
        return None

    def stream(self) -> BinaryIO:
        self.file.seek(0)
        return self.file  # type: ignore[return-value]


def member_error(child: Artifact, exc: ArtifactError) -> Finding:
    """A per-member GEN001/GEN002 finding, so one bad member never hides the others."""
    if isinstance(exc, LimitExceeded):
        return child.finding(GEN002, str(exc), offset=exc.offset)
    return child.finding(GEN001, f"member cannot be read: {exc}", offset=exc.offset)


def handoff(
    artifact: Artifact,
    name: str,
    spool: Spool,
    handler: MemberHandler,
    error: ArtifactError | None,
) -> Iterator[Finding]:
    """Dispatch what was read (even a partial member), then report why it stopped, if it did."""
    child = artifact.child(name, ArtifactKind.UNKNOWN, spool.size, spool.stream())
    try:
        if spool.size:
            yield from handler(child)
        if error is not None:
            yield member_error(child, error)
    finally:
        spool.file.close()


def bounded_reads(stream: BinaryIO, size: int, cap: int) -> Iterator[bytes]:
    """``size`` bytes from the stream's position in ``CHUNK`` blocks; refused past ``cap``, and
    ``ArtifactError`` if the stream ends first."""
    if size > cap:
        raise LimitExceeded(f"region of {size} bytes over the read cap {cap}")
    left = size
    while left > 0:
        block = stream.read(min(CHUNK, left))
        if not block:
            raise ArtifactError("unexpected end of data", stream.tell())
        left -= len(block)
        yield block
