"""Build a CycloneDX ML-BOM from a judged ``Report``: facts in, one validated document out.

Nothing is re-parsed: the model card, config, dependency and provenance information all come
from the report's facts (``docs/report-schema.md``), file hashes from its records (the sha256 of
the bytes that were scanned), and the verdict from the policy. ``cyclonedx-python-lib`` builds
components, hashes, purls, pedigree, dependencies and vulnerabilities and serializes them; the
parts of the spec it lacks (``modelCard``, component ``data``) are added to the serialized JSON,
and the whole document is then validated with the library's strict JSON-schema validator for the
chosen spec. A document that does not validate raises ``BomError`` and is never returned.
See ``docs/sbom.md`` for what goes where.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from supplychain.core.errors import SupplyChainError
from supplychain.core.model import (
    ArtifactRecord,
    Fact,
    FactValue,
    Finding,
    Report,
    Severity,
    Status,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
SPECS = ("1.6", "1.7")
"""Spec versions written (and validated strictly); 1.6 is the default."""
DEFAULT_SPEC = "1.6"
PROP = "supplychain"
"""Namespace of our CycloneDX property names (``supplychain:provenance`` …)."""
MAX_VULNERABILITIES = 5000
"""Findings written as vulnerabilities; past it the BOM says how many were left out."""
SIGNATURE_NAMES = ("model.sig", "model.sigstore", "model.sigstore.json", "model.sig.json")
"""Signature bundles a model directory ships (OpenSSF model-signing)."""

TASK_IO: dict[str, tuple[str, str]] = {
    "text-generation": ("text", "text"),
    "text2text-generation": ("text", "text"),
    "summarization": ("text", "text"),
    "translation": ("text", "text"),
    "fill-mask": ("text", "text"),
    "question-answering": ("text", "text"),
    "text-classification": ("text", "label"),
    "token-classification": ("text", "label"),
    "zero-shot-classification": ("text", "label"),
    "sentence-similarity": ("text", "score"),
    "feature-extraction": ("text", "embedding"),
    "image-classification": ("image", "label"),
    "object-detection": ("image", "bounding-boxes"),
    "image-segmentation": ("image", "mask"),
    "image-to-text": ("image", "text"),
    "text-to-image": ("text", "image"),
    "automatic-speech-recognition": ("audio", "text"),
    "audio-classification": ("audio", "label"),
    "text-to-speech": ("text", "audio"),
}
"""Input and output modality of the Hub's pipeline tasks (what ``pipeline_tag`` declares)."""


class BomError(SupplyChainError):
    """The BOM could not be built or does not validate against the CycloneDX schema (exit 2)."""


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset given with ``--dataset``: the path as given and its judged data-run report."""

    name: str
    report: Report


@dataclass(frozen=True, slots=True)
class HubSource:
    """Where the model came from on the Hub (from ``--hf`` / provenance facts)."""

    repo: str
    """``ORG/NAME``."""
    commit: str | None = None
    revision: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    repo_type: str = "model"

    @classmethod
    def from_report(cls, report: Report) -> HubSource | None:
        """The source provenance verified against (its ``extra`` keys), if any."""
        extra = dict(report.extra)
        repo = extra.get("provenance.repo")
        if repo:
            repo_type, _, repo_id = repo.partition(":")
            if not repo_id:
                repo_type, repo_id = "model", repo_type
            return cls(
                repo=repo_id,
                commit=extra.get("provenance.commit") or None,
                revision=extra.get("provenance.revision") or None,
                endpoint=(extra.get("provenance.endpoint") or DEFAULT_ENDPOINT).rstrip("/"),
                repo_type=repo_type,
            )
        cache = extra.get("provenance.cache")
        if cache and "@" in cache:
            repo_id, _, commit = cache.rpartition("@")
            return cls(repo=repo_id, commit=commit or None)
        return None


@dataclass(frozen=True, slots=True)
class Library:
    """An installed or declared Python distribution."""

    name: str
    version: str


@dataclass(slots=True)
class _Facts:
    """A report's facts indexed by file and key."""

    by_path: dict[str, dict[str, FactValue]] = field(default_factory=dict)
    lists: dict[str, list[tuple[str, FactValue]]] = field(default_factory=dict)

    @classmethod
    def of(cls, facts: Iterable[Fact]) -> _Facts:
        out = cls()
        for fact in facts:
            if fact.location.member:
                continue
            out.by_path.setdefault(fact.location.path, {}).setdefault(fact.key, fact.value)
            out.lists.setdefault(fact.key, []).append((fact.location.path, fact.value))
        return out

    def scoped(self, prefixes: Sequence[str] = ("card.", "config.")) -> _Facts:
        """Keys under each prefix read from one file only: the shallowest that has any.

        A tree holding several models (``samples/``) must not get a model card stitched together
        from the root's ``config.json`` and another model's ``auto_map``.
        """
        lists = dict(self.lists)
        for prefix in prefixes:
            paths = {p for k, v in lists.items() if k.startswith(prefix) for p, _ in v}
            if not paths:
                continue
            chosen = min(paths, key=lambda p: (p.count("/"), p))
            for key in [k for k in lists if k.startswith(prefix)]:
                kept = [(p, v) for p, v in lists[key] if p == chosen]
                if kept:
                    lists[key] = kept
                else:
                    del lists[key]
        return _Facts(by_path=self.by_path, lists=lists)

    def first(self, key: str) -> FactValue | None:
        """The value nearest the model's root (``config.json`` over ``sub/config.json``)."""
        values = self.lists.get(key)
        if not values:
            return None
        return min(values, key=lambda pv: (pv[0].count("/"), pv[0]))[1]

    def text(self, key: str) -> str | None:
        value = self.first(key)
        return value if isinstance(value, str) and value else None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.first(key)
        if isinstance(value, tuple):
            return value
        return (value,) if isinstance(value, str) and value else ()

    def card_path(self) -> str | None:
        values = self.lists.get("card.keys")
        return min((p for p, _ in values), key=lambda p: (p.count("/"), p)) if values else None


