"""Shards → partitions with global row offsets, read with the product's own readers.

Engine-neutral (no Ray import): a distributed engine calls ``survey_shard`` once per shard (one
streaming pass: kind by content, size, sha256, and the partition cuts with their row counts),
``plan_partitions`` on the driver (global row offsets from shard order and row counts, so the
same data always gets the same row numbers), and ``read_partition`` in a worker.

Why our readers and not the engine's (``ray.data.read_json``/``read_parquet``): the findings must
equal a single-machine run. Arrow's JSON reader infers one schema per block and rejects the whole
block on one bad line, where ours reports the line (DAT001) and reads the rest; and our Parquet
reader refuses a row group that declares more decoded bytes than allowed (a decompression bomb)
before pyarrow expands it. Both read only bounded pieces: one JSONL line up to
``max_line_bytes``, one Parquet batch of ``PARQUET_BATCH`` rows.

Object-store paths (``s3://``, ``gs://``, ``hdfs://``, ``abfs://`` …) are opened through
``pyarrow.fs`` with the credentials of the environment the worker runs in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

from scanners.base import Artifact, ScanContext
from scanners.dataset.common import DatasetOptions, Record
from scanners.dataset.readers import (
    FIRST_ROWS_SHOWN,
    PARQUET_BATCH,
    FieldPlan,
    JsonlReader,
    ParquetReader,
    ReadIssues,
    RowIssue,
)
from supplychain.core.errors import ArtifactError, ConfigError, LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind

CHUNK = 1 << 20
SHARD_SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json")
"""Files taken from a directory or an object-store prefix (explicit files are sniffed)."""
PARTITION_BYTES = 64 * 2**20
"""A JSONL shard is cut into pieces of about this many bytes, at line ends."""
PARTITION_ROWS = 65_536
"""Parquet row groups are grouped into pieces of at least this many rows."""
KINDS = (ArtifactKind.DATASET_JSONL, ArtifactKind.DATASET_PARQUET)


@dataclass(frozen=True, slots=True)
class Piece:
    """One cut of a shard: a byte range (JSONL) or a row-group range (Parquet), and its rows."""

    start: int
    stop: int
    rows: int


@dataclass(frozen=True, slots=True)
class ShardSurvey:
    """What one streaming pass over a shard found (``error`` set: the shard is not read)."""

    uri: str
    name: str
    kind: ArtifactKind
    size: int
    sha256: str
    pieces: tuple[Piece, ...] = ()
    error: str = ""
    limit: bool = False
    """``error`` is a limit (GEN002) rather than a malformed file (GEN001)."""

    @property
    def rows(self) -> int:
        """Rows of the shard (JSONL: lines, blank ones included, as the reader numbers them)."""
        return sum(p.rows for p in self.pieces)


@dataclass(frozen=True, slots=True)
class Partition:
    """A unit of work: one piece of one shard and the global index of its first row."""

    index: int
    uri: str
    name: str
    kind: ArtifactKind
    start: int
    stop: int
    row_offset: int
    rows: int
    size: int = -1
    """The shard's size when surveyed; a different size when read means it changed (GEN001)."""


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The field plan of the whole dataset (detected once, on the first shard's head)."""

    plan: FieldPlan
    columns: tuple[str, ...]
    notes: tuple[str, ...]
    format_name: str


# ---------------------------------------------------------------------------------------------
# Paths: local files, directories and object-store URIs
# ---------------------------------------------------------------------------------------------


def is_uri(path: str) -> bool:
    """``s3://bucket/key`` and friends (``file://`` too); plain paths are local."""
    return "://" in path


def _fs(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot open {uri}: {exc}") from None
    return fs, str(path)


def open_input(uri: str) -> BinaryIO:
    """A seekable binary stream over a local file or an object-store object."""
    if not is_uri(uri):
        return Path(uri).open("rb")
    fs, path = _fs(uri)
    return cast(BinaryIO, fs.open_input_file(path))


def expand_paths(paths: Sequence[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(uri, reported name)`` of every shard, in a stable order (explicit files as given,
    directories and prefixes walked recursively, sorted, for ``SHARD_SUFFIXES``), and
    ``(name, reason)`` of every other file met in a directory: reported as skipped, never
    dropped silently."""
    out: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        if is_uri(raw):
            import pyarrow.fs as pafs

            fs, base = _fs(raw)
            info = fs.get_file_info(base)
            if info.type == pafs.FileType.File:
                out.append((raw, raw))
                continue
            if info.type != pafs.FileType.Directory:
                raise ConfigError(f"{raw}: no such object or prefix")
            scheme = raw.split("://", 1)[0]
            listed = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            for entry in sorted(listed, key=lambda i: str(i.path)):
                if entry.type != pafs.FileType.File:
                    continue
                uri = f"{scheme}://{entry.path}"
                if str(entry.path).lower().endswith(SHARD_SUFFIXES):
                    out.append((uri, uri))
                else:
                    skipped.append((uri, NOT_A_SHARD))
            continue
        path = Path(raw)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(path).as_posix()
                if p.is_symlink():
                    skipped.append((rel, "symbolic link: not followed by --engine ray"))
                elif not p.is_file():
                    continue
                elif p.name.lower().endswith(SHARD_SUFFIXES):
                    out.append((str(p), rel))
                else:
                    skipped.append((rel, NOT_A_SHARD))
        elif path.is_file():
            out.append((str(path), path.as_posix()))
        else:
            raise ConfigError(f"{raw}: no such file or directory")
    if not out:
        raise ConfigError("no Parquet or JSONL shard found in " + " ".join(paths))
    return out, skipped


NOT_A_SHARD = "not a Parquet/JSONL shard name: not read by --engine ray (use --engine local)"


def dataset_label(paths: Sequence[str]) -> str:
    """The name findings are located at: the one path given, or the paths' common leading
    components (``.`` when they share none)."""
    if len(paths) == 1:
        return paths[0].rstrip("/") or paths[0]
    common: list[str] = []
    for items in zip(*(p.split("/") for p in paths), strict=False):
        if any(i != items[0] for i in items):
            break
        common.append(items[0])
    return "/".join(common).rstrip("/") or "."


# ---------------------------------------------------------------------------------------------
# Survey: one pass per shard
# ---------------------------------------------------------------------------------------------


def survey_shard(
    uri: str,
    name: str,
    limits: Limits,
    *,
    piece_bytes: int = PARTITION_BYTES,
    piece_rows: int = PARTITION_ROWS,
) -> ShardSurvey:
    """Sniff, hash and cut one shard. Malformed or oversized shards come back with ``error``."""
    from scanners.sniff import sniff

    with open_input(uri) as stream:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        kind = sniff(stream, size, name.rsplit("/", 1)[-1])
        stream.seek(0)
        base = ShardSurvey(uri=uri, name=name, kind=kind, size=size, sha256="")
        if size > limits.max_read_bytes:
            return replace(
                base, error=f"{size} bytes, over max_read_bytes={limits.max_read_bytes}", limit=True
            )
        if kind not in KINDS:
            return replace(
                base,
                error=f"{kind.value} is not a Parquet or JSONL shard (the distributed engine reads "
                "those two; run other formats with --engine local)",
            )
        digest = hashlib.sha256()
        if kind is ArtifactKind.DATASET_JSONL:
            pieces = _jsonl_pieces(stream, digest, piece_bytes)
            return replace(base, sha256=digest.hexdigest(), pieces=pieces)
        while block := stream.read(CHUNK):
            digest.update(block)
        try:
            pieces = _parquet_pieces(stream, size, piece_rows)
        except ArtifactError as exc:
            return replace(base, sha256=digest.hexdigest(), error=str(exc))
        return replace(base, sha256=digest.hexdigest(), pieces=pieces)


def _jsonl_pieces(stream: BinaryIO, digest: Any, piece_bytes: int) -> tuple[Piece, ...]:
    """Cut at the first line end once a piece holds ``piece_bytes``; count lines per piece the
    way ``bounded_lines`` numbers them (a last line without ``\\n`` still counts)."""
    pieces: list[Piece] = []
    start = 0
    pos = 0
    lines = 0
    tail = False
    while block := stream.read(CHUNK):
        digest.update(block)
        i = 0
        while True:
            want = start + piece_bytes - pos  # where in this block the piece is full
            if want > len(block):
                break
            nl = block.find(b"\n", max(want - 1, i))
            if nl < 0:
                break
            lines += block.count(b"\n", i, nl + 1)
            pieces.append(Piece(start, pos + nl + 1, lines))
            start, lines, i = pos + nl + 1, 0, nl + 1
        lines += block.count(b"\n", i)
        tail = not block.endswith(b"\n")
        pos += len(block)
    if pos > start:
        pieces.append(Piece(start, pos, lines + (1 if tail else 0)))
    return tuple(pieces)


def _parquet_pieces(stream: BinaryIO, size: int, piece_rows: int) -> tuple[Piece, ...]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stream.seek(0)
    try:
        meta = pq.ParquetFile(stream).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArtifactError(f"unreadable Parquet footer: {exc}") from None
    pieces: list[Piece] = []
    first = 0
    rows = 0
    for g in range(meta.num_row_groups):
        rows += meta.row_group(g).num_rows
        if rows >= piece_rows:
            pieces.append(Piece(first, g + 1, rows))
            first, rows = g + 1, 0
    if first < meta.num_row_groups:
        pieces.append(Piece(first, meta.num_row_groups, rows))
    return tuple(pieces)


def plan_partitions(surveys: Sequence[ShardSurvey], max_rows: int) -> tuple[list[Partition], bool]:
    """Partitions in shard order with global row offsets, up to ``max_rows`` rows (the last one
    cut short); whether the row cap cut the dataset (reported as GEN002, like one pass)."""
    out: list[Partition] = []
    offset = 0
    for survey in surveys:
        if survey.error:
            continue
        for piece in survey.pieces:
            if offset >= max_rows:
                return out, True
            rows = min(piece.rows, max_rows - offset)
            out.append(
                Partition(
                    index=len(out),
                    uri=survey.uri,
                    name=survey.name,
                    kind=survey.kind,
                    start=piece.start,
                    stop=piece.stop,
                    row_offset=offset,
                    rows=rows,
                    size=survey.size,
                )
            )
            offset += piece.rows
    return out, offset > max_rows


# ---------------------------------------------------------------------------------------------
# Reading: the field plan once, then one partition at a time
# ---------------------------------------------------------------------------------------------


def _context(options: DatasetOptions, limits: Limits) -> ScanContext:
    return ScanContext(limits=limits, dataset=options, sections=(options,))


def detect_plan(
    uri: str, name: str, kind: ArtifactKind, options: DatasetOptions, limits: Limits
) -> ReadPlan:
    """Detect the fields on the first shard exactly as the single-machine reader does (it reads
    the first record; the plan is fixed before any record is yielded)."""
    with open_input(uri) as stream:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        artifact = Artifact(path=name, kind=kind, size=size, stream=stream)
        reader = _reader(artifact, options, limits)
        records = reader.records()
        try:
            next(records, None)
        finally:
            records.close()
        return ReadPlan(
            plan=reader.plan,
            columns=reader.columns,
            notes=tuple(reader.notes),
            format_name=reader.format_name,
        )


def _reader(artifact: Artifact, options: DatasetOptions, limits: Limits) -> Any:
    ctx = _context(options, limits)
    if artifact.kind is ArtifactKind.DATASET_PARQUET:
        return ParquetReader(artifact, ctx)
    return JsonlReader(artifact, ctx)


class _Range:
    """Read-only view of ``stream`` from ``start`` for ``length`` bytes (a JSONL piece)."""

    def __init__(self, stream: BinaryIO, start: int, length: int) -> None:
        self._stream = stream
        self._left = length
        stream.seek(start)

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(want)
        self._left -= len(data)
        return data


class PartitionReader:
    """Reads one partition: ``records()`` yields rows with global indices; ``issues`` (global
    rows) is complete once they were consumed. ``records()`` raises ``ArtifactError`` when the
    shard itself breaks and ``LimitExceeded`` for a row-group bomb."""

    def __init__(
        self, part: Partition, read_plan: ReadPlan, options: DatasetOptions, limits: Limits
    ) -> None:
        self.part = part
        self.read_plan = read_plan
        self.options = options
        self.limits = limits
        self.issues = ReadIssues()

    def records(self) -> Iterator[Record]:
        part = self.part
        with open_input(part.uri) as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(0)
            if part.size >= 0 and size != part.size:
                raise ArtifactError(
                    f"shard changed during the run: {part.size} bytes when surveyed, {size} now"
                )
            if part.kind is ArtifactKind.DATASET_JSONL:
                # A later piece is read from the line end before it: its line 0 is then that
                # empty line (skipped), so the reader's BOM handling of line 0 applies to the
                # file's first line only, as in one pass.
                back = 1 if part.start > 0 else 0
                view = _Range(stream, part.start - back, part.stop - part.start + back)
                artifact = Artifact(
                    path=part.name, kind=part.kind, size=size, stream=cast(BinaryIO, view)
                )
                reader = self._reader(artifact)
                yield from _jsonl_records(reader, part.row_offset - back, part.rows + back)
                shift_issues(reader.issues, part.row_offset - back)
            else:
                artifact = Artifact(path=part.name, kind=part.kind, size=size, stream=stream)
                yield from _parquet_records(self._reader(artifact), part)

    def _reader(self, artifact: Artifact) -> Any:
        reader = _reader(artifact, self.options, self.limits)
        reader.plan = self.read_plan.plan
        reader.columns = self.read_plan.columns
        reader.issues = self.issues
        return reader


def _jsonl_records(reader: JsonlReader, offset: int, lines: int) -> Iterator[Record]:
    """Rows of a JSONL piece (its first ``lines`` lines): the reader's own line parser and
    record builder, line numbers of the piece shifted to global rows."""
    for line_no, row in reader._rows():
        if line_no >= lines:
            break
        record = reader.make_record(line_no, row)
        if record is not None:
            yield replace(record, index=record.index + offset)


def _parquet_records(reader: ParquetReader, part: Partition) -> Iterator[Record]:
    """Rows of a range of row groups, through the reader's bomb check and batch conversion."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scanners.dataset.readers import _CappedFile

    art = reader.artifact
    art.stream.seek(0)
    source = _CappedFile(art.stream, art.size, reader.block_cap())
    try:
        pf = pq.ParquetFile(source)
        schema = pf.schema_arrow
        cols = reader.read_columns(schema)
        reader._check_row_groups(pf.metadata, cols)
        index = part.row_offset
        if not cols:
            for i in range(part.rows):
                yield Record(index=index + i, text="")
            return
        groups = list(range(part.start, part.stop))
        end = part.row_offset + part.rows
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=cols, row_groups=groups):
            if index + batch.num_rows > end:
                batch = batch.slice(0, end - index)
            yield from reader._batch_records(batch, index)
            index += batch.num_rows
            if index >= end:
                break
    except LimitExceeded:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArtifactError(f"Parquet data unreadable: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Reader issues: shift and merge (partition order)
# ---------------------------------------------------------------------------------------------


def shift_issues(issues: ReadIssues, offset: int) -> None:
    """Make a piece's line-relative issue rows global."""
    for f in fields(ReadIssues):
        value = getattr(issues, f.name)
        if isinstance(value, RowIssue):
            value.rows = [r + offset for r in value.rows]


def merge_issues(a: ReadIssues, b: ReadIssues) -> ReadIssues:
    """``a`` then ``b`` (``a`` holds earlier rows): exact counts, the first rows, first reason."""
    out = ReadIssues()
    for f in fields(ReadIssues):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, RowIssue):
            setattr(
                out,
                f.name,
                RowIssue(
                    count=x.count + y.count,
                    rows=(x.rows + y.rows)[:FIRST_ROWS_SHOWN],
                    reason=x.reason or y.reason,
                ),
            )
        elif isinstance(x, int):
            setattr(out, f.name, x + y)
        else:
            setattr(out, f.name, x or y)
    return out


@dataclass(slots=True)
class IssueCarrier:
    """What ``reader_findings`` reads from a reader, rebuilt from merged partition issues."""

    plan: FieldPlan
    columns: tuple[str, ...]
    notes: list[str]
    format_name: str
    issues: ReadIssues = field(default_factory=ReadIssues)


def carrier(read_plan: ReadPlan, issues: ReadIssues) -> IssueCarrier:
    """A reader stand-in for ``reader_findings`` over the whole dataset."""
    return IssueCarrier(
        plan=read_plan.plan,
        columns=read_plan.columns,
        notes=list(read_plan.notes),
        format_name=read_plan.format_name,
        issues=issues,
    )
