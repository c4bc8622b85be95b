"""The interaction graph across members, and the closed-group (collusion) verdict."""

from __future__ import annotations

from collections.abc import Iterator

from scoring.policy import CollusionSpec
from scoring.state import MemberKey


class InteractionGraph:
    """Who gave credit-bearing interactions to whom, counted per community.

    Counts are sums, so the graph (and every verdict read from it) is the same in any order.
    """

    def __init__(self, spec: CollusionSpec) -> None:
        self.spec = spec
        self._received: dict[MemberKey, dict[str, int]] = {}
        self._received_total: dict[MemberKey, int] = {}
        self._given: dict[MemberKey, int] = {}
        self._candidates: set[MemberKey] = set()

    def add(self, community: str, giver: str, receiver: str, count: int = 1) -> None:
        key = (community, receiver)
        givers = self._received.setdefault(key, {})
        givers[giver] = givers.get(giver, 0) + count
        total = self._received_total[key] = self._received_total.get(key, 0) + count
        if len(givers) > self.spec.max_group:
            self._candidates.discard(key)
        elif total >= self.spec.min_interactions:
            self._candidates.add(key)
        giver_key = (community, giver)
        self._given[giver_key] = self._given.get(giver_key, 0) + count

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
