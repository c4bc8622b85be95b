"""What the table stores (and the export shows) about a member's counterparts: hashes only."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from agents.erasure import state_dict
from agents.service import Hearth
from agents.settings import Settings
from scoring.engine import Engine
from scoring.policy import Policy
from scoring.snapshot import decode_state, encode_state

COMMUNITY = "forum"
HELPER = "helper-in-question"
# Ids no hash, number or policy name could contain by accident.
COUNTERPARTS = ["Zebra-Counterpart-4711", "Quokka-Counterpart-0815", "Narwhal-Counterpart-2342"]
EVENT_PREFIX = "evt-Pangolin-"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp()


def _engine(policy: Policy) -> Engine:
    engine = Engine(policy, salt=987654321)
    n = 0
    for day in range(3):
        for i, other in enumerate(COUNTERPARTS):
            t = T0 + day * 86400 + i * 600
            for action, actor, target in (
                ("reply.created", other, HELPER),
                ("answer.accepted", other, HELPER),
                ("thanks.given", HELPER, other),
                ("reaction.added", other, HELPER),
            ):
                n += 1
                engine.apply(f"{EVENT_PREFIX}{n}", action, COMMUNITY, actor, t + n, target)
    return engine


def test_encoded_states_hold_no_counterpart_or_event_id(default_policy: Policy) -> None:
    engine = _engine(default_policy)
    members = [HELPER, *COUNTERPARTS]
    for member in members:
        state = engine.states[(COMMUNITY, member)]
        raw = encode_state(state)
        # The interactions were recorded per counterpart (as hashes), so the check is not vacuous.
        assert any(b.peers for b in state.buckets.values()), member
        for other in members:
            for form in (other, other.lower(), other.encode().hex()):
                assert form.encode() not in raw, (member, other)
        assert EVENT_PREFIX.encode() not in raw
        assert decode_state(raw).masses == state.masses


def test_export_of_a_state_shows_hashes_not_ids(default_policy: Policy) -> None:
    state = _engine(default_policy).states[(COMMUNITY, HELPER)]
    exported = json.dumps(state_dict(state))
    for other in COUNTERPARTS:
        assert other not in exported
    assert EVENT_PREFIX not in exported
    days = state_dict(state)["buckets"]
    assert days and all("counterpart_hashes" in day for day in days.values())
    assert any(day["counterpart_hashes"] for day in days.values())


def test_export_reads_the_hash_the_table_store_writes(tmp_path: Path) -> None:
    hearth = Hearth(Settings(app_id="unit-export", data_dir=tmp_path))
    try:
        store = hearth.table.data
        raw_key = b"forum/someone"
        redis_hash, field = hearth.read_model.data_key("forum", "someone")
        assert field == raw_key
        partition = hearth.partition_of(raw_key)
        assert redis_hash == store.data_key(partition)
    finally:
        asyncio.run(hearth.redis.aclose())
