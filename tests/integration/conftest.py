"""Fixtures for tests against the real Kafka and Redis that deploy/services.sh runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
import redis
from worker import Worker

from stream.topics import admin_client

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
    async with admin_client(bootstrap, timeout_ms=10_000) as admin:
        return list(await admin.list_topics())


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    async with admin_client(bootstrap, timeout_ms=10_000) as admin:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)


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


# -- the streaming pipeline: workers on their own Redis database -------------------------------

PIPELINE_DB_LOCK = "hearth-tests:pipeline-db"


@pytest.fixture
def pipeline_redis_url(redis_url: str) -> Iterator[str]:
    """URL of a Redis database (1-15) this test has to itself, emptied before and after.

    The read model's keys (hearth:member:*, hearth:lb:*) do not depend on the app id, so a
    test's workers must not share a database with other tests or with a worker started by hand
    on database 0. A lock key claims the database for the duration of the test.
    """
    token = uuid4().hex
    parts = urlsplit(redis_url)
    for db in range(1, 16):
        url = urlunsplit(parts._replace(path=f"/{db}"))
        client = redis.Redis.from_url(url)
        try:
            if not client.set(PIPELINE_DB_LOCK, token, nx=True, ex=1800):
                continue
            client.flushdb()
            client.set(PIPELINE_DB_LOCK, token, ex=1800)
            yield url
            if client.get(PIPELINE_DB_LOCK) == token.encode():
                client.flushdb()
            return
        finally:
            client.close()
    pytest.fail("no free Redis database among 1-15 (all hold a pipeline test lock)")


@pytest.fixture
def pipeline_redis(pipeline_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(pipeline_redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_worker(
    topic_prefix: str, kafka_bootstrap: str, pipeline_redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """A factory of `Worker`s (not started); every one is killed and its topics deleted after.

    By default a worker uses the test's topic prefix, an app id derived from it, a data dir
    under tmp_path and the test's Redis database; keyword arguments override them.
    """
    workers: list[Worker] = []

    def make(
        *,
        app_id: str | None = None,
        prefix: str | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Worker:
        app_id = app_id or topic_prefix.rstrip(".")
        worker = Worker(
            app_id=app_id,
            topic_prefix=prefix or topic_prefix,
            data_dir=tmp_path / f"data-{app_id}",
            redis_url=redis_url or pipeline_redis_url,
            kafka_bootstrap=kafka_bootstrap,
            log_dir=tmp_path / f"logs-{app_id}-{len(workers)}",
            env=env,
        )
        workers.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in workers:
            worker.close()
        # Faust's own topics (the table changelog, the assignor's) are named after the app id.
        for prefix in {f"{w.app_id}-" for w in workers} | {w.topic_prefix for w in workers}:
            asyncio.run(_delete_topics(kafka_bootstrap, prefix))
