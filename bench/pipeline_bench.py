"""Pipeline benchmark: Hearth's worker against a raw consumer and a naive Faust agent (issue 6).

Usage:
  python bench/pipeline_bench.py [--events 1000000] [--members 100000] [--partitions 4]
      [--rate 2000] [--latency-seconds 30] [--out build/bench/pipeline.json]
      [--skip-preload --prefix PREFIX.] [--keep-input] [--profile-seconds 20]

On the real Kafka and Redis of `deploy/services.sh up`, in one run:
  1. preload: N synthetic events (stream.synthetic.generate_bulk) over M members of one community
     into a fresh topic PREFIX + "activity" with stream.publisher.publish;
  2. raw: a plain AIOKafkaConsumer decoding every message into ActivityEvent (msgspec), no more;
  3. naive: bench/naive_agent.py, a default-settings Faust agent applying Engine.apply_side
     (actor side only) per event to a table of encoded states;
  4. hearth: `hearth worker` as shipped (HEARTH_DECAY_CLOCK=event), until /stats "consumed"
     reaches N and the group has committed the end of the topic; worker RSS every second;
     py-spy for --profile-seconds; Redis bytes per member (MEMORY USAGE, INFO used_memory);
  5. latency: the same worker, caught up, offered --rate events/s for --latency-seconds; every
     20th event is the first event of a fresh member, and publish -> visible is the time until
     its state is in the table hash `hearth:table:{app}:members:p{partition}` in Redis (polled).
Prints a table and writes JSON (command, git commit, machine load per stage, timestamp).

Throughput of a worker is (N - c0) / (t_N - t0), where (t0, c0) is the first progress sample with
anything consumed: startup, topic creation and the group join are excluded (reported apart).
The worker's Redis database is claimed from 15 downwards with the integration tests' lock key, so
neither flushes the other. Everything the run creates (subprocesses, topics, consumer groups,
Redis keys, data dirs) is removed on exit, also on Ctrl-C or SIGTERM; logs and the profile stay
in build/bench/<run id>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from stream.contract import ActivityEvent
from stream.publisher import event_key, publish
from stream.synthetic import generate_bulk
from stream.topics import TopicSpec, ensure_topics

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DB_LOCK = "hearth-tests:pipeline-db"  # the integration tests' claim on a Redis database
LOCK_TTL = 1800
PRELOAD_DAYS = 30
SAMPLE_EVERY = 20  # latency: every 20th event is a fresh member's first event
POLL_SECONDS = 0.01  # latency: Redis polled every 10 ms ...
POLL_HEAD = 8  # ... for the 8 oldest pending samples of each partition
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- small helpers ---------------------------------------------------------------------------


def machine_load() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "cpus": os.cpu_count()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return str(done.stdout).strip()
    except OSError:
        return ""


def code_state() -> dict[str, Any]:
    """HEAD and the uncommitted changes of the pipeline's code at this moment."""
    paths = ("agents", "scoring", "stream")
    changed = [ln for ln in git("status", "--porcelain", "--", *paths).splitlines() if ln]
    digest = hashlib.sha1(git("diff", "HEAD", "--", *paths).encode())  # noqa: S324
    for line in changed:
        if line.startswith("??"):
            path = ROOT / line[3:]
            if path.is_file():
                digest.update(path.read_bytes())
    return {"head": git("rev-parse", "HEAD"), "changed": changed, "sha1": digest.hexdigest()}


def export_code(revision: str, into: Path) -> str:
    """The pipeline's packages at `revision` (git archive) in `into`; returns the commit."""
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    if not commit:
        raise SystemExit(f"--code: {revision!r} is not a git revision")
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", "--format=tar", commit, "agents", "scoring", "stream"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- profile summary -------------------------------------------------------------------------


