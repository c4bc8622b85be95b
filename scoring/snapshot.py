"""Member state to bytes and back (MessagePack), for the Redis-backed table and its changelog."""

from __future__ import annotations

from typing import Any

import msgspec

from scoring.state import DayBucket, MemberState

FORMAT_VERSION = 1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class SnapshotError(ValueError):
    """Bytes that are not a member state of a known format version."""


def _bucket_out(b: DayBucket) -> list[Any]:
    return [b.active, b.counts, b.effective, b.peers, b.credited, list(b.ids), b.times]


def _bucket_in(raw: list[Any]) -> DayBucket:
    b = DayBucket()
    b.active, b.counts, b.effective, b.peers, b.credited, ids, b.times = raw
    b.ids = set(ids)
    return b


def encode_state(s: MemberState) -> bytes:
    return _encoder.encode(
        [
            FORMAT_VERSION,
            s.landmark,
            s.masses,
            {day: _bucket_out(b) for day, b in s.buckets.items()},
            s.newest_day,
            s.closed_day,
            s.newest_time,
            list(s.weeks),
            s.cadence,
            s.caps_hit,
            s.bursts,
            list(s.automation) if s.automation else None,
            list(s.collusion) if s.collusion else None,
            s.tier,
            s.emitted_score,
            s.seq,
            s.applied_offset,
        ]
    )


def decode_state(data: bytes) -> MemberState:
    try:
        raw = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not a member state: {exc}") from exc
    if not isinstance(raw, list) or not raw or raw[0] != FORMAT_VERSION:
        raise SnapshotError("unknown member state format")
    s = MemberState(landmark=raw[1])
    s.masses = raw[2]
    s.buckets = {day: _bucket_in(b) for day, b in raw[3].items()}
    s.newest_day, s.closed_day, s.newest_time = raw[4], raw[5], raw[6]
    s.weeks = tuple(raw[7])
    s.cadence, s.caps_hit, s.bursts = raw[8], raw[9], raw[10]
    s.automation = (raw[11][0], raw[11][1]) if raw[11] else None
    s.collusion = (raw[12][0], raw[12][1]) if raw[12] else None
    s.tier, s.emitted_score, s.seq, s.applied_offset = raw[13], raw[14], raw[15], raw[16]
    return s
