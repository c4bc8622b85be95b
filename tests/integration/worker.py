"""Starting, watching and stopping `hearth worker` processes in integration tests.

A `Worker` runs the real console entry point (`python -m agents.cli worker`) as a subprocess
with its own app id, topic prefix, data dir, Redis database and a free web port, logs to a
file, and talks to it over its HTTP API. Use it as a context manager (or call `close()`) so the
process is gone when the test ends, passed or not (the `make_worker` fixture does).

Also here, for the pipeline tests: reading a topic to its end, the consumer group's lag,
`wait_drained` (everything consumed, committed and flushed), synthetic logs and score diffs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from scoring.records import MemberScore, ScoreChange
from stream.publisher import publish, read_jsonl
from stream.synthetic import DEFAULT_COUNTS, generate_community, write_jsonl
from stream.topics import admin_client, group_offsets

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true in time (an AssertionError so pytest shows it plainly)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"({path}: {exc})"
    return f"--- last {len(text)} lines of {path} ---\n" + "\n".join(text)


class Worker:
    """One `hearth worker` subprocess at a time; `start()` again after `stop()` to restart it.

    Every start gets a new log file (worker-1.log, worker-2.log, ...) and a new web port; the
    app id, topic prefix, data dir and Redis URL stay, so a restart resumes the same state.
    """

    def __init__(
        self,
        *,
        app_id: str,
        topic_prefix: str,
        data_dir: Path,
        redis_url: str,
        kafka_bootstrap: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.app_id = app_id
        self.topic_prefix = topic_prefix
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.kafka_bootstrap = kafka_bootstrap
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.log_path = log_dir / "worker-0.log"
        self.logs: list[Path] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, **env: str) -> Worker:
        """Launch the worker with the fixed settings plus `env` (HEARTH_* overrides)."""
        if self.running:
            raise RuntimeError("worker already running")
        self.starts += 1
        self.port = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        self.logs.append(self.log_path)
        full_env = {
            **os.environ,
            "HEARTH_APP_ID": self.app_id,
            "HEARTH_TOPIC_PREFIX": self.topic_prefix,
            "HEARTH_DATA_DIR": str(self.data_dir),
            "HEARTH_REDIS_URL": self.redis_url,
            "HEARTH_KAFKA__BOOTSTRAP": self.kafka_bootstrap,
            "HEARTH_DECAY_CLOCK": "event",
            "HEARTH_WEB_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **self.env,
            **env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agents.cli", "worker", "--loglevel", "info"],
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the test runner's group does not reach it
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait for a clean shutdown; SIGKILL if it takes longer than `timeout`."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                raise WaitTimeout(
                    f"worker {process.pid} ignored SIGTERM for {timeout}s; killed\n"
                    + tail(self.log_path)
                ) from None
        self.process = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(10)
        self.process = None

    def close(self) -> None:
        """Kill whatever still runs (cleanup after a failed test)."""
        self.kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing --------------------------------------------------------------------------

    def log_text(self, all_starts: bool = False) -> str:
        paths = self.logs if all_starts else [self.log_path]
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """GET `path`; (status, decoded JSON body) for any status, including 4xx and 5xx."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return exc.code, body

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        status, body = self.request(path, params)
        if status != 200:
            raise AssertionError(f"GET {path} {params or ''} -> {status}: {body}")
        return body

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/stats")
        return stats

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode}\n" + self.log_tail(80)
            )

    def wait_until(
        self,
        predicate: Callable[[], T],
        timeout: float,
        what: str,
        interval: float = 0.25,
    ) -> T:
        """Poll `predicate` until it returns something truthy; fail with the log tail if not.

        Exceptions from `predicate` (the web server not up yet, say) count as "not yet". The
        worker dying fails at once.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            self._check_alive()
            try:
                value = predicate()
            except (OSError, ValueError, AssertionError) as exc:
                value, last = None, exc  # type: ignore[assignment]
            else:
                last = value
                if value:
                    return value
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    f"timed out after {timeout}s waiting for {what} (last: {last!r})\n"
                    + self.log_tail()
                )
            time.sleep(interval)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until /readyz says ready (partitions assigned, Redis reachable)."""

        def ready() -> bool:
            status, body = self.request("/readyz")
            return status == 200 and bool(body.get("ready"))

        self.wait_until(ready, timeout, "/readyz")


