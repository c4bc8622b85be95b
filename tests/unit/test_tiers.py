"""Tiers with hysteresis, crossing times, and decay-driven tier drops emitted by the Runner."""

from __future__ import annotations

import math
import random
from datetime import datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scoring.engine import Engine
from scoring.policy import DAY_SECONDS, Policy
from scoring.records import ScoreChange
from scoring.runner import Runner
from scoring.tiers import crossing_time, next_tier, tier_for

DAY = DAY_SECONDS
HOUR = 3_600.0
START = 19_723 * DAY  # 2024-01-01
FLOORS = (0.0, 10.0, 40.0, 55.0, 75.0)  # the shipped default
H = 0.9
NEWCOMER, PARTICIPANT, REGULAR, PILLAR, LEADER = range(5)
KEY = ("c", "reg")


def test_default_tiers_are_the_ones_these_tests_assume(default_policy: Policy) -> None:
    assert default_policy.tier_floors == FLOORS
    assert default_policy.spec.hysteresis == H
    assert default_policy.tier_names == ("newcomer", "participant", "regular", "pillar", "leader")


# -- next_tier -----------------------------------------------------------------------------------

NEXT_TIER_TABLE = [
    # current, score, expected
    (NEWCOMER, 0.0, NEWCOMER),
    (NEWCOMER, 9.999, NEWCOMER),
    (NEWCOMER, 10.0, PARTICIPANT),  # a floor is reached at equality
    (NEWCOMER, 40.0, REGULAR),  # climbing skips tiers
    (NEWCOMER, 100.0, LEADER),
    (PARTICIPANT, 9.0, PARTICIPANT),  # 10 * 0.9: still held at the low-water mark
    (PARTICIPANT, 8.999, NEWCOMER),
    (REGULAR, 39.99, REGULAR),
    (REGULAR, 36.0, REGULAR),
    (REGULAR, 35.99, PARTICIPANT),
    (REGULAR, 8.0, NEWCOMER),
    (REGULAR, 55.0, PILLAR),
    (PILLAR, 49.5, PILLAR),
    (PILLAR, 49.49, REGULAR),
    (PILLAR, 80.0, LEADER),
    (LEADER, 67.5, LEADER),
    (LEADER, 67.49, PILLAR),
    (LEADER, 0.0, NEWCOMER),
]


@pytest.mark.parametrize(("current", "score", "expected"), NEXT_TIER_TABLE)
def test_next_tier_hysteresis(current: int, score: float, expected: int) -> None:
    assert next_tier(FLOORS, H, current, score) == expected


def test_tier_for_bisects_floors() -> None:
    scores = (0, 9.9, 10, 39.9, 40, 54.9, 55, 74.9, 75, 100)
    assert [tier_for(FLOORS, s) for s in scores] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_leaving_a_tier_lands_in_the_band_of_the_tier_below() -> None:
    """A pillar whose score falls to 37 has passed 49.5 (left pillar) but not 36 (40 * 0.9).

    Observed continuously, the member becomes regular at 49.5 and stays regular down to 36, so
    at 37 the tier is regular. next_tier jumps straight to tier_for(37) = participant: the tier
    depends on whether an intermediate score happened to be observed.
    """
    assert next_tier(FLOORS, H, next_tier(FLOORS, H, PILLAR, 45.0), 37.0) == REGULAR
    assert next_tier(FLOORS, H, PILLAR, 37.0) == REGULAR


@settings(max_examples=300, deadline=None)
@given(scores=st.lists(st.floats(0, 100), min_size=2, max_size=7).map(lambda s: sorted(s)[::-1]))
@example(scores=[60.0, 45.0, 37.0])
def test_falling_scores_give_the_same_tier_however_often_observed(scores: list[float]) -> None:
    """Path independence for a falling score: folding next_tier == one jump to the last score."""
    held = tier_for(FLOORS, scores[0])
    folded = held
    for score in scores[1:]:
        folded = next_tier(FLOORS, H, folded, score)
    assert folded == next_tier(FLOORS, H, held, scores[-1]), scores


# -- crossing_time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("half_life_days", "level"), [(45, 49.5), (10, 9.0), (200, 36.0), (1, 1e-3)]
)
def test_crossing_time_on_a_known_exponential(half_life_days: float, level: float) -> None:
    rate = math.log(2) / (half_life_days * DAY)

    def score(t: float) -> float:
        return 80.0 * math.exp(-rate * (t - START))

    exact = START + math.log(80.0 / level) / rate
    found = crossing_time(score, level, START)
    assert exact <= found <= exact + 60.0
    assert score(found) < level <= score(found - 60.0)


def test_crossing_time_from_below_and_never() -> None:
    assert crossing_time(lambda t: 5.0, 10.0, START) == START
    assert crossing_time(lambda t: 50.0, 10.0, START) == math.inf


def test_crossing_time_tolerance() -> None:
    found = crossing_time(lambda t: 100.0 - (t - START) / 1e4, 50.0, START, tolerance=1.0)
    assert START + 5e5 <= found <= START + 5e5 + 1.0


# -- a regular member who goes quiet -------------------------------------------------------------


