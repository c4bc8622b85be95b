"""The committed JSON Schema matches the contract and accepts what the contract accepts."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import msgspec
import pytest

from stream.contract import ActivityEvent
from stream.schema import SCHEMA_PATH, activity_schema, render_schema, write_schema

VALID: list[dict[str, Any]] = [
    {
        "id": "e1",
        "type": "post.created",
        "community": "rust-fr",
        "actor": "alice",
        "time": "2024-05-01T12:00:00+02:00",
    },
    {
        "id": "e2",
        "type": "answer.accepted",
        "community": "rust-fr",
        "actor": "bob",
        "target": "alice",
        "time": "2024-05-01T10:00:00Z",
        "source": "forum",
        "attrs": {"length": 420},
        "unknown_field": "ignored",
    },
]

INVALID: list[dict[str, Any]] = [
    {"id": "e3", "type": "post.created", "community": "rust-fr", "time": "2024-05-01T12:00:00Z"},
    {**VALID[0], "actor": "a/b"},
    {**VALID[0], "id": ""},
    {**VALID[0], "id": "line\nbreak"},
    {**VALID[0], "community": "c" * 65},
    {**VALID[0], "actor": 42},
    {**VALID[0], "attrs": ["not", "an", "object"]},
]

# The subset of JSON Schema the generated schema uses; an unknown keyword fails the test.
_ANNOTATIONS = {"title", "description", "default", "$schema"}


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    """A small validator for the keywords above (jsonschema is not a dependency)."""
    unknown = (
        set(schema)
        - _ANNOTATIONS
        - {
            "type",
            "properties",
            "required",
            "anyOf",
            "minLength",
            "maxLength",
            "pattern",
            "format",
        }
    )
    assert not unknown, f"extend the test validator for {unknown}"
    if "anyOf" in schema:
        return [] if any(not _errors(s, value) for s in schema["anyOf"]) else ["anyOf"]
    kind = {"string": str, "object": dict, "null": type(None)}[schema["type"]]
    if not isinstance(value, kind):
        return [f"not {schema['type']}"]
    errors = []
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append("length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append("pattern")
        if schema.get("format") == "date-time" and datetime.fromisoformat(value).tzinfo is None:
            errors.append("date-time")
    if isinstance(value, dict):
        errors += [f"missing {name}" for name in schema.get("required", []) if name not in value]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += [f"{name}: {e}" for e in _errors(sub, value[name])]
    return errors


def test_committed_file_is_current() -> None:
    assert SCHEMA_PATH.name == "activity-v1.json"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "stream/schema/activity-v1.json is stale: run `python -m stream.schema`"
    )


def test_rendering_is_sorted_pretty_json_with_trailing_newline(tmp_path: Any) -> None:
    text = write_schema(tmp_path / "s.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_schema_describes_the_v1_contract() -> None:
    schema = activity_schema()
    assert schema["title"] == "Hearth activity event v1"
    assert "community/actor" in schema["description"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["required"] == ["id", "type", "community", "actor", "time"]
    assert set(schema["properties"]) == set(ActivityEvent.__struct_fields__)
    assert all(prop["description"] for prop in schema["properties"].values())
    assert schema["properties"]["time"]["format"] == "date-time"
    assert schema["properties"]["actor"]["maxLength"] == 128
    assert "$defs" not in schema and "$ref" not in schema


@pytest.mark.parametrize("event", VALID)
def test_valid_events_pass_schema_and_contract(event: dict[str, Any]) -> None:
    assert _errors(activity_schema(), event) == []
    msgspec.json.decode(msgspec.json.encode(event), type=ActivityEvent)


@pytest.mark.parametrize("event", INVALID)
def test_invalid_events_fail_schema_and_contract(event: dict[str, Any]) -> None:
    assert _errors(activity_schema(), event) != []
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(event), type=ActivityEvent)


def test_jsonschema_validator_agrees() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(activity_schema())
    assert [validator.is_valid(e) for e in VALID + INVALID] == [True] * 2 + [False] * 7


def test_contract_rejects_trailing_newline_like_the_schema() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            msgspec.json.encode({**VALID[0], "actor": "alice\n"}), type=ActivityEvent
        )
