"""Harbor Pluggable Scanner Adapter API v1.2: metadata, scan requests and their polled reports.

Harbor registers this server as a scanner (auth "Bearer", the server's token; ``app.py`` puts
the router behind the same token dependency as every other route). A scan request names the
registry, the robot-account ``Authorization`` Harbor minted, and the artifact by digest; a job
in the server's bounded ``JobQueue`` pulls it with ``supplychain.oci`` (digests verified, caps,
no credentials to other hosts), scans the layers with the server's policy and cache, records
the verdict in the ``VerdictStore`` under the artifact digest (the admission webhook reads it),
and keeps the Harbor report (and a CycloneDX ML-BOM for the SBOM capability) as the job's
result.

Fail closed (goharbor/harbor#16218: Harbor lets unscannable artifacts through): an artifact that
cannot be pulled, laid out or analysed is never an empty, clean report. It is a 200 report with
a ``Critical`` item saying why, and a failing verdict. Artifacts that are not ModelPack/KitOps
models are scanned all the same (their layers as files or archives): Harbor routes by manifest
media type only (pluggable-scanner-spec#2), and a model pushed as a generic artifact must not
slip through; ``vendor_attributes.artifact_type`` says what it was.

Registry options come from the environment: ``SUPPLYCHAIN_OCI_INSECURE_HOSTS`` (comma-separated
hosts, or host:port, allowed over plain http besides loopback) and ``SUPPLYCHAIN_OCI_CA_BUNDLE``
(a PEM file of CAs for the registry's TLS).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from supplychain.core import __version__
from supplychain.core.model import Finding, Report, Severity
from supplychain.oci import Credentials, OciError, OciScan, check_digest, check_repository
from supplychain.server.jobs import JobStatus, QueueFull, ShuttingDown, UnknownJob
from supplychain.server.scanning import ModelVerdict, judge
from supplychain.server.state import ServerState, get_state
from supplychain.server.verdicts import VerdictStoreError, valid_digest

METADATA_MIME = "application/vnd.scanner.adapter.metadata+json; version=1.1"
SCAN_RESPONSE_MIME = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
ERROR_MIME = "application/vnd.scanner.adapter.error+json; version=1.0"
VULN_REPORT_MIME = "application/vnd.security.vulnerability.report; version=1.1"
HARBOR_REPORT_MIME = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
RAW_REPORT_MIME = "application/vnd.scanner.adapter.vuln.report.raw"
PRODUCES = (VULN_REPORT_MIME, HARBOR_REPORT_MIME, RAW_REPORT_MIME)
SBOM_REPORT_MIME = "application/vnd.security.sbom.report+json; version=1.0"
CYCLONEDX = "application/vnd.cyclonedx+json"
CONSUMES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    # What the manifest says it carries (Harbor routes by the manifest type above; listed so
    # the registration documents the model artifacts this scanner understands).
    "application/vnd.cncf.model.manifest.v1+json",
    "application/vnd.kitops.modelkit.config.v1+json",
)
UNSCANNABLE = "SUPPLYCHAIN-UNSCANNABLE"
"""The vulnerability id of "this artifact could not be analysed" (not a scanner rule)."""
KEY_PREFIX = "harbor:"
MAX_ITEMS = 1_000
"""Vulnerability items per report (worst first); the rest are counted in one more item."""
MAX_FIELD = 8_192
MAX_TEXT = 2_000
"""Longest description or remediation in an item (evidence is already bounded)."""
MAX_RAW = 8 * 2**20
"""Largest raw (our JSON) report kept for a job; past it, findings are cut to ``MAX_ITEMS``
and the per-file lists dropped (with their counts). Both reports are kept gzip-compressed:
finished jobs stay in the queue's memory until it forgets them."""
HARBOR_SEVERITY = {
    Severity.INFO: "Negligible",
    Severity.LOW: "Low",
    Severity.MEDIUM: "Medium",
    Severity.HIGH: "High",
    Severity.CRITICAL: "Critical",
}
_ORDER = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")

