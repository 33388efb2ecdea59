"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1 answering the routes the client uses.

``huggingface_hub`` speaks httpx2, so mocking libraries tied to requests/httpx do not intercept it;
a real server is the portable test double (INTEGRATIONS.md §1.4). Routes served, with the shapes of
the real API (§1.3):

- ``GET /api/{models,datasets}/{repo}[/revision/{rev}]`` (``blobs``/``securityStatus`` params):
  ``sha``, ``siblings[]`` with ``blobId``/``lfs``, ``securityRepoStatus``, gated/private/disabled;
- ``GET /api/{type}s/{repo}/tree/{rev}`` with ``Link: <...>; rel="next"`` pagination (absolute
  URLs pointing back at this server);
- ``POST /api/{type}s/{repo}/paths-info/{rev}`` (form or JSON body);
- ``HEAD``/``GET /[datasets/]{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag``, ``X-Linked-Size``;
- ``GET /api/agent-harnesses``: 404 (the client's best-effort telemetry).

``FakeHub.fail`` makes it misbehave: an HTTP status (with ``X-Error-Code`` like the real Hub), a
timeout (the server stalls), or truncated JSON.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SPEC = "https://git-lfs.github.com/spec/v1"


def git_blob_sha1(data: bytes) -> str:
    """``git hash-object`` of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-LFS pointer text a checkout without ``git lfs pull`` holds instead of ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    return f"version {LFS_SPEC}\noid sha256:{digest}\nsize {len(data)}\n".encode()


@dataclass
class FakeRepo:
    """One repo at one commit: its files, which of them are LFS, and HF's scan verdicts."""

    repo_id: str
    files: dict[str, bytes]
    lfs: frozenset[str] = frozenset()
    repo_type: str = "model"
    branches: dict[str, str] = field(default_factory=dict)
    """Branch or tag name → commit (the commit itself always resolves)."""
    private: bool = False
    gated: bool | str = False
    disabled: bool = False
    scans_done: bool = True
    flagged: dict[str, str] = field(default_factory=dict)
    """Path → HF level (``unsafe``/``caution``), in ``filesWithIssues`` and per file."""
    file_status: dict[str, str] = field(default_factory=dict)
    """Path → per-file ``securityFileStatus.status`` only (e.g. ``unscanned``), overriding."""
    created_at: str = "2023-01-01T00:00:00.000Z"
    last_modified: str = "2024-02-19T11:06:12.000Z"
    files_changed: str = ""
    """``lastCommit.date`` of every file (default: ``last_modified``)."""

    @property
    def commit(self) -> str:
        """A deterministic 40-hex commit id derived from the content."""
        h = hashlib.sha1(self.repo_id.encode())
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    def resolve(self, rev: str) -> str | None:
        """The commit a revision names, or ``None``."""
        if rev == self.commit:
            return rev
        if rev in self.branches:
            return self.branches[rev]
        return self.commit if rev == "main" and "main" not in self.branches else None

    def sibling(self, name: str) -> dict[str, object]:
        """A ``siblings[]`` entry (``blobId``, ``lfs.sha256``)."""
        data = self.files[name]
        out: dict[str, object] = {"rfilename": name, "size": len(data)}
        if name in self.lfs:
            out["blobId"] = git_blob_sha1(lfs_pointer(data))
            out["lfs"] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": len(lfs_pointer(data)),
            }
        else:
            out["blobId"] = git_blob_sha1(data)
        return out

    def tree_entry(self, name: str, expand: bool) -> dict[str, object]:
        """A tree / paths-info entry (``oid``, ``lfs.oid``)."""
        data = self.files[name]
        out: dict[str, object] = {"type": "file", "path": name, "size": len(data)}
        if name in self.lfs:
            out["oid"] = git_blob_sha1(lfs_pointer(data))
            out["lfs"] = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": len(lfs_pointer(data)),
            }
        else:
            out["oid"] = git_blob_sha1(data)
        if expand:
            date = self.files_changed or self.last_modified
            out["lastCommit"] = {"id": self.commit, "title": "upload", "date": date}
            level = self.file_status.get(name, self.flagged.get(name, "safe"))
            out["securityFileStatus"] = {
                "status": level,
                "avScan": {"virusFound": False, "virusNames": []},
                "pickleImportScan": {"highestSafetyLevel": "innocuous", "imports": []},
            }
        return out

    def info(self, commit: str, security: bool) -> dict[str, object]:
        """The ``/api/models/{repo}/revision/{rev}`` body."""
        out: dict[str, object] = {
            "_id": "0" * 24,
            "id": self.repo_id,
            "sha": commit,
            "private": self.private,
            "gated": self.gated,
            "disabled": self.disabled,
            "createdAt": self.created_at,
            "lastModified": self.last_modified,
            "tags": [],
            "siblings": [self.sibling(n) for n in sorted(self.files)],
        }
        if security:
            out["securityRepoStatus"] = {
                "scansDone": self.scans_done,
                "filesWithIssues": [
                    {"path": p, "level": lvl} for p, lvl in sorted(self.flagged.items())
                ],
            }
        return out


@dataclass
class Failure:
    """How the server misbehaves: ``status`` (with ``code``), ``stall`` seconds, or ``truncate``."""

    status: int = 0
    code: str = ""
    stall: float = 0.0
    truncate: bool = False
    only: str = ""
    """Apply only to request paths containing this text (empty: every route but telemetry)."""


