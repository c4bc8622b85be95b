"""Records the service produces, gathered per topic partition and sent as one batch each.

Faust's per-message send path (a future, the producer buffer, sensors and callbacks for every
record) costs more than the scoring of the event that caused it. The service instead collects
its changelog records, score changes and score snapshots here and sends each topic partition's
records as one aiokafka record batch per flush, a few microseconds per record.

Faust commits offsets on its own timer and calls the synchronous `on_commit_initiated` hook
first. Records still waiting then take Faust's per-message path (`drain_to_faust`), which
Faust's commit waits for, so no committed event's output exists only in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Record = tuple[bytes | None, bytes | None]  # (key, value); a None value is a tombstone


@dataclass(frozen=True)
class Route:
    """How one topic's records leave when they cannot wait for the batch."""

    send_one: Callable[[int, bytes | None, bytes | None], Any]  # Faust: (partition, key, value)
    on_sent: Callable[[int, int], None] | None = None  # (partition, offset of the last record)


class BatchTooSmall(ValueError):
    """A single record does not fit an empty record batch (raise producer_max_batch_size)."""


class Outbox:
    """Records waiting to leave, per topic partition, in the order they were added.

    Per partition, a record never leaves after one added later, whichever path each takes: a
    commit may drain the outbox into Faust's path while `send` is between two awaits, so the
    records `send` has not queued yet stay visible (`_in_flight`) and are drained first.
    The caller runs one `send` at a time and lets Faust's buffer empty before it.
    """

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._pending: dict[tuple[str, int], list[Record]] = {}
        self._in_flight: dict[tuple[str, int], list[Record]] = {}
        self.failures = 0

    def route(self, topic: str, route: Route) -> None:
        self._routes[topic] = route

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self._pending.setdefault((topic, partition), []).append((key, value))

    def __len__(self) -> int:
        return sum(len(records) for records in self._pending.values()) + sum(
            len(records) for records in self._in_flight.values()
        )

    def drain_to_faust(self) -> int:
        """Hand every waiting record to Faust's own send path (synchronous, keeps order)."""
        drained = 0
        for waiting in self._take_all():
            for (topic, partition), records in waiting.items():
                send_one = self._routes[topic].send_one
                for key, value in records:
                    send_one(partition, key, value)
                drained += len(records)
        return drained

    def _take_all(self) -> tuple[dict[tuple[str, int], list[Record]], ...]:
        older, self._in_flight = self._in_flight, {}
        newer, self._pending = self._pending, {}
        return older, newer

    async def send(self, producer: Any) -> int:
        """Queue every waiting record on the aiokafka producer, one batch per partition."""
        self._in_flight, self._pending = self._pending, {}
        sent = 0
        while self._in_flight:
            (topic, partition), records = next(iter(self._in_flight.items()))
            batch = producer.create_batch()
            taken = 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    break
                taken += 1
            if not taken:
                raise BatchTooSmall(f"a record for {topic} does not fit a batch")
            # Out of the in-flight list before the await: a drain meanwhile cannot send it too.
            del records[:taken]
            if not records:
                del self._in_flight[(topic, partition)]
            await self._submit(producer, batch, topic, partition)
            sent += taken
        return sent

    async def _submit(self, producer: Any, batch: Any, topic: str, partition: int) -> None:
        last = batch.record_count() - 1
        future = await producer.send_batch(batch, topic, partition=partition)
        on_sent = self._routes[topic].on_sent

        def done(fut: Any) -> None:
            if fut.cancelled() or fut.exception() is not None:
                self.failures += 1
                log.error("a record batch for %s[%d] was not delivered", topic, partition)
            elif on_sent is not None:
                on_sent(partition, fut.result().offset + last)

        future.add_done_callback(done)
