"""Archives and compression wrappers: walk members as bounded streams and hand each to the engine.

Nothing here analyses content. Every member is spooled (bounded RAM) and dispatched with kind
``UNKNOWN``, so the engine sniffs it by its bytes: a pickle inside a 7z (nullifAI), a gzip-wrapped
joblib pickle (google/saferpickle#41) or a zip inside a zip reaches the right scanner whatever it
is called. What the container itself does wrong (traversal names, links, CRC and header
disagreements, duplicate names, bombs) is reported here as ``ARC`` findings.

Member names are data: they are never joined to a filesystem path and nothing is ever extracted
to disk.
"""

from __future__ import annotations

import bz2
import contextlib
import enum
import itertools
import lzma
import math
import re
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, ClassVar

from scanners import _zip
from scanners._io import CHUNK, SPOOL_IN_MEMORY
from scanners._zip import ZLIB_DECOMPRESSOR
from scanners.base import Artifact, ScanContext
from supplychain.core.errors import ArtifactError, LimitExceeded, MissingDependency
from supplychain.core.limits import ContainerTally, Limits
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import GEN001, GEN002, make_rule

_ZIP_REFS = (
    "https://github.com/mmaitre314/picklescan/security/advisories",
    "https://jfrog.com/blog/unveiling-3-zero-day-vulnerabilities-in-picklescan/",
)

ARC001 = make_rule(
    "ARC001",
    "Unsafe member path",
    Severity.HIGH,
    "An archive member is named with a parent-directory step (`..`), an absolute path, a drive "
    "letter or a NUL byte. Extracting the archive can write outside the target directory "
    "(zip-slip / tar-slip) and overwrite code or configuration that runs later.",
    "Do not extract the archive with a tool that honours such names; rebuild it with plain "
    "relative member names.",
    cwe=22,
)
ARC002 = make_rule(
    "ARC002",
    "Link or special-file member",
    Severity.HIGH,
    "An archive member is a symbolic link, hard link or device/FIFO node. On extraction a link "
    "can make later members (or the loader) read or write files outside the archive, such as "
    "credentials or startup scripts; device nodes have no place in a model archive.",
    "Replace links by the files they point to, and remove special files.",
    cwe=59,
)
ARC003 = make_rule(
    "ARC003",
    "Zip local/central file name mismatch",
    Severity.HIGH,
    "A member's local header names a different file than its central-directory entry. PyTorch "
    "trusts the central directory and loads the member, while Python's zipfile refuses it, so "
    "scanners built on zipfile skipped the payload (CVE-2025-1944).",
    "Treat the archive as hostile; rebuild it from trusted sources.",
    cwe=436,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-1944", *_ZIP_REFS),
)
ARC004 = make_rule(
    "ARC004",
    "Unusual or inconsistent zip flag bits",
    Severity.MEDIUM,
    "A member sets general-purpose flag bits that ordinary writers never use (patched data, "
    "strong encryption, reserved bits), or its local and central flags disagree. Flipped flag "
    "bits made zipfile-based scanners refuse members that other loaders still read "
    "(CVE-2025-1945).",
    "Rebuild the archive with a standard tool (torch.save, numpy.savez, zip).",
    cwe=436,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-1945", *_ZIP_REFS),
)
ARC005 = make_rule(
    "ARC005",
    "Encrypted member",
    Severity.HIGH,
    "A member (or the whole archive) is encrypted, so its content cannot be analysed. Encryption "
    "is a known way to carry a payload past scanners; the content is never reported as clean.",
    "Obtain an unencrypted copy from a trusted source and scan that.",
    cwe=693,
)
ARC006 = make_rule(
    "ARC006",
    "Zip CRC mismatch",
    Severity.MEDIUM,
    "A member's CRC-32 does not match its content. PyTorch ignores CRCs, so a tampered pickle "
    "still loads, while zipfile-based scanners raised and skipped it (CVE-2025-10156). A stored "
    "CRC of zero can be legitimate (torch.save with CRC computation disabled) and is reported at "
    "low severity.",
    "Verify the file's digest against the publisher's; re-download it.",
    cwe=354,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-10156", *_ZIP_REFS),
)
ARC007 = make_rule(
    "ARC007",
    "Duplicate member names",
    Severity.HIGH,
    "Two members share a name. Loaders disagree on which copy wins (first, last, binary-search "
    "order), so a scanner that reads one copy can be shown a benign member while the loader "
    "reads the other. Every copy is scanned here.",
    "Rebuild the archive so each name appears once.",
    cwe=436,
)
ARC008 = make_rule(
    "ARC008",
    "Data outside the archive structure",
    Severity.MEDIUM,
    "Bytes sit before the first member (a prefixed or polyglot file: e.g. a pickle that is also a "
    "zip) or after the end of the archive. Different loaders read different parts of such a "
    "file; the hidden part is analysed separately when it can be.",
    "Rebuild the archive without extra data.",
    cwe=436,
)
ARC009 = make_rule(
    "ARC009",
    "Inconsistent archive metadata",
    Severity.MEDIUM,
    "The archive's own bookkeeping disagrees with itself (entry counts, compression methods, "
    "declared vs actual sizes, data past the end of the file). Parsers resolve such conflicts "
    "differently, which is how scanner/loader confusion attacks work.",
    "Rebuild the archive with a standard tool.",
    cwe=20,
)
ARC010 = make_rule(
    "ARC010",
    "Overlapping members",
    Severity.HIGH,
    "Two members' data ranges overlap. Overlap is the core of non-recursive zip bombs (one "
    "compressed kernel referenced many times) and lets one set of bytes appear under two names.",
    "Do not extract the archive; treat it as hostile.",
    cwe=409,
)
ARC011 = make_rule(
    "ARC011",
    "Pickle where raw data is expected",
    Severity.MEDIUM,
    "A tensor storage blob (raw numbers that the loader never unpickles) starts with a complete "
    "pickle. Nothing legitimate writes that; it is a stash for a payload that another stage "
    "loads. The pickle is analysed as its own member.",
    "Rebuild the checkpoint from trusted code (torch.save / safetensors).",
    cwe=506,
)
ARC013 = make_rule(
    "ARC013",
    "Unparseable legacy torch record",
    Severity.HIGH,
    "A legacy torch checkpoint does not follow the layout torch reads: a tar checkpoint's "
    "storages/tensors member (pickle header, then pickles interleaved with raw storage bytes), or "
    "a pre-1.6 stream (five pickles, then one raw record per storage key whose size the "
    "persistent ids declare). Some of its bytes could not be placed; they are analysed as "
    "potential pickles, and the file is not treated as clean.",
    "Convert the checkpoint to safetensors in an isolated environment, or discard it.",
    cwe=20,
)

