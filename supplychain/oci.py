"""Pull an OCI artifact over the distribution API and scan its layers as a model directory.

Used by the Harbor scanner adapter (``supplychain.server.harbor``); usable on its own:
``scan_artifact(registry_url, repository, reference, credentials)``.

A registry is untrusted input like the artifact it serves, so the client fails closed:

- manifests and blobs are checked against their digests while they stream (a manifest fetched
  by digest must hash to it; every layer must hash to its descriptor and have its declared size);
- sizes are capped before and during the download (``core.limits.OciLimits``), every request has
  a timeout and the whole pull a deadline;
- ``Authorization`` goes only to the registry's own origin (and Basic credentials to the token
  realm the registry names): a redirect to blob storage on another host is followed without it;
- plain ``http`` only to a loopback address or a host the operator listed as insecure;
- layers become files named from their ``org.cncf.model.filepath`` /
  ``org.opencontainers.image.title`` annotations, sanitised (no ``..``, no absolute path, no
  links; a name that is not safe fails the pull) inside a fresh temporary directory; tar layers
  stay archives that the engine walks as streams (zstd ones are decompressed to a capped ``.tar``
  in the same directory first, since the engine does not read zstd), nothing is ever extracted.

Any problem is an ``OciError`` whose message says why: the caller reports the artifact as
unscannable (failing), never as clean.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx

from supplychain.core import __version__
from supplychain.core.errors import SupplyChainError
from supplychain.core.limits import OciLimits

if TYPE_CHECKING:
    from supplychain.core.model import Report
    from supplychain.policy import Policy

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
MODEL_TYPE_PREFIXES = (
    "application/vnd.cncf.model.",  # CNCF ModelPack
    "application/vnd.cnai.model.",  # ModelPack's earlier drafts (Harbor 2.13, CRI-O)
    "application/vnd.kitops.modelkit.",  # KitOps ModelKit
)
TITLE = "org.opencontainers.image.title"
FILEPATH = "org.cncf.model.filepath"

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 20
_ZSTD_MIN_CAP = 64 * 2**20
_MAX_NAME = 1024


class OciError(SupplyChainError):
    """The artifact could not be pulled or laid out safely; the message says why."""


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]`` (the registry is always explicit here)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def registry_url(self, insecure_hosts: frozenset[str] = frozenset()) -> str:
        """``https://registry``, or ``http://`` for loopback and hosts listed as insecure."""
        host = httpx.URL(f"http://{self.registry}").host
        plain = _is_loopback(host) or self.registry in insecure_hosts or host in insecure_hosts
        return f"{'http' if plain else 'https'}://{self.registry}"

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``registry/repo:tag``, ``registry/repo@sha256:…`` or both; refuse anything else."""
        rest = text.strip()
        for prefix in ("oci://", "docker://"):
            if rest.startswith(prefix):
                rest = rest[len(prefix) :]
        digest: str | None = None
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            check_digest(digest)
        registry, _, path = rest.partition("/")
        if not path or not ("." in registry or ":" in registry or registry == "localhost"):
            raise OciError(
                f"reference {text!r} must name its registry: registry/repository[:tag][@digest]"
            )
        tag: str | None = None
        head, _, last = path.rpartition("/")
        if ":" in last:
            last, tag = last.split(":", 1)
            if not _TAG.match(tag):
                raise OciError(f"invalid tag {tag!r} in {text!r}")
        repository = f"{head}/{last}" if head else last
        check_repository(repository)
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a sha256/sha512 OCI digest, else raise ``OciError``."""
    if not _DIGEST.match(str(digest)):
        raise OciError(f"invalid or unsupported digest {str(digest)[:100]!r} (sha256/sha512 only)")
    return digest


def check_repository(repository: str) -> str:
    """Return ``repository`` if it is a valid OCI repository name, else raise ``OciError``."""
    if len(str(repository)) > 255 or not _REPOSITORY.match(str(repository)):
        raise OciError(f"invalid repository name {str(repository)[:100]!r}")
    return repository


