"""Tests for the synthetic community and bulk generators."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stream.contract import ActivityEvent
from stream.synthetic import (
    Archetype,
    generate_bulk,
    generate_community,
    write_jsonl,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 90
INTERACTIONS = {"thanks.given", "reaction.added"}

Event = dict[str, Any]


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return generate_community(start=START, days=DAYS)


def _members(events: list[Event], prefix: str) -> set[str]:
    return {event["actor"] for event in events if event["actor"].startswith(prefix)}


def _timestamps(events: list[Event], actor: str, kind: str) -> list[float]:
    return [
        datetime.fromisoformat(event["time"]).timestamp()
        for event in events
        if event["actor"] == actor and event["type"] == kind
    ]


def _gap_variation(times: list[float]) -> float:
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    return statistics.pstdev(gaps) / statistics.fmean(gaps)


def test_same_seed_gives_same_events_and_other_seeds_differ() -> None:
    first = generate_community(seed=3, start=START, days=14)
    assert first == generate_community(seed=3, start=START, days=14)
    assert first != generate_community(seed=4, start=START, days=14)


def test_ids_are_unique(events: list[Event]) -> None:
    assert len({event["id"] for event in events}) == len(events)


def test_every_event_matches_the_contract(events: list[Event]) -> None:
    for event in events:
        decoded = msgspec.json.decode(msgspec.json.encode(event), type=ActivityEvent)
        assert decoded.time.utcoffset() is not None
        assert event["time"].endswith("+00:00")


def test_events_are_sorted_by_time_within_the_window(events: list[Event]) -> None:
    times = [datetime.fromisoformat(event["time"]) for event in events]
    assert times == sorted(times)
    assert START <= times[0]
    assert (times[-1] - START).days < DAYS


def test_event_volume_ranks_bots_and_prolific_posters_above_helpers(events: list[Event]) -> None:
    volume = Counter(event["actor"] for event in events)
    noisy = _members(events, "bot-") | _members(events, "prolific-poster-")
    valuable = _members(events, "helper-") | _members(events, "organiser-")
    assert len(noisy) == 6
    assert len(valuable) == 8
    assert min(volume[member] for member in noisy) > max(volume[member] for member in valuable)


def test_bots_post_on_a_timer(events: list[Event]) -> None:
    for bot in _members(events, "bot-"):
        posts = _timestamps(events, bot, "post.created")
        assert len(posts) > 40 * DAYS
        assert _gap_variation(posts) < 0.05


def test_helpers_reply_in_bursts(events: list[Event]) -> None:
    for helper in _members(events, "helper-"):
        assert _gap_variation(_timestamps(events, helper, "reply.created")) > 0.5


def test_helpers_are_answered_accepted_and_thanked_by_many(events: list[Event]) -> None:
    for helper in _members(events, "helper-"):
        replied_to = {
            e["target"] for e in events if e["actor"] == helper and e["type"] == "reply.created"
        }
        received = [e for e in events if e.get("target") == helper]
        acceptors = {e["actor"] for e in received if e["type"] == "answer.accepted"}
        thankers = {e["actor"] for e in received if e["type"] == "thanks.given"}
        assert helper not in replied_to | acceptors | thankers
        assert len(replied_to) >= 10
        assert len(acceptors) >= 5
        assert len(thankers) >= 10


def test_humans_skip_days(events: list[Event]) -> None:
    for prefix in ("helper-", "regular-", "organiser-", "suggester-"):
        for member in _members(events, prefix):
            active_days = {e["time"][:10] for e in events if e["actor"] == member}
            assert len(active_days) < DAYS


def test_prolific_posts_are_almost_ignored(events: list[Event]) -> None:
    for poster in _members(events, "prolific-poster-"):
        posts = sum(1 for e in events if e["actor"] == poster and e["type"] == "post.created")
        answered = sum(
            1
            for e in events
            if e.get("target") == poster and e["type"] in {"reply.created", "reaction.added"}
        )
        assert posts > 15 * DAYS * 0.5
        assert answered < 0.05 * posts


def test_colluders_interact_only_inside_their_ring(events: list[Event]) -> None:
    ring = _members(events, "colluder-")
    assert len(ring) == 4
    given = [e for e in events if e["actor"] in ring and e["type"] in INTERACTIONS]
    received = [e for e in events if e.get("target") in ring]
    assert all(e["target"] in ring and e["target"] != e["actor"] for e in given)
    assert all(e["actor"] in ring for e in received)
    assert len(given) > 8 * len(ring) * DAYS * 0.8


def test_organisers_hold_events_that_others_attend(events: list[Event]) -> None:
    attendance = Counter(e["attrs"]["event"] for e in events if e["type"] == "event.attended")
    organized = [e for e in events if e["type"] == "event.organized"]
    for organiser in _members(events, "organiser-"):
        own = [e for e in organized if e["actor"] == organiser]
        meetings = _timestamps(events, organiser, "committee.meeting.attended")
        assert len(own) >= 5
        assert len(meetings) >= 9
    for event in organized:
        assert event["source"] == "offline"
        assert attendance[event["attrs"]["event"]] == event["attrs"]["attendees"] >= 8


def test_some_suggestions_are_adopted_by_organisers(events: list[Event]) -> None:
    adopted = [e for e in events if e["type"] == "suggestion.adopted"]
    assert adopted
    assert all(e["actor"].startswith("organiser-") for e in adopted)
    assert all(e["target"].startswith("suggester-") for e in adopted)


def test_counts_choose_the_members() -> None:
    counts = {Archetype.HELPER: 2, Archetype.REGULAR: 3, Archetype.BOT: 1}
    events = generate_community(start=START, days=20, counts=counts)
    actors = {event["actor"] for event in events}
    assert actors <= {"helper-01", "helper-02", "regular-01", "regular-02", "regular-03", "bot-01"}
    assert "bot-01" in actors


def test_a_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_community(start=datetime(2024, 3, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_bulk(seed=1, events=1, members=2, start=datetime(2024, 3, 1))  # noqa: DTZ001


def test_bulk_yields_exactly_n_valid_events_among_at_most_m_members() -> None:
    encoded = list(generate_bulk(seed=5, events=20_000, members=300, start=START, days=3))
    decoded = [msgspec.json.decode(raw, type=ActivityEvent) for raw in encoded]
    members = {e.actor for e in decoded} | {e.target for e in decoded if e.target is not None}
    assert len(decoded) == 20_000
    assert len(members) <= 300
    assert len({e.id for e in decoded}) == len(decoded)
    assert all(e.target != e.actor for e in decoded)
    assert len({e.type for e in decoded}) >= 10


def test_bulk_is_deterministic_and_roughly_time_ordered() -> None:
    encoded = list(generate_bulk(seed=9, events=5_000, members=50, start=START, days=2))
    assert encoded == list(generate_bulk(seed=9, events=5_000, members=50, start=START, days=2))
    times = [msgspec.json.decode(raw, type=ActivityEvent).time for raw in encoded]
    assert START <= min(times)
    assert (max(times) - START).total_seconds() < 2 * 86_400 + 60
    assert all((b - a).total_seconds() > -60 for a, b in zip(times, times[1:], strict=False))


def test_bulk_rejects_too_few_members() -> None:
    with pytest.raises(ValueError, match="members"):
        generate_bulk(seed=1, events=10, members=1, start=START)


def test_write_jsonl_writes_dicts_and_bytes(tmp_path: Path) -> None:
    community = generate_community(start=START, days=3)
    bulk = list(generate_bulk(seed=2, events=100, members=10, start=START))
    dict_path, bytes_path = tmp_path / "community.jsonl", tmp_path / "bulk.jsonl"
    assert write_jsonl(community, dict_path) == len(community)
    assert write_jsonl(bulk, bytes_path) == 100
    dict_lines = dict_path.read_bytes().splitlines()
    assert [msgspec.json.decode(line) for line in dict_lines] == community
    assert bytes_path.read_bytes().splitlines() == bulk
