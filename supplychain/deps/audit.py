"""The vulnerability lookup: a report-level check over the ``dependency.requirement`` facts.

Runs once per scan, after every requirement file was parsed, so each (package, version) is asked
once however many files name it. Offline (the default of ``scan``) it asks nothing and says so:
an INFO finding and a ``dependency.audit = "offline"`` fact per requirement file. Online it asks
the OSV-compatible service (``--osv-url`` / ``SUPPLYCHAIN_OSV_URL`` / ``[deps] osv_url``):

- a pinned requirement: the advisories affecting that version (DEP020);
- a range: every advisory of the package, kept when the range admits an affected version
  (DEP021, "admits vulnerable versions");
- withdrawn advisories are not findings;
- severity from the advisory's CVSS v3 vector (base score computed), else its
  ``database_specific.severity``, else HIGH: an advisory of unknown severity is not safe;
- a failed lookup (network, timeout, HTTP error, rate limit, malformed answer) is DEP022, HIGH:
  the gate fails rather than passing what could not be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scanners.deps_options import DepsOptions
from supplychain.core.model import ArtifactKind, Confidence, Fact, Finding, Location, Rule, Severity
from supplychain.core.rules import make_rule

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from supplychain.checks import ReportView
    from supplychain.deps.osv import OsvError

# packaging, the OSV client and the CVSS formula are imported where used: this module is loaded
# with the report-level checks by every scan, and an offline scan needs none of them.

DEP020 = make_rule(
    "DEP020",
    "Pinned dependency has a known vulnerability",
    Severity.HIGH,
    "The exact version this requirement installs is affected by a published advisory (OSV). The "
    "finding's severity is the advisory's: from its CVSS v3 vector (base score computed), else "
    "the database's own rating, else HIGH, because an advisory of unknown severity is not a "
    "safe one.",
    "Upgrade to a fixed version (the advisory lists them); if the vulnerable code is "
    "unreachable, waive this finding with the reason and an expiry.",
    cwe=1395,
)
DEP021 = make_rule(
    "DEP021",
    "Requirement admits vulnerable versions",
    Severity.MEDIUM,
    "The version range of this unpinned requirement admits versions a published advisory "
    "affects: an install from a stale mirror, a cache or a lock made from it can get one. "
    "Resolvers usually pick the newest version, so the severity is the advisory's lowered one "
    "step (never below LOW).",
    "Raise the lower bound above the fixed version, or pin a fixed version.",
    cwe=1395,
)
DEP022 = make_rule(
    "DEP022",
    "Could not audit a dependency",
    Severity.HIGH,
    "The vulnerability service could not be asked about this requirement (unreachable, timed "
    "out, HTTP error, rate limited, malformed answer). Unknown is not clean, so the gate fails.",
    "Check the network path to the OSV endpoint (``--osv-url`` / ``SUPPLYCHAIN_OSV_URL`` / "
    "``[deps] osv_url``), then run again; air-gapped sites point it at an OSV mirror.",
    cwe=1357,
)
DEP023 = make_rule(
    "DEP023",
    "Vulnerabilities not looked up",
    Severity.INFO,
    "The scan ran offline (the default for ``scan``): requirement files were parsed and checked, "
    "but no vulnerability database was asked.",
    "Run ``supplychain deps PATH``, or ``scan --deps-online``, or set ``[deps] online = true`` in "
    "the policy.",
)
AUDIT_RULES: tuple[Rule, ...] = (DEP020, DEP021, DEP022, DEP023)

_DB_SEVERITY = {
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Rated:
    """An advisory's severity and where it came from."""

    severity: Severity
    vector: str
    source: str
    """``CVSS 9.8``, ``database: MODERATE`` or ``unknown severity: treated as HIGH``."""


def advisory_severity(vuln: dict[str, Any]) -> Rated:
    """CVSS v3 vector (computed) → ``database_specific.severity`` → HIGH."""
    from supplychain.deps import cvss

    entries: list[Any] = list(_list(vuln.get("severity")))
    for affected in _list(vuln.get("affected")):
        if isinstance(affected, dict):
            entries.extend(_list(affected.get("severity")))
    vectors = [e.get("score") for e in entries if isinstance(e, dict)]
    v3 = [v for v in vectors if isinstance(v, str) and v.startswith("CVSS:3")]
    scored = [(s, v) for v in v3 if (s := cvss.base_score(v)) is not None]
    if scored:
        score, vector = max(scored)
        label = cvss.rating(score)
        sev = Severity.LOW if label == "none" else Severity.parse(label)
        return Rated(sev, vector, f"CVSS {score:.1f}")
    v4 = next((v for v in vectors if isinstance(v, str) and v.startswith("CVSS:4")), "")
    score4 = _cvss4_score(v4) if v4 else None
    if score4 is not None:
        label = cvss.rating(score4)
        sev = Severity.LOW if label == "none" else Severity.parse(label)
        return Rated(sev, v4, f"CVSS 4.0 {score4:.1f}")
    db = vuln.get("database_specific")
    text = db.get("severity") if isinstance(db, dict) else None
    if isinstance(text, str) and text.strip().lower() in _DB_SEVERITY:
        return Rated(_DB_SEVERITY[text.strip().lower()], v4, f"database: {text.strip()}")
    return Rated(Severity.HIGH, v4, "unknown severity: treated as HIGH")


