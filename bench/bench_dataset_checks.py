"""CPU time of each dataset check alone over the same parsed rows (observe + finish).

    .venv/bin/python bench/bench_dataset_checks.py DATA.jsonl [ROWS]

DATA.jsonl as written by ``bench_dataset.py`` (``text`` and ``label`` fields). Rows are parsed
once (the parse time is printed), then each check in ``DATASET_CHECKS`` runs through the
mergeable API (head plan, batches of 512, finish) and prints its ``process_time``.
"""

from __future__ import annotations

import itertools
import json
import sys
import time


def main() -> None:
    from scanners.dataset.common import DatasetInfo, Record, head_length, split_head
    from scanners.dataset.runner import DATASET_CHECKS

    path = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    t = time.process_time()
    records = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(itertools.islice(fh, limit)):
            obj = json.loads(line)
            records.append(Record(i, obj["text"], obj["label"]))
    print(f"{'parse':18s} {time.process_time() - t:7.2f}")
    info = DatasetInfo(path, (), "text", "label", None, len(records))
    for cls in DATASET_CHECKS:
        check = cls()
        t0 = time.process_time()
        rows, chars = head_length([check])
        plan = check.prepare(split_head(iter(records), rows, chars)) if rows else None
        state = check.init(plan)
        for k in range(0, len(records), 512):
            state = check.observe(state, records[k : k + 512])
        t1 = time.process_time()
        found = list(check.finish(state, info))
        t2 = time.process_time()
        took = f"observe {t1 - t0:7.2f}  finish {t2 - t1:7.2f}"
        print(f"{check.name:18s} {took}  findings {len(found)}")


if __name__ == "__main__":
    main()