def _idle(frame: str) -> bool:
    """A thread waiting in its event loop's selector (py-spy --idle keeps those samples)."""
    return frame.startswith(("EpollSelector.select", "select (selectors.py)", "poll ("))


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Per-thread busy share, and self/inclusive samples of the main thread's functions.

    Reads py-spy's raw (collapsed) output recorded with --idle --threads --nolineno: each line
    is `thread (tid): name;frame;...;leaf count`. Percentages are of the main thread's busy
    samples (not waiting in the selector); wrappers on nearly every stack are left out.
    """
    threads: dict[str, list[int]] = {}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    callers: dict[str, Counter[str]] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        thread, *frames = stack.split(";")
        name = thread.partition(": ")[2] or thread
        idle = bool(frames) and _idle(frames[-1])
        totals = threads.setdefault(name, [0, 0])
        totals[0] += n
        totals[1] += n if idle else 0
        if name != "MainThread" or idle or not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
        if len(frames) > 1:
            callers.setdefault(frames[-1], Counter())[" <- ".join(frames[-4:-1][::-1])] += n
    main_total, main_idle = threads.get("MainThread", [0, 0])
    busy = max(1, main_total - main_idle)

    def rows(counter: Counter[str], with_callers: bool) -> list[dict[str, Any]]:
        picked = [(f, n) for f, n in counter.most_common() if n < 0.97 * busy][:top]
        out = []
        for frame, n in picked:
            row: dict[str, Any] = {"function": frame, "pct_busy": round(100 * n / busy, 1)}
            if with_callers and frame in callers:
                row["callers"] = [c for c, _ in callers[frame].most_common(2)]
            out.append(row)
        return out

    return {
        "main_thread_samples": main_total,
        "main_thread_idle_pct": round(100 * main_idle / max(1, main_total), 1),
        "threads": {
            name: {"samples": t, "busy_pct": round(100 * (t - i) / max(1, t), 1)}
            for name, (t, i) in threads.items()
        },
        "self": rows(own, True),
        "inclusive": rows(inclusive, False),
    }


# -- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = f"bench{int(time.time())}{uuid.uuid4().hex[:4]}"
        self.prefix: str = args.prefix or f"{self.run_id}."
        self.topic = f"{self.prefix}activity"
        self.community = self.prefix.rstrip(".").replace("/", "-")[:64]
        self.hearth_app = f"{self.run_id}-hearth"
        self.naive_app = f"{self.run_id}-naive"
        self.raw_group = f"{self.run_id}-raw"
        self.dir = ROOT / "build" / "bench" / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap: str = args.bootstrap
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_url = ""
        self.redis_db: int | None = None
        self._lock_token = uuid.uuid4().hex
        self._lock_stop = threading.Event()
        self._lock_thread: threading.Thread | None = None
        self.events = args.events
        self.pythonpath: str | None = None
        if args.code == "worktree":
            code: dict[str, Any] = {"source": "worktree", **code_state()}
        elif Path(args.code).is_dir():
            # An experiment: a modified copy of agents/, scoring/, stream/ outside the repo.
            self.pythonpath = str(Path(args.code).resolve())
            code = {"source": f"directory {self.pythonpath}", "commit": "-"}
        else:
            self.pythonpath = str(self.dir / "code")
            commit = export_code(args.code, self.dir / "code")
            code = {"source": f"git archive {args.code}", "commit": commit}
        self.results: dict[str, Any] = {
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty_files": len([ln for ln in git("status", "--porcelain").splitlines() if ln]),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "code": code,
            "run_id": self.run_id,
            "topic": self.topic,
            "community": self.community,
            "events": args.events,
            "members": args.members,
            "partitions": args.partitions,
            "load_at_start": machine_load(),
            "stages": {},
        }

    # -- Redis database claim ----------------------------------------------------------------

    def claim_redis_db(self) -> None:
        parts = urlsplit(self.args.redis_url)
        for db in range(15, 0, -1):
            url = urlunsplit(parts._replace(path=f"/{db}"))
            client = redis.Redis.from_url(url)
            try:
                if client.set(DB_LOCK, self._lock_token, nx=True, ex=LOCK_TTL):
                    self.redis_url, self.redis_db = url, db
                    break
            finally:
                client.close()
        else:
            raise SystemExit("no free Redis database among 1-15 (all hold the pipeline lock)")
        self._lock_thread = threading.Thread(target=self._keep_lock, daemon=True)
        self._lock_thread.start()
        log(f"Redis database {self.redis_db} claimed")

    def _keep_lock(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            while not self._lock_stop.wait(60):
                with contextlib.suppress(redis.RedisError):
                    if client.get(DB_LOCK) == self._lock_token.encode():
                        client.expire(DB_LOCK, LOCK_TTL)
        finally:
            client.close()

    # -- Kafka helpers -----------------------------------------------------------------------

    async def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            ends = await consumer.end_offsets(tps) if tps else {}
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    async def group_lag(self, group: str, topic: str) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        lag = 0
        for partition, end in (await self.end_offsets(topic)).items():
            meta = committed.get(TopicPartition(topic, partition))
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
        return lag

    # -- subprocesses ------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.dir / f"{name}.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603
                argv,
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    **({"PYTHONPATH": self.pythonpath} if self.pythonpath else {}),
                    **env,
                },
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(process)
        log(f"started {name} (pid {process.pid}), log {log_path.relative_to(ROOT)}")
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 45.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process in self.procs:
            self.procs.remove(process)

    # -- stage 1: preload --------------------------------------------------------------------

    async def preload(self) -> None:
        args = self.args
        stage: dict[str, Any] = {"load_before": machine_load()}
        if args.skip_preload:
            ends = await self.end_offsets(self.topic)
            if not ends or not sum(ends.values()):
                raise SystemExit(f"--skip-preload: topic {self.topic} is missing or empty")
            self.events = sum(ends.values())
            stage.update(skipped=True, events=self.events)
            self.results["events"] = self.events
            self.results["stages"]["preload"] = stage
            log(f"preload skipped: {self.topic} holds {self.events} events")
            return
        await ensure_topics(self.bootstrap, [TopicSpec(self.topic, args.partitions)])
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=PRELOAD_DAYS + 1)
        records = enumerate(
            generate_bulk(
                seed=args.seed,
                events=args.events,
                members=args.members,
                community=self.community,
                start=start,
                days=PRELOAD_DAYS,
            ),
            start=1,
        )
        log(f"preloading {args.events} events over {args.members} members into {self.topic}")
        t0 = time.perf_counter()
        result = await publish(self.bootstrap, self.topic, records)
        elapsed = time.perf_counter() - t0
        if result.failed:
            raise SystemExit(f"preload: {result.failed} failed: {result.errors[:3]}")
        ends = await self.end_offsets(self.topic)
        if sum(ends.values()) != args.events:
            raise SystemExit(f"preload: topic holds {sum(ends.values())} != {args.events}")
        stage.update(
            events=result.sent,
            seconds=round(elapsed, 2),
            events_per_second=round(result.sent / elapsed),
            per_partition=ends,
            event_time_start=start.isoformat(),
            load_after=machine_load(),
        )
        self.results["stages"]["preload"] = stage
        log(f"preload: {result.sent} events in {elapsed:.1f} s = {result.sent / elapsed:,.0f}/s")

    # -- stage 2: raw consumer ---------------------------------------------------------------

    async def raw(self) -> None:
        stage: dict[str, Any] = {"load_before": machine_load()}
        decoder = msgspec.json.Decoder(ActivityEvent)
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.raw_group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        started = time.perf_counter()
        await consumer.start()
        count = errors = 0
        first: float | None = None
        cpu0 = time.process_time()
        deadline = started + self.args.stage_timeout
        try:
            while count < self.events and time.perf_counter() < deadline:
                batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
                if first is None and batches:
                    first = time.perf_counter()
                for messages in batches.values():
                    for message in messages:
                        try:
                            decoder.decode(message.value)
                        except msgspec.DecodeError:
                            errors += 1
                    count += len(messages)
        finally:
            done = time.perf_counter()
            await consumer.stop()
        cpu = time.process_time() - cpu0
        elapsed = done - (first or started)
        stage.update(
            events=count,
            decode_errors=errors,
            seconds=round(elapsed, 2),
            startup_seconds=round((first or done) - started, 2),
            events_per_second=round(count / elapsed) if elapsed > 0 else None,
            cpu_seconds=round(cpu, 2),
            timed_out=count < self.events,
            load_after=machine_load(),
        )
        self.results["stages"]["raw"] = stage
        log(f"raw: {count} events in {elapsed:.1f} s = {stage['events_per_second']:,}/s")

    # -- worker stages -----------------------------------------------------------------------

    async def _monitor(self, process: subprocess.Popen[bytes], out: list[list[float]]) -> None:
        """RSS (MB) and CPU seconds of the worker once a second: [t since spawn, rss, cpu]."""
        origin = time.perf_counter()
        while process.poll() is None:
            rss, cpu = rss_mb(process.pid), cpu_seconds(process.pid)
            if rss is not None and cpu is not None:
                out.append([round(time.perf_counter() - origin, 1), round(rss, 1), cpu])
            await asyncio.sleep(1.0)

    async def _profile(
        self, pid: int, name: str, delay: float, seconds: int | None = None
    ) -> dict[str, Any] | None:
        seconds = self.args.profile_seconds if seconds is None else seconds
        py_spy = BIN / "py-spy" if (BIN / "py-spy").exists() else shutil.which("py-spy")
        if not seconds or py_spy is None:
            return None
        await asyncio.sleep(delay)
        path = self.dir / f"{name}-profile.txt"
        argv = [str(py_spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "100"]
        argv += ["--idle", "--threads", "--nolineno", "-f", "raw", "-o", str(path)]
        log(f"py-spy on {name} for {seconds} s -> {path.relative_to(ROOT)}")
        process = self.spawn(f"{name}-py-spy", argv, {})
        await asyncio.to_thread(process.wait)
        self.procs.remove(process)
        if process.returncode != 0 or not path.exists():
            log(f"py-spy exited {process.returncode}; see {name}-py-spy.log")
            return None
        summary = summarize_profile(path)
        summary["file"] = str(path.relative_to(ROOT))
        return summary

    async def _drive(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        progress: Callable[[], Awaitable[int | None]],
        profile: bool,
    ) -> dict[str, Any]:
        """Poll `progress` until it reaches N; throughput, startup time, profile."""
        spawned = time.perf_counter()
        deadline = spawned + self.args.stage_timeout
        samples: list[tuple[float, int]] = []
        first: tuple[float, int] | None = None
        profiler: asyncio.Task[dict[str, Any] | None] | None = None
        count = 0
        while count < self.events:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}; see {self.dir}/{name}.log")
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.25)
            value = await progress()
            if value is None:
                continue
            now = time.perf_counter()
            count = value
            samples.append((round(now - spawned, 2), count))
            if first is None and count > 0:
                first = (now, count)
                log(f"{name}: consuming ({count} after {now - spawned:.1f} s)")
                if profile:
                    profiler = asyncio.create_task(self._profile(process.pid, name, 5.0))
            if len(samples) % 40 == 0 and first is not None:
                rate = (count - first[1]) / max(1e-9, now - first[0])
                log(f"{name}: {count}/{self.events} ({rate:,.0f}/s)")
        done = time.perf_counter()
        t0, c0 = first or (done, 0)
        elapsed = done - t0
        stage: dict[str, Any] = {
            "events": count,
            "seconds": round(elapsed, 2),
            "startup_seconds": round(t0 - spawned, 2),
            "events_per_second": round((count - c0) / elapsed) if elapsed > 0 else None,
            "timed_out": count < self.events,
            "progress": samples[:: max(1, len(samples) // 200)],
        }
        if profiler is not None:
            stage["profile"] = await profiler
        return stage

    @staticmethod
    async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status != 200:
                    return None
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    @staticmethod
    def _resources(series: list[list[float]], t_from: float, t_to: float) -> dict[str, Any]:
        window = [s for s in series if t_from <= s[0] <= t_to] or series[-2:]
        if len(window) < 2:
            return {}
        (ta, ra, ca), (tb, rb, cb) = window[0], window[-1]
        return {
            "rss_mb_start": ra,
            "rss_mb_peak": max(s[1] for s in window),
            "rss_mb_end": rb,
            "cpu_cores_used": round((cb - ca) / max(1e-9, tb - ta), 2),
        }

    async def naive(self) -> None:
        port = free_port()
        env = {
            "NAIVE_APP_ID": self.naive_app,
            "NAIVE_TOPIC": self.topic,
            "NAIVE_PARTITIONS": str(self.args.partitions),
            "NAIVE_BOOTSTRAP": self.bootstrap,
            "NAIVE_WEB_PORT": str(port),
            "NAIVE_DATA_DIR": str(self.dir / "naive-data"),
        }
        argv = [sys.executable, str(ROOT / "bench" / "naive_agent.py"), "worker", "-l", "warn"]
        before = machine_load()
        code = code_state() if self.pythonpath is None else None
        process = self.spawn("naive", argv, env)
        series: list[list[float]] = []
        monitor = asyncio.create_task(self._monitor(process, series))
        spawned = time.perf_counter()
        last: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session:

            async def progress() -> int | None:
                body = await self._get_json(session, f"http://127.0.0.1:{port}/count")
                if body is None:
                    return None
                last.update(body)
                return int(body["processed"])

            stage = await self._drive("naive", process, progress, self.args.profile_naive)
        t_end = time.perf_counter() - spawned
        t_start = t_end - stage["seconds"]
        stage.update(self._resources(series, t_start, t_end))
        stage["cpu_us_per_event"] = _per_event(stage)
        stage.update(
            applied=last.get("applied"),
            rejected=last.get("rejected"),
            members=last.get("members"),
            code_at_start=code,
            load_before=before,
            load_after=machine_load(),
            note="actor side only; Faust defaults, in-memory table, state encoded per event",
        )
        self.stop(process)
        monitor.cancel()
        self.results["stages"]["naive"] = stage
        log(f"naive: {stage['events']} events at {stage['events_per_second']:,}/s")

    async def hearth(self) -> None:
        """Throughput, then (same worker, caught up) latency; memory in between."""
        port = free_port()
        env = {
            "HEARTH_APP_ID": self.hearth_app,
            "HEARTH_TOPIC_PREFIX": self.prefix,
            "HEARTH_DATA_DIR": str(self.dir / "hearth-data"),
            "HEARTH_WEB_PORT": str(port),
            "HEARTH_PARTITIONS": str(self.args.partitions),
            "HEARTH_DECAY_CLOCK": "event",
            "HEARTH_REDIS_URL": self.redis_url,
            "HEARTH_KAFKA__BOOTSTRAP": self.bootstrap,
        }
        client = aioredis.from_url(self.redis_url)
        used_before = (await client.info("memory"))["used_memory"]
        before = machine_load()
        code = code_state() if self.pythonpath is None else None
        process = self.spawn("hearth", [str(BIN / "hearth"), "worker"], env)
        series: list[list[float]] = []
        monitor = asyncio.create_task(self._monitor(process, series))
        spawned = time.perf_counter()
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                last: dict[str, Any] = {}

                async def progress() -> int | None:
                    body = await self._get_json(session, f"{url}/stats")
                    if body is None:
                        return None
                    last.clear()
                    last.update(body)
                    return int(body["consumed"])

                stage = await self._drive("hearth", process, progress, True)
                t_end = time.perf_counter() - spawned
                t_start = t_end - stage["seconds"]
                stage.update(self._resources(series, t_start, t_end))
                stage["cpu_us_per_event"] = _per_event(stage)
                stage["load_before"] = before
                stage["load_after"] = machine_load()
                stage["code_at_start"] = code
                # Committed: the group has committed the end of the input.
                deadline = time.perf_counter() + 120
                while time.perf_counter() < deadline:
                    if await self.group_lag(self.hearth_app, self.topic) == 0:
                        break
                    await asyncio.sleep(0.5)
                stage["committed_seconds"] = round(time.perf_counter() - spawned - t_end, 2)
                stats = await self._settle(session, url)
                stage["stats"] = {k: stats.get(k) for k in ("outcomes", "dead_letters", "members")}
                stage["stats"]["score_changes"] = stats.get("score_changes")
                stage["stats"]["store"] = stats.get("store")
                stage["redis"] = await self.redis_memory(client, used_before, stats)
                self.results["stages"]["hearth"] = stage
                log(
                    f"hearth: {stage['events']} events at {stage['events_per_second']:,}/s; "
                    f"RSS {stage.get('rss_mb_start')} -> {stage.get('rss_mb_peak')} MB"
                )
                if self.args.latency_seconds > 0 and not stage["timed_out"]:
                    t_lat = time.perf_counter() - spawned
                    latency = await self.latency(client, session, url, process)
                    t_lat_end = time.perf_counter() - spawned
                    latency.update(self._resources(series, t_lat, t_lat_end))
                    self.results["stages"]["latency"] = latency
        finally:
            self.stop(process)
            monitor.cancel()
            await client.aclose()
        stage = self.results["stages"].setdefault("hearth", {})
        stage["rss_mb_series"] = [s[:2] for s in series[:: max(1, len(series) // 300)]]
        stage["rss_mb_final"] = series[-1][1] if series else None

    async def _settle(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        """Until the worker's counters and flushed keys stay the same for 2 s."""
        seen: tuple[Any, ...] | None = None
        since = time.perf_counter()
        deadline = since + 60
        stats: dict[str, Any] = {}
        while time.perf_counter() < deadline:
            body = await self._get_json(session, f"{url}/stats")
            if body is not None:
                stats = body
                key = (
                    body["consumed"],
                    body["members"],
                    json.dumps(body.get("store"), sort_keys=True),
                )
                if key != seen:
                    seen, since = key, time.perf_counter()
                elif time.perf_counter() - since >= 2.0:
                    break
            await asyncio.sleep(0.25)
        return stats

    async def redis_memory(
        self, client: aioredis.Redis, used_before: int, stats: dict[str, Any]
    ) -> dict[str, Any]:
        """Bytes per member: the table hashes (also the API's read model) and leaderboards."""
        table_prefix = f"hearth:table:{self.hearth_app}:members"
        table_bytes = table_entries = 0
        for p in range(self.args.partitions):
            key = f"{table_prefix}:p{p}"
            table_bytes += await client.memory_usage(key, samples=0) or 0
            table_entries += await client.hlen(key)
        members_on_boards = await client.zcard(f"hearth:lb:{self.community}:overall")
        boards = [k async for k in client.scan_iter(match=f"hearth:lb:{self.community}:*")]
        board_bytes = await self._usage(client, boards)
        used_after = (await client.info("memory"))["used_memory"]
        members = max(1, table_entries)
        return {
            "members_in_table": table_entries,
            "members_on_leaderboards": members_on_boards,
            "table_bytes_per_member": round(table_bytes / members),
            "leaderboard_bytes_per_member": round(board_bytes / max(1, members_on_boards)),
            "total_bytes_per_member": round((table_bytes + board_bytes) / members),
            "used_memory_delta_per_member": round((used_after - used_before) / members),
            "note": "used_memory is server-wide: other tests on the same Redis move it",
        }

    @staticmethod
    async def _usage(client: aioredis.Redis, keys: list[Any]) -> int:
        if not keys:
            return 0
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.memory_usage(key, samples=0)
            return sum(v or 0 for v in await pipe.execute())

    # -- stage 5: latency --------------------------------------------------------------------

    async def latency(
        self,
        client: aioredis.Redis,
        session: aiohttp.ClientSession,
        url: str,
        process: subprocess.Popen[bytes],
    ) -> dict[str, Any]:
        args = self.args
        total = args.rate * args.latency_seconds
        stage: dict[str, Any] = {
            "offered_rate": args.rate,
            "seconds": args.latency_seconds,
            "load_before": machine_load(),
        }
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        generated = list(
            generate_bulk(
                seed=args.seed + 1,
                events=total,
                members=args.members,
                community=self.community,
                start=start,
                days=1,
            )
        )
        times = [msgspec.json.decode(raw)["time"] for raw in generated[::SAMPLE_EVERY]]
        consumed_before = ((await self._get_json(session, f"{url}/stats")) or {}).get("consumed", 0)
        profiler = None
        if args.profile_latency and args.profile_seconds:
            seconds = max(1, min(args.profile_seconds, args.latency_seconds - 4))
            profiler = asyncio.create_task(self._profile(process.pid, "latency", 2.0, seconds))
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1)
        await producer.start()
        partitions = sorted(await producer.partitions_for(self.topic))
        partitioner = DefaultPartitioner()
        # Pending samples per partition, oldest first: a worker applies a partition in order,
        # so polling the head of each queue finds every sample without polling all of them
        # (which, with a backlog, would cost the 2-core machine more than the worker has).
        pending: dict[int, deque[tuple[str, float]]] = {p: deque() for p in partitions}
        seen: list[tuple[float, float]] = []  # (publish offset from start, latency)
        producing = True
        t0 = time.perf_counter()

        def waiting() -> int:
            return sum(len(q) for q in pending.values())

        async def poll() -> None:
            table = f"hearth:table:{self.hearth_app}:members:p"
            drain_deadline = None
            while producing or waiting():
                if not producing:
                    drain_deadline = drain_deadline or time.perf_counter() + args.drain_timeout
                    if time.perf_counter() > drain_deadline or process.poll() is not None:
                        return
                heads = [(p, item) for p, q in pending.items() for item in list(q)[:POLL_HEAD]]
                if heads:
                    async with client.pipeline(transaction=False) as pipe:
                        for partition, (member, _) in heads:
                            pipe.hexists(f"{table}{partition}", f"{self.community}/{member}")
                        found = await pipe.execute()
                    now = time.perf_counter()
                    for (partition, item), hit in zip(heads, found, strict=True):
                        if hit:
                            pending[partition].remove(item)
                            seen.append((item[1] - t0, now - item[1]))
                await asyncio.sleep(POLL_SECONDS)

        lag: list[tuple[float, int, int]] = []  # (t, produced, consumed by the worker)
        produced = 0

        async def watch_lag() -> None:
            while producing:
                body = await self._get_json(session, f"{url}/stats")
                if body is not None:
                    consumed = int(body["consumed"]) - consumed_before
                    lag.append((round(time.perf_counter() - t0, 2), produced, consumed))
                await asyncio.sleep(0.5)

        poller = asyncio.create_task(poll())
        lag_watcher = asyncio.create_task(watch_lag())
        log(f"latency: offering {args.rate}/s for {args.latency_seconds} s")
        try:
            for index, raw in enumerate(generated):
                due = t0 + index / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = event_key(raw) or b""
                if index % SAMPLE_EVERY == 0:
                    member = f"lat{index}"
                    raw = msgspec.json.encode(
                        {
                            "id": f"{self.run_id}-lat-{index}",
                            "type": "post.created",
                            "community": self.community,
                            "actor": member,
                            "time": times[index // SAMPLE_EVERY],
                        }
                    )
                    key = f"{self.community}/{member}".encode()
                    partition = partitioner(key, partitions, partitions)
                    pending[partition].append((member, time.perf_counter()))
                await producer.send(self.topic, value=raw, key=key)
                produced += 1
            await producer.flush()
        finally:
            produced_seconds = time.perf_counter() - t0
            producing = False
            await producer.stop()
        await poller
        await lag_watcher
        waited = time.perf_counter() - t0 - produced_seconds
        stats = (await self._get_json(session, f"{url}/stats")) or {}
        never = waiting()
        # Never visible (within --drain-timeout) counts as infinitely late.
        latencies = [lat for _, lat in seen] + [math.inf] * never
        half = args.latency_seconds / 2
        stage.update(
            produced=total,
            produced_seconds=round(produced_seconds, 2),
            achieved_offered_rate=round(total / produced_seconds),
            samples=len(seen) + never,
            visible=len(seen),
            never_visible=never,
            drain_seconds=round(waited, 2),
            worker_consumed=stats.get("consumed", 0) - consumed_before,
            p50_ms=_ms(percentile(latencies, 50)),
            p90_ms=_ms(percentile(latencies, 90)),
            p99_ms=_ms(percentile(latencies, 99)),
            max_visible_ms=_ms(max(lat for _, lat in seen) if seen else None),
            p50_ms_first_half=_ms(percentile([lat for s, lat in seen if s < half], 50)),
            p50_ms_second_half=_ms(percentile([lat for s, lat in seen if s >= half], 50)),
            poll_interval_ms=POLL_SECONDS * 1000,
            consumer_lag_events_max=max((p - c for _, p, c in lag), default=None),
            consumer_lag_samples=lag,
            samples_publish_s_latency_ms=[(round(s, 3), round(lat * 1000, 1)) for s, lat in seen],
            note="never-visible samples count as infinite (null when a percentile falls there)",
            load_after=machine_load(),
        )
        if profiler is not None:
            stage["profile"] = await profiler
        log(
            f"latency: p50 {stage['p50_ms']} ms, p99 {stage['p99_ms']} ms "
            f"({len(seen)} visible, {never} never)"
        )
        return stage

    # -- cleanup -----------------------------------------------------------------------------

    def kill_all(self) -> None:
        for process in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(process, timeout=20)

    async def cleanup(self) -> None:
        """Topics, consumer groups, Redis keys of this run; release the database."""
        keep = {self.topic} if self.args.keep_input else set()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30_000)
        try:
            await admin.start()
            topics = [
                t
                for t in await admin.list_topics()
                if (t.startswith(self.run_id) or t.startswith(self.prefix)) and t not in keep
            ]
            if topics:
                await admin.delete_topics(topics)
                log(f"deleted {len(topics)} topics")
            await self._delete_groups(admin, [self.raw_group, self.naive_app, self.hearth_app])
        except Exception as exc:  # noqa: BLE001 - cleanup goes on
            log(f"topic cleanup failed: {exc!r}")
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if self.redis_url:
            client = aioredis.from_url(self.redis_url)
            try:
                patterns = [
                    f"hearth:table:{self.hearth_app}:*",
                    f"hearth:lb:{self.community}:*",
                    f"hearth:watermarks:{self.hearth_app}",
                    f"hearth:credits-safe:{self.hearth_app}",
                ]
                deleted = 0
                for pattern in patterns:
                    batch: list[Any] = []
                    async for key in client.scan_iter(match=pattern, count=5000):
                        batch.append(key)
                        if len(batch) >= 5000:
                            deleted += await client.unlink(*batch)
                            batch = []
                    if batch:
                        deleted += await client.unlink(*batch)
                log(f"deleted {deleted} Redis keys from database {self.redis_db}")
                self._lock_stop.set()
                if await client.get(DB_LOCK) == self._lock_token.encode():
                    await client.delete(DB_LOCK)
            finally:
                await client.aclose()
        for name in ("naive-data", "hearth-data"):
            shutil.rmtree(self.dir / name, ignore_errors=True)

    @staticmethod
    async def _delete_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
        """Best effort: aiokafka's admin client has no delete_consumer_groups."""
        from aiokafka.protocol.admin import DeleteGroupsRequest

        with contextlib.suppress(Exception):
            node = await admin.find_coordinator(groups[0])
            await admin._send_request_to_node(node, DeleteGroupsRequest(groups))


