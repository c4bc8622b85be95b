"""The OpenAPI document of the worker's HTTP API (served at /openapi.json).

It describes the worker as configured: with HEARTH_READ_TOKEN set, the read endpoints carry a
security requirement; without it they are open. Path parameters follow the event contract's
id rules (stream/contract.py), so what the document allows the worker accepts.
"""

from __future__ import annotations

from typing import Any

from scoring.policy import DIMENSIONS

# The contract's pattern (stream/contract.py): no control characters, no "/", no final newline.
_ID_PATTERN = "^[^\\x00-\\x1f\\x7f/]+$(?!\\n)"
COMMUNITY = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _ID_PATTERN}
MEMBER = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _ID_PATTERN}
MAX_BODY_BYTES = 64 * 1024


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, "Error")


_UNAUTHORIZED = {
    **_error("missing or wrong bearer token"),
    "headers": {
        "WWW-Authenticate": {
            "description": "the Bearer challenge (RFC 6750)",
            "schema": {"type": "string"},
        }
    },
}
_TOO_LARGE = _error(f"request body over {MAX_BODY_BYTES} bytes")
_BAD = _error("bad parameter (path ids follow the event contract's rules)")
_ADMIN_OFF = _error("no admin token is configured on this worker (HEARTH_ADMIN_TOKEN)")

