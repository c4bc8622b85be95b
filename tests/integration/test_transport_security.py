"""Kafka SASL/PLAIN and Redis AUTH against real services: a private instance set that requires both.

deploy/services.sh starts Kafka with a SASL_PLAINTEXT listener next to the PLAINTEXT one, and a
Redis with requirepass, on ports no other test uses. The worker is given the SASL listener only;
the test observes Kafka (lag, topic contents) through the PLAINTEXT listener of the same broker.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from worker import ROOT, Worker, end_offsets, free_port, read_topic, tail, wait_drained

from agents.read_model import OVERALL, leaderboard_key, table_data_key
from stream.kafka_security import KafkaSecurity
from stream.topics import DEFAULT_PARTITIONS as PARTITIONS

SERVICES = ROOT / "deploy" / "services.sh"
# A fixed place: a run that died without `down` leaves its instances where the next run stops them
# (`reset`: each run starts with empty Kafka and Redis, so it cannot see an earlier run's topics).
RUN_DIR = ROOT / "build" / "test-services" / "transport-security"
# Below Linux's ephemeral port range (32768-60999), where no client socket can hold them.
KAFKA_PORT, CONTROLLER_PORT, SASL_PORT, REDIS_PORT = 28092, 28093, 28094, 28379
SASL_USER = "hearth"
# Fresh per run; a space and a dollar test the quoting in the JAAS line.
SASL_PASSWORD = f"sasl {secrets.token_hex(6)} $x"
# Characters that must be percent-encoded in a URL, and a quote for the redis.conf line.
REDIS_PASSWORD = f'redis/{secrets.token_hex(6)}:@"x'
COMMUNITY = "secure"


def redis_url(password: str | None, db: int = 0) -> str:
    auth = f":{quote(password, safe='')}@" if password is not None else ""
    return f"redis://{auth}127.0.0.1:{REDIS_PORT}/{db}"


def _assert_no_secrets(log: str, *more: str) -> None:
    for secret in (SASL_PASSWORD, REDIS_PASSWORD, quote(REDIS_PASSWORD, safe=""), *more):
        assert not secret or secret not in log, f"a password is in the worker's log: {secret!r}"


@dataclass(frozen=True)
class Secured:
    plaintext: str  # for the test's own observation only
    sasl: str
    redis_url: str  # with the password
    redis_tls_url: str  # the same server through its TLS port, trusting only the test's CA

    def worker_env(self, password: str = SASL_PASSWORD) -> dict[str, str]:
        return {
            "HEARTH_KAFKA__BOOTSTRAP": self.sasl,
            "HEARTH_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "HEARTH_KAFKA__SASL_MECHANISM": "PLAIN",
            "HEARTH_KAFKA__USERNAME": SASL_USER,
            "HEARTH_KAFKA__PASSWORD": password,
        }


def _services(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES), command, "kafka", "redis"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _up(env: dict[str, str], attempts: int = 4) -> subprocess.CompletedProcess[str]:
    """`up`, again when a port was taken at bind time (a socket the script's check for a
    listener does not see, e.g. one closing)."""
    for attempt in range(1, attempts + 1):
        up = _services("up", env)
        if up.returncode == 0 or "Address already in use" not in _service_logs():
            return up
        _services("down", env)
        if attempt < attempts:
            time.sleep(3 * attempt)
    return up


def _port_holders() -> str:
    ports = (KAFKA_PORT, CONTROLLER_PORT, SASL_PORT, REDIS_PORT)
    query = " or ".join(f"sport = :{port}" for port in ports)
    run = subprocess.run(["ss", "-tanpH", query], capture_output=True, text=True, check=False)
    return f"--- sockets on {ports} ---\n{run.stdout or run.stderr}"


def _service_logs() -> str:
    """The first errors and the last lines of each service log (a failed start ends in noise)."""
    parts = []
    for name in ("kafka", "redis"):
        path = RUN_DIR / "logs" / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        errors = [line for line in lines if " ERROR " in line or "Caused by" in line][:8]
        parts.append(f"--- first errors in {path} ---\n" + "\n".join(errors))
        parts.append(tail(path, 30))
    return "\n".join(parts)


async def _sasl_topics(bootstrap: str, password: str) -> list[str]:
    security = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", SASL_USER, password)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **security.as_kwargs()
    )
    try:
        await admin.start()
        return list(await admin.list_topics())
    finally:
        await admin.close()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "redis.crt", directory / "redis.key", directory / "redis.csr"
    san = directory / "san.ext"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    commands = [
        ["req", "-x509", *new_key, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=hearth test CA"],
        ["req", *new_key, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", san],
    ]  # fmt: skip
    for args in commands:
        run = subprocess.run(
            ["openssl", *map(str, args)], capture_output=True, text=True, check=False
        )
        if run.returncode != 0:
            pytest.fail(f"openssl {args[0]} failed: {run.stderr[-2000:]}", pytrace=False)
    return ca, cert, key


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    ca, cert, key = _certificates(RUN_DIR / "tls")
    tls_port = free_port()  # a fifth port: only four were set aside for these services
    env = {
        **os.environ,
        "HEARTH_SERVICES_DIR": str(RUN_DIR),
        "HEARTH_KAFKA_PORT": str(KAFKA_PORT),
        "HEARTH_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "HEARTH_KAFKA_SASL_PORT": str(SASL_PORT),
        "HEARTH_KAFKA_SASL_USER": SASL_USER,
        "HEARTH_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "HEARTH_REDIS_PORT": str(REDIS_PORT),
        "HEARTH_REDIS_PASSWORD": REDIS_PASSWORD,
        "HEARTH_REDIS_TLS_PORT": str(tls_port),
        "HEARTH_REDIS_TLS_CERT": str(cert),
        "HEARTH_REDIS_TLS_KEY": str(key),
    }
    _services("reset", env)
    try:
        up = _up(env)
        if up.returncode != 0:
            pytest.fail(
                f"services.sh up exited {up.returncode}:\n{up.stderr[-3000:]}\n"
                f"{_service_logs()}\n{_port_holders()}",
                pytrace=False,
            )
        secured = Secured(
            plaintext=f"127.0.0.1:{KAFKA_PORT}",
            sasl=f"127.0.0.1:{SASL_PORT}",
            redis_url=redis_url(REDIS_PASSWORD),
            redis_tls_url=f"rediss://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{tls_port}/1"
            f"?ssl_ca_certs={quote(str(ca))}",
        )
        try:
            asyncio.run(_sasl_topics(secured.sasl, SASL_PASSWORD))
            for url in (secured.redis_url, secured.redis_tls_url):
                with redis.Redis.from_url(url, socket_timeout=5) as client:
                    client.ping()
        except Exception as exc:
            pytest.fail(f"secured services unusable: {exc!r}\n{_service_logs()}", pytrace=False)
        yield secured
    finally:
        down = _services("reset", env)
        assert down.returncode == 0, down.stderr


MakeWorker = Callable[[str, str, dict[str, str]], Worker]


@pytest.fixture
def make_secured_worker(secured: Secured, tmp_path: Path) -> Iterator[MakeWorker]:
    """Workers on the secured services (not started); every one is killed after the test."""
    workers: list[Worker] = []

    def make(name: str, redis_url: str, env: dict[str, str]) -> Worker:
        # The harness observes Kafka through `kafka_bootstrap`; the process gets `env`'s bootstrap.
        worker = Worker(
            app_id=f"sec-{name}",
            topic_prefix=f"sec-{name}.",
            data_dir=tmp_path / f"data-{name}",
            redis_url=redis_url,
            kafka_bootstrap=secured.plaintext,
            log_dir=tmp_path / f"logs-{name}",
            env=env,
        )
        workers.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in workers:
            worker.close()


def _events(path: Path) -> int:
    lines = [
        '{"id":"s1","type":"post.created","community":"secure","actor":"ann",'
        '"time":"2026-01-05T10:00:00Z"}',
        '{"id":"s2","type":"reply.created","community":"secure","actor":"bob","target":"ann",'
        '"time":"2026-01-05T11:00:00Z"}',
        '{"id":"s3","type":"post.created","community":"secure","actor":"cid",'
        '"time":"2026-01-06T09:00:00Z"}',
    ]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def _hearth_publish(
    path: Path, bootstrap: str, topic: str, password: str
) -> subprocess.CompletedProcess[str]:
    """`hearth publish` with its credentials in the HEARTH_KAFKA__* variables, as a user would."""
    env = {
        **os.environ,
        "HEARTH_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "HEARTH_KAFKA__SASL_MECHANISM": "PLAIN",
        "HEARTH_KAFKA__USERNAME": SASL_USER,
        "HEARTH_KAFKA__PASSWORD": password,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.cli",
            "publish",
            str(path),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_worker_scores_through_sasl_kafka_and_password_redis(
    secured: Secured, make_secured_worker: MakeWorker, tmp_path: Path, scheme: str
) -> None:
    """rediss: the worker gets the TLS port only, and a CA it must verify the server with."""
    url = secured.redis_tls_url if scheme == "rediss" else secured.redis_url
    worker = make_secured_worker(f"ok-{scheme}", url, secured.worker_env())
    worker.start()
    worker.wait_ready()
    path = tmp_path / "events.jsonl"
    count = _events(path)
    activity = f"{worker.topic_prefix}activity"
    sent = _hearth_publish(path, secured.sasl, activity, SASL_PASSWORD)
    assert sent.returncode == 0, sent.stderr
    assert f"{count} sent, 0 failed" in sent.stderr

    stats = wait_drained(worker, consumed=count, timeout=60)
    assert stats["outcomes"].get("applied") == count, stats
    ann = worker.get(f"/members/{COMMUNITY}/ann")
    assert ann["member"] == "ann" and ann["score"] > 0, ann
    with redis.Redis.from_url(url) as client:
        board = client.zrange(leaderboard_key(COMMUNITY, OVERALL), 0, -1)
        states = sum(client.hlen(table_data_key(worker.app_id, p)) for p in range(PARTITIONS))
    assert sorted(board) == [b"ann", b"bob", b"cid"], board
    assert states == 3, f"{states} member states in the table store's hashes"
    changelog = asyncio.run(end_offsets(secured.plaintext, f"{worker.app_id}-members-changelog"))
    assert sum(changelog.values()) > 0, changelog
    scores = asyncio.run(read_topic(secured.plaintext, f"{worker.topic_prefix}scores"))
    assert {r.key for r in scores} >= {b"secure/ann", b"secure/bob", b"secure/cid"}
    _assert_no_secrets(worker.log_text())


def test_publish_with_a_wrong_kafka_password_fails(secured: Secured, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _events(path)
    sent = _hearth_publish(path, secured.sasl, "sec-refused.activity", "not-the-password")
    assert sent.returncode != 0
    assert "Authentication failed" in sent.stderr, sent.stderr[-2000:]


def _wait_exit(worker: Worker, seconds: float) -> int | None:
    """The worker's exit code, or None if it still runs after `seconds`."""
    assert worker.process is not None
    try:
        code: int = worker.process.wait(seconds)
        return code
    except subprocess.TimeoutExpired:
        return None