# -- Kafka helpers -------------------------------------------------------------------------


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    async with admin_client(bootstrap, timeout_ms=10_000) as admin:
        (described,) = await admin.describe_topics([topic])
    if described["error_code"] != 0:
        raise AssertionError(f"cannot describe topic {topic}: {described}")
    return sorted(p["partition"] for p in described["partitions"])


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> offset one past the last message (what a consumer must reach)."""
    tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, seconds: float = 30.0) -> list[ConsumerRecord]:
    """Every message of `topic` from the beginning up to its current end, in partition order."""
    ends = await end_offsets(bootstrap, topic)
    tps = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
    records: list[ConsumerRecord] = []
    if not tps:
        return records
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + seconds
        while any([await consumer.position(tp) < ends[tp.partition] for tp in tps]):
            if time.monotonic() > deadline:
                raise WaitTimeout(f"could not read {topic} to {ends} within {seconds}s")
            batches = await consumer.getmany(timeout_ms=500)
            for tp, batch in batches.items():
                records.extend(r for r in batch if r.offset < ends[tp.partition])
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages of `topics` that consumer group `group` has not committed yet."""
    committed = await group_offsets(bootstrap, group)
    lag = 0
    for topic in topics:
        for partition, end in (await end_offsets(bootstrap, topic)).items():
            done = max(0, committed.get((topic, partition), 0))
            lag += max(0, end - done)
    return lag


def publish_file(bootstrap: str, topic: str, path: Path) -> int:
    """Publish a JSONL file with the project's publisher; returns the number sent."""
    result = asyncio.run(publish(bootstrap, topic, read_jsonl(path)))
    assert result.failed == 0, result.errors
    return result.sent


def _progress(stats: Mapping[str, Any]) -> tuple[Any, ...]:
    store = stats.get("store", {})
    return (
        stats["consumed"],
        sorted(stats["outcomes"].items()),
        sorted(stats["score_changes"].items()),
        stats["members"],
        store.get("keys_flushed"),
    )


def wait_drained(
    worker: Worker, timeout: float = 120.0, consumed: int | None = None, quiet: float = 1.5
) -> dict[str, Any]:
    """Until the worker has consumed everything published and gone quiet; returns its stats.

    Everything: `consumed` activity messages counted by this process (when given), and the
    app's consumer group has committed the end of the activity and credits topics. Quiet: the
    counters (and the store's flushed keys) stay the same for `quiet` seconds, so the last
    snapshots have reached Redis and the scores topic.
    """
    names = [f"{worker.topic_prefix}activity", f"{worker.topic_prefix}credits"]
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    if consumed is not None:
        worker.wait_until(
            lambda: worker.stats()["consumed"] >= consumed, left(), f"{consumed} consumed"
        )

    def no_lag() -> bool:
        return asyncio.run(group_lag(worker.kafka_bootstrap, worker.app_id, names)) == 0

    worker.wait_until(no_lag, left(), f"group {worker.app_id} to commit the end of {names}", 0.5)
    seen: dict[str, Any] = {"progress": None, "since": time.monotonic()}

    def settled() -> dict[str, Any] | None:
        stats = worker.stats()
        progress = _progress(stats)
        now = time.monotonic()
        if progress != seen["progress"]:
            seen["progress"], seen["since"] = progress, now
            return None
        return stats if now - seen["since"] >= quiet else None

    return worker.wait_until(settled, left(), f"stats to stay unchanged for {quiet}s")


# -- logs and scores -----------------------------------------------------------------------

COMMUNITY = "demo"
LOG_START = datetime(2026, 1, 5, tzinfo=UTC)