def _per_event(stage: dict[str, Any]) -> float | None:
    """Worker CPU time per event (µs): steadier than events/s when others load the machine."""
    cores, seconds, events = stage.get("cpu_cores_used"), stage["seconds"], stage["events"]
    return round(cores * seconds / events * 1e6) if cores and events else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or math.isinf(seconds) else round(seconds * 1000, 1)


# -- report ----------------------------------------------------------------------------------


def _profile_lines(title: str, profile: dict[str, Any]) -> list[str]:
    lines = [
        f"  profile ({title}): main thread {profile['main_thread_samples']} samples, "
        f"{profile['main_thread_idle_pct']}% idle; % of its busy samples, top self:"
    ]
    lines += [f"    {r['pct_busy']:>5}%  {r['function']}" for r in profile["self"][:12]]
    lines.append("  top inclusive")
    lines += [f"    {r['pct_busy']:>5}%  {r['function']}" for r in profile["inclusive"][:25]]
    return lines


def _latency(stage: dict[str, Any], key: str) -> Any:
    value = stage.get(key)
    return "never" if value is None and stage.get("never_visible") else value


def _code(code: dict[str, Any]) -> str:
    if code.get("source") != "worktree":
        return f"{code['source']} = {code.get('commit', '?')[:10]}"
    changed = len(code.get("changed", []))
    return f"worktree ({changed} changed files in agents/scoring/stream, sha1 {code['sha1'][:8]})"


