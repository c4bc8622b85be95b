"""What the engine hands out: score changes and explained member scores."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class ScoreChange(msgspec.Struct, frozen=True, kw_only=True):
    """A meaningful move of a member's score: tier change, threshold move or decay-driven drop.

    `seq` increases by one per member with every change emitted, so consumers can de-duplicate.
    `cause` is the id of the event that caused it, or "decay".
    """

    community: str
    member: str
    seq: int
    cause: str
    time: str  # RFC 3339, UTC
    old_score: float
    new_score: float
    old_tier: str
    new_tier: str


class ActionContribution(msgspec.Struct, frozen=True):
    action: str
    role: str  # "given" (the member acted) or "received" (others acted toward the member)
    value: float


class Damping(msgspec.Struct, frozen=True):
    reason: str
    factor: float
    detail: str


class MemberScore(msgspec.Struct, frozen=True, kw_only=True):
    """A member's score at `as_of` with its explanation.

    `masses` and `landmark` let a consumer compute the score at any later time t without new
    events: dimension value = masses[dim] * 2 ** (-(t - landmark) / half_life_seconds[dim]),
    with t and landmark in epoch seconds.
    """

    community: str
    member: str
    as_of: str  # RFC 3339, UTC
    score: float
    tier: str
    dimensions: dict[str, float]
    flags: list[str]
    top_actions: list[ActionContribution]
    caps_hit: dict[str, int]
    damping: list[Damping]
    landmark: float  # epoch seconds
    masses: dict[str, float]
