"""deploy/grafana: provisioning files and the Hearth dashboard (layout, queries parse as PromQL).

The queries are evaluated against a real Prometheus and worker in
tests/integration/test_metrics_dashboard.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "hearth.json"
# What Grafana substitutes before a query reaches Prometheus.
VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
REQUIRED_PANELS = {
    "Throughput by outcome",
    "Processing latency",
    "Event age at processing",
    "Consumer lag per partition",
    "Dead letters by reason",
    "Score changes by cause",
    "Tier distribution",
    "Store flush latency",
    "Members tracked",
}


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = _dashboard()["panels"]
    return panels


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def test_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "provider.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_dashboard_identity() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "hearth" and dashboard["title"] == "Hearth"
    assert isinstance(dashboard["schemaVersion"], int)
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "instance" and variable["allValue"] == VARIABLES["$instance"]


def test_required_panels_are_there() -> None:
    titles = [p["title"] for p in _panels()]
    assert len(titles) == len(set(titles))
    assert set(titles) >= REQUIRED_PANELS


def test_panels_have_ids_descriptions_and_prometheus_queries() -> None:
    ids = set()
    for panel in _panels():
        assert panel["id"] not in ids
        ids.add(panel["id"])
        assert panel["description"].strip(), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert 'instance=~"$instance"' in target["expr"], f"{panel['title']}: no worker filter"


def test_panels_tile_the_grid_without_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels():
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's promtool, installed by deploy/services.sh when missing (fails, never skips)."""
    if shutil.which("promtool") is None:
        subprocess.run(
            ["bash", str(ROOT / "deploy" / "services.sh"), "up", "prometheus"],
            cwd=ROOT,
            capture_output=True,
            timeout=900,
            check=False,
        )
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool missing: `bash deploy/services.sh up prometheus` failed", pytrace=False
        )
    return path


def test_every_query_parses_as_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule): syntax errors fail here, offline."""
    rules = [
        {"record": f"panel_{p['id']}_{t['refId']}", "expr": substitute(t["expr"])}
        for p in _panels()
        for t in p["targets"]
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