def regular_member(policy: Policy, seed: int = 3, days: int = 120) -> tuple[Runner, float]:
    """A human regular: most days a session, a few posts and replies, replies and thanks received
    from distinct members. Returns the runner and the end of the last active day."""
    runner = Runner(Engine(policy))
    rng = random.Random(seed)
    others = [f"o{i:02d}" for i in range(40)]
    events = []
    for day in range(days):
        if rng.random() < 0.1:
            continue
        t = START + day * DAY + rng.uniform(7, 20) * HOUR
        events.append((t, f"s{day}", "session.started", "reg", None))
        for j in range(rng.randint(0, 3)):
            t += rng.uniform(30, 900)
            events.append((t, f"p{day}-{j}", "post.created", "reg", None))
        for j in range(rng.randint(0, 2)):
            t += rng.uniform(30, 900)
            events.append((t, f"r{day}-{j}", "reply.created", "reg", rng.choice(others)))
        for j in range(rng.randint(0, 2)):
            kind = rng.choice(["reply.created", "thanks.given", "reaction.added"])
            events.append(
                (t + rng.uniform(600, 20_000), f"i{day}-{j}", kind, rng.choice(others), "reg")
            )
    events.sort()
    for t, event_id, kind, actor, target in events:
        runner.feed(event_id, kind, "c", actor, t, target)
    end = START + days * DAY
    runner.finish(end)
    return runner, end


def drain(runner: Runner, t: float) -> list[ScoreChange]:
    """advance_to(t) until nothing due at or before t is left in the schedule."""
    changes = runner.advance_to(t)
    while (due := runner.schedule.next_due()) is not None and due <= t:
        changes += runner.advance_to(t)
    return changes


def test_the_regular_member_holds_a_real_tier(default_policy: Policy) -> None:
    runner, end = regular_member(default_policy)
    explained = runner.engine.explain(KEY, end)
    assert explained is not None
    assert explained.flags == []
    assert explained.tier in ("regular", "pillar")
    assert runner.engine.states[KEY].tier == default_policy.tier_names.index(explained.tier)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_week_off_keeps_the_tier(default_policy: Policy, seed: int) -> None:
    runner, end = regular_member(default_policy, seed)
    engine = runner.engine
    tier = engine.states[KEY].tier
    assert tier >= PARTICIPANT
    week_later = end + 7 * DAY
    explained = engine.explain(KEY, week_later)
    assert explained is not None
    assert explained.score < engine.score(KEY, end)
    assert explained.tier == default_policy.tier_names[tier]
    changes = [c for day in range(1, 8) for c in drain(runner, end + day * DAY)]
    assert [c for c in changes if c.old_tier != c.new_tier] == []
    assert engine.states[KEY].tier == tier
    drop = engine.tier_drop_time(KEY, end)
    assert drop is not None and drop > week_later


def test_a_long_absence_drops_the_tier_on_time(default_policy: Policy) -> None:
    runner, end = regular_member(default_policy)
    engine = runner.engine
    tier = engine.states[KEY].tier
    seq = engine.states[KEY].seq
    drop = engine.tier_drop_time(KEY, end)
    assert drop is not None and end < drop < end + 200 * DAY
    level = FLOORS[tier] * H
    assert engine.score(KEY, drop) < level <= engine.score(KEY, drop - 60)
    changes = [c for hour in range(1, 200 * 24 + 1) for c in drain(runner, end + hour * HOUR)]
    mine = [c for c in changes if (c.community, c.member) == KEY]
    assert mine, "a decay-driven drop must be emitted"
    first = mine[0]
    assert first.cause == "decay"
    assert first.old_tier == default_policy.tier_names[tier]
    assert first.new_tier == default_policy.tier_names[tier - 1]
    assert first.seq == seq + 1
    emitted_at = datetime.fromisoformat(first.time.replace("Z", "+00:00")).timestamp()
    assert abs(emitted_at - drop) <= 120.0
    # every later tier is dropped by decay too, one floor at a time, down to newcomer
    assert [c.cause for c in mine] == ["decay"] * len(mine)
    assert [c.seq for c in mine] == list(range(seq + 1, seq + 1 + len(mine)))
    names = default_policy.tier_names
    tiers = [names.index(first.old_tier)] + [names.index(c.new_tier) for c in mine]
    assert tiers == list(range(tier, -1, -1))
    explained = engine.explain(KEY, end + 200 * DAY)
    assert explained is not None and explained.tier == "newcomer"
    assert engine.tier_drop_time(KEY, end + 200 * DAY) is None


def test_one_advance_emits_every_decay_drop_that_fell_due(default_policy: Policy) -> None:
    """Runner.advance_to pops the due entries once; a decay check that reschedules the member to
    a time still before `t` (the next floor, or a stale entry from before later events raised
    the score) is left for some later call. After advance_to(t) the emitted tier must be the
    member's tier at t."""
    runner, end = regular_member(default_policy)
    engine = runner.engine
    later = end + 200 * DAY
    changes = runner.advance_to(later)
    assert engine.states[KEY].tier == NEWCOMER, [
        (c.cause, c.old_tier, c.new_tier, c.time) for c in changes
    ]
    assert runner.schedule.next_due() is None or runner.schedule.next_due() > later


def test_explained_tier_matches_the_tier_emitted_by_decay(default_policy: Policy) -> None:
    """explain(t) from the last emitted tier must agree with what the Runner emits by t."""
    stepped, end = regular_member(default_policy)
    jumped, _ = regular_member(default_policy)
    mismatches = []
    for day in range(1, 120):
        t = end + day * DAY
        drain(stepped, t)
        a, b = stepped.engine.explain(KEY, t), jumped.engine.explain(KEY, t)
        assert a is not None and b is not None
        assert a.score == pytest.approx(b.score, rel=1e-12)
        if a.tier != b.tier:
            mismatches.append((day, round(a.score, 2), a.tier, b.tier))
    assert mismatches == []