def _lib() -> Any:
    """The cyclonedx modules (imported on use: a plain scan never pays for them)."""
    try:
        import cyclonedx.model as model
        import cyclonedx.model.bom as bom
        import cyclonedx.model.component as component
        import cyclonedx.model.contact as contact
        import cyclonedx.model.dependency as dependency
        import cyclonedx.model.license as license_
        import cyclonedx.model.vulnerability as vulnerability
        import packageurl
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise BomError(f"cyclonedx-python-lib is not installed: {exc}") from None

    class _NS:
        pass

    ns = _NS()
    for name, mod in (
        ("model", model),
        ("bom", bom),
        ("component", component),
        ("contact", contact),
        ("dependency", dependency),
        ("license", license_),
        ("vulnerability", vulnerability),
        ("packageurl", packageurl),
    ):
        setattr(ns, name, mod)
    return ns


def _prop(lib: Any, name: str, value: object) -> Any:
    text = ",".join(value) if isinstance(value, tuple) else str(value)
    return lib.model.Property(name=f"{PROP}:{name}", value=text)


def _sha256(lib: Any, digest: str) -> Any:
    return lib.model.HashType(alg=lib.model.HashAlgorithm.SHA_256, content=digest)


HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[\w.\-]{1,96}$")
"""A Hub repo id (``ORG/NAME``): only such names get a ``pkg:huggingface`` purl."""


def _purl_hf(lib: Any, repo: str, commit: str | None) -> Any:
    org, _, name = repo.rpartition("/")
    return lib.packageurl.PackageURL(
        type="huggingface", namespace=org or None, name=name, version=commit or None
    )


def _purl_pypi(lib: Any, name: str, version: str) -> Any:
    """``pkg:pypi/NAME@VERSION``, or ``None`` when the name cannot be one."""
    try:
        return lib.packageurl.PackageURL(type="pypi", name=name, version=version or None)
    except ValueError:
        return None


def _licenses(lib: Any, texts: Sequence[str]) -> list[Any]:
    from cyclonedx.contrib.license.factories import LicenseFactory

    factory = LicenseFactory()
    out = []
    for text in texts:
        try:
            made = factory.make_from_string(text)
        except Exception:  # the library rejects odd strings: keep the name
            made = lib.license.DisjunctiveLicense(name=text)
        if len(texts) > 1 and isinstance(made, lib.license.LicenseExpression):
            made = lib.license.DisjunctiveLicense(name=text)  # the schema takes one expression
        out.append(made)
    return out


def _url(lib: Any, kind: str, url: str, comment: str | None = None) -> Any:
    return lib.model.ExternalReference(
        type=lib.model.ExternalReferenceType(kind), url=lib.model.XsUri(url), comment=comment
    )