def report(results: dict[str, Any]) -> str:
    stages = results["stages"]
    raw = stages.get("raw", {}).get("events_per_second")
    naive = stages.get("naive", {}).get("events_per_second")
    hearth = stages.get("hearth", {})
    latency = stages.get("latency", {})
    redis_mem = hearth.get("redis", {})
    rate = hearth.get("events_per_second")

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.3f}" if a and b else "-"

    def fmt(value: Any, suffix: str = "") -> str:
        if value is None:
            return "-"
        if value == "never":
            return "never visible"
        return f"{value:,}{suffix}" if isinstance(value, int | float) else f"{value}{suffix}"

    def load(stage: dict[str, Any]) -> str:
        before = stage.get("load_before", {}).get("loadavg", ["?"])[0]
        after = stage.get("load_after", {}).get("loadavg", ["?"])[0]
        return f"load {before} -> {after}"

    pre = stages.get("preload", {})
    naive_cpu = stages.get("naive", {}).get("cpu_us_per_event")
    lines = [
        f"run {results['run_id']} at {results['timestamp']}, commit {results['git_commit'][:10]}"
        f" (+{results['git_dirty_files']} dirty files), code {_code(results['code'])}, "
        f"{results['events']:,} events / {results['members']:,} members / "
        f"{results['partitions']} partitions",
        f"  {'preload':<26}{fmt(pre.get('events_per_second'), ' ev/s'):>16}   {load(pre)}",
        f"  {'raw consumer':<26}{fmt(raw, ' ev/s'):>16}   {load(stages.get('raw', {}))}",
        f"  {'naive Faust agent':<26}{fmt(naive, ' ev/s'):>16}   {load(stages.get('naive', {}))}"
        f"   (actor side only; {fmt(naive_cpu)} CPU us/event)",
        f"  {'hearth worker':<26}{fmt(rate, ' ev/s'):>16}   {load(hearth)}"
        f"   ({fmt(hearth.get('cpu_us_per_event'))} CPU us/event)",
        f"  {'hearth / raw':<26}{ratio(rate, raw):>16}",
        f"  {'hearth / naive':<26}{ratio(rate, naive):>16}",
        f"  {'latency p50 / p99':<26}"
        f"{fmt(_latency(latency, 'p50_ms'), ' ms'):>16} / {fmt(_latency(latency, 'p99_ms'), ' ms')}"
        f"   at {fmt(latency.get('offered_rate'))} ev/s offered, "
        f"{fmt(latency.get('visible'))} visible, {fmt(latency.get('never_visible'))} never"
        f"   {load(latency)}",
        f"  {'worker RSS start/peak/end':<26}{fmt(hearth.get('rss_mb_start')):>10} / "
        f"{fmt(hearth.get('rss_mb_peak'))} / {fmt(hearth.get('rss_mb_end'))} MB"
        f" (after latency: {fmt(hearth.get('rss_mb_final'))} MB);"
        f" worker CPU {fmt(hearth.get('cpu_cores_used'))} cores",
        f"  {'Redis bytes/member':<26}"
        f"table {fmt(redis_mem.get('table_bytes_per_member'))}, "
        f"leaderboards {fmt(redis_mem.get('leaderboard_bytes_per_member'))}, "
        f"total {fmt(redis_mem.get('total_bytes_per_member'))}; "
        f"used_memory delta {fmt(redis_mem.get('used_memory_delta_per_member'))}",
    ]
    for title, profile in (
        ("throughput", hearth.get("profile")),
        ("latency", latency.get("profile")),
    ):
        if profile:
            lines += _profile_lines(title, profile)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=int, default=2000, help="offered events/s (latency)")
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "pipeline.json")
    parser.add_argument("--skip-preload", action="store_true", help="reuse --prefix's topic")
    parser.add_argument("--prefix", help="topic prefix (default: a new bench<id>.)")
    parser.add_argument("--keep-input", action="store_true", help="do not delete the input")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--code",
        default="worktree",
        help="worktree (the files on disk), a git revision (exported for the workers), or a"
        " directory holding modified agents/, scoring/, stream/ packages (experiments)",
    )
    parser.add_argument("--stages", default="raw,naive,hearth", help="which of raw,naive,hearth")
    parser.add_argument("--stage-timeout", type=float, default=1800.0, help="seconds per stage")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="latency: wait after")
    parser.add_argument("--profile-seconds", type=int, default=20, help="py-spy; 0 disables")
    parser.add_argument("--profile-naive", action="store_true", help="py-spy the naive agent too")
    parser.add_argument(
        "--profile-latency", action="store_true", help="py-spy the worker in the latency stage too"
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("HEARTH_KAFKA__BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.skip_preload and not args.prefix:
        parser.error("--skip-preload needs --prefix of the run whose input topic to reuse")
    stages = set(args.stages.split(","))

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(args)
    log(f"run {bench.run_id}, outputs in {bench.dir.relative_to(ROOT)}")

    async def run() -> None:
        await bench.preload()
        if "raw" in stages:
            await bench.raw()
        if "naive" in stages:
            await bench.naive()
        if "hearth" in stages:
            await bench.hearth()

    try:
        bench.claim_redis_db()
        asyncio.run(run())
    finally:
        bench.kill_all()
        asyncio.run(bench.cleanup())
        bench.results["load_at_end"] = machine_load()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(bench.results, indent=2)
        args.out.write_text(text)
        (bench.dir / "pipeline.json").write_text(text)
        print(report(bench.results))
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