class FakeHub:
    """The server; ``url`` is its endpoint, ``requests`` logs every request line seen."""

    def __init__(self, page_size: int = 2, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        """Path prefix a mirror serves under (Artifactory: ``/artifactory/api/huggingfaceml/R``)."""
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.failure: Failure | None = None
        self.page_size = page_size
        self.requests: list[str] = []
        self.auth: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint (``HF_ENDPOINT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    def start(self) -> FakeHub:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def add(self, repo: FakeRepo) -> FakeRepo:
        """Publish ``repo``."""
        self.repos[(repo.repo_type, repo.repo_id)] = repo
        return repo

    def fail(self, failure: Failure | None) -> None:
        """Misbehave from now on (``None``: behave again)."""
        self.failure = failure

    # -- request handling -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return self._send(h, method, 404, b"{}", {"Content-Type": "application/json"})
            path = path[len(self.prefix) :]
        query = parse_qs(parts.query)
        self.requests.append(f"{method} {h.path}")
        self.auth.append(h.headers.get("Authorization", ""))
        body = b""
        if method == "POST":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if path == "/api/agent-harnesses":
            return self._send(h, method, 404, b"{}", {"Content-Type": "application/json"})
        failure = self.failure
        if failure is not None and (not failure.only or failure.only in path):
            if failure.stall:
                time.sleep(failure.stall)
            if failure.status:
                headers = {"Content-Type": "application/json"}
                if failure.code:
                    headers["X-Error-Code"] = failure.code
                    headers["X-Error-Message"] = f"{failure.code} (fake hub)"
                if failure.status == 429:
                    headers["Retry-After"] = "0"
                msg = json.dumps({"error": f"fake failure {failure.status}"}).encode()
                return self._send(h, method, failure.status, msg, headers)
        try:
            self._route(h, method, path, query, body)
        except _NotFound as exc:
            headers = {"Content-Type": "application/json", "X-Error-Code": exc.code}
            headers["X-Error-Message"] = exc.code
            self._send(h, method, 404, b'{"error":"not found"}', headers)

    def _json(self, h: BaseHTTPRequestHandler, method: str, doc: object, **headers: str) -> None:
        data = json.dumps(doc).encode()
        if self.failure is not None and self.failure.truncate:
            data = data[: len(data) // 2]
        self._send(h, method, 200, data, {"Content-Type": "application/json", **headers})

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, method: str, status: int, data: bytes, headers: dict[str, str]
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)

    def _repo(self, repo_type: str, repo_id: str) -> FakeRepo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise _NotFound("RepoNotFound")
        return repo

    def _commit(self, repo: FakeRepo, rev: str) -> str:
        commit = repo.resolve(rev)
        if commit is None:
            raise _NotFound("RevisionNotFound")
        return commit

    def _route(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in ("models", "datasets"):
            repo_type = segs[1][:-1]
            repo = self._repo(repo_type, f"{segs[2]}/{segs[3]}")
            rest = segs[4:]
            if not rest or rest[0] == "revision":
                rev = "/".join(rest[1:]) if rest else "main"
                commit = self._commit(repo, rev)
                security = query.get("securityStatus", [""])[0].lower() == "true"
                return self._json(h, method, repo.info(commit, security))
            if rest[0] == "tree":
                self._commit(repo, rest[1])
                return self._tree(h, method, repo, path, query)
            if rest[0] == "paths-info" and method == "POST":
                self._commit(repo, rest[1])
                return self._paths_info(h, method, repo, body, h.headers.get("Content-Type", ""))
            raise _NotFound("EntryNotFound")
        repo_type = "model"
        if segs and segs[0] == "datasets":
            repo_type, segs = "dataset", segs[1:]
        if len(segs) >= 5 and segs[2] == "resolve":
            repo = self._repo(repo_type, f"{segs[0]}/{segs[1]}")
            commit = self._commit(repo, segs[3])
            name = "/".join(segs[4:])
            if name not in repo.files:
                raise _NotFound("EntryNotFound")
            data = repo.files[name]
            headers = {
                "X-Repo-Commit": commit,
                "Content-Type": "application/octet-stream",
            }
            if name in repo.lfs:
                headers["ETag"] = f'"{git_blob_sha1(lfs_pointer(data))}"'
                headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
                headers["X-Linked-Size"] = str(len(data))
            else:
                headers["ETag"] = f'"{git_blob_sha1(data)}"'
            return self._send(h, method, 200, data, headers)
        raise _NotFound("RepoNotFound")

    def _tree(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        repo: FakeRepo,
        path: str,
        query: dict[str, list[str]],
    ) -> None:
        expand = query.get("expand", [""])[0].lower() == "true"
        names = sorted(repo.files)
        dirs = sorted({n.rsplit("/", 1)[0] for n in names if "/" in n})
        entries: list[dict[str, object]] = [
            {"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in dirs
        ]
        entries += [repo.tree_entry(n, expand) for n in names]
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start : start + self.page_size]
        headers: dict[str, str] = {}
        if start + self.page_size < len(entries):
            keep = "&".join(f"{k}={quote(v[0])}" for k, v in sorted(query.items()) if k != "cursor")
            nxt = f"{self.url}{quote(path)}?{keep}&cursor={start + self.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(h, method, page, **headers)

    def _paths_info(
        self, h: BaseHTTPRequestHandler, method: str, repo: FakeRepo, body: bytes, ctype: str
    ) -> None:
        if "json" in ctype:
            doc = json.loads(body or b"{}")
            paths, expand = list(doc.get("paths", [])), bool(doc.get("expand"))
        else:
            form = parse_qs(body.decode())
            paths, expand = form.get("paths", []), form.get("expand", [""])[0].lower() == "true"
        out = [repo.tree_entry(p, expand) for p in paths if p in repo.files]
        self._json(h, method, out)


class _NotFound(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