def _file_ref(path: str) -> str:
    return f"file:{path}"


def _file_component(
    lib: Any, record: ArtifactRecord, facts: dict[str, FactValue], ref_prefix: str = "file:"
) -> Any:
    """One scanned file: sha256, size, kind and, when provenance checked it, its state."""
    props = [_prop(lib, "kind", record.kind.value), _prop(lib, "size", record.size)]
    state = facts.get("provenance.state")
    if isinstance(state, str):
        props.append(_prop(lib, "provenance", state))
        algorithm = facts.get("provenance.algorithm")
        if isinstance(algorithm, str):
            props.append(_prop(lib, "provenance.algorithm", algorithm))
    if record.path.rsplit("/", 1)[-1] in SIGNATURE_NAMES:
        props.append(_prop(lib, "role", "signature-bundle"))
    fmt = facts.get("format")
    if isinstance(fmt, str):
        props.append(_prop(lib, "format", fmt))
    audit = facts.get("dependency.audit")
    if isinstance(audit, str):  # a requirement file: were its vulnerabilities looked up?
        props.append(_prop(lib, "dependency.audit", audit))
    return lib.component.Component(
        type=lib.component.ComponentType.FILE,
        name=record.path,
        bom_ref=f"{ref_prefix}{record.path}",
        hashes=[_sha256(lib, record.sha256)],
        properties=props,
    )


def _severity(lib: Any, severity: Severity) -> Any:
    return lib.vulnerability.VulnerabilitySeverity(severity.label)


def _analysis_state(finding: Finding, report: Report) -> tuple[str, str]:
    """VEX state for one of our findings (see docs/sbom.md)."""
    verdict = report.verdict
    if finding.suppressed is not None:
        return "not_affected", f"suppressed by policy: {finding.suppressed}"
    if verdict is not None and not verdict.passed and finding.severity >= verdict.fail_on:
        return "exploitable", f"the verdict failed on it (fail-on {verdict.fail_on.label})"
    return "in_triage", "below the failing severity: review"


def _finding_vulnerability(
    lib: Any, finding: Finding, report: Report, affects: str, source: Any
) -> Any:
    rule = report.rule(finding.rule)
    state, detail = _analysis_state(finding, report)
    vuln = lib.vulnerability
    props = [
        _prop(lib, "location", finding.location.describe()),
        _prop(lib, "confidence", finding.confidence.label),
        _prop(lib, "fingerprint", finding.fingerprint),
    ]
    if rule is not None and rule.owasp_llm:
        props.append(_prop(lib, "owasp_llm", rule.owasp_llm))
    if rule is not None and rule.atlas:
        props.append(_prop(lib, "atlas", rule.atlas))
    return vuln.Vulnerability(
        bom_ref=f"finding:{finding.rule}-{finding.fingerprint}",
        id=f"{finding.rule}-{finding.fingerprint[:12]}",
        source=source,
        ratings=[
            vuln.VulnerabilityRating(
                source=source,
                severity=_severity(lib, finding.severity),
                method=vuln.VulnerabilityScoreSource.OTHER,
                justification="supplychain rule severity",
            )
        ],
        cwes=[rule.cwe] if rule is not None and rule.cwe is not None else None,
        description=f"{rule.title if rule else finding.rule}: {finding.message}",
        detail=finding.evidence or None,
        recommendation=rule.remediation if rule is not None else None,
        analysis=vuln.VulnerabilityAnalysis(
            state=lib.vulnerability.ImpactAnalysisState(state), detail=detail
        ),
        affects=[vuln.BomTarget(ref=affects)],
        properties=props,
    )


def _cvss_method(lib: Any, vector: str) -> Any:
    methods = lib.vulnerability.VulnerabilityScoreSource
    if vector.startswith("CVSS:4"):
        return methods.CVSS_V4
    if vector.startswith("CVSS:3.1"):
        return methods.CVSS_V3_1
    if vector.startswith("CVSS:3"):
        return methods.CVSS_V3
    if vector.startswith(("AV:", "(AV:")):
        return methods.CVSS_V2
    return methods.OTHER


def _rating_severity(lib: Any, label: str) -> Any:
    try:
        return lib.vulnerability.VulnerabilitySeverity(label.strip().lower())
    except ValueError:
        if label.strip().lower() == "moderate":
            return lib.vulnerability.VulnerabilitySeverity.MEDIUM
        return lib.vulnerability.VulnerabilitySeverity.UNKNOWN


