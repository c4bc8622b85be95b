"""Automation: near-periodic action streams are flagged and damped; bursty humans are not."""

from __future__ import annotations

import random
from itertools import count

import pytest

from scoring import cadence
from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS, DIMENSIONS, Policy
from scoring.records import MemberScore
from scoring.runner import Runner
from scoring.scores import NDIM

DAY = DAY_SECONDS
HOUR = 3_600.0
MINUTE = 60.0
START = 19_723 * DAY  # 2024-01-01
FLAG = "automation_suspected"


def timer(
    rng: random.Random, period: float, jitter: float, until: float, first: float
) -> list[float]:
    out, t = [], first
    while t < until:
        out.append(t)
        t += period + rng.uniform(-jitter, jitter)
    return out


def human_posts(rng: random.Random, days: int) -> list[float]:
    """Clustered: on most days one to three sessions of a few posts minutes apart."""
    out: list[float] = []
    for day in range(days):
        if rng.random() < 0.3:
            continue
        for _ in range(rng.randint(1, 3)):
            t = START + day * DAY + rng.uniform(6, 23) * HOUR
            for _ in range(rng.randint(1, 6)):
                t += rng.uniform(1, 12) * MINUTE
                out.append(min(t, START + (day + 1) * DAY - 1))
    return sorted(out)


def run(policy: Policy, events: list[tuple[float, str, str, str | None]]) -> Engine:
    """Feed (time, action, actor, target) through a Runner in time order; refresh at the end."""
    runner = Runner(Engine(policy))
    ids = count()
    for t, action, actor, target in sorted(events, key=lambda e: e[0]):
        outcome, _ = runner.feed(f"e{next(ids)}", action, "c", actor, t, target)
        assert outcome is Outcome.APPLIED
    runner.finish(max(e[0] for e in events))
    return runner.engine


def explain(engine: Engine, member: str, t: float) -> MemberScore:
    explained = engine.explain(("c", member), t)
    assert explained is not None
    return explained


def raw_masses(engine: Engine, member: str) -> list[float]:
    totals = [0.0] * NDIM
    for key, mass in engine.states[("c", member)].masses.items():
        totals[key % NDIM] += mass
    return totals


def test_a_bot_posting_every_half_hour_is_flagged_and_damped(default_policy: Policy) -> None:
    rng = random.Random(1)
    end = START + 5 * DAY
    events = [(t, "post.created", "bot", None) for t in timer(rng, 30 * MINUTE, 5, end, START + 77)]
    events += [(t, "session.started", "bot", None) for t in timer(rng, 4 * HOUR, 2, end, START + 5)]
    engine = run(default_policy, events)
    explained = explain(engine, "bot", end)
    assert explained.flags == [FLAG]
    (damping,) = explained.damping
    assert damping.reason == FLAG
    assert damping.factor == default_policy.spec.automation.damping == 0.1
    assert "post.created" in damping.detail and "near-periodic" in damping.detail
    # every dimension, presence included, carries a tenth of the raw credit
    raw = raw_masses(engine, "bot")
    for d, dim in enumerate(DIMENSIONS):
        assert explained.masses[dim] == pytest.approx(0.1 * raw[d], rel=1e-12, abs=1e-300)
    assert raw[DIMENSIONS.index("presence")] > 0
    state = engine.states[("c", "bot")]
    assert state.automation is not None and state.automation[1] <= -0.9


def test_the_flag_costs_a_bot_most_of_its_score(default_policy: Policy) -> None:
    rng = random.Random(2)
    end = START + 10 * DAY
    bot = [(t, "post.created", "bot", None) for t in timer(rng, 30 * MINUTE, 5, end, START + 1)]
    # a human with the same number of posts a day, clustered
    human = [(t, "post.created", "human", None) for t in human_posts(random.Random(2), 10)]
    engine = run(default_policy, bot + human)
    b, h = explain(engine, "bot", end), explain(engine, "human", end)
    assert b.flags == [FLAG] and h.flags == []
    assert b.score < 0.2 * h.score


