"""HTTP API on the worker's web server: member scores, leaderboards, health."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from faust import web

from agents.metrics import CONTENT_TYPE
from agents.read_model import OVERALL, read_leaderboard, read_member
from scoring.policy import DIMENSIONS

if TYPE_CHECKING:
    from agents.service import Hearth

MAX_LIMIT = 500


class BadRequest(ValueError):
    pass


def _as_of(request: web.Request) -> float:
    value = request.query.get("as_of")
    if not value:
        return time.time()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"as_of {value!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise BadRequest("as_of needs a UTC offset (Z or +00:00)")
    return parsed.timestamp()


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not 0 <= value <= high:
        raise BadRequest(f"{name} must be between 0 and {high}")
    return value


def register_views(hearth: Hearth) -> None:
    app = hearth.app
    policy = hearth.policy

    def error(view: web.View, status: int, message: str) -> web.Response:
        return view.json({"error": message}, status=status)

    def body(value: Any) -> Any:
        return msgspec.to_builtins(value)

    @app.page("/members/{community}/{member}")
    class MemberView(web.View):
        async def get(self, request: web.Request, community: str, member: str) -> web.Response:
            try:
                t = _as_of(request)
            except BadRequest as exc:
                return error(self, 400, str(exc))
            score = await read_member(hearth.redis, policy, community, member, t)
            if score is None:
                return error(self, 404, "no such member")
            return self.json(body(score))

    @app.page("/leaderboard/{community}")
    class LeaderboardView(web.View):
        async def get(self, request: web.Request, community: str) -> web.Response:
            dimension = request.query.get("dimension", OVERALL)
            if dimension != OVERALL and dimension not in DIMENSIONS:
                return error(self, 400, f"dimension must be overall or one of {DIMENSIONS}")
            try:
                t = _as_of(request)
                limit = _int(request, "limit", 20, MAX_LIMIT)
                offset = _int(request, "offset", 0, 1_000_000)
            except BadRequest as exc:
                return error(self, 400, str(exc))
            rows = await read_leaderboard(
                hearth.redis, policy, community, dimension, t, limit, offset
            )
            return self.json({"dimension": dimension, "offset": offset, "members": body(rows)})

    @app.page("/stats")
    class Stats(web.View):
        """Process counters for operators and tests (no member ids)."""

        async def get(self, request: web.Request) -> web.Response:
            counters = hearth.counters
            store = hearth.table.data
            stats = getattr(store, "stats", None)
            return self.json(
                {
                    "consumed": counters.consumed,
                    "outcomes": counters.outcomes,
                    "dead_letters": counters.dead_letters,
                    "score_changes": counters.changes,
                    "skipped_offsets": counters.skipped_offsets,
                    "members": len(store),
                    "watermark": hearth.watermark if hearth.watermark > 0 else None,
                    "store": vars(stats) if stats is not None else {},
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
            try:
                await hearth.redis.ping()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                problems.append(f"redis: {type(exc).__name__}")
            status = 503 if problems else 200
            return self.json({"ready": not problems, "problems": problems}, status=status)