@dataclass(frozen=True)
class Credentials:
    """Registry credentials: user and password (Basic, also sent to the token realm) or a token."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_authorization(cls, value: str | None) -> Credentials:
        """An ``Authorization`` value as Harbor passes it: ``Basic b64(u:p)`` or ``Bearer t``."""
        if not value or not value.strip():
            return cls()
        scheme, _, param = value.strip().partition(" ")
        param = param.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(param, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OciError(
                    "registry authorization: Basic value is not base64 of user:password"
                ) from None
            user, sep, password = decoded.partition(":")
            if not sep or not user:
                raise OciError("registry authorization: Basic value is not user:password")
            return cls(username=user, password=password)
        if scheme.lower() == "bearer" and param:
            return cls(token=param)
        raise OciError(f"registry authorization: unsupported scheme {scheme[:20]!r}")

    def basic_header(self) -> str | None:
        """The ``Authorization: Basic`` value, when a user is known."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Descriptor:
    """One OCI content descriptor (config or layer)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def compression(self) -> str | None:
        """``gzip`` or ``zstd`` when the media type says the blob is compressed."""
        mt = self.media_type.lower()
        if mt.endswith(("+gzip", ".gzip", "+gz")):
            return "gzip"
        if mt.endswith(("+zstd", ".zstd")):
            return "zstd"
        return None

    @property
    def is_tar(self) -> bool:
        """Whether the media type says the (decompressed) blob is a tar archive."""
        mt = self.media_type.lower()
        for suffix in ("+gzip", ".gzip", "+gz", "+zstd", ".zstd"):
            mt = mt.removesuffix(suffix)
        return mt.endswith((".tar", "+tar")) or mt == "application/x-tar"


@dataclass(frozen=True)
class Artifact:
    """A resolved artifact: the manifest the layers come from and what it says it is."""

    repository: str
    digest: str
    """The digest that was asked for (or resolved from the tag): an index's when it was one."""
    manifest_digest: str
    """The image manifest the layers come from (equal to ``digest`` unless an index was picked)."""
    media_type: str
    artifact_type: str | None
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def is_model(self) -> bool:
        """ModelPack or KitOps by artifact type or config media type (else a generic artifact)."""
        kinds = (self.artifact_type or "", self.config.media_type)
        return any(k.startswith(MODEL_TYPE_PREFIXES) for k in kinds)

    @property
    def kind(self) -> str:
        """What the artifact is, for reports: its artifact type or config media type."""
        return self.artifact_type or self.config.media_type


@dataclass(frozen=True)
class PulledFile:
    """A layer laid out as a file under the scan root."""

    name: str
    layer: Descriptor


@dataclass(frozen=True)
class Pulled:
    """An artifact whose layers are on disk under ``root``, digests verified."""

    artifact: Artifact
    root: Path
    files: tuple[PulledFile, ...]


@dataclass(frozen=True)
class OciScan:
    """The outcome of ``scan_artifact``: what was pulled and the judged report."""

    artifact: Artifact
    files: tuple[PulledFile, ...]
    report: Report


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → (``bearer``, params); quoted commas kept."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for key, raw in _CHALLENGE_PARAM.findall(rest):
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        params[key.lower()] = value
    return scheme.lower(), params


