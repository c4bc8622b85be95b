"""Faust's Kafka transport, with never-committed input partitions re-read from their start.

Faust drops records it has fetched but not delivered when a rebalance interrupts a fetch or
when records arrive while recovery holds the flow, and relies on seeking every partition back
to its committed offset afterwards. aiokafka's `seek_to_committed` only seeks when the group
has committed an offset above 0, so a partition that never had a commit (a quiet credits
partition, the first records of a new topic) kept the position after the dropped records:
they were never processed, and the group's lag for that partition never reached 0.

Here, after that seek, every input partition (one whose messages Faust acknowledges: the
agents' topics, not changelogs) without a committed offset is rewound to its first record.
Re-reading is safe: events are idempotent by id, and nothing from that partition was durable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, ConsumerT


def rewind_never_committed(
    consumer: AIOKafkaConsumer, committed: Mapping[TP, int | None], is_input: Callable[[str], bool]
) -> list[TopicPartition]:
    """Seek input partitions whose committed offset is unset (or 0) to offset 0.

    A plain seek takes effect at once (an offset below the log start resets to the earliest,
    as `auto_offset_reset` says), so no record is fetched from the old position in between.
    """
    never = [
        TopicPartition(tp.topic, tp.partition)
        for tp, offset in committed.items()
        if not offset and is_input(tp.topic)
    ]
    for tp in never:
        consumer.seek(tp, 0)
    return never


async def _seek_to_committed(
    consumer: AIOKafkaConsumer, is_input: Callable[[str], bool]
) -> Mapping[TP, int]:
    committed: Mapping[TP, int] = await consumer.seek_to_committed()
    rewind_never_committed(consumer, committed, is_input)
    return committed


class RewindingConsumerThread(driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        # One call on the consumer's thread: both seeks happen before the fetcher runs again.
        is_input = self.consumer.app.topics.acks_enabled_for
        committed: Mapping[TP, int] = await self.call_thread(
            _seek_to_committed, self._ensure_consumer(), is_input
        )
        return committed


class RewindingConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return RewindingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class RewindingTransport(driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = RewindingConsumer
