"""End to end: a community log through Kafka, the worker and Redis, read back three ways."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from worker import (
    COMMUNITY,
    Worker,
    publish_file,
    read_topic,
    score_mismatches,
    wait_drained,
    write_community,
)

from agents.read_model import OVERALL, leaderboard_key, table_data_key
from scoring.engine import Engine
from scoring.policy import DIMENSIONS, load_policy
from scoring.records import MemberScore, ScoreChange, rfc3339
from scoring.snapshot import decode_state

POLICY = load_policy(None)
_snapshot = msgspec.json.Decoder(MemberScore)
_change = msgspec.json.Decoder(ScoreChange)


def _members_from_redis(client: redis.Redis, app_id: str, t: float) -> dict[str, MemberScore]:
    """Every member state the table store keeps in Redis, explained at `t` by the engine."""
    engine = Engine(POLICY)
    out = {}
    for partition in range(4):
        for raw_key, raw in client.hgetall(table_data_key(app_id, partition)).items():
            community, _, member = raw_key.decode().partition("/")
            assert community == COMMUNITY
            out[member] = engine.explain_state((community, member), decode_state(raw), t)
    return out


def _last_changes(bootstrap: str, topic: str) -> dict[str, ScoreChange]:
    latest = {}
    for record in asyncio.run(read_topic(bootstrap, topic)):
        change = _change.decode(record.value)
        latest[change.member] = change
    return latest


def _members_from_scores_topic(bootstrap: str, topic: str) -> dict[str, MemberScore]:
    """The last snapshot per key of the compacted scores topic (tombstones delete)."""
    latest: dict[bytes, bytes | None] = {}
    for record in asyncio.run(read_topic(bootstrap, topic)):
        latest[record.key] = record.value
    out = {}
    for key, value in latest.items():
        if value is None:
            continue
        snapshot = _snapshot.decode(value)
        assert key == f"{snapshot.community}/{snapshot.member}".encode()
        out[snapshot.member] = snapshot
    return out


def _api_member(worker: Worker, member: str, as_of: str) -> MemberScore:
    body = worker.get(f"/members/{COMMUNITY}/{member}", {"as_of": as_of})
    return msgspec.convert(body, MemberScore)


def _leaderboard(worker: Worker, dimension: str, as_of: str, **params: Any) -> list[dict[str, Any]]:
    body = worker.get(
        f"/leaderboard/{COMMUNITY}", {"dimension": dimension, "as_of": as_of, **params}
    )
    assert body["dimension"] == dimension
    rows: list[dict[str, Any]] = body["members"]
    return rows


@pytest.fixture
def pipeline(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> tuple[Worker, list[dict[str, Any]]]:
    """A worker that has scored a small community log (3k events, 23 members)."""
    path = tmp_path / "events.jsonl"
    events = write_community(path, seed=11)
    worker = make_worker().start()
    worker.wait_ready()
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", path)
    stats = wait_drained(worker, consumed=len(events))
    assert stats["dead_letters"] == {}, stats
    return worker, events


def test_api_redis_and_scores_topic_agree(
    pipeline: tuple[Worker, list[dict[str, Any]]],
    pipeline_redis: redis.Redis,
    kafka_bootstrap: str,
) -> None:
    worker, events = pipeline
    as_of = max(datetime.fromisoformat(e["time"]).timestamp() for e in events)
    at = rfc3339(as_of)

    from_redis = _members_from_redis(pipeline_redis, worker.app_id, as_of)
    actors = {e["actor"] for e in events}
    assert actors <= from_redis.keys(), f"actors without state: {actors - from_redis.keys()}"
    assert len(from_redis) == worker.stats()["members"]
    from_api = {m: _api_member(worker, m, at) for m in from_redis}
    assert all(s.as_of == at for s in from_api.values())
    assert score_mismatches(from_redis, from_api, "api") == []
    assert any(s.score > 0 for s in from_api.values())

    # The scores topic holds each member as of its latest score change, field for field.
    published = _members_from_scores_topic(kafka_bootstrap, f"{worker.topic_prefix}scores")
    changes = _last_changes(kafka_bootstrap, f"{worker.topic_prefix}score-changes")
    assert published.keys() == changes.keys()
    assert len(published) >= len(actors) // 2, "too few members with a score change"
    for member, snapshot in published.items():
        change = changes[member]
        assert (snapshot.as_of, snapshot.tier) == (change.time, change.new_tier), member
        assert abs(snapshot.score - change.new_score) <= 1e-9 * max(1.0, change.new_score)


def test_leaderboards_follow_values_at_as_of(
    pipeline: tuple[Worker, list[dict[str, Any]]], pipeline_redis: redis.Redis
) -> None:
    worker, events = pipeline
    as_of = max(datetime.fromisoformat(e["time"]).timestamp() for e in events)
    at = rfc3339(as_of)
    stored = expected = _members_from_redis(pipeline_redis, worker.app_id, as_of)

    crowded = 0
    for dim in DIMENSIONS:
        rows = _leaderboard(worker, dim, at, limit=500)
        names = [r["member"] for r in rows]
        board = leaderboard_key(COMMUNITY, dim)
        zset = [m.decode() for m in pipeline_redis.zrevrange(board, 0, -1)]
        assert names == zset, f"{dim}: the API's order is not the zset's"
        assert set(names) == {m for m, s in stored.items() if s.masses.get(dim, 0.0) > 0}, dim
        values = [r["dimensions"][dim] for r in rows]
        assert values == [expected[m].dimensions[dim] for m in names], dim
        descending = all(a >= b * (1 - 1e-9) for a, b in zip(values, values[1:], strict=False))
        assert descending, f"{dim} leaderboard is not sorted by value at {at}: {values}"
        crowded += len(rows) > 2
        page = _leaderboard(worker, dim, at, limit=3, offset=2)
        assert [r["member"] for r in page] == names[2:5], f"{dim}: offset/limit"
    assert crowded >= 3, "too few dimensions with several members to test the ordering"

    rows = _leaderboard(worker, OVERALL, at, limit=500)
    assert {r["member"] for r in rows} == stored.keys()
    scores = [(r["score"], r["member"]) for r in rows]
    assert scores == sorted(scores, key=lambda x: (-x[0], x[1])), "overall is not sorted by score"
    assert [s for s, _ in scores] == [expected[m].score for _, m in scores]
    page = _leaderboard(worker, OVERALL, at, limit=4, offset=3)
    assert [r["member"] for r in page] == [m for _, m in scores][3:7]
    default = _leaderboard(worker, OVERALL, at)
    assert len(default) == min(20, len(rows))


def test_bad_requests_get_json_errors(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"id":"a1","type":"post.created","community":"demo","actor":"ann",'
        '"time":"2026-01-05T10:00:00Z"}\n'
        '{"id":"a2","type":"reply.created","community":"demo","actor":"bob","target":"ann",'
        '"time":"2026-01-05T11:00:00Z"}\n'
    )
    worker = make_worker().start()
    worker.wait_ready()
    publish_file(kafka_bootstrap, f"{worker.topic_prefix}activity", path)
    wait_drained(worker, consumed=2)
    assert worker.get("/members/demo/ann", {"as_of": "2026-01-06T00:00:00Z"})["member"] == "ann"

    bad = [
        ("/members/demo/ann", {"as_of": "yesterday"}, 400),
        ("/members/demo/ann", {"as_of": "2026-01-06T00:00:00"}, 400),  # no UTC offset
        ("/members/demo/nobody", {}, 404),
        ("/members/elsewhere/ann", {}, 404),
        ("/leaderboard/demo", {"dimension": "karma"}, 400),
        ("/leaderboard/demo", {"as_of": "2026-13-01T00:00:00Z"}, 400),
        ("/leaderboard/demo", {"limit": "ten"}, 400),
        ("/leaderboard/demo", {"limit": "-1"}, 400),
        ("/leaderboard/demo", {"limit": "501"}, 400),
        ("/leaderboard/demo", {"offset": "-5"}, 400),
        ("/leaderboard/demo", {"offset": "1.5"}, 400),
    ]
    for path_, params, status in bad:
        got, body = worker.request(path_, params)
        assert got == status, f"GET {path_} {params} -> {got} {body}"
        assert isinstance(body, dict), f"GET {path_} {params}: not a JSON object: {body!r}"
        assert isinstance(body.get("error"), str), f"GET {path_} {params}: {body}"
        assert body["error"], f"GET {path_} {params}: empty error"
    # Still serving.
    assert worker.request("/healthz") == (200, {"status": "ok"})