ARC_RULES: tuple[Rule, ...] = (
    ARC001,
    ARC002,
    ARC003,
    ARC004,
    ARC005,
    ARC006,
    ARC007,
    ARC008,
    ARC009,
    ARC010,
)

PEEK_BYTES = 64 * 1024
"""How much of a member is read to decide whether it is worth reading whole."""
ZIP_BENIGN_FLAGS = 0x1 | 0x2 | 0x4 | 0x8 | 0x800
"""Encryption (reported on its own), compression options, data descriptor, UTF-8 names."""
_DRIVE = re.compile(r"^[A-Za-z]:")


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


def name_problem(name: str) -> str | None:
    """Why a member name is dangerous to extract, or ``None`` for a plain relative path."""
    if "\x00" in name:
        return "NUL byte in name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "absolute path"
    if ".." in norm.split("/"):
        return "parent-directory traversal"
    return None


def looks_like_pickle(data: bytes) -> bool:
    """Strict test that ``data`` starts with a pickle (protocol 2+) that imports something.

    A pickle without an import cannot run code, and random numbers in a tensor storage pass a
    looser test about once in a few hundred blobs; requiring an import keeps false alarms away.
    The bounded opcode walk must reach ``STOP``, or run to the end of the window.
    """
    import io
    import pickletools
    import warnings

    if len(data) < 4 or data[0] != 0x80 or not 2 <= data[1] <= 5:
        return False
    saw_import = False
    ops = 0
    depth = 0
    marks: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools warns on odd string escapes
        try:
            for op, _arg, _pos in pickletools.genops(io.BytesIO(data)):
                ops += 1
                if op.name in ("GLOBAL", "STACK_GLOBAL", "INST"):
                    saw_import = True
                # Stack consistency: random bytes pop from an empty stack within a few ops.
                before = op.stack_before
                if op.name == "MARK":
                    marks.append(depth)
                    continue
                if pickletools.markobject in before:
                    if not marks:
                        return False
                    below = before.index(pickletools.markobject)
                    depth = marks.pop() - below
                else:
                    depth -= len(before)
                if depth < 0:
                    return False
                depth += len(op.stack_after)
                if op.name == "STOP":
                    return saw_import and depth == 0 and not marks
        except Exception:  # any decode failure: end of window, or not a pickle
            return saw_import and ops >= 8
    return saw_import


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


def _member_error(child: Artifact, exc: ArtifactError) -> Finding:
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
            yield _member_error(child, error)
    finally:
        spool.file.close()


# --------------------------------------------------------------------------------------------
# zip


def walk_zip(
    artifact: Artifact,
    ctx: ScanContext,
    want: Callable[[_zip.ZipEntry], Want] | None = None,
    handler: MemberHandler | None = None,
    on_peek: Callable[[Artifact, _zip.ZipEntry], Iterator[Finding]] | None = None,
) -> Iterator[Finding]:
    """Check a zip the way a paranoid PyTorch would read it, then hand members on.

    The central directory is trusted (as PyTorch and miniz do); every disagreement with local
    headers, CRCs and sizes is reported as its own finding instead of stopping the walk.
    Raises ``ArtifactError`` when there is no directory to read and ``LimitExceeded`` when the
    declared content is over the caps before anything is decompressed, or when the whole tree
    of nested containers runs out of budget (``TreeBudget``).
    """
    with tree_budget(ctx, artifact) as budget:
        yield from _walk_zip(artifact, ctx, budget, want, handler, on_peek)


