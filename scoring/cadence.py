"""Inter-event gap statistics per action type, to tell near-periodic automation from humans.

Burstiness B = (r - 1) / (r + 1) with r the coefficient of variation of gaps (Goh & Barabasi 2008),
bias-corrected for short series as in Kim & Jo (2016). Periodic: B near -1; Poisson: 0; bursty
humans: above 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# [events, last_time, gaps, mean_gap, m2] (Welford), kept as a list for a small footprint.
Stats = list[float]


def new_stats() -> Stats:
    return [0.0, 0.0, 0.0, 0.0, 0.0]


def fold(stats: Stats, times: Iterable[float]) -> None:
    """Add event times (ascending, all after those already folded) to the statistics."""
    events, last, gaps, mean, m2 = stats
    for t in times:
        if events:
            gaps += 1
            gap = t - last
            delta = gap - mean
            mean += delta / gaps
            m2 += delta * (gap - mean)
        events += 1
        last = t
    stats[:] = [events, last, gaps, mean, m2]


def burstiness(stats: Stats) -> float | None:
    """Bias-corrected burstiness, or None with fewer than three gaps or a zero mean gap."""
    events, _, gaps, mean, m2 = stats
    if gaps < 3 or mean <= 0:
        return None
    r = math.sqrt(m2 / gaps) / mean
    n = events
    a, b = math.sqrt(n + 1), math.sqrt(n - 1)
    return (a * r - b) / ((a - 2) * r + b)
