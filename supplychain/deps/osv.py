"""A small, bounded OSV ``/v1/query`` client (stdlib ``urllib``): no surprises on a bad day.

Every request has a timeout, every answer a size cap, and the whole lookup one time budget. 429
and 5xx answers and connection failures are retried with exponential backoff, honouring
``Retry-After`` while it fits the budget. Redirects are refused (a query must reach the service
it names). Whatever goes wrong becomes an ``OsvError`` with a one-line cause, which the audit turns
into a "could not audit" finding that fails the gate: an unreachable service is never a pass.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from supplychain.core.errors import ConfigError
from supplychain.core.limits import OsvLimits

BACKOFF = 0.5
"""First retry delay in seconds; doubled each time."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
USER_AGENT = "supplychain-deps (+https://github.com/supplychain)"


class OsvError(Exception):
    """The service could not answer; ``str(exc)`` is the cause, fit for a finding."""


def check_url(url: str) -> str:
    """The endpoint if usable (``http(s)://host/...``), else ``ConfigError`` (exit 2)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"OSV URL must be http(s)://host/…/v1/query, got {url!r:.200}")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then surfaces as an HTTPError


@dataclass
class Deadline:
    """One time budget shared by every request of a run (thread-safe reads of the clock)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.start)


class OsvClient:
    """``query(name, version)`` → the advisories (raw OSV dicts) for a PyPI package."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        deadline: Deadline | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limits: OsvLimits | None = None,
    ) -> None:
        self.url = check_url(url)
        self.limits = limits or OsvLimits()
        self.timeout = timeout
        self.deadline = deadline or Deadline(120.0)
        self.sleep = sleep
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if urlsplit(url).hostname in LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))  # a local mirror is never proxied
        self.opener = urllib.request.build_opener(*handlers)
        self.requests = 0
        self._lock = threading.Lock()

    def query(self, name: str, version: str | None) -> list[dict[str, Any]]:
        """Every advisory OSV lists for ``name`` (at ``version`` when given), pages followed."""
        body: dict[str, Any] = {"package": {"name": name, "ecosystem": "PyPI"}}
        if version:
            body["version"] = version
        vulns: list[dict[str, Any]] = []
        for _page in range(self.limits.max_pages):
            answer = self._post(body)
            got = answer.get("vulns", [])
            if not isinstance(got, list) or not all(isinstance(v, dict) for v in got):
                raise OsvError("malformed answer: 'vulns' is not a list of objects")
            for vuln in got:
                if not isinstance(vuln.get("id"), str) or not vuln["id"]:
                    raise OsvError("malformed answer: an advisory without an id")
            vulns.extend(got)
            token = answer.get("next_page_token")
            if not token:
                return vulns
            if not isinstance(token, str):
                raise OsvError("malformed answer: next_page_token is not a string")
            body = {**body, "page_token": token}
        raise OsvError(f"more than {self.limits.max_pages} pages of advisories")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        last = "no attempt made"
        attempts = self.limits.max_attempts
        cap = self.limits.max_response_bytes
        for attempt in range(attempts):
            left = self.deadline.remaining()
            if left <= 0:
                raise OsvError(f"time budget spent ({last})")
            request = urllib.request.Request(  # noqa: S310 - scheme checked in check_url
                self.url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            )
            wait: float | None = BACKOFF * 2**attempt
            try:
                with self._lock:
                    self.requests += 1
                with self.opener.open(request, timeout=min(self.timeout, left)) as response:
                    raw = response.read(cap + 1)
                if len(raw) > cap:
                    raise OsvError(f"answer larger than {cap} bytes")
                try:
                    doc = json.loads(raw)
                except (ValueError, RecursionError) as exc:
                    raise OsvError(f"malformed JSON answer: {exc}") from None
                if not isinstance(doc, dict):
                    raise OsvError("malformed answer: not a JSON object")
                return doc
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code not in RETRY_STATUSES:
                    raise OsvError(f"HTTP {exc.code} {exc.reason}") from None
                after = _retry_after(exc.headers.get("Retry-After"))
                if exc.code == 429:
                    last = "rate limited (HTTP 429)"
                if after is not None:
                    if after > self.deadline.remaining():
                        raise OsvError(
                            f"{last}: Retry-After {after:g} s exceeds the remaining time budget"
                        ) from None
                    wait = after
            except urllib.error.URLError as exc:
                reason = exc.reason
                last = f"connection failed: {reason}"
                if isinstance(reason, TimeoutError):
                    last = f"timed out after {min(self.timeout, left):g} s"
            except TimeoutError:
                last = f"timed out after {min(self.timeout, left):g} s"
            except (ConnectionError, OSError) as exc:
                last = f"connection failed: {exc}"
            except http.client.HTTPException as exc:
                last = f"broken answer: {type(exc).__name__}"
            except OsvError:
                raise
            if attempt + 1 < attempts:
                left = self.deadline.remaining()
                if wait is not None and wait >= left:
                    raise OsvError(f"{last} (no time left to retry)")
                self.sleep(max(0.0, wait or 0.0))
        raise OsvError(f"{last} after {attempts} attempts")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["Deadline", "OsvClient", "OsvError", "check_url"]
