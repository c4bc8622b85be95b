"""Right to erasure and data export for one member.

Erasure travels as a `MemberCommand` of kind "erase" on `hearth.credits`, keyed by the member,
so the worker that owns the member's partition applies it, in the order of that partition's
commands. There it deletes the member's table state (a changelog tombstone), its read model and
leaderboard entries, writes a tombstone to the compacted scores topic, and drops the member from
the decay schedule and the set of snapshots waiting to be published. Later events for the member
start a fresh state.

Not erased here (see the README): the input logs (`hearth.activity`, its dead letters,
`hearth.credits`, `hearth.edges`) and `hearth.score-changes` keep the member's id until their
retention expires, and the collusion graph held in memory by running workers keeps the member's
edges until the workers restart after `hearth.edges` has expired them.

Export reads only what Redis holds, so any worker answers it, whoever owns the member.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import Counter

from agents.commands import MemberCommand, command_encoder
from agents.read_model import OVERALL, ReadModel, delete_member, leaderboard_key, member_key
from agents.states import table_key
from scoring.policy import DIMENSIONS
from scoring.snapshot import SnapshotError, decode_state
from scoring.state import DayBucket, MemberState

if TYPE_CHECKING:
    from agents.service import Hearth

log = logging.getLogger(__name__)

# A snapshot or state record produced just before the erasure may still be on its way to Redis,
# the changelog or the scores topic (the publishing timer awaits between producing and sending).
# Erasing once more after the timer has had a few turns removes anything such a write put back.
REASSERT_AFTER_FLUSHES = 3
REASSERT_MIN_SECONDS = 1.0


class Erasures:
    """Per-worker erasure bookkeeping: the Prometheus counter and pending re-assertions."""

    def __init__(self, hearth: Hearth) -> None:
        self.count = 0
        self.counter = Counter(
            "hearth_erasures",
            "Members erased by this worker (DELETE /members/{community}/{member}).",
            registry=hearth.metrics.registry,
        )
        self.pending: set[asyncio.Task[None]] = set()

    def record(self) -> None:
        self.count += 1
        self.counter.inc()


_erasures: weakref.WeakKeyDictionary[Hearth, Erasures] = weakref.WeakKeyDictionary()


def erasures_of(hearth: Hearth) -> Erasures:
    """The erasure bookkeeping of `hearth`, created (and its counter registered) on first use."""
    found = _erasures.get(hearth)
    if found is None:
        found = _erasures[hearth] = Erasures(hearth)
    return found


def erase_command(community: str, member: str) -> MemberCommand:
    return MemberCommand("erase", community, member, time.time())


async def request_erasure(hearth: Hearth, community: str, member: str) -> MemberCommand:
    """Queue the erasure on the member's partition of the credits topic (its owner applies it)."""
    command = erase_command(community, member)
    await hearth.credits.send(key=command.key(), value=command_encoder.encode(command))
    return command


async def erase_member(hearth: Hearth, command: MemberCommand) -> None:
    """Apply an "erase" command on the worker that owns the member's partition."""
    key = (command.community, command.member)
    raw_key = table_key(key)
    # Deleting writes a tombstone even when no state is held: the changelog and the Redis table
    # end up without the key whatever a previous owner left behind.
    hearth.forget_member(key)
    await _erase_outputs(hearth, command.community, command.member, raw_key)
    erasures = erasures_of(hearth)
    erasures.record()
    log.info("erased a member")
    delay = max(
        REASSERT_MIN_SECONDS, REASSERT_AFTER_FLUSHES * hearth.settings.flush_interval_seconds
    )
    task = asyncio.get_running_loop().create_task(_reassert(hearth, key, raw_key, delay))
    erasures.pending.add(task)
    task.add_done_callback(erasures.pending.discard)


async def _erase_outputs(hearth: Hearth, community: str, member: str, raw_key: bytes) -> None:
    await delete_member(hearth.redis, community, member)
    await hearth.scores_topic.send(key=raw_key, value=None)


async def _reassert(hearth: Hearth, key: tuple[str, str], raw_key: bytes, delay: float) -> None:
    await asyncio.sleep(delay)
    if hearth.partition_of(raw_key) not in hearth._local or key in hearth.states:
        return  # another worker owns the member now, or new events gave it a fresh state
    try:
        # Again, in case a record of the old state was still queued when the first tombstone
        # left: the last changelog and scores records for the key must be tombstones.
        del hearth.states[key]
        await _erase_outputs(hearth, key[0], key[1], raw_key)
    except Exception:  # a worker shutting down may have closed its clients
        log.exception("could not re-assert an erasure")


# -- export ---------------------------------------------------------------------------------


def _bucket_dict(bucket: DayBucket) -> dict[str, Any]:
    return {
        "active": bucket.active,
        "counts": bucket.counts,
        "effective": bucket.effective,
        "counterpart_hashes": bucket.peers,
        "credited": bucket.credited,
        "event_id_hashes": sorted(bucket.ids),
        "times": bucket.times,
    }


def state_dict(state: MemberState) -> dict[str, Any]:
    """Every field of a member state, as JSON-ready builtins (counterparts are hashes)."""
    out: dict[str, Any] = {}
    for name in MemberState.__slots__:
        value = getattr(state, name)
        if name == "buckets":
            value = {day: _bucket_dict(b) for day, b in sorted(value.items())}
        out[name] = value
    builtins: dict[str, Any] = msgspec.to_builtins(out, str_keys=True)
    return builtins


def _text(value: bytes) -> str:
    return value.decode(errors="replace")


async def export_member(
    read_model: ReadModel, community: str, member: str
) -> dict[str, Any] | None:
    """Everything Redis holds about a member, or None when it holds nothing.

    The table state is read where the table store keeps it (the member's partition hash), so
    any worker answers. "read_model" is the per-member snapshot hash that earlier versions
    wrote (hearth:member:{community}:{member}), when one is left.
    """
    boards = [(d, leaderboard_key(community, d)) for d in (*DIMENSIONS, OVERALL)]
    async with read_model.client.pipeline(transaction=False) as pipe:
        pipe.hget(*read_model.data_key(community, member))
        pipe.hgetall(member_key(community, member))
        for _, board in boards:
            pipe.zscore(board, member)
        raw_state, legacy_hash, *ranks = await pipe.execute()
    leaderboards = {d: r for (d, _), r in zip(boards, ranks, strict=True) if r is not None}
    if raw_state is None and not legacy_hash and not leaderboards:
        return None
    return {
        "community": community,
        "member": member,
        "table_state": _decoded_state(raw_state),
        "read_model": _read_model(legacy_hash),
        "leaderboards": leaderboards,
    }


def _decoded_state(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return state_dict(decode_state(raw))
    except SnapshotError:
        return {"undecodable_bytes": len(raw)}


def _read_model(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    if not fields:
        return None
    out: dict[str, Any] = {}
    for name, value in fields.items():
        field = _text(name)
        if field == "snapshot":
            try:
                out[field] = msgspec.json.decode(value)
            except msgspec.DecodeError:
                out[field] = _text(value)
        else:
            out[field] = _text(value)
    return out