def write_community(
    path: Path, *, seed: int, divisor: int = 2, days: int = 20
) -> list[dict[str, Any]]:
    """A synthetic community log (the default archetype counts divided by `divisor`)."""
    counts = {archetype: max(1, n // divisor) for archetype, n in DEFAULT_COUNTS.items()}
    events = generate_community(seed=seed, days=days, start=LOG_START, counts=counts)
    write_jsonl(events, path)
    return events


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def score_mismatches(
    expected: Mapping[str, MemberScore], actual: Mapping[str, MemberScore], what: str
) -> list[str]:
    """Human-readable differences of score, dimensions, tier and flags, member by member."""
    problems = []
    for member in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(member), actual.get(member)
        if want is None or got is None:
            problems.append(f"{member}: only in {'expected' if got is None else what}")
            continue
        if not close(want.score, got.score):
            problems.append(f"{member}: score {want.score!r} != {what} {got.score!r}")
        for dim, value in want.dimensions.items():
            if not close(value, got.dimensions.get(dim, 0.0)):
                problems.append(f"{member}: {dim} {value!r} != {what} {got.dimensions.get(dim)!r}")
        if want.tier != got.tier:
            problems.append(f"{member}: tier {want.tier} != {what} {got.tier}")
        if want.flags != got.flags:
            problems.append(f"{member}: flags {want.flags} != {what} {got.flags}")
    return problems


# -- fault tests: paced publishing, committed offsets, metrics, seqs -------------------------


class PacedPublisher:
    """Publishes a JSONL log in chunks with pauses, from a thread, so faults land mid-stream.

    `published` counts the lines sent so far; `join()` waits for the end and re-raises a
    publishing failure. The publisher retries through a broker outage (it is the platform's
    side, not the system under test).
    """

    def __init__(
        self, bootstrap: str, topic: str, path: Path, *, chunk: int = 100, pause: float = 0.1
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.lines = list(read_jsonl(path))
        self.chunk, self.pause = chunk, pause
        self.published = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-publisher", daemon=True)

    def start(self) -> PacedPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # noqa: BLE001 - re-raised in join()
            self.error = exc

    async def _publish(self) -> None:
        for start in range(0, len(self.lines), self.chunk):
            part = self.lines[start : start + self.chunk]
            for attempt in range(60):
                try:
                    result = await publish(self.bootstrap, self.topic, part)
                except Exception as exc:  # noqa: BLE001 - the broker may be down for a while
                    failure: object = exc
                else:
                    if result.failed == 0:
                        break
                    failure = result.errors
                if attempt == 59:
                    raise AssertionError(f"publishing failed: {failure}")
                # A chunk that failed part-way is sent again whole: its events are duplicates
                # (same ids) that the service must de-duplicate.
                await asyncio.sleep(0.5)
            self.published += len(part)
            await asyncio.sleep(self.pause)

    def join(self, timeout: float = 120.0) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise WaitTimeout(f"publisher still running after {timeout}s ({self.published} sent)")
        if self.error is not None:
            raise self.error
        return self.published


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition -> the group's committed offset on `topic` (0 where nothing is committed)."""
    committed = await group_offsets(bootstrap, group)
    return {
        partition: max(0, committed.get((topic, partition), 0))
        for partition in await partitions_of(bootstrap, topic)
    }


def wait_worker_ready(worker: Worker, timeout: float = 90.0) -> None:
    """Until this start of the worker has joined the group and finished recovery.

    /readyz answers ready before the consumer has joined its group (it only checks that no
    rebalance is under way), so a worker restarted after a crash looks ready while it still
    waits for the dead member's session to expire. Faust logs "Worker ready" once the
    assignment is recovered and the streams resume.
    """
    worker.wait_until(lambda: "Recovery]: Worker ready" in worker.log_text(), timeout, "recovery")
    worker.wait_ready(timeout)


def metric_samples(worker: Worker, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name` on the worker's /metrics, by sorted label pairs."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, labels = head.partition("{")
        if metric != name:
            continue
        pairs = []
        for part in filter(None, labels.rstrip("}").split(",")):
            key, _, quoted = part.partition("=")
            pairs.append((key, quoted.strip('"')))
        samples[tuple(sorted(pairs))] = float(value)
    return samples


def metric_by(worker: Worker, name: str, label: str) -> dict[str, float]:
    """Metric `name` summed by one label."""
    totals: dict[str, float] = {}
    for labels, value in metric_samples(worker, name).items():
        key = dict(labels).get(label, "")
        totals[key] = totals.get(key, 0.0) + value
    return totals


_score_change = msgspec.json.Decoder(ScoreChange)


def score_change_seqs(bootstrap: str, topic: str) -> dict[str, list[int]]:
    """Each member's score-change seq numbers in the order they were published."""
    seqs: dict[str, list[int]] = {}
    for record in asyncio.run(read_topic(bootstrap, topic)):
        change = _score_change.decode(record.value)
        seqs.setdefault(f"{change.community}/{change.member}", []).append(change.seq)
    return seqs


def seq_gaps(seqs: Mapping[str, list[int]]) -> list[str]:
    """Members whose seqs, repeats aside (at least once may publish one again), miss a number."""
    problems = []
    for member, numbers in sorted(seqs.items()):
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        if missing:
            problems.append(f"{member}: missing {missing} in {numbers}")
    return problems
