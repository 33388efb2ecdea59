"""The dataset 'sensitive' check: counts per field, sample rows, redacted values, severity."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from scanners.dataset.common import DatasetInfo, DatasetOptions, Record
from scanners.dataset.runner import DATASET_CHECKS, DatasetScanner
from scanners.dataset.sensitive import BULK_ROWS, SensitiveDataCheck
from supplychain.core.model import Finding, Report, Severity
from supplychain.engine import ScanOptions, scan_paths
from tests.test_secrets import github_token

CARD = "4539 1488 0343 6467"


def _run(path: Path) -> Report:
    options = ScanOptions(
        scanners=(DatasetScanner,),
        dataset=DatasetOptions(checks=frozenset({"sensitive"})),
        command="data",
    )
    return scan_paths([path], options)


def _write(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _by_rule(report: Report) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_registered_once() -> None:
    assert [c for c in DATASET_CHECKS if c is SensitiveDataCheck] == [SensitiveDataCheck]


def test_counts_per_field_sample_rows_redacted(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"text": f"reach me at user{i}@gmail.com", "label": "a"} for i in range(3)
    ]
    rows.append({"text": "nothing here", "label": "b"})
    rows.append({"text": f"card {CARD}", "label": "b", "source": "ann.lee@proton.me"})
    report = _run(_write(tmp_path / "d.jsonl", rows))
    found = _by_rule(report)
    emails = sorted(found["PII001"], key=lambda f: f.message)
    assert [f.message for f in emails] == [
        "1 row(s) (20.0%) with email in field 'source'",
        "3 row(s) (60.0%) with email in field 'text'",
    ]
    assert emails[1].location.rows == (0, 1, 2)
    assert "gmail" not in emails[1].evidence and "sha256:" in emails[1].evidence
    (card,) = found["PII003"]
    assert card.location.rows == (4,)
    assert card.severity is Severity.MEDIUM
    assert CARD.replace(" ", "") not in card.evidence


def test_severity_grows_with_volume(tmp_path: Path) -> None:
    few = [{"text": f"card {CARD}"}] * (BULK_ROWS - 1)
    many = [{"text": f"card {CARD}"}] * BULK_ROWS
    few_sev = _by_rule(_run(_write(tmp_path / "few.jsonl", few)))["PII003"][0].severity
    many_sev = _by_rule(_run(_write(tmp_path / "many.jsonl", many)))["PII003"][0].severity
    assert (few_sev, many_sev) == (Severity.MEDIUM, Severity.HIGH)
    emails = [{"text": f"mail x{i}@gmail.com"} for i in range(BULK_ROWS)]
    sev = _by_rule(_run(_write(tmp_path / "e.jsonl", emails)))["PII001"][0].severity
    assert sev is Severity.MEDIUM  # contact data never fails the default gate alone


def test_secret_in_a_row_is_high_at_any_volume(tmp_path: Path) -> None:
    token = github_token()
    rows = [{"text": f"my token is {token}"}, {"text": "fine"}]
    report = _run(_write(tmp_path / "s.jsonl", rows))
    (finding,) = _by_rule(report)["SEC001"]
    assert finding.severity is Severity.HIGH
    assert token not in finding.evidence and token[4:] not in finding.message


def test_clean_dataset_has_no_findings(tmp_path: Path) -> None:
    rows = [
        {"text": "The example address is someone@example.com"},
        {"text": "Use the test card 4111 1111 1111 1111 in staging"},
        {"text": "Call 415-555-0123 for the demo line"},
        {"text": "server at 192.168.0.10, docs at 192.0.2.1"},
        {"text": "build 2.14.1.3 released; order 4158675309 shipped"},
    ]
    report = _run(_write(tmp_path / "c.jsonl", rows))
    assert [f for f in report.findings if f.rule.startswith(("PII", "SEC"))] == []


def test_phone_fallback_reports_degraded_detection() -> None:
    check = SensitiveDataCheck(phone_backend="regex")
    state = check.observe(check.init(None), [Record(index=0, text="call (415) 867-5309")])
    info = DatasetInfo(
        path="d.jsonl", member=(), text_field="text", label_field=None, id_field=None, rows=1
    )
    rules = sorted(f.rule for f in check.finish(state, info))
    assert rules == ["PII002", "PII007"]


# --- every column, not only text/label/id/source (issue #18) ------------------------------

EMAIL = "ann.lee@proton.me"
PHONE = "+1 650 253 0000"


def _luhn_failing(i: int) -> int:
    """A 16-digit number whose Luhn check fails (an order id, not a card)."""
    from scanners.pii import luhn_ok

    n = 4_000_000_000_000_000 + 7_919 * i
    while luhn_ok(str(n)):
        n += 1
    return n


def _pii_rows(n: int = 4) -> list[dict[str, object]]:
    """A clean text column beside an e-mail column, a phone column, a card column and ids."""
    return [
        {
            "text": f"a perfectly ordinary review of product number {i}",
            "email": EMAIL if i % 2 == 0 else "",
            "contact_phone": PHONE if i == 1 else "",
            "card": CARD.replace(" ", "") if i == 2 else "",
            "order_id": _luhn_failing(i),
        }
        for i in range(n)
    ]


def _control_rows(n: int = 6) -> list[dict[str, object]]:
    """Ids, timestamps, versions and measurements that are no personal data."""
    return [
        {
            "text": f"release notes for build {i}: faster start-up, fewer crashes",
            "order_id": _luhn_failing(i),
            "created": 1_700_000_000 + 3_600 * i,
            "created_ms": 1_700_000_000_123 + i,
            "version": f"1.{i}.3",
            "score": 0.25 * i,
            "weight": 72.5 + i,
        }
        for i in range(n)
    ]


def _sensitive(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule.startswith(("PII", "SEC", "DAT009"))]


def _fields(report: Report) -> dict[str, tuple[int, ...]]:
    """``message -> sample rows`` of the sensitive findings (messages name kind and field)."""
    return {f.message: f.location.rows for f in _sensitive(report)}


def _csv(path: Path, rows: Sequence[Mapping[str, object]], sep: str = ",") -> Path:
    cols = list(rows[0])
    lines = [sep.join(cols)] + [sep.join(str(r[c]) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parquet(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(list(rows)), path)
    return path


def _arrow(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.Table.from_pylist(list(rows))
    with ipc.new_stream(str(path), table.schema) as writer:
        writer.write_table(table)
    return path


WRITERS = {
    "d.csv": _csv,
    "d.tsv": lambda p, r: _csv(p, r, "\t"),
    "d.jsonl": _write,
    "d.parquet": _parquet,
    "d.arrow": _arrow,
}
EXPECTED = {
    "2 row(s) (50.0%) with email in field 'email'": (0, 2),
    "1 row(s) (25.0%) with phone in field 'contact_phone'": (1,),
    "1 row(s) (25.0%) with card in field 'card'": (2,),
}


def test_pii_column_beside_clean_text_in_every_reader(tmp_path: Path) -> None:
    for name, writer in WRITERS.items():
        report = _run(writer(tmp_path / name, _pii_rows()))
        assert _fields(report) == EXPECTED, name
        for f in _sensitive(report):
            assert EMAIL not in f.evidence and "253 0000" not in f.evidence, name
            assert CARD.replace(" ", "") not in f.evidence + f.message, name


def test_clean_ids_timestamps_versions_are_not_reported(tmp_path: Path) -> None:
    for name, writer in WRITERS.items():
        report = _run(writer(tmp_path / name, _control_rows()))
        assert _sensitive(report) == [], name


def test_luhn_valid_number_in_numeric_column_is_a_card(tmp_path: Path) -> None:
    """Integers in numeric Parquet/JSONL columns are tested with their exact digits."""
    card = int(CARD.replace(" ", ""))
    rows = [
        dict(r, pan=card if i == 3 else _luhn_failing(i)) for i, r in enumerate(_control_rows())
    ]
    for name in ("d.jsonl", "d.parquet", "d.arrow", "d.csv"):
        report = _run(WRITERS[name](tmp_path / name, rows))
        assert _fields(report) == {"1 row(s) (16.7%) with card in field 'pan'": (3,)}, name


def test_inexact_float_digits_are_not_tested() -> None:
    """A 16-digit number stored as float64 lost its last digits: testing them is a coin toss."""
    from scanners.dataset.readers import extra_fields

    inexact = 9_876_543_210_987_654.0  # above 2**53: float64 keeps only every second integer
    assert inexact > 2**53
    row = {"a": inexact, "b": 4539148803436467.0, "c": 12.5, "d": True, "e": 123}
    assert extra_fields(row, ()) == (("b", "4539148803436467"),)


def test_nested_jsonl_field_is_flattened(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"text": "an ordinary sentence about the weather", "meta": {"lang": "en"}} for _ in range(3)
    ]
    rows[1] = {
        "text": "an ordinary sentence about the weather",
        "meta": {"author": {"contact": [{"email": EMAIL}]}, "lang": "en"},
    }
    report = _run(_write(tmp_path / "n.jsonl", rows))
    assert _fields(report) == {
        "1 row(s) (33.3%) with email in field 'meta.author.contact[].email'": (1,)
    }


def test_secret_in_a_non_text_column_is_high(tmp_path: Path) -> None:
    token = github_token()
    rows = [
        {"text": "a normal line of text here", "api_key": token if i == 1 else "none"}
        for i in range(3)
    ]
    for name in ("d.jsonl", "d.csv", "d.parquet"):
        report = _run(WRITERS[name](tmp_path / name, rows))
        (finding,) = _sensitive(report)
        assert finding.rule == "SEC001" and finding.severity is Severity.HIGH, name
        assert "'api_key'" in finding.message and finding.location.rows == (1,), name
        assert token not in finding.evidence and token[4:] not in finding.message, name


def test_tabular_file_without_text_is_still_checked(tmp_path: Path) -> None:
    rows = [{"name": f"n{i}", "email": EMAIL, "age": 30 + i} for i in range(3)]
    report = _run(_csv(tmp_path / "people.csv", rows))
    assert _fields(report) == {"3 row(s) (100.0%) with email in field 'email'": (0, 1, 2)}


def test_rows_beyond_the_field_bounds_fail_closed(tmp_path: Path) -> None:
    from scanners.dataset.readers import EXTRA_DEPTH, MAX_EXTRA_FIELDS

    deep: object = {"email": EMAIL}
    for _ in range(EXTRA_DEPTH + 1):
        deep = {"x": deep}
    wide = {f"c{i}": f"value {i}" for i in range(MAX_EXTRA_FIELDS + 5)}
    rows: list[dict[str, object]] = [
        {"text": "one ordinary sentence", "meta": deep},
        {"text": "another ordinary sentence", "meta": wide},
        {"text": "a third ordinary sentence", "meta": {"ok": "fine"}},
    ]
    report = _run(_write(tmp_path / "b.jsonl", rows))
    (cut,) = [f for f in report.findings if f.rule == "DAT009"]
    assert cut.severity is Severity.HIGH and cut.location.rows == (0, 1)
    assert "6 field(s) were not checked" in cut.message


def test_field_names_are_bounded() -> None:
    from scanners.dataset.sensitive import MAX_FIELDS, OTHER_FIELDS

    check = SensitiveDataCheck().init(None)
    for i in range(MAX_FIELDS + 50):
        check.add(Record(index=i, text="", extra=((f"k{i}", EMAIL),)))
    assert len(check.fields) == MAX_FIELDS
    assert len(check.tallies) == MAX_FIELDS + 1
    assert check.tallies[("email", "col:" + OTHER_FIELDS)].rows == 50


def test_other_checks_do_not_pay_for_extra_columns(tmp_path: Path) -> None:
    from scanners.base import Artifact, ScanContext
    from scanners.dataset.readers import open_reader
    from supplychain.core.model import ArtifactKind

    path = _write(tmp_path / "x.jsonl", _pii_rows())
    for checks, want in ((frozenset({"duplicates"}), False), (frozenset({"sensitive"}), True)):
        ctx = ScanContext(dataset=DatasetOptions(checks=checks))
        with path.open("rb") as stream:
            art = Artifact(path=str(path), kind=ArtifactKind.DATASET_JSONL, stream=stream, size=1)
            records = list(open_reader(art, ctx).records())
        assert all(bool(r.extra) is want for r in records), checks


def test_decimal_digits_are_exact_and_bounded() -> None:
    from decimal import Decimal

    from scanners.dataset.readers import extra_fields

    row = {"a": Decimal("4539148803436467"), "b": Decimal("1E+99999"), "c": Decimal("12.50")}
    assert extra_fields(row, ()) == (("a", "4539148803436467"),)


def test_clean_memo_never_hides_a_match_and_stays_bounded() -> None:
    from scanners.dataset.sensitive import CLEAN_CACHE

    check = SensitiveDataCheck().init(None)
    for i in range(CLEAN_CACHE + 100):
        check.add(Record(index=i, text="", extra=(("city", f"town {i}"), ("email", EMAIL))))
    assert len(check.clean) <= CLEAN_CACHE
    assert check.tallies[("email", "col:email")].rows == CLEAN_CACHE + 100


def test_binary_columns_are_not_read_for_extra_fields(tmp_path: Path) -> None:
    """Image bytes beside the text are never decoded for the check (memory, row-group cap)."""
    import pyarrow as pa

    from scanners.base import Artifact, ScanContext
    from scanners.dataset.readers import open_reader
    from supplychain.core.model import ArtifactKind

    rows = [
        {
            "text": "a photo of a cat on a mat",
            "image": {"bytes": b"\x89PNG" + bytes(64), "path": f"{i}.png"},
            "thumb": b"\x00" * 32,
            "email": EMAIL,
            "tags": ["cat", "mat"],
        }
        for i in range(3)
    ]
    path = _parquet(tmp_path / "img.parquet", rows)
    ctx = ScanContext(dataset=DatasetOptions(checks=frozenset({"sensitive"})))
    with path.open("rb") as stream:
        art = Artifact(
            path=str(path),
            kind=ArtifactKind.DATASET_PARQUET,
            stream=stream,
            size=path.stat().st_size,
        )
        reader = open_reader(art, ctx)
        records = list(reader.records())
        schema = pa.Table.from_pylist(rows).schema
        assert reader.read_columns(schema) == ["text", "email", "tags"]  # type: ignore[attr-defined]
    assert records[0].extra == (("email", EMAIL), ("tags[]", "cat"), ("tags[]", "mat"))
    assert _fields(_run(path)) == {"3 row(s) (100.0%) with email in field 'email'": (0, 1, 2)}