_AS_OF = {
    "name": "as_of",
    "in": "query",
    "required": False,
    "description": "RFC 3339 time with offset; default now. A time so far before the member's "
    "data that its decayed values cannot be evaluated answers 400.",
    "schema": {"type": "string", "format": "date-time"},
}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_MEMBER_PATH = [_path("community", COMMUNITY), _path("member", MEMBER)]
_NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _schemas() -> dict[str, Any]:
    return {
        "Error": _object(["error"], {"error": {"type": "string"}}),
        "ActionContribution": _object(
            ["action", "role", "value"],
            {
                "action": {"type": "string"},
                "role": {"type": "string", "enum": ["given", "received"]},
                "value": {"type": "number"},
            },
        ),
        "Damping": _object(
            ["reason", "factor", "detail"],
            {
                "reason": {"type": "string"},
                "factor": {"type": "number"},
                "detail": {"type": "string"},
            },
        ),
        "MemberScore": _object(
            [
                "community",
                "member",
                "as_of",
                "score",
                "tier",
                "dimensions",
                "flags",
                "top_actions",
                "caps_hit",
                "damping",
                "landmark",
                "masses",
            ],
            {
                "community": {"type": "string"},
                "member": {"type": "string"},
                "as_of": {"type": "string", "format": "date-time"},
                "score": {"type": "number", "minimum": 0, "maximum": 100},
                "tier": {"type": "string"},
                "dimensions": _NUMBERS,
                "flags": {"type": "array", "items": {"type": "string"}},
                "top_actions": {"type": "array", "items": _ref("ActionContribution")},
                "caps_hit": {"type": "object", "additionalProperties": {"type": "integer"}},
                "damping": {"type": "array", "items": _ref("Damping")},
                "landmark": {"type": "number"},
                "masses": _NUMBERS,
            },
        ),
        "Leaderboard": _object(
            ["dimension", "offset", "members"],
            {
                "dimension": {"type": "string", "enum": ["overall", *DIMENSIONS]},
                "offset": {"type": "integer", "minimum": 0},
                "members": {"type": "array", "items": _ref("MemberScore")},
            },
        ),
        "ErasureAccepted": _object(
            ["status", "community", "member"],
            {
                "status": {"type": "string", "enum": ["accepted"]},
                "community": {"type": "string"},
                "member": {"type": "string"},
            },
        ),
        "MemberExport": _object(
            ["community", "member", "table_state", "read_model", "leaderboards"],
            {
                "community": {"type": "string"},
                "member": {"type": "string"},
                "table_state": {
                    "type": "object",
                    "nullable": True,
                    "description": "the decoded member state of the table (counterparts and "
                    "event ids appear only as salted hashes)",
                },
                "read_model": {
                    "type": "object",
                    "nullable": True,
                    "description": "the per-member snapshot hash earlier versions wrote "
                    "(hearth:member:{community}:{member}), when one is left",
                },
                "leaderboards": {
                    "description": "the member's entry (zset score) on each leaderboard",
                    **_NUMBERS,
                },
            },
        ),
        "Health": _object(["status"], {"status": {"type": "string", "enum": ["ok"]}}),
        "Ready": _object(
            ["ready", "problems"],
            {
                "ready": {"type": "boolean"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        ),
        "Stats": _object(
            ["consumed", "outcomes", "dead_letters", "score_changes", "erasures", "members"],
            {
                "consumed": {"type": "integer"},
                "outcomes": {"type": "object", "additionalProperties": {"type": "integer"}},
                "dead_letters": {"type": "object", "additionalProperties": {"type": "integer"}},
                "score_changes": {"type": "object", "additionalProperties": {"type": "integer"}},
                "skipped_offsets": {"type": "integer"},
                "erasures": {"type": "integer"},
                "members": {"type": "integer"},
                "state_bytes": {"type": "integer"},
                "watermark": {"type": "number", "nullable": True},
                "store": {"type": "object"},
                "collusion_graph": {
                    "type": "object",
                    "properties": {
                        "edges": {"type": "integer"},
                        "first_day": {"type": "integer", "nullable": True},
                    },
                },
            },
        ),
    }


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary}
    if parameters:
        operation["parameters"] = parameters
    # Every route refuses oversized bodies, whatever the method.
    operation["responses"] = {**responses, "413": _TOO_LARGE}
    operation["security"] = security or []
    return operation


def openapi_document(version: str, *, read_protected: bool = False) -> dict[str, Any]:
    admin: list[dict[str, list[str]]] = [{"admin_token": []}]
    # Either token opens the read endpoints; an empty list would mean "no auth needed".
    read: list[dict[str, list[str]]] = (
        [{"read_token": []}, {"admin_token": []}] if read_protected else []
    )
    read_refusals = {"401": _UNAUTHORIZED} if read_protected else {}
    admin_refusals = {"401": _UNAUTHORIZED, "403": _ADMIN_OFF}
    leaderboard_params = [
        _path("community", COMMUNITY),
        _AS_OF,
        {
            "name": "dimension",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["overall", *DIMENSIONS]},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 500, "default": 20},
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0},
        },
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Hearth worker API",
            "version": version,
            "description": "Every worker serves this API on its web port. /healthz, /readyz, "
            "/metrics, /stats and /openapi.json are open; the read endpoints need "
            "HEARTH_READ_TOKEN when it is set; the admin endpoints need HEARTH_ADMIN_TOKEN.",
        },
        "components": {
            "securitySchemes": {
                "admin_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HEARTH_ADMIN_TOKEN; also accepted by the read endpoints",
                },
                "read_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HEARTH_READ_TOKEN",
                },
            },
            "schemas": _schemas(),
        },
        "paths": {
            "/members/{community}/{member}": {
                "get": _operation(
                    "A member's score with its explanation, at as_of",
                    {
                        "200": _json("the score", "MemberScore"),
                        "400": _BAD,
                        **read_refusals,
                        "404": _error("no such member"),
                    },
                    parameters=[*_MEMBER_PATH, _AS_OF],
                    security=read,
                ),
                "delete": _operation(
                    "Erase a member: state, read model, leaderboards, tombstone on hearth.scores "
                    "(applied asynchronously by the worker that owns the member)",
                    {
                        "202": _json("erasure queued", "ErasureAccepted"),
                        "400": _BAD,
                        **admin_refusals,
                    },
                    parameters=_MEMBER_PATH,
                    security=admin,
                ),
            },
            "/members/{community}/{member}/export": {
                "get": _operation(
                    "Everything stored about a member (table state, read model, leaderboards)",
                    {
                        "200": _json("the export", "MemberExport"),
                        "400": _BAD,
                        **admin_refusals,
                        "404": _error("nothing is stored about this member"),
                    },
                    parameters=_MEMBER_PATH,
                    security=admin,
                ),
            },
            "/leaderboard/{community}": {
                "get": _operation(
                    "Members ranked by overall score (at as_of) or by one dimension",
                    {"200": _json("ranked members", "Leaderboard"), "400": _BAD, **read_refusals},
                    parameters=leaderboard_params,
                    security=read,
                )
            },
            "/healthz": {"get": _operation("Liveness", {"200": _json("up", "Health")})},
            "/readyz": {
                "get": _operation(
                    "Readiness: partitions assigned and Redis reachable",
                    {"200": _json("ready", "Ready"), "503": _json("not ready", "Ready")},
                )
            },
            "/metrics": {
                "get": _operation(
                    "Prometheus text exposition (format 0.0.4); no member ids",
                    {
                        "200": {
                            "description": "the metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                )
            },
            "/stats": {
                "get": _operation(
                    "Process counters (no member ids)", {"200": _json("the counters", "Stats")}
                )
            },
            "/openapi.json": {
                "get": _operation(
                    "This document",
                    {
                        "200": {
                            "description": "the OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                )
            },
        },
    }
