"""The OSV lookup against a fake OSV server on 127.0.0.1: findings, facts and outages."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanners.deps_options import DepsOptions
from supplychain import service
from supplychain.core.model import Report
from supplychain.deps.audit import admitted_affected, advisory_severity
from tests.deps.conftest import CRITICAL_VECTOR, closed_port_url
from tests.deps.fakeosv import FakeOsv, advisory


def run(path: Path, url: str, **opts: object) -> Report:
    options = DepsOptions(online=True, osv_url=url, **opts)  # type: ignore[arg-type]
    return service.run_deps([path], options=options)


def model(tmp_path: Path, text: str) -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "requirements.txt").write_text(text)
    return tmp_path / "model"


def vulns(report: Report) -> list[tuple[str, ...]]:
    return sorted(f.value for f in report.facts if f.key == "dependency.vulnerability")  # type: ignore[misc]


def test_vulnerable_pin(tmp_path: Path, osv: FakeOsv) -> None:
    report = run(model(tmp_path, "torch==2.1.0\n"), osv.url)
    found = [f for f in report.findings if f.rule == "DEP020"]
    assert len(found) == 1
    assert found[0].severity.label == "critical"  # CVSS 9.8 computed from the vector
    assert "GHSA-torch-0001" in found[0].message and "CVSS 9.8" in found[0].message
    assert found[0].location.path == "requirements.txt"
    assert vulns(report) == [
        (
            "torch",
            "2.1.0",
            "GHSA-torch-0001",
            "CVE-2099-0001",
            "critical",
            CRITICAL_VECTOR,
            "torch is vulnerable (GHSA-torch-0001)",
        )
    ]
    assert [f.value for f in report.facts if f.key == "dependency.audit"] == ["online"]
    assert report.verdict is not None and not report.verdict.passed
    assert osv.requests == [{"package": {"name": "torch", "ecosystem": "PyPI"}, "version": "2.1.0"}]


def test_clean_pin(tmp_path: Path, osv: FakeOsv) -> None:
    report = run(model(tmp_path, "torch==2.2.0\nrequests==2.31.0\n"), osv.url)
    assert report.findings == ()
    assert vulns(report) == []
    assert report.verdict is not None and report.verdict.passed
    assert len(osv.requests) == 2


def test_unpinned_range_reports_admitted_vulnerable_versions(tmp_path: Path, osv: FakeOsv) -> None:
    report = run(model(tmp_path, "requests>=2.0\ntorch>=2.2\n"), osv.url)
    rules = sorted((f.rule, f.severity.label, f.evidence) for f in report.findings)
    # requests>=2.0 admits 2.0..2.19 (fixed in 2.20.0): database MODERATE, lowered one step
    assert ("DEP021", "low", "requests>=2.0 PYSEC-2018-28") in rules
    assert ("DEP001", "low", "requests>=2.0") in rules
    # torch>=2.2 admits no affected version (fixed in 2.2.0)
    assert not any(r[0] == "DEP021" and "torch" in r[2] for r in rules)
    assert [v[:3] for v in vulns(report)] == [("requests", ">=2.0", "PYSEC-2018-28")]
    # queried without a version: every advisory of the package, filtered here
    assert {"package": {"name": "requests", "ecosystem": "PyPI"}} in osv.requests


def test_withdrawn_advisories_are_not_findings(tmp_path: Path, osv: FakeOsv) -> None:
    report = run(model(tmp_path, "numpy==1.0.0\n"), osv.url)
    assert report.findings == ()
    assert report.verdict is not None and report.verdict.passed


def test_unknown_severity_is_high(tmp_path: Path, osv: FakeOsv) -> None:
    report = run(model(tmp_path, "pillow==9.0.0\n"), osv.url)
    (finding,) = report.findings
    assert finding.rule == "DEP020" and finding.severity.label == "high"
    assert "unknown severity" in finding.message


def test_queries_are_deduplicated_across_files(tmp_path: Path, osv: FakeOsv) -> None:
    root = model(tmp_path, "torch==2.1.0\n")
    (root / "sub").mkdir()
    (root / "sub" / "requirements.txt").write_text("torch==2.1.0\n")
    report = run(root, osv.url)
    assert len(osv.requests) == 1
    assert sorted(f.location.path for f in report.findings) == [
        "requirements.txt",
        "sub/requirements.txt",
    ]


@pytest.mark.parametrize("mode", ["500", "429", "sleep", "truncated", "malformed", "redirect"])
def test_every_outage_fails_closed(tmp_path: Path, osv: FakeOsv, mode: str) -> None:
    osv.mode = mode
    osv.retry_after = "0"
    osv.delay = 1.5
    report = run(model(tmp_path, "torch==2.1.0\nrequests>=2\n"), osv.url, timeout=0.3, budget=3.0)
    could_not = [f for f in report.findings if f.rule == "DEP022"]
    assert len(could_not) == 2, [f.message for f in report.findings]
    assert all(f.severity.label == "high" for f in could_not)
    assert any("torch==2.1.0" in f.message for f in could_not)
    assert report.verdict is not None and not report.verdict.passed
    if mode in ("500", "429", "sleep"):
        assert len(osv.requests) > 2  # retried


def test_rate_limit_beyond_the_budget_names_the_cause(tmp_path: Path, osv: FakeOsv) -> None:
    osv.mode = "429"
    osv.retry_after = "3600"
    report = run(model(tmp_path, "torch==2.1.0\n"), osv.url, budget=5.0)
    (finding,) = report.findings
    assert finding.rule == "DEP022" and "Retry-After 3600" in finding.message
    assert len(osv.requests) == 1  # no pointless wait


def test_connection_refused_fails_closed(tmp_path: Path) -> None:
    report = run(model(tmp_path, "torch==2.1.0\n"), closed_port_url(), budget=2.0)
    (finding,) = report.findings
    assert finding.rule == "DEP022" and "connection failed" in finding.message
    assert report.verdict is not None and not report.verdict.passed


def test_recovers_after_one_server_error(tmp_path: Path, osv: FakeOsv) -> None:
    calls = {"n": 0}
    original = osv.answer

    def flaky(body: dict) -> dict:  # type: ignore[type-arg]
        calls["n"] += 1
        return original(body)

    osv.answer = flaky  # type: ignore[method-assign]
    osv.mode = "500"
    import threading

    def heal() -> None:
        osv.mode = "ok"

    timer = threading.Timer(0.2, heal)
    timer.start()
    try:
        report = run(model(tmp_path, "torch==2.1.0\n"), osv.url, budget=10.0)
    finally:
        timer.cancel()
    assert [f.rule for f in report.findings] == ["DEP020"]
    assert len(osv.requests) >= 2


def test_offline_scan_asks_nothing_and_says_so(tmp_path: Path, osv: FakeOsv) -> None:
    root = model(tmp_path, "torch==2.1.0\n")
    options = DepsOptions(online=False, osv_url=osv.url)
    report = service.run_deps([root], options=options)
    scan = service.run_scan([root])
    assert osv.requests == []
    for r in (report, scan):
        assert [f.rule for f in r.findings] == ["DEP023"]
        assert "not looked up" in r.findings[0].message
        assert [f.value for f in r.facts if f.key == "dependency.audit"] == ["offline"]
        assert r.verdict is not None and r.verdict.passed


def test_osv_url_from_the_environment(
    tmp_path: Path, osv: FakeOsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supplychain.policy import Policy

    monkeypatch.setenv("SUPPLYCHAIN_OSV_URL", osv.url)
    report = service.run_deps([model(tmp_path, "torch==2.1.0\n")], Policy())
    assert [f.rule for f in report.findings] == ["DEP020"]
    assert len(osv.requests) == 1


def test_severity_sources() -> None:
    assert (
        advisory_severity({"severity": [{"type": "CVSS_V3", "score": CRITICAL_VECTOR}]}).source
        == "CVSS 9.8"
    )
    low = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"
    assert (
        advisory_severity({"severity": [{"type": "CVSS_V3", "score": low}]}).severity.label == "low"
    )
    v4_vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    v4 = {
        "severity": [{"type": "CVSS_V4", "score": v4_vector}],
        "database_specific": {"severity": "MODERATE"},
    }
    rated = advisory_severity(v4)  # scored with the cvss package ([deps] extra)
    assert rated.severity.label == "critical" and rated.source == "CVSS 4.0 9.3"
    assert rated.vector == v4_vector
    assert advisory_severity({}).severity.label == "high"


def test_cvss4_without_the_package_uses_the_database_severity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cvss", None)  # import cvss → ImportError
    v4_vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    v4 = {
        "severity": [{"type": "CVSS_V4", "score": v4_vector}],
        "database_specific": {"severity": "MODERATE"},
    }
    rated = advisory_severity(v4)
    assert rated.severity.label == "medium" and rated.vector == v4_vector
    assert rated.source == "database: MODERATE"
    bad = {"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:Q"}]}
    monkeypatch.delitem(sys.modules, "cvss")
    assert advisory_severity(bad).severity.label == "high"  # unscorable, no database rating


def test_range_intersection() -> None:
    from packaging.specifiers import SpecifierSet

    vuln = advisory("X", "pkg", introduced="1.0", fixed="1.5")
    assert admitted_affected(vuln, "pkg", SpecifierSet(">=1.2")) == "1.2"
    assert admitted_affected(vuln, "pkg", SpecifierSet(">=1.5")) is None
    assert admitted_affected(vuln, "pkg", SpecifierSet("<1.0")) is None
    assert admitted_affected(vuln, "pkg", SpecifierSet("")) == "1.0"
    assert admitted_affected(vuln, "pkg", SpecifierSet(">1.4,<2")) is not None
    assert admitted_affected(vuln, "pkg", SpecifierSet("~=1.4")) is not None
    assert admitted_affected(vuln, "other", SpecifierSet("")) is None
    listed = advisory("Y", "pkg", introduced="0", versions=["0.9", "1.1"], fixed="9")
    assert admitted_affected(listed, "pkg", SpecifierSet("==1.1")) == "1.1"


def test_a_range_admitting_many_advisories_is_one_finding(tmp_path: Path, osv: FakeOsv) -> None:
    for i, vector in enumerate([CRITICAL_VECTOR, "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"]):
        osv.add("tensorflow", advisory(f"GHSA-tf-{i}", "tensorflow", fixed="2.0.0", vector=vector))
    osv.add("tensorflow", advisory("GHSA-tf-new", "tensorflow", introduced="3.0", fixed="3.1"))
    report = run(model(tmp_path, "tensorflow<2.5\n"), osv.url)
    (finding,) = [f for f in report.findings if f.rule == "DEP021"]
    assert finding.severity.label == "high"  # worst advisory critical, lowered one step
    assert "GHSA-tf-0" in finding.message and "1 more (GHSA-tf-1)" in finding.message
    assert sorted(v[2] for v in vulns(report)) == ["GHSA-tf-0", "GHSA-tf-1"]


def test_deps_reads_only_requirement_files(tmp_path: Path, osv: FakeOsv) -> None:
    from supplychain.policy import Policy

    root = model(tmp_path, "torch==2.2.0\n")
    (root / "weights.unknownformat").write_bytes(b"\x00\x01binary")
    (root / "dangling.bin").symlink_to(root / "missing")
    options = DepsOptions(online=True, osv_url=osv.url)
    report = service.run_deps([root], Policy(strict=True), options=options)
    assert [r.path for r in report.files] == ["requirements.txt"]
    assert report.findings == ()
    assert report.verdict is not None and report.verdict.passed, report.verdict
    # the full scan still reports what deps leaves out
    scan = service.run_scan([root])
    assert {f.rule for f in scan.findings} >= {"GEN006"}


def test_hostile_advisories_never_crash_the_audit(tmp_path: Path, osv: FakeOsv) -> None:
    """Advisory fields of the wrong type (a compromised or buggy mirror): a finding or nothing,
    never a failed check."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from packaging.specifiers import SpecifierSet

    junk = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    )
    keys = st.sampled_from(
        [
            "severity",
            "affected",
            "aliases",
            "summary",
            "details",
            "withdrawn",
            "database_specific",
            "versions",
            "ranges",
            "events",
            "package",
            "score",
            "type",
        ]
    )
    vuln = st.dictionaries(keys, junk, max_size=6).map(lambda d: {**d, "id": "JUNK-1"})

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(vuln)
    def run(v: dict) -> None:  # type: ignore[type-arg]
        advisory_severity(v)
        admitted_affected(v, "torch", SpecifierSet(">=1"))

    run()
    osv.advisories["torch"] = [
        {"id": "J1", "affected": "x", "severity": "y", "aliases": 5},
        {
            "id": "J2",
            "affected": [{"package": "x", "ranges": [{"type": "ECOSYSTEM", "events": "z"}]}],
        },
        {"id": "J3", "affected": [{"package": {"name": "torch"}, "versions": [1, None, "2.1.0"]}]},
    ]
    for text in ("torch==2.1.0\n", "torch>=1\n"):
        report = service.run_deps(
            [model(tmp_path, text)], options=DepsOptions(online=True, osv_url=osv.url)
        )
        assert not report.failed, [r.reason for r in report.failed]
        assert {f.rule for f in report.findings} <= {"DEP001", "DEP020", "DEP021", "DEP022"}