def _walk_zip(
    artifact: Artifact,
    ctx: ScanContext,
    budget: TreeBudget,
    want: Callable[[_zip.ZipEntry], Want] | None,
    handler: MemberHandler | None,
    on_peek: Callable[[Artifact, _zip.ZipEntry], Iterator[Finding]] | None,
) -> Iterator[Finding]:
    limits = ctx.limits
    stream = artifact.stream
    handle = handler or ctx.dispatch
    choose = want or (lambda _e: Want.READ)
    budget.check_time()
    directory = _zip.read_directory(stream, artifact.size, limits.max_archive_members)
    entries = directory.entries

    def loc(e: _zip.ZipEntry) -> Artifact:
        return artifact.child(e.name, ArtifactKind.UNKNOWN, e.size, stream)

    for problem in directory.problems:
        if "prefixed data" not in problem:
            yield artifact.finding(ARC009, f"zip: {problem}", offset=directory.eocd_offset)
    # Resolve every local header first: structure findings come before any member content.
    broken: dict[int, ArtifactError] = {}
    for e in entries:
        try:
            _zip.resolve(stream, e, artifact.size)
        except ArtifactError as exc:
            broken[e.index] = exc
    yield from _zip_prefix_and_tail(artifact, ctx, directory, broken, handle, budget)
    # Archive-wide findings before per-member ones: a flood of the latter (one per entry of a
    # bomb) must not push them past the per-file findings cap.
    yield from _zip_overlaps(artifact, entries, broken)
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.name] = seen.get(e.name, 0) + 1
        if seen[e.name] == 2:
            yield loc(e).finding(
                ARC007, f"member name {e.name!r} appears more than once", evidence=e.name
            )
        bad_name = name_problem(e.name)
        if bad_name:
            yield loc(e).finding(ARC001, f"zip member name: {bad_name}", evidence=e.name)
        yield from _zip_entry_findings(loc(e), e, broken)
    links = {e.index for e in entries if stat.S_ISLNK(e.unix_mode)}
    for e in entries:
        if e.index in links:
            # unzip and many extractors recreate these as links; the target is the member data.
            target = _link_target(stream, e, limits.max_archive_ratio)
            bad = target is None or name_problem(target) is not None
            yield loc(e).finding(
                ARC002,
                f"symbolic link member{' pointing outside the archive' if bad else ''}; "
                "not followed",
                evidence=f"{e.name} -> {target!r}",
                severity=Severity.HIGH if bad else Severity.MEDIUM,
            )

    def is_bomb(e: _zip.ZipEntry) -> bool:
        return (
            e.size > max(e.compressed_size, 1024) * limits.max_archive_ratio
            and e.size > limits.min_bomb_bytes
        )

    plan = [(e, choose(e)) for e in entries if e.index not in broken and e.index not in links]
    declared = sum(e.size for e, w in plan if w is Want.READ and not is_bomb(e))
    if declared > limits.max_archive_total_bytes:
        raise LimitExceeded(
            f"zip declares {declared} uncompressed bytes to read "
            f"(limit {limits.max_archive_total_bytes})"
        )
    if declared > budget.remaining():
        # Overlapping entries (Fifield's non-recursive bomb) and the lower levels of a
        # recursive one declare more than the whole tree may expand to: refuse up front.
        raise budget.exceed(
            f"zip declares {declared} uncompressed bytes, over the {budget.remaining()} bytes "
            "left for nested containers (decompression bomb)"
        )
    for e in entries:
        if e.index in broken:
            yield _member_error(loc(e), broken[e.index])
    local_budget = limits.max_archive_total_bytes
    for e, w in plan:
        encrypted = bool(e.flags & 0x1)
        if w is Want.SKIP or (e.size == 0 and e.compressed_size == 0 and not encrypted):
            continue
        if is_bomb(e):
            yield loc(e).finding(
                GEN002,
                f"zip member declares {e.size} bytes from {e.compressed_size} "
                f"(ratio over {limits.max_archive_ratio}: zip bomb); not decompressed",
                evidence=e.name,
            )
            continue
        budget.member()
        aes = e.method == _zip.AES_METHOD  # AES without bit 0 is still AES: never readable
        cipher = _zip_really_encrypted(e) if encrypted or aes else None
        if cipher is not None:
            yield _encrypted_finding(loc(e), e, cipher)
            continue
        if w is Want.PEEK and not encrypted:
            head = _peek(stream, e, limits.max_archive_ratio)
            if head is None or not looks_like_pickle(head):
                continue
            if on_peek is not None:
                yield from on_peek(loc(e), e)
        if local_budget <= 0:
            raise LimitExceeded(
                f"zip members expand past {limits.max_archive_total_bytes} bytes in total"
            )
        spool = Spool(budget)
        error = spool.fill(
            _zip.iter_member(
                stream,
                e,
                min(limits.max_read_bytes, local_budget),
                limits.max_archive_ratio,
                min_bomb_bytes=limits.min_bomb_bytes,
            )
        )
        local_budget -= spool.size
        if encrypted:
            why = _cipher_evidence(e, spool, error)
            if why is not None:
                spool.file.close()
                yield _encrypted_finding(loc(e), e, why)
                continue
            yield loc(e).finding(
                ARC004,
                "encryption flag set but the member data is in the clear: zipfile and torch "
                "refuse it, readers that ignore the flag load it; analysed",
                evidence=f"flags={e.flags:#06x} method={e.method}",
                offset=e.header_offset,
            )
            if w is Want.PEEK:
                head = spool.stream().read(PEEK_BYTES)
                if not looks_like_pickle(head):
                    spool.file.close()
                    continue
                if on_peek is not None:
                    yield from on_peek(loc(e), e)
        if error is None:
            yield from _zip_content_findings(loc(e), e, spool)
        yield from handoff(artifact, e.name, spool, handle, error)
        yield from _local_view(artifact, e, ctx, budget, handle)


