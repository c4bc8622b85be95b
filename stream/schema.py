"""The event contract as a JSON Schema file for producers; `python -m stream.schema` rewrites it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from stream.contract import (
    CONTRACT_VERSION,
    MAX_ATTRS_BYTES,
    MAX_MESSAGE_BYTES,
    ActivityEvent,
)

SCHEMA_PATH = Path(__file__).parent / "schema" / f"activity-v{CONTRACT_VERSION}.json"

_DESCRIPTION = f"""\
One action by a member of a community, published as a UTF-8 JSON object (one per Kafka \
message, at most {MAX_MESSAGE_BYTES // 1024} KiB) to the topic hearth.activity with the key \
"community/actor". `type` must be an action type of the scoring policy's catalog; `time` must \
not be ahead of the receiver's clock by more than the allowed skew; `attrs` must encode to at \
most {MAX_ATTRS_BYTES // 1024} KiB of JSON. Unknown fields are ignored. A message that breaks \
any of these rules is not scored: it goes to hearth.activity.dlq with a reason code."""

_FIELDS = {
    "id": "Unique per event at its source; used for de-duplication.",
    "type": "Action type from the policy's catalog, e.g. post.created or answer.accepted.",
    "community": "The tenant; scores never mix communities. No '/' (the key separator).",
    "actor": "The member who did the action. No '/' (the key separator).",
    "time": "Event time, RFC 3339 with an offset ('Z' or '+02:00'); scoring never uses "
    "arrival time.",
    "target": "The other member involved in an interaction (who was answered, thanked, "
    "reacted to).",
    "source": "Where it happened: forum, chat, offline, twitter, ...",
    "attrs": "Free attributes (length, attendees, committee, ...), string keys.",
}


def activity_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of `ActivityEvent`, with the root definition inlined."""
    generated = msgspec.json.schema(ActivityEvent)
    defs: dict[str, Any] = dict(generated.get("$defs", {}))
    root: dict[str, Any] = dict(defs.pop(generated["$ref"].rsplit("/", 1)[-1]))
    root["title"] = f"Hearth activity event v{CONTRACT_VERSION}"
    root["description"] = _DESCRIPTION
    root["properties"] = {
        name: {**prop, "description": _FIELDS[name]} for name, prop in root["properties"].items()
    }
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
    if defs:
        schema["$defs"] = defs
    return schema


def render_schema() -> str:
    """The committed file's exact text: pretty-printed, sorted keys, trailing newline."""
    return json.dumps(activity_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_schema(), encoding="utf-8")
    return path


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    print(write_schema(target))


if __name__ == "__main__":
    main()
