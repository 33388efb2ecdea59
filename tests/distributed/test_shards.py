"""The engine-neutral parts of distributed runs (no Ray needed; in the default suite): cutting
shards, global row offsets, issue merging, and the missing-extra error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanners.dataset.readers import FIRST_ROWS_SHOWN, ReadIssues, RowIssue, bounded_lines
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind
from supplychain.distributed.shards import (
    Piece,
    ShardSurvey,
    dataset_label,
    merge_issues,
    plan_partitions,
    survey_shard,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("tail", [b"\n", b"", b"\n\n"])
@pytest.mark.parametrize("piece_bytes", [1, 7, 64, 1 << 20])
def test_jsonl_pieces_count_lines_as_the_reader_numbers_them(
    tmp_path: Path, tail: bytes, piece_bytes: int
) -> None:
    lines = [json.dumps({"text": f"row {i} " + "x" * (i % 13)}).encode() for i in range(50)]
    lines[7] = b""  # blank lines are numbered too
    data = b"\n".join(lines) + tail
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    survey = survey_shard(str(path), "d.jsonl", Limits(), piece_bytes=piece_bytes)
    assert survey.kind is ArtifactKind.DATASET_JSONL and not survey.error
    numbered = [n for n, _ in bounded_lines(io.BytesIO(data), 1 << 20)]
    assert survey.rows == len(numbered)
    # pieces tile the file, cut right after a newline, and each one's lines add up
    assert survey.pieces[0].start == 0 and survey.pieces[-1].stop == len(data)
    for a, b in zip(survey.pieces, survey.pieces[1:], strict=False):
        assert a.stop == b.start and data[a.stop - 1 : a.stop] == b"\n"
    for p in survey.pieces:
        chunk = data[p.start : p.stop]
        assert p.rows == len(list(bounded_lines(io.BytesIO(chunk), 1 << 20)))
    if piece_bytes <= 64:
        assert len(survey.pieces) > 10


def test_parquet_pieces_group_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(1000)]}), path, row_group_size=150)
    survey = survey_shard(str(path), "d.parquet", Limits(), piece_rows=300)
    assert survey.kind is ArtifactKind.DATASET_PARQUET
    assert [(p.start, p.stop, p.rows) for p in survey.pieces] == [
        (0, 2, 300),
        (2, 4, 300),
        (4, 6, 300),
        (6, 7, 100),
    ]


def test_broken_and_foreign_shards_are_reported_not_read(tmp_path: Path) -> None:
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 40)
    got = survey_shard(str(bad), "b.parquet", Limits())
    assert got.error and not got.limit and got.pieces == ()
    foreign = tmp_path / "c.jsonl"
    foreign.write_bytes(b"\x80\x04K\x01.")  # a pickle under a shard's name
    got = survey_shard(str(foreign), "c.jsonl", Limits())
    assert "not a Parquet or JSONL shard" in got.error and got.kind is ArtifactKind.PICKLE
    big = survey_shard(str(foreign), "c.jsonl", Limits(max_read_bytes=4))
    assert big.limit and "max_read_bytes" in big.error


def _survey(name: str, rows: list[int], error: str = "") -> ShardSurvey:
    return ShardSurvey(
        uri=name,
        name=name,
        kind=ArtifactKind.DATASET_JSONL,
        size=0,
        sha256="",
        pieces=tuple(Piece(i, i + 1, n) for i, n in enumerate(rows)),
        error=error,
    )


def test_offsets_follow_shard_order_and_skip_broken_shards() -> None:
    surveys = [_survey("a", [10, 5]), _survey("bad", [], "broken"), _survey("c", [7])]
    parts, capped = plan_partitions(surveys, max_rows=1000)
    assert not capped
    assert [(p.name, p.row_offset, p.rows) for p in parts] == [
        ("a", 0, 10),
        ("a", 10, 5),
        ("c", 15, 7),
    ]
    assert [p.index for p in parts] == [0, 1, 2]


def test_row_cap_cuts_the_last_partition() -> None:
    parts, capped = plan_partitions([_survey("a", [10, 10, 10])], max_rows=15)
    assert capped
    assert [(p.row_offset, p.rows) for p in parts] == [(0, 10), (10, 5)]
    parts, capped = plan_partitions([_survey("a", [10, 10])], max_rows=20)
    assert not capped and len(parts) == 2


def test_issue_merge_keeps_counts_first_rows_and_first_reason() -> None:
    a, b = ReadIssues(), ReadIssues()
    for r in range(15):
        a.bad.add(r, "first reason" if r == 0 else "later")
    for r in range(100, 120):
        b.bad.add(r, "other")
    b.undecodable.add(105, "bad utf-8")
    a.invalid_sequences, b.invalid_sequences = 2, 3
    got = merge_issues(a, b)
    assert got.bad.count == 35
    assert got.bad.rows == [*range(15), *range(100, 100 + FIRST_ROWS_SHOWN - 15)]
    assert got.bad.reason == "first reason"
    assert got.undecodable == RowIssue(count=1, rows=[105], reason="bad utf-8")
    assert got.invalid_sequences == 5


def test_dataset_label() -> None:
    assert dataset_label(["data/train"]) == "data/train"
    assert dataset_label(["data/a.jsonl", "data/b.jsonl"]) == "data"
    assert dataset_label(["s3://bucket/x/a.parquet", "s3://bucket/x/b.parquet"]) == "s3://bucket/x"
    assert dataset_label(["a.jsonl", "b.jsonl"]) == "."


def test_missing_ray_extra_is_exit_2_naming_the_install(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hello there, general"}\n')
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from supplychain.cli import main\n"
        f"raise SystemExit(main(['data', {str(path)!r}, '--engine', 'ray']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'supplychain[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_directories_list_shards_in_order_and_report_the_rest(tmp_path: Path) -> None:
    from supplychain.distributed.shards import NOT_A_SHARD, expand_paths

    (tmp_path / "b").mkdir()
    for name in ("b/part-1.jsonl", "a.parquet", "b/part-0.jsonl", "notes.md"):
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "a.parquet")
    shards, skipped = expand_paths([str(tmp_path)])
    assert [name for _, name in shards] == ["a.parquet", "b/part-0.jsonl", "b/part-1.jsonl"]
    assert dict(skipped) == {
        "notes.md": NOT_A_SHARD,
        "link.jsonl": "symbolic link: not followed by --engine ray",
    }


def test_a_shard_that_changed_since_the_survey_is_not_read(tmp_path: Path) -> None:
    from scanners.dataset.common import DatasetOptions
    from supplychain.core.errors import ArtifactError
    from supplychain.distributed.shards import PartitionReader, detect_plan

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"row number {i} here"}) + "\n" for i in range(9)))
    survey = survey_shard(str(path), "d.jsonl", Limits())
    (part,), _ = plan_partitions([survey], 100)
    plan = detect_plan(str(path), "d.jsonl", survey.kind, DatasetOptions(), Limits())
    rows = list(PartitionReader(part, plan, DatasetOptions(), Limits()).records())
    assert [r.index for r in rows] == list(range(9))
    with path.open("a") as fh:
        fh.write(json.dumps({"text": "appended after the survey"}) + "\n")
    with pytest.raises(ArtifactError, match="changed during the run"):
        list(PartitionReader(part, plan, DatasetOptions(), Limits()).records())