ENCRYPTED_ENTROPY = 7.2
"""Bits per byte above which flagged member data is taken to be ciphertext. Pickles, JSON,
source and most tensors stay well below; ciphertext (and random bytes) sit near 8."""


def _zip_really_encrypted(e: _zip.ZipEntry) -> str | None:
    """Why a flagged member is encrypted from its headers alone, or ``None`` to look at data."""
    tags = _zip.extra_tags(e.extra) | _zip.extra_tags(e.local_extra)
    if e.method == _zip.AES_METHOD or _zip.AES_EXTRA in tags:
        return "WinZip AES record (method 99 / extra field 0x9901)"
    if e.flags & 0x40:
        return "strong-encryption flag (bit 6)"
    if e.flags & 0x2000:
        return "central directory encryption flag (bit 13)"
    return None


def _entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    counts = [0] * 256
    for b in data:
        counts[b] += 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def _cipher_evidence(e: _zip.ZipEntry, spool: Spool, error: ArtifactError | None) -> str | None:
    """Decide from the bytes whether a member flagged as encrypted really is.

    The data is taken to be in the clear only when it reads as plain member data: a CRC-32
    that matches what was read, a complete pickle at its start, or (CRC zeroed or wrong, as
    torch tolerates) data that fills exactly the declared size without the 12-byte ZipCrypto
    header and is not ciphertext-random. Anything else fails closed as encrypted.
    """
    if error is not None and not isinstance(error, LimitExceeded):
        return f"data does not read as plain member data ({error})"
    if error is None and spool.size and spool.crc == e.crc:
        return None
    head = spool.stream().read(PEEK_BYTES)
    if looks_like_pickle(head):
        # Ciphertext never walks as a stack-consistent pickle that imports something; a reader
        # that ignores the flag would run it.
        return None
    if e.method == _zip.STORED and e.compressed_size == e.size + 12:
        return "ZipCrypto: 12-byte encryption header before the data"
    if error is None and spool.size != e.size:
        return f"read {spool.size} bytes where {e.size} are declared"
    if _entropy(head) > ENCRYPTED_ENTROPY:
        return f"data is random like ciphertext ({_entropy(head):.2f} bits/byte)"
    return None


def _encrypted_finding(here: Artifact, e: _zip.ZipEntry, why: str) -> Finding:
    return here.finding(
        ARC005,
        "member is encrypted and cannot be analysed",
        evidence=f"flags={e.flags:#06x} method={e.method}: {why}",
        offset=e.header_offset,
    )


def _local_view(
    artifact: Artifact,
    e: _zip.ZipEntry,
    ctx: ScanContext,
    budget: TreeBudget,
    handle: MemberHandler,
) -> Iterator[Finding]:
    """Analyse a member as a streaming reader sees it when its local header disagrees.

    torch (miniz) and zipfile take method and sizes from the central directory; readers that
    stream the file (no central directory) take them from the local header. When the two
    describe different bytes, both versions are analysed and the difference is a finding.
    """
    if e.local_method < 0 or e.local_flags & 0x8 or e.local_flags & 0x1:
        return
    if (e.local_method, e.local_compressed_size) == (e.method, e.compressed_size):
        return
    if e.local_compressed_size <= 0:
        return
    view = _zip.ZipEntry(
        name=e.name,
        method=e.local_method,
        flags=e.local_flags,
        crc=e.local_crc,
        compressed_size=e.local_compressed_size,
        size=e.local_size,
        header_offset=e.header_offset,
        data_offset=e.data_offset,
        index=e.index,
    )
    limits = ctx.limits
    spool = Spool(budget)
    error = spool.fill(
        _zip.iter_member(
            artifact.stream,
            view,
            min(limits.max_read_bytes, max(budget.remaining(), 1)),
            limits.max_archive_ratio,
            min_bomb_bytes=limits.min_bomb_bytes,
        )
    )
    here = artifact.child(e.name, ArtifactKind.UNKNOWN, e.size, artifact.stream)
    yield here.finding(
        ARC009,
        "local header describes other member data than the central directory "
        "(streaming readers load that version); both are analysed",
        evidence=f"central method={e.method} csize={e.compressed_size}; "
        f"local method={e.local_method} csize={e.local_compressed_size}",
        offset=e.header_offset,
        severity=Severity.HIGH,
    )
    yield from handoff(artifact, f"{e.name} <local header view>", spool, handle, error)


def _link_target(stream: BinaryIO, e: _zip.ZipEntry, max_ratio: int) -> str | None:
    if e.index < 0 or e.data_offset < 0:
        return None
    head = _peek(stream, e, max_ratio)
    return None if head is None else head[:4096].decode("utf-8", "replace")


def _peek(stream: BinaryIO, e: _zip.ZipEntry, max_ratio: int) -> bytes | None:
    chunks = _zip.iter_member(stream, e, PEEK_BYTES, max_ratio, chunk=PEEK_BYTES)
    try:
        return next(chunks, b"")[:PEEK_BYTES]
    except ArtifactError:
        return None
    finally:
        chunks.close()


