"""Soak: a steady offered load against one worker for a while, reporting throughput, lag and RSS.

Usage: python bench/soak.py [--rate 500] [--minutes 10] [--members 2000]
                            [--event-hours-per-second 12] [--out FILE]
Needs the services of `make services-up`. Prints one line per sample and a summary; RSS must
plateau (the summary compares the last third of the run with the middle third).

Memory is bounded by what the worker must hold, not by events or minutes: one state per member
(open days keep what late events still need; closed days fold into fixed-size statistics, one
set per action kind the member has done), and the collusion graph's one window
(`collusion.window_days`, 90) of interactions. A leak shows as RSS growing after these stop
growing, so the soak makes them full early:
- time-lapse: event time advances `--event-hours-per-second` hours per second of the run (12:
  the graph window is full after 3 minutes, ten minutes cover 300 days ending now) and the worker
  decays and closes days by event time; 0 sends live events (today's day never closes);
- a population every member of which is active throughout (2,000 members, heavy-tailed
  activity). With many rarely active members (`--members 20000`) states keep filling for the
  whole run, each member's first event of another action kind adding its statistics: the
  summary's `state_mib` (encoded member state held) shows that growth beside RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from stream.synthetic import generate_bulk

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:  # noqa: S310
        result: dict[str, Any] = json.load(answer)
        return result


BOOTSTRAP = os.environ.get("HEARTH_KAFKA__BOOTSTRAP", "127.0.0.1:9092")


async def produce(
    topic: str, rate: int, seconds: float, members: int, lapse: float, sent: list[int]
) -> None:
    """Offer `rate` events/s for `seconds`; event time runs `lapse` hours per second."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    try:
        events = generate_bulk(
            seed=3,
            events=int(rate * seconds) + 1,
            members=members,
            start=datetime.now(UTC),
            days=max(1, int(seconds // 86400) + 1),
        )
        started = time.monotonic()
        first_event = time.time() - seconds * lapse * 3600
        for n, raw in enumerate(events):
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.loads(raw)
            elapsed = time.monotonic() - started
            at = first_event + elapsed * lapse * 3600 if lapse else time.time()
            body["time"] = datetime.fromtimestamp(at, UTC).isoformat()
            key = f"{body['community']}/{body['actor']}".encode()
            await producer.send(topic, json.dumps(body).encode(), key=key)
            sent[0] = n + 1
            if time.monotonic() - started > seconds:
                break
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--event-hours-per-second", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=ROOT / "build/bench/soak.json")
    args = parser.parse_args()

    run_id = f"soak{int(time.time())}"
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="hearth-soak-"))
    env = {
        **os.environ,
        "HEARTH_APP_ID": run_id,
        "HEARTH_TOPIC_PREFIX": f"{run_id}.",
        "HEARTH_WEB_PORT": str(port),
        "HEARTH_DATA_DIR": str(data_dir),
        "HEARTH_DECAY_CLOCK": "event" if args.event_hours_per_second else "wall",
    }
    log = (data_dir / "worker.log").open("wb")
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "agents.cli", "worker"], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    samples: list[dict[str, Any]] = []
    sent = [0]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                stats(port)
                break
            except OSError:
                time.sleep(1)
        seconds = args.minutes * 60
        loop = asyncio.new_event_loop()
        producer = loop.run_in_executor(
            None,
            lambda: asyncio.run(
                produce(
                    f"{run_id}.activity",
                    args.rate,
                    seconds,
                    args.members,
                    args.event_hours_per_second,
                    sent,
                )
            ),
        )
        started = time.monotonic()
        previous = (started, 0)
        while not producer.done() or time.monotonic() - started < seconds + 5:
            loop.run_until_complete(asyncio.sleep(args.sample_seconds))
            now = time.monotonic()
            current = stats(port)
            consumed = int(current["consumed"])
            sample = {
                "t": round(now - started, 1),
                "sent": sent[0],
                "consumed": consumed,
                "lag": sent[0] - consumed,
                "events_per_second": round((consumed - previous[1]) / (now - previous[0]), 1),
                "rss_mib": round(rss_bytes(worker.pid) / 2**20, 1),
                "members": current["members"],
                "state_mib": round((current.get("state_bytes") or 0) / 2**20, 2),
                "graph_edges": current.get("collusion_graph", {}).get("edges"),
            }
            previous = (now, consumed)
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            if producer.done() and sample["lag"] <= 0:
                break
        loop.run_until_complete(producer)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    third = max(1, len(samples) // 3)
    middle = [s["rss_mib"] for s in samples[third : 2 * third]] or [0.0]
    last = [s["rss_mib"] for s in samples[2 * third :]] or [0.0]
    summary = {
        "rate": args.rate,
        "minutes": args.minutes,
        "event_hours_per_second": args.event_hours_per_second,
        "sent": sent[0],
        "consumed": samples[-1]["consumed"] if samples else 0,
        "max_lag": max((s["lag"] for s in samples), default=0),
        "rss_mib_middle_mean": round(sum(middle) / len(middle), 1),
        "rss_mib_last_mean": round(sum(last) / len(last), 1),
        "rss_mib_last_third_growth": round(last[-1] - last[0], 1),
        "state_mib_last_third_growth": round(
            samples[-1]["state_mib"] - samples[2 * third]["state_mib"], 2
        )
        if samples
        else 0.0,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print({k: v for k, v in summary.items() if k != "samples"})


if __name__ == "__main__":
    main()
