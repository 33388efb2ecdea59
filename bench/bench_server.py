"""Load test of ``supplychain serve`` on loopback (issue #15): cached admission and overload.

Starts the real server (``python -m supplychain serve``) in a subprocess on 127.0.0.1 and drives
it with a bounded number of client threads (keep-alive ``httpx`` clients).

1. **Cached admission**: AdmissionReviews for a Pod whose model is (a) an image volume with a
   verdict recorded by digest, (b) a path under ``--root`` already scanned, answered by the
   unchanged-tree memo, (c) the same with ``--no-memo``: a re-scan in the job queue that the
   verdict cache (``--cache``) answers without reading content.
   Reports requests/s, p50/p99 latency and server CPU per request, per kind, after 200 warm-up
   requests (target p99 < 50 ms).
2. **Overload**: a small queue (``--queue 2 --workers 1``) and many distinct, never-scanned
   models, half of them malicious, sent at once. Counts 200-allowed / 200-denied / 503 (each 503
   must carry ``Retry-After``); any malicious model allowed is a failure. Then SIGTERM: the server
   must exit 0 with every accepted job completed (its final log line counts them).
3. **SIGTERM under load**: the same with 8x the models and SIGTERM once ``--models`` answers have
   arrived: requests after the signal are refused at the socket (or 503 while draining), none is
   admitted wrongly, no accepted job is lost.

Usage: ``python bench/bench_server.py [--requests 2000] [--clients 8] [--models 120]``.
Prints the server's CPU seconds (from ``wait4``) beside the wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT_DIR = Path(__file__).resolve().parent.parent
SAMPLES = ROOT_DIR / "samples"
TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DIGEST = "sha256:" + "ab" * 32


def review(uid: str, models: str | None = None, image: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "bench"}
    if models:
        meta["annotations"] = {"supplychain/models": models}
    volumes = [{"name": "m", "image": {"reference": image}}] if image else []
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": {"metadata": meta, "spec": {"containers": [], "volumes": volumes}},
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, root: Path, work: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SUPPLYCHAIN_SERVER_TOKEN": TOKEN, "PYTHONPATH": str(ROOT_DIR)}
        cmd = [
            sys.executable, "-m", "supplychain", "serve", "--root", str(root),
            "--port", str(self.port), *extra,
        ]  # fmt: skip
        self.log = (work / f"server-{self.port}.log").open("w+")
        self.proc = subprocess.Popen(cmd, env=env, stderr=self.log, cwd=work)
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit("server exited: " + self.log.read())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                raise SystemExit("server never became healthy")
            time.sleep(0.1)

    def cpu(self) -> float:
        """The server's CPU seconds so far (utime + stime from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, signalled: bool = False) -> tuple[int, float, list[dict[str, Any]]]:
        """SIGTERM (unless already sent); (exit status, server CPU seconds, JSON log lines)."""
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.log.seek(0)
        lines = []
        for line in self.log:
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
        return self.proc.returncode, usage.ru_utime + usage.ru_stime, lines


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drive(
    url: str, bodies: list[dict[str, Any]], clients: int, answered: list[int] | None = None
) -> list[tuple[int, float, Any]]:
    """POST every body to /v1/admission from ``clients`` threads; (status, seconds, json).

    ``answered`` (if given) gets one entry per HTTP answer as it arrives (progress for a caller).
    """
    local = threading.local()

    def one(body: dict[str, Any]) -> tuple[int, float, Any]:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=60, headers=AUTH)
        t0 = time.perf_counter()
        try:
            r = http.post("/v1/admission", json=body)
        except httpx.TransportError:  # the server stopped accepting (SIGTERM): not an answer
            return -1, time.perf_counter() - t0, (None, None)
        dt = time.perf_counter() - t0
        if answered is not None:
            answered.append(r.status_code)
        payload = (
            r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        )
        return r.status_code, dt, (payload, r.headers.get("retry-after"))

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, bodies))


def cached_phase(work: Path, requests: int, clients: int) -> None:
    root = work / "root"
    shutil.copytree(SAMPLES / "benign", root / "clean")
    verdicts = work / "verdicts.sqlite"
    sys.path.insert(0, str(ROOT_DIR))
    from supplychain.server.verdicts import VerdictStore

    store = VerdictStore(verdicts)
    store.record(DIGEST, True, "passed")
    store.close()
    extra = ["--verdicts", str(verdicts), "--workers", "2", "--queue", "64"]
    extra += ["--cache", str(work / "cache.sqlite")]
    time.sleep(2.5)  # past the settle window: files being written are never memoised or cached
    for memo in (True, False):
        flags = [*extra, *([] if memo else ["--no-memo"])]
        _cached_run(root, work, flags, requests, clients, memo)


