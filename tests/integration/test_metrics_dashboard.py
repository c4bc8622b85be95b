"""A real worker scraped by a real Prometheus: /metrics, the alert rules and every dashboard panel.

The worker scores a small community log (plus a few undecodable messages); a Prometheus of the
test's own (free port, 1 s scrapes, deploy/prometheus/alerts.yml) scrapes it; then every query of
deploy/grafana/dashboards/hearth.json is evaluated through Prometheus' HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from worker import ROOT, WaitTimeout, Worker, free_port, tail, wait_drained, write_community

from agents.metrics import CONTENT_TYPE

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hearth.json"
# Grafana's variables as a dashboard with 1 s scrapes would resolve them ($__rate_interval is
# at least four scrape intervals).
VARIABLES = {"$__rate_interval": "5s", "$instance": ".*"}
# Panels that must show a positive value at some point of the run, not only exist.
POSITIVE = {
    "Workers up",
    "Events/s",
    "Members tracked",
    "Throughput by outcome",
    "Processing latency",
    "Event age at processing",
    "Dead letters by reason",
    "Score changes by cause",
    "Tier distribution",
    "Members tracked per worker",
    "Store flush latency",
    "Keys per flush",
    "Target credits by outcome",
}
GARBAGE = [b"not json", b'{"id": "x"}', b"\xff\xfe"]


@pytest.fixture(scope="session")
def prometheus_binary(services: None, prometheus_tool: Callable[[str], str]) -> str:
    return prometheus_tool("prometheus")


class Prometheus:
    """A Prometheus server process scraping the given targets every second."""

    def __init__(self, binary: str, directory: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "hearth", "static_configs": [{"targets": targets}]}],
        }
        config_path = directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def api(self, path: str, **params: Any) -> Any:
        """The `data` of a successful API answer; fails on errors and on warnings."""
        body = self.get(f"/api/v1/{path}", **params)
        assert body["status"] == "success", body
        assert not body.get("warnings"), body["warnings"]
        return body["data"]

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited\n{tail(self.log_path)}")
            try:
                last = predicate()
            except (OSError, ValueError, AssertionError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.5)
        raise WaitTimeout(f"timed out waiting for {what} (last: {last!r})\n{tail(self.log_path)}")

    def scalar(self, expr: str) -> float | None:
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(
    prometheus_binary: str, tmp_path: Path
) -> Iterator[Callable[[list[str]], Prometheus]]:
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        server = Prometheus(prometheus_binary, directory, targets)
        started.append(server)
        server.wait_until(server.ready, 60, "/-/ready")
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def _metrics(worker: Worker) -> tuple[str, str]:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:  # noqa: S310
        return response.headers["Content-Type"], response.read().decode()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _total(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str
) -> float:
    return sum(v for labels, v in samples.get(name, []) if match.items() <= labels.items())


def _by(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, label: str
) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in samples.get(name, []):
        if v:
            out[labels[label]] = out.get(labels[label], 0.0) + v
    return out


async def _send_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"garbage")
    finally:
        await producer.stop()


@pytest.fixture
def scored(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> tuple[Worker, list[dict[str, Any]], Callable[[], dict[str, Any]]]:
    """A worker and a function that publishes a small log (with `hearth publish`) and drains it."""
    path = tmp_path / "events.jsonl"
    events = write_community(path, seed=5, divisor=8, days=7)
    worker = make_worker().start()
    worker.wait_ready()

    def publish_and_drain() -> dict[str, Any]:
        topic = f"{worker.topic_prefix}activity"
        command = ["publish", str(path), "--topic", topic, "--bootstrap", kafka_bootstrap]
        run = subprocess.run(
            [sys.executable, "-m", "agents.cli", *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        asyncio.run(_send_raw(kafka_bootstrap, topic, GARBAGE))
        return wait_drained(worker, consumed=len(events) + len(GARBAGE))

    return worker, events, publish_and_drain


def test_metrics_endpoint_matches_the_worker_counters(
    scored: tuple[Worker, list[dict[str, Any]], Callable[[], dict[str, Any]]],
) -> None:
    worker, events, publish_and_drain = scored
    stats = publish_and_drain()
    # Gauges refresh on a timer (tiers every 10 s): wait until they show the drained state.
    deadline = time.monotonic() + 30
    while True:
        content_type, text = _metrics(worker)
        samples = _samples(text)
        tiers = _total(samples, "hearth_tier_members")
        if tiers == stats["members"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert content_type == CONTENT_TYPE

    members = {e["actor"] for e in events} | {e["target"] for e in events if e.get("target")}
    leaked = sorted(m for m in members if m in text)
    assert not leaked, f"member ids in /metrics: {leaked[:10]}"

    outcomes = _by(samples, "hearth_events_consumed_total", "outcome")
    assert sum(outcomes.values()) == stats["consumed"]
    for outcome, count in stats["outcomes"].items():
        if not outcome.startswith("target_"):
            assert outcomes.get(outcome) == count, outcome
    dead_letters = _by(samples, "hearth_dead_letters_total", "reason")
    assert dead_letters == stats["dead_letters"]
    assert outcomes["dead_letter"] == len(GARBAGE)
    assert _by(samples, "hearth_score_changes_total", "cause") == stats["score_changes"]
    credits = _by(samples, "hearth_target_credits_total", "outcome")
    expected_credits = {
        o.removeprefix("target_"): n
        for o, n in stats["outcomes"].items()
        if o.startswith("target_")
    }
    assert credits == expected_credits
    assert _total(samples, "hearth_members_tracked") == stats["members"]
    assert stats["state_bytes"] >= 20 * stats["members"] > 0
    assert tiers == stats["members"], "tier gauges do not cover every member"
    topic = f"{worker.topic_prefix}activity"
    processed = _total(samples, "hearth_event_processing_seconds_count", topic=topic)
    assert processed == stats["consumed"]
    assert _total(samples, "hearth_event_age_seconds_count") == stats["consumed"] - len(GARBAGE)
    store = stats["store"]
    assert _total(samples, "hearth_store_flush_duration_seconds_count") == store["flushes"]
    assert _total(samples, "hearth_store_flush_keys_sum") == store["keys_flushed"]
    assert _total(samples, "hearth_store_flush_failures_total") == 0
    lags = samples["hearth_consumer_lag_messages"]
    assert {labels["partition"] for labels, _ in lags if labels["topic"] == topic} == {
        "0",
        "1",
        "2",
        "3",
    }
    assert all(v == 0 for _, v in lags), lags
    (info,) = samples["hearth_worker_info"]
    assert info[0]["policy_hash"] and info[0]["version"]


def test_every_dashboard_panel_queries_a_real_prometheus(
    scored: tuple[Worker, list[dict[str, Any]], Callable[[], dict[str, Any]]],
    prometheus: Callable[[list[str]], Prometheus],
) -> None:
    worker, events, publish_and_drain = scored
    server = prometheus([f"127.0.0.1:{worker.port}"])
    server.wait_until(lambda: server.scalar('up{job="hearth"}') == 1, 60, "a successful scrape")
    start = time.time() - 2
    stats = publish_and_drain()
    server.wait_until(
        lambda: (
            server.scalar("sum(hearth_events_consumed_total)") == stats["consumed"]
            and server.scalar("sum(hearth_tier_members)") == stats["members"]
        ),
        60,
        "Prometheus to scrape the drained worker",
    )
    time.sleep(2)  # a few more scrapes, so rates over the burst have both ends
    end = time.time()

    dashboard = json.loads(DASHBOARD.read_text())
    problems = []
    for panel in dashboard["panels"]:
        values: list[float] = []
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            if target.get("instant"):
                result = server.api("query", query=expr)["result"]
                values += [float(r["value"][1]) for r in result]
            else:
                result = server.api("query_range", query=expr, start=start, end=end, step=1)[
                    "result"
                ]
                values += [float(v) for r in result for _, v in r["values"]]
            if not result:
                problems.append(f"{panel['title']} [{target['refId']}]: no data for {expr}")
        if panel["title"] in POSITIVE and not any(math.isfinite(v) and v > 0 for v in values):
            problems.append(f"{panel['title']}: never above zero")
    assert not problems, "\n".join(problems)

    # Every alert rule loaded and evaluates without error against real series. The log's
    # events are months old, so the event-age alert is pending (it fires after 15 minutes);
    # nothing else is wrong with this worker.
    groups = server.api("rules")["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert len(rules) == 6
    for name, rule in rules.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
        expected = "pending" if name == "HearthEventAgeP99High" else "inactive"
        assert rule["state"] == expected, (name, rule["alerts"])

    # No label value Prometheus stored names a member.
    members = {e["actor"] for e in events} | {e["target"] for e in events if e.get("target")}
    for label in server.api("labels"):
        stored = set(server.api(f"label/{label}/values"))
        assert not stored & members, f"label {label} holds member ids"
