"""What actions earn: caps, diminishing returns, counterparts, presence, lateness, duplicates."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from itertools import count

import pytest

from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS, Policy
from scoring.records import MemberScore

DAY = DAY_SECONDS
HOUR = 3_600.0
MONDAY = 19_723  # 2024-01-01
START = MONDAY * DAY
PolicyFactory = Callable[..., Policy]


def D(n: int, r: float) -> float:
    """Diminishing-returns sum 1 + r + ... + r**(n-1)."""
    return float(n) if r == 1 else (1 - r**n) / (1 - r)


def explain(engine: Engine, member: str, t: float) -> MemberScore:
    explained = engine.explain(("c", member), t)
    assert explained is not None, member
    return explained


def value(engine: Engine, member: str, dim: str, t: float) -> float:
    return explain(engine, member, t).dimensions[dim]


def snapshot(engine: Engine, t: float) -> dict[tuple[str, str], tuple[object, ...]]:
    out = {}
    for key, state in engine.states.items():
        explained = engine.explain(key, t)
        assert explained is not None
        out[key] = (
            explained,
            dict(state.masses),
            state.landmark,
            state.newest_day,
            state.closed_day,
            {d: sorted(b.counts.items()) for d, b in state.buckets.items()},
        )
    return out


class Feed:
    """Applies events with fresh ids."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ids = count()

    def __call__(self, action: str, actor: str, t: float, target: str | None = None) -> Outcome:
        return self.engine.apply(f"e{next(self._ids)}", action, "c", actor, t, target)


# -- caps ----------------------------------------------------------------------------------------


