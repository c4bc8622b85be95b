"""A bounded memory of the ids seen last, to recognise one sent again shortly after."""

from __future__ import annotations

from collections import deque


class RecentIds:
    """The last `capacity` distinct ids added; older ones are forgotten first.

    A worker sends an interaction's edge again when it re-reads the event after a crash or a
    rebalance, which happens within the records it had not committed: a few seconds of
    processing, however many event days they span. Remembering by arrival therefore catches
    every such repeat with memory bounded by `capacity`, where remembering by event day did
    not (a backfill crosses many days in those seconds).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, item: str) -> bool:
        """Remember `item`; False when it was already among the ids remembered."""
        if item in self._ids:
            return False
        self._ids.add(item)
        self._order.append(item)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._ids)