def _zip_prefix_and_tail(
    artifact: Artifact,
    ctx: ScanContext,
    directory: _zip.ZipDirectory,
    broken: dict[int, ArtifactError],
    handle: MemberHandler,
    budget: TreeBudget | None = None,
) -> Iterator[Finding]:
    starts = [e.header_offset for e in directory.entries if e.index not in broken]
    first = min([*starts, directory.cd_start, directory.eocd_offset])
    if first > 0:
        # NOTE: a pickle with a zip glued after it (or a fake EOCD in its tail) loads as a pickle
        # in torch (it checks for "PK\x03\x04" at offset 0) while looking like a zip here.
        yield artifact.finding(
            ARC008,
            f"{first} bytes before the first zip member (prefixed or polyglot file)",
            offset=0,
        )
        artifact.stream.seek(0)
        spool = Spool(budget)
        error = spool.fill(bounded_reads(artifact.stream, first, ctx.limits.max_read_bytes))
        yield from handoff(artifact, "<data before zip>", spool, handle, error)
    if directory.trailing_bytes:
        yield artifact.finding(
            ARC008,
            f"{directory.trailing_bytes} bytes after the end of the zip",
            offset=artifact.size - directory.trailing_bytes,
            severity=Severity.LOW,
        )


def bounded_reads(stream: BinaryIO, size: int, cap: int) -> Iterator[bytes]:
    if size > cap:
        raise LimitExceeded(f"region of {size} bytes over the read cap {cap}")
    left = size
    while left > 0:
        block = stream.read(min(CHUNK, left))
        if not block:
            raise ArtifactError("unexpected end of data", stream.tell())
        left -= len(block)
        yield block


def _zip_entry_findings(
    here: Artifact, e: _zip.ZipEntry, broken: dict[int, ArtifactError]
) -> Iterator[Finding]:
    odd = e.flags & ~ZIP_BENIGN_FLAGS & 0xFFFF
    if odd:
        yield here.finding(
            ARC004,
            f"unusual general-purpose flag bits {odd:#06x} set",
            evidence=f"flags={e.flags:#06x}",
            offset=e.header_offset,
        )
    if e.index in broken:
        if e.flags & 0x1:
            yield here.finding(
                ARC005, "member is encrypted and cannot be analysed", offset=e.header_offset
            )
        return
    if e.local_name is not None and e.local_name != e.name:
        yield here.finding(
            ARC003,
            "local header names a different file than the central directory",
            evidence=f"central={e.name!r} local={e.local_name!r}",
            offset=e.header_offset,
        )
    if e.local_flags >= 0 and e.local_flags != e.flags:
        yield here.finding(
            ARC004,
            "local and central flags differ",
            evidence=f"central={e.flags:#06x} local={e.local_flags:#06x}",
            offset=e.header_offset,
        )
    for problem in e.problems:
        if problem.startswith(("local header method", "local header sizes", "member data extends")):
            yield here.finding(ARC009, problem, offset=e.header_offset)


def _zip_overlaps(
    artifact: Artifact, entries: list[_zip.ZipEntry], broken: dict[int, ArtifactError]
) -> Iterator[Finding]:
    spans = sorted(
        (
            (e.header_offset, e.data_offset + e.compressed_size, e)
            for e in entries
            if e.index not in broken
        ),
        key=lambda span: (span[0], span[1]),
    )
    reported = 0
    for (_s1, end1, e1), (s2, _end2, e2) in itertools.pairwise(spans):
        if s2 < end1 and reported < 10:
            reported += 1
            yield artifact.child(e2.name, ArtifactKind.UNKNOWN, e2.size, artifact.stream).finding(
                ARC010,
                f"member data overlaps member {e1.name!r}",
                evidence=f"{e1.name!r} ends at {end1}, {e2.name!r} starts at {s2}",
                offset=s2,
            )


def _zip_content_findings(here: Artifact, e: _zip.ZipEntry, spool: Spool) -> Iterator[Finding]:
    if spool.size != e.size:
        yield here.finding(
            ARC009,
            f"member holds {spool.size} bytes but the directory declares {e.size}",
            offset=e.data_offset,
        )
    if spool.crc != e.crc:
        yield here.finding(
            ARC006,
            "CRC-32 does not match the member's content",
            evidence=f"stored={e.crc:08x} actual={spool.crc:08x}",
            offset=e.header_offset,
            severity=Severity.LOW if e.crc == 0 else None,
            confidence=Confidence.MEDIUM if e.crc == 0 else Confidence.HIGH,
        )


# --------------------------------------------------------------------------------------------
# tar


class _CappedReads:
    """File wrapper for ``tarfile``: one ``read`` may not ask for more than ``cap`` bytes.

    ``tarfile`` reads GNU long-name and pax headers whole; a hostile header declaring gigabytes
    would otherwise be loaded into memory.
    """

    def __init__(self, raw: BinaryIO, cap: int) -> None:
        self.raw = raw
        self.cap = cap

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.cap:
            raise LimitExceeded(f"tar header or read of {size} bytes over the cap {self.cap}")
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


