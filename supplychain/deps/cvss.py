"""CVSS v3.0 / v3.1 base score from a vector string: the specification's formula, exactly.

OSV advisories carry vectors, not scores. The score is computed as the FIRST specification
(v3.1, section 7) defines it, including its ``Roundup`` (v3.1's integer form, v3.0's ``ceil``),
so a vector maps to the score NVD shows. Temporal and environmental metrics are ignored (the base
score is what advisories rate).
"""

from __future__ import annotations

import math

_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_PR_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


def _roundup_31(value: float) -> float:
    """v3.1 Roundup: the smallest one-decimal number >= value, free of float noise."""
    as_int = round(value * 100_000)
    if as_int % 10_000 == 0:
        return as_int / 100_000.0
    return (math.floor(as_int / 10_000) + 1) / 10.0


def _roundup_30(value: float) -> float:
    return math.ceil(value * 10) / 10


def base_score(vector: str) -> float | None:
    """The base score of a ``CVSS:3.x/...`` vector, or ``None`` if it is not a valid v3 vector."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            return None
        metrics[key] = value
    if any(k not in metrics for k in _BASE):
        return None
    try:
        scope_changed = {"U": False, "C": True}[metrics["S"]]
        av, ac, ui = _AV[metrics["AV"]], _AC[metrics["AC"]], _UI[metrics["UI"]]
        pr = (_PR_CHANGED if scope_changed else _PR_UNCHANGED)[metrics["PR"]]
        c, i, a = _CIA[metrics["C"]], _CIA[metrics["I"]], _CIA[metrics["A"]]
    except KeyError:
        return None
    roundup = _roundup_31 if parts[0] == "CVSS:3.1" else _roundup_30
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    changed_impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    impact = changed_impact if scope_changed else 6.42 * iss
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if scope_changed:
        return roundup(min(1.08 * (impact + exploitability), 10))
    return roundup(min(impact + exploitability, 10))


def rating(score: float) -> str:
    """The specification's qualitative rating: none, low, medium, high, critical."""
    if score == 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"


__all__ = ["base_score", "rating"]
