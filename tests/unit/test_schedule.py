"""The decay schedule stays as large as its live entries, however often members are rescheduled."""

from __future__ import annotations

from scoring.schedule import DecaySchedule


def test_rescheduling_does_not_grow_the_heap_without_bound() -> None:
    schedule = DecaySchedule()
    members = [("c", f"m{n}") for n in range(100)]
    for step in range(10_000):
        key = members[step % len(members)]
        schedule.set(key, 1e9 + step)  # always ahead: nothing falls due
    assert len(schedule) == len(members)
    assert len(schedule._heap) <= 2 * len(members) + 1024 + 1


def test_compaction_keeps_every_member_due_at_its_latest_time() -> None:
    schedule = DecaySchedule()
    for step in range(5_000):
        schedule.set(("c", f"m{step % 7}"), 1000.0 + step)
    due = schedule.pop_due(10_000.0)
    assert [key for _, key in due] == [("c", f"m{n % 7}") for n in range(4993, 5000)]
    assert [t for t, _ in due] == [1000.0 + n for n in range(4993, 5000)]
    assert len(schedule) == 0
