"""Restarting a worker: state resumes from Redis, nothing is counted twice, seqs stay whole."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import redis
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

from agents.replay import ReplayResult, replay_file
from scoring.policy import load_policy
from scoring.records import MemberScore, ScoreChange, rfc3339

LOADED = re.compile(r"loaded (\d+) keys of partition (\d+) from Redis at offset (\d+)")
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
    pipeline_redis: redis.Redis,
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
    offsets = {
        int(p): int(o) for p, o in pipeline_redis.hgetall("hearth:table:members:offsets").items()
    }
    assert offsets, "no changelog offsets in Redis after a clean stop"

    worker.start()
    worker.wait_ready()
    worker.wait_until(
        lambda: worker.stats()["members"] >= members_before, 60, "the table to be restored"
    )
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", second)
    stats = wait_drained(worker, consumed=total - half)

    store = stats["store"]
    loaded = [tuple(map(int, m)) for m in LOADED.findall(worker.log_text())]
    assert store["loaded_keys"] == members_before, (store, loaded)
    assert sum(n for n, _, _ in loaded) == members_before, loaded
    assert {p: o for _, p, o in loaded} == offsets
    # Recovery read the changelog only past the offsets stored with the data, not from 0.
    assert store["changelog_applied"] <= written // 20, (store, written, ends, offsets)
    assert stats["outcomes"].get("duplicate", 0) == 0, stats

    _assert_matches_replay(worker, replay)
    assert _seq_problems(_seqs(kafka_bootstrap, worker)) == []


def test_sigkill_mid_stream_then_restart(
    log: tuple[Path, int, ReplayResult],
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
) -> None:
    path, total, replay = log
    worker = make_worker().start()
    worker.wait_ready()
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", path)
    worker.wait_until(
        lambda: worker.stats()["consumed"] >= total * 0.4, 60, "40% of the log consumed"
    )
    consumed = worker.stats()["consumed"]
    worker.kill()
    assert consumed < total, "the worker finished before it was killed: the log is too short"

    worker.start()
    worker.wait_ready(120)
    stats = wait_drained(worker, timeout=180)
    assert stats["dead_letters"] == {}, stats

    _assert_matches_replay(worker, replay)
    # At least once: a change may be published again after the crash, but none may be lost.
    assert _seq_problems(_seqs(kafka_bootstrap, worker), allow_duplicates=True) == []
