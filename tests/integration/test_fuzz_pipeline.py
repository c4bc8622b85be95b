"""Fuzz: over 10,000 generated messages, valid and hostile, through one real worker.

The messages come from the hypothesis strategies in hostile.py and go to the activity topic
through a plain aiokafka producer. An oracle in this file, which knows the contract but not the
service, works out what each message must become; the worker's /stats, /metrics and
dead-letter topic must agree with it reason by reason, the scores of the accepted events must
equal `hearth replay` of them, and the worker must still be up and ready at the end.
test_pipeline_dead_letters.py has one hand-written message per reason; this is its
generalisation.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from hostile import (
    GHOSTS,
    LAST_LATE,
    MEMBERS,
    POLICY,
    PROPER,
    WINDOW_START,
    Batch,
    Body,
    Draft,
    Event,
    NewId,
    Planned,
    Replay,
    Sent,
    day_of,
    drafts,
    draw_drafts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from worker import Worker, read_topic, score_mismatches, wait_drained

from agents.replay import replay_file
from scoring.records import MemberScore, rfc3339
from stream.codec import DeadLetter, EventDecoder, Reason
from stream.topics import DEFAULT_PARTITIONS, TopicNames

FUZZ_MESSAGES = 10_000
UNDECODED = "unknown"  # the type label of messages that never decoded
CREDITED = frozenset(t for t, rule in POLICY.rules.items() if rule.target)
OUTCOMES = (
    "applied",
    "duplicate",
    "self_interaction",
    "too_late",
    "rekeyed",
    "target_applied",
)


# -- the oracle ------------------------------------------------------------------------------


@dataclass
class Account:
    """What the worker must report for a sequence of messages."""

    consumed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    letters: Counter[tuple[bytes | None, bytes, str]] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome)
    credits: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome)
    accepted: list[Sent] = field(default_factory=list)  # actor side applied or duplicate


def expected_account(messages: Iterable[Sent], closed_through: int) -> Account:
    """The contract's verdict on each message, in order.

    Rejected by the decoder: dead-lettered with its reason. Decodable but keyed by anything but
    community/actor: re-keyed, and consumed once more under the right key. Then, in the
    service's order: target == actor is a self-interaction; a day on or before
    `closed_through` is too late (dead-lettered, key community/actor, no value); an id the
    member already has on that day is a duplicate; anything else is applied. The target of an
    applied interaction is credited once per id and day (a replayed id is not credited again:
    its content may differ; only a redelivered message, the same offset, would be).
    """
    account = Account()
    actor_sides: set[tuple[str, str, int, str]] = set()
    target_sides: set[tuple[str, str, int, str]] = set()
    for message in messages:
        account.consumed += 1
        if message.reason is not None:
            account.dead_letters[message.reason.value] += 1
            account.letters[(message.key, message.value or b"", message.reason.value)] += 1
            account.events[(UNDECODED, "dead_letter")] += 1
            continue
        event = message.event
        assert event is not None
        if message.key != event.key:
            account.outcomes["rekeyed"] += 1
            account.events[(event.type, "rekeyed")] += 1
            account.consumed += 1
        outcome = _actor_outcome(event, closed_through, actor_sides)
        account.outcomes[outcome] += 1
        account.events[(event.type, outcome)] += 1
        if outcome == "too_late":
            account.dead_letters["too_late"] += 1
            account.letters[(event.key, b"", "too_late")] += 1
        if outcome in ("applied", "duplicate"):
            account.accepted.append(message)
            if outcome == "applied" and event.target is not None and event.type in CREDITED:
                side = (event.community, event.target, event.day, event.id)
                credit = "duplicate" if side in target_sides else "applied"
                target_sides.add(side)
                account.outcomes[f"target_{credit}"] += 1
                account.credits[(event.type, credit)] += 1
    return account


def _actor_outcome(event: Event, closed_through: int, seen: set[tuple[str, str, int, str]]) -> str:
    if event.target == event.actor:
        return "self_interaction"
    if event.day <= closed_through:
        return "too_late"
    side = (event.community, event.actor, event.day, event.id)
    if side in seen:
        return "duplicate"
    seen.add(side)
    return "applied"


# -- sending -----------------------------------------------------------------------------------


def seed_drafts() -> list[Draft]:
    """One plain event per activity partition, at the window's start: every partition then has
    an event time, so the worker sets its watermark (and closes the days before the window)."""
    partitioner = DefaultPartitioner()
    every = list(range(DEFAULT_PARTITIONS))
    chosen: dict[int, str] = {}
    for member in MEMBERS:
        chosen.setdefault(partitioner(f"demo/{member}".encode(), every, every), member)
    assert len(chosen) == DEFAULT_PARTITIONS, chosen
    t = WINDOW_START.timestamp()
    return [
        Draft(
            "seed",
            PROPER,
            Body(
                (
                    ("id", NewId("seed-")),
                    ("type", "post.created"),
                    ("community", "demo"),
                    ("actor", member),
                    ("time", rfc3339(t)),
                )
            ),
            None,
            Planned("post.created", "demo", member, t, None),
        )
        for member in chosen.values()
    ]


async def produce(bootstrap: str, topic: str, messages: list[Sent]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=1024 * 1024, linger_ms=20
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, m.value, key=m.key) for m in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


# -- reading the worker's side -------------------------------------------------------------------


def metric_samples(worker: Worker, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Nonzero samples of counter `name`, keyed by the values of `labels`, from /metrics."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.value:
                out[tuple(sample.labels[label] for label in labels)] = sample.value
    return out


def dead_letter_records(bootstrap: str, prefix: str) -> Counter[tuple[bytes | None, bytes, str]]:
    records = asyncio.run(read_topic(bootstrap, TopicNames(prefix).dead_letters))
    found: Counter[tuple[bytes | None, bytes, str]] = Counter()
    for record in records:
        headers = dict(record.headers)
        assert headers.get("detail"), (record.key, (record.value or b"")[:80], headers)
        found[(record.key, record.value or b"", headers["reason"].decode())] += 1
    return found


def label_disagreements(messages: list[Sent], now: float) -> list[str]:
    """Messages whose label the decoder disputes: tells an oracle bug from a service bug."""
    decoder = EventDecoder(POLICY.rules, POLICY.spec.future_skew_seconds)
    problems = []
    for message in messages:
        try:
            result = decoder.decode(message.value or b"", now)
        except Exception as exc:  # noqa: BLE001 - a crash is exactly what to report
            problems.append(f"decoder raised {exc!r} for {message.describe()}")
            continue
        if isinstance(result, DeadLetter):
            if result.reason != message.reason:
                problems.append(f"decoder says {result.reason} for {message.describe()}")
            continue
        t = result.time.timestamp()
        read = Event(result.id, result.type, result.community, result.actor, t, result.target)
        if read != message.event:
            problems.append(f"decoder reads {read} for {message.describe()}")
    return problems


def pipeline_scores(
    worker: Worker, scores: list[MemberScore], as_of: float
) -> dict[str, MemberScore]:
    out = {}
    for score in scores:
        path = f"/members/{quote(score.community, safe='')}/{quote(score.member, safe='')}"
        body = worker.get(path, {"as_of": rfc3339(as_of)})
        out[f"{score.community}/{score.member}"] = msgspec.convert(body, MemberScore)
    return out


def differences(what: str, want: Counter[Any] | dict[Any, Any], got: dict[Any, Any]) -> list[str]:
    keys = sorted(set(want) | set(got), key=repr)
    return [
        f"{what} {k!r}: expected {want.get(k, 0)}, got {got.get(k, 0)}"
        for k in keys
        if want.get(k, 0) != got.get(k, 0)
    ]


# -- the tests ------------------------------------------------------------------------------------


def account_differences(
    worker: Worker, stats: dict[str, Any], account: Account, bootstrap: str
) -> list[str]:
    """Where /stats, /metrics and the dead-letter topic differ from the oracle's account."""
    problems = [
        *differences("consumed", Counter(total=account.consumed), {"total": stats["consumed"]}),
        *differences("outcome", account.outcomes, stats["outcomes"]),
        *differences("dead letter", account.dead_letters, stats["dead_letters"]),
    ]
    if stats["skipped_offsets"]:
        problems.append(f"{stats['skipped_offsets']} offsets skipped as redelivered (no restart)")
    events = metric_samples(worker, "hearth_events_consumed", "type", "outcome")
    problems += differences("hearth_events_consumed_total", account.events, events)
    by_reason = Counter({(reason,): n for reason, n in account.dead_letters.items()})
    reasons = metric_samples(worker, "hearth_dead_letters", "reason")
    problems += differences("hearth_dead_letters_total", by_reason, reasons)
    credits = metric_samples(worker, "hearth_target_credits", "type", "outcome")
    problems += differences("hearth_target_credits_total", account.credits, credits)
    letters = dead_letter_records(bootstrap, worker.topic_prefix)
    for what, letter in [
        *(("missing dead letter", x) for x in (account.letters - letters).elements()),
        *(("unexpected dead letter", x) for x in (letters - account.letters).elements()),
    ]:
        problems.append(f"{what}: {letter[2]} key={letter[0]!r} value={letter[1][:100]!r}")
    return problems


