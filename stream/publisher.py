"""Publishing activity files to Kafka: the transport used by platforms and `hearth publish`.

The publisher does not validate events. Raw lines are sent as they are and the service
dead-letters what breaks the contract, so bad input is visible downstream instead of being
dropped silently here. It only reads enough of each message to compute the key.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    KafkaError,
    MessageSizeTooLargeError,
)
from aiokafka.partitioner import (  # type: ignore[import-untyped, unused-ignore]
    DefaultPartitioner,
)

from stream.kafka_security import KafkaSecurity, security_kwargs

CSV_REQUIRED = ("id", "type", "community", "actor", "time")
CSV_OPTIONAL = ("target", "source")
MAX_ERROR_SAMPLES = 20
# Bytes a record adds to a batch beyond its key and value (length varints, attributes).
_RECORD_OVERHEAD = 64
_KEY_CACHE = 1 << 20


class _KeyFields(msgspec.Struct):
    community: str | None = None
    actor: str | None = None


_key_decoder = msgspec.json.Decoder(_KeyFields)


def event_key(raw: bytes) -> bytes | None:
    """b"community/actor" of a raw event, or None when the message does not give both."""
    try:
        fields = _key_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if fields.community is None or fields.actor is None:
        return None
    return f"{fields.community}/{fields.actor}".encode()


def read_jsonl(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without its line break) of each non-blank line."""
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line.rstrip(b"\r\n")


def read_csv(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, JSON event) per row of a CSV file of offline activity.

    The header names the contract fields id, type, community, actor, time (required columns)
    and optionally target, source; every other column becomes a string in `attrs`. Empty
    cells are omitted. `time` is passed through unchanged: it must be RFC 3339 with an offset
    (2024-05-01T18:00:00+02:00), otherwise the service dead-letters the event. The line number
    is the line on which the row ends (quoted cells may span lines).
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return
        header = [column.strip() for column in header]
        missing = [column for column in CSV_REQUIRED if column not in header]
        if missing:
            raise ValueError(f"{path}: header lacks required column(s) {', '.join(missing)}")
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: header repeats a column name")
        fields = set(CSV_REQUIRED + CSV_OPTIONAL)
        for row in reader:
            if not any(row):
                continue
            if len(row) > len(header):
                raise ValueError(
                    f"{path}:{reader.line_num}: {len(row)} cells but the header has {len(header)}"
                )
            event: dict[str, Any] = {}
            attrs: dict[str, str] = {}
            for column, cell in zip(header, row, strict=False):
                if cell == "":
                    continue
                if column in fields:
                    event[column] = cell
                else:
                    attrs[column] = cell
            if attrs:
                event["attrs"] = attrs
            yield reader.line_num, msgspec.json.encode(event)


@dataclass
class PublishResult:
    """Outcome of a publish: messages acknowledged by the broker and messages that failed.

    `errors` holds up to 20 samples of (line number, error) among the failures; when a whole
    batch fails, its first line stands for it.
    """

    sent: int = 0
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def _fail(self, line: int, count: int, error: BaseException) -> None:
        self.failed += count
        if len(self.errors) < MAX_ERROR_SAMPLES:
            self.errors.append((line, f"{type(error).__name__}: {error}"))


async def publish(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[int, bytes]],
    *,
    progress: Callable[[int], None] | None = None,
    linger_ms: int = 5,
    acks: int | str = "all",
    enable_idempotence: bool = True,
    max_batch_size: int = 512 * 1024,
    max_request_size: int = 1024 * 1024,
    compression_type: str | None = None,
    security: KafkaSecurity | None = None,
) -> PublishResult:
    """Send each (line number, raw bytes) record to `topic`, keyed by community/actor.

    Records are packed into one batch per partition and handed to the producer as whole
    batches: about ten times the throughput of one `send()` per message. Partitions are chosen
    by Kafka's default partitioner (murmur2 of the key), so a member's events land where any
    other Kafka client would put them, in file order. Keyless records go round-robin.
    `progress` receives the running count of messages settled (sent or failed). A message over
    `max_request_size` fails locally; a batch the broker rejects fails as a whole; publishing
    goes on either way.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=acks,
        enable_idempotence=enable_idempotence,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        max_request_size=max_request_size,
        compression_type=compression_type,
        **security_kwargs(security),
    )
    try:
        await producer.start()
        partitions = sorted(await producer.partitions_for(topic))
        batcher = _Batcher(producer, topic, partitions, max_request_size, progress)
        for line, raw in records:
            await batcher.add(line, raw)
        await batcher.finish()
        return batcher.result
    finally:
        await producer.stop()


@dataclass
class _Open:
    builder: Any
    lines: list[int] = field(default_factory=list)


class _Batcher:
    """Fills one batch per partition and keeps the submitted ones until they settle."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        partitions: list[int],
        max_request_size: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._partitions = partitions
        self._max_size = max_request_size
        self._progress = progress
        self._partitioner = DefaultPartitioner()
        self._keyless = itertools.cycle(partitions)
        self._partition_of: dict[bytes, int] = {}
        self._open: dict[int, _Open] = {}
        self._inflight: deque[tuple[list[int], asyncio.Future[Any]]] = deque()
        self.result = PublishResult()

    def _partition(self, key: bytes | None) -> int:
        if key is None:
            return next(self._keyless)
        partition = self._partition_of.get(key)
        if partition is None:
            # murmur2 is pure Python in aiokafka: hash each member once.
            if len(self._partition_of) >= _KEY_CACHE:
                self._partition_of.clear()
            partition = self._partitioner(key, self._partitions, self._partitions)
            self._partition_of[key] = partition
        return partition

    async def add(self, line: int, raw: bytes) -> None:
        key = event_key(raw)
        if len(raw) + len(key or b"") + _RECORD_OVERHEAD > self._max_size:
            self._failed([line], MessageSizeTooLargeError(f"{len(raw)} bytes"))
            return
        partition = self._partition(key)
        batch = self._open.get(partition)
        if batch is not None:
            if batch.builder.append(key=key, value=raw, timestamp=None) is not None:
                batch.lines.append(line)
                return
            await self._submit(partition)
        batch = self._open[partition] = _Open(self._producer.create_batch())
        # A new batch always takes its first record, whatever its size.
        batch.builder.append(key=key, value=raw, timestamp=None)
        batch.lines.append(line)

    async def _submit(self, partition: int) -> None:
        batch = self._open.pop(partition)
        try:
            future = await self._producer.send_batch(
                batch.builder, self._topic, partition=partition
            )
        except KafkaError as exc:
            self._failed(batch.lines, exc)
            return
        self._inflight.append((batch.lines, future))
        # Let the sender run between batches; otherwise a fast reader starves it.
        await asyncio.sleep(0)
        while self._inflight and self._inflight[0][1].done():
            self._settle(*self._inflight.popleft())

    async def finish(self) -> None:
        for partition in list(self._open):
            await self._submit(partition)
        while self._inflight:
            lines, future = self._inflight.popleft()
            await asyncio.wait([future])
            self._settle(lines, future)

    def _settle(self, lines: list[int], future: asyncio.Future[Any]) -> None:
        error = future.exception()
        if error is None:
            self.result.sent += len(lines)
            self._report()
        else:
            self._failed(lines, error)

    def _failed(self, lines: list[int], error: BaseException) -> None:
        self.result._fail(lines[0], len(lines), error)
        self._report()

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.result.sent + self.result.failed)
