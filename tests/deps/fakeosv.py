"""A fake OSV service: a real ``ThreadingHTTPServer`` on 127.0.0.1 answering ``POST /v1/query``.

Advisories are OSV JSON dicts keyed by package; a query with a version gets those whose
``affected`` versions or ECOSYSTEM ranges contain it (as OSV does), a query without one gets all.
``mode`` switches the server into an outage: ``500``, ``429`` (with ``Retry-After``), ``sleep``
(answers after ``delay`` seconds), ``truncated`` (a cut JSON body), ``malformed`` (not JSON),
``redirect``. Every request is counted, so a test can prove an offline scan asked nothing.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version


def _affects(vuln: dict[str, Any], name: str, version: str) -> bool:
    v = Version(version)
    for affected in vuln.get("affected", []):
        if canonicalize_name(affected["package"]["name"]) != name:
            continue
        if version in affected.get("versions", []):
            return True
        for rng in affected.get("ranges", []):
            low = None
            for event in rng.get("events", []):
                if "introduced" in event:
                    low = Version(event["introduced"])
                elif "fixed" in event and low is not None:
                    if low <= v < Version(event["fixed"]):
                        return True
                    low = None
            if low is not None and v >= low:
                return True
    return False


class FakeOsv:
    """``start()`` → serving; ``url`` is the full ``/v1/query`` URL."""

    def __init__(self) -> None:
        self.advisories: dict[str, list[dict[str, Any]]] = {}
        self.mode = "ok"
        self.delay = 2.0
        self.retry_after = "1"
        self.endless = False
        """In ``pages`` mode: always hand out another page token."""
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append(body)
                mode = fake.mode
                if self.path != "/v1/query":
                    self._send(404, b'{"error":"not found"}')
                elif mode == "500":
                    self._send(500, b"internal error")
                elif mode == "429":
                    self._send(429, b"slow down", {"Retry-After": fake.retry_after})
                elif mode == "redirect":
                    self._send(302, b"", {"Location": "http://127.0.0.1:9/v1/query"})
                elif mode == "malformed":
                    self._send(200, b"<html>not json</html>")
                elif mode == "truncated":
                    payload = json.dumps(fake.answer(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload) + 100))
                    self.end_headers()
                    self.wfile.write(payload[: max(1, len(payload) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    if mode == "sleep":
                        time.sleep(fake.delay)
                    self._send(200, json.dumps(fake.answer(body)).encode())

            def _send(
                self, code: int, payload: bytes, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/query"

    def start(self) -> FakeOsv:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, package: str, vuln: dict[str, Any]) -> None:
        self.advisories.setdefault(str(canonicalize_name(package)), []).append(vuln)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(canonicalize_name(body["package"]["name"]))
        vulns = self.advisories.get(name, [])
        version = body.get("version")
        if version:
            vulns = [v for v in vulns if _affects(v, name, version)]
        if self.mode == "pages":  # one advisory per page, then a token for the next
            page = int(body.get("page_token", "0"))
            out: dict[str, Any] = {"vulns": vulns[page : page + 1]}
            if page + 1 < len(vulns) or self.endless:
                out["next_page_token"] = str(page + 1)
            return out
        return {"vulns": vulns} if vulns else {}


def advisory(
    vid: str,
    package: str,
    *,
    introduced: str = "0",
    fixed: str | None = None,
    versions: list[str] | None = None,
    vector: str | None = None,
    db_severity: str | None = None,
    withdrawn: str | None = None,
    aliases: list[str] | None = None,
) -> dict[str, Any]:
    """An advisory in OSV JSON shape."""
    events: list[dict[str, str]] = [{"introduced": introduced}]
    if fixed:
        events.append({"fixed": fixed})
    vuln: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": vid,
        "summary": f"{package} is vulnerable ({vid})",
        "aliases": aliases or [],
        "affected": [
            {
                "package": {"name": package, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": versions or [],
            }
        ],
    }
    if vector:
        vuln["severity"] = [{"type": "CVSS_V3", "score": vector}]
    if db_severity:
        vuln["database_specific"] = {"severity": db_severity}
    if withdrawn:
        vuln["withdrawn"] = withdrawn
    return vuln
