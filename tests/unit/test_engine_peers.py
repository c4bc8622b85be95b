"""Counterpart repeats: different counterparts never count as one, whatever their ids' length."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

from scoring.engine import Engine
from scoring.policy import load_policy

POLICY = load_policy(None)
T0 = datetime(2026, 1, 20, tzinfo=UTC).timestamp()
SHORT_IDS = [f"m{n:02d}" for n in range(24)] + ["a", "b", "zz"]


def _score(events: list[tuple[str, str, str, str, float, str]]) -> float:
    engine = Engine(POLICY)
    for event in events:
        engine.apply(*event)
    explained = engine.explain(("demo", "ann"), T0 + 86400)
    assert explained is not None
    return explained.score


def test_short_counterpart_ids_on_two_sides_are_two_counterparts_in_any_order() -> None:
    """Thanked by `a`, and a suggestion naming `b`: neither is a repeat, so order is moot.

    The counterpart hash once took the side as part of xxh3's seed; short ids under nearby
    seeds collide, and whichever of the two arrived second was halved as a repeat.
    """
    for giver, receiver in itertools.permutations(SHORT_IDS, 2):
        thanks = ("e1", "thanks.given", "demo", giver, T0 + 3, "ann")
        suggestion = ("e2", "suggestion.submitted", "demo", "ann", T0, receiver)
        forward, backward = _score([thanks, suggestion]), _score([suggestion, thanks])
        assert math.isclose(forward, backward, rel_tol=1e-9), (giver, receiver)
