"""Decoding and validating raw activity messages; anything invalid becomes a dead letter."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

import msgspec

from stream.contract import MAX_ATTRS_BYTES, MAX_MESSAGE_BYTES, ActivityEvent


class Reason(StrEnum):
    """Why a message was dead-lettered (bounded: safe as a metric label)."""

    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema_violation"
    UNKNOWN_TYPE = "unknown_type"
    ATTRS_TOO_LARGE = "attrs_too_large"
    FUTURE_TIME = "future_time"
    TOO_LATE = "too_late"


# JSON nested deeper than the interpreter's recursion limit cannot be decoded (nor checked).
_TOO_DEEP = "JSON nested too deeply to decode"


class DeadLetter(msgspec.Struct, frozen=True):
    """A rejected message with its reason; `raw` is kept so nothing vanishes."""

    reason: Reason
    detail: str
    raw: bytes


class EventDecoder:
    """Turns raw bytes into a valid `ActivityEvent` or a `DeadLetter`.

    `known_types` is the policy's catalog; `future_skew` is how far past `now` an event
    time may be (clocks at the source drift).
    """

    def __init__(self, known_types: Collection[str], future_skew: float) -> None:
        self._decoder = msgspec.json.Decoder(ActivityEvent)
        self._known = frozenset(known_types)
        self._skew = future_skew
        self._attrs_encoder = msgspec.json.Encoder()

    def decode(self, raw: bytes, now: float) -> ActivityEvent | DeadLetter:
        if len(raw) > MAX_MESSAGE_BYTES:
            return DeadLetter(Reason.TOO_LARGE, f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}", raw)
        try:
            event = self._decoder.decode(raw)
        except UnicodeDecodeError as exc:
            return DeadLetter(Reason.INVALID_UTF8, str(exc), raw)
        except msgspec.ValidationError as exc:
            return self._schema_or_syntax(raw, exc)
        except msgspec.DecodeError as exc:
            return DeadLetter(Reason.INVALID_JSON, str(exc), raw)
        except RecursionError:
            return DeadLetter(Reason.INVALID_JSON, _TOO_DEEP, raw)
        return self.check(event, raw, now)

    def _schema_or_syntax(self, raw: bytes, violation: msgspec.ValidationError) -> DeadLetter:
        """The typed decoder may reject the shape before it reaches a syntax error: look again."""
        try:
            msgspec.json.decode(raw)
        except UnicodeDecodeError as exc:  # bytes the typed decoder skipped: a field name, a time
            return DeadLetter(Reason.INVALID_UTF8, str(exc), raw)
        except msgspec.DecodeError as syntax:
            return DeadLetter(Reason.INVALID_JSON, str(syntax), raw)
        except RecursionError:
            return DeadLetter(Reason.INVALID_JSON, _TOO_DEEP, raw)
        return DeadLetter(Reason.SCHEMA, str(violation), raw)

    def check(self, event: ActivityEvent, raw: bytes, now: float) -> ActivityEvent | DeadLetter:
        """Rules the schema cannot express: catalog membership, attrs size, clock skew."""
        if event.type not in self._known:
            return DeadLetter(Reason.UNKNOWN_TYPE, f"type {event.type!r} is not in the policy", raw)
        if event.attrs and len(self._attrs_encoder.encode(event.attrs)) > MAX_ATTRS_BYTES:
            return DeadLetter(Reason.ATTRS_TOO_LARGE, f"attrs over {MAX_ATTRS_BYTES} bytes", raw)
        if event.time.timestamp() > now + self._skew:
            return DeadLetter(
                Reason.FUTURE_TIME, f"time {event.time.isoformat()} is ahead of now", raw
            )
        return event
