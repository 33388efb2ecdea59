"""Fixtures: a fake OSV service on 127.0.0.1, and no other host reachable."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.deps.fakeosv import FakeOsv, advisory

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
CRITICAL_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here is local: resolving or connecting to any other host fails."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: object, *args: object, **kw: object) -> object:
        if host not in LOCAL_HOSTS and host is not None:
            raise OSError(f"test tried to resolve {host!r}: tests never touch the internet")
        return real_getaddrinfo(host, *args, **kw)  # type: ignore[arg-type]

    def connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in LOCAL_HOSTS:
            raise OSError(f"test tried to connect to {address!r}")
        real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.delenv("SUPPLYCHAIN_OSV_URL", raising=False)


@pytest.fixture
def osv() -> Iterator[FakeOsv]:
    """A running fake OSV with advisories for torch 2.1.0 (critical), requests < 2.20 (database
    MODERATE), numpy (withdrawn) and pillow (no severity at all)."""
    server = FakeOsv().start()
    server.add(
        "torch",
        advisory(
            "GHSA-torch-0001",
            "torch",
            introduced="2.0.0",
            fixed="2.2.0",
            versions=["2.0.0", "2.1.0"],
            vector=CRITICAL_VECTOR,
            aliases=["CVE-2099-0001"],
        ),
    )
    server.add(
        "requests",
        advisory("PYSEC-2018-28", "requests", fixed="2.20.0", db_severity="MODERATE"),
    )
    server.add("numpy", advisory("GHSA-numpy-gone", "numpy", withdrawn="2024-01-01T00:00:00Z"))
    server.add("pillow", advisory("OSV-pillow-0001", "pillow", fixed="10.0.0"))
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A /v1/query URL on a 127.0.0.1 port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/query"