def replay_mismatches(
    worker: Worker, stats: dict[str, Any], account: Account, log: Path
) -> list[str]:
    """Score differences between the worker and `hearth replay` of the accepted events."""
    log.write_bytes(b"".join((m.value or b"").strip() + b"\n" for m in account.accepted))
    replay = replay_file(log, POLICY, as_of=None, dead_letters=None, show_progress=False)
    assert dict(replay.dead_letters) == {}
    assert replay.outcomes["applied"] == account.outcomes["applied"], replay.outcomes
    assert replay.outcomes["duplicate"] == account.outcomes["duplicate"], replay.outcomes
    expected = {f"{s.community}/{s.member}": s for s in replay.scores}
    assert stats["members"] == len(expected), (stats["members"], len(expected))
    actual = pipeline_scores(worker, replay.scores, replay.as_of)
    return score_mismatches(expected, actual, "pipeline")


def test_fuzzed_messages_are_each_accounted_for(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker = make_worker().start()
    now = time.time()
    fuzz_drafts = draw_drafts(FUZZ_MESSAGES, now)  # while the worker starts
    worker.wait_ready()
    activity = TopicNames(worker.topic_prefix).activity
    batch = Batch()
    seeds = [batch.add(draft) for draft in seed_drafts()]
    asyncio.run(produce(kafka_bootstrap, activity, seeds))
    start = WINDOW_START.timestamp()
    worker.wait_until(lambda: (worker.stats()["watermark"] or 0) >= start, 60, "the watermark")
    # Days up to the watermark's day - late_days - 2 are closed (the close horizon's day - 1).
    closed_through = day_of(start) - POLICY.spec.late_days - 2
    assert closed_through >= day_of(LAST_LATE.timestamp())

    fuzz = [batch.add(draft) for draft in fuzz_drafts]
    account = expected_account(batch.sent, closed_through)
    # The batch exercises every reason and every outcome (a weakened strategy would show here).
    assert set(account.dead_letters) == {reason.value for reason in Reason}, account.dead_letters
    assert set(account.outcomes) == set(OUTCOMES), account.outcomes
    asyncio.run(produce(kafka_bootstrap, activity, fuzz))
    stats = wait_drained(worker, timeout=150, consumed=account.consumed)

    problems = account_differences(worker, stats, account, kafka_bootstrap)
    if problems:
        disputes = label_disagreements(batch.sent, now)
        pytest.fail(
            f"{len(problems)} differences from the oracle:\n  "
            + "\n  ".join(problems[:60])
            + "\nlabels the decoder disputes (oracle bugs if any):\n  "
            + ("\n  ".join(disputes) or "none")
        )
    # The books balance: every consumed message has exactly one final outcome.
    outcomes = stats["outcomes"]
    undecodable = sum(n for reason, n in stats["dead_letters"].items() if reason != "too_late")
    final = ("applied", "duplicate", "self_interaction", "too_late", "rekeyed")
    assert stats["consumed"] == undecodable + sum(outcomes[o] for o in final), stats

    assert replay_mismatches(worker, stats, account, tmp_path / "accepted.jsonl") == []
    for ghost in GHOSTS:
        status, _ = worker.request(f"/members/demo/{quote(ghost, safe='')}")
        assert status == 404, f"{ghost} only sent bad or too-late events, yet has a state"

    assert worker.running
    assert worker.request("/healthz") == (200, {"status": "ok"})
    assert worker.request("/readyz")[0] == 200
    assert "Traceback" not in worker.log_text(), worker.log_tail(120)


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(drafts(time.time()), min_size=1, max_size=12))
def test_the_oracle_labels_agree_with_the_decoder(messages: list[Draft | Replay]) -> None:
    """Fast and without services: each generated label is what the decoder says.

    If this fails, the strategies mislabel a shape or the decoder breaks the contract; the
    pipeline test's counts would be off either way, so this tells which.
    """
    batch = Batch()
    for draft in seed_drafts():
        batch.add(draft)
    sent = [batch.add(draft) for draft in messages]
    assert label_disagreements(sent, time.time()) == []
