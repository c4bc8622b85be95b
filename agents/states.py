"""Member states for the engine, held in a Faust table as bytes and cached decoded in memory."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from agents.outbox import Outbox
from scoring.snapshot import decode_state, encode_state
from scoring.state import MemberKey, MemberState


def table_key(key: MemberKey) -> bytes:
    return f"{key[0]}/{key[1]}".encode()


def member_key(raw: bytes) -> MemberKey:
    community, _, member = raw.decode().partition("/")
    return community, member


class TableStates(MutableMapping[MemberKey, MemberState]):
    """The engine's view of a Faust table of encoded states.

    Reads come from a decoded cache of at most `cache_size` states (decoding on every event
    would dominate the cost; keeping every member decoded would grow memory without bound).
    Writes are coalesced: a member changed by many events is encoded once per `flush`, into
    the store and the changelog of the member's own partition, so a worker may update any
    member whose partition it owns, whatever event it is processing. The service flushes
    before every offset commit, so no committed event's effect exists only in memory.
    """

    def __init__(
        self,
        table: Any,
        partition_of: Callable[[bytes], int],
        outbox: Outbox | None = None,
        cache_size: int = 25_000,
    ) -> None:
        self._table = table
        self._partition_of = partition_of
        self._outbox = outbox
        self._cache_size = cache_size
        self._cache: dict[MemberKey, MemberState] = {}
        self._dirty: set[MemberKey] = set()

    def __getitem__(self, key: MemberKey) -> MemberState:
        state = self._cache.get(key)
        if state is None:
            raw = self._table.get(table_key(key))
            if raw is None:
                raise KeyError(key)
            state = self._cache[key] = decode_state(raw)
        return state

    def __setitem__(self, key: MemberKey, state: MemberState) -> None:
        self._cache[key] = state
        self._dirty.add(key)

    def __delitem__(self, key: MemberKey) -> None:
        # The tombstone takes the same path as the member's earlier records, after them.
        self._dirty.discard(key)
        self._cache.pop(key, None)
        self._write(table_key(key), None, self._outbox)

    def flush(self, *, via_faust: bool = False) -> int:
        """Encode and write every member changed since the last flush.

        Changelog records go to the outbox, or through Faust's own send path when there is
        none or `via_faust` (a commit is about to wait for that path).
        """
        outbox = None if via_faust else self._outbox
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            state = self._cache.get(key)
            if state is not None:
                self._write(table_key(key), encode_state(state), outbox)
        if len(self._cache) > self._cache_size:
            self._evict()
        return len(dirty)

    def _evict(self) -> None:
        """Drop the oldest decoded states (all are written out now): memory stays bounded."""
        excess = len(self._cache) - self._cache_size + self._cache_size // 5
        for key in list(itertools.islice(self._cache, excess)):
            del self._cache[key]

    def _write(self, raw_key: bytes, value: bytes | None, outbox: Outbox | None = None) -> None:
        partition = self._partition_of(raw_key)
        self._table.data.set_in_partition(raw_key, value, partition)
        if outbox is None:
            self._table.send_changelog(partition, raw_key, value)
        else:
            outbox.add(self.changelog_topic, partition, raw_key, value)

    @property
    def changelog_topic(self) -> str:
        name: str = self._table.changelog_topic.get_topic_name()
        return name

    def __iter__(self) -> Iterator[MemberKey]:
        self.flush()
        return (member_key(k) for k in list(self._table.keys()))

    def __len__(self) -> int:
        self.flush()
        return len(self._table)

    def forget(self) -> None:
        """Drop the decoded cache (after a rebalance the table is the truth)."""
        self.flush()
        self._cache.clear()
