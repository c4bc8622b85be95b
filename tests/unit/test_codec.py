"""Decoding raw activity messages: every kind of bad input becomes a dead letter with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from scoring.policy import load_policy
from stream.codec import DeadLetter, EventDecoder, Reason
from stream.contract import MAX_ATTRS_BYTES, MAX_MESSAGE_BYTES, ActivityEvent

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()
SKEW = 300.0
VALID: dict[str, Any] = {
    "id": "evt-1",
    "type": "answer.accepted",
    "community": "rust-fr",
    "actor": "bob",
    "target": "alice",
    "time": "2024-06-01T11:00:00+02:00",
    "source": "forum",
    "attrs": {"length": 420},
}


@pytest.fixture(scope="module")
def decoder() -> EventDecoder:
    return EventDecoder(load_policy().rules, SKEW)


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def dead(decoder: EventDecoder, raw: bytes) -> DeadLetter:
    result = decoder.decode(raw, NOW)
    assert isinstance(result, DeadLetter), result
    assert result.raw == raw
    assert result.detail
    return result


def test_a_valid_event_decodes(decoder: EventDecoder) -> None:
    event = decoder.decode(encode(VALID), NOW)
    assert isinstance(event, ActivityEvent)
    assert (event.id, event.type, event.community, event.actor, event.target) == (
        "evt-1",
        "answer.accepted",
        "rust-fr",
        "bob",
        "alice",
    )
    assert event.time == datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(hours=2)
    assert event.source == "forum" and event.attrs == {"length": 420}
    assert event.kafka_key() == b"rust-fr/bob"


def test_minimal_event_decodes_and_unknown_fields_are_ignored(decoder: EventDecoder) -> None:
    minimal = {k: VALID[k] for k in ("id", "type", "community", "actor", "time")}
    event = decoder.decode(encode({**minimal, "type": "session.started", "extra": [1]}), NOW)
    assert isinstance(event, ActivityEvent)
    assert event.target is None and event.source is None and event.attrs is None


def test_unicode_text_is_fine(decoder: EventDecoder) -> None:
    event = decoder.decode(encode({**VALID, "actor": "zoë 🦀", "community": "café"}), NOW)
    assert isinstance(event, ActivityEvent) and event.actor == "zoë 🦀"


def test_too_large(decoder: EventDecoder) -> None:
    raw = encode({**VALID, "attrs": {"pad": "x" * MAX_MESSAGE_BYTES}})
    assert dead(decoder, raw).reason is Reason.TOO_LARGE
    assert dead(decoder, b" " * (MAX_MESSAGE_BYTES + 1)).reason is Reason.TOO_LARGE


def test_exactly_the_size_limit_is_not_too_large(decoder: EventDecoder) -> None:
    raw = encode(VALID)
    raw = raw + b" " * (MAX_MESSAGE_BYTES - len(raw))
    assert len(raw) == MAX_MESSAGE_BYTES
    assert isinstance(decoder.decode(raw, NOW), ActivityEvent)


@pytest.mark.parametrize(
    "raw",
    [
        encode(VALID).replace(b"bob", b"b\xffb"),
        encode(VALID).replace(b"alice", b"al\xc3"),  # truncated multi-byte sequence
        encode(VALID).replace(b"forum", b"\xed\xa0\x80"),  # encoded surrogate
    ],
)
def test_invalid_utf8(decoder: EventDecoder, raw: bytes) -> None:
    assert dead(decoder, raw).reason is Reason.INVALID_UTF8


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{", b'{"id": "x",}', b"", b"\xff\xfe\x00", b'{"id":"e\\ud800"}', b"NaN"],
)
def test_invalid_json(decoder: EventDecoder, raw: bytes) -> None:
    assert dead(decoder, raw).reason is Reason.INVALID_JSON


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != field}


SCHEMA_VIOLATIONS = {
    "missing id": _without("id"),
    "missing type": _without("type"),
    "missing community": _without("community"),
    "missing actor": _without("actor"),
    "missing time": _without("time"),
    "id not a string": {**VALID, "id": 17},
    "time a number": {**VALID, "time": 1717236000},
    "attrs a list": {**VALID, "attrs": [1, 2]},
    "target not a string": {**VALID, "target": ["alice"]},
    "time without offset": {**VALID, "time": "2024-06-01T11:00:00"},
    "time not a date": {**VALID, "time": "yesterday"},
    "impossible date": {**VALID, "time": "2024-02-30T00:00:00Z"},
    "id with control char": {**VALID, "id": "evt\x07-1"},
    "id with newline": {**VALID, "id": "evt\n1"},
    "empty id": {**VALID, "id": ""},
    "id too long": {**VALID, "id": "x" * 129},
    "actor with slash": {**VALID, "actor": "bob/evil"},
    "target with slash": {**VALID, "target": "a/b"},
    "community with slash": {**VALID, "community": "rust/fr"},
    "actor with DEL": {**VALID, "actor": "bob\x7f"},
    "empty actor": {**VALID, "actor": ""},
}


@pytest.mark.parametrize("event", SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys())
def test_schema_violation(decoder: EventDecoder, event: dict[str, Any]) -> None:
    assert dead(decoder, encode(event)).reason is Reason.SCHEMA


def test_schema_violation_names_the_field(decoder: EventDecoder) -> None:
    assert "$.actor" in dead(decoder, encode({**VALID, "actor": "a/b"})).detail
    assert "actor" in dead(decoder, encode(_without("actor"))).detail
    assert "$.time" in dead(decoder, encode({**VALID, "time": "2024-06-01T11:00:00"})).detail


def test_a_json_array_is_a_schema_violation(decoder: EventDecoder) -> None:
    assert dead(decoder, b"[1, 2]").reason is Reason.SCHEMA


@pytest.mark.parametrize("kind", ["post.deleted", "POST.CREATED", "post.created ", "x"])
def test_unknown_type(decoder: EventDecoder, kind: str) -> None:
    letter = dead(decoder, encode({**VALID, "type": kind}))
    assert letter.reason is Reason.UNKNOWN_TYPE
    assert repr(kind) in letter.detail


def test_attrs_too_large(decoder: EventDecoder) -> None:
    big = {"text": "y" * MAX_ATTRS_BYTES}
    assert dead(decoder, encode({**VALID, "attrs": big})).reason is Reason.ATTRS_TOO_LARGE
    fits = {"text": "y" * (MAX_ATTRS_BYTES - len(b'{"text":""}'))}
    assert len(msgspec.json.encode(fits)) == MAX_ATTRS_BYTES
    assert isinstance(decoder.decode(encode({**VALID, "attrs": fits}), NOW), ActivityEvent)


def test_future_time(decoder: EventDecoder) -> None:
    ahead = datetime.fromtimestamp(NOW + SKEW + 1, UTC).isoformat()
    assert dead(decoder, encode({**VALID, "time": ahead})).reason is Reason.FUTURE_TIME
    within = datetime.fromtimestamp(NOW + SKEW, UTC).isoformat()
    assert isinstance(decoder.decode(encode({**VALID, "time": within}), NOW), ActivityEvent)
    # the offset is honoured: 13:04 at +01:00 is 12:04 UTC, within the skew
    east = datetime.fromtimestamp(NOW + 240, timezone(timedelta(hours=1))).isoformat()
    assert isinstance(decoder.decode(encode({**VALID, "time": east}), NOW), ActivityEvent)


def test_the_known_types_come_from_the_decoder_argument() -> None:
    decoder = EventDecoder(["custom.thing"], SKEW)
    assert isinstance(decoder.decode(encode({**VALID, "type": "custom.thing"}), NOW), ActivityEvent)
    assert dead(decoder, encode(VALID)).reason is Reason.UNKNOWN_TYPE


def test_reasons_are_bounded_labels() -> None:
    assert {r.value for r in Reason} == {
        "too_large",
        "invalid_utf8",
        "invalid_json",
        "schema_violation",
        "unknown_type",
        "attrs_too_large",
        "future_time",
        "too_late",
    }
