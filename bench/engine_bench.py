"""Benchmark: decode + score throughput of the pure engine on one core, and memory per member.

Usage: python bench/engine_bench.py [--events 1000000] [--members 100000]
Prints events/s for decode+score of synthetic v1 events and bytes of memory per member state.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from datetime import UTC, datetime

from scoring.engine import Engine
from scoring.policy import load_policy
from scoring.runner import Runner
from stream.codec import EventDecoder
from stream.contract import ActivityEvent
from stream.synthetic import generate_bulk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args()

    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    raw = list(generate_bulk(seed=1, events=args.events, members=args.members, start=start))
    generated = time.perf_counter() - t0

    policy = load_policy()
    decoder = EventDecoder(policy.rules, policy.spec.future_skew_seconds)
    runner = Runner(Engine(policy))
    now = time.time()
    gc.collect()
    gc.freeze()  # the generated input is not part of what is measured
    tracemalloc_base = None
    t0 = time.perf_counter()
    changes = 0
    for message in raw:
        event = decoder.decode(message, now)
        if not isinstance(event, ActivityEvent):
            continue
        _, emitted = runner.feed(
            event.id, event.type, event.community, event.actor, event.time.timestamp(), event.target
        )
        changes += len(emitted)
    elapsed = time.perf_counter() - t0
    del raw
    gc.unfreeze()
    gc.collect()

    # Memory per member: rebuild the states under tracemalloc from their own encoding-free copy.
    states = runner.engine.states
    tracemalloc.start()
    tracemalloc_base = tracemalloc.take_snapshot()
    import copy

    clone = copy.deepcopy(dict(states))
    measured = tracemalloc.take_snapshot().compare_to(tracemalloc_base, "filename")
    bytes_total = sum(stat.size_diff for stat in measured)
    tracemalloc.stop()
    members = len(clone)
    figures = {
        "events": args.events,
        "members": members,
        "seconds": round(elapsed, 3),
        "events_per_second": round(args.events / elapsed),
        "bytes_per_member": round(bytes_total / members),
        "score_changes": changes,
        "generate_seconds": round(generated, 2),
        "outcomes": {k.value: v for k, v in runner.outcomes.items()},
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
