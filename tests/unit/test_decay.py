"""Forward decay: exact half-lives, landmark rebasing, out-of-order events."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from scoring import decay
from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS, DIMENSIONS, Policy
from scoring.records import MemberScore

DAY = DAY_SECONDS
MONDAY = 19_723  # 2024-01-01, a Monday: presence day and week credit share the anchor
KEY = ("c", "m")
PolicyFactory = Callable[..., Policy]


def rel_close(a: float, b: float, tol: float) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol * 1e-6)


# -- the decay module ---------------------------------------------------------------------------


def test_grow_then_value_at_is_the_credit_decayed_by_half_lives() -> None:
    rate = math.log(2) / (7 * DAY)
    landmark = 1_000 * DAY
    mass = 3.0 * decay.grow(rate, landmark + 5 * DAY, landmark)
    for k in range(6):
        at = landmark + 5 * DAY + k * 7 * DAY
        assert rel_close(decay.value_at(mass, rate, at, landmark), 3.0 * 0.5**k, 1e-12)


def test_rebase_keeps_the_value() -> None:
    rate = math.log(2) / (3 * DAY)
    old, new = 100 * DAY, 190 * DAY
    mass = 2.5 * decay.grow(rate, 180 * DAY, old)
    moved = decay.rebase(mass, rate, old, new)
    for at in (185 * DAY, 200 * DAY, 260 * DAY):
        assert rel_close(
            decay.value_at(moved, rate, at, new), decay.value_at(mass, rate, at, old), 1e-12
        )


def test_half_life_seconds_inverts_the_rate() -> None:
    assert decay.half_life_seconds(math.log(2) / 123.0) == pytest.approx(123.0, rel=1e-15)


# -- the engine, default policy: every dimension halves over its own half-life -------------------

# action, actor, target, dimension credited, credit booked at the day start
SINGLE_CREDITS = [
    ("post.created", "m", None, "contribution", 0.5),
    ("answer.accepted", "asker", "m", "help", 15.0),
    ("event.attended", "m", None, "offline", 6.0),
    ("reaction.added", "fan", "m", "recognition", 1.5),
    ("content.shared", "m", None, "external", 1.0),
    ("session.started", "m", None, "presence", 1.5),  # day 1.0 + week 0.5 (both on the Monday)
]


@pytest.mark.parametrize(("action", "actor", "target", "dim", "credit"), SINGLE_CREDITS)
def test_each_dimension_halves_every_half_life(
    default_policy: Policy, action: str, actor: str, target: str | None, dim: str, credit: float
) -> None:
    engine = Engine(default_policy)
    at = MONDAY * DAY + 9 * 3600
    assert engine.apply("e1", action, "c", actor, at, target) is Outcome.APPLIED
    half_life = default_policy.spec.dimensions[dim].half_life_days * DAY
    for k, factor in ((0, 1.0), (1, 0.5), (2, 0.25), (5, 1 / 32)):
        explained = engine.explain(KEY, MONDAY * DAY + k * half_life)
        assert explained is not None
        assert rel_close(explained.dimensions[dim], credit * factor, 1e-12), (k, explained)
        others = [v for name, v in explained.dimensions.items() if name not in (dim, "presence")]
        assert others == [0.0] * len(others)


def test_explained_masses_recompute_later_values(default_policy: Policy) -> None:
    """The MemberScore contract: value = masses[dim] * 2**(-(t - landmark) / half_life)."""
    engine = Engine(default_policy)
    rng = random.Random(5)
    for i in range(60):
        t = (MONDAY + rng.randrange(40)) * DAY + rng.uniform(0, DAY)
        kind, target = rng.choice(
            [("post.created", None), ("reply.created", "m"), ("thanks.given", "m")]
        )
        actor = "m" if target is None else f"o{rng.randrange(9)}"
        engine.apply(f"e{i}", kind, "c", actor, t, target)
    now = (MONDAY + 41) * DAY
    base = engine.explain(KEY, now)
    assert base is not None
    for later_days in (0.5, 10, 100):
        later = now + later_days * DAY
        explained = engine.explain(KEY, later)
        assert explained is not None
        for dim in DIMENSIONS:
            half_life = default_policy.spec.dimensions[dim].half_life_days * DAY
            expected = max(0.0, base.masses[dim]) * 2 ** (-(later - base.landmark) / half_life)
            assert rel_close(explained.dimensions[dim], expected, 1e-12), (dim, later_days)


# -- landmark rebasing ---------------------------------------------------------------------------

REBASE_ACTIONS = {
    "post": {"actor": {"contribution": 1.0}},
    "share": {"external": True, "actor": {"external": 1.0}},
}


def _rebase_policy(make_policy: PolicyFactory, exponent: float) -> Policy:
    # external decays fast (drives the rebase), contribution slowly (keeps years of credit)
    return make_policy(
        actions=REBASE_ACTIONS,
        dimensions={"contribution": {"half_life_days": 400.0}, "external": {"half_life_days": 0.5}},
        landmark_rebase_exponent=exponent,
    )


def test_landmark_rebase_keeps_values_over_years(make_policy: PolicyFactory) -> None:
    policy = _rebase_policy(make_policy, 10.0)  # rebase once the landmark is > ~7 days old
    engine = Engine(policy)
    rng = random.Random(11)
    day = 18_000
    booked: list[tuple[float, float]] = []  # (day start, contribution credit)
    landmarks = set()
    for i in range(250):  # about 5 years
        day += rng.randint(1, 14)
        t = day * DAY + rng.uniform(0, DAY)
        assert engine.apply(f"p{i}", "post", "c", "m", t) is Outcome.APPLIED
        engine.apply(f"s{i}", "share", "c", "m", t + 60)
        booked.append((day * DAY, 1.0))
        landmarks.add(engine.states[KEY].landmark)
    assert len(landmarks) > 100, "the short external half-life should force many rebases"
    half_life = 400 * DAY
    for after in (0.0, 3.3, 50.0, 900.0):
        at = (day + 1) * DAY + after * DAY
        expected = sum(v * 2 ** (-(at - anchor) / half_life) for anchor, v in booked)
        explained = engine.explain(KEY, at)
        assert explained is not None
        assert rel_close(explained.dimensions["contribution"], expected, 1e-9)
        assert rel_close(engine.score(KEY, at), explained.score, 1e-12)
    # the masses stay far from overflow
    assert all(abs(m) < 1e250 for m in engine.states[KEY].masses.values())


def test_rebase_and_no_rebase_give_the_same_values(make_policy: PolicyFactory) -> None:
    engines = [Engine(_rebase_policy(make_policy, e)) for e in (10.0, 700.0)]
    rng = random.Random(3)
    day = 18_000
    for i in range(120):
        day += rng.randint(1, 5)
        t = day * DAY + rng.uniform(0, DAY)
        for engine in engines:
            engine.apply(f"p{i}", "post", "c", "m", t)
            engine.apply(f"s{i}", "share", "c", "m", t + 1)
    assert engines[0].states[KEY].landmark > engines[1].states[KEY].landmark
    at = (day + 2) * DAY
    a, b = (engine.explain(KEY, at) for engine in engines)
    assert a is not None and b is not None
    for dim in ("contribution", "external"):
        assert rel_close(a.dimensions[dim], b.dimensions[dim], 1e-9), dim
    assert rel_close(a.score, b.score, 1e-9)


def test_late_event_after_a_rebase_is_booked_at_its_own_day(make_policy: PolicyFactory) -> None:
    policy = _rebase_policy(make_policy, 10.0)
    engine = Engine(policy)
    engine.apply("p1", "post", "c", "m", 18_000 * DAY)
    engine.apply("p2", "post", "c", "m", 18_100 * DAY + 5)  # 100 days on: rebased
    assert engine.states[KEY].landmark > 18_090 * DAY  # rebased past the late event's day
    assert engine.apply("p3", "post", "c", "m", 18_098 * DAY + 7) is Outcome.APPLIED  # 2 days late
    at = 18_101 * DAY
    hl = 400 * DAY
    expected = sum(2 ** (-(at - d * DAY) / hl) for d in (18_000, 18_100, 18_098))
    explained = engine.explain(KEY, at)
    assert explained is not None
    assert rel_close(explained.dimensions["contribution"], expected, 1e-12)


# -- arrival order -------------------------------------------------------------------------------


def _events_in_window(seed: int) -> list[tuple[str, str, str, float, str | None]]:
    """Events for days MONDAY..MONDAY+3 (within late_days=3 of each other)."""
    rng = random.Random(seed)
    members = [f"u{i}" for i in range(5)] + ["m"]
    kinds = ["session.started", "post.created", "reply.created", "thanks.given", "reaction.added"]
    events = []
    for i in range(80):
        kind = rng.choice(kinds)
        actor = rng.choice(members)
        target = None
        if kind in ("reply.created", "thanks.given", "reaction.added"):
            target = rng.choice([x for x in members if x != actor])
        t = (MONDAY + rng.randrange(4)) * DAY + rng.uniform(0, DAY)
        events.append((f"e{i}", kind, actor, t, target))
    return events


def _normalised(policy: Policy, explained: MemberScore, reference: float) -> dict[str, float]:
    """Masses re-expressed against a common landmark, so two representations compare."""
    return {
        dim: explained.masses[dim] * math.exp(-policy.rates[d] * (reference - explained.landmark))
        for d, dim in enumerate(DIMENSIONS)
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_out_of_order_events_within_the_window_give_the_same_masses(
    default_policy: Policy, seed: int
) -> None:
    events = _events_in_window(seed)
    shuffled = list(events)
    random.Random(seed + 100).shuffle(shuffled)
    engines = []
    for order in (sorted(events, key=lambda e: e[3]), shuffled, list(reversed(events))):
        engine = Engine(default_policy)
        for event_id, kind, actor, t, target in order:
            assert engine.apply(event_id, kind, "c", actor, t, target) is Outcome.APPLIED
        engines.append(engine)
    reference = MONDAY * DAY
    at = (MONDAY + 5) * DAY
    first = engines[0]
    for other in engines[1:]:
        assert set(other.states) == set(first.states)
        for key in first.states:
            a, b = first.explain(key, at), other.explain(key, at)
            assert a is not None and b is not None
            na, nb = (
                _normalised(default_policy, a, reference),
                _normalised(default_policy, b, reference),
            )
            for dim in DIMENSIONS:
                assert rel_close(na[dim], nb[dim], 1e-9), (key, dim)
                assert rel_close(a.dimensions[dim], b.dimensions[dim], 1e-9), (key, dim)
            assert rel_close(a.score, b.score, 1e-9)


def test_explanation_landmark_and_masses_do_not_depend_on_arrival_order(
    default_policy: Policy,
) -> None:
    """DESIGN: the same events in any order give the same state; the engine docstring says so.

    The landmark is the day of whichever event for the member arrived first, so the published
    explanation (`landmark`, `masses`) differs between two arrival orders of the same events
    (values agree, the representation does not). DESIGN also wants all members to share the
    landmark so that masses sort like scores.
    """
    events = [
        ("a", "post.created", "m", (MONDAY + 0) * DAY + 5, None),
        ("b", "session.started", "m", (MONDAY + 1) * DAY + 5, None),
        ("c", "reply.created", "x", (MONDAY + 2) * DAY + 7, "m"),
    ]
    explained = []
    for order in (events, events[::-1]):
        engine = Engine(default_policy)
        for event_id, kind, actor, t, target in order:
            assert engine.apply(event_id, kind, "c", actor, t, target) is Outcome.APPLIED
        explained.append(engine.explain(KEY, (MONDAY + 3) * DAY))
    first, second = explained
    assert first is not None and second is not None
    assert first.score == pytest.approx(second.score, rel=1e-12)
    assert first.landmark == second.landmark
    for dim in DIMENSIONS:
        assert first.masses[dim] == pytest.approx(second.masses[dim], rel=1e-9), dim
