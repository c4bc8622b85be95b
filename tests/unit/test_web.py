"""The HTTP API's guards, served by the real aiohttp app of a worker that is not started.

Nothing here reaches Kafka or Redis: every request is answered by a check that comes first
(authentication, parameter and body limits), and the worker's Redis URL points at a closed port
so a request that got past its checks would fail loudly rather than pass by accident.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.service import Hearth
from agents.settings import Settings
from agents.web import MAX_BODY_BYTES, register_views

ADMIN = "admin-s3cret"
READ = "read-s3cret"
WRONG = "nope"
BLANK = "  "
Call = Callable[..., tuple[int, dict[str, str], Any]]


def _hearth(tmp_path: Path, **settings: Any) -> Hearth:
    hearth = Hearth(
        Settings(
            app_id="unit-web",
            data_dir=tmp_path,
            redis_url="redis://127.0.0.1:1/0",
            kafka={"bootstrap": "127.0.0.1:1"},
            **settings,
        )
    )
    register_views(hearth)
    return hearth


@contextmanager
def _caller(hearth: Hearth) -> Iterator[Call]:
    """A `call(method, path, token=None, **kwargs)` on one event loop (aiohttp apps keep theirs)."""
    loop = asyncio.new_event_loop()
    client = TestClient(TestServer(hearth.app.web.web_app), loop=loop)
    loop.run_until_complete(client.start_server())

    def call(
        method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, str], Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"

        async def run() -> tuple[int, dict[str, str], Any]:
            async with client.request(method, path, headers=headers, **kwargs) as response:
                is_json = response.content_type == "application/json"
                body = await (response.json() if is_json else response.text())
                return response.status, dict(response.headers), body

        return loop.run_until_complete(run())

    try:
        yield call
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(hearth.redis.aclose())
        loop.close()


@pytest.fixture
def admin_only(tmp_path: Path) -> Iterator[Call]:
    """A worker with an admin token and open read endpoints."""
    with _caller(_hearth(tmp_path, admin_token=ADMIN)) as call:
        yield call


@pytest.fixture
def both_tokens(tmp_path: Path) -> Iterator[Call]:
    with _caller(_hearth(tmp_path, admin_token=ADMIN, read_token=READ)) as call:
        yield call


@pytest.fixture
def no_tokens(tmp_path: Path) -> Iterator[Call]:
    with _caller(_hearth(tmp_path)) as call:
        yield call


def test_admin_endpoints_answer_403_while_no_admin_token_is_configured(no_tokens: Call) -> None:
    for method, path in (("DELETE", "/members/c/m"), ("GET", "/members/c/m/export")):
        status, _, body = no_tokens(method, path, token=WRONG)
        assert status == 403, (method, path, body)
        assert "HEARTH_ADMIN_TOKEN" in body["error"]


def test_blank_admin_token_counts_as_not_configured(tmp_path: Path) -> None:
    with _caller(_hearth(tmp_path, admin_token=BLANK)) as call:
        status, _, _ = call("DELETE", "/members/c/m", token=BLANK)
    assert status == 403


@pytest.mark.parametrize("token", [None, "wrong", READ, ADMIN + "x", ADMIN[:-1]])
def test_admin_endpoints_refuse_missing_or_wrong_tokens_with_401(
    both_tokens: Call, token: str | None
) -> None:
    for method, path in (("DELETE", "/members/c/m"), ("GET", "/members/c/m/export")):
        status, headers, body = both_tokens(method, path, token=token)
        assert status == 401, (method, path, token, body)
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in body


def test_admin_token_passes_the_guard(both_tokens: Call) -> None:
    # Past authentication, the over-long member id is refused before any I/O.
    status, _, body = both_tokens("DELETE", f"/members/c/{'m' * 129}", token=ADMIN)
    assert status == 400, body
    status, _, body = both_tokens("GET", f"/members/c/{'m' * 129}/export", token=ADMIN)
    assert status == 400, body


def test_read_endpoints_need_the_read_or_admin_token_when_one_is_set(both_tokens: Call) -> None:
    long_member = f"/members/c/{'m' * 129}"
    for path in (long_member, "/leaderboard/c?limit=x"):
        status, headers, _ = both_tokens("GET", path)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert both_tokens("GET", path, token=WRONG)[0] == 401
        assert both_tokens("GET", path, token=READ)[0] == 400
        assert both_tokens("GET", path, token=ADMIN)[0] == 400


def test_read_endpoints_are_open_without_a_read_token(admin_only: Call) -> None:
    assert admin_only("GET", f"/members/c/{'m' * 129}")[0] == 400
    assert admin_only("GET", "/leaderboard/c?offset=-1")[0] == 400


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/metrics"])
def test_probe_and_document_endpoints_stay_open(both_tokens: Call, path: str) -> None:
    status, _, _ = both_tokens("GET", path)
    assert status == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/members/{'c' * 65}/m",
        f"/members/c/{'m' * 129}",
        "/members/c/a%2Fb",
        "/members/c/a%00b",
        "/members/c/a%0A",
        f"/leaderboard/{'c' * 65}",
        "/leaderboard/c%7F",
    ],
)
def test_path_parameters_follow_the_contract(admin_only: Call, path: str) -> None:
    status, _, body = admin_only("GET", path)
    assert status == 400, body
    assert "characters" in body["error"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=501",
        "limit=%205",
        "limit=5_0",
        "offset=-1",
        "offset=1000001",
        "dimension=bogus",
        "as_of=yesterday",
        "as_of=2026-01-01T00:00:00",
        "as_of=9999-12-31T23:59:59-23:59",
        "as_of=0001-01-01T00:00:00%2B23:59",
    ],
)
def test_bad_query_parameters_answer_400(admin_only: Call, query: str) -> None:
    status, _, body = admin_only("GET", f"/leaderboard/c?{query}")
    assert status == 400, (query, body)


def test_bodies_over_the_limit_answer_413(admin_only: Call) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    status, _, body = admin_only("GET", "/healthz", data=big)
    assert status == 413, body

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * (MAX_BODY_BYTES // 4)

    # Chunked transfer: no Content-Length, the limit applies to what actually arrives.
    status, _, body = admin_only("GET", "/healthz", data=chunks())
    assert status == 413, body
    status, _, _ = admin_only("GET", "/healthz", data=b"x" * MAX_BODY_BYTES)
    assert status == 200


def test_methods_a_route_does_not_serve_answer_405(admin_only: Call) -> None:
    assert admin_only("POST", "/members/c/m")[0] == 405
    assert admin_only("DELETE", "/leaderboard/c", token=ADMIN)[0] == 405
