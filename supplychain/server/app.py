"""The FastAPI application: ``create_app(config) -> FastAPI``.

Routes: ``GET /healthz`` (open), and behind the bearer token ``GET /metrics``, ``POST /v1/scan``
(JSON path under ``--root``, or a multipart upload), ``POST /v1/admission`` (Kubernetes
ValidatingAdmissionWebhook) and, when ``supplychain.server.harbor`` exists, its router (Harbor
Pluggable Scanner Adapter, ``/api/v1/...``; it reaches shared state with ``get_state``).

Every scan runs in the bounded ``JobQueue``: a full queue answers 503 with ``Retry-After``
(nothing is admitted, nothing unbounded piles up). Request bodies are capped before they are
read (``Content-Length``) and while they stream. Logs are one JSON object per line, and never
carry a header value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from supplychain.core.errors import SupplyChainError
from supplychain.server import admission as adm
from supplychain.server.auth import require_token
from supplychain.server.config import ServerConfig
from supplychain.server.jobs import JobQueue, JobStatus, QueueFull, ShuttingDown, UnknownJob
from supplychain.server.memo import snapshot
from supplychain.server.metrics import Metrics
from supplychain.server.paths import PathMissing, PathRefused, resolve_under
from supplychain.server.scanning import ModelVerdict, judge, make_scan
from supplychain.server.state import ScanFn, ServerState, get_state
from supplychain.server.verdicts import VerdictStore, VerdictStoreError

log = logging.getLogger("supplychain.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_OVERHEAD = 64 * 1024
"""Multipart framing allowed on top of ``--max-upload``."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_ROUTES = ("/healthz", "/metrics", "/openapi.json", "/v1/scan", "/v1/admission", "/api/v1/")


# -- errors ---------------------------------------------------------------------------------------
def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _busy(state: ServerState, why: str) -> HTTPException:
    state.metrics.inc("supplychain_rejected_total")
    return HTTPException(
        503, f"busy: {why}", headers={"Retry-After": str(state.config.retry_after)}
    )


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit}-byte cap")


