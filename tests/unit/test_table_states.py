"""TableStates: coalesced writes, the outbox path, tombstone order and the bounded decoded cache."""

from __future__ import annotations

from typing import Any

from agents.outbox import Outbox, Route
from agents.states import TableStates, table_key
from scoring.snapshot import encode_state
from scoring.state import MemberKey, MemberState

CHANGELOG = "app-members-changelog"


class Topic:
    def get_topic_name(self) -> str:
        return CHANGELOG


class Store:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def set_in_partition(self, key: bytes, value: bytes | None, partition: int) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


class Table:
    """The slice of a Faust table that TableStates uses, kept in memory."""

    def __init__(self) -> None:
        self.data = Store()
        self.changelog_topic = Topic()
        self.faust_sent: list[tuple[int, bytes, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.data.get(key)

    def keys(self) -> list[bytes]:
        return list(self.data.data)

    def __len__(self) -> int:
        return len(self.data.data)

    def send_changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.faust_sent.append((partition, key, value))


def _state(n: int) -> MemberState:
    state = MemberState(landmark=1_700_000_000.0)
    state.masses = {0: float(n)}
    state.seq = n
    return state


def _waiting(outbox: Outbox) -> list[tuple[bytes | None, bytes | None]]:
    """The outbox's records in the order Faust's path would receive them."""
    out: list[tuple[bytes | None, bytes | None]] = []
    outbox.route(CHANGELOG, Route(lambda _p, k, v: out.append((k, v))))
    outbox.drain_to_faust()
    return out


def _states(cache_size: int = 1000) -> tuple[TableStates, Table, Outbox]:
    table, outbox = Table(), Outbox()
    return TableStates(table, lambda raw: len(raw) % 4, outbox, cache_size), table, outbox


def test_a_member_changed_many_times_is_written_once_per_flush() -> None:
    states, table, outbox = _states()
    key: MemberKey = ("c", "ann")
    for n in range(5):
        states[key] = _state(n)
    assert states.flush() == 1
    assert _waiting(outbox) == [(table_key(key), encode_state(_state(4)))]
    assert table.get(table_key(key)) == encode_state(_state(4))
    assert states.flush() == 0


def test_a_commit_flush_takes_fausts_path() -> None:
    states, table, outbox = _states()
    states[("c", "ann")] = _state(1)
    states.flush(via_faust=True)
    assert len(outbox) == 0
    assert [k for _, k, _ in table.faust_sent] == [b"c/ann"]


def test_a_tombstone_follows_the_members_earlier_records() -> None:
    states, table, outbox = _states()
    states[("c", "ann")] = _state(1)
    states.flush()
    states[("c", "ann")] = _state(2)  # changed again, not flushed yet
    del states[("c", "ann")]
    states.flush()
    assert _waiting(outbox) == [(b"c/ann", encode_state(_state(1))), (b"c/ann", None)]
    assert ("c", "ann") not in states
    assert table.get(b"c/ann") is None


def test_the_decoded_cache_stays_bounded_and_evicted_states_read_back_whole() -> None:
    states, _, _ = _states(cache_size=100)
    keys: list[MemberKey] = [("c", f"m{n}") for n in range(1000)]
    for n, key in enumerate(keys):
        states[key] = _state(n)
        if n % 50 == 49:
            states.flush()
            cached: Any = states._cache
            assert len(cached) <= 100
    for n, key in enumerate(keys):
        assert encode_state(states[key]) == encode_state(_state(n))
