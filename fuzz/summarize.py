"""Total a ``run.sh`` log across its segments: the figures ``fuzz/README.md`` records.

``python -m fuzz.summarize <harness>...`` prints one Markdown table row per harness: wall
seconds, executions, executions per wall second, final coverage (libFuzzer ``cov``/``ft``),
corpus files, and what stopped each segment (uncaught exception, timeout, out of memory).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATUS = re.compile(r"^#(\d+)\s+(?:INITED|NEW|REDUCE|pulse|DONE|RELOAD)\s+cov: (\d+) ft: (\d+)")
EXECS = re.compile(r"^stat::number_of_executed_units: (\d+)")
WALL = re.compile(r"^=== finished .* wall (\d+) s")
DONE = re.compile(r"^Done \d+ runs in (\d+) second")


@dataclass
class Summary:
    """Figures for one harness's log."""

    wall: int = 0
    execs: int = 0
    seed_cov: int = 0
    """``cov`` once the seed corpus was loaded (first INITED line): the fuzzing gain is the rest."""
    cov: int = 0
    ft: int = 0
    segments: int = 0
    stops: list[str] = field(default_factory=list)


def summarize(log: Path) -> Summary:
    """Parse one log; a segment without final stats counts its last status line's executions."""
    out = Summary()
    seg_execs = 0
    seg_final: int | None = None
    lines = log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("=== segment") and "exited" not in line:
            out.segments += 1
            seg_execs, seg_final = 0, None
        elif line.startswith("=== segment") and "exited" in line:
            out.execs += seg_final if seg_final is not None else seg_execs
        elif m := STATUS.match(line):
            seg_execs = int(m.group(1))
            if not out.seed_cov and "INITED" in line:
                out.seed_cov = int(m.group(2))
            out.cov, out.ft = max(out.cov, int(m.group(2))), max(out.ft, int(m.group(3)))
        elif m := EXECS.match(line):
            seg_final = int(m.group(1))
        elif m := WALL.match(line):
            out.wall = int(m.group(1))
        elif (m := DONE.match(line)) and not out.wall:
            out.wall = int(m.group(1))  # a bare libFuzzer log (no run.sh markers)
        elif "Uncaught Python exception" in line and i + 1 < len(lines):
            out.stops.append(lines[i + 1].strip()[:120])
        elif "ALARM: working on the last Unit for" in line:
            out.stops.append("timeout: " + line.split("for", 1)[1].strip())
        elif "out-of-memory" in line and "ERROR" in line:
            out.stops.append("out of memory")
        elif "deadly signal" in line:
            out.stops.append("deadly signal")
    if not out.segments:  # a bare libFuzzer log: one segment
        out.segments = 1
        out.execs = seg_final if seg_final is not None else seg_execs
    return out


def row(harness: str) -> str:
    """One Markdown table row for ``harness``."""
    s = summarize(HERE / "logs" / f"{harness}.log")
    corpus = HERE / "corpus" / harness
    n_corpus = sum(1 for p in corpus.iterdir() if p.is_file()) if corpus.is_dir() else 0
    crashes = HERE / "crashes" / harness
    n_crash = sum(1 for p in crashes.iterdir() if p.is_file()) if crashes.is_dir() else 0
    rate = s.execs / s.wall if s.wall else 0.0
    stops = "; ".join(dict.fromkeys(s.stops)) or "none"
    return (
        f"| {harness} | {s.wall} | {s.execs} | {rate:.0f} | {s.seed_cov} | {s.cov} / {s.ft} "
        f"| {n_corpus} "
        f"| {s.segments} | {n_crash} | {stops} |"
    )


def main(argv: list[str]) -> int:
    """Print the table rows for the harnesses named on the command line."""
    print(  # noqa: T201
        "| harness | wall s | execs | execs/s | seed cov | final cov / ft | corpus | segments "
        "| crash files | stopped by |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for harness in argv or [p.stem for p in sorted((HERE / "logs").glob("*.log"))]:
        print(row(harness.removeprefix("fuzz_")))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
