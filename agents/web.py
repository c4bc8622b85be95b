"""HTTP API on the worker's web server: member scores, leaderboards, health, admin.

Access: /members and /leaderboard need `Authorization: Bearer <HEARTH_READ_TOKEN>` when that
token is set (the admin token is accepted too); the admin endpoints (erasure, export) need
`Bearer <HEARTH_ADMIN_TOKEN>` and answer 403 while no admin token is configured. /healthz,
/readyz, /metrics, /stats and /openapi.json stay open: probes and scrapers carry no token, and
none of them holds a member id. Every request body is limited to MAX_BODY_BYTES (413), path
parameters to the event contract's id rules (400).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web as aioweb
from faust import web

from agents.auth import Access, check_access, configured
from agents.erasure import erasures_of, export_member, request_erasure
from agents.metrics import CONTENT_TYPE
from agents.openapi import MAX_BODY_BYTES, openapi_document
from agents.read_model import OVERALL
from scoring.policy import DIMENSIONS
from stream.contract import Community, MemberId

if TYPE_CHECKING:
    from agents.service import Hearth

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000
REALM = 'Bearer realm="hearth"'
# Decay evaluated far before a member's data overflows a float: such as_of values are refused.
AS_OF_UNEVALUABLE = "as_of is too far from the data to evaluate scores at"
AS_OF_OUT_OF_RANGE = "as_of is out of range"


class BadRequest(ValueError):
    pass


def _as_of(request: web.Request) -> float:
    value = request.query.get("as_of")
    if not value:
        return time.time()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"as_of {value!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise BadRequest("as_of needs a UTC offset (Z or +00:00)")
    try:
        t = parsed.timestamp()
        datetime.fromtimestamp(t, UTC)  # answers carry as_of in UTC: years 1-9999 there
    except (OverflowError, ValueError, OSError) as exc:
        raise BadRequest(AS_OF_OUT_OF_RANGE) from exc
    return t


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name} must be an integer between 0 and {high}")
    value = int(raw)
    if not 0 <= value <= high:
        raise BadRequest(f"{name} must be between 0 and {high}")
    return value


def _name(value: str, kind: Any, what: str, limit: int) -> str:
    """A path parameter checked against the event contract (length, no '/', no controls)."""
    try:
        checked: str = msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(
            f"{what} must be 1-{limit} characters without '/' or control characters"
        ) from exc
    return checked


def member_params(community: str, member: str) -> tuple[str, str]:
    return _name(community, Community, "community", 64), _name(member, MemberId, "member", 128)


def _version() -> str:
    try:
        return metadata.version("hearth")
    except metadata.PackageNotFoundError:
        return "unknown"


@aioweb.middleware
async def limit_body(
    request: aioweb.Request, handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
) -> aioweb.StreamResponse:
    """413 for a body over MAX_BODY_BYTES, declared (Content-Length) or actually sent."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _too_large()
    if request.body_exists:
        received = 0
        async for chunk in request.content.iter_chunked(16 * 1024):
            received += len(chunk)
            if received > MAX_BODY_BYTES:
                return _too_large()
    return await handler(request)


