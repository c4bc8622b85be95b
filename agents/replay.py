"""The embedded runner: scores an event log file without Kafka or Redis."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from scoring.engine import Engine, Outcome
from scoring.policy import Policy
from scoring.records import MemberScore, ScoreChange
from scoring.runner import Runner
from stream.codec import DeadLetter, EventDecoder
from stream.contract import ActivityEvent

PROGRESS_MIN_BYTES = 1_000_000


class DeadLetterRecord(msgspec.Struct):
    line: int
    reason: str
    detail: str
    raw: str


@dataclass
class ReplayResult:
    scores: list[MemberScore]
    changes: list[ScoreChange]
    lines: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    as_of: float = 0.0


def _lines(path: Path, show_progress: bool) -> Iterator[bytes]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        if not show_progress or size < PROGRESS_MIN_BYTES:
            yield from handle
            return
        columns = (
            TextColumn("[bold]reading"),
            BarColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("read", total=size)
            for n, line in enumerate(handle):
                if n % 4096 == 0:
                    progress.update(task, completed=handle.tell())
                yield line


def read_events(
    path: Path, decoder: EventDecoder, dlq: IO[bytes] | None, *, show_progress: bool = True
) -> tuple[list[ActivityEvent], int, Counter[str]]:
    """Decode every line; invalid ones go to `dlq` with their reason and never stop the run."""
    events: list[ActivityEvent] = []
    rejected: Counter[str] = Counter()
    now = time.time()
    encoder = msgspec.json.Encoder()
    count = 0
    for count, line in enumerate(_lines(path, show_progress), start=1):  # noqa: B007
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        result = decoder.decode(raw, now)
        if isinstance(result, DeadLetter):
            rejected[result.reason] += 1
            if dlq is not None:
                text = raw.decode("utf-8", "backslashreplace")
                record = DeadLetterRecord(count, result.reason, result.detail, text)
                dlq.write(encoder.encode(record) + b"\n")
        else:
            events.append(result)
    return events, count, rejected


def replay_events(
    events: list[ActivityEvent], policy: Policy, as_of: float | None
) -> tuple[Runner, float, list[ScoreChange]]:
    """Apply events in event-time order; returns the runner, the as-of time and all changes."""
    runner = Runner(Engine(policy))
    keyed = sorted(((e.time.timestamp(), e.id, e) for e in events), key=lambda x: (x[0], x[1]))
    if as_of is not None:
        keyed = [k for k in keyed if k[0] <= as_of]  # the state as of then: later events excluded
    changes: list[ScoreChange] = []
    for t, _, e in keyed:
        _, emitted = runner.feed(e.id, e.type, e.community, e.actor, t, e.target)
        changes.extend(emitted)
    end = as_of if as_of is not None else (keyed[-1][0] if keyed else time.time())
    changes.extend(runner.finish(end))
    return runner, end, changes


def member_scores(engine: Engine, as_of: float) -> list[MemberScore]:
    scores = [s for key in engine.states if (s := engine.explain(key, as_of)) is not None]
    scores.sort(key=lambda s: (s.community, -s.score, s.member))
    return scores


def replay_file(
    events_path: Path,
    policy: Policy,
    *,
    as_of: float | None,
    dead_letters: Path | None,
    show_progress: bool = True,
) -> ReplayResult:
    started = time.perf_counter()
    decoder = EventDecoder(policy.rules, policy.spec.future_skew_seconds)
    if dead_letters is not None:
        dead_letters.parent.mkdir(parents=True, exist_ok=True)
    sink = dead_letters.open("wb") if dead_letters else contextlib.nullcontext(None)
    with sink as dlq:
        events, lines, rejected = read_events(
            events_path, decoder, dlq, show_progress=show_progress
        )
    runner, end, changes = replay_events(events, policy, as_of)
    return ReplayResult(
        scores=member_scores(runner.engine, end),
        changes=changes,
        lines=lines,
        dead_letters=rejected,
        outcomes={o.value: n for o, n in runner.outcomes.items()},
        seconds=time.perf_counter() - started,
        as_of=end,
    )


def write_scores(scores: list[MemberScore], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    with path.open("wb") as out:
        for score in scores:
            out.write(encoder.encode(score) + b"\n")


__all__ = ["Outcome", "ReplayResult", "replay_file", "write_scores"]
