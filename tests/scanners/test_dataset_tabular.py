"""TabularOutlierCheck: LOF outliers over the numeric columns of tables (DAT023/DAT024),
and the readers' numeric columns (``Record.values``)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scanners.base import Artifact, ScanContext
from scanners.dataset.common import DatasetInfo, DatasetOptions, Record, run_check
from scanners.dataset.readers import cell_float, numeric_columns, open_reader
from scanners.dataset.runner import DatasetScanner
from scanners.dataset.tabular import DAT023, DAT024, TabularOutlierCheck, lof_scores
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity
from supplychain.engine import ScanOptions, scan_paths

INFO = DatasetInfo("t.csv", (), None, None, None, 0)
COLUMNS = ("f0", "f1", "f2", "f3")


def correlated(n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of 4 strongly correlated Gaussian features (one latent factor + noise)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1)) + 0.3 * rng.normal(size=(n, len(COLUMNS)))


def check_rows(x: np.ndarray, info: DatasetInfo = INFO, **kw: int) -> list[Finding]:
    records = [
        Record(index=i, text="", values=tuple(float(v) for v in row)) for i, row in enumerate(x)
    ]
    return run_check(TabularOutlierCheck(**kw), records, info)


def row_findings(findings: list[Finding], min_sev: Severity = Severity.INFO) -> dict[int, Finding]:
    return {
        f.location.rows[0]: f for f in findings if f.rule == DAT023.id and f.severity >= min_sev
    }


def write_csv(path: Path, x: np.ndarray, label: list[str] | None = None) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS, *(["label"] if label else [])])
        for i, row in enumerate(x):
            w.writerow([repr(float(v)) for v in row] + ([label[i]] if label else []))
    return path


def write_parquet(path: Path, x: np.ndarray) -> Path:
    table = pa.table({c: x[:, j] for j, c in enumerate(COLUMNS)} | {"id": range(len(x))})
    pq.write_table(table, path)
    return path


def scan(path: Path) -> list[Finding]:
    options = ScanOptions(
        scanners=(DatasetScanner,),
        limits=Limits(),
        dataset=DatasetOptions(checks=frozenset({"tabular-outliers"})),
        command="data",
    )
    return list(scan_paths([path], options).findings)


def planted(seed: int) -> tuple[np.ndarray, list[int]]:
    """500 clean rows and 5 rows whose f2 is 50x its standard deviation out of range."""
    x = correlated(500, seed)
    bad = sorted(int(i) for i in np.random.default_rng(seed + 7).choice(500, 5, replace=False))
    for k, i in enumerate(bad):
        x[i, 2] = (1 if k % 2 else -1) * 50 * float(x[:, 2].std())
    return x, bad


def test_lof_scores_match_scikit_learn():
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    x, _bad = planted(9)
    lof = LocalOutlierFactor(n_neighbors=20).fit(x)
    dist, ind = NearestNeighbors(n_neighbors=20).fit(x).kneighbors()
    np.testing.assert_allclose(lof_scores(dist, ind), -lof.negative_outlier_factor_, rtol=1e-9)


# --- the check on its own ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_clean_correlated_gaussian_table_is_quiet(seed):
    findings = check_rows(correlated(500, seed))
    assert all(f.severity <= Severity.LOW for f in findings)
    assert len(row_findings(findings, Severity.LOW)) <= 3


@pytest.mark.parametrize("seed", range(4))
def test_out_of_range_rows_are_found_at_low_with_their_indices(seed):
    x, bad = planted(seed)
    findings = check_rows(x)
    low = row_findings(findings, Severity.LOW)
    assert set(bad) <= set(low)
    assert len(set(low) - set(bad)) <= 3
    assert max(f.severity for f in findings) == Severity.LOW
    # the evidence names the column that moved, with its value and the column's median
    ev = low[bad[0]].evidence
    assert ev.startswith("numeric[2]=") and "(median " in ev
    summary = [f for f in findings if f.rule == DAT024.id]
    assert len(summary) == 1 and summary[0].severity == Severity.INFO
    assert set(bad) <= set(summary[0].location.rows)


def test_contextual_outliers_that_break_a_correlation_are_found():
    # f1 follows f0 closely in every row; in these rows it has the opposite sign. Each value is
    # within the column's range: no per-column range check sees them.
    x = correlated(500, 3)
    bad = [int(i) for i in np.flatnonzero(np.abs(x[:, 0]) > 1.4)[:5]]
    for i in bad:
        x[i, 1] = -x[i, 0]
        x[i, 2] = x[i, 3] = x[i, 0]
    assert np.all(np.abs(x[bad, 1]) <= np.abs(x[:, 1]).max())
    flagged = row_findings(check_rows(x))
    assert set(bad) <= set(flagged)
    assert all(flagged[i].evidence.startswith("numeric[1]=") for i in bad)
    assert all("nearest rows ~" in flagged[i].evidence for i in bad)


def test_rows_are_capped_and_the_rest_summarised():
    x = correlated(2000, 1)
    x[:80, 3] = np.linspace(1e6, 2e6, 80)  # 80 far rows, spread out so they are not a cluster
    findings = check_rows(x)
    rows = [f for f in findings if f.rule == DAT023.id]
    assert len(rows) == 50
    summary = next(f for f in findings if f.rule == DAT024.id)
    assert set(range(80)) <= set(summary.location.rows)


def test_a_long_tail_is_info_not_low():
    # Heavy-tailed data (log-normal amounts): many rows reach a high LOF; none is "planted".
    rng = np.random.default_rng(5)
    x = np.exp(2.5 * rng.normal(size=(400, 3)))
    findings = check_rows(x)
    assert findings, "a long tail is still summarised"
    assert all(f.severity == Severity.INFO for f in findings)
    assert "long tail" in next(f for f in findings if f.rule == DAT024.id).message


def test_text_files_metadata_outliers_are_info_only():
    x, bad = planted(0)
    info = DatasetInfo("t.jsonl", (), "text", None, None, 0)
    flagged = row_findings(check_rows(x, info))
    assert set(bad) <= set(flagged)
    assert all(f.severity == Severity.INFO for f in flagged.values())


def test_discrete_columns_with_duplicates_do_not_flood():
    # Pixel-like integer levels, mostly 0, with many exact duplicate rows (digits.csv-like):
    # duplicates give LOF zero k-distances and a rare "1" is not an outlier.
    rng = np.random.default_rng(2)
    x = np.where(rng.random((800, 16)) < 0.9, 0, rng.integers(1, 17, size=(800, 16)))
    x[:200] = 0
    x = x.astype(float)
    assert not row_findings(check_rows(x), Severity.LOW)
    x[300, 5] = 800.0  # a pixel level 50x the column's maximum
    assert 300 in row_findings(check_rows(x), Severity.LOW)


def test_reservoir_is_bounded_deterministic_and_covers_the_stream():
    x = correlated(3000, 4)
    x[2900, 0] = 1e4
    a = check_rows(x, capacity=500)
    b = check_rows(x, capacity=500)
    assert [f.message for f in a] == [f.message for f in b]
    check = TabularOutlierCheck(capacity=500)
    state = check.init(None)
    for i, row in enumerate(x):
        state.add(Record(index=i, text="", values=tuple(row)))
    kept = np.array([r for r, _v in state._sample.items()])
    assert len(kept) == 500
    assert kept[-1] > 2500  # late rows replace early ones
    assert len(set(kept.tolist())) == 500
    summary = next(f for f in a if f.rule == DAT024.id)
    assert "a sample of 500 of 3000 rows" in summary.message


@pytest.mark.parametrize("n", [0, 1, 10, 49])
def test_tiny_inputs_report_nothing(n):
    x = correlated(max(n, 1), 0)[:n]
    if n:
        x[0, 0] = 1e9
    assert check_rows(x) == []


def test_one_numeric_column_and_constant_columns_report_nothing():
    rng = np.random.default_rng(0)
    col = rng.normal(size=(300, 1))
    col[0] = 1e9
    assert check_rows(col) == []
    both = np.hstack([col, np.full((300, 1), 7.0)])  # the second column never varies
    assert check_rows(both) == []


def test_nan_and_inf_cells_do_not_crash_and_are_imputed():
    x, bad = planted(1)
    x[10, 0] = math.nan
    x[11, 1] = math.inf
    x[12, :] = math.nan
    x[13, 3] = -math.inf
    x[14, 2] = 1e308  # squares overflow without clipping
    findings = check_rows(x)
    flagged = row_findings(findings, Severity.LOW)
    assert set(bad) | {14} <= set(flagged)
    assert not {10, 11, 12, 13} & set(flagged)
    all_nan = np.full((100, 3), math.nan)
    assert check_rows(all_nan) == []


def test_rows_without_values_or_with_another_width_are_ignored():
    x, bad = planted(2)
    records = []
    for i, row in enumerate(x):
        records.append(Record(index=i, text="", values=tuple(row)))
        records.append(Record(index=10_000 + i, text="comment line"))
    records.append(Record(index=99_999, text="", values=(1.0, 2.0)))
    rows = set(row_findings(run_check(TabularOutlierCheck(), records, INFO), Severity.LOW))
    assert set(bad) <= rows and 99_999 not in rows


# --- readers: Record.values ---------------------------------------------------------------------


def read(data: bytes, name: str, kind: ArtifactKind) -> tuple[list[Record], object]:
    art = Artifact(path=name, kind=kind, size=len(data), stream=io.BytesIO(data))
    reader = open_reader(art, ScanContext(limits=Limits(), dataset=DatasetOptions()))
    return list(reader.records()), reader


def test_csv_values_skip_label_id_and_text_and_keep_column_order():
    data = (
        "id,f0,name,f1,label,f2\n"
        + "".join(f"{i},{i * 0.5},item {i},{-i},{i % 2},{i}e2\n" for i in range(70))
        + "70,oops,item 70,1,0,\n"
    ).encode()
    recs, reader = read(data, "t.csv", ArtifactKind.DATASET_CSV)
    assert reader.plan.numeric == ("f0", "f1", "f2")  # type: ignore[attr-defined]
    assert recs[3].values == (1.5, -3.0, 300.0)
    assert recs[70].values[1] == 1.0
    assert math.isnan(recs[70].values[0]) and math.isnan(recs[70].values[2])


def test_text_csv_with_one_numeric_column_builds_no_values():
    rows = "".join(f'"A sentence about item {i}, quite long.",{i}\n' for i in range(70))
    recs, reader = read(("text,score\n" + rows).encode(), "t.csv", ArtifactKind.DATASET_CSV)
    assert reader.plan.numeric == ()  # type: ignore[attr-defined]
    assert all(r.values == () for r in recs)


def test_mostly_text_column_is_not_numeric():
    samples = [{"a": str(i), "b": str(i) if i % 10 else "n/a", "c": float(i)} for i in range(60)]
    assert numeric_columns(["a", "b", "c"], samples) == ("a", "c")


def test_numeric_columns_are_capped():
    samples = [{f"c{j}": j * i for j in range(400)} for i in range(3)]
    cols = numeric_columns([f"c{j}" for j in range(400)], samples)
    assert len(cols) == 256 and cols[0] == "c0" and cols[-1] == "c255"


@pytest.mark.parametrize(
    ("cell", "want"),
    [
        (1, 1.0),
        (2.5, 2.5),
        (" 3e2 ", 300.0),
        ("0x10", 16.0),
        (True, math.nan),
        (None, math.nan),
        ("abc", math.nan),
        ([1, 2], math.nan),
        (10**400, math.inf),
        ("1e999", math.inf),
    ],
)
def test_cell_float(cell, want):
    got = cell_float(cell)
    assert (math.isnan(got) and math.isnan(want)) or got == want


def test_parquet_and_jsonl_values():
    x = correlated(80, 0)
    table = pa.table(
        {
            "text": [f"a sentence number {i} about things" for i in range(80)],
            "f0": x[:, 0],
            "f1": pa.array(range(80), pa.int32()),
            "flag": [i % 2 == 0 for i in range(80)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    recs, reader = read(buf.getvalue(), "t.parquet", ArtifactKind.DATASET_PARQUET)
    assert reader.plan.numeric == ("f0", "f1")  # type: ignore[attr-defined]
    assert recs[5].values == (float(x[5, 0]), 5.0)
    lines = "".join(json.dumps({"a": i, "b": str(i * 2), "c": "x"}) + "\n" for i in range(70))
    recs, reader = read(lines.encode(), "t.jsonl", ArtifactKind.DATASET_JSONL)
    assert reader.plan.numeric == ("a", "b")  # type: ignore[attr-defined]
    assert recs[69].values == (69.0, 138.0)


# --- through the engine ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_clean_files_are_quiet_and_planted_rows_found(tmp_path, fmt):
    write = write_csv if fmt == "csv" else write_parquet
    clean = scan(write(tmp_path / f"clean.{fmt}", correlated(500, 11)))
    assert all(f.severity <= Severity.LOW for f in clean)
    assert len(row_findings(clean, Severity.LOW)) <= 3
    x, bad = planted(11)
    found = scan(write(tmp_path / f"poisoned.{fmt}", x))
    assert set(bad) <= set(row_findings(found, Severity.LOW))
    report = scan_paths(
        [tmp_path / f"poisoned.{fmt}"], ScanOptions(scanners=(DatasetScanner,), command="data")
    )
    described = {f.key: f.value for f in report.facts}
    assert described["dataset.numeric_fields"] == ("f0", "f1", "f2", "f3")
    assert described["dataset.numeric_fields.count"] == 4


def test_iris_like_csv_stays_quiet(tmp_path):
    # Three species with different measurement centres: clusters, not outliers.
    rng = np.random.default_rng(8)
    centres = [(5.0, 3.4, 1.5, 0.2), (5.9, 2.8, 4.3, 1.3), (6.6, 3.0, 5.6, 2.0)]
    spread = (0.35, 0.35, 0.3, 0.15)
    rows, species = [], []
    for k, c in enumerate(centres):
        rows.append(np.round(rng.normal(c, spread, size=(50, 4)), 1))
        species += [("setosa", "versicolor", "virginica")[k]] * 50
    path = write_csv(tmp_path / "iris.csv", np.vstack(rows), species)
    findings = scan(path)
    assert all(f.severity <= Severity.LOW for f in findings)
    assert len(row_findings(findings, Severity.LOW)) <= 2


def test_tiny_and_one_column_files_through_the_engine(tmp_path):
    (tmp_path / "empty.csv").write_text("a,b\n")
    (tmp_path / "one.csv").write_text("a,b\n1,2\n")
    (tmp_path / "ten.csv").write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(10)))
    (tmp_path / "col.csv").write_text("a\n" + "".join(f"{i}\n" for i in range(200)) + "1e9\n")
    findings = scan(tmp_path)
    assert not [f for f in findings if f.rule in (DAT023.id, DAT024.id)]
    assert not [f for f in findings if f.rule.startswith("GEN")]


def test_nan_and_inf_cells_through_the_engine(tmp_path):
    x, bad = planted(3)
    path = write_csv(tmp_path / "t.csv", x)
    text = path.read_text().splitlines()
    text[20] = "nan,inf,-inf,"
    text[21] = "1e999,NaN,x,"
    path.write_text("\n".join(text) + "\n")
    findings = scan(path)
    assert not [f for f in findings if f.rule.startswith("GEN")]
    assert set(bad) <= set(row_findings(findings, Severity.LOW))
