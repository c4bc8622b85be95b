"""Publishing JSONL and CSV files to the real broker, and reading every message back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

from stream.codec import DeadLetter, EventDecoder, Reason
from stream.contract import ActivityEvent
from stream.publisher import PublishResult, publish, read_csv, read_jsonl
from stream.topics import TopicNames, TopicSpec, ensure_topics, topic_specs

Message = tuple[bytes | None, bytes, int]  # key, value, partition

CONSUME_SECONDS = 30
DECODER = EventDecoder(
    known_types=["post.created", "reply.created", "committee.meeting.attended"], future_skew=300
)


def _event(i: int, actor: str, **extra: object) -> bytes:
    return msgspec.json.encode(
        {
            "id": f"e{i}",
            "type": "post.created",
            "community": "rust-fr",
            "actor": actor,
            "time": f"2024-05-01T12:{i % 60:02d}:00+02:00",
            **extra,
        }
    )


def _write_jsonl(path: Path) -> list[bytes]:
    """Valid events (with a blank line among them) and deliberately broken ones."""
    valid = [_event(i, f"m{i % 3}") for i in range(9)]
    broken = [
        b'{"id": "x1", "type": "post.created", "community": "rust-fr"',  # truncated JSON
        b'{"id": "x2", "type": "post.created", "community": "rust-fr", "time": "2024-05-01"}',
        # ^ no actor
        b"not json at all",
        b'{"community": "rust-fr", "actor": "caf\xe9"}',  # Latin-1 byte: invalid UTF-8
    ]
    lines = valid[:5] + [b"", b"   "] + broken + valid[5:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return valid + broken


async def _consume(bootstrap: str, topic: str, expected: int) -> list[Message]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages: list[Message] = []
    try:
        deadline = time.monotonic() + CONSUME_SECONDS
        while len(messages) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                messages.extend((r.key, r.value, r.partition) for r in records)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        batches = await consumer.getmany(timeout_ms=1000)
        for records in batches.values():
            messages.extend((r.key, r.value, r.partition) for r in records)
    finally:
        await consumer.stop()
    return messages


def _publish_and_consume(
    bootstrap: str, topic: str, records: list[tuple[int, bytes]], expected: int
) -> tuple[PublishResult, list[Message]]:
    async def run() -> tuple[PublishResult, list[Message]]:
        await ensure_topics(bootstrap, [TopicSpec(topic, 3)])
        result = await publish(bootstrap, topic, records)
        return result, await _consume(bootstrap, topic, expected)

    return asyncio.run(run())


def test_jsonl_lines_arrive_once_with_member_keys(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    lines = _write_jsonl(path)
    records = list(read_jsonl(path))
    assert [raw for _, raw in records] == lines[:5] + lines[9:] + lines[5:9]
    assert [n for n, _ in records][4:7] == [5, 8, 9]  # blank lines 6-7 skipped, numbers kept

    result, messages = _publish_and_consume(
        kafka_bootstrap, TopicNames(topic_prefix).activity, records, len(lines)
    )

    assert (result.sent, result.failed, result.errors) == (len(lines), 0, [])
    assert Counter(value for _, value, _ in messages) == Counter(lines)
    keys = {value: key for key, value, _ in messages}
    for raw in lines[:9]:
        event = msgspec.json.decode(raw, type=ActivityEvent)
        assert keys[raw] == event.kafka_key() == f"rust-fr/{event.actor}".encode()
    assert [keys[raw] for raw in lines[9:]] == [None, None, None, None]
    now = time.time()
    assert all(isinstance(DECODER.decode(raw, now), ActivityEvent) for raw in lines[:9])
    assert all(isinstance(DECODER.decode(raw, now), DeadLetter) for raw in lines[9:])
    partitions: dict[bytes, set[int]] = {}
    for key, _, partition in messages:
        if key is not None:
            partitions.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    # Per key, the file's order is kept.
    order = [value for key, value, _ in messages if key == b"rust-fr/m0"]
    assert order == [raw for raw in lines[:9] if b'"m0"' in raw]


def test_csv_rows_become_v1_events_with_extra_columns_in_attrs(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "committee.csv"
    path.write_text(
        "id,type,community,actor,time,target,source,committee,role\n"
        "c1,committee.meeting.attended,rust-fr,alice,2024-05-02T18:00:00+02:00,,offline,"
        "events,chair\n"
        "c2,committee.meeting.attended,rust-fr,bob,2024-05-02T18:00:00+02:00,,offline,events,\n"
        '"c3",committee.meeting.attended,rust-fr,carol,2024-05-02T16:00:00Z,,,"program, talks",'
        "member\n"
        "\n"
        "c4,committee.meeting.attended,rust-fr,dave,2024-05-02T18:00:00,,offline,events,member\n",
        encoding="utf-8",
    )
    records = list(read_csv(path))
    assert [n for n, _ in records] == [2, 3, 4, 6]

    result, messages = _publish_and_consume(
        kafka_bootstrap, TopicNames(topic_prefix).activity, records, len(records)
    )

    assert (result.sent, result.failed) == (4, 0)
    assert sorted(value for _, value, _ in messages) == sorted(raw for _, raw in records)
    decoded = {key: DECODER.decode(value, now=time.time()) for key, value, _ in messages}
    plus_two = timezone(timedelta(hours=2))
    assert decoded[b"rust-fr/alice"] == ActivityEvent(
        id="c1",
        type="committee.meeting.attended",
        community="rust-fr",
        actor="alice",
        time=datetime(2024, 5, 2, 18, tzinfo=plus_two),
        source="offline",
        attrs={"committee": "events", "role": "chair"},
    )
    bob, carol, dave = (decoded[f"rust-fr/{m}".encode()] for m in ("bob", "carol", "dave"))
    assert isinstance(bob, ActivityEvent) and bob.attrs == {"committee": "events"}
    assert isinstance(carol, ActivityEvent)
    assert (carol.id, carol.source, carol.attrs) == (
        "c3",
        None,
        {"committee": "program, talks", "role": "member"},
    )
    assert carol.time == datetime(2024, 5, 2, 16, tzinfo=UTC)
    # A time without an offset still travels; the service dead-letters it.
    assert isinstance(dave, DeadLetter) and dave.reason is Reason.SCHEMA


def test_csv_shape_errors_raise_with_file_and_line(tmp_path: Path) -> None:
    no_actor = tmp_path / "no-actor.csv"
    no_actor.write_text("id,type,community,time\nc1,event.attended,rust-fr,2024-05-02T18:00Z\n")
    with pytest.raises(ValueError, match="lacks required column"):
        list(read_csv(no_actor))
    extra = tmp_path / "extra.csv"
    extra.write_text("id,type,community,actor,time\nc1,t,c,a,2024-05-02T18:00Z,surplus\n")
    with pytest.raises(ValueError, match="extra.csv:2: 6 cells but the header has 5"):
        list(read_csv(extra))


def test_oversized_message_fails_alone(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    huge = _event(99, "m1", attrs={"blob": "x" * (2 * 1024 * 1024)})
    records = [(1, _event(1, "m1")), (2, huge), (3, _event(3, "m1"))]
    settled: list[int] = []

    async def run() -> PublishResult:
        topic = TopicNames(topic_prefix).activity
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
        return await publish(kafka_bootstrap, topic, records, progress=settled.append)

    result = asyncio.run(run())

    assert (result.sent, result.failed) == (2, 1)
    assert [line for line, _ in result.errors] == [2]
    assert "MessageSizeTooLargeError" in result.errors[0][1]
    assert settled[-1] == 3 and settled == sorted(settled)


def test_ensure_topics_creates_once_and_warns_on_partition_mismatch(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    names = TopicNames(topic_prefix)
    specs = topic_specs(names, partitions=2)

    async def describe() -> tuple[dict[str, int], str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            topics = await admin.describe_topics(list(names.all()))
            # aiokafka wants `configs` as a dict of names (values unused), not a list.
            resource = ConfigResource(
                ConfigResourceType.TOPIC, names.scores, configs={"cleanup.policy": None}
            )
            (response,) = await admin.describe_configs([resource])
        finally:
            await admin.close()
        (entry,) = response.to_object()["resources"][0]["config_entries"]
        return {t["topic"]: len(t["partitions"]) for t in topics}, entry["config_value"]

    async def run() -> tuple[list[str], list[str], list[str], tuple[dict[str, int], str]]:
        first = await ensure_topics(kafka_bootstrap, specs)
        second = await ensure_topics(kafka_bootstrap, specs)
        third = await ensure_topics(kafka_bootstrap, topic_specs(names, partitions=3))
        return first, second, third, await describe()

    with caplog.at_level(logging.WARNING, logger="stream.topics"):
        first, second, third, (partitions, scores_policy) = asyncio.run(run())

    assert sorted(first) == sorted(names.all())
    assert second == third == []
    assert partitions == dict.fromkeys(names.all(), 2)
    assert scores_policy == "compact"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(specs)
    assert f"topic {names.scores} has 2 partitions, expected 3" in " ".join(warned)


def test_ensure_topics_reports_broker_refusal(kafka_bootstrap: str, topic_prefix: str) -> None:
    spec = TopicSpec(f"{topic_prefix}rf3", 1)
    with pytest.raises(RuntimeError, match=r"rf3: .*replication factor of 3 cannot be reached"):
        asyncio.run(ensure_topics(kafka_bootstrap, [spec], replication_factor=3))


def test_unreachable_broker_raises_and_closes_clients(tmp_path: Path) -> None:
    # No broker listens on port 9; warnings are errors, so a leaked client would fail too.
    with pytest.raises(KafkaConnectionError):
        asyncio.run(publish("127.0.0.1:9", "t.activity", [(1, _event(1, "m1"))]))
    with pytest.raises(KafkaConnectionError):
        asyncio.run(ensure_topics("127.0.0.1:9", topic_specs()))
