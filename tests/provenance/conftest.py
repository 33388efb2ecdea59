"""Fixtures: a running fake Hub, the client pointed at it, and HF homes inside ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provenance.fakehub import FakeHub, FakeRepo

REPO_ID = "acme-lab/tiny-model"


def repo_files() -> dict[str, bytes]:
    """A small model repo: config, tokenizer, a sub-directory and two LFS weights."""
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "config.json": b'{"model_type": "bert", "hidden_size": 8}\n',
        "README.md": b"# tiny\n",
        "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nhello\n",
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 8,
        "extra/weights.bin": bytes(range(200)) * 20,
    }


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every provenance test is local: resolving or connecting to any other host fails."""
    import socket

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


@pytest.fixture
def fakehub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake Hub serving ``REPO_ID``; ``HF_ENDPOINT``, ``HF_HOME`` and the cache point at it."""
    import huggingface_hub.constants as constants

    hub = FakeHub().start()
    hub.add(
        FakeRepo(REPO_ID, repo_files(), lfs=frozenset({"model.safetensors", "extra/weights.bin"}))
    )
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield hub
    finally:
        hub.stop()
