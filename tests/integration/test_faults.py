"""Faults mid-stream: nothing lost, nothing counted twice, score-change seqs without gaps.

Every test publishes the same kind of fixed log (a synthetic community plus a few invalid
messages) at a steady pace, injects a fault while the worker is consuming it, and then checks:

- scores: every member's final score, dimensions, tier and flags equal `hearth replay` of the
  same log (within 1e-9);
- seqs: each member's score-change seq numbers on hearth.score-changes are 1..n without a gap
  (a repeat is allowed: at least once may publish a change again);
- dead letters: the DLQ topic holds exactly the invalid messages of the log (each at least once,
  nothing else: no valid event was dead-lettered as too late);
- the account (how depends on the fault, see each test): consumed = applied + duplicate +
  self-interaction + dead-lettered, from the worker's /stats and from its /metrics.

The Redis-restart and broker-stop tests run on a private instance set (deploy/services.sh with
HEARTH_SERVICES_DIR, ports 27092/27093/27379), started once for this module, so the shared
services are never disturbed. Kill points and fault times are seeded and printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from conftest import ROOT, _delete_topics
from worker import (
    COMMUNITY,
    PacedPublisher,
    Worker,
    committed_offsets,
    end_offsets,
    metric_by,
    read_topic,
    score_change_seqs,
    score_mismatches,
    seq_gaps,
    wait_drained,
    wait_worker_ready,
    write_community,
)

from agents.replay import ReplayResult, replay_file
from scoring.policy import load_policy
from scoring.records import MemberScore, rfc3339

SEED = 20260105
# A crashed member holds its partitions until its session expires (Faust's default: 60 s).
FAST_SESSION = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
PRIVATE = {
    "HEARTH_KAFKA_PORT": "27092",
    "HEARTH_KAFKA_CONTROLLER_PORT": "27093",
    "HEARTH_REDIS_PORT": "27379",
}
INVALID = [
    b'{"id":"bad-type","type":"nope.unknown","community":"demo","actor":"x",'
    b'"time":"2026-01-10T10:00:00Z"}',
    b'{"id":"bad-json","type":"post.created","community":',
    b'{"id":"no-actor","type":"post.created","community":"demo","time":"2026-01-10T10:00:00Z"}',
]


class FaultLog(msgspec.Struct):
    path: Path
    lines: int
    replay: ReplayResult


@pytest.fixture
def fault_log(tmp_path: Path) -> FaultLog:
    """The synthetic community with the invalid messages spread through it, and its replay."""
    path = tmp_path / "events.jsonl"
    write_community(path, seed=SEED % 1000)
    lines = path.read_bytes().splitlines()
    for n, bad in enumerate(INVALID, start=1):
        lines.insert(len(lines) * n // (len(INVALID) + 1), bad)
    path.write_bytes(b"\n".join(lines) + b"\n")
    replay = replay_file(path, load_policy(None), as_of=None, dead_letters=None)
    assert sum(replay.dead_letters.values()) == len(INVALID), replay.dead_letters
    return FaultLog(path, len(lines), replay)


# -- checks --------------------------------------------------------------------------------


def actor_outcomes(stats: dict[str, Any]) -> dict[str, int]:
    """Outcomes of consumed activity messages (target_* are credits, another input)."""
    return {k: v for k, v in stats["outcomes"].items() if not k.startswith("target_")}


def account_problems(worker: Worker, stats: dict[str, Any], consumed: int) -> list[str]:
    """The process consumed `consumed` messages, and each has exactly one outcome.

    A dead letter counts once: `too_late` is an outcome that is also dead-lettered.
    """
    outcomes = actor_outcomes(stats)
    letters = {k: v for k, v in stats["dead_letters"].items() if k != "too_late"}
    problems = []
    if stats["consumed"] != consumed:
        problems.append(f"consumed {stats['consumed']}, expected {consumed}")
    if sum(outcomes.values()) + sum(letters.values()) != stats["consumed"]:
        problems.append(f"outcomes {outcomes} + dead letters {letters} != {stats['consumed']}")
    if outcomes.get("duplicate", 0) != stats["skipped_offsets"]:
        problems.append(f"duplicates {outcomes} != skipped offsets {stats['skipped_offsets']}")
    by_outcome = {
        k: int(v)
        for k, v in metric_by(worker, "hearth_events_consumed_total", "outcome").items()
        if v
    }
    expected = {**outcomes, **({"dead_letter": sum(letters.values())} if letters else {})}
    if by_outcome != {k: v for k, v in expected.items() if v}:
        problems.append(f"/metrics outcomes {by_outcome} != /stats {expected}")
    return problems


def final_problems(worker: Worker, bootstrap: str, replay: ReplayResult) -> list[str]:
    """Scores against the replay, seq gaps, and the dead-letter topic's content."""
    at = rfc3339(replay.as_of)
    expected = {s.member: s for s in replay.scores}
    actual = {}
    for member in expected:
        status, body = worker.request(f"/members/{COMMUNITY}/{member}", {"as_of": at})
        if status == 200:
            actual[member] = msgspec.convert(body, MemberScore)
    problems = score_mismatches(expected, actual, "pipeline")
    problems += seq_gaps(score_change_seqs(bootstrap, f"{worker.topic_prefix}score-changes"))
    letters = asyncio.run(read_topic(bootstrap, f"{worker.topic_prefix}activity.dlq"))
    reasons = Counter(dict(r.headers)["reason"].decode() for r in letters)
    if {r.value for r in letters} != set(INVALID) or set(reasons) - set(replay.dead_letters):
        problems.append(f"dead letters {dict(reasons)} != the log's {replay.dead_letters}")
    return problems


