"""Fixtures shared by the unit and the integration tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def prometheus_tool() -> Callable[[str], str]:
    """The path of a program from Debian's prometheus package (`prometheus`, `promtool`).

    Installed through deploy/services.sh when missing. Fails, never skips: the tests that
    need it are part of the suite on every machine.
    """

    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            run = subprocess.run(
                ["bash", str(ROOT / "deploy" / "services.sh"), "up", "prometheus"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            path = shutil.which(name)
            if path is None:
                pytest.fail(
                    f"{name} is not installed and `deploy/services.sh up prometheus` did not "
                    f"install it (exit {run.returncode}):\n{run.stderr[-3000:]}",
                    pytrace=False,
                )
        return path

    return find
