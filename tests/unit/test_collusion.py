"""Collusion: closed groups vouching for one another are flagged, their interactions damped."""

from __future__ import annotations

import random
from itertools import count

import pytest

from scoring.collusion import InteractionGraph
from scoring.engine import Engine
from scoring.policy import DAY_SECONDS, CollusionSpec, Policy
from scoring.records import MemberScore
from scoring.runner import Runner

DAY = DAY_SECONDS
HOUR = 3_600.0
START = 19_723 * DAY  # 2024-01-01
FLAG = "collusion_suspected"
RING = ["r1", "r2", "r3", "r4"]


class Feed:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ids = count()

    def __call__(self, action: str, actor: str, t: float, target: str | None = None) -> None:
        self.engine.apply(f"e{next(self.ids)}", action, "c", actor, t, target)


def explain(engine: Engine, member: str, t: float) -> MemberScore:
    explained = engine.explain(("c", member), t)
    assert explained is not None
    return explained


def ring_thanks(feed: Feed, rng: random.Random, days: int = 10) -> None:
    """Each ring member comes online most days and thanks the others, at human-looking times."""
    for day in range(days):
        for member in RING:
            if rng.random() < 0.2:
                continue
            t = START + day * DAY + rng.uniform(8, 22) * HOUR
            feed("session.started", member, t - 30)
            for _ in range(rng.randint(2, 6)):
                t += rng.expovariate(1 / 300)
                feed(
                    rng.choice(["thanks.given", "reaction.added"]),
                    member,
                    t,
                    rng.choice([m for m in RING if m != member]),
                )


# -- the graph alone -----------------------------------------------------------------------------


def spec() -> CollusionSpec:
    return CollusionSpec()  # defaults: 12 interactions, groups up to 5, 80 % insular


def test_graph_defaults_match_the_shipped_policy(default_policy: Policy) -> None:
    assert default_policy.spec.collusion == spec()


@pytest.mark.parametrize(("outside", "flagged"), [(3, True), (4, False)])
def test_insularity_threshold(outside: int, flagged: bool) -> None:
    graph = InteractionGraph(spec())
    for giver in ("g1", "g2", "g3"):
        graph.add("c", giver, "x", 0, 4)
    graph.add("c", "g1", "elsewhere", 0, outside)  # 12 inside of 15 (0.8) or 16 (0.75)
    assert list(graph.candidates()) == [("c", "x")]
    verdict = graph.verdict(("c", "x"))
    if flagged:
        assert verdict == (3, 0.8)
    else:
        assert verdict is None


def test_too_few_interactions_or_too_many_givers_are_no_candidates() -> None:
    graph = InteractionGraph(spec())
    for giver in ("g1", "g2", "g3"):
        graph.add("c", giver, "x", 0, 3)
    graph.add("c", "g1", "x", 0, 2)  # 11 received
    assert graph.verdict(("c", "x")) is None
    graph.add("c", "g2", "x", 0)  # 12
    assert graph.verdict(("c", "x")) == (3, 1.0)
    for giver in ("g4", "g5"):
        graph.add("c", giver, "x", 0)
    assert graph.verdict(("c", "x")) is not None  # five givers: still a small group
    graph.add("c", "g6", "x", 0)
    assert graph.verdict(("c", "x")) is None
    assert list(graph.candidates()) == []


def test_graph_is_per_community() -> None:
    graph = InteractionGraph(spec())
    graph.add("a", "g1", "x", 0, 12)
    graph.add("b", "g1", "y", 0, 100)  # g1 gives much more elsewhere, but in another community
    assert graph.verdict(("a", "x")) == (1, 1.0)


def test_graph_counts_are_order_independent() -> None:
    rng = random.Random(4)
    edges = [(rng.choice("abcdefg"), rng.choice("abcdefg")) for _ in range(300)]
    edges = [(g, r) for g, r in edges if g != r]
    verdicts = []
    for order in (edges, edges[::-1]):
        graph = InteractionGraph(spec())
        for giver, receiver in order:
            graph.add("c", giver, receiver, 0)
        verdicts.append({m: graph.verdict(("c", m)) for m in "abcdefg"})
    assert verdicts[0] == verdicts[1]


# -- the engine ----------------------------------------------------------------------------------


