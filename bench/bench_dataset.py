"""Dataset benchmark: near-duplicate detection vs datasketch and rensa, and all checks at scale.

Generates a synthetic JSONL text set (Zipf vocabulary, 100–300 character rows, a label per row)
with 1% injected near-copies at three edit levels (1 character, 1 word, 3 words changed), then
runs each method in its own subprocess, so peak RSS (``RUSAGE_CHILDREN``) is per method:

* ``ours``       -- ``NearDuplicateCheck`` (char 5-grams, 192-slot b-bit MinHash, 48×4 LSH bands)
* ``datasketch`` -- ``MinHash(num_perm=128)`` + ``MinHashLSH(threshold)`` on the same shingles
* ``rensa``      -- ``RMinHash(num_perm=128)`` + ``RMinHashLSH(threshold, 128, 32)`` likewise
* ``all``        -- every dataset check through ``DatasetScanner`` (reader included)

Every method reads the same file line by line and applies the same normalisation and char 5-gram
shingles; peers verify LSH candidates with their own Jaccard estimate at the same threshold.
Recall/precision are over the injected (original, copy) pairs.

    python bench/bench_dataset.py --rows 100000 --methods ours,datasketch,rensa
    python bench/bench_dataset.py --rows 1000000 --methods ours,rensa,all
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

THRESHOLD = 0.45
PEER_PERM = 128


def generate(rows: int, out: Path, seed: int = 0) -> None:
    """Write ``rows`` JSONL rows (1% near-copies) and ``out.truth.json`` with the copy pairs."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    common = [
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "it",
        "that",
        "was",
        "for",
        "on",
        "are",
        "with",
        "as",
        "his",
        "they",
        "be",
        "at",
        "one",
        "have",
        "this",
        "from",
        "or",
        "had",
        "by",
        "not",
        "but",
        "what",
        "some",
        "we",
        "can",
        "out",
        "other",
        "were",
        "all",
        "there",
        "when",
        "up",
        "use",
        "your",
        "how",
        "said",
        "an",
        "each",
        "she",
        "which",
        "do",
        "their",
        "time",
        "if",
        "will",
        "way",
        "about",
        "many",
        "then",
        "them",
        "would",
        "like",
        "so",
        "these",
        "her",
        "make",
        "see",
        "him",
        "two",
        "has",
        "look",
        "more",
        "day",
        "could",
        "go",
        "come",
        "did",
        "no",
        "most",
        "people",
        "my",
        "over",
        "know",
        "than",
    ]
    rare = ["".join(rng.choice(letters, rng.integers(3, 11))) for _ in range(30_000)]
    vocab = np.array(common + rare)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    pos_words = np.array(["great", "wonderful", "excellent", "superb", "lovely", "brilliant"])
    neg_words = np.array(["terrible", "awful", "horrible", "boring", "dull", "mediocre"])
    n_copies = rows // 100
    n_base = rows - n_copies
    counts = rng.integers(16, 48, size=n_base)
    ids = rng.choice(len(vocab), size=int(counts.sum()), p=weights)
    ends = np.cumsum(counts)
    labels = rng.integers(0, 2, size=n_base)
    texts: list[str] = []
    for i in range(n_base):
        words = list(vocab[ids[ends[i] - counts[i] : ends[i]]])
        pool = pos_words if labels[i] else neg_words
        for w in rng.choice(pool, 2):
            words.insert(int(rng.integers(0, len(words) + 1)), str(w))
        texts.append(" ".join(words).capitalize() + ".")
    sources = rng.choice(n_base, size=n_copies, replace=False)
    copies: list[str] = []
    for k, src in enumerate(sources):
        text = texts[src]
        level = k % 3
        if level == 0:
            j = int(rng.integers(1, len(text) - 1))
            text = text[:j] + ("x" if text[j] != "x" else "y") + text[j + 1 :]
        else:
            words = text.split(" ")
            for j in rng.choice(len(words), 1 if level == 1 else 3, replace=False):
                words[j] = str(rare[int(rng.integers(len(rare)))])
            text = " ".join(words)
        copies.append(text)
    order = rng.permutation(rows)  # final position of item i (base rows first, then copies)
    final: list[tuple[str, int]] = [("", 0)] * rows
    for i in range(n_base):
        final[order[i]] = (texts[i], int(labels[i]))
    for k in range(n_copies):
        src = int(sources[k])
        final[order[n_base + k]] = (copies[k], int(labels[src]))
    truth = [
        [*sorted((int(order[int(sources[k])]), int(order[n_base + k]))), k % 3]
        for k in range(n_copies)
    ]
    with out.open("w", encoding="utf-8") as fh:
        for text, label in final:
            fh.write(json.dumps({"text": text, "label": "pos" if label else "neg"}) + "\n")
    Path(str(out) + ".truth.json").write_text(json.dumps(truth))


def _rows(path: Path):  # type: ignore[no-untyped-def]
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            obj = json.loads(line)
            yield i, obj["text"], obj["label"]


def _shingles(text: str) -> list[str]:
    from scanners.dataset.dups import normalise

    t = normalise(text)
    if len(t) < 20:
        return []
    t = t + "\0" * 4
    return [t[i : i + 5] for i in range(len(t) - 4)]