def walk_tar(
    artifact: Artifact, ctx: ScanContext, handler: MemberHandler | None = None
) -> Iterator[Finding]:
    """Walk a (decompressed) tar's members in order; never extract, never follow a link."""
    with tree_budget(ctx, artifact) as tree:
        yield from _walk_tar(artifact, ctx, tree, handler)


def _walk_tar(
    artifact: Artifact, ctx: ScanContext, tree: TreeBudget, handler: MemberHandler | None
) -> Iterator[Finding]:
    limits = ctx.limits
    handle = handler or ctx.dispatch
    raw = _CappedReads(artifact.stream, min(limits.max_header_bytes, 64 * 2**20))
    try:
        tf = tarfile.open(fileobj=raw, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as exc:
        raise ArtifactError(f"tar: {exc}") from exc
    seen: set[str] = set()
    count = 0
    budget = limits.max_archive_total_bytes
    error: ArtifactError | None = None
    with tf:
        while True:
            try:
                info = tf.next()
            except tarfile.TarError as exc:
                error = ArtifactError(f"tar: {exc}", raw.tell())
                break
            except LimitExceeded as exc:
                error = exc
                break
            if info is None:
                break
            count += 1
            if count > limits.max_archive_members:
                raise LimitExceeded(f"tar has more than {limits.max_archive_members} members")
            name = info.name
            here = artifact.child(name, ArtifactKind.UNKNOWN, info.size, artifact.stream)
            if name in seen:
                yield here.finding(ARC007, f"member name {name!r} appears more than once")
            seen.add(name)
            problem = name_problem(name)
            if problem:
                yield here.finding(ARC001, f"tar member name: {problem}", evidence=name)
            if info.issym() or info.islnk():
                target = info.linkname
                bad = name_problem(target) is not None
                what = "symbolic link" if info.issym() else "hard link"
                yield here.finding(
                    ARC002,
                    f"{what} member{' pointing outside the archive' if bad else ''}; not followed",
                    evidence=f"{name} -> {target}",
                    severity=Severity.HIGH if bad else Severity.MEDIUM,
                )
                continue
            if info.isdev() or info.isfifo():
                yield here.finding(
                    ARC002,
                    "device or FIFO member; skipped",
                    evidence=name,
                    severity=Severity.MEDIUM,
                )
                continue
            if not info.isreg() or info.size == 0:
                continue
            if info.size > min(limits.max_read_bytes, budget):
                yield here.finding(
                    GEN002,
                    f"tar member of {info.size} bytes over the read caps; not analysed",
                    evidence=name,
                )
                continue
            tree.member()
            fh = tf.extractfile(info)
            if fh is None:
                continue
            # Tar members are plain copies of the tar's own bytes (no overlap, no compression):
            # the tar was charged when it was expanded, or sits on disk. Count members only.
            spool = Spool()
            member_error = spool.fill(_tar_chunks(fh))
            budget -= spool.size
            yield from handoff(artifact, name, spool, handle, member_error)
        end = raw.tell()
    yield from _tar_tail(artifact, end)
    if error is not None:
        raise error


def _tar_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield block
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"tar member truncated: {exc}") from exc


def _tar_tail(artifact: Artifact, end: int) -> Iterator[Finding]:
    """Non-zero bytes after the last header ``tarfile`` accepted are data no extractor shows."""
    stream = artifact.stream
    pos = max(end, 0)
    stream.seek(pos)
    checked = 0
    while pos + checked < artifact.size and checked < 16 * CHUNK:
        block = stream.read(CHUNK)
        if not block:
            break
        stripped = block.lstrip(b"\x00")
        if stripped:
            off = pos + checked + len(block) - len(stripped)
            yield artifact.finding(
                ARC008,
                "data after the end of the tar archive (ignored by tar readers)",
                offset=off,
            )
            return
        checked += len(block)


# --------------------------------------------------------------------------------------------
# single-stream compression


def _codec(kind: ArtifactKind) -> tuple[Callable[[], Any], bytes]:
    """A factory for a fresh decompressor and the magic that starts a concatenated stream."""
    match kind:
        case ArtifactKind.GZIP:
            return (lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)), b"\x1f\x8b"
        case ArtifactKind.ZLIB:
            return (lambda: zlib.decompressobj(zlib.MAX_WBITS)), b"\x78"
        case ArtifactKind.BZIP2:
            return bz2.BZ2Decompressor, b"BZh"
        case ArtifactKind.XZ:
            # FORMAT_AUTO also reads legacy .lzma ("alone"), which joblib's 'lzma' compressor uses.
            return (lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO)), b"\xfd7zXZ\x00"
        case ArtifactKind.LZ4:
            try:
                import lz4.frame
            except ImportError as exc:
                raise MissingDependency("lz4 is needed to read LZ4 frames") from exc
            return lz4.frame.LZ4FrameDecompressor, b"\x04\x22\x4d\x18"
        case _:
            raise ArtifactError(f"no decompressor for {kind.value}")


def _drain(d: Any, data: bytes) -> Iterator[bytes]:
    """All output ``data`` produces, in chunks of at most ``CHUNK`` (a bomb never lands at once)."""
    if isinstance(d, ZLIB_DECOMPRESSOR):
        while True:
            out = d.decompress(data, CHUNK)
            if out:
                yield out
            tail = d.unconsumed_tail
            if d.eof or (not tail and len(out) < CHUNK) or (tail == data and not out):
                return
            data = tail
    else:
        out = d.decompress(data, CHUNK)
        if out:
            yield out
        while not d.eof and not d.needs_input:
            out = d.decompress(b"", CHUNK)
            if not out:
                return
            yield out