def test_a_ring_thanking_itself_is_flagged_and_damped(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    ring_thanks(Feed(engine), random.Random(1))
    at = START + 10 * DAY
    before = {m: explain(engine, m, at) for m in RING}
    assert all(b.flags == [] for b in before.values())
    flagged = engine.refresh_collusion()
    assert flagged == {("c", m) for m in RING}
    assert engine.collusion_flagged == flagged
    factor = default_policy.spec.collusion.damping
    for member in RING:
        after = explain(engine, member, at)
        assert after.flags == [FLAG]
        (damping,) = after.damping
        assert damping.factor == factor
        assert "3 members" in damping.detail and "100%" in damping.detail
        assert after.score < 0.7 * before[member].score
        # interaction credit is damped, presence is not
        assert after.dimensions["presence"] == before[member].dimensions["presence"]
        for dim in ("help", "recognition", "contribution"):
            assert after.dimensions[dim] == pytest.approx(
                factor * before[member].dimensions[dim], rel=1e-12
            )


def test_a_helper_thanked_by_many_who_thank_others_is_not_flagged(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    rng = random.Random(2)
    thankers = [f"t{i:02d}" for i in range(30)]
    for day in range(10):
        for thanker in rng.sample(thankers, 8):
            t = START + day * DAY + rng.uniform(8, 22) * HOUR
            feed("thanks.given", thanker, t, "helper")
            feed("thanks.given", thanker, t + 60, rng.choice([x for x in thankers if x != thanker]))
    assert engine.refresh_collusion() == set()
    assert explain(engine, "helper", START + 10 * DAY).flags == []


def test_few_givers_who_interact_widely_elsewhere_are_not_collusion(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    rng = random.Random(3)
    givers = ["g1", "g2", "g3"]
    for day in range(10):
        for giver in givers:
            t = START + day * DAY + rng.uniform(8, 20) * HOUR
            feed("reply.created", giver, t, "x")
            for i in range(4):
                feed(
                    "reply.created", giver, t + 600 * (i + 1), f"{giver}-friend{rng.randrange(50)}"
                )
    assert ("c", "x") in set(engine.graph.candidates())  # small and busy enough to be looked at
    assert engine.refresh_collusion() == set()
    assert explain(engine, "x", START + 10 * DAY).flags == []


def test_refresh_clears_the_flag_once_the_group_opens_up(default_policy: Policy) -> None:
    engine = Engine(default_policy)
    feed = Feed(engine)
    ring_thanks(feed, random.Random(5))
    assert engine.refresh_collusion() == {("c", m) for m in RING}
    flagged_score = engine.score(("c", "r1"), START + 10 * DAY)
    rng = random.Random(6)
    for day in range(10, 13):  # the ring starts to thank the wider community, a lot
        for member in RING:
            for i in range(40):
                feed(
                    "thanks.given",
                    member,
                    START + day * DAY + i * 700 + rng.uniform(0, 600),
                    f"n{i}",
                )
    assert engine.refresh_collusion() == set()
    assert engine.collusion_flagged == set()
    assert explain(engine, "r1", START + 13 * DAY).flags == []
    assert engine.score(("c", "r1"), START + 10 * DAY) > flagged_score


def test_runner_refreshes_at_day_boundaries_and_emits_collusion_changes(
    default_policy: Policy,
) -> None:
    engine = Engine(default_policy)
    runner = Runner(engine)
    events: list[tuple[float, str, str, str | None]] = []

    class Collect(Feed):
        def __call__(self, action: str, actor: str, t: float, target: str | None = None) -> None:
            events.append((t, action, actor, target))

    ring_thanks(Collect(engine), random.Random(7), days=20)
    changes = []
    for i, (t, action, actor, target) in enumerate(sorted(events, key=lambda e: e[0])):
        changes += runner.feed(f"e{i}", action, "c", actor, t, target)[1]
    changes += runner.finish(START + 20 * DAY)
    collusion = [c for c in changes if c.cause == "collusion"]
    assert {c.member for c in collusion} == set(RING)
    assert all(c.new_score < c.old_score for c in collusion)
    # the refresh happens at a UTC day boundary, not at an event
    assert all(c.time.endswith("T00:00:00Z") for c in collusion)
    assert engine.collusion_flagged == {("c", m) for m in RING}
