"""Restarting a worker: state resumes from Redis, nothing is counted twice, seqs stay whole."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import msgspec
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from worker import (
    COMMUNITY,
    Worker,
    end_offsets,
    publish_file,
    read_topic,
    score_mismatches,
    wait_drained,
    write_community,
)

from agents.read_model import leaderboard_key
from agents.replay import ReplayResult, replay_file
from scoring.policy import load_policy
from scoring.records import MemberScore, ScoreChange, rfc3339
from stream.topics import DEFAULT_PARTITIONS

# The offset is logged as bytes (b'42') today; accept it plain too.
LOADED = re.compile(r"loaded (\d+) keys of partition (\d+) from Redis at offset b?'?(\d+)")
_change = msgspec.json.Decoder(ScoreChange)


def _split(path: Path, tmp_path: Path, at: int) -> tuple[Path, Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(lines[:at]))
    second.write_bytes(b"".join(lines[at:]))
    return first, second


def _assert_matches_replay(worker: Worker, replay: ReplayResult) -> None:
    at = rfc3339(replay.as_of)
    expected = {s.member: s for s in replay.scores}
    actual = {
        m: msgspec.convert(worker.get(f"/members/{COMMUNITY}/{m}", {"as_of": at}), MemberScore)
        for m in expected
    }
    assert score_mismatches(expected, actual, "pipeline") == []


def _seqs(bootstrap: str, worker: Worker) -> dict[str, list[int]]:
    """Each member's score-change seq numbers in the order they were published."""
    seqs: dict[str, list[int]] = defaultdict(list)
    topic = f"{worker.topic_prefix}score-changes"
    for record in asyncio.run(read_topic(bootstrap, topic)):
        change = _change.decode(record.value)
        seqs[change.member].append(change.seq)
    return seqs


def _seq_problems(seqs: dict[str, list[int]], *, allow_duplicates: bool = False) -> list[str]:
    problems = []
    for member, numbers in sorted(seqs.items()):
        wanted = list(range(1, max(numbers) + 1))
        got = sorted(set(numbers)) if allow_duplicates else sorted(numbers)
        if got != wanted:
            missing = sorted(set(wanted) - set(numbers))
            repeated = sorted({n for n in numbers if numbers.count(n) > 1})
            problems.append(f"{member}: missing {missing}, repeated {repeated}, order {numbers}")
    return problems


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, int, ReplayResult]:
    path = tmp_path / "events.jsonl"
    events = write_community(path, seed=7)
    replay = replay_file(path, load_policy(None), as_of=None, dead_letters=None)
    assert sum(replay.dead_letters.values()) == 0
    return path, len(events), replay


