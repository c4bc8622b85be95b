"""The interaction graph across members, and the closed-group (collusion) verdict."""

from __future__ import annotations

from collections.abc import Iterator

from scoring.policy import CollusionSpec
from scoring.state import MemberKey

Edge = tuple[MemberKey, str]  # (receiver, giver)


class InteractionGraph:
    """Who gave credit-bearing interactions to whom in the last `window_days` event days.

    Counts are kept per event day and summed over the window, so the graph (and every verdict
    read from it) depends on the set of interactions and the day it is read at, not on their
    order. Days that leave the window are subtracted and forgotten: memory is bounded by the
    interactions of one window, not of all time.
    """

    def __init__(self, spec: CollusionSpec) -> None:
        self.spec = spec
        self.day: int | None = None  # the newest day seen: the window ends there
        self._days: dict[int, dict[Edge, int]] = {}
        self._received: dict[MemberKey, dict[str, int]] = {}
        self._received_total: dict[MemberKey, int] = {}
        self._given: dict[MemberKey, int] = {}
        self._candidates: set[MemberKey] = set()

    @property
    def first_day(self) -> int | None:
        """The oldest day inside the window (None before the first interaction)."""
        return None if self.day is None else self.day - self.spec.window_days + 1

    def add(self, community: str, giver: str, receiver: str, day: int, count: int = 1) -> None:
        """Count `count` interactions on event day `day`; days before the window are ignored."""
        self.advance(day)
        first = self.first_day
        if first is not None and day < first:
            return
        edge = ((community, receiver), giver)
        bucket = self._days.setdefault(day, {})
        bucket[edge] = bucket.get(edge, 0) + count
        self._count(edge, count)

    def advance(self, day: int) -> None:
        """Move the window's end to `day` (never back); days that leave it are subtracted."""
        if self.day is not None and day <= self.day:
            return
        self.day = day
        first = day - self.spec.window_days + 1
        for old in [d for d in self._days if d < first]:
            for edge, count in self._days.pop(old).items():
                self._count(edge, -count)

    def _count(self, edge: Edge, count: int) -> None:
        key, giver = edge
        community = key[0]
        givers = self._received.setdefault(key, {})
        givers[giver] = givers.get(giver, 0) + count
        if not givers[giver]:
            del givers[giver]
        total = self._received_total[key] = self._received_total.get(key, 0) + count
        if not givers:
            del self._received[key]
            del self._received_total[key]
        if givers and len(givers) <= self.spec.max_group and total >= self.spec.min_interactions:
            self._candidates.add(key)
        else:
            self._candidates.discard(key)
        giver_key = (community, giver)
        given = self._given[giver_key] = self._given.get(giver_key, 0) + count
        if not given:
            del self._given[giver_key]

    def candidates(self) -> Iterator[MemberKey]:
        """Members small and busy enough that a verdict could be positive."""
        return iter(sorted(self._candidates))

    def edge_count(self) -> int:
        return sum(len(g) for g in self._received.values())

    def verdict(self, key: MemberKey) -> tuple[int, float] | None:
        """(group size, insularity) when `key` is credited by a small group that keeps to itself.

        Insularity is the share of everything the member's givers gave that went to the member
        or to one another; a real helper's thankers also thank many others.
        """
        if key not in self._candidates:
            return None
        givers = self._received[key]
        community = key[0]
        group = set(givers) | {key[1]}
        inside = given = 0
        for giver in givers:
            given += self._given.get((community, giver), 0)
            for member in group:
                inside += self._received.get((community, member), {}).get(giver, 0)
        insularity = inside / given if given else 0.0
        if insularity < self.spec.min_insularity:
            return None
        return len(givers), round(insularity, 9)
