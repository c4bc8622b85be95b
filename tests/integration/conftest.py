"""Fixtures for tests against the real Kafka and Redis that deploy/services.sh runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOGS = ROOT / "build" / "services" / "logs"
KAFKA_BOOTSTRAP = os.environ.get("HEARTH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("HEARTH_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The hook sees the whole session's items, not only this folder's.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"({path}: {exc})"
    return f"--- last lines of {path} ---\n" + "\n".join(text)


async def _kafka_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def services() -> None:
    """Starts Kafka and Redis (idempotent) and fails, never skips, when they are unreachable."""
    try:
        run = subprocess.run(
            ["bash", str(ROOT / "deploy" / "services.sh"), "up"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"deploy/services.sh up timed out after {exc.timeout}s", pytrace=False)
    if run.returncode != 0:
        pytest.fail(
            f"deploy/services.sh up exited {run.returncode}:\n{run.stderr[-4000:]}", pytrace=False
        )
    try:
        asyncio.run(_kafka_topics(KAFKA_BOOTSTRAP))
    except Exception as exc:
        pytest.fail(
            f"Kafka at {KAFKA_BOOTSTRAP} unreachable: {exc!r}\n{_tail(LOGS / 'kafka.log')}",
            pytrace=False,
        )
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {REDIS_URL} unreachable: {exc!r}\n{_tail(LOGS / 'redis.log')}",
            pytrace=False,
        )
    finally:
        client.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(services: None) -> str:
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def redis_url(services: None) -> str:
    return REDIS_URL


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A prefix no other test uses; the test's topics are deleted afterwards."""
    prefix = f"t{uuid4().hex[:8]}."
    yield prefix
    asyncio.run(_delete_topics(kafka_bootstrap, prefix))


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on an emptied database (FLUSHDB before the test)."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        yield client
    finally:
        client.close()
