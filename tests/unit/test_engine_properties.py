"""Property tests: order independence, idempotency under duplicates, decay monotonicity."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS, DIMENSIONS, Policy, load_policy
from scoring.records import MemberScore

DAY = DAY_SECONDS
FIRST_DAY = 19_725  # 2024-01-03, a Wednesday: the window spans a week boundary
POLICY = load_policy()
LATE = POLICY.spec.late_days
WINDOW = (LATE + 1) * DAY  # days FIRST_DAY .. FIRST_DAY + LATE: never too late in any order
TYPES = sorted(POLICY.rules)
WITH_TARGET = {name for name, rule in POLICY.rules.items() if rule.target}
MEMBERS = [f"m{i}" for i in range(8)]
REL = 1e-9

Event = tuple[str, str, str, float, str | None]  # id, type, actor, time, target


RAW_EVENT = st.tuples(
    st.sampled_from(TYPES),
    st.integers(0, 7),  # actor
    st.integers(0, 9),  # chance of a target
    st.integers(0, 7),  # target (sometimes the actor: self-interaction)
    st.floats(0, WINDOW - 1),  # time in the window
    st.booleans(),  # or clustered right after the previous event
    st.floats(0, 3600),
)


@st.composite
def event_sets(draw: st.DrawFn) -> list[Event]:
    members = MEMBERS[: draw(st.integers(5, 8))]
    size = draw(st.integers(1, 70))
    raw = draw(st.lists(RAW_EVENT, min_size=size, max_size=size))
    events: list[Event] = []
    for i, (kind, actor, chance, target, offset, clustered, gap) in enumerate(raw):
        who = members[actor % len(members)]
        whom = None
        if chance < (8 if kind in WITH_TARGET else 1):
            whom = members[target % len(members)]
        # clustered times now and then, so timers and caps get exercised too
        if events and clustered:
            t = min(events[-1][3] + gap, FIRST_DAY * DAY + WINDOW - 1)
        else:
            t = FIRST_DAY * DAY + offset
        events.append((f"ev{i}", kind, who, t, whom))
    if draw(st.booleans()):  # a member on a timer, so automation verdicts are exercised
        kind = draw(st.sampled_from([k for k in TYPES if POLICY.rules[k].cadence]))
        who, whom = members[0], (members[1] if kind in WITH_TARGET else None)
        period = draw(st.floats(600, 3 * 3600))
        jitter = draw(st.floats(0, 60))
        offset = draw(st.floats(0, WINDOW / 2))
        n = draw(st.integers(8, 30))
        for j in range(n):
            t = FIRST_DAY * DAY + offset + j * period + (jitter if j % 2 else -jitter)
            if FIRST_DAY * DAY <= t < FIRST_DAY * DAY + WINDOW:
                events.append((f"timer{j}", kind, who, t, whom))
    if draw(st.booleans()):  # a busy day for one member, so daily caps are exercised
        kind = draw(st.sampled_from(["answer.accepted", "suggestion.adopted", "thanks.given"]))
        day = draw(st.integers(0, LATE))
        for j, giver in enumerate(members[1:]):
            t = (FIRST_DAY + day) * DAY + draw(st.floats(0, DAY - 1))
            events.append((f"busy{j}", kind, giver, t, members[0]))
    copies = draw(st.lists(st.sampled_from(events), max_size=8))  # at-least-once delivery
    return events + copies


def apply_all(engine: Engine, events: list[Event]) -> list[Outcome]:
    return [engine.apply(i, kind, "c", actor, t, target) for i, kind, actor, t, target in events]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def normalised(policy: Policy, explained: MemberScore) -> dict[str, float]:
    """Masses against a common landmark (FIRST_DAY), so representations compare."""
    return {
        dim: explained.masses[dim]
        * math.exp(-policy.rates[d] * (FIRST_DAY * DAY - explained.landmark))
        for d, dim in enumerate(DIMENSIONS)
    }


def view(engine: Engine, t: float) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for key in engine.states:
        explained = engine.explain(key, t)
        assert explained is not None
        out[key] = {
            "score": explained.score,
            "tier": explained.tier,
            "dimensions": explained.dimensions,
            "masses": normalised(engine.policy, explained),
            "flags": explained.flags,
            "damping": [(d.reason, d.factor) for d in explained.damping],
            "caps_hit": explained.caps_hit,
            "top": {(a.action, a.role): a.value for a in explained.top_actions},
        }
    return out


def assert_same(
    a: dict[tuple[str, str], dict[str, Any]], b: dict[tuple[str, str], dict[str, Any]]
) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert close(x["score"], y["score"]), (key, x["score"], y["score"])
        for field in ("tier", "flags", "damping", "caps_hit"):
            assert x[field] == y[field], (key, field)
        for field in ("dimensions", "masses"):
            for dim in DIMENSIONS:
                assert close(x[field][dim], y[field][dim]), (key, field, dim)
        # the top five can swap members that tie; compare the shared entries
        for label in x["top"].keys() & y["top"].keys():
            assert math.isclose(x["top"][label], y["top"][label], abs_tol=2e-6), (key, label)


def read_times(events: list[Event]) -> list[float]:
    last = max(e[3] for e in events)
    return [last, last + 0.5 * DAY, FIRST_DAY * DAY + WINDOW + 30 * DAY]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets(), data=st.data())
def test_order_independence(events: list[Event], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(events))
    engines = []
    outcomes = []
    for order in (events, shuffled):
        engine = Engine(POLICY)
        outcomes.append(Counter(apply_all(engine, order)))
        engine.refresh_collusion()
        engines.append(engine)
    assert outcomes[0] == outcomes[1]
    assert Outcome.TOO_LATE not in outcomes[0]
    assert engines[0].collusion_flagged == engines[1].collusion_flagged
    for t in read_times(events):
        assert_same(view(engines[0], t), view(engines[1], t))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets())
def test_applying_everything_twice_changes_nothing(events: list[Event]) -> None:
    once, twice = Engine(POLICY), Engine(POLICY)
    apply_all(once, events)
    apply_all(twice, events)
    again = apply_all(twice, events)
    assert set(again) <= {Outcome.DUPLICATE, Outcome.SELF_INTERACTION}
    assert once.graph.edge_count() == twice.graph.edge_count()
    assert once.refresh_collusion() == twice.refresh_collusion()
    for t in read_times(events):
        assert_same(view(once, t), view(twice, t))
    for key, state in once.states.items():
        other = twice.states[key]
        assert other.landmark == state.landmark
        assert other.masses.keys() == state.masses.keys()
        assert all(close(other.masses[k], m) for k, m in state.masses.items())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_sets(),
    gaps=st.lists(st.floats(0, 400 * DAY), min_size=2, max_size=8),
    refresh=st.booleans(),
)
def test_scores_only_decay_after_the_last_event(
    events: list[Event], gaps: list[float], refresh: bool
) -> None:
    """Holds even with content.removed: each dimension is one mass with one decay rate."""
    engine = Engine(POLICY)
    apply_all(engine, events)
    if refresh:
        engine.refresh_collusion()
    last = max(e[3] for e in events)
    times = [last + g for g in sorted(gaps)]
    for key in engine.states:
        scores = [engine.score(key, t) for t in times]
        assert all(0.0 <= s <= 100.0 for s in scores)
        for earlier, later in zip(scores, scores[1:], strict=False):
            assert later <= earlier + 1e-12 * max(1.0, earlier), (key, scores)
        drop = engine.tier_drop_time(key, last)
        if drop is not None:
            assert drop >= last


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets(), after=st.floats(0, 200 * DAY))
def test_explained_score_is_the_fast_score(events: list[Event], after: float) -> None:
    engine = Engine(POLICY)
    apply_all(engine, events)
    engine.refresh_collusion()
    t = max(e[3] for e in events) + after
    for key in engine.states:
        explained = engine.explain(key, t)
        assert explained is not None
        assert close(explained.score, engine.score(key, t))
        assert explained.tier in POLICY.tier_names
        assert all(v >= 0.0 for v in explained.dimensions.values())
        assert len(explained.top_actions) <= 5
        values = [a.value for a in explained.top_actions]
        assert values == sorted(values, reverse=True)
