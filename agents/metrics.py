"""Prometheus metrics of one worker, in a registry of its own, served at `/metrics`.

Names follow prometheus.io conventions (prefix `hearth_`, base units, `_total` on counters).
Labels are bounded (type, outcome, reason, cause, topic, partition, tier): never a member id.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from agents.redis_store import FlushStats
from scoring.engine import Outcome
from scoring.policy import Policy
from stream.codec import Reason

if TYPE_CHECKING:
    from agents.service import Hearth

log = logging.getLogger(__name__)
# `_created` series only matter to OpenMetrics; in the text format they double every counter.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNKNOWN_TYPE = "unknown"
DEAD_LETTER = "dead_letter"
REKEYED = "rekeyed"
EVENT_OUTCOMES = (
    Outcome.APPLIED,
    Outcome.DUPLICATE,
    Outcome.TOO_LATE,
    Outcome.SELF_INTERACTION,
    REKEYED,
)
CREDIT_OUTCOMES = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.TOO_LATE)
CAUSES = ("event", "decay", "collusion")
FLUSH_FAILURES = ("error", "fenced")

PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
AGE_BUCKETS = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
    3600.0,
    6 * 3600.0,
    86400.0,
    7 * 86400.0,
    30 * 86400.0,
)
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FLUSH_KEY_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000)

REFRESH_SECONDS = 1.0  # lag, members tracked, watermark
SCAN_SECONDS = 10.0  # members per tier and flagged members: one pass over the decoded states


def _version() -> str:
    try:
        return metadata.version("hearth")
    except metadata.PackageNotFoundError:
        return "unknown"


class HearthMetrics:
    """The metrics of one Hearth worker. `bind` wires them to a running `Hearth`."""

    def __init__(self, policy: Policy, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._types = frozenset(policy.rules)
        self._tiers = policy.tier_names
        r = self.registry
        self.events = Counter(
            "hearth_events_consumed",
            "Activity messages consumed, by event type (catalog or unknown) and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.credits = Counter(
            "hearth_target_credits",
            "Target sides of interactions applied to their member, by event type and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.processing = Histogram(
            "hearth_event_processing_seconds",
            "Time from a message entering the scoring agent to its being done, by input topic.",
            ["topic"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.event_age = Histogram(
            "hearth_event_age_seconds",
            "Event time to processing time of decoded activity events.",
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "hearth_dead_letters",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.score_changes = Counter(
            "hearth_score_changes",
            "Score-change events emitted, by cause (event, decay, collusion).",
            ["cause"],
            registry=r,
        )
        self.lag = Gauge(
            "hearth_consumer_lag_messages",
            "Messages of an assigned input partition not processed yet (high watermark - next).",
            ["topic", "partition"],
            registry=r,
        )
        self.flush_duration = Histogram(
            "hearth_store_flush_duration_seconds",
            "Duration of a table store flush to Redis.",
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.flush_keys = Histogram(
            "hearth_store_flush_keys",
            "Member keys written per table store flush.",
            buckets=FLUSH_KEY_BUCKETS,
            registry=r,
        )
        self.flush_failures = Counter(
            "hearth_store_flush_failures",
            "Partition flushes that did not reach Redis: error (retried) or fenced (not owner).",
            ["reason"],
            registry=r,
        )
        self.stall_rereads = Counter(
            "hearth_stall_rereads",
            "Times the worker re-read its inputs from their committed offsets: records were "
            "waiting past them and nothing was processed for HEARTH_STALL_SECONDS.",
            registry=r,
        )
        self.members = Gauge(
            "hearth_members_tracked",
            "Member states held by this worker (members of the partitions it owns).",
            registry=r,
        )
        self.state_bytes = Gauge(
            "hearth_member_state_bytes",
            "Bytes of encoded member state this worker holds in memory (its table partitions).",
            registry=r,
        )
        self.tier_members = Gauge(
            "hearth_tier_members",
            "Members of this worker's partitions per tier, as last evaluated.",
            ["tier"],
            registry=r,
        )
        self.automation = Gauge(
            "hearth_automation_suspected_members",
            "Members of this worker's partitions flagged automation_suspected.",
            registry=r,
        )
        self.collusion = Gauge(
            "hearth_collusion_suspected_members",
            "Members of this worker's partitions flagged collusion_suspected.",
            registry=r,
        )
        self.watermark = Gauge(
            "hearth_event_time_watermark_seconds",
            "Low watermark of event time over all activity partitions (epoch seconds).",
            registry=r,
        )
        self.info = Info("hearth_worker", "Version and policy digest of this worker.", registry=r)
        self.info.info({"version": _version(), "policy_hash": policy.digest})
        ProcessCollector(registry=r)
        # Every known series exists from the start, so rates and alerts see zeros, not gaps.
        # (Only undecodable messages have no type; only catalog types have a target side.)
        self._event_children: dict[tuple[str, str], Any] = {}
        known = [(kind, str(o)) for kind in sorted(self._types) for o in EVENT_OUTCOMES]
        for key in [*known, (UNKNOWN_TYPE, DEAD_LETTER)]:
            self._event_children[key] = self.events.labels(*key)
        for kind, rule in sorted(policy.rules.items()):
            for outcome in CREDIT_OUTCOMES if rule.target else ():
                self.credits.labels(kind, str(outcome))
        for reason in Reason:
            self.dead_letters.labels(str(reason))
        for cause in CAUSES:
            self.score_changes.labels(cause)
        for failure in FLUSH_FAILURES:
            self.flush_failures.labels(failure)
        for tier in self._tiers:
            self.tier_members.labels(tier)
        self._hearth: Hearth | None = None
        self._inputs: tuple[str, ...] = ()
        self._next_offset: dict[Any, int] = {}
        self._lag_labels: set[tuple[str, str]] = set()
        self._next_scan = 0.0

    # -- recording (called from the agents) ------------------------------------------------

    def _type(self, kind: str | None) -> str:
        return kind if kind is not None and kind in self._types else UNKNOWN_TYPE

    def event(self, kind: str | None, outcome: str, event_time: float | None = None) -> None:
        """One activity message consumed; `event_time` (epoch seconds) once it was decoded."""
        key = (self._type(kind), str(outcome))
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(*key)
        child.inc()
        if event_time is not None:
            self.event_age.observe(time.time() - event_time)

    def credit(self, kind: str, outcome: str) -> None:
        """The target's side of an interaction applied to its member."""
        self.credits.labels(self._type(kind), str(outcome)).inc()

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(str(reason)).inc()

    def score_change(self, cause: str) -> None:
        self.score_changes.labels(cause).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)

    # -- wiring to a worker -----------------------------------------------------------------

    def bind(self, hearth: Hearth) -> HearthMetrics:
        """Observe the store's flushes and refresh the gauges on a timer."""
        self._hearth = hearth
        self._inputs = (hearth.topics.activity, hearth.topics.credits)
        for topic in self._inputs:
            self.processing.labels(topic)
        store: Any = hearth.table.data
        stats = getattr(store, "stats", None)
        if isinstance(stats, FlushStats):
            store.stats = _ObservedFlushStats(self, stats)
        hearth.app.timer(REFRESH_SECONDS)(self.refresh)
        return self

    def processed(self, message: Any, started: float) -> None:
        """The scoring agent is done with `message` (of activity or credits), begun at `started`.

        `started` is a `time.perf_counter()` reading; the offset feeds the lag gauge.
        """
        self.processing.labels(message.topic).observe(time.perf_counter() - started)
        self._next_offset[message.tp] = message.offset + 1

    async def refresh(self) -> None:
        """Update the gauges that are read off the worker rather than counted."""
        hearth = self._hearth
        if hearth is None:
            return
        self._refresh_lag(hearth)
        self.members.set(len(hearth.table.data))
        if math.isfinite(hearth.watermark):
            self.watermark.set(hearth.watermark)
        now = time.monotonic()
        if now >= self._next_scan and not hearth.app.rebalancing:
            self._next_scan = now + SCAN_SECONDS
            self._scan_states(hearth)

    def _refresh_lag(self, hearth: Hearth) -> None:
        consumer = hearth.app.consumer
        # Faust keeps the last committed offsets privately; they cover partitions on which this
        # process has processed nothing yet (just assigned, or stalled since the start).
        committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
        seen: set[tuple[str, str]] = set()
        try:
            assignment: Iterable[Any] = consumer.assignment()
        except Exception:  # noqa: BLE001 - consumer not started yet: nothing to report
            assignment = ()
        for tp in assignment:
            if tp.topic not in self._inputs:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile
                log.debug("no high watermark for %s: %r", tp, exc)
                continue
            if highwater is None:
                continue
            position = max(self._next_offset.get(tp, 0), committed.get(tp) or 0)
            labels = (tp.topic, str(tp.partition))
            self.lag.labels(*labels).set(max(0, highwater - position))
            seen.add(labels)
        for labels in self._lag_labels - seen:
            self.lag.remove(*labels)
        self._lag_labels = seen

    def _scan_states(self, hearth: Hearth) -> None:
        counts = dict.fromkeys(self._tiers, 0)
        automation = collusion = 0
        states = hearth.states
        for key in states:
            state = states.get(key)
            if state is None:
                continue
            if 0 <= state.tier < len(self._tiers):
                counts[self._tiers[state.tier]] += 1
            automation += state.automation is not None
            collusion += state.collusion is not None
        for tier, count in counts.items():
            self.tier_members.labels(tier).set(count)
        self.automation.set(automation)
        self.collusion.set(collusion)
        store: Any = hearth.table.data
        self.state_bytes.set(store.bytes_held())


