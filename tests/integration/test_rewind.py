"""Input partitions the group never committed are re-read from their start after a seek.

Faust drops fetched records at a rebalance and seeks back to the committed offsets; aiokafka's
`seek_to_committed` does nothing for a partition without a committed offset above 0, so the
dropped records were lost (the stall of the fault tests). This reproduces that position on the
real broker and checks that `rewind_never_committed` brings the records back, and leaves alone
partitions that are committed or are not inputs.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from agents.transport import rewind_never_committed
from stream.topics import TopicSpec, ensure_topics

RECORDS = 10


async def _scenario(bootstrap: str, prefix: str) -> dict[str, object]:
    inputs, changelog = f"{prefix}credits", f"{prefix}members-changelog"
    await ensure_topics(bootstrap, [TopicSpec(inputs, 2, {}), TopicSpec(changelog, 1, {})])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, partitions in ((inputs, 2), (changelog, 1)):
            for partition in range(partitions):
                for n in range(RECORDS):
                    await producer.send_and_wait(topic, f"{n}".encode(), partition=partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        never, committed_tp = TopicPartition(inputs, 0), TopicPartition(inputs, 1)
        log = TopicPartition(changelog, 0)
        consumer.assign([never, committed_tp, log])
        await consumer.commit({committed_tp: OffsetAndMetadata(4, "")})
        for tp in (never, committed_tp, log):
            consumer.seek(tp, RECORDS)  # as if fetched and then dropped by Faust
        names = {never: "never committed", committed_tp: "committed", log: "not an input"}

        async def positions() -> dict[str, int]:
            return {name: await consumer.position(tp) for tp, name in names.items()}

        committed = await consumer.seek_to_committed()
        after_plain_seek = await positions()
        rewound = rewind_never_committed(consumer, committed, lambda t: t == inputs)
        after_rewind = await positions()
        batch = await consumer.getmany(never, timeout_ms=5000)
        return {
            "after_plain_seek": after_plain_seek,
            "rewound": rewound,
            "after_rewind": after_rewind,
            "refetched": [r.value for r in batch.get(never, [])],
        }
    finally:
        await consumer.stop()


def test_never_committed_input_partitions_are_read_again(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    result = asyncio.run(_scenario(kafka_bootstrap, topic_prefix))
    # aiokafka alone: the never-committed partition stays past the dropped records
    assert result["after_plain_seek"] == {
        "never committed": RECORDS,
        "committed": 4,
        "not an input": RECORDS,
    }
    assert result["rewound"] == [TopicPartition(f"{topic_prefix}credits", 0)]
    assert result["after_rewind"] == {"never committed": 0, "committed": 4, "not an input": RECORDS}
    assert result["refetched"] == [f"{n}".encode() for n in range(RECORDS)]