def _tuple(value: FactValue, size: int) -> tuple[str, ...] | None:
    if isinstance(value, tuple) and len(value) == size:
        return value
    return None


@dataclass(slots=True)
class _Libraries:
    """Library components by bom-ref, and the name→refs index vulnerabilities attach to."""

    components: dict[str, Any] = field(default_factory=dict)
    by_name: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    purls: set[str] = field(default_factory=set)


def _requirement_libraries(lib: Any, facts: _Facts) -> _Libraries:
    """``dependency.requirement`` facts → library components with purls."""
    out = _Libraries()
    for path, value in sorted(facts.lists.get("dependency.requirement", []), key=repr):
        parts = _tuple(value, 5)
        if parts is None:
            continue
        name, version, spec, purl_text, kind = parts
        purl = None
        if purl_text:
            try:
                purl = lib.packageurl.PackageURL.from_string(purl_text)
            except ValueError:
                purl = None
        if purl is None and version:
            purl = _purl_pypi(lib, name, version)
        ref = f"lib:{purl.to_string()}" if purl is not None else f"lib:{name}:{spec or '*'}"
        if ref not in out.components:
            props = [_prop(lib, "declared_in", path), _prop(lib, "requirement.kind", kind)]
            if spec:
                props.append(_prop(lib, "requirement", spec))
            out.components[ref] = lib.component.Component(
                type=lib.component.ComponentType.LIBRARY,
                name=name,
                version=version or None,
                purl=purl,
                bom_ref=ref,
                properties=props,
            )
            out.by_name.setdefault(name, []).append((version, ref))
            if purl is not None:
                out.purls.add(purl.to_string())
    return out


def _environment_libraries(lib: Any, env: Sequence[Library], libs: _Libraries) -> None:
    for dist in sorted(env, key=lambda d: (d.name, d.version)):
        purl = _purl_pypi(lib, dist.name, dist.version)
        if purl is None:
            continue
        text = purl.to_string()
        ref = f"env:{text}"
        if text in libs.purls or ref in libs.components:
            continue
        libs.components[ref] = lib.component.Component(
            type=lib.component.ComponentType.LIBRARY,
            name=dist.name,
            version=dist.version,
            purl=purl,
            bom_ref=ref,
            properties=[_prop(lib, "source", "environment")],
        )
        libs.by_name.setdefault(dist.name, []).append((dist.version, ref))
        libs.purls.add(text)


def _dependency_vulnerabilities(lib: Any, facts: _Facts, libs: _Libraries) -> list[Any]:
    """``dependency.vulnerability`` facts → advisories affecting the library components."""
    vuln = lib.vulnerability
    grouped: dict[str, dict[str, Any]] = {}
    for _path, value in facts.lists.get("dependency.vulnerability", []):
        parts = _tuple(value, 7)
        if parts is None:
            continue
        name, version, advisory, aliases, severity, vector, summary = parts
        refs = [r for v, r in libs.by_name.get(name, []) if not version or not v or v == version]
        if not refs or not advisory:
            continue
        entry = grouped.setdefault(
            advisory,
            {
                "refs": set(),
                "aliases": aliases,
                "severity": severity,
                "vector": vector,
                "summary": summary,
            },
        )
        entry["refs"].update(refs)
    out = []
    for advisory in sorted(grouped):
        entry = grouped[advisory]
        source = _advisory_source(lib, advisory)
        rating = vuln.VulnerabilityRating(
            source=source,
            severity=_rating_severity(lib, entry["severity"]),
            method=_cvss_method(lib, entry["vector"]) if entry["vector"] else None,
            vector=entry["vector"] or None,
        )
        references = [
            vuln.VulnerabilityReference(id=alias, source=_advisory_source(lib, alias))
            for alias in sorted({a.strip() for a in entry["aliases"].split(",") if a.strip()})
            if alias != advisory
        ]
        out.append(
            vuln.Vulnerability(
                bom_ref=f"advisory:{advisory}",
                id=advisory,
                source=source,
                references=references,
                ratings=[rating],
                description=entry["summary"] or None,
                affects=[vuln.BomTarget(ref=r) for r in sorted(entry["refs"])],
            )
        )
    return out