def test_daily_cap_binds_exactly_and_scales_sides_proportionally(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for i in range(6):  # six accepted answers from six askers: 15 * D(6, 0.9) = 70.3 > cap 40
        assert (
            feed("answer.accepted", f"asker{i}", START + (9 + i) * HOUR, "helper")
            is Outcome.APPLIED
        )
    for i in range(3):  # and three replies of the helper's own: 1.0 * D(3, 0.8) = 2.44
        feed("reply.created", "helper", START + (16 + i) * HOUR, f"asker{i}")
    received, given = 15 * D(6, 0.9), 1.0 * D(3, 0.8)
    assert received + given > 40
    explained = explain(engine, "helper", START)
    assert explained.dimensions["help"] == pytest.approx(40.0, rel=1e-12)
    assert explained.caps_hit == {"help": 1}
    tops = {(a.action, a.role): a.value for a in explained.top_actions}
    assert tops[("answer.accepted", "received")] == pytest.approx(
        40 * received / (received + given), abs=2e-6
    )
    assert tops[("reply.created", "given")] == pytest.approx(
        40 * given / (received + given), abs=2e-6
    )


def test_more_accepted_answers_beyond_the_cap_earn_nothing_more(default_policy: Policy) -> None:
    values = []
    for n in (3, 4, 10, 40):
        engine = Engine(default_policy)
        feed = Feed(engine)
        for i in range(n):
            feed("answer.accepted", f"asker{i}", START + i * 60, "helper")
        values.append(value(engine, "helper", "help", START))
    assert 15 * D(3, 0.9) > 40
    assert values == pytest.approx([40.0] * 4, rel=1e-12)


def test_caps_are_per_day(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for i in range(10):
        feed("answer.accepted", f"asker{i}", START + i * 60, "helper")
    feed("answer.accepted", "asker0", START + DAY + 60, "helper")
    rate = math.log(2) / (60 * DAY)
    expected = 40 * math.exp(-rate * DAY) + 15
    assert value(engine, "helper", "help", START + DAY) == pytest.approx(expected, rel=1e-12)
    assert explain(engine, "helper", START + DAY).caps_hit == {"help": 1}


def test_caps_hit_survive_closing_the_day(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for i in range(5):
        feed("answer.accepted", f"asker{i}", START + i * 60, "helper")
    feed("session.started", "helper", START + 10 * DAY)  # closes the capped day
    assert not engine.states[("c", "helper")].buckets.get(MONDAY)
    assert explain(engine, "helper", START + 10 * DAY).caps_hit == {"help": 1}


# -- diminishing returns and counterparts --------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 20, 100])
def test_repeated_posts_in_a_day_have_diminishing_returns(default_policy: Policy, n: int) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    rng = random.Random(n)
    for _ in range(n):
        feed("post.created", "m", START + rng.uniform(0, DAY - 1))
    expected = 0.5 * (1 - 0.5**n) / 0.5
    assert value(engine, "m", "contribution", START) == pytest.approx(expected, rel=1e-12)


def test_repeats_on_separate_days_are_not_diminished(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for day in range(3):
        feed("post.created", "m", START + day * DAY + HOUR)
        feed("post.created", "m", START + day * DAY + 2 * HOUR)
    rate = math.log(2) / (45 * DAY)
    expected = sum(0.75 * math.exp(-rate * (2 - day) * DAY) for day in range(3))
    assert value(engine, "m", "contribution", START + 2 * DAY) == pytest.approx(expected, rel=1e-12)


def test_reactions_from_distinct_members_earn_more_than_from_one(default_policy: Policy) -> None:
    distinct, single = Engine(default_policy), Engine(default_policy)
    feed = Feed(distinct)
    for i in range(10):
        feed("reaction.added", f"fan{i}", START + i * 600, "m")
    feed = Feed(single)
    for i in range(10):
        feed("reaction.added", "fan", START + i * 600, "m")
    d10 = D(10, 0.7)
    got_distinct = value(distinct, "m", "recognition", START)
    got_single = value(single, "m", "recognition", START)
    assert got_distinct == pytest.approx(1.5 * d10, rel=1e-12)
    effective = sum(0.5**k for k in range(10))
    assert got_single == pytest.approx(1.5 * d10 * effective / 10, rel=1e-12)
    assert got_distinct > 4 * got_single


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_repeats_from_one_counterpart_halve(make_policy: PolicyFactory, k: int) -> None:
    policy = make_policy(actions={"like": {"target": {"contribution": 1.0}}})
    engine = Engine(policy)
    feed = Feed(engine)
    for i in range(k):
        feed("like", "fan", START + i * 60, "m")
    assert value(engine, "m", "contribution", START) == pytest.approx(2 - 0.5 ** (k - 1), rel=1e-12)


def test_counterpart_repeats_are_counted_per_day(make_policy: PolicyFactory) -> None:
    policy = make_policy(
        actions={"like": {"target": {"contribution": 1.0}}},
        dimensions={"contribution": {"half_life_days": 1e6}},
    )
    engine = Engine(policy)
    feed = Feed(engine)
    for day in range(3):
        feed("like", "fan", START + day * DAY + 60, "m")
        feed("like", "fan", START + day * DAY + 120, "m")
    assert value(engine, "m", "contribution", START + 2 * DAY) == pytest.approx(4.5, rel=1e-6)


# -- who earns what ------------------------------------------------------------------------------


def test_self_interaction_earns_nothing_on_either_side(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for action in ("thanks.given", "reaction.added", "answer.accepted", "reply.created"):
        assert feed(action, "m", START + HOUR, "m") is Outcome.SELF_INTERACTION
    assert engine.states == {}
    feed("post.created", "m", START + 2 * HOUR)
    before = snapshot(engine, START + DAY)
    for action in ("thanks.given", "suggestion.adopted", "comment.created"):
        assert feed(action, "m", START + 3 * HOUR, "m") is Outcome.SELF_INTERACTION
    assert snapshot(engine, START + DAY) == before
    assert engine.graph.edge_count() == 0


def test_duplicates_are_ignored(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    args = ("thanks.given", "c", "fan", START + HOUR, "m")
    assert engine.apply("dup", *args) is Outcome.APPLIED
    engine.apply("other", "post.created", "c", "m", START + 2 * HOUR)
    before = snapshot(engine, START + DAY)
    edges = engine.graph.edge_count()
    for _ in range(3):
        assert engine.apply("dup", *args) is Outcome.DUPLICATE
    assert engine.apply("other", "post.created", "c", "m", START + 2 * HOUR) is Outcome.DUPLICATE
    assert snapshot(engine, START + DAY) == before
    assert engine.graph.edge_count() == edges
    assert value(engine, "m", "help", START) == pytest.approx(4.0, rel=1e-12)


def test_events_beyond_the_late_window_are_too_late(default_policy: Policy) -> None:
    late_days = default_policy.spec.late_days
    assert late_days == 3
    engine = Engine(default_policy)
    feed = Feed(engine)
    feed("post.created", "m", START + 10 * DAY + HOUR)
    before = snapshot(engine, START + 11 * DAY)
    assert feed("post.created", "m", START + 7 * DAY - 1) is Outcome.TOO_LATE  # day 6
    assert feed("thanks.given", "fan", START + 6 * DAY, "m") is Outcome.APPLIED  # fan is new...
    after_fan = snapshot(engine, START + 11 * DAY)
    assert after_fan[("c", "m")] == before[("c", "m")]  # ...but m's side is too late
    assert feed("post.created", "m", START + 7 * DAY) is Outcome.APPLIED  # day 7: still open


def test_days_closed_by_the_watermark_are_too_late(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    feed("post.created", "m", START + HOUR)
    feed("post.created", "m", START + DAY + HOUR)
    assert engine.close_days_before(MONDAY + 1) == 1
    assert feed("post.created", "m", START + 2 * HOUR) is Outcome.TOO_LATE
    assert feed("post.created", "m", START + DAY + 2 * HOUR) is Outcome.APPLIED


def test_unknown_type_is_reported_and_ignored(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    assert engine.apply("x", "post.deleted", "c", "m", START) is Outcome.UNKNOWN_TYPE
    assert engine.apply("y", "", "c", "m", START, "n") is Outcome.UNKNOWN_TYPE
    assert engine.states == {}


def test_accepted_answer_credits_mostly_the_helper(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    Feed(engine)("answer.accepted", "asker", START + HOUR, "helper")
    helper, asker = explain(engine, "helper", START), explain(engine, "asker", START)
    assert helper.dimensions["help"] == pytest.approx(15.0, rel=1e-12)
    assert asker.dimensions["contribution"] == pytest.approx(0.5, rel=1e-12)
    assert asker.dimensions["help"] == 0.0
    assert helper.dimensions["presence"] == 0.0  # being accepted is not being present
    assert helper.score > asker.score
    assert helper.top_actions[0].action == "answer.accepted"
    assert helper.top_actions[0].role == "received"


def test_removed_content_takes_contribution_but_never_below_zero(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    feed("suggestion.adopted", "mod", START + HOUR, "m")  # +20 contribution
    feed("content.removed", "mod", START + 2 * HOUR, "m")  # -5
    assert value(engine, "m", "contribution", START) == pytest.approx(15.0, rel=1e-12)
    for i in range(8):  # removals are not capped and not diminished: -40 in one day
        feed("content.removed", f"mod{i}", START + DAY + i * 60, "m")
    explained = explain(engine, "m", START + DAY)
    assert explained.dimensions["contribution"] == 0.0
    assert explained.masses["contribution"] < 0
    assert explained.score == 0.0


# -- presence ------------------------------------------------------------------------------------


def test_presence_counts_distinct_days_not_events(default_policy: Policy) -> None:
    one, many = Engine(default_policy), Engine(default_policy)
    Feed(one)("session.started", "m", START + 9 * HOUR)
    feed = Feed(many)
    for i in range(50):
        feed("session.started", "m", START + 60 * i)
    assert snapshot(one, START + DAY)[("c", "m")][0] == snapshot(many, START + DAY)[("c", "m")][0]
    assert value(many, "m", "presence", START) == pytest.approx(1.5, rel=1e-12)  # day + week


def test_presence_credits_each_day_and_each_week_once(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for day in (0, 1, 1, 4, 7, 8):  # Mon, Tue (twice), Fri, next Mon, next Tue
        feed("post.created", "m", START + day * DAY + 10 * HOUR)
    rate = math.log(2) / (45 * DAY)
    at = START + 8 * DAY
    expected = sum(math.exp(-rate * (at - START - d * DAY)) for d in (0, 1, 4, 7, 8))
    expected += 0.5 * (math.exp(-rate * 8 * DAY) + math.exp(-rate * DAY))  # two Monday weeks
    assert value(engine, "m", "presence", at) == pytest.approx(expected, rel=1e-12)


def test_being_the_target_is_not_presence(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for i in range(10):
        feed("thanks.given", f"fan{i}", START + i * DAY, "m")
    assert value(engine, "m", "presence", START + 10 * DAY) == 0.0
    assert value(engine, "fan3", "presence", START + 3 * DAY) == pytest.approx(
        1.0 + 0.5 * 2 ** (-3 / 45)
    )


def test_offline_actions_are_not_online_presence(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    Feed(engine)("event.attended", "m", START + HOUR)
    explained = explain(engine, "m", START)
    assert explained.dimensions["presence"] == 0.0
    assert explained.dimensions["offline"] == pytest.approx(6.0, rel=1e-12)


def test_external_activity_is_never_presence_and_never_scores_alone(
    default_policy: Policy,
) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    for day in range(5):
        for i in range(4):
            assert feed("content.shared", "m", START + day * DAY + i * HOUR) is Outcome.APPLIED
    explained = explain(engine, "m", START + 5 * DAY)
    assert explained.dimensions["presence"] == 0.0
    assert explained.dimensions["external"] > 5
    assert explained.score == 0.0


def test_external_activity_only_amplifies_inside_engagement(default_policy: Policy) -> None:
    plain, sharing = Engine(default_policy), Engine(default_policy)
    for engine in (plain, sharing):
        feed = Feed(engine)
        for day in range(10):
            feed("session.started", "m", START + day * DAY + 8 * HOUR)
            feed("thanks.given", f"fan{day}", START + day * DAY + 9 * HOUR, "m")
    feed = Feed(sharing)
    for day in range(10):
        for i in range(5):
            feed("content.shared", "m", START + day * DAY + (12 + i) * HOUR)
    at = START + 10 * DAY
    base, boosted = plain.score(("c", "m"), at), sharing.score(("c", "m"), at)
    amplification = default_policy.spec.external_amplification
    assert base < boosted <= base * (1 + amplification) + 1e-9
    external = value(sharing, "m", "external", at)
    saturation = 1 - math.exp(-external / default_policy.spec.dimensions["external"].scale)
    assert boosted == pytest.approx(base * (1 + amplification * saturation), rel=1e-12)


# -- volume against response ---------------------------------------------------------------------


def _human_times(rng: random.Random, day: int, n: int) -> list[float]:
    """`n` bursty times on one day: a couple of sessions with actions minutes apart."""
    times: list[float] = []
    while len(times) < n:
        t = START + day * DAY + rng.uniform(7, 22) * HOUR
        for _ in range(min(n - len(times), rng.randint(3, 25))):
            t += rng.expovariate(1 / 120)
            times.append(min(t, START + (day + 1) * DAY - 1))
    return times


def test_volume_nobody_responds_to_earns_almost_nothing(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    rng = random.Random(42)
    days = 30
    askers = [f"asker{i}" for i in range(20)]
    for day in range(days):
        # a prolific poster: 50 posts a day, nobody answers
        times = _human_times(rng, day, 50)
        feed("session.started", "poster", times[0] - 30)
        for t in times:
            feed("post.created", "poster", t)
        # a helper: three days a week, one or two accepted answers from distinct askers
        if day % 7 in (0, 2, 4):
            t = START + day * DAY + rng.uniform(8, 20) * HOUR
            feed("session.started", "helper", t)
            for i in range(rng.randint(1, 2)):
                feed("reply.created", "helper", t + 600 * (i + 1), rng.choice(askers))
                feed("answer.accepted", rng.choice(askers), t + 3000 * (i + 1), "helper")
    at = START + days * DAY
    poster, helper = explain(engine, "poster", at), explain(engine, "helper", at)
    assert poster.flags == [] and helper.flags == []
    # per day the poster earns 0.5 * D(50, 0.5) < 1 contribution, against 25 if posts added up
    rate = math.log(2) / (45 * DAY)
    bound = sum(math.exp(-rate * (at - START - d * DAY)) for d in range(days))
    assert poster.dimensions["contribution"] <= bound * (1 + 1e-9)
    assert bound < 26
    assert poster.dimensions["contribution"] < 0.04 * 0.5 * 50 * days
    assert poster.dimensions["help"] == 0.0
    assert helper.score > poster.score + 10
    assert helper.tier != "newcomer"


def test_no_state_reads_as_zero(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    assert engine.score(("c", "nobody"), START) == 0.0
    assert engine.explain(("c", "nobody"), START) is None
    assert engine.tier_drop_time(("c", "nobody"), START) is None


def test_fifty_posts_a_day_score_barely_above_five(default_policy: Policy) -> None:
    scores = {}
    for per_day in (5, 50):
        engine = Engine(default_policy)
        feed = Feed(engine)
        rng = random.Random(7)
        for day in range(30):
            for t in _human_times(rng, day, per_day):
                feed("post.created", "m", t)
        at = START + 30 * DAY
        assert explain(engine, "m", at).flags == []
        scores[per_day] = engine.score(("c", "m"), at)
    assert scores[5] < scores[50] < scores[5] + 1.5
