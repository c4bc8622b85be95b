"""Event contract v1: the activity event every platform publishes, as a msgspec Struct."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

CONTRACT_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_ATTRS_BYTES = 4 * 1024

# Printable, no control characters, no "/" (the Kafka key separator between community and actor).
_ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$(?!\n)"
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$(?!\n)"

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_TEXT_PATTERN)]
ActionType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_TEXT_PATTERN)]
Community = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_ID_PATTERN)]
MemberId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_ID_PATTERN)]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_TEXT_PATTERN)]


class ActivityEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One action by a member of a community, as published to `hearth.activity`.

    `time` is the event time (RFC 3339 with an offset); scoring never uses arrival time.
    `target` is the other member involved in an interaction, if any.
    """

    id: EventId
    type: ActionType
    community: Community
    actor: MemberId
    time: Annotated[datetime, msgspec.Meta(tz=True)]
    target: MemberId | None = None
    source: Source | None = None
    attrs: dict[str, Any] | None = None

    def kafka_key(self) -> bytes:
        """The partitioning key: all of a member's events live on one partition."""
        return f"{self.community}/{self.actor}".encode()