def _cached_run(
    root: Path, work: Path, extra: list[str], requests: int, clients: int, memo: bool
) -> None:
    srv = Server(root, work, *extra)
    try:
        warm = drive(srv.url, [review("warm", models="clean")], 1)[0]
        assert warm[0] == 200 and warm[2][0]["response"]["allowed"], warm
        for kind, body in (
            ("image digest (verdict store)", lambda i: review(f"i{i}", image=f"r.x/m@{DIGEST}")),
            ("path model (" + ("unchanged-tree memo" if memo else "verdict cache, --no-memo") + ")",
             lambda i: review(f"p{i}", models="clean")),
        ):  # fmt: skip
            drive(srv.url, [body(-i) for i in range(1, 201)], clients)  # warm: pool, SQLite
            bodies = [body(i) for i in range(requests)]
            cpu0 = srv.cpu()
            t0 = time.perf_counter()
            out = drive(srv.url, bodies, clients)
            wall = time.perf_counter() - t0
            per_request_ms = (srv.cpu() - cpu0) / requests * 1000
            ok = sum(1 for s, _, (p, _) in out if s == 200 and p["response"]["allowed"])
            lat = [d for _, d, _ in out]
            print(
                f"{kind}: {requests} requests, {clients} clients: {requests / wall:.0f} req/s, "
                f"p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, "
                f"allowed {ok}/{requests}, server CPU {per_request_ms:.2f} ms/request"
            )
        metrics = httpx.get(srv.url + "/metrics", headers=AUTH).text
        hits = [
            ln for ln in metrics.splitlines()
            if ln.startswith(("supplychain_cache_hits_total", "supplychain_memo_hits_total",
                              "supplychain_scans_total"))
        ]  # fmt: skip
        print("  " + "; ".join(hits))
    finally:
        code, cpu, _ = srv.stop()
        print(f"  server exit {code}, server CPU {cpu:.1f} s")


def overload_phase(work: Path, models: int, clients: int, sigterm_after: int | None) -> None:
    """Distinct unscanned models at once against a tiny queue; optionally SIGTERM mid-load
    (once ``sigterm_after`` answers have arrived)."""
    root = work / ("root-term" if sigterm_after is not None else "root-load")
    root.mkdir()
    clean = (SAMPLES / "benign" / "model.safetensors").read_bytes()
    evil = (SAMPLES / "malicious" / "reduce_os_system.pkl").read_bytes()
    bodies = []
    malicious = set()
    for i in range(models):
        name = f"m{i:04d}"
        d = root / name
        d.mkdir()
        # Every directory differs by its note file, so no model is answered whole from a cache.
        (d / f"note{i}.txt").write_text(f"model {i}\n")
        if i % 2:
            (d / "model.pkl").write_bytes(evil)
            malicious.add(name)
        else:
            (d / "model.safetensors").write_bytes(clean)
        bodies.append(review(f"o{i}", models=name))
    srv = Server(root, work, "--queue", "2", "--workers", "1", "--admission-budget", "0.5")
    out: list[tuple[int, float, Any]] = []
    t0 = time.perf_counter()
    answered: list[int] = []
    runner = threading.Thread(target=lambda: out.extend(drive(srv.url, bodies, clients, answered)))
    runner.start()
    if sigterm_after is not None:
        while len(answered) < sigterm_after and runner.is_alive():
            time.sleep(0.005)
        srv.proc.send_signal(signal.SIGTERM)
    runner.join()
    wall = time.perf_counter() - t0
    allowed = denied = busy = other = wrong = no_retry = refused = 0
    for body, (status, _, (payload, retry)) in zip(bodies, out, strict=True):
        name = body["request"]["object"]["metadata"]["annotations"]["supplychain/models"]
        if status == 200 and payload["response"]["allowed"]:
            allowed += 1
            wrong += name in malicious
        elif status == 200:
            denied += 1
        elif status in (429, 503):
            busy += 1
            no_retry += retry is None
        elif status == -1:
            refused += 1
        else:
            other += 1
    code, cpu, logs = srv.stop(signalled=sigterm_after is not None)
    stopped = [e for e in logs if e.get("msg") == "stopped"]
    counts = stopped[-1] if stopped else {}
    lost = (
        int(counts.get("accepted", -1))
        - int(counts.get("completed", 0))
        - int(counts.get("failed", 0))
    )
    when = f"SIGTERM after {sigterm_after} answers" if sigterm_after is not None else "no signal"
    print(
        f"overload ({when}): {models} distinct unscanned models, {clients} clients, queue 2, "
        f"1 worker, budget 0.5 s: {wall:.1f} s wall; allowed {allowed}, denied {denied}, "
        f"503 {busy} (without Retry-After: {no_retry}), connection refused after SIGTERM "
        f"{refused}, other {other}; malicious allowed: {wrong}"
    )
    print(
        f"  exit {code}; jobs accepted {counts.get('accepted')}, completed "
        f"{counts.get('completed')}, failed {counts.get('failed')}, lost {lost}; "
        f"server CPU {cpu:.1f} s"
    )
    if wrong or no_retry or other or lost or code != 0 or (sigterm_after is None and refused):
        raise SystemExit("overload check FAILED")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--models", type=int, default=120)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        cpu0 = time.process_time()
        cached_phase(work, args.requests, args.clients)
        overload_phase(work, args.models, max(args.clients, 32), None)
        overload_phase(work, args.models * 8, max(args.clients, 32), args.models)
        print(f"client CPU {time.process_time() - cpu0:.1f} s; load avg {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
