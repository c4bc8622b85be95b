"""Per-member state: forward-decay masses plus the open days that late events may still change."""

from __future__ import annotations

from scoring.cadence import Stats

MemberKey = tuple[str, str]  # (community, member)

ACTOR = 0
TARGET = 1


class DayBucket:
    """What one member did and received on one UTC day, while that day can still change.

    A day's credit is a function of its set of events only (counts per action and side,
    repeats per counterpart), so it is the same in any arrival order.
    """

    __slots__ = ("active", "counts", "credited", "effective", "ids", "peers", "times")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}  # side -> events of that action and role today
        self.effective: dict[int, float] = {}  # side -> count with repeats per counterpart halved
        self.peers: dict[int, int] | None = None  # hash(side, counterpart) -> events today
        self.credited: dict[int, float] | None = None  # mass key -> credit booked for this day
        self.ids: set[int] = set()
        self.times: dict[int, list[float]] | None = None  # action -> event times (cadence)
        self.active = False


class MemberState:
    """Everything the engine keeps about one member of one community."""

    __slots__ = (
        "automation",
        "buckets",
        "bursts",
        "caps_hit",
        "cadence",
        "closed_day",
        "collusion",
        "emitted_score",
        "landmark",
        "masses",
        "newest_day",
        "newest_time",
        "applied_offset",
        "seq",
        "tier",
        "weeks",
    )

    def __init__(self, landmark: float) -> None:
        self.landmark = landmark
        self.masses: dict[int, float] = {}  # (side * dimensions + dim) -> forward-decay mass
        self.buckets: dict[int, DayBucket] = {}
        self.newest_day = -(10**9)
        self.closed_day = -(10**9)  # days up to this one are closed: later events are too late
        self.newest_time = float("-inf")
        self.weeks: tuple[int, ...] = ()  # active weeks that late events may still reach
        self.cadence: dict[int, Stats] | None = None  # action -> gap statistics of closed days
        self.caps_hit: dict[int, int] | None = None  # dim -> closed days on which its cap bound
        self.bursts: dict[int, float] | None = None  # action -> burstiness, once judged
        self.automation: tuple[str, float] | None = None  # (action, burstiness) when suspected
        self.collusion: tuple[int, float] | None = None  # (group size, insularity) when suspected
        self.tier = 0
        self.emitted_score = 0.0
        self.seq = 0
        self.applied_offset = -1  # last source offset applied (the service skips replays)