router = APIRouter(prefix="/api/v1", tags=["harbor"])


@dataclass(frozen=True)
class ScanRequest:
    """The fields of a Harbor ``ScanRequest`` this adapter uses (validated)."""

    registry_url: str
    authorization: str | None = field(repr=False)
    repository: str
    digest: str
    tag: str | None
    mime_type: str | None

    @property
    def key(self) -> str:
        """Queue dedup key: Harbor re-asking for the same artifact joins the running job."""
        return f"{KEY_PREFIX}{self.repository}@{self.digest}|{self.registry_url}"

    def artifact(self) -> dict[str, str]:
        out = {"repository": self.repository, "digest": self.digest}
        if self.tag:
            out["tag"] = self.tag
        if self.mime_type:
            out["mime_type"] = self.mime_type
        return out


@dataclass(frozen=True)
class HarborResult:
    """A finished job: the Harbor report, our own JSON report (raw MIME) and the SBOM report
    (or why there is none), each kept as gzipped JSON."""

    report_gz: bytes
    raw_gz: bytes
    passed: bool
    sbom_gz: bytes | None = None
    sbom_error: str = "no SBOM for an artifact that could not be scanned"

    @classmethod
    def of(
        cls,
        report: dict[str, Any],
        raw: dict[str, Any],
        passed: bool,
        sbom: dict[str, Any] | None = None,
        sbom_error: str | None = None,
    ) -> HarborResult:
        packed = _pack(sbom) if sbom is not None else None
        if sbom_error is None:
            return cls(_pack(report), _pack(raw), passed, packed)
        return cls(_pack(report), _pack(raw), passed, packed, sbom_error)

    @property
    def sbom(self) -> bytes | None:
        """The ``HarborSbomReport``, JSON bytes (``None``: see ``sbom_error``)."""
        return gzip.decompress(self.sbom_gz) if self.sbom_gz is not None else None

    @property
    def report(self) -> bytes:
        """The Harbor vulnerability report, JSON bytes."""
        return gzip.decompress(self.report_gz)

    @property
    def raw(self) -> bytes:
        """Our own JSON report, bytes."""
        return gzip.decompress(self.raw_gz)


def _pack(doc: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6, mtime=0)


def raw_report(report: Report) -> dict[str, Any]:
    """Our JSON report for the raw MIME type, cut to ``MAX_RAW`` bytes' worth (counts kept)."""
    from supplychain.formats.json import report_to_dict

    doc = report_to_dict(report)
    if len(json.dumps(doc, separators=(",", ":"))) <= MAX_RAW:
        return doc
    cut = {k: len(doc.get(k) or ()) for k in ("files", "findings", "outcomes")}
    doc["findings"] = doc["findings"][:MAX_ITEMS]
    doc["files"], doc["outcomes"] = [], []
    doc["truncated"] = {"reason": f"over {MAX_RAW} bytes", "counts": cut}
    return doc


class InvalidRequest(Exception):
    """A field is missing or wrong (422); ``status`` says otherwise (400, 501)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The spec's ``ErrorResponse``: ``{"error": {"message": ...}}``."""
    return JSONResponse(
        {"error": {"message": message}}, status_code=status, media_type=ERROR_MIME, headers=headers
    )


