"""Resolve a Hub revision to its commit and the commit's file digests, in one call.

``model_info(repo, revision=rev, files_metadata=True, securityStatus=True)`` (``dataset_info`` for
datasets) returns the 40-hex ``sha``, every sibling's size, git blob id and LFS sha256, HF's scan
verdict and the gated/private/disabled flags. Every failure (network, timeout, 401/403/404, rate
limit, malformed JSON, a response missing digests) becomes a ``HubError`` with a kind and a
message that never contains the token: could not verify is never verified.

``HF_ENDPOINT`` is read at call time (``huggingface_hub`` reads it at import), so mirrors such as
Artifactory or Nexus work; ``HF_TOKEN`` is used by the client itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scanners._paths import path_escape
from supplychain.provenance.manifest import ExpectedFile, Manifest

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DEFAULT_TIMEOUT = 30.0


class HubError(Exception):
    """The Hub could not be asked or answered unusably; ``kind`` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class HubSnapshot:
    """What the Hub says about one commit of one repo."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    manifest: Manifest
    private: bool = False
    gated: str = ""
    """``""`` when not gated, else ``auto`` / ``manual``."""
    disabled: bool = False
    security: Mapping[str, Any] | None = None
    """``securityRepoStatus`` as sent (models only)."""
    created_at: datetime | None = None
    last_modified: datetime | None = None
    endpoint: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def endpoint() -> str:
    """The Hub endpoint in force now (``HF_ENDPOINT`` or huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _scrub(text: str, token: str | None) -> str:
    token = token or os.environ.get("HF_TOKEN") or ""
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def _classify(exc: BaseException, token: str | None) -> HubError:
    """Map a client exception to a ``HubError`` (kinds: auth, not-found, rate-limit, …)."""
    from huggingface_hub import errors

    text = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, token)
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError("offline", f"offline mode (HF_HUB_OFFLINE) forbids asking the Hub: {text}")
    if isinstance(exc, errors.GatedRepoError):
        return HubError("auth", f"gated repo: access not granted to this token: {text}")
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError("not-found", f"revision not found: {text}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError("not-found", f"repository not found or not visible to this token: {text}")
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError("auth", f"HTTP {status}: not authorised (set HF_TOKEN): {text}")
        if status == 404:
            return HubError("not-found", f"HTTP 404: {text}")
        if status == 429:
            return HubError("rate-limit", f"HTTP 429: rate limited by the Hub: {text}")
        return HubError("server", f"HTTP {status}: {text}")
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return HubError("timeout", f"the Hub did not answer in time ({name})")
    if isinstance(exc, ValueError | KeyError | TypeError | AttributeError):
        return HubError("malformed", f"malformed Hub response: {name}: {text}")
    return HubError("network", f"could not reach the Hub: {name}: {text}")


def _hex(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value.lower()):
        raise HubError("malformed", f"malformed Hub response: {what} is {value!r:.80}")
    return value.lower()


def _manifest(info: Any, repo_id: str, repo_type: str, commit: str) -> Manifest:
    siblings = getattr(info, "siblings", None)
    if not isinstance(siblings, list):
        raise HubError("malformed", "malformed Hub response: no file list (siblings)")
    files: dict[str, ExpectedFile] = {}
    for s in siblings:
        name = getattr(s, "rfilename", None)
        if not isinstance(name, str) or not name or path_escape(name) is not None:
            raise HubError("malformed", f"malformed Hub response: file name {name!r:.80}")
        size = getattr(s, "size", None)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise HubError("malformed", f"malformed Hub response: size of {name!r:.80}")
        lfs = getattr(s, "lfs", None)
        if lfs:
            sha = _hex(lfs.get("sha256"), HEX64, f"LFS sha256 of {name!r:.80}")
            lfs_size = lfs.get("size", size)
            files[name] = ExpectedFile(
                name, lfs_size if isinstance(lfs_size, int) else None, sha256=sha
            )
        else:
            oid = _hex(getattr(s, "blob_id", None), HEX40, f"blob id of {name!r:.80}")
            files[name] = ExpectedFile(name, size, git_oid=oid)
    return Manifest(f"hf:{repo_id}@{commit[:12]}", files, repo_id, repo_type, commit)


def resolve(
    repo_id: str,
    revision: str | None = None,
    *,
    repo_type: str = "model",
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> HubSnapshot:
    """One Hub call: ``revision`` (default ``main``) → commit, file digests, scan status, flags."""
    if not REPO_ID.match(repo_id):
        raise HubError("usage", f"not a Hub repo id (ORG/NAME): {repo_id!r:.120}")
    if repo_type not in ("model", "dataset"):
        raise HubError("usage", f"unsupported repo type {repo_type!r} (model or dataset)")
    rev = revision or "main"
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise HubError("unavailable", f"huggingface_hub is not installed: {exc}") from None
    api = HfApi(endpoint=endpoint(), token=token)
    try:
        if repo_type == "model":
            info: Any = api.model_info(
                repo_id, revision=rev, files_metadata=True, securityStatus=True, timeout=timeout
            )
        else:
            info = api.dataset_info(repo_id, revision=rev, files_metadata=True, timeout=timeout)
    except HubError:
        raise
    except Exception as exc:
        raise _classify(exc, token) from None
    commit = _hex(getattr(info, "sha", None), HEX40, "commit sha")
    if HEX40.match(rev.lower()) and rev.lower() != commit:
        raise HubError("malformed", f"the Hub resolved commit {rev} to another commit {commit}")
    security = getattr(info, "security_repo_status", None)
    gated = getattr(info, "gated", False)
    return HubSnapshot(
        repo_id=repo_id,
        repo_type=repo_type,
        revision=rev,
        commit=commit,
        manifest=_manifest(info, repo_id, repo_type, commit),
        private=bool(getattr(info, "private", False)),
        gated=gated if isinstance(gated, str) else ("yes" if gated else ""),
        disabled=bool(getattr(info, "disabled", False)),
        security=security if isinstance(security, dict) else None,
        created_at=getattr(info, "created_at", None),
        last_modified=getattr(info, "last_modified", None),
        endpoint=endpoint(),
    )


def download(
    repo_id: str,
    commit: str,
    dest: str,
    *,
    repo_type: str = "model",
    token: str | None = None,
) -> str:
    """Download ``repo_id`` at ``commit`` into ``dest`` (a quarantine dir, not the user's cache)."""
    from huggingface_hub import snapshot_download

    try:
        return str(
            snapshot_download(
                repo_id,
                revision=commit,
                repo_type=repo_type,
                local_dir=dest,
                token=token,
                endpoint=endpoint(),
            )
        )
    except Exception as exc:
        raise _classify(exc, token) from None


PATHS_PER_CALL = 50
"""Paths asked per ``paths-info`` call (the Hub pages expanded listings by 50)."""


@dataclass(frozen=True, slots=True)
class FileStatus:
    """Per-file facts from ``paths-info``: HF's scan status, and the newest file commit date."""

    status: dict[str, str]
    latest_change: datetime | None = None
    """Date of the newest ``lastCommit`` among the files: when this revision's content last
    changed (``lastModified`` of the repo may be a later commit than the one pinned)."""


def _date(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def file_scan_status(
    snap: HubSnapshot, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> FileStatus:
    """Path → HF's per-file scan status (``safe``/``unsafe``/``caution``/``unscanned``).

    Read from ``POST /api/models/{repo}/paths-info/{commit}`` with ``expand=true`` as raw JSON
    (the 2.4 client's ``RepoFile`` raises ``KeyError`` on a ``securityFileStatus`` without its
    sub-scans). Corroborating evidence only: a file missing from the answer is ``unscanned``; a
    failed call raises ``HubError`` and the caller reports the status as unknown.
    """
    from huggingface_hub import HfApi, get_session, hf_raise_for_status

    api = HfApi(endpoint=endpoint(), token=token)
    headers = api._build_hf_headers(token=token)
    url = f"{api.endpoint}/api/{snap.repo_type}s/{snap.repo_id}/paths-info/{snap.commit}"
    names = sorted(snap.manifest.files)
    out = dict.fromkeys(names, "unscanned")
    latest: datetime | None = None
    for start in range(0, len(names), PATHS_PER_CALL):
        chunk = names[start : start + PATHS_PER_CALL]
        try:
            response = get_session().post(
                url, data={"paths": chunk, "expand": True}, headers=headers, timeout=timeout
            )
            hf_raise_for_status(response)
            entries = response.json()
        except Exception as exc:
            raise _classify(exc, token) from None
        if not isinstance(entries, list):
            raise HubError("malformed", "malformed Hub response: paths-info is not a list")
        for e in entries:
            if not isinstance(e, dict) or e.get("path") not in out:
                continue
            sec = e.get("securityFileStatus")
            status = sec.get("status") if isinstance(sec, dict) else None
            out[e["path"]] = status if isinstance(status, str) and status else "unscanned"
            last = e.get("lastCommit")
            when = _date(last.get("date")) if isinstance(last, dict) else None
            if when is not None and (latest is None or when > latest):
                latest = when
    return FileStatus(out, latest)