class _ObservedFlushStats(FlushStats):
    """The store's flush counters, observed into the metrics as the store updates them.

    `RedisStore.flush` adds to `failures`/`fenced` per failed partition and sets
    `last_duration` once per flush, after adding the flush's keys to `keys_flushed`.
    The observer's own fields are slots, so `vars()` (what /stats shows) stays the counters.
    """

    __slots__ = ("_keys_seen", "_metrics")
    _keys_seen: int
    _metrics: HearthMetrics

    def __init__(self, metrics: HearthMetrics, current: FlushStats) -> None:
        object.__setattr__(self, "_metrics", metrics)
        object.__setattr__(self, "_keys_seen", current.keys_flushed)
        vars(self).update(vars(current))

    def __setattr__(self, name: str, value: Any) -> None:
        metrics = self._metrics
        if name in ("failures", "fenced"):
            added = value - getattr(self, name, 0)
            if added > 0:
                reason = "error" if name == "failures" else "fenced"
                metrics.flush_failures.labels(reason).inc(added)
        elif name == "last_duration":
            metrics.flush_duration.observe(value)
            metrics.flush_keys.observe(self.keys_flushed - self._keys_seen)
            object.__setattr__(self, "_keys_seen", self.keys_flushed)
        object.__setattr__(self, name, value)