def fail_with(problems: list[str], context: str, *workers: Worker) -> None:
    if problems:
        tails = "\n".join(w.log_tail(40) for w in workers)
        pytest.fail(f"{context}\n" + "\n".join(problems[:40]) + f"\n{tails}", pytrace=False)


def activity_total(bootstrap: str, worker: Worker) -> int:
    return sum(asyncio.run(end_offsets(bootstrap, f"{worker.topic_prefix}activity")).values())


# -- a. SIGKILL ----------------------------------------------------------------------------


def test_sigkill_three_times_mid_stream(
    fault_log: FaultLog, make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    """Three crashes (SIGKILL) at seeded random points while the log streams in.

    Accounting across crashes: a killed process's counters die with it, so the account is
    kept by Kafka's committed offsets, which only move once the work behind them is durable
    (states flushed before every commit). Between a kill and the restart nothing can commit,
    so the committed offsets read then are exactly where the next process starts: the last
    process must consume exactly the uncommitted rest (end - committed; more would mean a
    rewind, less a skipped event), and each of its messages must have exactly one outcome in
    /stats and in /metrics. Events the killed processes handled are covered by the final
    state: it must equal the replay's, which counts every event once.
    """
    rng = random.Random(SEED)
    kill_after = [rng.randint(400, 1400) for _ in range(3)]
    print(f"seed {SEED}: kill after this many messages consumed by each process: {kill_after}")
    worker = make_worker(env=FAST_SESSION).start()
    wait_worker_ready(worker)
    publisher = PacedPublisher(
        kafka_bootstrap, f"{worker.topic_prefix}activity", fault_log.path, chunk=100, pause=0.3
    ).start()
    crashes: list[dict[str, int]] = []
    for n, seeded in enumerate(kill_after, start=1):
        # A restarted process first re-reads what was not committed, and the publisher may be
        # done by then: kill it halfway through what it has left at most, so it is mid-work.
        left = fault_log.lines - (crashes[-1]["committed"] if crashes else 0)
        goal = min(seeded, max(1, left // 2))
        worker.wait_until(lambda g=goal: worker.stats()["consumed"] >= g, 90, f"{goal} consumed")
        consumed = worker.stats()["consumed"]
        worker.kill()
        topic = f"{worker.topic_prefix}activity"
        committed = asyncio.run(committed_offsets(kafka_bootstrap, worker.app_id, topic))
        crash = {"kill": n, "consumed": consumed, "published": publisher.published}
        crash["committed"] = sum(committed.values())
        crashes.append(crash)
        print(f"crash {crash}")
        worker.start()
        wait_worker_ready(worker)
    assert any(c["published"] < fault_log.lines for c in crashes), f"not mid-stream: {crashes}"
    publisher.join()
    stats = wait_drained(worker, timeout=120)
    rest = activity_total(kafka_bootstrap, worker) - crashes[-1]["committed"]
    problems = account_problems(worker, stats, rest)
    problems += final_problems(worker, kafka_bootstrap, fault_log.replay)
    fail_with(problems, f"after crashes {crashes}: last process {stats}", worker)


# -- the private instance set: services these tests may stop and restart -------------------


class Private(msgspec.Struct):
    bootstrap: str
    redis_url: str
    env: dict[str, str]

    def services(self, *args: str) -> None:
        # The ports lie below Linux's ephemeral range (32768-60999): a client retrying a stopped
        # broker on an ephemeral port can connect to itself and hold the port the broker needs.
        self._services(*args)

    def _services(self, *args: str) -> None:
        run = subprocess.run(
            ["bash", str(ROOT / "deploy" / "services.sh"), *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, (
            f"services.sh {args} exited {run.returncode}: {run.stderr[-3000:]}"
        )


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """Kafka and Redis of our own (HEARTH_SERVICES_DIR under a tmp dir), down afterwards."""
    env = {"HEARTH_SERVICES_DIR": str(tmp_path_factory.mktemp("services")), **PRIVATE}
    instance = Private(
        bootstrap=f"127.0.0.1:{PRIVATE['HEARTH_KAFKA_PORT']}",
        redis_url=f"redis://127.0.0.1:{PRIVATE['HEARTH_REDIS_PORT']}/0",
        env=env,
    )
    try:
        instance.services("up", "kafka", "redis")
        yield instance
    finally:
        instance.services("down", "kafka", "redis")


@pytest.fixture
def private_worker(private: Private, tmp_path: Path) -> Iterator[Worker]:
    app_id = f"f{os.urandom(4).hex()}"
    worker = Worker(
        app_id=app_id,
        topic_prefix=f"{app_id}.",
        data_dir=tmp_path / "data",
        redis_url=private.redis_url,
        kafka_bootstrap=private.bootstrap,
        log_dir=tmp_path / "logs",
        env=FAST_SESSION,
    )
    try:
        yield worker
    finally:
        worker.close()
        client = redis.Redis.from_url(private.redis_url)
        try:
            for key in client.scan_iter(match=f"hearth:*{app_id}*"):
                client.delete(key)
        finally:
            client.close()
        for prefix in (f"{app_id}.", f"{app_id}-"):
            asyncio.run(_delete_topics(private.bootstrap, prefix))


def _fault_at(rng: random.Random, what: str) -> int:
    goal = rng.randint(700, 1500)
    print(f"seed {SEED}: {what} once the worker has consumed {goal} messages")
    return goal


# -- b. Redis restarted empty ----------------------------------------------------------------


def test_redis_restarted_empty_mid_stream(
    fault_log: FaultLog, private: Private, private_worker: Worker
) -> None:
    """Redis loses everything mid-stream; the worker makes the read model whole again.

    The worker's store notices that Redis lost its partitions (their owner keys are gone) and
    writes its whole working copy back, so every member is readable again without a restart.
    Then the worker is stopped, Redis is emptied once more, and a new worker must rebuild the
    states from the changelog topic alone. No process is killed, so each one's counters are
    its whole account: the first consumed every message once, and each has one outcome.
    """
    worker = private_worker.start()
    wait_worker_ready(worker)
    goal = _fault_at(random.Random(SEED + 1), "restart Redis empty")
    publisher = PacedPublisher(
        private.bootstrap, f"{worker.topic_prefix}activity", fault_log.path, pause=0.3
    ).start()
    worker.wait_until(lambda: worker.stats()["consumed"] >= goal, 90, f"{goal} consumed")
    private.services("down", "redis")
    private.services("up", "redis")
    published_at_fault = publisher.published
    publisher.join()
    stats = wait_drained(worker, timeout=120)
    problems = account_problems(worker, stats, fault_log.lines)
    if "missing from Redis; writing it whole" not in worker.log_text():
        problems.append("the store never rewrote a partition Redis had lost")
    problems += final_problems(worker, private.bootstrap, fault_log.replay)
    fail_with(problems, f"Redis restarted after {published_at_fault} published: {stats}", worker)

    assert worker.stop() == 0, worker.log_tail()
    private.services("down", "redis")
    private.services("up", "redis")
    worker.start()
    wait_worker_ready(worker)
    members = len(fault_log.replay.scores)
    worker.wait_until(lambda: worker.stats()["members"] >= members, 60, "the changelog replayed")
    stats = wait_drained(worker, timeout=60)
    store = stats["store"]
    problems = account_problems(worker, stats, 0)
    if store["loaded_keys"] != 0 or store["changelog_applied"] < members:
        problems.append(f"not rebuilt from the changelog: {store}")
    problems += final_problems(worker, private.bootstrap, fault_log.replay)
    fail_with(problems, f"restarted on an empty Redis: {stats}", worker)


# -- c. the broker stopped for 10 s ----------------------------------------------------------


def test_broker_stopped_for_ten_seconds_mid_stream(
    fault_log: FaultLog, private: Private, private_worker: Worker
) -> None:
    """The Kafka broker goes away for 10 s mid-stream and comes back.

    The publisher (the platforms' side) retries through the outage, so a chunk may be sent
    twice; the account is therefore against the topic's real length: the worker (never
    killed) must consume every message on the topic, each with one outcome.
    """
    worker = private_worker.start()
    wait_worker_ready(worker)
    goal = _fault_at(random.Random(SEED + 2), "stop the broker for 10 s")
    publisher = PacedPublisher(
        private.bootstrap, f"{worker.topic_prefix}activity", fault_log.path, pause=0.3
    ).start()
    worker.wait_until(lambda: worker.stats()["consumed"] >= goal, 90, f"{goal} consumed")
    private.services("down", "kafka")
    time.sleep(10)
    private.services("up", "kafka")
    publisher.join(timeout=180)
    stats = wait_drained(worker, timeout=180)
    problems = account_problems(worker, stats, activity_total(private.bootstrap, worker))
    problems += final_problems(worker, private.bootstrap, fault_log.replay)
    fail_with(problems, f"after the broker outage: {stats}", worker)


# -- d. a second worker joins, the first leaves ----------------------------------------------


def test_rebalance_both_ways_mid_stream(
    fault_log: FaultLog,
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """A second worker joins mid-stream (partitions move to it), then the first leaves.

    Nobody is killed: each process's counters are exact, and each message it consumed has
    one outcome. What a revoked partition had not committed comes again: a valid event then
    must be a duplicate, never applied a second time, so over both processes the valid
    messages with an outcome other than duplicate are at most the log's valid messages (the
    first worker's counters are read just before it stops: a lower bound). That nothing was
    lost is the replay parity; a dead letter may be consumed twice (the DLQ content is
    checked as a set).
    """
    first = make_worker(env=FAST_SESSION).start()
    wait_worker_ready(first)
    second = Worker(
        app_id=first.app_id,
        topic_prefix=first.topic_prefix,
        data_dir=tmp_path / "data-second",
        redis_url=first.redis_url,
        kafka_bootstrap=kafka_bootstrap,
        log_dir=tmp_path / "logs-second",
        env=FAST_SESSION,
    )
    try:
        goal = _fault_at(random.Random(SEED + 3), "start a second worker")
        publisher = PacedPublisher(
            kafka_bootstrap, f"{first.topic_prefix}activity", fault_log.path, pause=0.3
        ).start()
        first.wait_until(lambda: first.stats()["consumed"] >= goal, 90, f"{goal} consumed")
        second.start()
        wait_worker_ready(second)
        second.wait_until(lambda: second.stats()["consumed"] > 0, 60, "the second to consume")
        joined_at = publisher.published
        # The first leaves: its partitions go to the second, which drains the rest.
        first_stats = first.stats()
        assert first.stop() == 0, first.log_tail()
        publisher.join()
        stats = wait_drained(second, timeout=120)
        valid = fault_log.lines - len(INVALID)
        once = sum(
            sum(n for k, n in actor_outcomes(s).items() if k != "duplicate")
            for s in (first_stats, stats)
        )
        problems = account_problems(second, stats, stats["consumed"])
        if once > valid:
            problems.append(f"{once} valid messages applied (not as duplicates) > {valid}")
        problems += final_problems(second, kafka_bootstrap, fault_log.replay)
        fail_with(
            problems, f"joined after {joined_at} published; first {first_stats}", first, second
        )
    finally:
        second.close()
