"""The stall guard's two decisions: when to look, and which partitions lag."""

from __future__ import annotations

from agents.stall import StallClock, lagging


def test_the_clock_is_due_only_after_the_given_seconds_without_progress() -> None:
    clock = StallClock(30)
    assert not clock.due(10, now=0)
    assert not clock.due(10, now=29)
    assert clock.due(10, now=30)
    assert not clock.due(10, now=31)  # counting again from the last look
    assert clock.due(10, now=60)
    assert not clock.due(11, now=95)  # progress restarts the clock
    assert not clock.due(11, now=124)
    assert clock.due(11, now=125)


def test_partitions_with_records_past_their_commit_lag() -> None:
    highwaters = {"a": 10, "b": 10, "c": 0, "d": None, "e": 5}
    committed = {"a": 10, "b": 4, "c": None}
    # b: 6 records not committed; e: never committed; c: empty; d: high watermark unknown
    assert lagging(highwaters, committed) == ["b", "e"]