def _strip_joblib_zf(data: bytes) -> bytes:
    """joblib < 0.10 wrote each zlib block behind ``ZF`` and a space-padded hex length."""
    if data.startswith(b"ZF0x"):
        start = data.find(b"\x78", 4, 48)
        if start > 0 and not data[4:start].strip(b"0123456789abcdefABCDEF L"):
            return data[start:]
    return data


def decompressed(
    stream: BinaryIO, kind: ArtifactKind, ctx: ScanContext, trailing: list[int]
) -> Iterator[bytes]:
    """Decompress a single-stream wrapper in bounded chunks, following concatenated streams.

    Appends the offset of any non-stream data after the last stream to ``trailing``. Raises
    ``LimitExceeded`` past the read cap or the compression ratio, ``ArtifactError`` when the
    stream is corrupt or cut short.
    """
    limits = ctx.limits
    make, magic = _codec(kind)
    cap = min(limits.max_read_bytes, limits.max_archive_total_bytes)
    d = make()
    consumed = produced = 0
    errors: tuple[type[BaseException], ...] = (zlib.error, OSError, EOFError, lzma.LZMAError)
    if kind is ArtifactKind.LZ4:
        errors = (*errors, RuntimeError)
    stream.seek(0)
    data = b""
    first = True
    while True:
        if not data:
            data = stream.read(CHUNK)
            if not data:
                break
            consumed += len(data)
        if first and kind is ArtifactKind.ZLIB:
            data = _strip_joblib_zf(data)
        first = False
        try:
            for out in _drain(d, data):
                produced += len(out)
                if produced > cap:
                    raise LimitExceeded(f"{kind.value} stream expands past {cap} bytes")
                if (
                    produced > max(consumed, 1024) * limits.max_archive_ratio
                    and produced > limits.min_bomb_bytes
                ):
                    raise LimitExceeded(
                        f"{kind.value} stream expands more than {limits.max_archive_ratio}x "
                        "(decompression bomb)",
                        consumed,
                    )
                yield out
        except errors as exc:
            raise ArtifactError(f"{kind.value}: corrupt data ({exc})", consumed) from exc
        data = b""
        if d.eof:
            rest = d.unused_data
            if not rest:
                rest = stream.read(CHUNK)
                consumed += len(rest)
            if not rest:
                return
            if kind is ArtifactKind.ZLIB:
                rest = _strip_joblib_zf(rest)
            if rest.startswith(magic):
                d = make()
                data = rest
                continue
            if rest.strip(b"\x00"):
                trailing.append(consumed - len(rest))
            return
    if not d.eof:
        raise ArtifactError(f"{kind.value}: stream cut short", consumed)


def inner_name(name: str, kind: ArtifactKind) -> str:
    """The member name for a wrapper's payload: the file name without its compression suffix."""
    lower = name.lower()
    for suffix, repl in (
        (".tgz", ".tar"),
        (".gz", ""),
        (".bz2", ""),
        (".xz", ""),
        (".lzma", ""),
        (".lz4", ""),
        (".zlib", ""),
        (".z", ""),
    ):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + repl
    return f"<{kind.value} payload>"


# --------------------------------------------------------------------------------------------
# 7z


class _SevenZipWriter:
    """py7zr writer target: spools one member with a size cap, never touching the filesystem."""

    def __init__(self, name: str, cap: int, budget: TreeBudget | None = None) -> None:
        self.name = name
        self.cap = cap
        self.spool = Spool(budget)

    def write(self, s: bytes | bytearray) -> int:
        if self.spool.size + len(s) > self.cap:
            raise LimitExceeded(f"7z member {self.name!r} larger than {self.cap} bytes")
        self.spool.write(bytes(s))
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.spool.size

    def close(self) -> None:
        return None


def walk_7z(
    artifact: Artifact, ctx: ScanContext, handler: MemberHandler | None = None
) -> Iterator[Finding]:
    """List a 7z archive, check it, then decompress members into bounded spools."""
    with tree_budget(ctx, artifact) as tree:
        yield from _walk_7z(artifact, ctx, tree, handler)


