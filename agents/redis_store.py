"""A Faust table store backed by Redis, registered as `redis://` through `faust.stores`.

Faust's store API is synchronous, so a Redis round trip per get/set would block the event loop.
Instead the store keeps the working copy of its assigned partitions in memory, loads a partition
from Redis when it is assigned (asynchronously, in `on_rebalance`), and writes changes behind in
pipelined MULTI/EXEC batches that carry the changelog offset of each partition in the same
transaction. Recovery then resumes from that offset instead of replaying the whole changelog.
A partition's owner key holds the worker's fencing token; a flush from a stale owner (an older
rebalance generation, or another worker) is refused. The changelog topic remains the source of
truth: when Redis has lost a partition, Faust recovery rebuilds it from the changelog.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from faust.stores import base
from faust.streams import current_event
from faust.types import TP
from mode import Service
from redis.exceptions import WatchError

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.2


def table_prefix(app_id: str, table: str = "members") -> str:
    """The prefix of every Redis key the store writes for one table."""
    return f"hearth:table:{app_id}:{table}"


def table_data_key(app_id: str, partition: int, table: str = "members") -> str:
    """The Redis hash in which the store keeps one table partition (the API reads it too)."""
    return f"{table_prefix(app_id, table)}:p{partition}"


OWNER_CHECK_SECONDS = 1.0


class FlushStats:
    """Counters the metrics module reads (no member ids)."""

    def __init__(self) -> None:
        self.flushes = 0
        self.keys_flushed = 0
        self.failures = 0
        self.fenced = 0
        self.last_duration = 0.0
        self.loaded_keys = 0  # keys read from Redis on assignment (what recovery did not replay)
        self.changelog_applied = 0  # changelog records applied during recovery


class RedisStore(base.SerializedStore[bytes, bytes]):
    """Table storage: in-memory working copy, Redis write-behind with offsets and fencing."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        self._redis_url = str(url)
        self._client: aioredis.Redis | None = None
        self._data: dict[bytes, bytes] = {}
        self._partition_of: dict[bytes, int] = {}
        self._dirty: dict[int, dict[bytes, bytes | None]] = {}
        self._offsets: dict[int, int] = {}
        self._tokens: dict[int, str] = {}
        self._worker = uuid.uuid4().hex[:12]
        self._flush_lock = asyncio.Lock()
        self.stats = FlushStats()
        # Hands over records the service holds back, before states are written (see flush).
        self.before_write: Callable[[], Awaitable[None]] | None = None
        prefix = table_prefix(app.conf.id, self.table_name)
        self._offsets_key = f"{prefix}:offsets"
        self._owner_key = prefix + ":owner:{}"
        self._app_id = app.conf.id

    # Faust logs a service's label at every start and stop: without this, the Redis password.
    @property
    def label(self) -> str:
        return f"{type(self).__name__}: {self.url.with_password(None)}"

    def _repr_info(self) -> str:
        return f"table_name={self.table_name} url={self.url.with_password(None)}"

    def data_key(self, partition: int) -> str:
        """The Redis hash holding this table's `partition`."""
        return table_data_key(self._app_id, partition, self.table_name)

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.from_url(self._redis_url)
        return self._client

    # -- the synchronous store API, served from memory -------------------------------------

    def _partition_for(self, key: bytes) -> int:
        event = current_event()
        if event is not None:
            partition: int = event.message.partition
            return partition
        return self._partition_of.get(key, 0)

    def _get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def _set(self, key: bytes, value: bytes | None) -> None:
        self.set_in_partition(key, value, self._partition_for(key))

    def set_in_partition(self, key: bytes, value: bytes | None, partition: int) -> None:
        """Write a key of a known partition (outside the event that belongs to it)."""
        self._partition_of[key] = partition
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value
        self._dirty.setdefault(partition, {})[key] = value

    def _del(self, key: bytes) -> None:
        partition = self._partition_for(key)
        self._data.pop(key, None)
        self._partition_of.pop(key, None)
        self._dirty.setdefault(partition, {})[key] = None

    def _iterkeys(self) -> Iterator[bytes]:
        return iter(list(self._data))

    def _itervalues(self) -> Iterator[bytes]:
        return iter(list(self._data.values()))

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data.items()))

    def _size(self) -> int:
        return len(self._data)

    def bytes_held(self) -> int:
        """Bytes of encoded values held in memory (the table's own footprint, keys excluded)."""
        return sum(map(len, self._data.values()))

    def _contains(self, key: bytes) -> bool:
        return key in self._data

    def _clear(self) -> None:
        self._data.clear()
        self._partition_of.clear()

    def reset_state(self) -> None:
        self._clear()

    async def backup_partition(
        self, tp: TP | int, flush: bool = True, purge: bool = False, keep: int = 1
    ) -> None:
        """Redis is the durable copy already; there is nothing to back up locally."""

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        """See `backup_partition`."""

    def persisted_offset(self, tp: TP) -> int | None:
        return self._offsets.get(tp.partition)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self._offsets[tp.partition] = offset
        # The offset must reach Redis even when no key of the partition changes again.
        self._dirty.setdefault(tp.partition, {})

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Recovery: apply changelog records to memory and queue them for Redis."""
        for event in batch:
            message = event.message
            key: bytes | None = message.key
            if key is None:
                continue
            partition = message.partition
            self.set_in_partition(key, message.value, partition)
            self._offsets[partition] = max(self._offsets.get(partition, -1), message.offset)
            self.stats.changelog_applied += 1

    # -- rebalancing -----------------------------------------------------------------------

    def _own_partitions(self, tps: Iterable[TP]) -> set[int]:
        topics = self.table.changelog_topic.topics
        return {tp.partition for tp in tps if tp.topic in topics}

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        """Flush and release revoked partitions; claim and load newly assigned ones."""
        released = self._own_partitions(revoked)
        if released:
            await self.flush(released)
            for partition in released:
                self._forget(partition)
        for partition in sorted(self._own_partitions(newly_assigned)):
            await self._claim(partition, generation_id)
            await self._load(partition)

    def _forget(self, partition: int) -> None:
        for key in [k for k, p in self._partition_of.items() if p == partition]:
            self._data.pop(key, None)
            del self._partition_of[key]
        self._offsets.pop(partition, None)
        self._tokens.pop(partition, None)
        self._dirty.pop(partition, None)

    async def _claim(self, partition: int, generation_id: int) -> None:
        token = f"{generation_id:012d}:{self._worker}"
        self._tokens[partition] = token
        await self.client.set(self._owner_key.format(partition), token)

    async def _load(self, partition: int) -> None:
        client = self.client
        offset = await client.hget(self._offsets_key, str(partition))
        if offset is None:
            return  # nothing in Redis: Faust recovery replays the changelog
        loaded = 0
        data_key = self.data_key(partition)
        async for key, value in client.hscan_iter(data_key, count=2000):
            self._data[key] = value
            self._partition_of[key] = partition
            loaded += 1
        self._offsets[partition] = int(offset)
        self.stats.loaded_keys += loaded
        log.info(
            "loaded %d keys of partition %d from Redis at offset %d", loaded, partition, int(offset)
        )

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await self.flush()

    # -- write-behind ----------------------------------------------------------------------

    async def flush(self, partitions: Iterable[int] | None = None) -> int:
        """Write dirty keys and offsets of the given (default: all) partitions to Redis."""
        async with self._flush_lock:
            targets = sorted(
                self._dirty if partitions is None else set(partitions) & set(self._dirty)
            )
            batches = {partition: self._dirty.pop(partition) for partition in targets}
            if batches and not await self._messages_sent():
                for partition, dirty in batches.items():
                    self._dirty[partition] = dirty | self._dirty.get(partition, {})
                return 0
            written = 0
            started = time.perf_counter()
            for partition, dirty in batches.items():
                try:
                    written += await self._write(partition, dirty)
                except WatchError:
                    self.stats.fenced += 1
                    log.warning("partition %d is owned by another worker; not flushing", partition)
                except Exception:
                    self.stats.failures += 1
                    merged = dirty | self._dirty.get(partition, {})
                    self._dirty[partition] = merged
                    log.exception("flush of partition %d failed; will retry", partition)
            if targets:
                self.stats.flushes += 1
                self.stats.keys_flushed += written
                self.stats.last_duration = time.perf_counter() - started
            return written

    async def _messages_sent(self) -> bool:
        """Wait until Kafka has every message produced so far; False if the producer failed.

        The states about to be written record what their events caused (a score change's
        seq, the last applied offset): the messages must be durable first. Otherwise a crash
        could keep a state whose score change was never published, and the redelivered event,
        now a duplicate, would not publish it again (a gap in the member's seqs). Records the
        service still holds back (its outbox) are handed over first by `before_write`.
        """
        try:
            if self.before_write is not None:
                await self.before_write()
            producer = self.app.producer
            while producer.buffer.size:  # Faust's flush gives up after 0.1 s without a send
                await producer.buffer.flush()
            await producer.flush()
        except Exception:
            self.stats.failures += 1
            log.exception("producer flush failed; Redis write postponed")
            return False
        return True

    async def _write(self, partition: int, dirty: dict[bytes, bytes | None]) -> int:
        owner_key = self._owner_key.format(partition)
        data_key = self.data_key(partition)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(owner_key)
            token = self._tokens.get(partition)
            current = await pipe.get(owner_key)
            owner = current.decode() if isinstance(current, bytes) else current
            lost = token is not None and owner is None
            if token is None or (owner != token and not lost):
                raise WatchError("fenced")
            pipe.multi()  # type: ignore[no-untyped-call]
            if lost:
                # Redis lost the partition (restarted without persistence, or flushed): claim
                # it again and write the whole working copy, not only what changed, so the
                # read model is whole again. The WATCH fences a worker that claimed it since.
                log.warning("partition %d is missing from Redis; writing it whole", partition)
                pipe.set(owner_key, token)
                pipe.delete(data_key)
                dirty = {
                    k: v for k, v in self._data.items() if self._partition_of.get(k) == partition
                }
            upserts = {k: v for k, v in dirty.items() if v is not None}
            deletes = [k for k, v in dirty.items() if v is None]
            if upserts:
                pipe.hset(data_key, mapping=cast("Mapping[Any, Any]", upserts))
            if deletes:
                pipe.hdel(data_key, *deletes)
            if partition in self._offsets:
                pipe.hset(self._offsets_key, str(partition), str(self._offsets[partition]))
            await pipe.execute()
        return len(dirty)

    @Service.task
    async def _flusher(self) -> None:
        checked = time.monotonic()
        while not self.should_stop:
            await self.sleep(FLUSH_INTERVAL_SECONDS)
            if time.monotonic() - checked >= OWNER_CHECK_SECONDS:
                checked = time.monotonic()
                await self._check_owners()
            await self.flush()

    async def _check_owners(self) -> None:
        """Queue a whole rewrite of owned partitions whose owner key Redis no longer has.

        A flush notices the loss itself, but only for a partition with changes: without this
        check a quiet partition would stay missing from the read model.
        """
        partitions = sorted(self._tokens)
        if not partitions:
            return
        try:
            owners = await self.client.mget([self._owner_key.format(p) for p in partitions])
        except Exception as exc:  # noqa: BLE001 - Redis down: the next check tries again
            log.warning("cannot check partition owners in Redis: %r", exc)
            return
        for partition, owner in zip(partitions, owners, strict=True):
            if owner is None:
                self._dirty.setdefault(partition, {})

    async def on_stop(self) -> None:
        await self.flush()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
