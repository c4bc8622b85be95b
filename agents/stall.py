"""Noticing input partitions that stopped moving, so the worker can re-read them.

Faust can lose records it fetched but had not delivered around a rebalance (see
`agents/transport.py` for the case understood and fixed); whatever the cause, the symptom is
the same: a partition has records past its committed offset and the worker processes nothing.
The worker then seeks its partitions back to their committed offsets (re-reading is safe:
events are idempotent by id), logs it and counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

TP = TypeVar("TP")


class StallClock:
    """Says when nothing was processed for `seconds`, then starts counting again."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._processed = -1
        self._since = 0.0

    def due(self, processed: int, now: float) -> bool:
        if processed != self._processed:
            self._processed, self._since = processed, now
            return False
        if now - self._since < self.seconds:
            return False
        self._since = now
        return True


def lagging(highwaters: Mapping[TP, int | None], committed: Mapping[TP, int | None]) -> list[TP]:
    """Partitions with records past their committed offset (none committed: offset 0)."""
    return [
        tp
        for tp, highwater in highwaters.items()
        if highwater is not None and highwater > (committed.get(tp) or 0)
    ]
