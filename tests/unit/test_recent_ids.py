"""RecentIds: repeats within the last `capacity` ids are caught, memory stays at `capacity`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.recent_ids import RecentIds


def test_a_repeat_is_caught_whatever_its_event_day() -> None:
    seen = RecentIds(3)
    assert seen.add("day-1-event")
    assert seen.add("day-90-event")
    assert not seen.add("day-1-event")


def test_the_oldest_id_is_forgotten_first() -> None:
    seen = RecentIds(2)
    for item in ("a", "b", "c"):
        assert seen.add(item)
    assert len(seen) == 2
    assert seen.add("a")  # forgotten: counted as new
    assert not seen.add("c")


@given(st.lists(st.integers(0, 30).map(str), max_size=200), st.integers(1, 20))
def test_it_agrees_with_a_plain_window_of_distinct_ids(items: list[str], capacity: int) -> None:
    seen = RecentIds(capacity)
    window: list[str] = []
    for item in items:
        expected = item not in window
        assert seen.add(item) is expected
        if expected:
            window.append(item)
            window = window[-capacity:]
        assert len(seen) == len(window) <= capacity


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)
