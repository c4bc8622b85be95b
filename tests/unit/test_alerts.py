"""Prometheus config and alert rules: promtool checks, promtool unit tests, conventions."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
REQUIRED_ALERTS = {
    "HearthConsumerLagGrowing",
    "HearthDeadLetterRateHigh",
    "HearthProcessingStalled",
    "HearthStoreFlushFailing",
    "HearthWorkerDown",
    "HearthEventAgeP99High",
}


@pytest.fixture(scope="session")
def promtool(prometheus_tool: Callable[[str], str]) -> str:
    return prometheus_tool("promtool")


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(promtool: str, config: str) -> None:
    run = _promtool(promtool, "check", "config", config)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def test_promtool_check_rules(promtool: str) -> None:
    run = _promtool(promtool, "check", "rules", "alerts.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in run.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    run = _promtool(promtool, "test", "rules", "alerts_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_unit_tests_catch_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: loosening one threshold makes them fail."""
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    rules = (tmp_path / "alerts.yml").read_text()
    assert rules.count("> 0.05") == 1
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.05", "> 0.5"))
    run = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    assert "HearthDeadLetterRateHigh" in run.stdout + run.stderr


def test_the_required_alerts_exist() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    assert set(names) == REQUIRED_ALERTS


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_alert_follows_the_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Hearth[A-Z][A-Za-z0-9]+", name), "CamelCase with the Hearth prefix"
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert "for" in rule, "every alert waits before firing"
    assert annotations["runbook_url"] == f"deploy/RUNBOOK.md#{name.lower()}"


def test_every_runbook_url_names_a_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in _rules():
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {RUNBOOK.name}"


def test_every_runbook_section_says_what_how_to_check_and_fix() -> None:
    text = RUNBOOK.read_text()
    for name in REQUIRED_ALERTS:
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning.**", "**Check.**", "**Fix.**"):
            assert part in section, f"{name}: {part} missing"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == REQUIRED_ALERTS, f"never tested firing: {REQUIRED_ALERTS - firing}"
    assert silent == REQUIRED_ALERTS, f"never tested silent: {REQUIRED_ALERTS - silent}"
