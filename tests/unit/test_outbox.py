"""The outbox never lets a partition receive a record before one that was added earlier.

Two paths leave it: `send` (record batches on the aiokafka producer, awaiting between batches)
and `drain_to_faust` (a commit, synchronous, at any await of `send`). A changelog replayed out
of order would restore an older state over a newer one, losing the events in between.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.outbox import Outbox, Route

TOPIC = "changelog"


class Batch:
    def __init__(self, capacity: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.capacity = capacity

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class Broker:
    """Each partition's log, written by the producer (batches) and by Faust's path."""

    def __init__(self, batch_capacity: int) -> None:
        self.logs: dict[int, list[bytes | None]] = {}
        self.batch_capacity = batch_capacity

    def create_batch(self) -> Batch:
        return Batch(self.batch_capacity)

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
        # aiokafka appends the batch to its accumulator, then the caller's await yields.
        self.logs.setdefault(partition, []).extend(value for _, value in batch.records)
        await asyncio.sleep(0)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        return future

    def faust_send(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.logs.setdefault(partition, []).append(value)


def _outbox(broker: Broker) -> Outbox:
    outbox = Outbox()
    outbox.route(TOPIC, Route(broker.faust_send))
    return outbox


async def _interleaved(seed: int, batch_capacity: int) -> dict[int, list[bytes | None]]:
    """The service's pattern: adds, sends and commits' drains racing on one event loop."""
    rng = random.Random(seed)
    broker = Broker(batch_capacity)
    outbox = _outbox(broker)
    sequence = [0, 0, 0]

    def add(n: int) -> None:
        for _ in range(n):
            partition = rng.randrange(3)
            sequence[partition] += 1
            outbox.add(TOPIC, partition, b"k", str(sequence[partition]).encode())

    async def sender() -> None:
        for _ in range(20):
            add(rng.randint(0, 8))
            await outbox.send(broker)
            await asyncio.sleep(0)

    async def committer() -> None:
        for _ in range(40):
            add(rng.randint(0, 3))
            if rng.random() < 0.5:
                outbox.drain_to_faust()
            await asyncio.sleep(0)

    await asyncio.gather(sender(), committer())
    outbox.drain_to_faust()
    return broker.logs


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 4))
def test_each_partition_receives_its_records_in_order(seed: int, batch_capacity: int) -> None:
    logs = asyncio.run(_interleaved(seed, batch_capacity))
    for partition, values in logs.items():
        numbers = [int(v or b"0") for v in values]
        assert numbers == list(range(1, len(numbers) + 1)), (partition, numbers)


def test_a_drain_during_a_send_takes_the_records_not_yet_queued() -> None:
    async def scenario() -> tuple[dict[int, list[bytes | None]], int]:
        broker = Broker(batch_capacity=10)
        outbox = _outbox(broker)
        outbox.add(TOPIC, 0, b"a", b"a1")
        outbox.add(TOPIC, 1, b"b", b"b1")
        sending = asyncio.ensure_future(outbox.send(broker))
        await asyncio.sleep(0)  # partition 0's batch is queued; partition 1's is not
        outbox.add(TOPIC, 1, b"b", b"b2")
        drained = outbox.drain_to_faust()
        sent = await sending
        return broker.logs, drained + sent

    logs, total = asyncio.run(scenario())
    assert logs == {0: [b"a1"], 1: [b"b1", b"b2"]}
    assert total == 3
