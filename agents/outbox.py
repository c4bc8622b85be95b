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
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._pending: dict[tuple[str, int], list[Record]] = {}
        self.failures = 0

    def route(self, topic: str, route: Route) -> None:
        self._routes[topic] = route

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self._pending.setdefault((topic, partition), []).append((key, value))

    def __len__(self) -> int:
        return sum(len(records) for records in self._pending.values())

    def drain_to_faust(self) -> int:
        """Hand every waiting record to Faust's own send path (synchronous, keeps order)."""
        pending, self._pending = self._pending, {}
        for (topic, partition), records in pending.items():
            send_one = self._routes[topic].send_one
            for key, value in records:
                send_one(partition, key, value)
        return sum(len(records) for records in pending.values())

    async def send(self, producer: Any) -> int:
        """Queue every waiting record on the aiokafka producer, one batch per partition."""
        pending, self._pending = self._pending, {}
        sent = 0
        for (topic, partition), records in pending.items():
            batch = producer.create_batch()
            count = 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await self._submit(producer, batch, topic, partition)
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise BatchTooSmall(f"a record for {topic} does not fit a batch")
                count += 1
            await self._submit(producer, batch, topic, partition)
            sent += count
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
