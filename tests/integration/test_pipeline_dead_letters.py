"""Bad input on the activity topic: every message is dead-lettered with its reason, or re-keyed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from worker import Worker, read_topic, wait_drained

from scoring.policy import load_policy
from stream.codec import DeadLetter, EventDecoder, Reason
from stream.topics import DEFAULT_PARTITIONS

Message = tuple[bytes | None, bytes]


def _event(id_: str, actor: str, time: str = "2026-01-20T10:00:00Z", **extra: object) -> dict:
    return {
        "id": id_,
        "type": "post.created",
        "community": "demo",
        "actor": actor,
        "time": time,
        **extra,
    }


def _raw(event: dict) -> bytes:
    return json.dumps(event).encode()


def _key(event: dict) -> bytes:
    return f"{event['community']}/{event['actor']}".encode()


BAD: list[tuple[bytes | None, bytes, Reason]] = [
    (b"demo/ann", b'{"id": "j1", "type": "post.created", "community": "demo"', Reason.INVALID_JSON),
    (b"demo/ann", b"not json at all", Reason.INVALID_JSON),
    (
        b"demo/b\xffb",
        b'{"id":"u1","type":"post.created","community":"demo","actor":"b\xffb",'
        b'"time":"2026-01-20T10:00:00Z"}',
        Reason.INVALID_UTF8,
    ),
    (
        b"demo/ann",
        _raw({k: v for k, v in _event("m1", "ann").items() if k != "actor"}),
        Reason.SCHEMA,
    ),
    (b"demo/ann", _raw(_event("t1", "ann", type="teleport.used")), Reason.UNKNOWN_TYPE),
    (b"demo/ann", _raw(_event("o1", "ann", attrs={"blob": "x" * 70_000})), Reason.TOO_LARGE),
    (b"demo/ann", _raw(_event("a1", "ann", attrs={"blob": "x" * 5_000})), Reason.ATTRS_TOO_LARGE),
    (b"demo/ann", _raw(_event("c1\u0007", "ann")), Reason.SCHEMA),  # control character in id
    (b"demo/a\x01n", _raw(_event("c2", "a\u0001n")), Reason.SCHEMA),  # ... in actor
    (b"demo/ann", _raw(_event("n1", "ann", time="2026-01-20T10:00:00")), Reason.SCHEMA),
    (b"demo/ann", _raw(_event("f1", "ann", time="2999-01-01T00:00:00Z")), Reason.FUTURE_TIME),
    (None, b"{]", Reason.INVALID_JSON),  # no key at all
    (None, _raw(_event("f2", "ann", time="2999-01-01T00:00:00Z")), Reason.FUTURE_TIME),
]

# Valid events whose key is not community/actor: the worker must re-key them, then apply them.
MISKEYED: list[Message] = [
    (b"wrong", _raw(_event("w1", "carol"))),
    (b"demo/ann", _raw(_event("w2", "dave", type="reply.created", target="carol"))),
    (None, _raw(_event("w3", "erin"))),
]


def _one_member_per_partition() -> list[dict]:
    """Valid events from members whose keys cover every activity partition."""
    partitioner = DefaultPartitioner()
    every = list(range(DEFAULT_PARTITIONS))
    chosen: dict[int, dict] = {}
    n = 0
    while len(chosen) < DEFAULT_PARTITIONS:
        event = _event(f"v{n}", f"member-{n}")
        chosen.setdefault(partitioner(_key(event), every, every), event)
        n += 1
    return list(chosen.values())


async def _send(bootstrap: str, topic: str, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=512 * 1024)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_bad_messages_are_dead_lettered_and_miskeyed_ones_applied(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker().start()
    worker.wait_ready()
    activity = f"{worker.topic_prefix}activity"
    valid = _one_member_per_partition()
    asyncio.run(_send(kafka_bootstrap, activity, [(_key(e), _raw(e)) for e in valid]))
    # Once every partition has reported its event time, days before it minus late_days close.
    worker.wait_until(lambda: worker.stats()["watermark"], 30, "a watermark")
    late = (b"demo/lou", _raw(_event("l1", "lou", time="2026-01-05T10:00:00Z")))
    messages = [(key, value) for key, value, _ in BAD] + MISKEYED + [late]
    asyncio.run(_send(kafka_bootstrap, activity, messages))

    # The re-keyed events are consumed a second time, under their proper key.
    consumed = len(valid) + len(messages) + len(MISKEYED)
    stats = wait_drained(worker, consumed=consumed)
    assert stats["consumed"] == consumed, stats

    expected = Counter(reason.value for _, _, reason in BAD)
    expected[Reason.TOO_LATE.value] += 1
    assert stats["dead_letters"] == dict(expected), stats
    assert stats["outcomes"].get("rekeyed") == len(MISKEYED), stats

    letters = asyncio.run(read_topic(kafka_bootstrap, f"{worker.topic_prefix}activity.dlq"))
    assert len(letters) == sum(expected.values())
    by_value = {r.value: r for r in letters if r.value}
    for key, value, reason in BAD:
        record = by_value.get(value)
        assert record is not None, f"not dead-lettered ({reason}): {value[:80]!r}"
        headers = dict(record.headers)
        assert headers["reason"] == reason.value.encode(), (value[:80], headers)
        assert headers.get("detail"), (value[:80], headers)
        assert record.key == key, (value[:80], record.key)
    (too_late,) = [r for r in letters if dict(r.headers)["reason"] == b"too_late"]
    assert too_late.key == b"demo/lou"
    status, _ = worker.request("/members/demo/lou")
    assert status == 404, "an event for a closed day created the member"

    # Still healthy after all that.
    assert worker.running
    assert worker.request("/healthz") == (200, {"status": "ok"})
    assert worker.request("/readyz")[0] == 200

    # The mis-keyed events were applied to their actors (and the reply's target) ...
    for member in ("carol", "dave", "erin"):
        status, body = worker.request(f"/members/demo/{member}")
        assert status == 200, f"{member}: {status} {body}"
        assert body["score"] > 0, body
    # ... and went back on the topic once each, under the community/actor key.
    copies: dict[bytes, list[bytes | None]] = {value: [] for _, value in MISKEYED}
    for record in asyncio.run(read_topic(kafka_bootstrap, activity)):
        if record.value in copies:
            copies[record.value].append(record.key)
    for key, value in MISKEYED:
        proper = _key(json.loads(value))
        assert sorted(copies[value], key=repr) == sorted([key, proper], key=repr), copies[value]


def test_malformed_json_is_invalid_json_whatever_its_first_token() -> None:
    """Bytes that are not JSON at all must not be reported as a schema violation.

    The typed decoder checks the type of what it has read before it reaches the syntax error,
    so a truncated message (the common case: a producer cut off mid-write) was reported as
    schema_violation ("Expected `str`, got `int`") instead of invalid_json.
    """
    policy = load_policy(None)
    decoder = EventDecoder(policy.rules, policy.spec.future_skew_seconds)
    for raw in (b"[1, 2", b"[", b'{"id": 1', b'{"id": "x", "type": 5', b"12x"):
        result = decoder.decode(raw, 2e9)
        assert isinstance(result, DeadLetter), raw
        assert result.reason is Reason.INVALID_JSON, (raw, result.reason, result.detail)