def _text(value: object, what: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_FIELD:
        raise InvalidRequest(f"{what} must be a string of at most {MAX_FIELD} characters")
    return value


def parse_scan_request(body: bytes) -> ScanRequest:
    """Validate a ``ScanRequest`` body: 400 bad JSON, 422 a bad field, 501 a capability we lack."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise InvalidRequest("body is not a JSON object", 400)
    registry, artifact = data.get("registry"), data.get("artifact")
    if not isinstance(registry, dict) or not isinstance(artifact, dict):
        raise InvalidRequest("registry and artifact must be objects")
    url = _text(registry.get("url"), "registry.url") or ""
    if not url.startswith(("https://", "http://")):
        raise InvalidRequest("registry.url must be an http(s) URL")
    authorization = _text(registry.get("authorization"), "registry.authorization", required=False)
    try:
        repository = check_repository(str(_text(artifact.get("repository"), "artifact.repository")))
        digest = check_digest(str(_text(artifact.get("digest"), "artifact.digest")))
        if authorization:
            Credentials.from_authorization(authorization)
    except OciError as exc:
        raise InvalidRequest(str(exc)) from None
    tag = _text(artifact.get("tag"), "artifact.tag", required=False)
    mime_type = _text(artifact.get("mime_type"), "artifact.mime_type", required=False)
    capabilities = data.get("enabled_capabilities")
    if capabilities is not None:
        if not isinstance(capabilities, list) or not all(isinstance(c, dict) for c in capabilities):
            raise InvalidRequest("enabled_capabilities must be a list of objects")
        for cap in capabilities:
            kind = cap.get("type", "vulnerability")
            if kind not in ("vulnerability", "sbom"):
                raise InvalidRequest(f"unsupported capability {str(kind)[:40]!r}", 501)
            params = cap.get("parameters") or {}
            types = params.get("sbom_media_types") if isinstance(params, dict) else None
            if kind == "sbom" and isinstance(types, list) and types and CYCLONEDX not in types:
                raise InvalidRequest(f"SBOMs are produced as {CYCLONEDX} only", 501)
    return ScanRequest(url, authorization, repository, digest, tag, mime_type)


# -- the report ------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _scanner() -> dict[str, str]:
    return {"name": "supplychain", "vendor": "supplychain", "version": __version__}


def _unscannable(request: ScanRequest, why: str) -> dict[str, Any]:
    return {
        "id": UNSCANNABLE,
        "package": f"{request.repository}@{request.digest}",
        "version": request.digest,
        "fix_version": "",
        "severity": "Critical",
        "description": (
            f"The artifact could not be analysed, so it is not known to be safe: {why}"
        )[:MAX_FIELD],
        "links": [],
        "vendor_attributes": {"unscannable": True, "reason": why[:MAX_FIELD]},
    }


def _item(finding: Finding, report: Report, layers: dict[str, str]) -> dict[str, Any]:
    loc = finding.location
    rule = report.rule(finding.rule)
    package = "!".join((loc.path, *loc.member))
    title = rule.title if rule else finding.rule
    description = f"{title}: {finding.message}"
    if finding.evidence:
        description += f" (evidence: {finding.evidence})"
    attributes: dict[str, Any] = {
        "rule": finding.rule,
        "confidence": finding.confidence.name.lower(),
        "fingerprint": finding.fingerprint,
    }
    if loc.offset is not None:
        attributes["offset"] = loc.offset
    if rule is not None:
        attributes["remediation"] = rule.remediation[:MAX_TEXT]
        if rule.owasp_llm:
            attributes["owasp_llm"] = list(rule.owasp_llm)
        if rule.atlas:
            attributes["mitre_atlas"] = list(rule.atlas)
    item: dict[str, Any] = {
        "id": finding.rule,
        "package": package[:MAX_FIELD],
        "version": layers.get(loc.path, ""),
        "fix_version": "",
        "severity": HARBOR_SEVERITY[finding.severity],
        "description": description[:MAX_TEXT],
        "links": [r for r in (rule.references if rule else ()) if r.startswith("https://")],
        "vendor_attributes": attributes,
    }
    if rule is not None and rule.cwe is not None:
        item["cwe_ids"] = [f"CWE-{rule.cwe}"]
    return item


def _worst(items: list[dict[str, Any]]) -> str:
    """The report's severity: the highest item's (``Unknown`` with none, as Trivy's adapter)."""
    return max((i["severity"] for i in items), key=_ORDER.index, default="Unknown")


def harbor_report(
    request: ScanRequest, scan: OciScan | None, verdict: ModelVerdict, error: str | None = None
) -> dict[str, Any]:
    """Our findings as a ``HarborVulnerabilityReport``; never clean when the artifact failed.

    Every unsuppressed finding is one item (rule id, the file and member chain as ``package``,
    the layer digest as ``version``). A verdict that failed for a reason no finding carries
    (the pull failed, a scanner failed, nothing could be analysed) adds a ``Critical`` item.
    """
    items: list[dict[str, Any]] = []
    attributes: dict[str, Any] = {"verdict": "pass" if verdict.passed else "fail"}
    if scan is not None:
        report = scan.report
        layers = {f.name: f.layer.digest for f in scan.files}
        findings = sorted(
            (f for f in report.findings if f.suppressed is None), key=lambda f: -f.severity
        )
        items = [_item(f, report, layers) for f in findings[:MAX_ITEMS]]
        if len(findings) > MAX_ITEMS:
            rest = findings[MAX_ITEMS:]
            items.append(
                {
                    "id": "SUPPLYCHAIN-MORE",
                    "package": f"{request.repository}@{request.digest}",
                    "version": request.digest,
                    "fix_version": "",
                    "severity": HARBOR_SEVERITY[max(f.severity for f in rest)],
                    "description": f"{len(rest)} more findings (see the raw report)",
                    "links": [],
                }
            )
        failed = [f"{r.path}: {r.scanner}: {r.reason}" for r in report.failed]
        attributes.update(
            artifact_type=scan.artifact.kind,
            model_artifact=scan.artifact.is_model,
            manifest_digest=scan.artifact.manifest_digest,
            files=len(scan.files),
            settings_fingerprint=report.settings_fingerprint,
        )
        worst_finding = max((f.severity for f in findings), default=None)
        carried = worst_finding is not None and worst_finding >= Severity.HIGH
        if not verdict.passed and (failed or not carried):
            why = "; ".join(failed[:5]) or verdict.reason
            items.insert(0, _unscannable(request, why))
    else:
        items = [_unscannable(request, error or verdict.reason)]
    attributes["reason"] = verdict.reason[:MAX_FIELD]
    return {
        "generated_at": _now(),
        "artifact": request.artifact(),
        "scanner": _scanner(),
        "severity": _worst(items),
        "vulnerabilities": items,
        "vendor_attributes": attributes,
    }


# -- the job ---------------------------------------------------------------------------------


def _insecure_hosts() -> frozenset[str]:
    raw = os.environ.get("SUPPLYCHAIN_OCI_INSECURE_HOSTS", "")
    return frozenset(h.strip() for h in raw.split(",") if h.strip())


def _tls() -> bool | ssl.SSLContext:
    bundle = os.environ.get("SUPPLYCHAIN_OCI_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle) if bundle else True


def _record(state: ServerState, digests: set[str], verdict: ModelVerdict) -> None:
    for digest in sorted(d for d in digests if valid_digest(d)):
        try:
            state.verdicts.record(digest, verdict.passed, verdict.reason, verdict.rules)
        except VerdictStoreError:
            # The admission webhook then finds no verdict and denies: still closed.
            state.metrics.inc("supplychain_harbor_record_errors_total")


def run_harbor_scan(state: ServerState, request: ScanRequest) -> HarborResult:
    """The job: pull, scan, judge, record; any failure is a failing, Critical report."""
    from supplychain.oci import scan_artifact

    scan: OciScan | None = None
    error: str | None = None
    try:
        scan = scan_artifact(
            request.registry_url,
            request.repository,
            request.digest,
            Credentials.from_authorization(request.authorization),
            insecure_hosts=_insecure_hosts(),
            verify=_tls(),
            workdir=state.config.upload_dir,
            scan_fn=state.scan,
        )
        verdict = judge(scan.report)
    except OciError as exc:
        error = f"cannot pull the artifact: {exc}"
    except Exception as exc:  # a failing scan is a failing verdict, never a pass
        error = f"the scan failed: {type(exc).__name__}: {exc}"
    if scan is None:
        verdict = ModelVerdict(False, f"blocked: unscannable ({error})")
    digests = {request.digest} | ({scan.artifact.manifest_digest} if scan else set())
    _record(state, digests, verdict)
    state.metrics.inc(
        "supplychain_harbor_scans_total",
        outcome="error" if scan is None else "pass" if verdict.passed else "fail",
    )
    raw = raw_report(scan.report) if scan else {"error": error, "verdict": "fail"}
    sbom, sbom_error = sbom_report(request, scan, verdict) if scan else (None, None)
    report = harbor_report(request, scan, verdict, error)
    return HarborResult.of(report, raw, verdict.passed, sbom, sbom_error)


def sbom_report(
    request: ScanRequest, scan: OciScan, verdict: ModelVerdict
) -> tuple[dict[str, Any] | None, str | None]:
    """The ``HarborSbomReport`` (a CycloneDX ML-BOM of the scanned layers) or why there is none.

    Built for every scanned artifact (a few ms once the schema is loaded), so a later SBOM
    request for the same scan needs no second pull.
    """
    try:
        import sbom

        bom = json.loads(sbom.build(scan.report, name=f"{request.repository}@{request.digest}"))
    except Exception as exc:  # an SBOM that cannot be built is reported, never invented
        return None, f"the SBOM could not be built: {type(exc).__name__}: {exc}"[:MAX_FIELD]
    return {
        "generated_at": _now(),
        "artifact": request.artifact(),
        "scanner": _scanner(),
        "vendor_attributes": {"verdict": "pass" if verdict.passed else "fail"},
        "media_type": CYCLONEDX,
        "sbom": bom,
    }, None


# -- routes ----------------------------------------------------------------------------------


def metadata() -> dict[str, Any]:
    """The ``ScannerAdapterMetadata`` document."""
    return {
        "scanner": _scanner(),
        "capabilities": [
            {
                "type": "vulnerability",
                "consumes_mime_types": list(CONSUMES),
                "produces_mime_types": list(PRODUCES),
            },
            {
                "type": "sbom",
                "consumes_mime_types": list(CONSUMES),
                "produces_mime_types": [SBOM_REPORT_MIME],
                "additional_attributes": {"sbom_media_types": [CYCLONEDX]},
            },
        ],
        "properties": {
            "harbor.scanner-adapter/scanner-type": "ml-model-supply-chain",
            "supplychain/rules": f"built into supplychain {__version__} (no database to update)",
            "supplychain/artifacts": "CNCF ModelPack, KitOps ModelKit, any OCI artifact's layers",
            "supplychain/unscannable": f"reported as a Critical {UNSCANNABLE} item, never clean",
        },
    }


@router.get("/metadata", responses={200: {"content": {METADATA_MIME: {}}}})
async def get_metadata() -> JSONResponse:
    """Scanner name, vendor, version and capabilities (what Harbor shows when registering)."""
    return JSONResponse(metadata(), media_type=METADATA_MIME)


@router.post(
    "/scan",
    status_code=202,
    responses={
        202: {"content": {SCAN_RESPONSE_MIME: {}}},
        400: {"description": "invalid JSON"},
        422: {"description": "invalid field"},
        501: {"description": "capability not supported"},
        503: {"description": "queue full (Retry-After)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/vnd.scanner.adapter.scan.request+json; version=1.1": {
                    "schema": {"type": "object", "required": ["registry", "artifact"]}
                }
            },
        }
    },
)
async def accept_scan(request: Request) -> Response:
    """Queue a scan of ``artifact`` from ``registry``: 202 with the id to poll."""
    state = get_state(request)
    try:
        scan_request = parse_scan_request(await request.body())
    except InvalidRequest as exc:
        return _error(exc.status, str(exc))
    try:
        job_id = state.queue.submit(run_harbor_scan, state, scan_request, key=scan_request.key)
    except (QueueFull, ShuttingDown) as exc:
        state.metrics.inc("supplychain_rejected_total")
        why = "the scan queue is full" if isinstance(exc, QueueFull) else "shutting down"
        return _error(503, f"busy: {why}", {"Retry-After": str(state.config.retry_after)})
    return JSONResponse({"id": job_id}, status_code=202, media_type=SCAN_RESPONSE_MIME)


def negotiate(accept: str) -> str | None:
    """The report MIME type ``accept`` asks for (the 1.1 vulnerability report by default)."""
    wanted = [a.strip() for a in accept.split(",") if a.strip()] or ["*/*"]
    by_norm = {p.replace(" ", "").lower(): p for p in (*PRODUCES, SBOM_REPORT_MIME)}
    for entry in wanted:
        norm = ";".join(
            x.strip() for x in entry.replace(" ", "").lower().split(";") if not x.startswith("q=")
        )
        if norm in by_norm:
            return by_norm[norm]
        if norm in ("*/*", "application/*", "application/json"):
            return VULN_REPORT_MIME
    return None


@router.get(
    "/scan/{scan_request_id}/report",
    responses={
        200: {"content": {m: {} for m in (*PRODUCES, SBOM_REPORT_MIME)}},
        400: {"description": "SBOM asked for without ?sbom_media_type=" + CYCLONEDX},
        302: {"description": "not ready yet (Refresh-After)"},
        404: {"description": "unknown scan id"},
        501: {"description": "report MIME type not supported"},
    },
)
async def get_report(scan_request_id: str, request: Request) -> Response:
    """302 with ``Refresh-After`` while the scan runs, then the report in the accepted MIME."""
    state = get_state(request)
    mime = negotiate(request.headers.get("accept", ""))
    if mime is None:
        produces = ", ".join((*PRODUCES, SBOM_REPORT_MIME))
        return _error(501, f"unsupported report MIME type; produces: {produces}")
    if mime == SBOM_REPORT_MIME and request.query_params.get("sbom_media_type") != CYCLONEDX:
        return _error(400, f"an SBOM report needs ?sbom_media_type={CYCLONEDX}")
    try:
        job = state.queue.job(scan_request_id)
    except UnknownJob:
        return _error(404, "unknown scan request id")
    if not (job.key or "").startswith(KEY_PREFIX):
        return _error(404, "unknown scan request id")
    if not job.status.finished:
        return Response(status_code=302, headers={"Refresh-After": str(state.config.retry_after)})
    result: HarborResult
    if job.status is JobStatus.FAILED:  # run_harbor_scan catches; a crash here is still closed
        scan_request = _request_of(job.key or "")
        why = f"the scan job failed: {job.error}"
        verdict = ModelVerdict(False, f"blocked: unscannable ({why})")
        result = HarborResult.of(
            harbor_report(scan_request, None, verdict, why), {"error": why}, False
        )
    else:
        result = state.queue.result(scan_request_id)
    if mime == SBOM_REPORT_MIME:
        sbom = result.sbom
        if sbom is None:  # 500 ends Harbor's polling with the reason
            return _error(500, result.sbom_error)
        return Response(sbom, media_type=mime)
    body = result.raw if mime == RAW_REPORT_MIME else result.report
    return Response(body, media_type=mime)


def _request_of(key: str) -> ScanRequest:
    """The artifact a failed job was about, from its queue key (``ScanRequest.key``)."""
    artifact, _, url = key.removeprefix(KEY_PREFIX).partition("|")
    repository, _, digest = artifact.partition("@")
    return ScanRequest(url, None, repository, digest, None, None)


__all__ = [
    "HarborResult",
    "ScanRequest",
    "harbor_report",
    "metadata",
    "negotiate",
    "parse_scan_request",
    "raw_report",
    "router",
    "run_harbor_scan",
    "sbom_report",
]
