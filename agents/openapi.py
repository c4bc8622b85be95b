"""The OpenAPI document of the worker's HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from scoring.policy import DIMENSIONS

_NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^\\x00-\\x1f\\x7f/]+$"}
_ERROR = {
    "description": "bad request",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_UNAUTHORIZED = {"description": "missing or wrong bearer token"}


def _path_params(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": _NAME} for n in names]


_AS_OF = {
    "name": "as_of",
    "in": "query",
    "required": False,
    "description": "RFC 3339 time with offset; default now",
    "schema": {"type": "string", "format": "date-time"},
}


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def openapi_document(version: str) -> dict[str, Any]:
    member_ops = _path_params("community", "member")
    return {
        "openapi": "3.0.3",
        "info": {"title": "Hearth worker API", "version": version},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "MemberScore": {
                    "type": "object",
                    "required": [
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
                    "properties": {
                        "community": {"type": "string"},
                        "member": {"type": "string"},
                        "as_of": {"type": "string"},
                        "score": {"type": "number", "minimum": 0, "maximum": 100},
                        "tier": {"type": "string"},
                        "dimensions": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                        "flags": {"type": "array", "items": {"type": "string"}},
                        "top_actions": {"type": "array", "items": {"type": "object"}},
                        "caps_hit": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "damping": {"type": "array", "items": {"type": "object"}},
                        "landmark": {"type": "number"},
                        "masses": {"type": "object", "additionalProperties": {"type": "number"}},
                    },
                },
                "Leaderboard": {
                    "type": "object",
                    "required": ["dimension", "offset", "members"],
                    "properties": {
                        "dimension": {"type": "string"},
                        "offset": {"type": "integer"},
                        "members": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/MemberScore"},
                        },
                    },
                },
            },
        },
        "paths": {
            "/members/{community}/{member}": {
                "get": {
                    "summary": "A member's score with its explanation",
                    "parameters": [*member_ops, _AS_OF],
                    "responses": {
                        "200": {"description": "the score", **_json("MemberScore")},
                        "400": _ERROR,
                        "401": _UNAUTHORIZED,
                        "404": {"description": "no such member", **_json("Error")},
                    },
                }
            },
            "/leaderboard/{community}": {
                "get": {
                    "summary": "Members ranked by overall score or by one dimension",
                    "parameters": [
                        *_path_params("community"),
                        _AS_OF,
                        {
                            "name": "dimension",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["overall", *DIMENSIONS]},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": 500},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
                        },
                    ],
                    "responses": {
                        "200": {"description": "ranked members", **_json("Leaderboard")},
                        "400": _ERROR,
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "up"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/admin/members/{community}/{member}": {
                "delete": {
                    "summary": "Erase a member (state, read model, tombstone on hearth.scores)",
                    "security": [{"bearer": []}],
                    "parameters": member_ops,
                    "responses": {
                        "202": {"description": "erasure accepted"},
                        "400": _ERROR,
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/admin/members/{community}/{member}/export": {
                "get": {
                    "summary": "Everything stored about a member",
                    "security": [{"bearer": []}],
                    "parameters": member_ops,
                    "responses": {
                        "200": {"description": "the export"},
                        "400": _ERROR,
                        "401": _UNAUTHORIZED,
                        "404": {"description": "no such member"},
                    },
                }
            },
        },
    }
