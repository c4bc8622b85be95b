"""The Runner's score changes: per-member sequence numbers, causes, thresholds."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime

import pytest

from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS, Policy
from scoring.records import ScoreChange
from scoring.runner import Runner
from scoring.schedule import DecaySchedule

DAY = DAY_SECONDS
HOUR = 3_600.0
START = 19_723 * DAY

Event = tuple[float, str, str, str, str | None]  # time, id, type, actor, target


def community(seed: int, days: int = 40) -> list[Event]:
    rng = random.Random(seed)
    members = [f"m{i:02d}" for i in range(15)]
    events: list[Event] = []
    n = 0
    for day in range(days):
        for member in members:
            if rng.random() < 0.4 or (member < "m05" and day > days // 2):
                continue  # m00..m04 go quiet half-way: decay drops
            t = START + day * DAY + rng.uniform(6, 22) * HOUR
            n += 1
            events.append((t, f"s{n}", "session.started", member, None))
            for _ in range(rng.randint(0, 4)):
                t += rng.expovariate(1 / 400)
                n += 1
                kind = rng.choice(
                    ["post.created", "reply.created", "thanks.given", "answer.accepted"]
                )
                target = (
                    None
                    if kind == "post.created"
                    else rng.choice([m for m in members if m != member])
                )
                events.append((t, f"e{n}", kind, member, target))
    return sorted(events)


def replay(policy: Policy, events: list[Event], end: float) -> tuple[Runner, list[ScoreChange]]:
    runner = Runner(Engine(policy))
    changes = []
    for t, event_id, kind, actor, target in events:
        changes += runner.feed(event_id, kind, "c", actor, t, target)[1]
    changes += runner.finish(end)
    return runner, changes


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("seed", [1, 2])
def test_changes_chain_per_member(default_policy: Policy, seed: int) -> None:
    events = community(seed)
    end = START + 120 * DAY
    runner, changes = replay(default_policy, events, end)
    by_id = {e[1]: e for e in events}
    per_member: dict[str, list[ScoreChange]] = defaultdict(list)
    for change in changes:
        per_member[change.member].append(change)
    assert any(c.cause == "decay" for c in changes)
    threshold = default_policy.spec.change_threshold
    for member, mine in per_member.items():
        assert [c.seq for c in mine] == list(range(1, len(mine) + 1)), member
        assert mine[0].old_score == 0.0 and mine[0].old_tier == "newcomer"
        for before, after in zip(mine, mine[1:], strict=False):
            assert after.old_score == before.new_score
            assert after.old_tier == before.new_tier
            assert epoch(after.time) >= epoch(before.time)
        for change in mine:
            moved = change.new_tier != change.old_tier
            assert moved or abs(change.new_score - change.old_score) >= threshold
            if change.cause == "decay":
                assert change.new_score < change.old_score
            elif change.cause != "collusion":
                _, _, _, actor, target = by_id[change.cause]
                assert member in (actor, target)
        state = runner.engine.states[("c", member)]
        assert state.seq == len(mine)
        assert state.emitted_score == mine[-1].new_score


def test_outcomes_are_counted(default_policy: Policy) -> None:
    runner = Runner(Engine(default_policy))
    runner.feed("a", "post.created", "c", "m", START)
    runner.feed("a", "post.created", "c", "m", START)
    runner.feed("b", "nope", "c", "m", START)
    runner.feed("c", "thanks.given", "c", "m", START, "m")
    runner.feed("d", "post.created", "c", "m", START + 10 * DAY)
    runner.feed("e", "post.created", "c", "m", START + DAY)
    assert runner.outcomes == {
        Outcome.APPLIED: 2,
        Outcome.DUPLICATE: 1,
        Outcome.UNKNOWN_TYPE: 1,
        Outcome.SELF_INTERACTION: 1,
        Outcome.TOO_LATE: 1,
    }


def test_runner_closes_days_behind_the_watermark(default_policy: Policy) -> None:
    runner = Runner(Engine(default_policy))
    runner.feed("a", "post.created", "c", "quiet", START)
    runner.feed("b", "post.created", "c", "busy", START + 5 * DAY)
    # quiet's own newest day is START, but the stream is five days on: day 0 is closed
    outcome, _ = runner.feed("c", "post.created", "c", "quiet", START + 5 * DAY + 1)
    assert outcome is Outcome.APPLIED
    assert runner.engine.states[("c", "quiet")].buckets.keys() == {19_728}
    assert runner.engine.apply("d", "post.created", "c", "quiet", START + 60) is Outcome.TOO_LATE


def test_decay_schedule_supersedes_and_pops_in_order() -> None:
    schedule = DecaySchedule()
    schedule.set(("c", "a"), 50.0)
    schedule.set(("c", "b"), 20.0)
    schedule.set(("c", "a"), 10.0)  # supersedes 50
    schedule.set(("c", "c"), None)
    schedule.set(("c", "d"), float("inf"))
    assert len(schedule) == 2 and ("c", "c") not in schedule and ("c", "d") not in schedule
    assert schedule.next_due() == 10.0
    assert schedule.pop_due(60.0) == [(10.0, ("c", "a")), (20.0, ("c", "b"))]
    assert schedule.next_due() is None and len(schedule) == 0


def test_replaying_the_same_log_twice_gives_the_same_changes(default_policy: Policy) -> None:
    events = community(3, days=20)
    end = START + 60 * DAY
    _, first = replay(default_policy, events, end)
    _, second = replay(default_policy, events, end)
    assert first == second
