"""The naive baseline for bench/pipeline_bench.py: a straightforward Faust agent.

What "naive" means here (what a team would write first, with Faust's defaults):
- default app settings (in-memory table store, default poll/buffer/commit settings); only the
  broker, the partition count of the input, the web port and the data dir are given;
- one agent over the activity topic; per event: decode with the same `EventDecoder` as Hearth,
  read the actor's state from a Faust Table of bytes (raw key/value serializers), decode it with
  `scoring.snapshot.decode_state`, apply `Engine.apply_side`, encode it again with
  `encode_state` and write it back to the table (one changelog record per event);
- the ACTOR side only. The target side of an interaction would need a repartition through a
  second topic (or both sides when co-partitioned); the baseline leaves it out, so it does less
  work per event than Hearth (which applies both sides, checks score changes and publishes a read
  model). No score-change checks, no read model, no dead-letter topic.

Run by the harness as `python bench/naive_agent.py worker -l warn` with its settings in
NAIVE_* environment variables; progress is served on GET /count of its web port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
from faust import web

from scoring.engine import Engine, stable_hash
from scoring.policy import load_policy
from scoring.snapshot import decode_state, encode_state
from scoring.state import ACTOR, MemberKey, MemberState
from stream.codec import EventDecoder
from stream.contract import ActivityEvent

APP_ID = os.environ.get("NAIVE_APP_ID", "hearth-naive")
TOPIC = os.environ.get("NAIVE_TOPIC", "hearth.activity")
PARTITIONS = int(os.environ.get("NAIVE_PARTITIONS", "4"))
BOOTSTRAP = os.environ.get("NAIVE_BOOTSTRAP", "127.0.0.1:9092")
WEB_PORT = int(os.environ.get("NAIVE_WEB_PORT", "6067"))
DATA_DIR = os.environ.get("NAIVE_DATA_DIR", "build/bench/naive-data")

app = faust.App(
    APP_ID,
    broker=f"kafka://{BOOTSTRAP}",
    topic_partitions=PARTITIONS,
    web_port=WEB_PORT,
    datadir=DATA_DIR,
)
raw_schema: Any = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
activity = app.topic(TOPIC, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
members = app.Table(
    "members", partitions=PARTITIONS, schema=raw_schema, key_type=bytes, value_type=bytes
)


class TableView(MutableMapping[MemberKey, MemberState]):
    """The engine's states, read from and written to the table as bytes on every access."""

    def __getitem__(self, key: MemberKey) -> MemberState:
        raw = members.get(f"{key[0]}/{key[1]}".encode())
        if raw is None:
            raise KeyError(key)
        return decode_state(raw)

    def __setitem__(self, key: MemberKey, state: MemberState) -> None:
        members[f"{key[0]}/{key[1]}".encode()] = encode_state(state)

    def __delitem__(self, key: MemberKey) -> None:
        del members[f"{key[0]}/{key[1]}".encode()]

    def __iter__(self) -> Iterator[MemberKey]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(members)


policy = load_policy()
engine = Engine(policy, TableView())
decoder = EventDecoder(policy.rules, policy.spec.future_skew_seconds)
progress = {"processed": 0, "applied": 0, "rejected": 0, "first": 0.0, "last": 0.0}


@app.agent(activity)
async def score(stream: Any) -> Any:
    async for value in stream:
        now = time.time()
        if not progress["first"]:
            progress["first"] = now
        event = decoder.decode(value or b"", now)
        if isinstance(event, ActivityEvent) and event.target != event.actor:
            outcome = engine.apply_side(
                (event.community, event.actor),
                policy.rules[event.type],
                ACTOR,
                event.time.timestamp(),
                stable_hash(event.id),
                event.target,
            )
            progress["applied"] += outcome == "applied"
        else:
            progress["rejected"] += 1
        progress["processed"] += 1
        progress["last"] = time.time()
        if progress["processed"] % 10_000 == 0:
            # Only Runner.advance_to empties this index of open days; the baseline has no runner.
            engine._open_days.clear()
        yield None


@app.page("/count")
class Count(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json({**progress, "members": len(members)})


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