def _advisory_source(lib: Any, advisory: str) -> Any:
    vuln = lib.vulnerability
    if advisory.startswith("CVE-"):
        url = f"https://nvd.nist.gov/vuln/detail/{advisory}"
        return vuln.VulnerabilitySource(name="NVD", url=lib.model.XsUri(url))
    if advisory.startswith("GHSA-"):
        url = f"https://github.com/advisories/{advisory}"
        return vuln.VulnerabilitySource(name="GitHub", url=lib.model.XsUri(url))
    url = f"https://osv.dev/vulnerability/{advisory}"
    return vuln.VulnerabilitySource(name="OSV", url=lib.model.XsUri(url))


def _summary(report: Report) -> list[tuple[str, str]]:
    """Verdict and per-rule/severity finding counts of a report, as property pairs."""
    verdict = report.verdict
    out: list[tuple[str, str]] = []
    if verdict is not None:
        out.append(("verdict", "pass" if verdict.passed else "fail"))
        out.append(("fail_on", verdict.fail_on.label))
        out.extend(("verdict.reason", reason) for reason in verdict.reasons)
    active = [f for f in report.findings if f.suppressed is None]
    out.append(("findings", str(len(active))))
    for severity, count in sorted(
        Counter(f.severity for f in active).items(), key=lambda kv: -int(kv[0])
    ):
        out.append((f"findings.{severity.label}", str(count)))
    for rule, count in sorted(Counter(f.rule for f in active).items()):
        out.append((f"findings.rule.{rule}", str(count)))
    failed = sum(1 for r in report.results if r.status is Status.FAILED)
    if failed:
        out.append(("outcomes.failed", str(failed)))
    return out


def _dataset_component(lib: Any, index: int, dataset: DatasetInput) -> tuple[Any, dict[str, Any]]:
    """A ``--dataset``: hashes, size, format and its poisoning findings summarised."""
    report = dataset.report
    files = [r for r in report.files if not r.member]
    ref = f"data:{dataset.name}"
    props = [_prop(lib, key, value) for key, value in _summary(report)]
    props.append(_prop(lib, "size", sum(r.size for r in files)))
    kinds = tuple(sorted({r.kind.value for r in files}))
    if kinds:
        props.append(_prop(lib, "format", kinds))
    hashes = [_sha256(lib, files[0].sha256)] if len(files) == 1 else None
    nested = (
        [_file_component(lib, r, {}, ref_prefix=f"data-file:{index}:") for r in files]
        if len(files) > 1
        else None
    )
    component = lib.component.Component(
        type=lib.component.ComponentType.DATA,
        name=dataset.name,
        bom_ref=ref,
        hashes=hashes,
        properties=props,
        components=nested,
    )
    data = {
        "type": "dataset",
        "name": dataset.name,
        "contents": {
            "properties": [
                {"name": f"{PROP}:{key}", "value": value} for key, value in _summary(report)
            ]
        },
    }
    return component, data


def _card_dataset(lib: Any, name: str) -> tuple[Any, dict[str, Any]]:
    """A dataset the card names: a data component with just its name (no bytes were seen)."""
    component = lib.component.Component(
        type=lib.component.ComponentType.DATA,
        name=name,
        bom_ref=f"data:card:{name}",
        properties=[_prop(lib, "source", "model card")],
    )
    return component, {"type": "dataset", "name": name}


def _model_card(facts: _Facts, dataset_refs: Sequence[str]) -> dict[str, Any]:
    """``modelCard`` from card and config facts only; unknown fields are left out."""
    params: dict[str, Any] = {}
    task = facts.text("card.pipeline_tag")
    if task:
        params["task"] = task
    family = facts.text("config.model_type") or facts.text("model.architecture")
    if family:
        params["architectureFamily"] = family
    architectures = facts.strings("config.architectures")
    if architectures:
        params["modelArchitecture"] = ", ".join(architectures)
    if dataset_refs:
        params["datasets"] = [{"ref": ref} for ref in dataset_refs]
    if task in TASK_IO:
        source, target = TASK_IO[task]
        params["inputs"] = [{"format": source}]
        params["outputs"] = [{"format": target}]
    card: dict[str, Any] = {}
    if params:
        card["modelParameters"] = params
    metrics = []
    count = facts.first("card.metrics.count")
    for i in range(count if isinstance(count, int) else 0):
        kind = facts.first(f"card.metrics.{i}.type")
        value = facts.first(f"card.metrics.{i}.value")
        if value is None:
            continue
        metric: dict[str, Any] = {"value": str(value)}
        if kind is not None:
            metric["type"] = str(kind)
        dataset = facts.first(f"card.metrics.{i}.dataset")
        if dataset is not None:
            metric["slice"] = str(dataset)
        metrics.append(metric)
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    props = []
    for key in (
        "library_name",
        "license_name",
        "license_link",
        "base_model_relation",
        "language",
        "tags",
        "model_index.name",
    ):
        values = facts.strings(f"card.{key}")
        if values:
            props.append({"name": f"{PROP}:card.{key}", "value": ",".join(values)})
    for key in (
        "problem_type",
        "num_labels",
        "id2label.count",
        "torch_dtype",
        "transformers_version",
        "auto_map.files",
    ):
        value = facts.first(f"config.{key}")
        if value is not None:
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            props.append({"name": f"{PROP}:config.{key}", "value": text})
    if props:
        card["properties"] = props
    return card