def run_ours(path: Path) -> set[tuple[int, int]]:
    from scanners.dataset.common import Record
    from scanners.dataset.dups import NearDuplicateCheck

    check = NearDuplicateCheck(threshold=THRESHOLD)
    rows = _rows(path)
    head = [
        Record(index=i, text=text, label=label) for i, text, label in itertools.islice(rows, 4096)
    ]
    state = check.observe(check.init(check.prepare(head)), head)
    batch: list[Record] = []
    for i, text, label in rows:
        batch.append(Record(index=i, text=text, label=label))
        if len(batch) == 512:
            state = check.observe(state, batch)
            batch = []
    state = check.observe(state, batch)
    groups, _n = state._groups()  # all groups (findings list only the first 100 one by one)
    return {(g.rows[0], r) for g in groups for r in g.rows[1:]}


def run_datasketch(path: Path) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PEER_PERM)
    kept: dict[int, MinHash] = {}
    pairs: set[tuple[int, int]] = set()
    for i, text, _label in _rows(path):
        sh = _shingles(text)
        if not sh:
            continue
        m = MinHash(num_perm=PEER_PERM, seed=1)
        m.update_batch([s.encode("utf-8", "surrogatepass") for s in sh])
        for c in lsh.query(m):
            if m.jaccard(kept[c]) >= THRESHOLD:
                pairs.add((c, i))
        lsh.insert(i, m)
        kept[i] = m
    return pairs


def run_rensa(path: Path) -> set[tuple[int, int]]:
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(THRESHOLD, PEER_PERM, 32)
    kept: dict[int, RMinHash] = {}
    pairs: set[tuple[int, int]] = set()
    for i, text, _label in _rows(path):
        sh = _shingles(text)
        if not sh:
            continue
        m = RMinHash(PEER_PERM, 42)
        m.update(sh)
        for c in lsh.query(m):
            if m.jaccard(kept[c]) >= THRESHOLD:
                pairs.add((c, i))
        lsh.insert(i, m)
        kept[i] = m
    return pairs


def run_all(path: Path) -> dict[str, int]:
    from scanners.base import Artifact, ScanContext
    from scanners.dataset.runner import DatasetScanner
    from supplychain.core.model import ArtifactKind

    counts: dict[str, int] = {}
    with path.open("rb") as fh:
        art = Artifact(
            path=path.name, kind=ArtifactKind.DATASET_JSONL, size=path.stat().st_size, stream=fh
        )
        for f in DatasetScanner().scan(art, ScanContext()):
            key = f"{f.rule}/{f.severity.label}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def worker(method: str, path: Path) -> None:
    """Run one method and print a JSON line with timing and quality."""
    n = sum(1 for _ in path.open("rb"))
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage0.ru_utime + usage0.ru_stime
    start = time.perf_counter()
    result: dict[str, object] = {"method": method, "rows": n}
    if method == "all":
        result["findings"] = run_all(path)
    else:
        found = {"ours": run_ours, "datasketch": run_datasketch, "rensa": run_rensa}[method](path)
        truth = json.loads(Path(str(path) + ".truth.json").read_text())
        want = {(a, b) for a, b, _lvl in truth}
        got = {tuple(sorted(p)) for p in found}
        hit = want & got
        result["recall"] = len(hit) / max(1, len(want))
        result["precision"] = len(hit) / max(1, len(got))
        for lvl in range(3):
            w = {(a, b) for a, b, lv in truth if lv == lvl}
            result[f"recall_level{lvl}"] = len(w & got) / max(1, len(w))
        result["reported_pairs"] = len(got)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    result["seconds"] = round(seconds, 2)
    result["rows_per_s"] = round(n / seconds)
    # CPU time (all threads) is what a shared machine cannot distort much; wall time can
    result["cpu_s"] = round(cpu, 2)
    result["rows_per_cpu_s"] = round(n / max(cpu, 1e-9))
    print(json.dumps(result))


def measure(method: str, path: Path) -> dict[str, object]:
    """Run the worker in a child and add its peak RSS (RUSAGE_CHILDREN of this process)."""
    cmd = [sys.executable, __file__, "--worker", method, "--data", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"method": method, "error": out.stderr[-2000:]}
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = round(peak_kib / 1024)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--methods", default="ours,datasketch,rensa")
    ap.add_argument("--dir", default="/tmp/supplychain-bench")
    ap.add_argument("--worker")
    ap.add_argument("--measure")
    ap.add_argument("--data")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.data))
        return
    if args.measure:  # one fresh process per measurement, so RUSAGE_CHILDREN is per method
        print(json.dumps(measure(args.measure, Path(args.data))))
        return
    out_dir = Path(args.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"rows-{args.rows}.jsonl"
    if not data.exists():
        t = time.perf_counter()
        generate(args.rows, data)
        print(f"# generated {data} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    for method in args.methods.split(","):
        cmd = [sys.executable, __file__, "--measure", method, "--data", str(data)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(res.stdout.strip() or res.stderr[-2000:], flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