def _descriptor(value: object, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise OciError(f"{what} is not a JSON object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type or len(media_type) > 255:
        raise OciError(f"{what} has no valid mediaType")
    check_digest(digest)  # type: ignore[arg-type]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OciError(f"{what} has no valid size")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise OciError(f"{what} has annotations that are not strings")
    return Descriptor(media_type, str(digest), size, dict(annotations))


def safe_name(raw: str) -> str:
    """A relative POSIX path from an annotation, or ``OciError``: no ``..``, absolute or odd bytes.

    A name that is not safe fails the pull rather than being rewritten: an artifact naming a file
    ``../../etc/x`` is hostile or broken, and either way it is not scanned as if it were clean.
    """
    text = raw.strip().removeprefix("./").rstrip("/")
    problem: str | None = None
    if not text:
        problem = "is empty"
    elif len(text) > _MAX_NAME:
        problem = "is too long"
    elif any(ord(c) < 32 or c in "\\\x7f:" for c in text):
        problem = "has control characters, a backslash or a colon"
    elif text.startswith("/"):
        problem = "is absolute"
    else:
        parts = text.split("/")
        if any(p in ("", ".", "..") for p in parts):
            problem = "has an empty, '.' or '..' component"
        elif any(len(p.encode()) > 255 for p in parts):
            problem = "has a component longer than 255 bytes"
    if problem:
        raise OciError(f"layer name {raw[:200]!r} {problem}: refusing to lay it out")
    return text


def layout_names(layers: tuple[Descriptor, ...]) -> tuple[str, ...]:
    """The file name of every layer; tar layers get a ``.tar``/``.tar.gz`` suffix; clashes fail."""
    names: list[str] = []
    for index, layer in enumerate(layers):
        raw = layer.annotations.get(FILEPATH) or layer.annotations.get(TITLE)
        hexpart = layer.digest.split(":", 1)[1][:12]
        name = safe_name(raw) if raw else f"layer-{index:03d}-{hexpart}"
        if layer.is_tar:
            ext = ".tar.gz" if layer.compression == "gzip" else ".tar"
            if not name.lower().endswith((ext, ".tgz")):
                name += ext
        names.append(name)
    seen: set[str] = set()
    for name in names:
        key = name.lower()  # case-insensitive file systems must not merge two layers either
        if key in seen:
            raise OciError(f"two layers are named {name!r}: refusing an ambiguous layout")
        seen.add(key)
    dirs = {str(p).lower() for n in names for p in PurePosixPath(n).parents if str(p) != "."}
    clash = sorted(n for n in names if n.lower() in dirs)
    if clash:
        raise OciError(f"layer name {clash[0]!r} is also a directory of another layer")
    return tuple(names)


class _Budget:
    """Bytes left for the whole artifact."""

    def __init__(self, total: int) -> None:
        self.left = total

    def charge(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise OciError("artifact exceeds the total download cap (OciLimits.max_total_bytes)")


class RegistryClient:
    """A small OCI distribution client for one registry (one instance per pull; not shared)."""

    def __init__(
        self,
        registry_url: str,
        credentials: Credentials | None = None,
        *,
        limits: OciLimits | None = None,
        insecure_hosts: frozenset[str] = frozenset(),
        verify: bool | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        text = registry_url.strip().rstrip("/")
        if "://" not in text:
            text = "https://" + text
        self.base = httpx.URL(text)
        if self.base.scheme not in ("http", "https") or not self.base.host:
            raise OciError(f"registry URL {registry_url[:200]!r} is not http(s)://host[:port]")
        self.credentials = credentials or Credentials()
        self.limits = limits or OciLimits()
        self.insecure_hosts = insecure_hosts
        self._check_url(self.base)
        self._origin = _origin(self.base)
        self._auth: str | None = (
            f"Bearer {self.credentials.token}" if self.credentials.token else None
        )
        self._deadline = time.monotonic() + self.limits.deadline_seconds
        timeout = httpx.Timeout(float(self.limits.timeout_seconds))
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            verify=verify,
            transport=transport,
            headers={"User-Agent": f"supplychain/{__version__}", "Accept-Encoding": "identity"},
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- transport ---------------------------------------------------------------------------

    def _check_url(self, url: httpx.URL) -> None:
        if url.scheme == "https":
            return
        host = url.host
        hostport = f"{host}:{url.port}" if url.port else host
        if url.scheme == "http" and (
            _is_loopback(host) or host in self.insecure_hosts or hostport in self.insecure_hosts
        ):
            return
        raise OciError(
            f"refusing {url.scheme}:// to {host}: only https, or http to loopback or a host "
            "listed as insecure"
        )

    def _check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise OciError("the pull ran past its deadline (OciLimits.deadline_seconds)")

    def _url(self, path: str) -> httpx.URL:
        return self.base.copy_with(path=self.base.path.rstrip("/") + path)

    def _open(self, path: str, accept: str | None, repository: str) -> httpx.Response:
        """GET ``path`` on the registry, streaming: redirects, auth and errors handled here."""
        url = self._url(path)
        redirects = 0
        authenticated = False
        while True:
            self._check_time()
            self._check_url(url)
            headers: dict[str, str] = {}
            if accept:
                headers["Accept"] = accept
            same_origin = _origin(url) == self._origin
            if self._auth and same_origin:  # never to blob storage or any other host
                headers["Authorization"] = self._auth
            request = self._client.build_request("GET", url, headers=headers)
            try:
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException:
                raise OciError(f"timed out talking to {url.host}") from None
            except httpx.HTTPError as exc:
                raise OciError(f"cannot reach {url.host}: {type(exc).__name__}") from None
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("location")
                response.close()
                redirects += 1
                if not location or redirects > self.limits.max_redirects:
                    raise OciError(f"bad or too many redirects from {url.host}")
                url = url.join(location)
                continue
            if status == 401 and same_origin and not authenticated:
                challenge = response.headers.get("www-authenticate", "")
                response.close()
                self._authenticate(challenge, repository)
                authenticated = True
                continue
            if status != 200:
                response.close()
                if status == 401:
                    raise OciError(f"{url.host} refused the credentials (HTTP 401) for {path}")
                if status == 404:
                    raise OciError(f"{url.host} has no {path} (HTTP 404)")
                raise OciError(f"{url.host} answered HTTP {status} for {path}")
            return response

    def _authenticate(self, challenge: str, repository: str) -> None:
        """Answer a 401: Basic with the given user, or the Bearer token dance with the realm."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            basic = self.credentials.basic_header()
            if basic is None:
                raise OciError("the registry wants Basic credentials and none were given")
            self._auth = basic
            return
        if scheme != "bearer":
            raise OciError(f"the registry sent an unsupported challenge {challenge[:80]!r}")
        realm = params.get("realm")
        if not realm:
            raise OciError("the registry's Bearer challenge names no realm")
        realm_url = httpx.URL(realm)
        self._check_url(realm_url)
        # Our own scope, not the challenge's: pull is all a scanner may ask for.
        query = {"scope": f"repository:{repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers: dict[str, str] = {}
        basic = self.credentials.basic_header()
        if basic:  # the realm is the one the registry named: the documented place for them
            headers["Authorization"] = basic
        self._check_time()
        try:
            with self._client.stream(
                "GET", realm_url.copy_merge_params(query), headers=headers
            ) as response:
                if response.status_code != 200:
                    raise OciError(
                        f"token service {realm_url.host} answered HTTP {response.status_code}"
                    )
                body = self._read_bounded(response, self.limits.max_token_bytes, "token response")
        except httpx.TimeoutException:
            raise OciError(f"timed out talking to token service {realm_url.host}") from None
        except httpx.HTTPError as exc:
            raise OciError(f"cannot reach token service {realm_url.host}: {exc}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise OciError("the token service answered something that is not JSON") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise OciError("the token service answered no usable token")
        self._auth = f"Bearer {token}"

    def _read_bounded(self, response: httpx.Response, cap: int, what: str) -> bytes:
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > cap:
            raise OciError(f"{what} is {int(length)} bytes, over the cap of {cap}")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_bytes(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise OciError(f"{what} is over the cap of {cap} bytes")
                self._check_time()
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise OciError(f"reading {what} failed: {type(exc).__name__}") from None
        return b"".join(chunks)

    # -- manifests ---------------------------------------------------------------------------

    def fetch_manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str, str]:
        """(document, media type, digest) of a manifest or index; digests are checked."""
        check_repository(repository)
        pinned = reference if ":" in reference else None
        if pinned:
            check_digest(pinned)
        elif not _TAG.match(reference):
            raise OciError(f"invalid tag {reference[:100]!r}")
        response = self._open(f"/v2/{repository}/manifests/{reference}", ACCEPT, repository)
        try:
            body = self._read_bounded(response, self.limits.max_manifest_bytes, "manifest")
        finally:
            response.close()
        algorithm = pinned.split(":", 1)[0] if pinned else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
        if pinned and digest != pinned:
            raise OciError(f"manifest does not match its digest: asked {pinned}, got {digest}")
        announced = response.headers.get("docker-content-digest")
        if not pinned and announced and announced != digest:
            raise OciError(f"manifest does not match Docker-Content-Digest {announced[:80]}")
        try:
            document = json.loads(body)
        except ValueError:
            raise OciError("manifest is not JSON") from None
        if not isinstance(document, dict):
            raise OciError("manifest is not a JSON object")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = document.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise OciError("manifest mediaType is not a string")
        known = (*MANIFEST_TYPES, *INDEX_TYPES)
        if declared and content_type in known and declared != content_type:
            raise OciError(f"manifest says {declared} but the registry served {content_type}")
        media_type = declared or content_type
        if media_type not in known:
            raise OciError(f"unsupported manifest media type {media_type[:100]!r}")
        if document.get("schemaVersion") != 2:
            raise OciError("manifest schemaVersion is not 2")
        return document, media_type, digest

    def resolve(self, repository: str, reference: str) -> Artifact:
        """The image manifest for ``reference``; from an index, its one platform-less manifest."""
        document, media_type, digest = self.fetch_manifest(repository, reference)
        manifest_digest = digest
        if media_type in INDEX_TYPES:
            entry = _pick_from_index(document)
            manifest_digest = entry.digest
            document, media_type, _ = self.fetch_manifest(repository, entry.digest)
            if media_type in INDEX_TYPES:
                raise OciError("an index inside an index: refusing nested indexes")
        config = _descriptor(document.get("config"), "manifest config")
        layers_raw = document.get("layers")
        if not isinstance(layers_raw, list):
            raise OciError("manifest has no layers list")
        if len(layers_raw) > self.limits.max_layers:
            raise OciError(
                f"manifest lists {len(layers_raw)} layers (cap {self.limits.max_layers})"
            )
        layers = tuple(_descriptor(x, f"layer {i}") for i, x in enumerate(layers_raw))
        if not layers:
            raise OciError("manifest has no layers: nothing to scan")
        for layer in layers:
            if layer.size > self.limits.max_blob_bytes:
                raise OciError(
                    f"layer {layer.digest} declares {layer.size} bytes, over the cap of "
                    f"{self.limits.max_blob_bytes} (OciLimits.max_blob_bytes)"
                )
        if sum(layer.size for layer in layers) > self.limits.max_total_bytes:
            raise OciError("the layers together exceed OciLimits.max_total_bytes")
        artifact_type = document.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise OciError("manifest artifactType is not a string")
        return Artifact(
            repository=repository,
            digest=digest,
            manifest_digest=manifest_digest,
            media_type=media_type,
            artifact_type=artifact_type,
            config=config,
            layers=layers,
        )

    # -- blobs -------------------------------------------------------------------------------

    def download_blob(
        self, repository: str, layer: Descriptor, dest: Path, budget: _Budget
    ) -> None:
        """Stream a blob to ``dest`` (a new file), checking size and digest as it arrives."""
        algorithm, expected = layer.digest.split(":", 1)
        hasher = hashlib.new(algorithm)
        written = 0
        response = self._open(f"/v2/{repository}/blobs/{layer.digest}", None, repository)
        try:
            try:
                length = response.headers.get("content-length")
                if length and length.isdigit() and int(length) != layer.size:
                    raise OciError(
                        f"blob {layer.digest} is served as {length} bytes, declared {layer.size}"
                    )
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                with os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
                    # Raw bytes as sent (we ask for identity encoding): a registry that
                    # compresses anyway fails the digest check, it is never decoded to pass.
                    for chunk in response.iter_raw():
                        written += len(chunk)
                        if written > layer.size:
                            raise OciError(f"blob {layer.digest} is longer than declared")
                        budget.charge(len(chunk))
                        self._check_time()
                        hasher.update(chunk)
                        out.write(chunk)
            finally:
                response.close()
        except httpx.TimeoutException:
            dest.unlink(missing_ok=True)
            raise OciError(f"timed out downloading blob {layer.digest}") from None
        except httpx.HTTPError as exc:
            dest.unlink(missing_ok=True)
            raise OciError(
                f"downloading blob {layer.digest} failed: {type(exc).__name__}"
            ) from None
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        if written != layer.size:
            dest.unlink(missing_ok=True)
            raise OciError(f"blob {layer.digest} is {written} bytes, declared {layer.size}")
        if hasher.hexdigest() != expected:
            dest.unlink(missing_ok=True)
            raise OciError(
                f"blob does not match its digest: expected {layer.digest}, "
                f"got {algorithm}:{hasher.hexdigest()}"
            )

    def pull(self, repository: str, reference: str, workdir: Path) -> Pulled:
        """Resolve, then lay every layer out under ``workdir/files`` (``workdir`` must be empty)."""
        artifact = self.resolve(repository, reference)
        names = layout_names(artifact.layers)
        root = workdir / "files"
        staging = workdir / "staging"
        root.mkdir(mode=0o700)
        staging.mkdir(mode=0o700)
        budget = _Budget(self.limits.max_total_bytes)
        files: list[PulledFile] = []
        for index, (layer, name) in enumerate(zip(artifact.layers, names, strict=True)):
            target = _make_parents(root, name)
            if layer.compression == "zstd":
                staged = staging / f"{index}.zst"
                self.download_blob(repository, layer, staged, budget)
                _unzstd(staged, target, layer, self.limits, budget)
                staged.unlink()
            else:
                self.download_blob(repository, layer, target, budget)
            files.append(PulledFile(name, layer))
        return Pulled(artifact, root, tuple(files))


def _pick_from_index(document: dict[str, Any]) -> Descriptor:
    """The manifest an artifact index points at: the one without a platform, or its only one."""
    manifests = document.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise OciError("image index lists no manifests")
    entries = [_descriptor(m, f"index entry {i}") for i, m in enumerate(manifests[:1000])]
    raw = manifests[: len(entries)]
    platformless = [e for e, m in zip(entries, raw, strict=True) if not m.get("platform")]
    chosen = platformless[0] if platformless else (entries[0] if len(entries) == 1 else None)
    if chosen is None:
        raise OciError(
            f"image index of {len(entries)} platform images and no platform-less manifest: "
            "not a model artifact this scanner can pick a manifest from"
        )
    if chosen.media_type not in MANIFEST_TYPES:
        raise OciError(f"index entry has unsupported media type {chosen.media_type[:100]!r}")
    return chosen


def _make_parents(root: Path, name: str) -> Path:
    """``root/name`` with its directories created by us: never through an existing link or file."""
    current = root
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise OciError(f"layer path {name!r} runs through a file or link")
        if not current.exists():
            current.mkdir(mode=0o700)
    target = current / PurePosixPath(name).name
    if os.path.lexists(target):
        raise OciError(f"layer path {name!r} already exists")
    resolved_root = root.resolve()
    if resolved_root not in target.parent.resolve().parents and (
        target.parent.resolve() != resolved_root
    ):
        raise OciError(f"layer path {name!r} leaves the scan directory")
    return target


def _unzstd(src: Path, dest: Path, layer: Descriptor, limits: OciLimits, budget: _Budget) -> None:
    """Decompress a verified zstd layer to ``dest`` (a tar the engine walks), ratio-capped."""
    try:
        from backports import zstd  # lazy: only zstd layers need it ([server] extra)
    except ImportError:
        raise OciError(
            "a tar+zstd layer needs backports.zstd: pip install 'supplychain[server]'"
        ) from None

    cap = min(limits.max_blob_bytes, max(layer.size * limits.max_zstd_ratio, _ZSTD_MIN_CAP))
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with zstd.open(src, "rb") as stream, os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
            while block := stream.read(_CHUNK):
                written += len(block)
                if written > cap:
                    raise OciError(
                        f"zstd layer {layer.digest} expands past {cap} bytes "
                        "(OciLimits.max_zstd_ratio / max_blob_bytes)"
                    )
                budget.charge(len(block))
                out.write(block)
    except zstd.ZstdError as exc:
        dest.unlink(missing_ok=True)
        raise OciError(f"zstd layer {layer.digest} does not decompress: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def scan_artifact(
    registry_url: str,
    repository: str,
    reference: str,
    credentials: Credentials | None = None,
    *,
    policy: Policy | None = None,
    limits: OciLimits | None = None,
    insecure_hosts: frozenset[str] = frozenset(),
    verify: bool | ssl.SSLContext = True,
    workdir: str | Path | None = None,
    scan_fn: Callable[[Path], Report] | None = None,
) -> OciScan:
    """Pull ``repository@reference`` from ``registry_url`` into a temp dir and scan it.

    Raises ``OciError`` when the artifact cannot be pulled or laid out safely (the caller must
    report that as a failure). The report's target is the artifact reference, its paths are the
    layer names. ``scan_fn`` replaces ``service.run_scan([root], policy)`` (the server passes its
    own, with its policy and verdict cache).
    """
    if scan_fn is None:
        from supplychain.service import run_scan  # lazy: the engine is heavy

        def scan_fn(root: Path) -> Report:
            return run_scan([root], policy)

    with (
        tempfile.TemporaryDirectory(prefix="supplychain-oci-", dir=workdir) as tmp,
        RegistryClient(
            registry_url,
            credentials,
            limits=limits,
            insecure_hosts=insecure_hosts,
            verify=verify,
        ) as client,
    ):
        pulled = client.pull(repository, reference, Path(tmp))
        report = scan_fn(pulled.root)
    host = client.base.host + (f":{client.base.port}" if client.base.port else "")
    report = replace(report, target=(f"{host}/{repository}@{pulled.artifact.digest}",))
    return OciScan(pulled.artifact, pulled.files, report)


__all__ = [
    "ACCEPT",
    "KITOPS_CONFIG",
    "MODELPACK_ARTIFACT",
    "MODELPACK_CONFIG",
    "Artifact",
    "Credentials",
    "Descriptor",
    "OciError",
    "OciScan",
    "Pulled",
    "PulledFile",
    "Reference",
    "RegistryClient",
    "check_digest",
    "check_repository",
    "layout_names",
    "parse_challenge",
    "safe_name",
    "scan_artifact",
]