def _target_name(report: Report) -> str:
    """The scanned directory's (or file's) own name, without the path that led to it."""
    from pathlib import PurePath

    target = report.target[0] if report.target else ""
    return PurePath(target).name or target or "model"


TOP_LEVEL = (
    "$schema",
    "bomFormat",
    "specVersion",
    "serialNumber",
    "version",
    "metadata",
    "components",
    "dependencies",
    "vulnerabilities",
)


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys in the spec's reading order (the library emits them alphabetically)."""
    out = {key: doc[key] for key in TOP_LEVEL if key in doc}
    out.update((key, value) for key, value in doc.items() if key not in out)
    return out


def _timestamp(timestamp: dt.datetime | None) -> dt.datetime:
    if timestamp is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=dt.UTC)
    return timestamp


def build(
    report: Report,
    *,
    name: str | None = None,
    hub: HubSource | None = None,
    datasets: Sequence[DatasetInput] = (),
    environment: Sequence[Library] = (),
    spec: str = DEFAULT_SPEC,
    serial: uuid.UUID | None = None,
    timestamp: dt.datetime | None = None,
    before_validation: Callable[[dict[str, Any]], None] | None = None,
) -> str:
    """The BOM of a judged ``report`` as JSON text, validated strictly for ``spec``.

    ``name`` names the model when it did not come from the Hub (default: the scan target).
    ``before_validation`` is a seam for tests: it may change the document before validation.
    Raises ``BomError`` when the document does not validate (with the validator's reason).
    """
    if spec not in SPECS:
        raise BomError(f"unsupported CycloneDX spec {spec!r} (choose from {', '.join(SPECS)})")
    if report.verdict is None:
        raise BomError("the report has no verdict: judge it with the policy first")
    lib = _lib()
    facts = _Facts.of(report.facts).scoped()
    hub = hub or HubSource.from_report(report)
    files = sorted((r for r in report.files if not r.member), key=lambda r: r.path)

    # -- the model ---------------------------------------------------------------------------
    file_components = [_file_component(lib, r, facts.by_path.get(r.path, {})) for r in files]
    model_name = name or _target_name(report)
    group = None
    purl = None
    refs: list[Any] = []
    supplier = None
    version = hub.commit if hub else None
    if hub is not None:
        org, _, short = hub.repo.rpartition("/")
        group, model_name = org or None, short
        if hub.repo_type == "model":
            purl = _purl_hf(lib, hub.repo, hub.commit)
        base = f"{hub.endpoint}/{hub.repo if hub.repo_type == 'model' else 'datasets/' + hub.repo}"
        refs.append(_url(lib, "website", base))
        if hub.commit:
            refs.append(_url(lib, "vcs", f"{base}/tree/{hub.commit}", "the repository at commit"))
            card_path = facts.card_path()
            if card_path:
                refs.append(_url(lib, "model-card", f"{base}/blob/{hub.commit}/{card_path}"))
        if org:
            supplier = lib.contact.OrganizationalEntity(
                name=org, urls=[lib.model.XsUri(f"{hub.endpoint}/{org}")]
            )
    refs.extend(
        _url(lib, "digital-signature", record.path, "signature bundle shipped with it")
        for record in files
        if record.path.rsplit("/", 1)[-1] in SIGNATURE_NAMES
    )
    licenses = list(facts.strings("card.license") or facts.strings("card.licenses"))
    if licenses == ["other"] and facts.text("card.license_name"):
        licenses = [facts.text("card.license_name") or "other"]  # the Hub's custom licence
    if not licenses:
        licenses = list(facts.strings("license"))
    authors = None
    author = facts.text("gguf.general.author")
    if author:
        authors = [lib.contact.OrganizationalContact(name=author)]
    ancestors = [
        lib.component.Component(
            type=lib.component.ComponentType.MACHINE_LEARNING_MODEL,
            name=base_name.rpartition("/")[2] or base_name,
            group=base_name.rpartition("/")[0] or None,
            bom_ref=f"base-model:{base_name}",
            purl=_purl_hf(lib, base_name, None) if HUB_REPO.match(base_name) else None,
            properties=[_prop(lib, "source", "model card base_model")],
        )
        for base_name in sorted(
            set(facts.strings("card.base_model") or facts.strings("base_model"))
        )
    ]
    model_props = [_prop(lib, key, value) for key, value in _summary(report)]
    if report.settings_fingerprint:
        model_props.append(_prop(lib, "settings_fingerprint", report.settings_fingerprint))
    if hub is not None and hub.revision:
        model_props.append(_prop(lib, "revision", hub.revision))
    states = Counter(v for p, v in facts.lists.get("provenance.state", []) if isinstance(v, str))
    params = [v for _p, v in facts.lists.get("parameter.count", []) if isinstance(v, int)]
    if params:
        model_props.append(_prop(lib, "parameter.count", sum(params)))
    dtypes = {
        d for _p, v in facts.lists.get("tensor.dtypes", []) if isinstance(v, tuple) for d in v
    }
    if dtypes:
        model_props.append(_prop(lib, "tensor.dtypes", tuple(sorted(dtypes))))
    for state, count in sorted(states.items()):
        model_props.append(_prop(lib, f"provenance.{state}", count))
    for key in ("PRV115", "PRV116", "PRV117"):
        if any(f.rule == key for f in report.findings):
            label = {"PRV115": "verified", "PRV116": "invalid", "PRV117": "missing"}[key]
            model_props.append(_prop(lib, "signature", label))
    single = files[0] if len(files) == 1 else None
    model = lib.component.Component(
        type=lib.component.ComponentType.MACHINE_LEARNING_MODEL,
        name=model_name,
        group=group,
        version=version,
        bom_ref="model",
        purl=purl,
        supplier=supplier,
        hashes=[_sha256(lib, single.sha256)] if single is not None else None,
        licenses=_licenses(lib, licenses) if licenses else None,
        authors=authors,
        external_references=refs,
        pedigree=lib.component.Pedigree(ancestors=ancestors) if ancestors else None,
        properties=model_props,
        components=file_components,
    )

    # -- datasets, libraries ------------------------------------------------------------------
    components: list[Any] = []
    data_blocks: dict[str, dict[str, Any]] = {}
    dataset_refs: list[str] = []
    for index, dataset in enumerate(datasets):
        component, data = _dataset_component(lib, index, dataset)
        if component.bom_ref.value in data_blocks:
            raise BomError(f"dataset {dataset.name!r} given twice")
        components.append(component)
        data_blocks[component.bom_ref.value] = data
        dataset_refs.append(component.bom_ref.value)
    for card_dataset in sorted(set(facts.strings("card.datasets"))):
        component, data = _card_dataset(lib, card_dataset)
        components.append(component)
        data_blocks[component.bom_ref.value] = data
        dataset_refs.append(component.bom_ref.value)
    libs = _requirement_libraries(lib, facts)
    _environment_libraries(lib, environment, libs)
    components.extend(libs.components[k] for k in sorted(libs.components))

    # -- vulnerabilities ----------------------------------------------------------------------
    ours = lib.vulnerability.VulnerabilitySource(name="supplychain")
    file_refs = {r.path for r in files}
    vulnerabilities = []
    for finding in sorted(report.findings, key=Finding.sort_key)[:MAX_VULNERABILITIES]:
        path = finding.location.path
        target = _file_ref(path) if path in file_refs else "model"
        vulnerabilities.append(_finding_vulnerability(lib, finding, report, target, ours))
    vulnerabilities.extend(_dependency_vulnerabilities(lib, facts, libs))
    if len(report.findings) > MAX_VULNERABILITIES:
        model.properties.add(
            _prop(lib, "findings.omitted", len(report.findings) - MAX_VULNERABILITIES)
        )

    # -- document -----------------------------------------------------------------------------
    from supplychain.core import __version__

    tool = lib.component.Component(
        type=lib.component.ComponentType.APPLICATION,
        name="supplychain",
        version=__version__,
        bom_ref="tool:supplychain",
    )
    metadata = lib.bom.BomMetaData(component=model, timestamp=_timestamp(timestamp))
    metadata.tools.components.add(tool)
    bom = lib.bom.Bom(
        components=components,
        serial_number=serial or uuid.uuid4(),
        metadata=metadata,
        vulnerabilities=vulnerabilities,
    )
    bom.register_dependency(model, components)
    for component in components:
        bom.register_dependency(component, [])
    doc = _serialize(bom, spec)
    card = _model_card(facts, dataset_refs)
    if card:
        doc["metadata"]["component"]["modelCard"] = {"bom-ref": "model-card", **card}
    for component_doc in doc.get("components", []):
        block = data_blocks.get(component_doc.get("bom-ref", ""))
        if block is not None:
            component_doc["data"] = [block]
    if before_validation is not None:
        before_validation(doc)
    text = json.dumps(_ordered(doc), indent=2, ensure_ascii=False) + "\n"
    validate(text, spec)
    return text


