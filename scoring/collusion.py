"""The interaction graph across members, and the closed-group (collusion) verdict."""

from __future__ import annotations

from collections.abc import Iterator

from scoring.policy import CollusionSpec
from scoring.state import MemberKey


class InteractionGraph:
    """Who gave credit-bearing interactions to whom, counted per community.

    Counts are sums, so the graph (and every verdict read from it) is the same in any order.
    """

    def __init__(self) -> None:
        self._received: dict[MemberKey, dict[str, int]] = {}
        self._given: dict[MemberKey, int] = {}

    def add(self, community: str, giver: str, receiver: str, count: int = 1) -> None:
        givers = self._received.setdefault((community, receiver), {})
        givers[giver] = givers.get(giver, 0) + count
        key = (community, giver)
        self._given[key] = self._given.get(key, 0) + count

    def receivers(self) -> Iterator[MemberKey]:
        return iter(list(self._received))

    def edge_count(self) -> int:
        return sum(len(g) for g in self._received.values())

    def verdict(self, key: MemberKey, spec: CollusionSpec) -> tuple[int, float] | None:
        """(group size, insularity) when `key` is credited by a small group that keeps to itself.

        Insularity is the share of everything the member's givers gave that went to the member
        or to one another; a real helper's thankers also thank many others.
        """
        givers = self._received.get(key)
        if not givers or len(givers) > spec.max_group:
            return None
        if sum(givers.values()) < spec.min_interactions:
            return None
        community = key[0]
        group = set(givers) | {key[1]}
        inside = given = 0
        for giver in givers:
            given += self._given.get((community, giver), 0)
            for member in group:
                inside += self._received.get((community, member), {}).get(giver, 0)
        insularity = inside / given if given else 0.0
        if insularity < spec.min_insularity:
            return None
        return len(givers), round(insularity, 9)
