"""The OpenAPI document: valid, complete for every registered route, true about access."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis

from agents.openapi import openapi_document
from agents.service import Hearth
from agents.settings import Settings
from agents.web import register_views
from stream.contract import ActivityEvent

UNIT_ADMIN = "unit-admin"
ADMIN_OPERATIONS = {
    ("DELETE", "/members/{community}/{member}"),
    ("GET", "/members/{community}/{member}/export"),
}
READ_OPERATIONS = {("GET", "/members/{community}/{member}"), ("GET", "/leaderboard/{community}")}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


@pytest.fixture
def registered(tmp_path: Path) -> Iterator[set[tuple[str, str]]]:
    """(method, path) of every route a worker registers (HEAD comes with each GET)."""
    hearth = Hearth(Settings(app_id="unit-openapi", data_dir=tmp_path, admin_token=UNIT_ADMIN))
    register_views(hearth)
    routes = {
        (route.method, route.resource.canonical)
        for route in hearth.app.web.web_app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    yield routes
    asyncio.run(hearth.redis.aclose())


@pytest.mark.parametrize("read_protected", [False, True])
def test_document_is_valid_openapi(read_protected: bool) -> None:
    schema = schemathesis.openapi.from_dict(openapi_document("1", read_protected=read_protected))
    schema.validate()  # raises on a document that breaks the OpenAPI 3.0 schema
    assert all(result.ok() for result in schema.get_all_operations())


def test_every_registered_route_is_documented_and_nothing_else(
    registered: set[tuple[str, str]],
) -> None:
    documented = set(_operations(openapi_document("1")))
    assert registered == documented
    assert ADMIN_OPERATIONS | READ_OPERATIONS <= documented


def test_admin_operations_require_the_admin_token_and_document_refusals() -> None:
    for read_protected in (False, True):
        operations = _operations(openapi_document("1", read_protected=read_protected))
        for key in ADMIN_OPERATIONS:
            operation = operations[key]
            assert operation["security"] == [{"admin_token": []}], key
            assert {"400", "401", "403", "413"} <= operation["responses"].keys(), key
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_read_operations_are_protected_exactly_when_a_read_token_is_set() -> None:
    open_ops = _operations(openapi_document("1", read_protected=False))
    guarded = _operations(openapi_document("1", read_protected=True))
    for key in READ_OPERATIONS:
        assert open_ops[key]["security"] == []
        assert "401" not in open_ops[key]["responses"]
        assert guarded[key]["security"] == [{"read_token": []}, {"admin_token": []}]
        assert "401" in guarded[key]["responses"]


def test_open_operations_need_no_token() -> None:
    operations = _operations(openapi_document("1", read_protected=True))
    for path in ("/healthz", "/readyz", "/metrics", "/stats", "/openapi.json"):
        assert operations[("GET", path)]["security"] == []


def test_path_parameters_are_the_contracts_ids() -> None:
    contract = msgspec.json.schema(ActivityEvent)["$defs"]["ActivityEvent"]["properties"]
    for (_, path), operation in _operations(openapi_document("1")).items():
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            field = {"community": "community", "member": "actor"}[parameter["name"]]
            schema = {k: v for k, v in parameter["schema"].items()}
            assert schema == contract[field], (path, parameter["name"])


def test_every_operation_documents_413_and_json_errors() -> None:
    for key, operation in _operations(openapi_document("1", read_protected=True)).items():
        responses = operation["responses"]
        assert "413" in responses, key
        for status, response in responses.items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (key, status)
