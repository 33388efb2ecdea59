"""``supplychain data --engine ray`` on a local 2-worker Ray cluster: same findings as one pass.

The cluster is started once per session by the fixture below (no dashboard, temp dir under the
test's temp dir). Each dataset is made in the test (``corpus.py``), written as shards, and also
as one file for the single-machine run; findings are compared as sets of (rule, severity, rows,
group, evidence, message) with the dataset's path taken out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from supplychain import service
from supplychain.core.model import Report, Severity, Status
from supplychain.policy import Policy
from tests.distributed import corpus

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]

Key = tuple[str, str, tuple[int, ...], str, str, str]


@pytest.fixture(scope="module")
def data_rows() -> list[dict[str, str]]:
    return corpus.rows(3000)


def _keys(report: Report) -> set[Key]:
    out: set[Key] = set()
    for f in report.findings:
        path = f.location.path

        def strip(text: str | None, path: str = path) -> str:
            return (text or "").replace(path, "<D>")

        out.add(
            (
                f.rule,
                f.severity.value,
                tuple(f.location.rows),
                strip(f.group),
                strip(f.evidence),
                strip(f.message),
            )
        )
    return out


def _local(path: Path) -> Report:
    policy = Policy()
    return service.run([path], service.data_settings(policy), policy)


def _ray(paths: list[Path], **kw: Any) -> Report:
    from supplychain.distributed.ray_engine import run_dataset_on_ray

    policy = Policy()
    settings = service.data_settings(policy)
    got = run_dataset_on_ray([str(p) for p in paths], settings, **kw)
    statuses = [r.status for r in got.results]
    assert Status.FAILED not in statuses and Status.SCANNED in statuses, got.results
    return Report(
        tool_version="t",
        target=(),
        started_at="",
        seconds=0.0,
        findings=got.findings,
        files=got.files,
        results=got.results,
        facts=got.facts,
    )


ENGINE_FACTS = {"dataset.row_offset", "dataset.partitions", "dataset.duplicate_candidates"}


def _facts(report: Report) -> set[tuple[str, object]]:
    """The dataset facts of one pass (fields used, rows, labels...), engine-only ones left out."""
    return {
        (f.key, f.value)
        for f in report.facts
        if f.key.startswith("dataset.") and f.key not in ENGINE_FACTS
    }


def _rules(keys: set[Key]) -> set[str]:
    return {k[0] for k in keys}


def _assert_planted(keys: set[Key], *, jsonl: bool) -> None:
    rules = _rules(keys)
    wanted = {"DAT011", "DAT012", "DAT018", "DAT015"} | ({"DAT001"} if jsonl else set())
    assert wanted <= rules, sorted(rules)
    assert any(r.startswith("SEC") for r in rules), sorted(rules)
    assert any(k[0] == "DAT011" and {100, 1100, 2100} <= set(k[2]) for k in keys), [
        k for k in keys if k[0] == "DAT011"
    ]


def test_jsonl_shards_match_one_pass(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_jsonl_shards(data_rows, tmp_path / "shards")
    whole = corpus.concat_jsonl(shards, tmp_path / "whole.jsonl")
    one, many = _local(whole), _ray([shards], partition_bytes=20_000)
    local, distributed = _keys(one), _keys(many)
    assert distributed == local
    assert _facts(many) == _facts(one) and ("dataset.rows", 2998) in _facts(one)
    _assert_planted(local, jsonl=True)
    bad = [k for k in local if k[0] == "DAT001"]
    assert bad and bad[0][2] == (1020,)  # line 20 of shard 2 = global row 1020


def test_parquet_shards_match_one_pass(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_parquet_shards(data_rows, tmp_path / "shards", row_group=200)
    whole = corpus.concat_parquet(shards, tmp_path / "whole.parquet")
    one = _local(whole)
    # 300-row partitions over 200-row groups: pieces of 2 groups that do not line up with shards
    many = _ray([shards], partition_rows=300)
    local, distributed = _keys(one), _keys(many)
    assert distributed == local
    assert _facts(many) == _facts(one) and ("dataset.rows", 3000) in _facts(one)
    _assert_planted(local, jsonl=False)


def test_partitioning_does_not_change_findings(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_jsonl_shards(data_rows, tmp_path / "shards")
    coarse = _keys(_ray([shards]))
    fine = _keys(_ray([shards], partition_bytes=4_000))
    assert coarse == fine


def test_report_names_shards_offsets_and_digests(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_jsonl_shards(data_rows, tmp_path / "shards")
    report = _ray([shards], partition_bytes=20_000)
    import hashlib

    digests = {f.path: f.sha256 for f in report.files}
    assert digests == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shards.glob("*.jsonl")
    }
    offsets = {f.location.path: f.value for f in report.facts if f.key == "dataset.row_offset"}
    assert offsets == {"part-00000.jsonl": 0, "part-00001.jsonl": 1000, "part-00002.jsonl": 2000}
    (parts,) = [f.value for f in report.facts if f.key == "dataset.partitions"]
    assert isinstance(parts, int) and parts >= 9  # pieces inside shards, not one per shard
    (cand,) = [f.value for f in report.facts if f.key == "dataset.duplicate_candidates"]
    # the planted copies at least (this corpus's small vocabulary puts most rows in some bucket)
    assert isinstance(cand, int) and 4 <= cand <= 3000


def test_unsupported_and_broken_shards_fail_closed(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_parquet_shards(data_rows[:600], tmp_path / "shards", shards=2)
    (shards / "part-00002.parquet").write_bytes(b"PAR1" + b"\x00" * 64)  # no footer
    (shards / "notes.json").write_text("a,b\n1,2\n")  # a CSV under a shard suffix
    report = _ray([shards])
    bad = {(f.rule, f.location.path) for f in report.findings if f.rule.startswith("GEN")}
    assert ("GEN001", "part-00002.parquet") in bad
    assert ("GEN001", "notes.json") in bad
    assert all(f.severity >= Severity.HIGH for f in report.findings if f.rule == "GEN001")


def test_row_cap_is_reported(cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]) -> None:
    from supplychain.core.limits import Limits
    from supplychain.distributed.ray_engine import run_dataset_on_ray

    shards = corpus.write_parquet_shards(data_rows[:900], tmp_path / "shards", row_group=100)
    policy = Policy(limits=Limits(max_dataset_rows=250))
    settings = service.data_settings(policy)
    got = run_dataset_on_ray([str(shards)], settings, partition_rows=100)
    cap = [f for f in got.findings if f.rule == "GEN002"]
    assert len(cap) == 1 and "250" in cap[0].evidence
    rows = {r for f in got.findings for r in f.location.rows}
    assert rows and max(rows) < 250


def test_cli_connects_to_a_running_cluster(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_jsonl_shards(data_rows, tmp_path / "shards")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "supplychain",
            "data",
            str(shards),
            "--engine",
            "ray",
            "--engine-address",
            cluster,
            "--format",
            "json",
            "--output",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # planted poison fails the gate
    doc = json.loads(out.read_text())
    rules = {f["rule"] for f in doc["findings"]}
    assert {"DAT011", "DAT018"} <= rules
    assert doc["command"] == "data"
    import jsonschema

    schema = json.loads((ROOT / "supplychain" / "data" / "report.schema.json").read_text())
    jsonschema.validate(doc, schema)  # the same report model as a local run


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supplychain", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": "", **(env or {})},
    )


def test_unreachable_cluster_is_exit_2_quickly(cluster: str, tmp_path: Path) -> None:
    shard = tmp_path / "d.jsonl"
    shard.write_text('{"text": "hello there, this is a row"}\n')
    proc = _cli("data", str(shard), "--engine", "ray", "--engine-address", "127.0.0.1:1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_local_cluster_is_started_for_the_run_and_cleaned_up(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    shards = corpus.write_jsonl_shards(data_rows[:600], tmp_path / "shards")
    import shutil
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # Ray's socket paths need a short one
    out = tmp_path / "r.json"
    proc = _cli(
        "data",
        str(shards),
        "--engine",
        "ray",
        "--workers",
        "1",
        "--format",
        "json",
        "-o",
        str(out),
        "-q",
        env={"TMPDIR": str(temp)},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # DAT001 (the broken line) is HIGH
    doc = json.loads(out.read_text())
    assert "DAT001" in {f["rule"] for f in doc["findings"]}
    try:
        assert not [p for p in temp.iterdir() if p.name.startswith("scray-")]
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_uri_paths_read_through_pyarrow_filesystems(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    """``file://`` goes through the same ``pyarrow.fs`` code as ``s3://``/``gs://`` (listing a
    prefix, opening objects by URI), without a network."""
    shards = corpus.write_parquet_shards(data_rows, tmp_path / "shards", row_group=500)
    (shards / "README.md").write_text("not a shard\n")
    by_path = _ray([shards], partition_rows=500)
    got = _ray_uri(f"file://{shards}")
    assert _keys(got) == _keys(by_path) and _rules(_keys(got)) >= {"DAT011", "DAT018"}
    assert sorted(f.path for f in got.files) == [
        f"file://{shards}/part-0000{i}.parquet" for i in range(3)
    ]
    skipped = [r for r in got.results if r.status is Status.SKIPPED]
    assert [r.path for r in skipped] == [f"file://{shards}/README.md"]


def _ray_uri(uri: str) -> Report:
    from supplychain.distributed.ray_engine import run_dataset_on_ray

    policy = Policy()
    got = run_dataset_on_ray([uri], service.data_settings(policy), partition_rows=500)
    return Report(
        tool_version="t",
        target=(),
        started_at="",
        seconds=0.0,
        findings=got.findings,
        files=got.files,
        results=got.results,
        facts=got.facts,
    )


def test_a_clean_dataset_passes_and_counts_every_shard_as_analysed(
    cluster: str, tmp_path: Path, data_rows: list[dict[str, str]]
) -> None:
    """The gate's "nothing was analysed" rule counts files with a scanned outcome: each shard
    gets the dataset run's outcome, so a clean corpus passes (exit 0) instead of exit 2."""
    from supplychain.cli import ExitCode, exit_code
    from supplychain.policy import analysed_files

    clean = [r for r in data_rows if r["text"] != corpus.INJECTION and "\u200b" not in r["text"]]
    shards = corpus.write_parquet_shards(clean[:900], tmp_path / "shards")
    policy = Policy()
    settings = service.data_settings(
        policy, checks=frozenset({"hidden-unicode", "prompt-injection"})
    )
    report = service.run_data_distributed([shards], settings, policy, workers=2)
    assert [f.rule for f in report.findings] == []
    assert analysed_files(report) == 3
    assert exit_code(report) is ExitCode.CLEAN
