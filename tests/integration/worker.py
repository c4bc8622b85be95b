"""Starting, watching and stopping `hearth worker` processes in integration tests.

A `Worker` runs the real console entry point (`python -m agents.cli worker`) as a subprocess
with its own app id, topic prefix, data dir, Redis database and a free web port, logs to a
file, and talks to it over its HTTP API. Use it as a context manager (or call `close()`) so the
process is gone when the test ends, passed or not.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true in time (an AssertionError so pytest shows it plainly)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"({path}: {exc})"
    return f"--- last {len(text)} lines of {path} ---\n" + "\n".join(text)


class Worker:
    """One `hearth worker` subprocess at a time; `start()` again after `stop()` to restart it.

    Every start gets a new log file (worker-1.log, worker-2.log, ...) and a new web port; the
    app id, topic prefix, data dir and Redis URL stay, so a restart resumes the same state.
    """

    def __init__(
        self,
        *,
        app_id: str,
        topic_prefix: str,
        data_dir: Path,
        redis_url: str,
        kafka_bootstrap: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.app_id = app_id
        self.topic_prefix = topic_prefix
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.kafka_bootstrap = kafka_bootstrap
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.log_path = log_dir / "worker-0.log"
        self.logs: list[Path] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, **env: str) -> Worker:
        """Launch the worker with the fixed settings plus `env` (HEARTH_* overrides)."""
        if self.running:
            raise RuntimeError("worker already running")
        self.starts += 1
        self.port = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        self.logs.append(self.log_path)
        full_env = {
            **os.environ,
            "HEARTH_APP_ID": self.app_id,
            "HEARTH_TOPIC_PREFIX": self.topic_prefix,
            "HEARTH_DATA_DIR": str(self.data_dir),
            "HEARTH_REDIS_URL": self.redis_url,
            "HEARTH_KAFKA__BOOTSTRAP": self.kafka_bootstrap,
            "HEARTH_DECAY_CLOCK": "event",
            "HEARTH_WEB_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **self.env,
            **env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agents.cli", "worker", "--loglevel", "info"],
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the test runner's group does not reach it
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait for a clean shutdown; SIGKILL if it takes longer than `timeout`."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                raise WaitTimeout(
                    f"worker {process.pid} ignored SIGTERM for {timeout}s; killed\n"
                    + tail(self.log_path)
                ) from None
        self.process = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(10)
        self.process = None

    def close(self) -> None:
        """Kill whatever still runs (cleanup after a failed test)."""
        self.kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing --------------------------------------------------------------------------

    def log_text(self, all_starts: bool = False) -> str:
        paths = self.logs if all_starts else [self.log_path]
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """GET `path`; (status, decoded JSON body) for any status, including 4xx and 5xx."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return exc.code, body

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        status, body = self.request(path, params)
        if status != 200:
            raise AssertionError(f"GET {path} {params or ''} -> {status}: {body}")
        return body

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/stats")
        return stats

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode}\n" + self.log_tail(80)
            )

    def wait_until(
        self,
        predicate: Callable[[], T],
        timeout: float,
        what: str,
        interval: float = 0.25,
    ) -> T:
        """Poll `predicate` until it returns something truthy; fail with the log tail if not.

        Exceptions from `predicate` (the web server not up yet, say) count as "not yet". The
        worker dying fails at once.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            self._check_alive()
            try:
                value = predicate()
            except (OSError, ValueError, AssertionError) as exc:
                value, last = None, exc  # type: ignore[assignment]
            else:
                last = value
                if value:
                    return value
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    f"timed out after {timeout}s waiting for {what} (last: {last!r})\n"
                    + self.log_tail()
                )
            time.sleep(interval)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until /readyz says ready (partitions assigned, Redis reachable)."""

        def ready() -> bool:
            status, body = self.request("/readyz")
            return status == 200 and bool(body.get("ready"))

        self.wait_until(ready, timeout, "/readyz")
