"""Due times of decay-driven tier drops, so they are emitted on time without scanning members."""

from __future__ import annotations

import heapq

from scoring.state import MemberKey


class DecaySchedule:
    """A min-heap of (due time, member); rescheduling a member supersedes its older entry."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, MemberKey]] = []
        self._due: dict[MemberKey, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def set(self, key: MemberKey, due: float | None) -> None:
        if due is None or due == float("inf"):
            self._due.pop(key, None)
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            # Superseded entries wait in the heap until their time; a member rescheduled on
            # every event would otherwise grow it by one entry per event for as long as the
            # drops lie ahead (weeks of wall time for a live worker).
            self._heap = [(d, k) for k, d in self._due.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> list[tuple[float, MemberKey]]:
        """Entries due at or before `now`, in time order, each member at most once."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                out.append((due, key))
        return out

    def next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
