"""The worker's metrics (agents/metrics.py) and the names the alerts and the dashboard rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import CONTENT_TYPE, HearthMetrics
from agents.redis_store import FlushStats
from scoring.policy import Policy
from scoring.state import MemberState

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_LABELS = {"type", "outcome", "reason", "cause", "topic", "partition", "tier"}
ACTIVITY, CREDITS = "h.activity", "h.credits"


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: dict[TP, int | None] = {}  # tp -> high watermark
        self._committed_offset: dict[TP, int | None] = {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int | None:
        return self.assigned[tp]


class FakeStore(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.stats = FlushStats()

    def bytes_held(self) -> int:
        return sum(map(len, self.values()))


def fake_hearth(policy: Policy) -> Any:
    timers: list[tuple[float, Any]] = []

    def timer(interval: float) -> Any:
        def register(fun: Any) -> Any:
            timers.append((interval, fun))
            return fun

        return register

    app = SimpleNamespace(consumer=FakeConsumer(), rebalancing=False, timer=timer, timers=timers)
    return SimpleNamespace(
        app=app,
        policy=policy,
        topics=SimpleNamespace(activity=ACTIVITY, credits=CREDITS),
        table=SimpleNamespace(data=FakeStore()),
        states={},
        watermark=float("-inf"),
    )


def value(metrics: HearthMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def message(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=topic, tp=TP(topic, partition), offset=offset)


@pytest.fixture
def bound(default_policy: Policy) -> tuple[HearthMetrics, Any]:
    hearth = fake_hearth(default_policy)
    return HearthMetrics(default_policy).bind(hearth), hearth


# -- exposition ---------------------------------------------------------------------------


def test_names_units_and_labels_follow_the_conventions(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    ours = [f for f in families if not f.name.startswith("process_")]
    assert len(ours) >= 15
    for family in ours:
        assert family.name.startswith("hearth_"), family.name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|bytes_total)$", family.name)
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            labels = set(sample.labels) - {"le"}
            if sample.name != "hearth_worker_info":
                assert labels <= ALLOWED_LABELS, (sample.name, labels)


def test_known_series_exist_at_zero_before_any_event(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    for kind in default_policy.rules:
        assert value(metrics, "hearth_events_consumed_total", type=kind, outcome="applied") == 0
    assert (
        value(metrics, "hearth_events_consumed_total", type="unknown", outcome="dead_letter") == 0
    )
    assert value(metrics, "hearth_dead_letters_total", reason="too_late") == 0
    for cause in ("event", "decay", "collusion"):
        assert value(metrics, "hearth_score_changes_total", cause=cause) == 0
    for tier in default_policy.tier_names:
        assert value(metrics, "hearth_tier_members", tier=tier) == 0


def test_worker_info_carries_version_and_policy_digest(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    text = metrics.exposition().decode()
    (line,) = [x for x in text.splitlines() if x.startswith("hearth_worker_info{")]
    assert f'policy_hash="{default_policy.digest}"' in line
    assert re.search(r'version="\d+\.\d+', line)


def test_content_type_is_the_text_format_0_0_4() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_each_instance_has_its_own_registry(default_policy: Policy) -> None:
    first, second = HearthMetrics(default_policy), HearthMetrics(default_policy)
    first.event("post.created", "applied")
    assert value(first, "hearth_events_consumed_total", type="post.created", outcome="applied") == 1
    assert (
        value(second, "hearth_events_consumed_total", type="post.created", outcome="applied") == 0
    )


# -- recording ----------------------------------------------------------------------------


def test_type_label_is_the_catalog_or_unknown(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    metrics.event("post.created", "applied", 0.0)
    metrics.event("made.up", "rekeyed")
    metrics.event(None, "dead_letter")
    metrics.credit("no.such.type", "applied")
    assert (
        value(metrics, "hearth_events_consumed_total", type="post.created", outcome="applied") == 1
    )
    assert value(metrics, "hearth_events_consumed_total", type="unknown", outcome="rekeyed") == 1
    assert (
        value(metrics, "hearth_events_consumed_total", type="unknown", outcome="dead_letter") == 1
    )
    assert value(metrics, "hearth_target_credits_total", type="unknown", outcome="applied") == 1
    text = metrics.exposition().decode()
    assert "made.up" not in text and "no.such.type" not in text


def test_event_age_is_observed_only_for_decoded_events(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    metrics.event(None, "dead_letter")
    assert value(metrics, "hearth_event_age_seconds_count") == 0
    metrics.event("post.created", "applied", 1_000.0)
    assert value(metrics, "hearth_event_age_seconds_count") == 1
    assert value(metrics, "hearth_event_age_seconds_bucket", le="+Inf") == 1
    assert value(metrics, "hearth_event_age_seconds_bucket", le="2.592e+06") == 0  # decades old


def test_dead_letters_and_score_changes(default_policy: Policy) -> None:
    metrics = HearthMetrics(default_policy)
    metrics.dead_letter("invalid_json")
    metrics.dead_letter("invalid_json")
    metrics.score_change("decay")
    assert value(metrics, "hearth_dead_letters_total", reason="invalid_json") == 2
    assert value(metrics, "hearth_score_changes_total", cause="decay") == 1


def test_processing_time_is_observed_per_input_topic(bound: tuple[HearthMetrics, Any]) -> None:
    metrics, _ = bound
    assert value(metrics, "hearth_event_processing_seconds_count", topic=ACTIVITY) == 0
    assert value(metrics, "hearth_event_processing_seconds_count", topic=CREDITS) == 0
    metrics.processed(message(ACTIVITY, 0, 5), started=0.0)
    assert value(metrics, "hearth_event_processing_seconds_count", topic=ACTIVITY) == 1
    assert (
        value(metrics, "hearth_event_processing_seconds_bucket", topic=ACTIVITY, le="0.0005") == 0
    )


# -- gauges refreshed by the timer --------------------------------------------------------


async def _refresh(metrics: HearthMetrics) -> None:
    await metrics.refresh()


def refresh(metrics: HearthMetrics) -> None:
    import asyncio

    asyncio.run(_refresh(metrics))


def test_bind_registers_the_refresh_timer(bound: tuple[HearthMetrics, Any]) -> None:
    metrics, hearth = bound
    ((interval, fun),) = hearth.app.timers
    assert 0 < interval <= 5 and fun == metrics.refresh


def test_lag_is_high_watermark_minus_next_offset(bound: tuple[HearthMetrics, Any]) -> None:
    metrics, hearth = bound
    consumer = hearth.app.consumer
    a0, a1, c0 = TP(ACTIVITY, 0), TP(ACTIVITY, 1), TP(CREDITS, 0)
    consumer.assigned = {a0: 100, a1: 40, c0: None, TP("other", 0): 7}
    consumer._committed_offset = {a0: 60}
    refresh(metrics)
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="0") == 40
    # Nothing processed nor committed: everything from the start is waiting.
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="1") == 40
    # No high watermark yet (nothing fetched), other topics: no series.
    assert value(metrics, "hearth_consumer_lag_messages", topic=CREDITS, partition="0") is None
    assert value(metrics, "hearth_consumer_lag_messages", topic="other", partition="0") is None

    metrics.processed(message(ACTIVITY, 0, 89), started=0.0)  # processed up to offset 89
    metrics.processed(message(ACTIVITY, 1, 39), started=0.0)
    refresh(metrics)
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="0") == 10
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="1") == 0

    # Another worker committed further while this one did not own the partition.
    consumer._committed_offset = {a0: 97}
    refresh(metrics)
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="0") == 3

    # Revoked partitions disappear instead of reporting a stale lag.
    consumer.assigned = {a0: 100}
    refresh(metrics)
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="1") is None
    assert value(metrics, "hearth_consumer_lag_messages", topic=ACTIVITY, partition="0") == 3


def test_lag_is_not_reported_before_the_consumer_starts(bound: tuple[HearthMetrics, Any]) -> None:
    metrics, hearth = bound

    def not_started() -> set[TP]:
        raise RuntimeError("Consumer thread not yet started")

    hearth.app.consumer.assignment = not_started
    refresh(metrics)
    assert "hearth_consumer_lag_messages{" not in metrics.exposition().decode()


def test_members_tiers_and_flags(bound: tuple[HearthMetrics, Any], default_policy: Policy) -> None:
    metrics, hearth = bound
    tiers = default_policy.tier_names
    for i, (tier, automation, collusion) in enumerate(
        [(0, None, None), (0, ("post.created", -0.9), None), (2, None, (3, 0.9)), (4, None, None)]
    ):
        state = MemberState(landmark=0.0)
        state.tier, state.automation, state.collusion = tier, automation, collusion
        hearth.states[("c", f"m{i}")] = state
        hearth.table.data[f"c/m{i}".encode()] = f"state-{i}".encode()
    hearth.watermark = 1_700_000_000.0
    refresh(metrics)
    assert value(metrics, "hearth_members_tracked") == 4
    assert value(metrics, "hearth_member_state_bytes") == 4 * len(b"state-0")
    assert value(metrics, "hearth_tier_members", tier=tiers[0]) == 2
    assert value(metrics, "hearth_tier_members", tier=tiers[1]) == 0
    assert value(metrics, "hearth_tier_members", tier=tiers[2]) == 1
    assert value(metrics, "hearth_tier_members", tier=tiers[4]) == 1
    assert value(metrics, "hearth_automation_suspected_members") == 1
    assert value(metrics, "hearth_collusion_suspected_members") == 1
    assert value(metrics, "hearth_event_time_watermark_seconds") == 1_700_000_000.0
    assert "m0" not in metrics.exposition().decode()


def test_states_are_not_scanned_while_rebalancing(bound: tuple[HearthMetrics, Any]) -> None:
    metrics, hearth = bound
    hearth.app.rebalancing = True
    hearth.states[("c", "m")] = MemberState(landmark=0.0)
    refresh(metrics)
    assert value(metrics, "hearth_tier_members", tier="newcomer") == 0


# -- store flushes ------------------------------------------------------------------------


def test_store_flushes_are_observed_as_the_store_counts_them(
    bound: tuple[HearthMetrics, Any],
) -> None:
    metrics, hearth = bound
    stats = hearth.table.data.stats
    # What RedisStore.flush does: failures/fenced per partition, then the flush's totals.
    stats.failures += 1
    stats.fenced += 2
    stats.flushes += 1
    stats.keys_flushed += 7
    stats.last_duration = 0.004
    stats.flushes += 1
    stats.keys_flushed += 3
    stats.last_duration = 0.002
    assert value(metrics, "hearth_store_flush_duration_seconds_count") == 2
    assert value(metrics, "hearth_store_flush_duration_seconds_sum") == pytest.approx(0.006)
    assert value(metrics, "hearth_store_flush_keys_sum") == 10
    assert value(metrics, "hearth_store_flush_keys_bucket", le="5.0") == 1
    assert value(metrics, "hearth_store_flush_failures_total", reason="error") == 1
    assert value(metrics, "hearth_store_flush_failures_total", reason="fenced") == 2
    # /stats shows vars(stats): still the plain counters, JSON-serialisable.
    assert json.loads(json.dumps(vars(stats))) == {
        "flushes": 2,
        "keys_flushed": 10,
        "failures": 1,
        "fenced": 2,
        "last_duration": 0.002,
        "loaded_keys": 0,
        "changelog_applied": 0,
    }


def test_counts_from_before_binding_are_kept(default_policy: Policy) -> None:
    hearth = fake_hearth(default_policy)
    hearth.table.data.stats.flushes = 3
    hearth.table.data.stats.keys_flushed = 30
    HearthMetrics(default_policy).bind(hearth)
    stats = hearth.table.data.stats
    assert (stats.flushes, stats.keys_flushed) == (3, 30)


# -- names used by the deploy files -------------------------------------------------------


def _sample_names(policy: Policy) -> set[str]:
    metrics = HearthMetrics(policy)
    metrics.processed(message(ACTIVITY, 0, 0), started=0.0)
    families = text_string_to_metric_families(metrics.exposition().decode())
    names = {sample.name for family in families for sample in family.samples}
    return names | {"hearth_consumer_lag_messages"}  # a gauge with series per assignment


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "hearth.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _alert_exprs() -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_the_deploy_files_query_exists(default_policy: Policy, source: str) -> None:
    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    known = _sample_names(default_policy)
    used = {name for expr in exprs for name in re.findall(r"\bhearth_[a-z0-9_]+\b", expr)}
    assert used, "no hearth_ metric queried"
    assert used <= known, f"unknown metrics: {sorted(used - known)}"