@pytest.mark.parametrize("seed", range(6))
def test_a_bursty_human_is_not_flagged(default_policy: Policy, seed: int) -> None:
    rng = random.Random(seed)
    posts = human_posts(rng, 40)
    assert len(posts) > 60
    events = [(t, "post.created", "human", None) for t in posts]
    events += [(t - 30, "session.started", "human", None) for t in posts[::4]]
    others = [f"o{i}" for i in range(12)]
    events += [(t + 45, "reaction.added", "human", rng.choice(others)) for t in posts[::2]]
    engine = run(default_policy, events)
    explained = explain(engine, "human", START + 40 * DAY)
    assert explained.flags == []
    assert explained.damping == []
    bursts = engine.states[("c", "human")].bursts
    assert bursts is not None and len(bursts) == 2  # both cadence types were judged
    assert min(bursts.values()) > -0.6


def test_a_bot_interleaving_two_timers_is_flagged_per_type(default_policy: Policy) -> None:
    rng = random.Random(3)
    end = START + 4 * DAY
    posts = timer(rng, 47 * MINUTE, 5, end, START + 100)
    reactions = timer(rng, 19 * MINUTE, 5, end, START + 400)
    merged = cadence.new_stats()
    cadence.fold(merged, sorted(posts + reactions))
    b = cadence.burstiness(merged)
    assert b is not None and b > -0.6, "the merged stream alone would not look periodic"
    events = [(t, "post.created", "bot", None) for t in posts]
    events += [(t, "reaction.added", "bot", f"o{i % 7}") for i, t in enumerate(reactions)]
    engine = run(default_policy, events)
    explained = explain(engine, "bot", end)
    assert explained.flags == [FLAG]
    bursts = engine.states[("c", "bot")].bursts
    assert bursts is not None and all(v < -0.9 for v in bursts.values()) and len(bursts) == 2


def test_a_timer_on_one_type_flags_a_member_who_is_human_otherwise(default_policy: Policy) -> None:
    rng = random.Random(4)
    end = START + 6 * DAY
    events = [(t, "post.created", "m", None) for t in human_posts(rng, 6)]
    events += [(t, "suggestion.submitted", "m", None) for t in timer(rng, HOUR, 3, end, START + 9)]
    engine = run(default_policy, events)
    explained = explain(engine, "m", end)
    assert explained.flags == [FLAG]
    assert "suggestion.submitted" in explained.damping[0].detail


@pytest.mark.parametrize(("n", "flagged"), [(11, False), (12, True)])
def test_a_verdict_needs_min_events(default_policy: Policy, n: int, flagged: bool) -> None:
    assert default_policy.spec.automation.min_events == 12
    events = [(START + i * 30 * MINUTE, "post.created", "m", None) for i in range(n)]
    engine = run(default_policy, events)
    assert (explain(engine, "m", START + DAY).flags == [FLAG]) is flagged


def test_timers_on_non_cadence_types_are_not_judged(default_policy: Policy) -> None:
    assert not default_policy.rules["session.started"].cadence
    end = START + 3 * DAY
    events = [(START + i * HOUR, "session.started", "m", None) for i in range(72)]
    events += [(START + i * HOUR + 1, "answer.accepted", "asker", f"h{i}") for i in range(72)]
    engine = run(default_policy, events)
    assert explain(engine, "m", end).flags == []
    assert explain(engine, "asker", end).flags == []  # answer.accepted is not cadence-checked


def test_the_flag_survives_days_closing(default_policy: Policy) -> None:
    rng = random.Random(5)
    end = START + 20 * DAY
    events = [(t, "post.created", "bot", None) for t in timer(rng, 30 * MINUTE, 5, end, START)]
    engine = run(default_policy, events)
    state = engine.states[("c", "bot")]
    assert (
        state.cadence is not None
        and state.cadence[default_policy.rules["post.created"].index][0] > 500
    )
    assert len(state.buckets) <= default_policy.spec.late_days + 1
    assert explain(engine, "bot", end).flags == [FLAG]


def test_verdict_does_not_depend_on_arrival_order_within_the_window(default_policy: Policy) -> None:
    rng = random.Random(6)
    times = timer(rng, 30 * MINUTE, 5, START + 3 * DAY, START + 10)
    verdicts = []
    for order in (times, times[::-1], random.Random(1).sample(times, len(times))):
        engine = Engine(default_policy)
        for t in order:
            engine.apply(f"p{times.index(t)}", "post.created", "c", "bot", t)
        state = engine.states[("c", "bot")]
        verdicts.append((state.automation, state.bursts))
    assert verdicts[0][0] is not None
    assert verdicts[1] == verdicts[0] == verdicts[2]
