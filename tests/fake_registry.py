"""A fake OCI registry on 127.0.0.1: a real ``ThreadingHTTPServer`` for the real client.

Serves ``/v2/``, manifests and blobs; optionally demands Basic auth or the Bearer token dance
(its own ``/token`` endpoint checks Basic credentials), redirects blob downloads to a second
server on another loopback host (which records the headers it was sent, so a test can assert
that ``Authorization`` never reached it), and injects faults per path (status, delay, bytes).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import struct
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_TAR_GZ = "application/vnd.cncf.model.weight.v1.tar+gzip"
WEIGHT_TAR_ZSTD = "application/vnd.cncf.model.weight.v1.tar+zstd"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_MODEL_TGZ = "application/vnd.kitops.modelkit.model.v1.tar+gzip"

_ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def safetensors_bytes() -> bytes:
    """A tiny valid safetensors file (one F32 tensor of two values)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)


def tar_bytes(files: dict[str, bytes], *, compress: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if compress == "gzip":
        return gzip.compress(raw, mtime=0)
    if compress == "zstd":
        from backports import zstd

        return zstd.compress(raw)
    return raw


@dataclass
class Seen:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Server:
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _Quiet(ThreadingHTTPServer):
    """A client hanging up mid-answer (a cap or a timeout in the test) is expected here."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _serve(host: str, handler: type[BaseHTTPRequestHandler]) -> _Server:
    httpd = _Quiet((host, 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return _Server(httpd, thread)


class FakeRegistry:
    """The registry. ``auth`` is ``None``, ``"basic"`` or ``"bearer"``."""

    def __init__(
        self, *, auth: str | None = None, user: str = "robot$ml", password: str = "s3cr3t"
    ):
        self.auth = auth
        self.user, self.password = user, password
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.served_bytes: dict[str, bytes] = {}
        """Per digest: bytes served instead of the real ones (a tampered blob)."""
        self.faults: dict[str, Any] = {}
        """Per path: an int status, ``("sleep", seconds)`` before answering, or ``("drip", s)``."""
        self.tokens: set[str] = set()
        self.token_requests: list[Seen] = []
        self.redirect_blobs = False
        self.blob_store: _Server | None = None
        self._server = _serve("127.0.0.1", self._handler())
        self.seen = self._server.seen

    # -- content ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def blob(self, data: bytes, media_type: str, annotations: dict[str, str] | None = None) -> dict:
        digest = digest_of(data)
        self.blobs[digest] = data
        desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc

    def put_manifest(
        self, repo: str, document: dict, *, tag: str | None = None, media_type: str = OCI_MANIFEST
    ) -> str:
        body = json.dumps(document).encode()
        digest = digest_of(body)
        self.manifests[(repo, digest)] = (media_type, body)
        if tag:
            self.manifests[(repo, tag)] = (media_type, body)
        return digest

    def push_model(
        self,
        repo: str,
        layers: list[tuple[str, bytes, str]],
        *,
        tag: str | None = "v1",
        artifact_type: str | None = MODELPACK_ARTIFACT,
        config_type: str = MODELPACK_CONFIG,
        annotation: str = "org.cncf.model.filepath",
    ) -> str:
        """Push a model artifact whose layers are (name, bytes, media type); return its digest."""
        config = self.blob(b"{}", config_type)
        descs = [
            self.blob(data, mt, {annotation: name} if name else None) for name, data, mt in layers
        ]
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": descs,
        }
        if artifact_type:
            document["artifactType"] = artifact_type
        return self.put_manifest(repo, document, tag=tag)

    # -- blob redirects ---------------------------------------------------------------------

    def enable_blob_redirect(self) -> _Server:
        """Answer blob GETs with 307 to a blob store on 127.0.0.2 (another host)."""
        registry = self

        class BlobStore(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                store.seen.append(Seen("GET", self.path, dict(self.headers.items())))
                digest = self.path.split("/")[-1].split("?")[0]
                data = registry.blobs.get(digest)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        store = _serve("127.0.0.2", BlobStore)
        self.blob_store = store
        self.redirect_blobs = True
        return store

    def close(self) -> None:
        self._server.close()
        if self.blob_store:
            self.blob_store.close()

    # -- HTTP -------------------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if self.auth is None:
            return True
        if self.auth == "basic":
            good = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return header == f"Basic {good}"
        return bool(header) and header.startswith("Bearer ") and header[7:] in self.tokens

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                registry.seen.append(Seen("GET", self.path, dict(self.headers.items())))
                fault = registry.faults.get(path)
                if isinstance(fault, int):
                    self._send(fault, b'{"errors":[{"code":"UNKNOWN"}]}')
                    return
                if isinstance(fault, tuple) and fault[0] == "sleep":
                    time.sleep(fault[1])
                if path == "/token":
                    self._token()
                    return
                if not registry._authorized(self.headers.get("Authorization")):
                    self._challenge(path)
                    return
                if path == "/v2/":
                    self._send(200, b"{}", {"Content-Type": "application/json"})
                    return
                m = _ROUTE.match(path)
                if not m:
                    self._send(404)
                    return
                name, kind, ref = m["name"], m["kind"], m["ref"]
                if kind == "manifests":
                    found = registry.manifests.get((name, ref))
                    if found is None:
                        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                        return
                    media_type, body = found
                    self._send(
                        200,
                        body,
                        {"Content-Type": media_type, "Docker-Content-Digest": digest_of(body)},
                    )
                    return
                data = registry.blobs.get(ref)
                if data is None:
                    self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                    return
                if registry.redirect_blobs and registry.blob_store:
                    target = f"{registry.blob_store.url}/storage/{ref}?X-Amz-Signature=abc"
                    self._send(307, b"", {"Location": target})
                    return
                data = registry.served_bytes.get(ref, data)
                if isinstance(fault, tuple) and fault[0] == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:1])
                    self.wfile.flush()
                    time.sleep(fault[1])
                    self.wfile.write(data[1:])
                    return
                self._send(200, data, {"Content-Type": "application/octet-stream"})

            def _challenge(self, path: str) -> None:
                m = _ROUTE.match(path)
                scope = f"repository:{m['name']}:pull" if m else "registry:catalog:*"
                if registry.auth == "basic":
                    value = 'Basic realm="fake-registry"'
                else:
                    value = (
                        f'Bearer realm="{registry.url}/token",service="fake-registry",'
                        f'scope="{scope},push"'
                    )
                self._send(
                    401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": value}
                )

            def _token(self) -> None:
                registry.token_requests.append(Seen("GET", self.path, dict(self.headers.items())))
                good = base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {good}":
                    self._send(401, b'{"details":"bad credentials"}')
                    return
                token = secrets.token_hex(16)
                registry.tokens.add(token)
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self._send(200, body, {"Content-Type": "application/json"})

        return Handler


@contextmanager
def fake_registry(**kwargs: Any) -> Iterator[FakeRegistry]:
    registry = FakeRegistry(**kwargs)
    try:
        yield registry
    finally:
        registry.close()