# -- middleware: body caps, latency, JSON access log -------------------------------------------
class GateMiddleware:
    """Caps bodies (declared and streamed), times requests and logs them as JSON."""

    def __init__(self, app: ASGIApp, config: ServerConfig, metrics: Metrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics

    def _limit(self, scope: Scope) -> int:
        if scope.get("path") == "/v1/scan":
            return self.config.max_upload + UPLOAD_OVERHEAD
        return self.config.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        limit = self._limit(scope)
        status = {"code": 500}
        route = _route_label(str(scope.get("path", "")))

        async def send_(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        declared = _content_length(scope)
        try:
            if declared is not None and declared > limit:
                resp = _error(413, f"request body over the {limit}-byte cap")
                resp.headers["Connection"] = "close"
                await resp(scope, receive, send_)
                return
            seen = 0
            body_done = False
            timeout = self.config.body_timeout

            async def receive_() -> Message:
                nonlocal seen, body_done
                if body_done:
                    return await receive()
                try:
                    message = await asyncio.wait_for(receive(), timeout)
                except TimeoutError:
                    # A client that stalls mid-body holds a connection and a buffer: cut it off.
                    raise HTTPException(408, f"no request body for {timeout:g} s") from None
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise BodyTooLarge(limit)
                    body_done = not message.get("more_body", False)
                return message

            await self.app(scope, receive_, send_)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.observe(route, seconds)
            self.metrics.inc("supplychain_requests_total", route=route, status=str(status["code"]))
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "path": route,
                        "status": status["code"],
                        "ms": round(seconds * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    }
                },
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _route_label(path: str) -> str:
    """A bounded label for metrics and logs (never the raw path of an unknown route)."""
    for known in _ROUTES:
        if path == known or (known.endswith("/") and path.startswith(known)):
            return known.rstrip("/") if known.endswith("/") else known
    return "other"


# -- request bodies -----------------------------------------------------------------------------
async def _json_body(request: Request, limit: int) -> Any:
    """The JSON body, read up to ``limit`` bytes (413 past it: never buffered whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "body is not valid JSON") from None


# -- scans through the queue -------------------------------------------------------------------
def _submit(state: ServerState, fn: Callable[..., Any], *args: Any, key: str | None) -> str:
    try:
        return state.queue.submit(fn, *args, key=key)
    except QueueFull:
        raise _busy(state, "the scan queue is full") from None
    except ShuttingDown:
        raise _busy(state, "the server is shutting down") from None


def _scan_and_clean(scan: ScanFn, path: Path, cleanup: Path) -> Any:
    """Scan an uploaded file, then delete its temporary directory whatever happened."""
    try:
        return scan(path)
    finally:
        shutil.rmtree(cleanup, ignore_errors=True)


async def _report_of(state: ServerState, job_id: str) -> Any:
    try:
        job = await state.queue.wait_async(job_id, None)
        if job.status is JobStatus.FAILED:
            state.queue.forget(job_id)
            raise HTTPException(500, f"scan failed: {job.error}")
        report = state.queue.result(job_id)
        state.queue.forget(job_id)  # a report can be large: never keep it once answered
        return report
    except UnknownJob:  # forgotten under extreme load: ask again, never a guess
        raise _busy(state, "the scan result expired") from None


async def _upload(request: Request, state: ServerState) -> tuple[Path, Path]:
    """Spool the multipart ``file`` part into a fresh temporary directory (capped)."""
    config = state.config
    form = await request.form(max_files=1, max_fields=4)
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise HTTPException(400, "multipart upload needs one 'file' part")
        name = _SAFE_NAME.sub("_", Path(part.filename or "upload.bin").name)[:200].lstrip(".")
        tmp = Path(tempfile.mkdtemp(prefix="supplychain-upload-", dir=config.upload_dir))
        target = tmp / (name or "upload.bin")
        written = 0
        try:
            with target.open("wb") as out:
                while chunk := await part.read(1024 * 1024):
                    written += len(chunk)
                    if written > config.max_upload:
                        raise BodyTooLarge(config.max_upload)
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target, tmp
    finally:
        await form.close()


# -- routes ---------------------------------------------------------------------------------------
SCAN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {"path": {"type": "string", "description": "under --root"}},
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}
_POD = {
    "type": "object",
    "properties": {
        "metadata": {
            "type": "object",
            "properties": {
                "annotations": {
                    "type": "object",
                    "properties": {adm.ANNOTATION: {"type": "string"}},
                    "additionalProperties": {"type": "string"},
                }
            },
        },
        "spec": {
            "type": "object",
            "properties": {
                "volumes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "image": {
                                "type": "object",
                                "required": ["reference"],
                                "properties": {"reference": {"type": "string"}},
                            },
                        },
                    },
                }
            },
        },
    },
}
ADMISSION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "admission.k8s.io/v1 AdmissionReview (a Pod, for this webhook)",
                    "required": ["apiVersion", "kind", "request"],
                    "properties": {
                        "apiVersion": {"type": "string", "enum": [adm.API_VERSION]},
                        "kind": {"type": "string", "enum": ["AdmissionReview"]},
                        "request": {
                            "type": "object",
                            "required": ["uid", "kind", "operation"],
                            "properties": {
                                "uid": {"type": "string", "minLength": 1, "maxLength": 64},
                                "kind": {
                                    "type": "object",
                                    "required": ["group", "version", "kind"],
                                    "properties": {
                                        "group": {"type": "string", "enum": ["", "apps"]},
                                        "version": {"type": "string", "enum": ["v1"]},
                                        "kind": {"type": "string", "enum": ["Pod", "Deployment"]},
                                    },
                                },
                                "operation": {
                                    "type": "string",
                                    "enum": ["CREATE", "UPDATE", "DELETE", "CONNECT"],
                                },
                                "object": _POD,
                            },
                        },
                    },
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed request or a path that leaves the root"},
    401: {"description": "missing or wrong bearer token"},
    413: {"description": "body over the cap"},
    503: {"description": "queue full or shutting down (Retry-After)"},
}


def _v1_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document (behind the token like every route but ``/healthz``)."""
        return JSONResponse(request.app.openapi())

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text: scans, cache hits, verdicts, queue depth, latency."""
        text = get_state(request).metrics.render()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @router.post("/v1/scan", openapi_extra=SCAN_BODY, responses={**_ERRORS, 404: {}})
    async def scan(request: Request) -> JSONResponse:
        """Scan a path under ``--root`` (JSON) or an upload (multipart): the CLI's JSON report."""
        from supplychain.formats.json import report_to_dict

        state = get_state(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            target, tmp = await _upload(request, state)
            try:
                job_id = _submit(state, _scan_and_clean, state.scan, target, tmp, key=None)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        else:
            body = await _json_body(request, state.config.max_body)
            if not isinstance(body, dict) or set(body) != {"path"}:
                raise HTTPException(400, 'body must be {"path": "<relative path>"}')
            try:
                target = await anyio.to_thread.run_sync(
                    resolve_under, state.config.root, body["path"]
                )
            except PathRefused as exc:
                raise HTTPException(400, f"path refused: {exc}") from None
            except PathMissing:
                raise HTTPException(404, "no such path under the root") from None
            job_id = _submit(state, state.scan, target, key=None)
        report = await _report_of(state, job_id)
        return JSONResponse(report_to_dict(report))

    @router.post("/v1/admission", openapi_extra=ADMISSION_BODY, responses=_ERRORS)
    async def admission(request: Request) -> JSONResponse:
        """Kubernetes ValidatingAdmissionWebhook for Pods (AdmissionReview v1)."""
        state = get_state(request)
        try:
            review = adm.parse_review(await _json_body(request, state.config.max_body))
        except adm.MalformedReview as exc:
            raise HTTPException(400, f"malformed AdmissionReview: {exc}") from None
        answer = await _admit(state, review)
        state.metrics.inc(
            "supplychain_admission_total",
            decision="allow" if answer["response"]["allowed"] else "deny",
        )
        return JSONResponse(answer)

    return router


async def _admit(state: ServerState, review: adm.Review) -> dict[str, Any]:
    """Allow only if every model passes; otherwise deny naming each model and its rules."""
    if review.kind != "Pod":
        return adm.response(
            review.uid, True, warnings=[f"supplychain checks Pods only; {review.kind} not checked"]
        )
    if review.operation not in ("CREATE", "UPDATE") or not review.models:
        return adm.response(review.uid, True)
    if review.old_models is not None and set(review.old_models) == set(review.models):
        return adm.response(review.uid, True)  # judged at creation; volumes are immutable
    if len(review.models) > adm.MAX_MODELS:
        return adm.response(
            review.uid, False, f"{len(review.models)} models (at most {adm.MAX_MODELS} allowed)"
        )
    deadline = time.monotonic() + state.config.admission_budget
    # Paths, the memo and the verdict store touch disks and SQLite: never on the event loop.
    denials, to_scan = await anyio.to_thread.run_sync(_known_verdicts, state, review.models)
    waiting = [
        (model, _submit(state, _admission_scan, state, target, key=f"scan:{target}"))
        for model, target in to_scan
    ]
    for model, job_id in waiting:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            job = await state.queue.wait_async(job_id, remaining)
            verdict = _job_verdict(state, job_id, job.status)
        except UnknownJob:  # finished and forgotten under extreme load: not an answer
            verdict = None
        _count_verdict(state, verdict)
        if verdict is None:
            denials.append(f"model {model.name!r}: not yet scanned (scan queued; retry shortly)")
        elif not verdict.passed:
            denials.append(f"model {model.name!r} {verdict.reason}")
    if denials:
        return adm.response(review.uid, False, "; ".join(denials))
    return adm.response(review.uid, True)


def _known_verdicts(
    state: ServerState, models: tuple[adm.ModelRef, ...]
) -> tuple[list[str], list[tuple[adm.ModelRef, Path]]]:
    """What is known without a scan (denials, memo hits), and the model paths left to scan."""
    config = state.config
    denials: list[str] = []
    to_scan: list[tuple[adm.ModelRef, Path]] = []
    for model in models:
        if model.kind == "image":
            denials += _image_denial(state, model)
            continue
        try:
            target = resolve_under(config.root, model.name)
        except PathRefused as exc:
            denials.append(f"model {model.name!r}: path refused ({exc})")
            continue
        except PathMissing:
            denials.append(f"model {model.name!r}: not found under the server's root")
            continue
        memoised = state.memo.get(target) if config.memo else None
        if memoised is None:
            to_scan.append((model, target))
            continue
        state.metrics.inc("supplychain_memo_hits_total")
        _count_verdict(state, memoised)
        if not memoised.passed:
            denials.append(f"model {model.name!r} {memoised.reason}")
    return denials, to_scan


def _count_verdict(state: ServerState, verdict: ModelVerdict | None) -> None:
    outcome = "unknown" if verdict is None else "pass" if verdict.passed else "fail"
    state.metrics.inc("supplychain_verdicts_total", outcome=outcome)


def _admission_scan(state: ServerState, target: Path) -> ModelVerdict:
    """Scan for admission: the small verdict (never the report) is what the queue keeps.

    The verdict is memoised when the tree was settled and unchanged across the scan.
    """
    started = time.time_ns()
    before = snapshot(target)
    verdict = judge(state.scan(target))
    if state.config.memo:
        state.memo.put(target, before, started, verdict)
    return verdict


def _job_verdict(state: ServerState, job_id: str, status: JobStatus) -> ModelVerdict | None:
    if status is JobStatus.FAILED:
        return ModelVerdict(False, f"blocked: the scan failed ({state.queue.job(job_id).error})")
    if status is not JobStatus.DONE:
        return None
    verdict = state.queue.result(job_id)
    assert isinstance(verdict, ModelVerdict)
    return verdict


def _image_denial(state: ServerState, model: adm.ModelRef) -> list[str]:
    label = f"image volume {model.volume!r} ({model.name})" if model.volume else model.name
    if model.digest is None:
        state.metrics.inc("supplychain_verdicts_total", outcome="unknown")
        return [f"{label}: not pinned by a @sha256: digest"]
    try:
        stored = state.verdicts.lookup(model.digest)
    except VerdictStoreError as exc:
        state.metrics.inc("supplychain_verdicts_total", outcome="unknown")
        return [f"{label}: verdict store unavailable ({exc})"]
    if stored is None:
        state.metrics.inc("supplychain_verdicts_total", outcome="unknown")
        return [f"{label}: not yet scanned"]
    state.metrics.inc("supplychain_verdicts_total", outcome="pass" if stored.passed else "fail")
    if stored.passed:
        return []
    return [f"{label} {stored.reason}"]


def _include_harbor(app: FastAPI) -> None:
    """The Harbor adapter's router (same token), skipped only if the module is absent.

    Any other import error propagates: a server that silently lost its Harbor routes would leave
    the registry's scans failing open on the registry's side.
    """
    try:
        from supplychain.server import harbor  # type: ignore[attr-defined,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "supplychain.server.harbor":
            raise
        return
    app.include_router(harbor.router, dependencies=[Depends(require_token)])


# -- the app --------------------------------------------------------------------------------------
def create_app(config: ServerConfig, *, scan: ScanFn | None = None) -> FastAPI:
    """The application for ``config`` (``scan`` replaces the scan function, e.g. in a bench)."""
    metrics = Metrics()
    queue = JobQueue(max_queued=config.queue_size, workers=config.workers)
    verdicts = VerdictStore(config.verdicts_path)
    state = ServerState(
        config=config,
        queue=queue,
        verdicts=verdicts,
        metrics=metrics,
        scan=scan or make_scan(config, metrics),
    )
    metrics.gauge("supplychain_queue_depth", "Jobs queued, not yet running.", lambda: queue.depth)
    metrics.gauge("supplychain_jobs_running", "Jobs running now.", lambda: queue.running)
    metrics.gauge("supplychain_jobs_accepted", "Jobs accepted since start.", lambda: queue.accepted)
    metrics.gauge(
        "supplychain_jobs_completed", "Jobs finished since start.", lambda: queue.completed
    )
    metrics.gauge("supplychain_jobs_failed", "Jobs that raised since start.", lambda: queue.failed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        log.info("started", extra={"fields": {"root": str(config.root)}})
        try:
            yield
        finally:
            log.info("draining", extra={"fields": {"queued": queue.depth}})
            await anyio.to_thread.run_sync(queue.shutdown)
            verdicts.close()
            counts = {
                "accepted": queue.accepted,
                "completed": queue.completed,
                "failed": queue.failed,
            }
            log.info("stopped", extra={"fields": counts})

    app = FastAPI(
        title="supplychain",
        summary="ML supply-chain gate: scan, Kubernetes admission, Harbor adapter",
        lifespan=lifespan,
        # The schema is served below behind the token like every route but /healthz; no
        # Swagger UI (it would load scripts from a CDN into an operator's browser).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.supplychain = state
    queue.start()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "malformed request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"fields": {"error": type(exc).__name__}})
        return _error(500, f"internal error ({type(exc).__name__})")

    @app.exception_handler(SupplyChainError)
    async def product_error(request: Request, exc: SupplyChainError) -> JSONResponse:
        return _error(500, f"error: {exc}")

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        """Liveness/readiness (no token): 503 once the server is draining."""
        if queue.closed:
            return _error(503, "shutting down", {"Retry-After": str(config.retry_after)})
        return JSONResponse({"status": "ok", "queue_depth": queue.depth})

    app.include_router(_v1_router())
    _include_harbor(app)
    app.add_middleware(GateMiddleware, config=config, metrics=metrics)
    return app
