"""What the API reads from Redis: member states where the table store keeps them, and leaderboards.

Key schema (documented in the README):
  hearth:table:{app}:members:p{partition}  hash  member key -> encoded state (the table store)
  hearth:lb:{community}:{dimension}        zset  member -> ln(mass) + rate * landmark
  hearth:lb:{community}:overall            zset  member -> score at the member's newest event
The table itself is the read model: a member's explanation is computed from its state when it
is asked for, so the service writes nothing per member besides the state and the leaderboards.
A dimension's zset score is the log of its forward-decay mass against the epoch, so the zset
order equals the order of current values at every instant without rewriting it as time passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from aiokafka.partitioner import DefaultPartitioner

from agents.redis_store import table_data_key
from scoring.engine import Engine
from scoring.policy import DIMENSIONS, Policy
from scoring.records import MemberScore
from scoring.scores import damped_masses, score_at
from scoring.snapshot import decode_state
from scoring.state import MemberKey, MemberState

OVERALL = "overall"


def member_key(community: str, member: str) -> str:
    """The per-member snapshot hash earlier versions wrote (erasure still removes it)."""
    return f"hearth:member:{community}:{member}"


def leaderboard_key(community: str, dimension: str) -> str:
    return f"hearth:lb:{community}:{dimension}"


def rank_value(mass: float, rate: float, landmark: float) -> float | None:
    """Zset score of a dimension: monotone in the current value, constant over time."""
    if mass <= 0:
        return None
    return math.log(mass) + rate * landmark


def partitioner(partitions: int) -> Callable[[bytes], int]:
    """The partition of a member key, as every Kafka client's default partitioner picks it."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    return lambda raw_key: int(choose(raw_key, every, every))


async def write_leaderboards(
    client: aioredis.Redis, policy: Policy, states: Iterable[tuple[MemberKey, MemberState]]
) -> int:
    """Place members on every leaderboard: one ZADD and one ZREM per board, one round trip."""
    adds: dict[str, dict[str, float]] = {}
    removes: dict[str, list[str]] = {}
    written = 0
    for (community, member), state in states:
        masses = damped_masses(policy, state)
        for dim, mass, rate in zip(DIMENSIONS, masses, policy.rates, strict=True):
            board = leaderboard_key(community, dim)
            value = rank_value(mass, rate, state.landmark)
            if value is None:
                removes.setdefault(board, []).append(member)
            else:
                adds.setdefault(board, {})[member] = value
        overall = score_at(policy, state, max(state.newest_time, 0.0))
        adds.setdefault(leaderboard_key(community, OVERALL), {})[member] = overall
        written += 1
    if written:
        async with client.pipeline(transaction=False) as pipe:
            for board, mapping in adds.items():
                pipe.zadd(board, mapping)
            for board, members in removes.items():
                pipe.zrem(board, *members)
            await pipe.execute()
    return written


async def delete_member(client: aioredis.Redis, community: str, member: str) -> None:
    """Take a member off every leaderboard (its state goes with the table's tombstone)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(member_key(community, member))
        for dim in (*DIMENSIONS, OVERALL):
            pipe.zrem(leaderboard_key(community, dim), member)
        await pipe.execute()


class ReadModel:
    """Member scores and leaderboards as the API serves them, from any worker."""

    def __init__(self, client: aioredis.Redis, policy: Policy, app_id: str, partitions: int):
        self.client = client
        self.policy = policy
        self.app_id = app_id
        self.partition_of = partitioner(partitions)
        self._engine = Engine(policy)

    def data_key(self, community: str, member: str) -> tuple[str, bytes]:
        """(Redis hash, field) that holds the member's state."""
        field = f"{community}/{member}".encode()
        return table_data_key(self.app_id, self.partition_of(field)), field

    async def state(self, community: str, member: str) -> MemberState | None:
        raw: Any = await self.client.hget(*self.data_key(community, member))
        return None if raw is None else decode_state(raw)

    def explain(self, key: MemberKey, state: MemberState, t: float) -> MemberScore:
        return self._engine.explain_state(key, state, t)

    async def member(self, community: str, member: str, t: float) -> MemberScore | None:
        state = await self.state(community, member)
        return None if state is None else self.explain((community, member), state, t)

    async def _states(self, community: str, members: list[str]) -> list[MemberState | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hget(*self.data_key(community, member))
            raws = await pipe.execute()
        return [None if raw is None else decode_state(raw) for raw in raws]

    async def leaderboard(
        self, community: str, dimension: str, t: float, limit: int, offset: int
    ) -> list[MemberScore]:
        """Members ranked by a dimension's current value, or by overall score at `t`."""
        if dimension == OVERALL:
            return await self._overall(community, t, limit, offset)
        board = leaderboard_key(community, dimension)
        found: Any = await self.client.zrevrange(board, offset, offset + limit - 1)
        members = [_text(m) for m in found]
        states = await self._states(community, members)
        return [
            self.explain((community, m), s, t)
            for m, s in zip(members, states, strict=True)
            if s is not None
        ]

    async def _overall(
        self, community: str, t: float, limit: int, offset: int
    ) -> list[MemberScore]:
        """Top members by score at `t`, reading the overall board from the top down.

        Without new events a score only decays, so a member's stored score (at its newest
        event) bounds its score at any later `t`: once `offset + limit` members score at `t`
        at least the next stored score, nobody further down can still rank among them.
        """
        board = leaderboard_key(community, OVERALL)
        wanted = offset + limit
        page = max(64, 2 * wanted)
        scored: list[tuple[float, str, MemberState]] = []
        start = 0
        while True:
            rows: Any = await self.client.zrevrange(board, start, start + page - 1, withscores=True)
            members = [_text(m) for m, _ in rows]
            for member, state in zip(members, await self._states(community, members), strict=True):
                if state is not None:
                    scored.append((score_at(self.policy, state, t), member, state))
            start += len(rows)
            if len(rows) < page:
                break
            scored.sort(key=lambda row: (-row[0], row[1]))
            if len(scored) >= wanted and scored[wanted - 1][0] >= rows[-1][1]:
                break
        scored.sort(key=lambda row: (-row[0], row[1]))
        return [self.explain((community, m), s, t) for _, m, s in scored[offset:wanted]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
