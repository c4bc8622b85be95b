"""The collusion graph reads a window of event days: old interactions stop counting and go."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.collusion import InteractionGraph
from scoring.engine import Engine
from scoring.policy import DAY_SECONDS, CollusionSpec, Policy
from scoring.state import MemberKey

WINDOW = 7
MEMBERS = "abcdefgh"
edge_lists = st.lists(
    st.tuples(st.sampled_from(MEMBERS), st.sampled_from(MEMBERS), st.integers(0, 40)).filter(
        lambda e: e[0] != e[1]
    ),
    max_size=300,
)


def spec(window_days: int = WINDOW) -> CollusionSpec:
    return CollusionSpec(min_interactions=4, max_group=3, window_days=window_days)


def verdicts(graph: InteractionGraph) -> dict[MemberKey, tuple[int, float] | None]:
    return {("c", m): graph.verdict(("c", m)) for m in MEMBERS}


@settings(max_examples=200, deadline=None)
@given(edge_lists, st.randoms(use_true_random=False))
def test_the_graph_equals_one_fed_only_the_last_window(
    edges: list[tuple[str, str, int]], rng: random.Random
) -> None:
    """In any order, the graph equals a fresh one fed only the interactions inside its window."""
    shuffled = edges[:]
    rng.shuffle(shuffled)
    graph = InteractionGraph(spec())
    for giver, receiver, day in shuffled:
        graph.add("c", giver, receiver, day)
    oracle = InteractionGraph(spec())
    if edges:
        last = max(day for _, _, day in edges)
        for giver, receiver, day in sorted(edges, key=lambda e: e[2]):
            if day > last - WINDOW:
                oracle.add("c", giver, receiver, day)
    assert graph.day == oracle.day
    assert verdicts(graph) == verdicts(oracle)
    assert list(graph.candidates()) == list(oracle.candidates())
    assert graph.edge_count() == oracle.edge_count()


def test_a_ring_that_stopped_is_cleared_once_its_days_leave_the_window() -> None:
    graph = InteractionGraph(spec())
    ring = "abc"
    for day in range(3):
        for giver in ring:
            for receiver in ring:
                if giver != receiver:
                    graph.add("c", giver, receiver, day, 2)
    assert verdicts(graph)[("c", "a")] == (2, 1.0)
    graph.add("c", "x", "y", 2 + WINDOW - 1)  # day 2 (4 thanks for each) is still inside
    assert verdicts(graph)[("c", "a")] == (2, 1.0)
    graph.add("c", "x", "y", 2 + WINDOW)  # every ring day has left
    assert verdicts(graph)[("c", "a")] is None
    assert graph.edge_count() == 1  # only x -> y is held
    assert graph.first_day == 3


def test_interactions_older_than_the_window_are_ignored() -> None:
    graph = InteractionGraph(spec())
    graph.add("c", "x", "y", 100)
    for _ in range(10):
        graph.add("c", "a", "b", 100 - WINDOW)
    assert graph.edge_count() == 1
    assert verdicts(graph)[("c", "b")] is None


def test_memory_holds_one_window_of_days() -> None:
    graph = InteractionGraph(spec())
    rng = random.Random(3)
    sizes = []
    for day in range(20 * WINDOW):
        for _ in range(50):
            graph.add("c", f"m{rng.randrange(400)}", f"m{rng.randrange(400)}", day)
        sizes.append(graph.edge_count())
    assert len(graph._days) == WINDOW
    # steady traffic: the held edges stop growing after the first window
    assert max(sizes[2 * WINDOW :]) <= 1.1 * max(sizes[WINDOW : 2 * WINDOW])


def test_the_engine_clears_a_ring_after_its_window(default_policy: Policy) -> None:
    """Engine level: the ring's verdict lapses `window_days` after its last interaction."""
    engine = Engine(default_policy)
    window = default_policy.spec.collusion.window_days
    start = 19_723 * DAY_SECONDS
    ids = iter(range(10**6))
    for day in range(8):
        for giver in "rst":
            for receiver in "rst":
                if giver != receiver:
                    t = start + day * DAY_SECONDS + 3600 * (8 + ord(giver) - ord("r"))
                    engine.apply(f"e{next(ids)}", "thanks.given", "c", giver, t, receiver)
    engine.apply("late", "session.started", "c", "r", start + 8 * DAY_SECONDS)
    assert engine.refresh_collusion() == {("c", m) for m in "rst"}
    later = start + (7 + window) * DAY_SECONDS
    engine.apply("x1", "thanks.given", "c", "x", later, "y")  # anyone moves the window
    assert engine.refresh_collusion() == set()
