"""The Redis read model for downstream services: member hashes and per-dimension leaderboards.

Key schema (documented in the README):
  hearth:member:{community}:{member}   hash  snapshot (MemberScore JSON), score, tier, seq
  hearth:lb:{community}:{dimension}    zset  member -> ln(mass) + rate * landmark
  hearth:lb:{community}:overall        zset  member -> score when last written (membership index)
A dimension's zset score is the log of its forward-decay mass against the epoch, so the zset
order equals the order of current values at every instant without rewriting it as time passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec
import redis.asyncio as aioredis

from scoring.policy import DIMENSIONS, Policy
from scoring.records import MemberScore
from scoring.scores import snapshot_at

OVERALL = "overall"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MemberScore)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def member_key(community: str, member: str) -> str:
    return f"hearth:member:{community}:{member}"


def leaderboard_key(community: str, dimension: str) -> str:
    return f"hearth:lb:{community}:{dimension}"


def rank_value(mass: float, rate: float, landmark: float) -> float | None:
    """Zset score of a dimension: monotone in the current value, constant over time."""
    if mass <= 0:
        return None
    return math.log(mass) + rate * landmark


async def write_snapshots(
    client: aioredis.Redis, policy: Policy, snapshots: Iterable[tuple[MemberScore, int]]
) -> int:
    """Write (snapshot, seq) pairs in one pipelined round trip."""
    written = 0
    async with client.pipeline(transaction=False) as pipe:
        for snap, seq in snapshots:
            key = member_key(snap.community, snap.member)
            pipe.hset(
                key,
                mapping={
                    "snapshot": _encoder.encode(snap),
                    "score": repr(snap.score),
                    "tier": snap.tier,
                    "seq": seq,
                },
            )
            for dim, rate in zip(DIMENSIONS, policy.rates, strict=True):
                board = leaderboard_key(snap.community, dim)
                value = rank_value(snap.masses.get(dim, 0.0), rate, snap.landmark)
                if value is None:
                    pipe.zrem(board, snap.member)
                else:
                    pipe.zadd(board, {snap.member: value})
            pipe.zadd(leaderboard_key(snap.community, OVERALL), {snap.member: snap.score})
            written += 1
        await pipe.execute()
    return written


async def delete_member(client: aioredis.Redis, community: str, member: str) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(member_key(community, member))
        for dim in (*DIMENSIONS, OVERALL):
            pipe.zrem(leaderboard_key(community, dim), member)
        await pipe.execute()


async def read_member(
    client: aioredis.Redis, policy: Policy, community: str, member: str, t: float
) -> MemberScore | None:
    raw = await client.hget(member_key(community, member), "snapshot")
    return None if raw is None else snapshot_at(policy, _decoder.decode(raw), t)


async def _snapshots(
    client: aioredis.Redis, community: str, members: list[str]
) -> list[MemberScore]:
    async with client.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hget(member_key(community, member), "snapshot")
        raws = await pipe.execute()
    return [_decoder.decode(raw) for raw in raws if raw is not None]


async def read_leaderboard(
    client: aioredis.Redis,
    policy: Policy,
    community: str,
    dimension: str,
    t: float,
    limit: int,
    offset: int,
) -> list[MemberScore]:
    """Members ranked by a dimension's current value, or by overall score at `t`."""
    if dimension == OVERALL:
        members = [
            _text(m) for m in await client.zrange(leaderboard_key(community, OVERALL), 0, -1)
        ]
        scored = [snapshot_at(policy, s, t) for s in await _snapshots(client, community, members)]
        scored.sort(key=lambda s: (-s.score, s.member))
        return scored[offset : offset + limit]
    board = leaderboard_key(community, dimension)
    members = [_text(m) for m in await client.zrevrange(board, offset, offset + limit - 1)]
    return [snapshot_at(policy, s, t) for s in await _snapshots(client, community, members)]
