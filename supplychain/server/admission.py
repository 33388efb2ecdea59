"""Kubernetes ``admission.k8s.io/v1`` AdmissionReview: parse a Pod's models, build the answer.

Decisions (documented in ``docs/server.md``):

- A review that is not JSON, not ``admission.k8s.io/v1``/``AdmissionReview``, has no ``request``
  or no string ``uid``, or a CREATE/UPDATE without an ``object`` → ``MalformedReview`` (400). The
  API server then applies ``failurePolicy: Fail``: nothing malformed is admitted.
- Kinds other than Pod are allowed with a warning: models reach a node only through a Pod, and
  every Pod a Deployment or Job creates is reviewed itself, so widening the webhook's rules by
  mistake must not block every controller. DELETE and CONNECT are allowed (nothing is mounted).
- A Pod names its models in the annotation ``supplychain/models`` (comma-separated paths under
  ``--root``) and as ``image`` volumes (``spec.volumes[].image.reference``). An image reference must
  be pinned by a ``@sha256:`` digest; its verdict is looked up by that digest. A Pod without
  models is allowed. More than ``MAX_MODELS`` models is denied.
- An UPDATE whose models equal those of ``oldObject`` is allowed: the models were judged when the
  Pod was created, and a Pod's volumes cannot change afterwards; denying it would only block
  label or finalizer edits (and so deletion). An UPDATE that changes them is checked in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

API_VERSION = "admission.k8s.io/v1"
ANNOTATION = "supplychain/models"
MAX_MODELS = 32
MAX_MESSAGE = 4000
_DIGEST_IN_REF = re.compile(r"@(sha256:[0-9a-f]{64})$")


class MalformedReview(ValueError):
    """The body is not an AdmissionReview this webhook can answer (→ 400)."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One model a Pod uses: a path under the root, or an OCI image reference."""

    kind: Literal["path", "image"]
    name: str
    """The path as written, or the image reference."""
    digest: str | None = None
    """For images: the ``sha256:…`` digest (``None`` when not pinned)."""
    volume: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    uid: str
    kind: str
    operation: str
    models: tuple[ModelRef, ...]
    namespace: str
    name: str
    old_models: tuple[ModelRef, ...] | None = None
    """For UPDATE: the models of ``oldObject`` (``None`` when it is absent)."""


def _req(cond: bool, message: str) -> None:
    if not cond:
        raise MalformedReview(message)


def parse_review(body: object) -> Review:
    """The parts of an AdmissionReview this webhook needs (``MalformedReview`` otherwise)."""
    _req(isinstance(body, dict), "body is not a JSON object")
    assert isinstance(body, dict)
    _req(body.get("apiVersion") == API_VERSION, f"apiVersion must be {API_VERSION}")
    _req(body.get("kind") == "AdmissionReview", "kind must be AdmissionReview")
    request = body.get("request")
    _req(isinstance(request, dict), "request is missing")
    assert isinstance(request, dict)
    uid = request.get("uid")
    _req(isinstance(uid, str) and 0 < len(uid) <= 256, "request.uid must be a string")
    assert isinstance(uid, str)
    kind_obj = request.get("kind")
    _req(isinstance(kind_obj, dict), "request.kind is missing")
    assert isinstance(kind_obj, dict)
    kind = kind_obj.get("kind")
    group = kind_obj.get("group", "")
    _req(isinstance(kind, str) and isinstance(group, str), "request.kind.kind must be a string")
    assert isinstance(kind, str)
    operation = request.get("operation", "CREATE")
    _req(isinstance(operation, str), "request.operation must be a string")
    assert isinstance(operation, str)
    namespace = request.get("namespace") or ""
    name = request.get("name") or ""
    is_pod = kind == "Pod" and group == ""
    models: tuple[ModelRef, ...] = ()
    old_models: tuple[ModelRef, ...] | None = None
    if is_pod and operation in ("CREATE", "UPDATE"):
        obj = request.get("object")
        _req(isinstance(obj, dict), "request.object is missing")
        assert isinstance(obj, dict)
        models = pod_models(obj)
        old = request.get("oldObject")
        if operation == "UPDATE" and isinstance(old, dict):
            old_models = pod_models(old)
        meta = obj.get("metadata")
        if isinstance(meta, dict) and not name:
            name = meta.get("name") or meta.get("generateName") or ""
    return Review(
        uid,
        kind if group == "" else f"{group}/{kind}",
        operation,
        models,
        str(namespace),
        str(name),
        old_models,
    )


def pod_models(pod: dict[str, Any]) -> tuple[ModelRef, ...]:
    """Models named by the annotation and by image volumes, in that order, without repeats."""
    meta = pod.get("metadata") or {}
    _req(isinstance(meta, dict), "metadata must be an object")
    annotations = meta.get("annotations") or {}
    _req(isinstance(annotations, dict), "metadata.annotations must be an object")
    found: list[ModelRef] = []
    raw = annotations.get(ANNOTATION)
    if raw is not None:
        _req(isinstance(raw, str), f"annotation {ANNOTATION} must be a string")
        assert isinstance(raw, str)
        found += [ModelRef("path", p.strip()) for p in raw.split(",") if p.strip()]
    spec = pod.get("spec") or {}
    _req(isinstance(spec, dict), "spec must be an object")
    volumes = spec.get("volumes") or []
    _req(isinstance(volumes, list), "spec.volumes must be a list")
    for vol in volumes:
        _req(isinstance(vol, dict), "spec.volumes[] must be objects")
        image = vol.get("image")
        if image is None:
            continue
        _req(isinstance(image, dict), "spec.volumes[].image must be an object")
        ref = image.get("reference")
        _req(isinstance(ref, str) and bool(ref), "spec.volumes[].image.reference is missing")
        assert isinstance(ref, str)
        m = _DIGEST_IN_REF.search(ref)
        found.append(ModelRef("image", ref, m.group(1) if m else None, str(vol.get("name") or "")))
    unique: dict[tuple[str, str], ModelRef] = {}
    for ref_ in found:
        unique.setdefault((ref_.kind, ref_.name), ref_)
    return tuple(unique.values())


def response(
    uid: str,
    allowed: bool,
    message: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview answer (same ``uid``; ``status`` only when denied)."""
    body: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        body["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": (message or "denied")[:MAX_MESSAGE],
        }
    if warnings:
        body["warnings"] = [w[:256] for w in warnings[:16]]
    body["auditAnnotations"] = {"verdict": "allow" if allowed else "deny"}
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}
