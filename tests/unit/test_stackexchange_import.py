"""Tests for the Stack Exchange `Posts.xml` importer."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from stream.contract import ActivityEvent
from stream.importers.stackexchange import ImportStats, convert_posts

REAL_DUMP = Path(__file__).resolve().parents[3] / "shared/data/beer-stackexchange/Posts.xml"

FIXTURE = """\ufeff<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="1" AcceptedAnswerId="3" CreationDate="2014-01-21T20:26:05.383"
       Score="5" OwnerUserId="7" Title="Citra?" />
  <row Id="2" PostTypeId="1" AcceptedAnswerId="5" CreationDate="2014-01-21T20:30:00.000"
       Score="0" OwnerUserId="8" />
  <row Id="3" PostTypeId="2" ParentId="1" CreationDate="2014-01-21T21:00:00.100" Score="3"
       OwnerUserId="9" Body="&lt;p&gt;An answer&lt;/p&gt;" />
  <row Id="4" PostTypeId="2" ParentId="1" CreationDate="2014-01-21T21:05:00.000" Score="2" />
  <row Id="5" PostTypeId="2" ParentId="2" CreationDate="2014-01-22T08:00:00.000" Score="-1"
       OwnerUserId="8" />
  <row Id="6" PostTypeId="2" ParentId="99" CreationDate="2014-01-22T09:00:00.000"
       OwnerUserId="9" />
  <row Id="7" PostTypeId="4" CreationDate="2014-01-22T10:00:00.000" OwnerUserId="7" />
  <row Id="8" PostTypeId="1" CreationDate="2014-01-23T10:00:00.000" Score="1" />
  <row Id="9" PostTypeId="2" ParentId="8" CreationDate="2014-01-23T11:00:00.000" Score="0"
       OwnerUserId="9" />
</posts>
"""


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "Posts.xml"
    path.write_text(FIXTURE, encoding="utf-8")
    return path


def _validate(event: dict[str, object]) -> ActivityEvent:
    return msgspec.json.decode(msgspec.json.encode(event), type=ActivityEvent)


def test_rows_map_to_events(dump: Path) -> None:
    common = {"community": "beer.stackexchange", "source": "forum"}
    assert list(convert_posts(dump)) == [
        {
            "id": "se-post-1",
            "type": "post.created",
            "actor": "u7",
            "time": "2014-01-21T20:26:05.383000+00:00",
            "attrs": {"score": 5},
            **common,
        },
        {
            "id": "se-post-2",
            "type": "post.created",
            "actor": "u8",
            "time": "2014-01-21T20:30:00+00:00",
            **common,
        },
        {
            "id": "se-post-3",
            "type": "reply.created",
            "actor": "u9",
            "target": "u7",
            "time": "2014-01-21T21:00:00.100000+00:00",
            "attrs": {"score": 3},
            **common,
        },
        {
            "id": "se-accept-3",
            "type": "answer.accepted",
            "actor": "u7",
            "target": "u9",
            "time": "2014-01-21T21:00:00.100000+00:00",
            **common,
        },
        {
            "id": "se-post-5",
            "type": "reply.created",
            "actor": "u8",
            "target": "u8",
            "time": "2014-01-22T08:00:00+00:00",
            **common,
        },
        {
            "id": "se-accept-5",
            "type": "answer.accepted",
            "actor": "u8",
            "target": "u8",
            "time": "2014-01-22T08:00:00+00:00",
            **common,
        },
        {
            "id": "se-post-9",
            "type": "reply.created",
            "actor": "u9",
            "time": "2014-01-23T11:00:00+00:00",
            **common,
        },
    ]


def test_stats_count_every_row(dump: Path) -> None:
    stats = ImportStats()
    events = list(convert_posts(dump, community="beer", stats=stats))
    assert stats == ImportStats(
        rows=9,
        questions=2,
        answers=3,
        accepted=2,
        self_answers=1,
        answers_without_asker=1,
        skipped_no_owner=2,
        skipped_unknown_question=1,
        skipped_other_type=1,
    )
    assert all(_validate(event).community == "beer" for event in events)


def test_events_stream_as_rows_are_read(dump: Path) -> None:
    stats = ImportStats()
    events = convert_posts(dump, stats=stats)
    assert stats.rows == 0
    assert next(events)["id"] == "se-post-1"
    assert stats.rows == 1


def test_real_beer_dump_imports_plausibly() -> None:
    if not REAL_DUMP.is_file():
        pytest.fail(f"real dump missing at {REAL_DUMP}: put a copy of shared/ beside the repo")
    stats = ImportStats()
    events = [_validate(event) for event in convert_posts(REAL_DUMP, stats=stats)]

    skipped = stats.skipped_no_owner + stats.skipped_unknown_question + stats.skipped_other_type
    assert stats.rows == 2_354
    assert stats.questions + stats.answers + skipped == stats.rows
    assert len(events) == stats.questions + stats.answers + stats.accepted
    assert len({event.id for event in events}) == len(events)
    assert 600 <= stats.questions <= 663
    assert 1_500 <= stats.answers <= 1_572
    assert 300 <= stats.accepted <= 410
    assert 0 < stats.self_answers < 0.05 * stats.answers
    assert len({event.actor for event in events}) > 100
    years = {event.time.year for event in events}
    assert min(years) == 2014
    assert max(years) == 2017
