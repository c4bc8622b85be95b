"""Tiers with hysteresis: climb as soon as a floor is reached, drop only below a low-water mark."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence


def tier_for(floors: Sequence[float], score: float) -> int:
    return max(0, bisect_right(floors, score) - 1)


def next_tier(floors: Sequence[float], hysteresis: float, current: int, score: float) -> int:
    """The tier after observing `score`, given the member currently holds `current`."""
    reached = tier_for(floors, score)
    if reached >= current:
        return reached
    # Step down one tier at a time, so the result does not depend on whether the scores on
    # the way down were observed: each tier is left only below its own low-water mark.
    tier = current
    while tier > reached and score < floors[tier] * hysteresis:
        tier -= 1
    return tier


def crossing_time(
    score_at: Callable[[float], float], level: float, start: float, tolerance: float = 60.0
) -> float:
    """First time >= start at which a non-increasing score falls below `level`.

    Used to schedule decay-driven tier drops without scanning members.
    """
    if score_at(start) < level:
        return start
    low, high = start, start + 3600.0
    while score_at(high) >= level:
        if high - start > 1e11:
            return float("inf")
        low, high = high, start + 2 * (high - start)
    while high - low > tolerance:
        mid = (low + high) / 2
        if score_at(mid) >= level:
            low = mid
        else:
            high = mid
    return high
