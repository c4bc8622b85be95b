"""Hearth's Kafka topics: their names, their settings, and creating the missing ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaAdminClient,
    NewTopic,
)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    TopicAlreadyExistsError,
    for_code,
)

from stream.kafka_security import KafkaSecurity, security_kwargs

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "hearth."
DEFAULT_PARTITIONS = 4


@dataclass(frozen=True)
class TopicNames:
    """The names of all Hearth topics, derived from one prefix (tests use a unique one)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def activity(self) -> str:
        """Raw activity events from the platforms, keyed by community/actor."""
        return f"{self.prefix}activity"

    @property
    def dead_letters(self) -> str:
        """Rejected activity messages with their reason."""
        return f"{self.prefix}activity.dlq"

    @property
    def score_changes(self) -> str:
        """One event per meaningful score change (tier move, large delta, decay drop)."""
        return f"{self.prefix}score-changes"

    @property
    def scores(self) -> str:
        """Latest score snapshot per member (compacted; tombstone on erasure)."""
        return f"{self.prefix}scores"

    @property
    def credits(self) -> str:
        """Internal repartition topic: interactions seen from the target, keyed community/target."""
        return f"{self.prefix}credits"

    @property
    def edges(self) -> str:
        """Interaction edges (actor -> target) for the collusion graph."""
        return f"{self.prefix}edges"

    def all(self) -> tuple[str, ...]:
        return (
            self.activity,
            self.dead_letters,
            self.score_changes,
            self.scores,
            self.credits,
            self.edges,
        )


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count and topic-level configs (string values)."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(
    names: TopicNames | None = None, partitions: int = DEFAULT_PARTITIONS
) -> list[TopicSpec]:
    """Specs of every Hearth topic.

    All topics keyed by member get the same partition count: member state for a key lives on
    one partition number, and the activity and credits streams must both reach it there.
    """
    names = names or TopicNames()
    return [
        TopicSpec(names.activity, partitions),
        TopicSpec(names.dead_letters, partitions),
        TopicSpec(names.score_changes, partitions),
        TopicSpec(names.scores, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(names.credits, partitions),
        TopicSpec(names.edges, partitions),
    ]


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    security: KafkaSecurity | None = None,
    timeout_ms: int = 30_000,
) -> list[str]:
    """Create the topics of `specs` that do not exist yet; returns the names created.

    Idempotent: topics that exist (or that another process creates meanwhile) are left as they
    are; a partition count different from the spec is logged as a warning, never changed.
    """
    wanted = {spec.name: spec for spec in specs}
    async with admin_client(bootstrap, security, timeout_ms) as admin:
        existing = set(await admin.list_topics()) & wanted.keys()
        created = await _create(
            admin, [wanted[n] for n in wanted if n not in existing], timeout_ms, replication_factor
        )
        # Only describe topics known to exist: describing a missing one through a metadata
        # request lets a broker with auto.create.topics.enable create it with default settings.
        await _check_partitions(admin, [wanted[n] for n in wanted if n not in created])
    return created


@asynccontextmanager
async def admin_client(
    bootstrap: str, security: KafkaSecurity | None = None, timeout_ms: int = 30_000
) -> AsyncIterator[Any]:
    """A started Kafka admin client, closed on exit."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **security_kwargs(security)
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def _create(
    admin: Any, specs: list[TopicSpec], timeout_ms: int, replication_factor: int
) -> list[str]:
    if not specs:
        return []
    new = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions,
            replication_factor=replication_factor,
            topic_configs=dict(spec.config),
        )
        for spec in specs
    ]
    response = await admin.create_topics(new, timeout_ms=timeout_ms)
    created: list[str] = []
    failures: list[str] = []
    # aiokafka returns per-topic error codes in the response instead of raising them.
    for topic, code, *rest in response.topic_errors:
        if code == 0:
            created.append(topic)
            log.info("created topic %s", topic)
        elif for_code(code) is not TopicAlreadyExistsError:
            message = rest[0] if rest and rest[0] else for_code(code).__name__
            failures.append(f"{topic}: {message}")
    if failures:
        raise RuntimeError("could not create topics: " + "; ".join(failures))
    return created


async def _check_partitions(admin: Any, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    for topic in await admin.describe_topics([spec.name for spec in specs]):
        spec = next(s for s in specs if s.name == topic["topic"])
        actual = len(topic["partitions"])
        if actual != spec.partitions:
            log.warning(
                "topic %s has %d partitions, expected %d (left unchanged)",
                spec.name,
                actual,
                spec.partitions,
            )


async def group_offsets(
    bootstrap: str, group: str, *, security: KafkaSecurity | None = None
) -> dict[tuple[str, int], int]:
    """The offsets `group` has committed, by (topic, partition)."""
    async with admin_client(bootstrap, security) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
