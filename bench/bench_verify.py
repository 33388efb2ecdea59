"""``scan --hf`` (scan + verify against a Hub commit, one pass) vs the hashing floor.

Builds ``--gb`` GB of safetensors shards plus small config files, serves their metadata from the
fake Hub (``tests/provenance/fakehub.py``: a real HTTP server on 127.0.0.1; the LFS sha256 the
Hub lists is the one ``openssl dgst -sha256`` printed), then times, in the same run, best of
``--repeat`` with a warm page cache:

- ``openssl dgst -sha256`` over every file (the floor: each byte read and hashed once);
- ``supplychain scan DIR`` (every scanner, no verification), for the provenance overhead;
- ``supplychain scan DIR --hf ORG/NAME --revision COMMIT`` (every scanner + verification).

The ratio is the second over the first. Verification reuses the sha256 the engine computed while
scanning; only the small non-LFS files are read again (for their git blob sha1).

Usage: python bench/bench_verify.py --dir /tmp/sc-verify --gb 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.provenance.fakehub import FakeHub, FakeRepo  # noqa: E402

CHUNK = 64 << 20
REPO_ID = "bench-org/big-model"


def make_safetensors(path: Path, size: int) -> None:
    n = size // 4
    header = {"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    block = os.urandom(CHUNK)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        left = n * 4
        while left > 0:
            fh.write(block[: min(left, CHUNK)])
            left -= min(left, CHUNK)


class MetadataRepo(FakeRepo):
    """A repo whose big files are known by size and sha256 only (never held in memory)."""

    def __init__(self, small: dict[str, bytes], big: dict[str, tuple[int, str]]) -> None:
        super().__init__(REPO_ID, dict(small))
        self.big = big

    @property
    def commit(self) -> str:
        return hashlib.sha1(json.dumps(sorted(self.big.items())).encode()).hexdigest()

    def info(self, commit: str, security: bool) -> dict[str, object]:
        doc = super().info(commit, security)
        siblings = list(doc["siblings"])  # type: ignore[call-overload]
        for name, (size, sha) in sorted(self.big.items()):
            siblings.append(
                {
                    "rfilename": name,
                    "size": size,
                    "blobId": "0" * 40,
                    "lfs": {"sha256": sha, "size": size, "pointerSize": 134},
                }
            )
        doc["siblings"] = siblings
        return doc


def openssl(files: list[Path]) -> tuple[float, dict[str, str]]:
    t0 = time.perf_counter()
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.perf_counter() - t0
    digests = {}
    for line in out.splitlines():
        digest, name = line.split(" ", 1)
        digests[Path(name.lstrip("*")).name] = digest
    return elapsed, digests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sc-bench-verify"))
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", action="store_true", help="keep the generated directory")
    args = ap.parse_args()

    root: Path = args.dir
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    small = {
        "config.json": b'{"model_type": "llama", "hidden_size": 4096}\n',
        "README.md": b"# bench\n",
        "model.safetensors.index.json": json.dumps(
            {"weight_map": {f"w{i}": f"model-{i:05d}.safetensors" for i in range(args.shards)}}
        ).encode(),
    }
    for name, data in small.items():
        (root / name).write_bytes(data)
    shard = int(args.gb * 2**30 / args.shards)
    names = [f"model-{i:05d}.safetensors" for i in range(args.shards)]
    for name in names:
        make_safetensors(root / name, shard)
    files = sorted(p for p in root.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)

    openssl(files)  # warm the page cache
    floor, digests = min((openssl(files) for _ in range(args.repeat)), key=lambda r: r[0])
    big = {n: ((root / n).stat().st_size, digests[n]) for n in names}
    hub = FakeHub().start()
    repo = MetadataRepo(small, big)
    hub.add(repo)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(root.parent / "bench-hf-home")}
    cmd = [
        sys.executable, "-m", "supplychain", "scan", str(root), "--hf", REPO_ID,
        "--revision", repo.commit, "-q", "-f", "json", "-o", str(root.parent / "verify.json"),
        "-j", str(args.jobs),
    ]  # fmt: skip
    plain_cmd = cmd[: cmd.index("--hf")] + cmd[cmd.index("-q") :]
    times, plain = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run(plain_cmd, env=env, cwd=ROOT, check=False)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            print(f"scan --hf exited {proc.returncode}: not a clean verification", file=sys.stderr)
            return 1
    hub.stop()
    report = json.loads((root.parent / "verify.json").read_text())
    states = [f["value"] for f in report["facts"] if f["key"] == "provenance.state"]
    assert states and set(states) == {"verified"}, states
    best = min(times)
    gb = total / 2**30
    print(
        f"files={len(files)} size={gb:.2f} GiB jobs={args.jobs} "
        f"openssl={floor:.2f}s ({gb / floor:.2f} GiB/s) "
        f"scan={min(plain):.2f}s scan--hf={best:.2f}s ({gb / best:.2f} GiB/s) "
        f"ratio={best / floor:.2f}x (plain scan {min(plain) / floor:.2f}x) "
        f"verified={len(states)}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