def test_graceful_restart_resumes_from_redis(
    log: tuple[Path, int, ReplayResult],
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    path, total, replay = log
    half = total // 2
    first, second = _split(path, tmp_path, half)
    worker = make_worker().start()
    worker.wait_ready()
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", first)
    wait_drained(worker, consumed=half)
    worker.wait_until(lambda: worker.stats()["store"]["flushes"] > 0, 10, "a store flush")
    members_before = worker.stats()["members"]
    time.sleep(0.5)
    assert worker.stop() == 0, worker.log_tail()

    changelog = f"{worker.app_id}-members-changelog"
    ends = asyncio.run(end_offsets(kafka_bootstrap, changelog))
    written = sum(ends.values())
    assert written > members_before > 0

    worker.start()
    worker.wait_ready()
    worker.wait_until(
        lambda: worker.stats()["members"] >= members_before, 60, "the table to be restored"
    )
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", second)
    stats = wait_drained(worker, consumed=total - half)

    store = stats["store"]
    loaded = [tuple(map(int, m)) for m in LOADED.findall(worker.log_text())]
    why = {"store": store, "loaded": loaded, "changelog_ends": ends, "written": written}
    assert sum(n for n, _, _ in loaded) == store["loaded_keys"] > 0, why
    assert store["loaded_keys"] + store["changelog_applied"] >= members_before, why
    # Recovery read the changelog only past the offsets stored with the data, not from 0 ...
    resumed = {p: o for _, p, o in loaded}
    assert resumed.keys() == {p for p, end in ends.items() if end}, why
    assert store["changelog_applied"] == sum(ends[p] - 1 - o for p, o in resumed.items()), why
    # ... and after a clean stop that is little or nothing.
    assert store["changelog_applied"] * 5 <= written, why
    assert stats["outcomes"].get("duplicate", 0) == 0, stats

    _assert_matches_replay(worker, replay)
    assert _seq_problems(_seqs(kafka_bootstrap, worker)) == []


def _table_keys(client: redis.Redis, app_id: str, member_key: bytes) -> tuple[bytes, bytes]:
    """The Redis hash holding a member's table state, and the hash of changelog offsets."""
    data = offsets = None
    for key in client.scan_iter(match=f"hearth:table:*{app_id}*"):
        if key.endswith(b":offsets"):
            offsets = key
        elif client.type(key) == b"hash" and client.hexists(key, member_key):
            data = key
    assert data is not None and offsets is not None, list(client.scan_iter(match="hearth:*"))
    return data, offsets


async def _commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def test_redelivered_interaction_credits_a_target_whose_write_was_lost(
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    pipeline_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    """A crash can keep the actor's state (which marks the event applied) and lose the target's.

    The two states are written to different keys, usually of different changelog partitions,
    so a crash can persist one write and not the other. The event is then consumed again (its
    offset was not committed); the actor side is rightly skipped, but the target's credit must
    be sent again, or it is lost for good. This test builds that state deterministically: it
    rolls the target's stored state back to before the credit, with no newer changelog record,
    and the consumer group's offset back to before the event.
    """
    lines = [
        '{"id":"p1","type":"post.created","community":"demo","actor":"bob",'
        '"time":"2026-01-20T09:00:00Z"}',
        '{"id":"r1","type":"reply.created","community":"demo","actor":"ann","target":"bob",'
        '"time":"2026-01-20T10:00:00Z"}',
        '{"id":"p2","type":"post.created","community":"demo","actor":"bob",'
        '"time":"2026-01-20T11:00:00Z"}',
    ]
    files = []
    for n, line in enumerate(lines):
        files.append(tmp_path / f"{n}.jsonl")
        files[-1].write_text(line + "\n")
    everything = tmp_path / "all.jsonl"
    everything.write_text("\n".join(lines) + "\n")
    replay = replay_file(everything, load_policy(None), as_of=None, dead_letters=None)

    worker = make_worker().start()
    worker.wait_ready()
    activity = f"{worker.topic_prefix}activity"
    publish_file(kafka_bootstrap, activity, files[0])
    wait_drained(worker, consumed=1)
    data_key, offsets_key = worker.wait_until(
        lambda: _table_keys(pipeline_redis, worker.app_id, b"demo/bob"), 10, "bob in Redis"
    )
    bob_before_credit = pipeline_redis.hget(data_key, b"demo/bob")
    publish_file(kafka_bootstrap, activity, files[1])
    wait_drained(worker, consumed=2)
    assert worker.stop() == 0
    assert pipeline_redis.hget(data_key, b"demo/bob") != bob_before_credit, "no credit stored"

    # The crash: bob's write was lost (his stored state is the one before the credit, and the
    # changelog has nothing newer to replay), ann's survived, and r1 was not committed.
    changelog = f"{worker.app_id}-members-changelog"
    partition = int(data_key.rsplit(b":p", 1)[1])
    end = asyncio.run(end_offsets(kafka_bootstrap, changelog))[partition]
    pipeline_redis.hset(data_key, b"demo/bob", bob_before_credit)
    pipeline_redis.hset(offsets_key, str(partition), str(end - 1))
    (reply,) = [r for r in asyncio.run(read_topic(kafka_bootstrap, activity)) if b'"r1"' in r.value]
    tp = TopicPartition(activity, reply.partition)
    asyncio.run(_commit(kafka_bootstrap, worker.app_id, tp, reply.offset))

    worker.start()
    worker.wait_ready()
    publish_file(kafka_bootstrap, activity, files[2])  # bob acts again: his snapshot is rewritten
    stats = wait_drained(worker, consumed=2)
    assert stats["skipped_offsets"] == 1, stats  # r1 came again and ann's side was skipped
    _assert_matches_replay(worker, replay)


def test_events_redelivered_after_a_crash_are_not_too_late(
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    pipeline_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    """Days must not close on the strength of work a crash undid.

    Each worker shares its partitions' event-time marks through Redis as soon as it has
    processed events, durable or not. After a crash the events since the last commit come
    again, but the restarted worker first adopts the marks from Redis, so the redelivered
    events of a member whose state write was lost fall before the close horizon: they are
    dead-lettered as too_late and lost. This test builds that state deterministically: mia's
    only state write is lost (no stored state, no newer changelog record), her event was not
    committed, and the marks in Redis are those of the worker that stopped.
    """
    partitioner = DefaultPartitioner()
    every = list(range(DEFAULT_PARTITIONS))
    members: dict[int, str] = {}
    while len(members) < DEFAULT_PARTITIONS:
        name = f"m{len(members)}-{uuid4().hex[:4]}"
        members.setdefault(partitioner(f"demo/{name}".encode(), every, every), name)

    def line(id_: str, actor: str, time_: str) -> str:
        return (
            f'{{"id":"{id_}","type":"post.created","community":"demo","actor":"{actor}",'
            f'"time":"{time_}"}}'
        )

    lines = [line(f"early-{m}", m, "2026-01-06T10:00:00Z") for m in members.values()]
    lines.append(line("mia-1", "mia", "2026-01-06T12:00:00Z"))
    lines += [line(f"late-{m}", m, "2026-01-15T10:00:00Z") for m in members.values()]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    replay = replay_file(path, load_policy(None), as_of=None, dead_letters=None)

    worker = make_worker().start()
    worker.wait_ready()
    activity = f"{worker.topic_prefix}activity"
    publish_file(kafka_bootstrap, activity, path)
    wait_drained(worker, consumed=len(lines))
    horizon = datetime(2026, 1, 15, tzinfo=UTC).timestamp()
    worker.wait_until(lambda: (worker.stats()["watermark"] or 0) >= horizon, 10, "the watermark")
    data_key, offsets_key = _table_keys(pipeline_redis, worker.app_id, b"demo/mia")
    assert worker.stop() == 0

    # The crash: mia's state write was lost, and so were her leaderboard entries.
    changelog = f"{worker.app_id}-members-changelog"
    partition = int(data_key.rsplit(b":p", 1)[1])
    end = asyncio.run(end_offsets(kafka_bootstrap, changelog))[partition]
    pipeline_redis.hdel(data_key, b"demo/mia")
    pipeline_redis.hset(offsets_key, str(partition), str(end - 1))
    for board in pipeline_redis.scan_iter(match=leaderboard_key("demo", "*")):
        pipeline_redis.zrem(board, "mia")
    records = asyncio.run(read_topic(kafka_bootstrap, activity))
    (event,) = [r for r in records if b"mia-1" in r.value]
    tp = TopicPartition(activity, event.partition)
    asyncio.run(_commit(kafka_bootstrap, worker.app_id, tp, event.offset))

    worker.start()
    worker.wait_ready()
    stats = wait_drained(worker)
    assert stats["dead_letters"] == {}, stats
    _assert_matches_replay(worker, replay)
