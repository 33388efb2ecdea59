"""Prometheus text exposition by hand (format 0.0.4): counters, gauges and one histogram.

Thread-safe; label values are escaped. Kept small on purpose: no client library needed.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import ClassVar

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


class Metrics:
    """Named counters and one latency histogram per route, plus gauges read at scrape time."""

    HELP: ClassVar[dict[str, tuple[str, str]]] = {
        "supplychain_scans_total": ("counter", "Scans run by the server, by outcome."),
        "supplychain_cache_hits_total": ("counter", "Files answered from the verdict cache."),
        "supplychain_memo_hits_total": ("counter", "Admission models answered unchanged."),
        "supplychain_admission_total": ("counter", "Admission reviews answered, by decision."),
        "supplychain_verdicts_total": ("counter", "Model verdicts, by outcome."),
        "supplychain_rejected_total": ("counter", "Requests refused because the queue was full."),
        "supplychain_requests_total": ("counter", "HTTP requests, by route and status."),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] += amount

    def observe(self, route: str, seconds: float) -> None:
        with self._lock:
            counts = self._hist.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._hist_sum[route] += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, read)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(set(self.HELP) | set(self._counters)):
                kind, text = self.HELP.get(name, ("counter", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                series = self._counters.get(name) or {(): 0.0}
                for labels, value in sorted(series.items()):
                    lines.append(f"{name}{_fmt_labels(labels)} {value:g}")
            name = "supplychain_request_seconds"
            lines += [f"# HELP {name} Request latency by route.", f"# TYPE {name} histogram"]
            for route, counts in sorted(self._hist.items()):
                for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
                    labels = (("le", f"{bound:g}"), ("route", route))
                    lines.append(f"{name}_bucket{_fmt_labels(labels)} {count}")
                lines.append(
                    f"{name}_bucket{_fmt_labels((('le', '+Inf'), ('route', route)))} {counts[-1]}"
                )
                lines.append(
                    f"{name}_sum{_fmt_labels((('route', route),))} {self._hist_sum[route]:.6f}"
                )
                lines.append(f"{name}_count{_fmt_labels((('route', route),))} {counts[-1]}")
        for gname, (text, read) in sorted(self._gauges.items()):
            lines += [f"# HELP {gname} {text}", f"# TYPE {gname} gauge", f"{gname} {read():g}"]
        return "\n".join(lines) + "\n"