def _serialize(bom: Any, spec: str) -> dict[str, Any]:
    """The library's JSON for ``spec`` as a dict (the parts it lacks are added by the caller)."""
    import warnings

    from cyclonedx.output.json import JsonV1Dot6, JsonV1Dot7

    writer = JsonV1Dot7 if spec == "1.7" else JsonV1Dot6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no dependency graph" style advice, not errors
        try:
            text = writer(bom).output_as_string()
        except Exception as exc:  # the library's own consistency checks
            raise BomError(f"cyclonedx-python-lib refused the BOM: {exc}") from None
    doc: dict[str, Any] = json.loads(text)
    return doc


def _canonical(value: object) -> object:
    """A value as JSON Schema compares it: integral floats are ints, booleans stay booleans."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def unique_items(validator: Any, unique: object, instance: object, schema: object) -> Any:
    """``uniqueItems`` in linear time (jsonschema compares unhashable items pairwise: quadratic,
    minutes for a BOM of ten thousand files). Items are equal iff their canonical JSON is."""
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    items: list[object] = instance  # type: ignore[assignment]  # an array, checked above
    for item in items:
        key = json.dumps(_canonical(item), sort_keys=True, separators=(",", ":"))
        if key in seen:
            from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

            yield ValidationError(f"{item!r:.200} has non-unique elements")
            return
        seen.add(key)


_VALIDATORS: dict[str, Any] = {}


def _strict_validator(spec: str) -> Any:
    """The library's strict validator for ``spec`` (its schema files, registry and format
    checker), with ``uniqueItems`` checked in linear time; the library's own object if its
    internals ever change shape."""
    if spec in _VALIDATORS:
        return _VALIDATORS[spec]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    version = SchemaVersion.V1_7 if spec == "1.7" else SchemaVersion.V1_6
    strict = JsonStrictValidator(version)
    try:
        from jsonschema import validators  # type: ignore[import-untyped]

        base = strict._validator  # the library's Draft 7 validator, schema and registry loaded
        fast_class = validators.extend(type(base), {"uniqueItems": unique_items})
        fast = fast_class(base.schema, registry=base._registry, format_checker=base.format_checker)
    except (AttributeError, ImportError, TypeError):
        fast = None
    _VALIDATORS[spec] = (strict, fast)
    return _VALIDATORS[spec]


def validate(text: str, spec: str = DEFAULT_SPEC) -> None:
    """Validate a whole BOM with the library's strict JSON schema; ``BomError`` says why."""
    try:
        strict, fast = _strict_validator(spec)
        if fast is None:
            error = strict.validate_str(text)
        else:
            error = next(fast.iter_errors(json.loads(text)), None)
    except Exception as exc:  # missing validator extras, broken schema files
        raise BomError(f"cannot validate the BOM against CycloneDX {spec}: {exc}") from None
    if error is not None:
        data = getattr(error, "data", error)
        where = "/".join(str(p) for p in getattr(data, "absolute_path", ()))
        message = getattr(data, "message", str(data))
        raise BomError(
            f"the BOM does not validate against CycloneDX {spec}"
            f"{' at ' + where if where else ''}: {str(message)[:300]}"
        )


__all__ = [
    "DEFAULT_SPEC",
    "SPECS",
    "BomError",
    "DatasetInput",
    "HubSource",
    "Library",
    "build",
    "validate",
]