def _walk_7z(
    artifact: Artifact, ctx: ScanContext, tree: TreeBudget, handler: MemberHandler | None
) -> Iterator[Finding]:
    try:
        import py7zr
        from py7zr.io import WriterFactory
    except ImportError as exc:
        raise MissingDependency("py7zr is needed to read 7z archives") from exc
    limits = ctx.limits
    handle = handler or ctx.dispatch
    writers: list[_SevenZipWriter] = []
    cap = min(limits.max_read_bytes, limits.max_archive_total_bytes)

    class Factory(WriterFactory):
        def create(self, filename: str) -> Any:
            tree.member()
            writer = _SevenZipWriter(filename, cap, tree)
            writers.append(writer)
            return writer

    artifact.stream.seek(0)
    error: ArtifactError | None = None
    try:
        archive = py7zr.SevenZipFile(artifact.stream, mode="r")
    except py7zr.exceptions.PasswordRequired:
        yield artifact.finding(ARC005, "7z archive headers are encrypted; nothing can be analysed")
        return
    except Exception as exc:  # py7zr raises assorted types (struct, index, key) on bad headers
        raise ArtifactError(f"7z: {type(exc).__name__}: {exc}") from exc
    with archive:
        try:
            infos = archive.list()
        except Exception as exc:  # same: a header py7zr cannot list is malformed
            raise ArtifactError(f"7z: {type(exc).__name__}: {exc}") from exc
        if len(infos) > limits.max_archive_members:
            raise LimitExceeded(f"7z has {len(infos)} members (limit {limits.max_archive_members})")
        if archive.needs_password():
            yield artifact.finding(ARC005, "7z member data is encrypted; cannot be analysed")
            return
        targets: list[str] = []
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            here = artifact.child(name, ArtifactKind.UNKNOWN, info.uncompressed, artifact.stream)
            if name in seen:
                yield here.finding(ARC007, f"member name {name!r} appears more than once")
            seen.add(name)
            problem = name_problem(name)
            if problem:
                yield here.finding(
                    ARC001, f"7z member name: {problem}; not extracted", evidence=name
                )
                continue
            if info.is_symlink:
                yield here.finding(
                    ARC002,
                    "symbolic link member; not followed",
                    evidence=name,
                    severity=Severity.MEDIUM,
                )
                continue
            if info.is_directory:
                continue
            targets.append(name)
        declared = sum(i.uncompressed for i in infos)
        if declared > limits.max_archive_total_bytes:
            raise LimitExceeded(f"7z declares {declared} uncompressed bytes")
        if declared > tree.remaining():
            raise tree.exceed(
                f"7z declares {declared} uncompressed bytes, over the {tree.remaining()} bytes "
                "left for nested containers (decompression bomb)"
            )
        if (
            declared > max(artifact.size, 1024) * limits.max_archive_ratio
            and declared > limits.min_bomb_bytes
        ):
            raise LimitExceeded(
                f"7z expands {declared} bytes from {artifact.size} "
                f"(ratio over {limits.max_archive_ratio}: decompression bomb)"
            )
        archive.max_extract_size = cap
        if targets:
            try:
                archive.extract(targets=targets, factory=Factory())
            except ArtifactError as exc:
                error = exc
            except (py7zr.exceptions.ArchiveError, lzma.LZMAError, EOFError, OSError) as exc:
                error = ArtifactError(f"7z: {exc}")
            except Exception as exc:  # py7zr raises assorted errors on bad input
                error = ArtifactError(f"7z: {type(exc).__name__}: {exc}")
    for writer in writers:
        yield from handoff(artifact, writer.name, writer.spool, handle, None)
    if error is not None:
        raise error


# --------------------------------------------------------------------------------------------
# the scanner

COMPRESSED_KINDS = frozenset(
    {
        ArtifactKind.GZIP,
        ArtifactKind.BZIP2,
        ArtifactKind.XZ,
        ArtifactKind.ZLIB,
        ArtifactKind.LZ4,
    }
)


class ArchiveScanner:
    """Generic archives (zip, tar, 7z) and compression wrappers: check, then dispatch members."""

    name: ClassVar[str] = "archive"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.ZIP, ArtifactKind.TAR, ArtifactKind.SEVEN_ZIP} | COMPRESSED_KINDS
    )
    rules: ClassVar[tuple[Rule, ...]] = (*ARC_RULES, ARC013)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Walk the container; every member goes back to the engine to be sniffed and scanned."""
        kind = artifact.kind
        if kind is ArtifactKind.ZIP:
            yield from walk_zip(artifact, ctx)
        elif kind is ArtifactKind.TAR:
            # A tar whose first member is not sys_info is still a legacy torch checkpoint to
            # torch.load; its storages/tensors members are cut into pickles the same way.
            from scanners.torch_scan import legacy_member

            yield from walk_tar(artifact, ctx, handler=lambda m: legacy_member(m, ctx))
        elif kind is ArtifactKind.SEVEN_ZIP:
            yield from walk_7z(artifact, ctx)
        elif kind in COMPRESSED_KINDS:
            yield from self._unwrap(artifact, ctx)

    def _unwrap(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        with tree_budget(ctx, artifact) as tree:
            yield from self._unwrap_in(artifact, ctx, tree)

    def _unwrap_in(
        self, artifact: Artifact, ctx: ScanContext, tree: TreeBudget
    ) -> Iterator[Finding]:
        trailing: list[int] = []
        tree.member()
        spool = Spool(tree)
        error = spool.fill(decompressed(artifact.stream, artifact.kind, ctx, trailing))
        if error is not None and not isinstance(error, LimitExceeded) and not spool.size:
            spool.file.close()
            raise error
        child = artifact.child(
            inner_name(artifact.name, artifact.kind),
            ArtifactKind.UNKNOWN,
            spool.size,
            spool.stream(),
        )
        try:
            if spool.size:
                yield from ctx.dispatch(child)
        finally:
            spool.file.close()
        if trailing:
            yield artifact.finding(
                ARC008,
                f"data after the end of the {artifact.kind.value} stream",
                offset=trailing[0],
            )
        if error is not None:
            raise error
