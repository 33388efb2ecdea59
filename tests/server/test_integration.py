"""The real server in a subprocess on 127.0.0.1, over a socket: admission, auth, escape, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import SAMPLES, TOKEN, make_root, review

ROOT_DIR = Path(__file__).resolve().parent.parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def logs(self) -> list[dict[str, object]]:
        out = []
        for line in list(self.stderr):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = make_root(tmp_path)
    port = _free_port()
    env = {**os.environ, "SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PYTHONPATH": str(ROOT_DIR)}
    cmd = [
        sys.executable, "-m", "supplychain", "serve",
        "--root", str(root), "--host", "127.0.0.1", "--port", str(port),
        "--admission-budget", "20", "--workers", "1", "--body-timeout", "3",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    srv = Server(proc, f"http://127.0.0.1:{port}")
    end = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "server exited: " + "".join(srv.stderr)
        try:
            if httpx.get(srv.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < end, "server never became healthy"
        time.sleep(0.1)
    yield srv
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_real_server_over_a_socket(server: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        # no token → 401
        assert http.post("/v1/admission", json=review(models="evil.pkl")).status_code == 401
        # admission: malicious denied with the rule, clean admitted, same uid
        r = http.post("/v1/admission", json=review(uid="u-evil", models="evil.pkl"), headers=auth)
        assert r.status_code == 200
        resp = r.json()["response"]
        assert resp["uid"] == "u-evil" and resp["allowed"] is False
        assert "PKL001" in resp["status"]["message"]
        r = http.post("/v1/admission", json=review(uid="u-ok", models="clean"), headers=auth)
        assert r.json()["response"] == {
            "uid": "u-ok",
            "allowed": True,
            "auditAnnotations": {"verdict": "allow"},
        }
        # path escape → 400
        r = http.post("/v1/scan", json={"path": "../../etc/passwd"}, headers=auth)
        assert r.status_code == 400
        r = http.get("/metrics", headers=auth)
        assert 'supplychain_admission_total{decision="deny"} 1' in r.text

    # A client that stalls mid-body is cut off with 408 after --body-timeout (3 s).
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/admission HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        t0 = time.monotonic()
        answer = raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert 2.5 < time.monotonic() - t0 < 20

    # SIGTERM while a request is in flight (an upload still streaming): the server stops
    # accepting, finishes that request and its scan job, then exits 0.
    results: list[int] = []
    started = threading.Event()
    payload = (SAMPLES / "malicious" / "reduce_os_system.pkl").read_bytes()
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.pkl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        started.set()
        time.sleep(1.0)
        yield payload
        yield f"\r\n--{boundary}--\r\n".encode()

    def in_flight() -> None:
        headers = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        with httpx.Client(base_url=server.url, timeout=60) as http:
            r = http.post("/v1/scan", content=body(), headers=headers)
            results.append(r.status_code)
            results.append(r.json()["verdict"] == "fail")

    t = threading.Thread(target=in_flight)
    t.start()
    assert started.wait(30)
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    t.join(60)
    assert results == [200, True]
    logs = server.logs()
    messages = [e.get("msg") for e in logs]
    assert "stopped" in messages and "draining" in messages
    assert all(TOKEN not in line for line in server.stderr)
    assert any(e.get("status") == 401 for e in logs)


def test_refuses_to_start_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SUPPLYCHAIN_SERVER_TOKEN"}
    env["PYTHONPATH"] = str(ROOT_DIR)
    done = subprocess.run(
        [sys.executable, "-m", "supplychain", "serve", "--root", str(tmp_path), "--port", "1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no token" in done.stderr and "Traceback" not in done.stderr


def test_token_file(tmp_path: Path) -> None:
    import argparse

    from supplychain.core.errors import ConfigError
    from supplychain.server.cli import config_from

    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    args = argparse.Namespace(
        root=tmp_path, token_file=tok, insecure_no_auth=False, tls_cert=None, tls_key=None,
        port=8080, cache=None, verdicts=None, policy=None, max_upload=10, max_body=10,
        admission_budget=1.0, queue=4, workers=1,
    )  # fmt: skip
    assert config_from(args).token == TOKEN
    tok.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        config_from(args)
    tok.write_text("short")
    with pytest.raises(ConfigError, match="at least") as info:
        config_from(args)
    assert "short" not in str(info.value)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (what the API server would verify via caBundle)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "supplychain.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp / "tls.crt", tmp / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def test_https_admission(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the webhook over HTTPS, verified against its certificate."""
    import ssl

    root = make_root(tmp_path)
    crt, pem = _self_signed(tmp_path)
    port = _free_port()
    env = {**os.environ, "SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PYTHONPATH": str(ROOT_DIR)}
    cmd = [
        sys.executable, "-m", "supplychain", "serve", "--root", str(root), "--port", str(port),
        "--tls-cert", str(crt), "--tls-key", str(pem),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    srv = Server(proc, f"https://127.0.0.1:{port}")
    context = ssl.create_default_context(cafile=str(crt))
    try:
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "server exited: " + "".join(srv.stderr)
            try:
                if httpx.get(srv.url + "/healthz", verify=context, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, "server never became healthy"
            time.sleep(0.1)
        with httpx.Client(base_url=srv.url, verify=context, timeout=60) as http:
            r = http.post(
                "/v1/admission",
                json=review(uid="tls", models="evil.pkl"),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert r.json()["response"]["allowed"] is False
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_missing_server_extra_exits_2_without_traceback(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as if the [server] extra were not installed\n"
        "from supplychain.cli import main\n"
        f"sys.exit(main(['serve', '--root', {str(tmp_path)!r}]))\n"
    )
    env = {**os.environ, "SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PYTHONPATH": str(ROOT_DIR)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "supplychain[server]" in done.stderr and "Traceback" not in done.stderr