def test_worker_with_a_wrong_kafka_password_exits_without_consuming(
    secured: Secured, make_secured_worker: MakeWorker
) -> None:
    worker = make_secured_worker("badkafka", secured.redis_url, secured.worker_env("wrong-pw"))
    worker.start()
    code = _wait_exit(worker, 45)
    log = worker.log_text()
    assert code not in (0, None), f"exit code {code}\n{tail(worker.log_path)}"
    assert "SaslAuthenticationFailed" in log, tail(worker.log_path)
    assert "Invalid username or password" in log, tail(worker.log_path)
    _assert_no_secrets(log, "wrong-pw")
    # Nothing was created or consumed under its name.
    topics = asyncio.run(_sasl_topics(secured.sasl, SASL_PASSWORD))
    assert not [t for t in topics if t.startswith("sec-badkafka")], topics


@pytest.mark.parametrize("password", ["wrong-redis-pw", None], ids=["wrong", "missing"])
def test_worker_with_a_wrong_redis_password_exits(
    secured: Secured, make_secured_worker: MakeWorker, password: str | None
) -> None:
    name = "badredis-wrong" if password else "badredis-none"
    worker = make_secured_worker(name, redis_url(password), secured.worker_env())
    worker.start()
    code = _wait_exit(worker, 45)
    log = worker.log_text()
    assert code not in (0, None), f"exit code {code}\n{tail(worker.log_path)}"
    assert "AuthenticationError" in log, tail(worker.log_path)
    assert "Crashed reason=auth:AuthenticationError" in log, tail(worker.log_path)
    _assert_no_secrets(log, password or "")
