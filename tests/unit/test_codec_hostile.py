"""Hostile bytes the fuzz test found: the decoder turns them into dead letters, never raises.

Both used to escape `EventDecoder.decode` and crash the scoring agent: invalid UTF-8 that the
typed decoder skips but the syntax re-check reads (a field name, a time string), and JSON
nested deeper than the decoder's recursion limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from scoring.policy import load_policy
from stream.codec import DeadLetter, EventDecoder, Reason

NOW = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
EVENT = {
    "id": "e1",
    "type": "post.created",
    "community": "demo",
    "actor": "ann",
    "time": "2026-01-20T10:00:00Z",
}


@pytest.fixture(scope="module")
def decoder() -> EventDecoder:
    policy = load_policy(None)
    return EventDecoder(policy.rules, policy.spec.future_skew_seconds)


def verdict(decoder: EventDecoder, raw: bytes) -> Reason:
    result = decoder.decode(raw, NOW)
    assert isinstance(result, DeadLetter), result
    assert result.raw == raw and result.detail
    return result.reason


def raw_event() -> bytes:
    return json.dumps(EVENT).encode()


@pytest.mark.parametrize("name", ["id", "type", "community", "actor", "time"])
def test_invalid_utf8_in_a_required_field_name_is_invalid_utf8(
    decoder: EventDecoder, name: str
) -> None:
    raw = raw_event().replace(f'"{name}"'.encode(), f'"{name[0]}\xff{name[1:]}"'.encode("latin-1"))
    assert verdict(decoder, raw) is Reason.INVALID_UTF8


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_invalid_utf8_inside_the_time_is_invalid_utf8(decoder: EventDecoder, bad: bytes) -> None:
    raw = raw_event().replace(b"2026-01-20T", b"2026-01-20" + bad)
    assert verdict(decoder, raw) is Reason.INVALID_UTF8


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,  # well-formed, but not an object
        b"[" * 5000,  # and truncated
        b'{"attrs": ' + b'{"a": [' * 2000,
        raw_event()[:-1] + b', "attrs": {"deep": ' + b"[" * 3000 + b"]" * 3000 + b"}}",
    ],
    ids=["array", "unclosed array", "unclosed attrs", "deep attrs"],
)
def test_json_nested_past_the_decoders_limit_is_invalid_json(
    decoder: EventDecoder, raw: bytes
) -> None:
    assert verdict(decoder, raw) is Reason.INVALID_JSON


def test_nesting_within_the_limit_is_still_accepted(decoder: EventDecoder) -> None:
    attrs: dict[str, object] = {"leaf": 1}
    for _ in range(100):
        attrs = {"n": attrs}
    result = decoder.decode(json.dumps({**EVENT, "attrs": attrs}).encode(), NOW)
    assert not isinstance(result, DeadLetter), result
    assert result.attrs == attrs


def test_invalid_utf8_in_an_unknown_field_is_ignored_like_the_field(decoder: EventDecoder) -> None:
    raw = raw_event()[:-1] + b', "x_note": "a\xffb"}'
    result = decoder.decode(raw, NOW)
    assert not isinstance(result, DeadLetter), result
    assert result.id == "e1"