def test_pages_are_followed_and_bounded(osv: FakeOsv) -> None:
    from supplychain.core.limits import OsvLimits
    from supplychain.deps.osv import OsvClient, OsvError

    for i in range(3):
        osv.add("tensorflow", advisory(f"GHSA-tf-{i}", "tensorflow"))
    osv.mode = "pages"
    client = OsvClient(osv.url, timeout=2)
    assert [v["id"] for v in client.query("tensorflow", None)] == [
        "GHSA-tf-0",
        "GHSA-tf-1",
        "GHSA-tf-2",
    ]
    assert [r.get("page_token") for r in osv.requests] == [None, "1", "2"]
    osv.endless = True
    with pytest.raises(OsvError, match="more than 5 pages"):
        OsvClient(osv.url, timeout=2, limits=OsvLimits(max_pages=5)).query("tensorflow", None)


def test_an_oversized_answer_is_refused(osv: FakeOsv) -> None:
    from supplychain.core.limits import OsvLimits
    from supplychain.deps.osv import OsvClient, OsvError

    for i in range(50):
        osv.add("tensorflow", advisory(f"GHSA-tf-{i}", "tensorflow"))
    small = OsvClient(osv.url, timeout=2, limits=OsvLimits(max_response_bytes=4096))
    with pytest.raises(OsvError, match="larger than 4096 bytes"):
        small.query("tensorflow", None)
    assert len(osv.requests) == 1  # not retried: the answer will not shrink
