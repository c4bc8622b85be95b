"""A worker at INFO writes no community or member id to its log, nor to /metrics.

Ids are personal data (a member id is often a user name): operators ship logs and metrics to
systems with other retention and access rules than the member store. The events use ids that
cannot occur by accident, and cover the paths that handle a message specially: applied, a
reply with a target (the credit crosses to another member), a dead letter and a re-keyed event.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from worker import Worker, wait_drained

TAG = uuid4().hex[:6]
COMMUNITY = f"zqcomm{TAG}"
ACTORS = [f"zqann{TAG}", f"zqbob{TAG}", f"zqcid{TAG}"]
DEAD_ACTOR = f"zqdead{TAG}"  # only in a dead-lettered event
REKEYED_ACTOR = f"zqrekey{TAG}"  # only in an event published under a wrong key


def _event(id_: str, actor: str, time: str, **extra: str) -> dict[str, str]:
    return {
        "id": id_,
        "type": "post.created",
        "community": COMMUNITY,
        "actor": actor,
        "time": time,
        **extra,
    }


def _messages() -> list[tuple[bytes | None, bytes]]:
    ann, bob, cid = ACTORS
    events = [
        _event(f"e1{TAG}", ann, "2026-01-05T10:00:00Z"),
        _event(f"e2{TAG}", bob, "2026-01-05T11:00:00Z", type="reply.created", target=ann),
        _event(f"e3{TAG}", cid, "2026-01-06T09:00:00Z"),
    ]
    messages: list[tuple[bytes | None, bytes]] = [
        (f"{e['community']}/{e['actor']}".encode(), json.dumps(e).encode()) for e in events
    ]
    dead = _event(f"e4{TAG}", DEAD_ACTOR, "2026-01-06T10:00:00Z", type="teleport.used")
    messages.append((f"{COMMUNITY}/{DEAD_ACTOR}".encode(), json.dumps(dead).encode()))
    rekeyed = _event(f"e5{TAG}", REKEYED_ACTOR, "2026-01-06T11:00:00Z")
    messages.append((b"wrong-key", json.dumps(rekeyed).encode()))
    return messages


async def _send(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _metrics(worker: Worker) -> str:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:  # noqa: S310
        text: str = response.read().decode()
        return text


def _lines_with(text: str, needles: list[str]) -> list[str]:
    pattern = re.compile("|".join(map(re.escape, needles)))
    return [line for line in text.splitlines() if pattern.search(line)]


def test_no_ids_in_the_worker_log_or_metrics(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker().start()
    worker.wait_ready()
    messages = _messages()
    asyncio.run(_send(kafka_bootstrap, f"{worker.topic_prefix}activity", messages))
    # The re-keyed event is consumed twice: under the wrong key, then under its own.
    stats = wait_drained(worker, consumed=len(messages) + 1, timeout=60)
    assert stats["dead_letters"] == {"unknown_type": 1}, stats
    assert stats["outcomes"].get("rekeyed") == 1, stats
    assert stats["outcomes"].get("applied") == len(messages) - 1, stats  # all but the dead letter
    assert worker.get(f"/members/{COMMUNITY}/{ACTORS[0]}")["score"] > 0
    metrics = _metrics(worker)
    assert "hearth_events_consumed_total" in metrics, metrics[:500]
    worker.stop()  # shutdown logs too (a table or store dump at stop would show up here)

    ids = [COMMUNITY, *ACTORS, DEAD_ACTOR, REKEYED_ACTOR]
    log = worker.log_text(all_starts=True)
    assert "Starting..." in log and "Stopping..." in log, "the log is not the INFO log"
    leaked = _lines_with(log, ids)
    assert not leaked, "ids in the worker log:\n" + "\n".join(leaked[:20])
    leaked = _lines_with(metrics, ids)
    assert not leaked, "ids in /metrics:\n" + "\n".join(leaked[:20])
