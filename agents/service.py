"""The running service: Faust app, agents, table, timers and their shared scoring state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.types import TP
from redis.exceptions import RedisError

from agents.commands import Edge, MemberCommand, command_decoder, command_encoder, edge_decoder
from agents.metrics import HearthMetrics
from agents.outbox import Outbox, Route
from agents.read_model import ReadModel, write_leaderboards
from agents.recent_ids import RecentIds
from agents.settings import Settings
from agents.stall import StallClock, lagging
from agents.states import TableStates, table_key
from agents.transport import RewindingTransport
from scoring.engine import Engine, Outcome, stable_hash
from scoring.policy import Policy, load_policy
from scoring.records import MemberScore, ScoreChange
from scoring.runner import Runner
from scoring.state import ACTOR, TARGET, MemberKey
from stream.codec import DeadLetter, EventDecoder, Reason
from stream.contract import ActivityEvent
from stream.topics import TopicNames, group_offsets

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
BATCH_SIZE = 500
BATCH_WITHIN_SECONDS = 0.05
# Edge ids the graph task remembers to drop an edge sent again. A worker re-reads only what it
# had not committed: about one commit interval (2.8 s) of processing, a few thousand events.
EDGE_IDS_REMEMBERED = 50_000


def _broker_credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.password.get_secret_value() if kafka.password else ""
        return faust.SASLCredentials(
            username=kafka.username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def _send_soon(topic: Any) -> Callable[[int, bytes | None, bytes | None], Any]:
    def send(partition: int, key: bytes | None, value: bytes | None) -> Any:
        return topic.send_soon(key=key, value=value, partition=partition)

    return send


class Counters:
    """Process-local counters the metrics and tests read (no member ids)."""

    def __init__(self) -> None:
        self.consumed = 0
        self.outcomes: dict[str, int] = {}
        self.dead_letters: dict[str, int] = {}
        self.changes: dict[str, int] = {}
        self.skipped_offsets = 0

    def outcome(self, name: str) -> None:
        self.outcomes[name] = self.outcomes.get(name, 0) + 1


class FlushBeforeCommit(faust.Sensor):
    """Hands coalesced states and waiting records to Faust before it commits offsets.

    Faust's commit waits for everything sent through its own path, so no committed event's
    output exists only in memory.
    """

    def __init__(self, states: TableStates, outbox: Outbox) -> None:
        super().__init__()
        self._states = states
        self._outbox = outbox

    def on_commit_initiated(self, consumer: Any) -> Any:
        self._outbox.drain_to_faust()
        self._states.flush(via_faust=True)
        return None


class Hearth:
    """Builds and holds the Faust app with its agents; `hearth worker` runs it."""

    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings.policy)
        self.topics = TopicNames(settings.topic_prefix)
        self.counters = Counters()
        redis_url = settings.redis_url.get_secret_value()
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.kafka.bootstrap}",
            broker_credentials=_broker_credentials(settings),
            store=redis_url,
            processing_guarantee="at_least_once",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset="earliest",
            web_host=settings.web_host,
            web_port=settings.web_port,
            datadir=str(settings.data_dir),
            table_standby_replicas=0,
            web_in_thread=False,
            # Small fetches keep the credits topic interleaved with a large activity backlog.
            broker_max_poll_records=500,
            consumer_max_fetch_size=256 * 1024,
            # Every flush sends a burst of changelog records: let them share produce requests.
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
            # A crashed worker's partitions wait for its session to expire (Faust: 60 s).
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
        )
        self.app.transport = RewindingTransport(self.app.conf.broker_consumer, self.app)
        self.redis = aioredis.from_url(redis_url)
        self.read_model = ReadModel(self.redis, self.policy, settings.app_id, settings.partitions)
        self.decoder = EventDecoder(self.policy.rules, self.policy.spec.future_skew_seconds)
        app = self.app
        self.activity = app.topic(
            self.topics.activity,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.credits = app.topic(
            self.topics.credits,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.dead_letter_topic = app.topic(
            self.topics.dead_letters, key_serializer="raw", value_serializer="raw"
        )
        self.changes_topic = app.topic(
            self.topics.score_changes, key_serializer="raw", value_serializer="raw"
        )
        self.scores_topic = app.topic(
            self.topics.scores, key_serializer="raw", value_serializer="raw"
        )
        self.edges_topic = app.topic(
            self.topics.edges, key_serializer="raw", value_serializer="raw"
        )
        raw: Any = faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        self.table = app.Table(
            "members", partitions=settings.partitions, schema=raw, key_type=bytes, value_type=bytes
        )
        self._partition_cache: dict[bytes, int] = {}
        self._local: set[int] = set()
        self.processed = 0  # input messages handled, activity and credits
        self.stall_clock = StallClock(settings.stall_seconds)
        self.outbox = Outbox()
        self._outbox_lock = asyncio.Lock()
        self.states = TableStates(
            self.table, self.partition_of, self.outbox, settings.state_cache_size
        )
        app.sensors.add(FlushBeforeCommit(self.states, self.outbox))
        self._route_outputs()
        self.engine = Engine(self.policy, self.states, salt=settings.salt)
        self.runner = Runner(self.engine)
        # Days close from the low watermark of all activity partitions (shared through Redis),
        # so credits that cross partitions are not too late while a backlog is drained unevenly.
        self.engine.close_horizon = -(10**9)
        self.watermark = float("-inf")
        self._partition_marks: dict[int, float] = {}
        self._marks_key = f"hearth:watermarks:{settings.app_id}"
        self._safe_key = f"hearth:credits-safe:{settings.app_id}"
        self._credit_offsets: dict[int, int] = {}
        self._activity_offsets: dict[int, int] = {}
        self._previous_low = float("-inf")
        self._dirty: set[MemberKey] = set()
        self._snapshots: dict[MemberKey, MemberScore] = {}
        self._edges: list[Edge] = []
        self._reschedule = True
        self.joined = False  # until the group gave this worker its (possibly empty) assignment
        # One agent reads both topics so neither starves the other: credits must keep up with
        # the activity that produces them, or their days would close before they arrive.
        inputs = app.topic(
            self.topics.activity,
            self.topics.credits,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        app.agent(inputs, name="score")(self._score)
        app.timer(settings.flush_interval_seconds)(self._publish_dirty_guarded)
        app.timer(settings.decay_tick_seconds)(self._decay_tick)
        app.task(self._graph_loop)
        app.timer(max(1.0, settings.stall_seconds / 3))(self._watch_stalls)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.metrics = HearthMetrics(self.policy).bind(self)

    # -- agents ----------------------------------------------------------------------------

    async def _score(self, stream: Any) -> AsyncIterator[None]:
        # Batches amortise Faust's per-message overhead; events still apply one by one in order.
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):
            for event in events:
                self.processed += 1
                started = time.perf_counter()
                if event.message.topic == self.topics.credits:
                    await self._member_command(event)
                else:
                    await self._activity(event)
                self.metrics.processed(event.message, started)
            yield None

    async def _activity(self, event: Any) -> None:
        self.counters.consumed += 1
        message = event.message
        self._activity_offsets[message.partition] = message.offset
        result = self.decoder.decode(event.value or b"", time.time())
        if isinstance(result, DeadLetter):
            self.metrics.event(None, "dead_letter")
            await self._dead_letter(message.key, result)
            return
        expected = f"{result.community}/{result.actor}".encode()
        if message.key != expected:
            # Not keyed by community/actor: re-key so the actor's partition owns it.
            await self.activity.send(key=expected, value=event.value)
            self.counters.outcome("rekeyed")
            self.metrics.event(result.type, "rekeyed")
            return
        t = result.time.timestamp()
        if t > self._partition_marks.get(message.partition, float("-inf")):
            self._partition_marks[message.partition] = t
        await self._apply_activity(result, message.offset)

    async def _apply_activity(self, event: ActivityEvent, offset: int) -> None:
        key = (event.community, event.actor)
        t = event.time.timestamp()
        rule = self.policy.rules[event.type]
        if event.target == event.actor:
            self.counters.outcome(Outcome.SELF_INTERACTION)
            self.metrics.event(event.type, Outcome.SELF_INTERACTION, t)
            return
        state = self.states.get(key)
        redelivered = state is not None and offset <= state.applied_offset
        if redelivered:
            # Redelivered after a restart: the actor's side is already in its state.
            self.counters.skipped_offsets += 1
            outcome = Outcome.DUPLICATE
        else:
            id_hash = stable_hash(event.id, self.settings.salt)
            outcome = self.engine.apply_side(key, rule, ACTOR, t, id_hash, event.target)
        self.counters.outcome(outcome)
        self.metrics.event(event.type, outcome, t)
        if outcome is Outcome.TOO_LATE:
            await self._dead_letter(
                table_key(key),
                DeadLetter(Reason.TOO_LATE, "day already closed for this member", b""),
            )
            return
        state = self.states[key]
        if offset > state.applied_offset:
            state.applied_offset = offset
            self.states[key] = state
        if outcome is Outcome.APPLIED:
            await self._emit_check(key, t, event.id)
        if event.target is not None and rule.target and (redelivered or outcome is Outcome.APPLIED):
            # Sent again for a redelivered message too: the target side de-duplicates by id, so a
            # credit whose write was lost in a crash is recovered. A replayed id at another
            # offset is not credited again (its content may differ; replay credits it once).
            command = MemberCommand(
                "credit", event.community, event.target, t, event.id, event.type, event.actor
            )
            if self.partition_of(command.key()) in self._local:
                await self._member_command_value(command)
            else:
                await self.credits.send(key=command.key(), value=command_encoder.encode(command))
            if any(v > 0 for _, v in rule.target):
                # Also for duplicates: an edge lost in a crash is sent again; the graph
                # de-duplicates by event id.
                self._edges.append(Edge(event.community, event.actor, event.target, t, event.id))

    def partition_of(self, raw_key: bytes) -> int:
        """The partition of a member key, as every Kafka client's default partitioner picks it."""
        partition = self._partition_cache.get(raw_key)
        if partition is None:
            partition = self._partition_cache[raw_key] = self.read_model.partition_of(raw_key)
        return partition

    async def _member_command(self, event: Any) -> None:
        self._credit_offsets[event.message.partition] = event.message.offset
        await self._member_command_value(command_decoder.decode(event.value))

    async def _member_command_value(self, command: MemberCommand) -> None:
        key = (command.community, command.member)
        if command.kind == "credit":
            rule = self.policy.rules.get(command.action)
            if rule is None:
                return
            id_hash = stable_hash(command.id, self.settings.salt) ^ 1
            outcome = self.engine.apply_side(
                key, rule, TARGET, command.t, id_hash, command.counterpart
            )
            self.counters.outcome(f"target_{outcome}")
            self.metrics.credit(command.action, outcome)
            if outcome is Outcome.APPLIED:
                await self._emit_check(key, command.t, command.id)
        elif command.kind == "decay":
            if key in self.states:
                await self._emit_check(key, command.t, "decay")
        elif command.kind == "erase":
            from agents.erasure import erase_member  # erasure imports this module's types

            await erase_member(self, command)
        else:
            state = self.states.get(key)
            if state is not None and state.collusion != command.verdict:
                state.collusion = command.verdict
                self.states[key] = state
                await self._emit_check(key, command.t, "collusion")

    async def _emit_check(self, key: MemberKey, t: float, cause: str) -> None:
        changes: list[ScoreChange] = []
        self.runner.check(key, t, cause, changes)
        self._dirty.add(key)
        if changes:
            # The scores topic carries the member as of its latest change (sent at the flush).
            state = self.states[key]
            self._snapshots[key] = self.engine.explain_state(key, state, max(t, state.newest_time))
        for change in changes:
            cause = change.cause if change.cause in ("decay", "collusion") else "event"
            self.counters.changes[cause] = self.counters.changes.get(cause, 0) + 1
            self.metrics.score_change(cause)
            # Queued synchronously, so changes leave in seq order even when the agent and the
            # graph task both emit for one member.
            raw_key = table_key(key)
            self.outbox.add(
                self.topics.score_changes,
                self.partition_of(raw_key),
                raw_key,
                _encoder.encode(change),
            )

    def forget_member(self, key: MemberKey) -> None:
        """Delete a member's state (a changelog tombstone) and drop its pending outputs."""
        del self.states[key]
        self.runner.schedule.set(key, None)
        self._dirty.discard(key)
        self._snapshots.pop(key, None)

    async def _dead_letter(self, key: bytes | None, letter: DeadLetter) -> None:
        self.counters.dead_letters[letter.reason] = (
            self.counters.dead_letters.get(letter.reason, 0) + 1
        )
        self.metrics.dead_letter(letter.reason)
        await self.dead_letter_topic.send(
            key=key,
            value=letter.raw,
            headers=[("reason", letter.reason.encode()), ("detail", letter.detail[:500].encode())],
        )

    # -- timers ----------------------------------------------------------------------------

    def _caught_up(self, topic: str, offsets: dict[int, int]) -> list[int]:
        """Assigned partitions of `topic` with nothing left to read (known high watermark)."""
        consumer = self.app.consumer
        done = []
        for tp in consumer.assignment():
            if tp.topic == topic:
                highwater = consumer.highwater(tp)
                if highwater is not None and offsets.get(tp.partition, -1) + 1 >= highwater:
                    done.append(tp.partition)
        return done

    async def _share_watermarks(self) -> None:
        """Adopt the time before which no input can still bring events: the close horizon.

        That is the low watermark of all activity partitions, held back while a credits
        partition still has unread credits (they were produced at an older watermark). A
        partition with nothing left to read does not hold it back: it takes the highest mark.
        All workers share their marks through Redis.
        """
        shared = {int(p): float(t) for p, t in (await self.redis.hgetall(self._marks_key)).items()}
        shared.update(self._partition_marks)
        top = max(shared.values(), default=float("-inf"))
        if top > float("-inf"):
            for partition in self._caught_up(self.topics.activity, self._activity_offsets):
                shared[partition] = top
        mine = {p: shared[p] for p in shared if p in self._local or p in self._partition_marks}
        if mine:
            await self.redis.hset(
                self._marks_key, mapping={str(p): repr(t) for p, t in mine.items()}
            )
        credits_done = self._caught_up(self.topics.credits, self._credit_offsets)
        if credits_done and self._previous_low > float("-inf"):
            safe_marks: dict[Any, Any] = {str(p): repr(self._previous_low) for p in credits_done}
            await self.redis.hset(self._safe_key, mapping=safe_marks)
        if len(shared) < self.settings.partitions:
            return
        activity_low = min(shared.values())
        safe = await self.redis.hgetall(self._safe_key)
        self._previous_low = activity_low
        if len(safe) < self.settings.partitions:
            return
        low = min(activity_low, min(float(v) for v in safe.values()))
        self.watermark = max(self.watermark, low)
        late = self.policy.spec.late_days
        self.engine.close_horizon = int(self.watermark // 86400) - late - 1

    async def _publish_dirty(self) -> None:
        """Changed states to Redis, members to the leaderboards, snapshots of score changes.

        The table in Redis is the API's read model; the compacted scores topic carries each
        member's explained snapshot as of its latest score change.
        """
        self.states.flush()
        store: Any = self.table.data
        await store.flush()  # visible to the API now rather than at the store's own interval
        if self._edges:
            edges, self._edges = self._edges, []
            await self.edges_topic.send(key=b"graph", value=_encoder.encode(edges))
        snapshots, self._snapshots = self._snapshots, {}
        for key, snapshot in snapshots.items():
            raw_key = table_key(key)
            self.outbox.add(
                self.topics.scores, self.partition_of(raw_key), raw_key, _encoder.encode(snapshot)
            )
        await self._send_outbox()
        await self._share_watermarks()
        dirty, self._dirty = self._dirty, set()
        current = [(key, state) for key in dirty if (state := self.states.get(key)) is not None]
        try:
            await write_leaderboards(self.redis, self.policy, current)
        except RedisError:
            self._dirty |= dirty  # placed on the leaderboards at the next flush
            raise

    async def _publish_dirty_guarded(self) -> None:
        """The flush timer: a Redis outage (a restart) is waited out, not a crash."""
        try:
            await self._publish_dirty()
        except RedisError as exc:
            log.warning("writing to Redis failed (%s); retrying", type(exc).__name__)

    def _route_outputs(self) -> None:
        """Where outbox records go when a commit cannot wait for the next batch."""
        store: Any = self.table.data
        changelog = self.states.changelog_topic

        def persisted(partition: int, offset: int) -> None:
            store.set_persisted_offset(TP(changelog, partition), offset)

        self.outbox.route(changelog, Route(self.table.send_changelog, persisted))
        # A state reaches Redis only after the score changes it records have left the outbox.
        store.before_write = self._send_outbox
        for topic in (self.changes_topic, self.scores_topic):
            self.outbox.route(topic.get_topic_name(), Route(_send_soon(topic)))

    async def _send_outbox(self) -> None:
        # One send at a time (the flush timer and the store's writes both call this), and
        # records Faust still buffers (a commit drained the outbox into it) go first, so a
        # partition never receives an older state after a newer one.
        async with self._outbox_lock:
            if not len(self.outbox):
                return
            producer: Any = self.app.producer
            await producer.buffer.flush()
            await self.outbox.send(producer._ensure_producer())

    def _clock(self) -> float:
        return time.time() if self.settings.decay_clock == "wall" else self.watermark

    async def _decay_tick(self) -> None:
        """Send a decay check to each member whose tier drop falls due (no scan)."""
        if self._reschedule and not self.app.rebalancing:
            self._reschedule = False
            for key in list(self.states):
                state = self.states.get(key)
                if state is not None and state.tier > 0:
                    self.runner.schedule.set(
                        key, self.engine.tier_drop_time(key, state.newest_time)
                    )
        for due, key in self.runner.schedule.pop_due(self._clock()):
            if self.partition_of(table_key(key)) in self._local and key in self.states:
                await self._emit_check(key, due, "decay")

    async def _graph_loop(self) -> None:
        """Collusion: read every edge (from the start), refresh verdicts per event-time day."""
        consumer = AIOKafkaConsumer(
            self.topics.edges,
            bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            **self.settings.kafka.security().as_kwargs(),
        )
        await consumer.start()
        graph = self.engine.graph
        flagged: dict[MemberKey, tuple[int, float]] = {}
        # Edges sent again after a crash or a rebalance are ignored (by event id).
        seen = RecentIds(EDGE_IDS_REMEMBERED)
        day: int | None = None
        try:
            while not self.app.should_stop:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                edges = [
                    e for msgs in batch.values() for m in msgs for e in edge_decoder.decode(m.value)
                ]
                for edge in sorted(edges, key=lambda e: e.t):
                    edge_day = int(edge.t // 86400)
                    if not seen.add(edge.id):
                        continue
                    if day is not None and edge_day > day:
                        await self._send_verdicts(flagged, (day + 1) * 86400.0)
                    day = edge_day if day is None else max(day, edge_day)
                    graph.add(edge.community, edge.giver, edge.receiver, edge_day)
                if not edges and day is not None:
                    await self._send_verdicts(flagged, self.watermark)
        finally:
            await consumer.stop()

    async def _send_verdicts(self, flagged: dict[MemberKey, tuple[int, float]], t: float) -> None:
        graph = self.engine.graph
        current = {k: v for k in graph.candidates() if (v := graph.verdict(k)) is not None}
        for key in sorted(set(current) | set(flagged)):
            if current.get(key) != flagged.get(key):
                command = MemberCommand("verdict", key[0], key[1], t, verdict=current.get(key))
                if self.partition_of(command.key()) in self._local:
                    await self._member_command_value(command)
                else:
                    await self.credits.send(
                        key=command.key(), value=command_encoder.encode(command)
                    )
        flagged.clear()
        flagged.update(current)

    async def _watch_stalls(self) -> None:
        """Re-read the inputs from their committed offsets when they lag and nothing moves."""
        if not self.joined or self.app.rebalancing:
            return
        if not self.stall_clock.due(self.processed, time.monotonic()):
            return
        consumer: Any = self.app.consumer
        # The topics whose records `processed` counts (the transport rewinds every agent topic).
        scored = (self.topics.activity, self.topics.credits)
        inputs = [tp for tp in consumer.assignment() if tp.topic in scored]
        if not inputs:
            return
        try:
            committed = await group_offsets(
                self.settings.kafka.bootstrap,
                self.settings.app_id,
                security=self.settings.kafka.security(),
            )
        except (KafkaError, OSError) as exc:  # the broker away: nothing to re-read from now
            log.info("stall check skipped: %s", type(exc).__name__)
            return
        stuck = lagging(
            {(tp.topic, tp.partition): consumer.highwater(tp) for tp in inputs}, committed
        )
        if stuck:
            log.warning(
                "input partitions %s have records past their committed offsets and nothing was "
                "processed for %.0f s: re-reading from the committed offsets",
                sorted(stuck),
                self.settings.stall_seconds,
            )
            self.metrics.stall_rereads.inc()
            await consumer.perform_seek()

    # -- rebalancing -----------------------------------------------------------------------

    async def _on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        await self._publish_dirty()
        self._local -= {tp.partition for tp in revoked if tp.topic == self.topics.activity}
        self.states.forget()
        self.runner.schedule = type(self.runner.schedule)()

    async def _on_assigned(self, sender: Any, assigned: Any, **kwargs: Any) -> None:
        self.joined = True
        self._local = {tp.partition for tp in assigned if tp.topic == self.topics.activity}
        self.states.forget()
        self._reschedule = True
        # Marks shared by a previous owner may cover events that never became durable (a
        # crash): they would close days that redelivered events still need. Start over.
        self.engine.close_horizon = -(10**9)
        self.watermark = float("-inf")
        self._previous_low = float("-inf")
        self._partition_marks.clear()
        self._activity_offsets.clear()
        self._credit_offsets.clear()
        if self._local:
            fields = [str(p) for p in sorted(self._local)]
            await self.redis.hdel(self._marks_key, *fields)
            await self.redis.hdel(self._safe_key, *fields)

    async def close(self) -> None:
        await self.redis.aclose()
        await asyncio.sleep(0)
