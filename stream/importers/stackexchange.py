"""Stack Exchange data-dump importer: turns the rows of `Posts.xml` into v1 activity events.

Mapping, one event per kept row plus one per accepted answer (all with source "forum"):

* question (PostTypeId 1) -> `post.created` by its owner, id "se-post-<Id>";
* answer (PostTypeId 2) -> `reply.created` by the answerer, target the question's owner,
  id "se-post-<Id>";
* accepted answer -> `answer.accepted` by the question's owner, target the answerer,
  id "se-accept-<Id>".

A post's positive Score goes into its event's attrs as {"score": n}: the dump does not say who
voted, so no reaction events are made up. Other post types (tag wikis and their excerpts,
privilege wikis) carry no member-to-member activity and are skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SOURCE = "forum"
_QUESTION = "1"
_ANSWER = "2"


@dataclass(slots=True)
class ImportStats:
    """What `convert_posts` did with the rows it read; updated as its iterator advances.

    Every row lands in exactly one of questions, answers and the skipped_* counts. Answers to a
    question whose owner was deleted are kept, without a target, and also counted in
    answers_without_asker; self-answers are kept and also counted in self_answers.
    """

    rows: int = 0
    questions: int = 0
    answers: int = 0
    accepted: int = 0
    self_answers: int = 0
    answers_without_asker: int = 0
    skipped_no_owner: int = 0
    skipped_unknown_question: int = 0
    skipped_other_type: int = 0


@dataclass(frozen=True, slots=True)
class _Question:
    owner: str | None
    accepted_answer: str | None


def convert_posts(
    path: Path,
    *,
    community: str = "beer.stackexchange",
    stats: ImportStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the v1 events (JSON-ready dicts) of a `Posts.xml` dump, in file order.

    The dump is ordered by post Id, which is roughly but not strictly time order. Only a map of
    question Id to owner and accepted answer is held in memory; answers always follow their
    question in the dump, so an answer whose question was not seen is skipped. Rows without an
    OwnerUserId belong to deleted users and are skipped. The dump has no acceptance time, so an
    `answer.accepted` event carries the accepted answer's CreationDate.

    Pass `stats` to have it filled in as the events are produced.
    """
    counts = ImportStats() if stats is None else stats
    questions: dict[str, _Question] = {}
    for row in _rows(path):
        counts.rows += 1
        kind = row.get("PostTypeId")
        if kind == _QUESTION:
            yield from _question_events(row, questions, community, counts)
        elif kind == _ANSWER:
            yield from _answer_events(row, questions, community, counts)
        else:
            counts.skipped_other_type += 1


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open("rb") as dump:
        # The dump is a local file handed to us, not untrusted input, and defusedxml is not
        # available; stdlib iterparse streams it without building the whole tree.
        parser = ET.iterparse(dump, events=("start", "end"))  # noqa: S314
        _, root = next(parser)
        for event, element in parser:
            if event == "end" and element.tag == "row":
                yield dict(element.attrib)
                root.clear()  # drop parsed rows so memory stays flat on large dumps


def _question_events(
    row: dict[str, str], questions: dict[str, _Question], community: str, stats: ImportStats
) -> list[dict[str, Any]]:
    post_id = _required(row, "Id")
    owner = _owner(row)
    # Remember the question even without an owner, so its answers are not mistaken for orphans.
    questions[post_id] = _Question(owner, row.get("AcceptedAnswerId"))
    if owner is None:
        stats.skipped_no_owner += 1
        return []
    stats.questions += 1
    post = _event(f"se-post-{post_id}", "post.created", community, owner, _time(row))
    return [_with_score(post, row)]


def _answer_events(
    row: dict[str, str], questions: dict[str, _Question], community: str, stats: ImportStats
) -> list[dict[str, Any]]:
    post_id = _required(row, "Id")
    answerer = _owner(row)
    if answerer is None:
        stats.skipped_no_owner += 1
        return []
    question = questions.get(row.get("ParentId", ""))
    if question is None:
        stats.skipped_unknown_question += 1
        return []
    stats.answers += 1
    asker, time = question.owner, _time(row)
    reply = _event(f"se-post-{post_id}", "reply.created", community, answerer, time, asker)
    events = [_with_score(reply, row)]
    if asker is None:
        stats.answers_without_asker += 1
        return events
    if asker == answerer:
        stats.self_answers += 1
    if question.accepted_answer == post_id:
        stats.accepted += 1
        accept_id = f"se-accept-{post_id}"
        events.append(_event(accept_id, "answer.accepted", community, asker, time, answerer))
    return events


def _event(
    event_id: str, kind: str, community: str, actor: str, time: str, target: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "type": kind,
        "community": community,
        "actor": actor,
        "time": time,
        "source": SOURCE,
    }
    if target is not None:
        event["target"] = target
    return event


def _with_score(event: dict[str, Any], row: dict[str, str]) -> dict[str, Any]:
    score = int(row.get("Score", "0"))
    if score > 0:
        event["attrs"] = {"score": score}
    return event


def _required(row: dict[str, str], name: str) -> str:
    value = row.get(name)
    if value is None:
        raise ValueError(f"post row {row.get('Id', '?')} has no {name}")
    return value


def _owner(row: dict[str, str]) -> str | None:
    owner = row.get("OwnerUserId")
    return None if owner is None else f"u{owner}"


def _time(row: dict[str, str]) -> str:
    # Dump times are UTC without an offset; the contract wants the offset spelled out.
    created = datetime.fromisoformat(_required(row, "CreationDate"))
    return created.replace(tzinfo=UTC).isoformat()