def _cvss4_score(vector: str) -> float | None:
    """CVSS v4.0 base score through the ``cvss`` package (``[deps]`` extra) when installed.

    v4 scoring is a lookup over 270 macro-vectors plus interpolation, so it is not rewritten
    here; without the package (or for an invalid vector) the database severity is used.
    """
    try:
        from cvss import CVSS4  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return float(CVSS4(vector).base_score)
    except Exception:  # the package's own errors for malformed vectors
        return None


def _list(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else empty: advisory fields come from the network."""
    return value if isinstance(value, list) else []


def _versions(values: object) -> list[Version]:
    from packaging.version import InvalidVersion, Version

    out: list[Version] = []
    for v in values if isinstance(values, list) else []:
        try:
            out.append(Version(str(v)))
        except InvalidVersion:
            continue
    return out


def admitted_affected(vuln: dict[str, Any], name: str, spec: SpecifierSet) -> str | None:
    """An affected version the specifier admits (as text), or ``None``.

    Exact for the versions an advisory enumerates; ranges (``introduced`` / ``fixed`` /
    ``last_affected``) are tested at their boundaries and at the specifier's own bounds, which is
    where an interval intersection must show.
    """
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    bounds: list[Version] = []
    for s in spec:
        try:
            v = Version(s.version.rstrip(".*"))
        except InvalidVersion:
            continue
        bounds += [v, Version(f"{v.base_version}.0.0.1")]
    for affected in _list(vuln.get("affected")):
        if not isinstance(affected, dict):
            continue
        pkg = affected.get("package") or {}
        if not isinstance(pkg, dict) or canonicalize_name(str(pkg.get("name", ""))) != name:
            continue
        if str(pkg.get("ecosystem", "PyPI")) != "PyPI":
            continue
        for v in _versions(affected.get("versions")):
            if spec.contains(v):
                return str(v)
        for rng in _list(affected.get("ranges")):
            if not isinstance(rng, dict) or rng.get("type") != "ECOSYSTEM":
                continue
            for low, high, inclusive in _intervals(rng.get("events")):
                points = [low, *(b for b in bounds if b >= low)]
                if high is not None and inclusive:
                    points.append(high)
                for p in points:
                    inside = p >= low and (high is None or (p <= high if inclusive else p < high))
                    if inside and spec.contains(p):
                        return str(p)
    return None


def _intervals(events: object) -> Iterator[tuple[Version, Version | None, bool]]:
    """``(introduced, end, end_inclusive)`` intervals of an OSV ECOSYSTEM range."""
    from packaging.version import InvalidVersion, Version

    low: Version | None = None
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        try:
            if "introduced" in event:
                text = str(event["introduced"])
                low = Version("0") if text == "0" else Version(text)
            elif "fixed" in event and low is not None:
                yield low, Version(str(event["fixed"])), False
                low = None
            elif "last_affected" in event and low is not None:
                yield low, Version(str(event["last_affected"])), True
                low = None
            elif "limit" in event and low is not None:
                yield low, Version(str(event["limit"])), False
                low = None
        except InvalidVersion:
            low = None
    if low is not None:
        yield low, None, False


@dataclass(frozen=True, slots=True)
class _Query:
    name: str
    version: str
    """Empty: every advisory of the package (a range)."""


class DependencyAudit:
    """OSV lookup of every requirement the scan found (see the module docstring)."""

    name: ClassVar[str] = "dependency-audit"
    rules: ClassVar[tuple[Rule, ...]] = AUDIT_RULES

    def check(self, view: ReportView) -> Iterator[Finding]:
        """See ``ReportCheck.check``."""
        options = view.settings(DepsOptions)
        reqs = [f for f in view.facts if f.key == "dependency.requirement"]
        files = sorted(
            {r.path for r in view.files if r.kind is ArtifactKind.REQUIREMENTS and not r.member}
            | {f.location.path for f in reqs if not f.location.member}
        )
        if not files:
            return
        mode = "online" if options.online else "offline"
        for path in files:
            view.emit(Fact("dependency.audit", mode, Location(path=path), self.name))
        if not options.online:
            yield Finding(
                rule=DEP023.id,
                severity=DEP023.severity,
                confidence=Confidence.HIGH,
                message=f"{len(reqs)} requirement(s) in {len(files)} file(s): vulnerabilities "
                "not looked up (offline; use --deps-online or `supplychain deps`)",
                location=Location(path=files[0]),
            )
            return
        wanted: dict[_Query, list[Fact]] = {}
        for fact in reqs:
            value = fact.value
            if not isinstance(value, tuple) or len(value) != 5 or not value[0]:
                continue
            name, version, _spec, _purl, kind = value
            if kind == "pinned" and version:
                wanted.setdefault(_Query(name, version), []).append(fact)
            elif kind == "range":
                wanted.setdefault(_Query(name, ""), []).append(fact)
        if not wanted:
            return
        from concurrent.futures import ThreadPoolExecutor

        from supplychain.deps.osv import Deadline, OsvClient, OsvError

        client = OsvClient(
            options.osv_url, timeout=options.timeout, deadline=Deadline(options.budget)
        )
        queries = sorted(wanted, key=lambda q: (q.name, q.version))

        def ask(q: _Query) -> list[dict[str, Any]] | OsvError:
            try:
                return client.query(q.name, q.version or None)
            except OsvError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            answers = list(pool.map(ask, queries))
        for query, answer in zip(queries, answers, strict=True):
            for fact in wanted[query]:
                yield from self._judge(view, query, fact, answer)

    def _judge(
        self,
        view: ReportView,
        query: _Query,
        fact: Fact,
        answer: list[dict[str, Any]] | OsvError,
    ) -> Iterator[Finding]:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        name, version, spec_text = (str(v) for v in fact.value[:3])  # type: ignore[index]
        shown = f"{name}=={version}" if query.version else f"{name}{spec_text}"
        if not isinstance(answer, list):
            yield Finding(
                rule=DEP022.id,
                severity=DEP022.severity,
                confidence=Confidence.HIGH,
                message=f"could not audit {shown}: {answer}",
                location=fact.location,
                evidence=shown,
            )
            return
        try:
            spec = SpecifierSet(spec_text)
        except InvalidSpecifier:
            spec = SpecifierSet()
        seen: set[str] = set()
        admitted: list[tuple[Rated, str, str, str]] = []  # a range: (rating, id, named, version)
        for vuln in sorted(answer, key=lambda v: str(v.get("id"))):
            vid = str(vuln["id"])
            if vuln.get("withdrawn") or vid in seen:
                continue
            seen.add(vid)
            rated = advisory_severity(vuln)
            aliases = [a for a in _list(vuln.get("aliases")) if isinstance(a, str)]
            summary = str(vuln.get("summary") or vuln.get("details") or "")[:300]
            named = f"{vid} ({', '.join(aliases[:3])})" if aliases else vid
            if not query.version:
                hit = admitted_affected(vuln, name, spec)
                if hit is None:
                    continue
                admitted.append((rated, vid, named, hit))
            view.emit(
                Fact(
                    "dependency.vulnerability",
                    (
                        name,
                        version or spec_text,
                        vid,
                        ",".join(aliases),
                        rated.severity.label,
                        rated.vector,
                        summary,
                    ),
                    fact.location,
                    self.name,
                )
            )
            if query.version:
                yield Finding(
                    rule=DEP020.id,
                    severity=rated.severity,
                    confidence=Confidence.HIGH,
                    message=f"{shown} is affected by {named}, {rated.source}: {summary}",
                    location=fact.location,
                    evidence=f"{shown} {vid}",
                )
        if admitted:
            # One finding per range (an unpinned popular package can admit hundreds of
            # advisories); every advisory is still a dependency.vulnerability fact.
            admitted.sort(key=lambda a: (-a[0].severity, a[1]))
            worst, _vid, named, hit = admitted[0]
            ids = [a[1] for a in admitted]
            more = (
                f" and {len(ids) - 1} more ({', '.join(ids[1:6])}{', …' if len(ids) > 6 else ''})"
            )
            yield Finding(
                rule=DEP021.id,
                severity=Severity(max(Severity.LOW, worst.severity - 1)),
                confidence=Confidence.HIGH,
                message=f"{shown} admits vulnerable versions (e.g. {hit}): {named}, "
                f"{worst.source}{more if len(ids) > 1 else ''}",
                location=fact.location,
                evidence=f"{shown} {','.join(ids[:3])}{'…' if len(ids) > 3 else ''}",
            )


__all__ = [
    "AUDIT_RULES",
    "DEP020",
    "DEP021",
    "DEP022",
    "DEP023",
    "DependencyAudit",
    "admitted_affected",
    "advisory_severity",
]