def _too_large() -> aioweb.Response:
    return aioweb.json_response({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status=413)


def register_views(hearth: Hearth) -> None:
    app = hearth.app
    settings = hearth.settings
    erasures_of(hearth)  # the erasure counter exists (at 0) from the start
    web_app: aioweb.Application = getattr(app.web, "web_app")  # noqa: B009 - aiohttp driver
    web_app.middlewares.append(limit_body)

    def error(view: web.View, status: int, message: str) -> web.Response:
        headers = {"WWW-Authenticate": REALM} if status == 401 else None
        return view.json({"error": message}, status=status, headers=headers)

    def denied(view: web.View, request: web.Request, access: Access) -> web.Response | None:
        header = request.headers.get("Authorization")
        refused = check_access(access, header, settings.admin_token, settings.read_token)
        return None if refused is None else error(view, *refused)

    def admin_member(
        view: web.View, request: web.Request, community: str, member: str
    ) -> web.Response | tuple[str, str]:
        """The admin endpoints' gate: the admin token first, then valid ids."""
        if (refused := denied(view, request, Access.ADMIN)) is not None:
            return refused
        try:
            return member_params(community, member)
        except BadRequest as exc:
            return error(view, 400, str(exc))

    def body(value: Any) -> Any:
        return msgspec.to_builtins(value)

    @app.page("/members/{community}/{member}")
    class MemberView(web.View):
        async def get(self, request: web.Request, community: str, member: str) -> web.Response:
            if (refused := denied(self, request, Access.READ)) is not None:
                return refused
            try:
                community, member = member_params(community, member)
                t = _as_of(request)
                score = await hearth.read_model.member(community, member, t)
            except BadRequest as exc:
                return error(self, 400, str(exc))
            except OverflowError:
                return error(self, 400, AS_OF_UNEVALUABLE)
            if score is None:
                return error(self, 404, "no such member")
            return self.json(body(score))

        async def delete(self, request: web.Request, community: str, member: str) -> web.Response:
            checked = admin_member(self, request, community, member)
            if not isinstance(checked, tuple):
                return checked
            community, member = checked
            await request_erasure(hearth, community, member)
            return self.json(
                {"status": "accepted", "community": community, "member": member}, status=202
            )

    @app.page("/members/{community}/{member}/export")
    class ExportView(web.View):
        async def get(self, request: web.Request, community: str, member: str) -> web.Response:
            checked = admin_member(self, request, community, member)
            if not isinstance(checked, tuple):
                return checked
            community, member = checked
            export = await export_member(hearth.read_model, community, member)
            if export is None:
                return error(self, 404, "nothing is stored about this member")
            return self.json(export)

    @app.page("/leaderboard/{community}")
    class LeaderboardView(web.View):
        async def get(self, request: web.Request, community: str) -> web.Response:
            if (refused := denied(self, request, Access.READ)) is not None:
                return refused
            dimension = request.query.get("dimension", OVERALL)
            try:
                community = _name(community, Community, "community", 64)
                if dimension != OVERALL and dimension not in DIMENSIONS:
                    raise BadRequest(f"dimension must be overall or one of {DIMENSIONS}")
                t = _as_of(request)
                limit = _int(request, "limit", 20, MAX_LIMIT)
                offset = _int(request, "offset", 0, MAX_OFFSET)
                rows = await hearth.read_model.leaderboard(community, dimension, t, limit, offset)
            except BadRequest as exc:
                return error(self, 400, str(exc))
            except OverflowError:
                return error(self, 400, AS_OF_UNEVALUABLE)
            return self.json({"dimension": dimension, "offset": offset, "members": body(rows)})

    @app.page("/stats")
    class Stats(web.View):
        """Process counters for operators and tests (no member ids)."""

        async def get(self, request: web.Request) -> web.Response:
            counters = hearth.counters
            store: Any = hearth.table.data
            stats = getattr(store, "stats", None)
            return self.json(
                {
                    "consumed": counters.consumed,
                    "outcomes": counters.outcomes,
                    "dead_letters": counters.dead_letters,
                    "score_changes": counters.changes,
                    "skipped_offsets": counters.skipped_offsets,
                    "erasures": erasures_of(hearth).count,
                    "members": len(store),
                    "state_bytes": store.bytes_held(),
                    "watermark": hearth.watermark if hearth.watermark > 0 else None,
                    "store": vars(stats) if stats is not None else {},
                    "collusion_graph": {
                        "edges": hearth.engine.graph.edge_count(),
                        "first_day": hearth.engine.graph.first_day,
                    },
                }
            )

    @app.page("/metrics")
    class Metrics(web.View):
        """Prometheus text exposition (format 0.0.4) of this worker's metrics."""

        async def get(self, request: web.Request) -> web.Response:
            body = hearth.metrics.exposition()
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE})

    @app.page("/healthz")
    class Health(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(web.View):
        async def get(self, request: web.Request) -> web.Response:
            problems = []
            if app.rebalancing:
                problems.append("rebalancing")
            if not hearth.joined:
                problems.append("no partition assignment yet")
            try:
                await hearth.redis.ping()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                problems.append(f"redis: {type(exc).__name__}")
            status = 503 if problems else 200
            return self.json({"ready": not problems, "problems": problems}, status=status)

    document = openapi_document(
        _version(), read_protected=configured(settings.read_token) is not None
    )

    @app.page("/openapi.json")
    class OpenApi(web.View):
        """The OpenAPI 3 document of this API, as this worker is configured."""

        async def get(self, request: web.Request) -> web.Response:
            return self.json(document)
