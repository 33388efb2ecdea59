"""A safely instrumented CPython unpickler, run in a child process: the differential oracle.

Tests only, never product code. The oracle answers "which globals would a real unpickler *call*
on these bytes?" without ever touching a real object: ``find_class`` records the name and
returns an inert stand-in class, ``persistent_load`` returns an inert instance, and every
construction, call, ``__setstate__``, item or attribute store on a stand-in only records. The
oracle assumes every ``module.name`` that *could* exist does (the victim may have any package
installed), except names that are not dotted identifiers, which no installed module has. The
machinery is CPython's own pure-Python ``pickle._Unpickler`` (same opcode semantics as the C
one, easier to reason about), so stack discipline, MARK handling, memo, framing, protocol-0 text
parsing and error points are the interpreter's, not ours.

Belt and braces around "inert": the child runs with CPU and address-space limits
(``resource.setrlimit``), no network is needed, stdin carries the payloads and stdout the
results (length-prefixed), and the parent kills it on a wall-clock timeout. A torch-style zip is
handled by unpickling its ``*/data.pkl`` member (the way ``torch.load`` does) with the stand-in
``persistent_load``.

Run as ``python -m tests.oracle_unpickler`` (the child side); use ``Oracle`` from the parent.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent

CPU_SECONDS = 120
"""RLIMIT_CPU of one child (cumulative over its batch; the parent restarts it when exceeded)."""
MEMORY_BYTES = 1 << 30
"""RLIMIT_AS of one child."""
WALL_SECONDS = 10.0
"""Per-payload wall-clock budget before the parent kills and restarts the child."""


@dataclass(frozen=True, slots=True)
class OracleResult:
    """What the unpickler did with one payload.

    ``calls`` are the globals it invoked (REDUCE/INST/OBJ on a stand-in class, or a call of a
    stand-in instance whose class came from that global); ``imports`` every ``find_class``;
    ``news`` the NEWOBJ/``__new__`` rebuilds; ``error`` the exception that stopped it (calls
    recorded before it still happened: the nullifAI shape); ``timeout`` when it had to be killed.
    """

    calls: tuple[tuple[str, str], ...]
    imports: tuple[tuple[str, str], ...]
    news: tuple[tuple[str, str], ...]
    error: str | None
    timeout: bool = False


# ---------------------------------------------------------------------------------------------
# Child side.


def _child_main() -> None:  # pragma: no cover - runs in the child
    import pickle
    import resource
    import zipfile
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    sys.setrecursionlimit(2000)

    log: dict[str, list[tuple[str, str]]] = {"calls": [], "imports": [], "news": []}

    class StandInMeta(type):
        """Metaclass of stand-in classes: calling one (REDUCE/INST/OBJ) only records."""

        _origin: tuple[str, str]

        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            log["calls"].append(cls._origin)
            return _instance(cls._origin)

    class StandInBase(metaclass=StandInMeta):
        _origin: tuple[str, str] = ("", "")

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            # NEWOBJ: ``cls.__new__(cls, *args)``; records a rebuild, never a call.
            log["news"].append(cls._origin)
            return _instance(cls._origin)

    class Inert:
        """Every instance the oracle hands back: stores and calls only record."""

        _origin: tuple[str, str] = ("", "")

        def __call__(self, *args: Any, **kwargs: Any) -> Inert:
            log["calls"].append(self._origin)
            return _instance(self._origin)

        def __setstate__(self, state: Any) -> None:
            return None

        def __setitem__(self, key: Any, value: Any) -> None:
            return None

        def append(self, value: Any) -> None:
            return None

        def extend(self, values: Any) -> None:
            return None

        def add(self, value: Any) -> None:
            return None

        def update(self, values: Any) -> None:
            return None

    def _instance(origin: tuple[str, str]) -> Inert:
        inst = object.__new__(Inert)
        object.__setattr__(inst, "_origin", origin)
        return inst

    class Recording(pickle._Unpickler):
        proto: int
        fix_imports: bool

        def find_class(self, module: str, name: str) -> Any:
            if self.proto < 3 and self.fix_imports:
                if (module, name) in NAME_MAPPING:
                    module, name = NAME_MAPPING[(module, name)]
                elif module in IMPORT_MAPPING:
                    module = IMPORT_MAPPING[module]
            if self.proto < 4 and "." in name:
                # What the real unpickler does: getattr(module, "a.b") fails below protocol 4.
                raise AttributeError(f"Can't get attribute {name!r} on {module!r}")
            if not all(p.isidentifier() for p in [*module.split("."), *name.split(".")]):
                # No installable module or attribute has such a name: the real import fails.
                # (Everything else is assumed importable: the victim may have any package.)
                raise ModuleNotFoundError(f"No module named {module!r}")
            log["imports"].append((module, name))
            return StandInMeta(
                "StandIn", (StandInBase,), {"_origin": (module, name), "__module__": "oracle"}
            )

        def persistent_load(self, pid: Any) -> Any:
            return _instance(("<persistent>", "load"))

    def judge(data: bytes) -> dict[str, Any]:
        for key in log:
            log[key] = []
        error = None
        stream = data
        try:
            if data[:4] == b"PK\x03\x04":
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    member = next(n for n in z.namelist() if n.endswith("data.pkl"))
                    stream = z.read(member)
            Recording(io.BytesIO(stream)).load()
        except BaseException as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return {**log, "error": error}

    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (n,) = struct.unpack("<I", head)
        out = json.dumps(judge(stdin.read(n))).encode()
        stdout.write(struct.pack("<I", len(out)) + out)
        stdout.flush()


# ---------------------------------------------------------------------------------------------
# Parent side.


class Oracle:
    """A long-lived child process judging payloads one at a time (restarted when it dies)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-c",
                    "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from tests.oracle_unpickler import _child_main; _child_main()",
                    str(ROOT),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=str(ROOT),
            )
        return self.proc

    def close(self) -> None:
        """Stop the child (closing stdin lets it exit; kill if it does not)."""
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.restarts += 1

    def judge(self, data: bytes) -> OracleResult:
        """Run ``data`` through the instrumented unpickler in the child."""
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(struct.pack("<I", len(data)) + data)
            proc.stdin.flush()
            head = _read_exact(proc.stdout, 4, WALL_SECONDS)
            (n,) = struct.unpack("<I", head)
            raw = _read_exact(proc.stdout, n, WALL_SECONDS)
        except (TimeoutError, BrokenPipeError, EOFError):
            self._kill()
            return OracleResult((), (), (), "oracle child died or timed out", timeout=True)
        got = json.loads(raw)
        return OracleResult(
            calls=tuple((m, n) for m, n in got["calls"]),
            imports=tuple((m, n) for m, n in got["imports"]),
            news=tuple((m, n) for m, n in got["news"]),
            error=got["error"],
        )


def _read_exact(stream: IO[bytes], n: int, timeout: float) -> bytes:
    buf = b""
    fd = stream.fileno()
    while len(buf) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


if __name__ == "__main__":  # pragma: no cover
    _child_main()
