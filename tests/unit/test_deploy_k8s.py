"""deploy/k8s/base: rendered by kustomize, every resource valid against Kubernetes' schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agents.settings import Settings
from scoring.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
KUBERNETES_VERSION = "1.30.0"


def _kustomization() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return doc


def _validate(resource: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        pytest.fail(f"{name} is not a valid {KUBERNETES_VERSION} resource: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """`kubectl kustomize deploy/k8s/base`, by kind (kubectl ships kustomize; it is on every
    machine of this project's kind). Fails, never skips, without it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is not installed", pytrace=False)
    run = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    by_kind: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(run.stdout):
        key = doc["kind"]
        if key == "ConfigMap":
            key = f"ConfigMap/{doc['metadata']['name'].rsplit('-', 1)[0]}"
        assert key not in by_kind
        by_kind[key] = doc
    return by_kind


def test_policy_config_is_a_copy_of_the_shipped_default() -> None:
    copy = (BASE / "policy.yaml").read_bytes()
    assert copy == (ROOT / "scoring" / "policies" / "default.yaml").read_bytes(), (
        "deploy/k8s/base/policy.yaml differs from scoring/policies/default.yaml: "
        "cp scoring/policies/default.yaml deploy/k8s/base/policy.yaml"
    )
    parse_policy(copy.decode(), "deploy/k8s/base/policy.yaml")


@pytest.mark.parametrize("name", _kustomization()["resources"])
def test_each_resource_file_is_valid(name: str) -> None:
    docs = list(yaml.safe_load_all((BASE / name).read_text()))
    assert docs
    for doc in docs:
        _validate(doc)


def test_rendered_base_is_valid(rendered: dict[str, dict[str, Any]]) -> None:
    assert set(rendered) == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap/hearth-config",
        "ConfigMap/hearth-policy",
    }
    for resource in rendered.values():
        _validate(resource)


def test_validation_rejects_a_broken_resource(rendered: dict[str, dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(rendered["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _container(rendered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_probes_resources_and_security(rendered: dict[str, dict[str, Any]]) -> None:
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    container = _container(rendered)
    port_names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
        resources["limits"]
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "hearth:latest"


def test_settings_come_from_the_config_map_and_secrets(
    rendered: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _container(rendered)
    config = rendered["ConfigMap/hearth-config"]
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == config["metadata"]["name"]  # with kustomize's hash
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert secrets["HEARTH_REDIS_URL"] == {"name": "hearth-secrets", "key": "redis-url"}
    assert secrets["HEARTH_KAFKA__PASSWORD"]["key"] == "kafka-password"
    # Every setting is one the worker reads, and parses.
    settings_env = {**config["data"], "HEARTH_REDIS_URL": "redis://redis:6379/0"}
    for key in [k for k in os.environ if k.startswith("HEARTH_")]:
        monkeypatch.delenv(key)
    for key, value in settings_env.items():
        assert key.startswith("HEARTH_")
        field, _, nested = key.removeprefix("HEARTH_").lower().partition("__")
        assert field in Settings.model_fields, key
        if nested:
            assert nested in Settings.model_fields[field].annotation.model_fields, key  # type: ignore[union-attr]
        monkeypatch.setenv(key, value)
    settings = Settings()
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert settings.web_port == port
    assert settings.web_host == "0.0.0.0"  # noqa: S104 - probes come from outside the pod
    assert settings.policy is not None and settings.data_dir.is_absolute()


def test_policy_is_mounted_where_hearth_policy_points(rendered: dict[str, dict[str, Any]]) -> None:
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    container = _container(rendered)
    policy_map = rendered["ConfigMap/hearth-policy"]
    policy_path = Path(rendered["ConfigMap/hearth-config"]["data"]["HEARTH_POLICY"])
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == policy_map["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert Path(mount["mountPath"]) == policy_path.parent
    assert policy_path.name in policy_map["data"]
    assert policy_map["data"][policy_path.name] == (BASE / "policy.yaml").read_text()
    data_dir = Path(rendered["ConfigMap/hearth-config"]["data"]["HEARTH_DATA_DIR"])
    writable = {Path(m["mountPath"]) for m in container["volumeMounts"] if not m.get("readOnly")}
    assert data_dir in writable, "the root filesystem is read-only: the data dir needs a volume"


def test_service_and_budget_select_the_worker_pods(rendered: dict[str, dict[str, Any]]) -> None:
    pod_labels = rendered["Deployment"]["spec"]["template"]["metadata"]["labels"]
    deployment_selector = rendered["Deployment"]["spec"]["selector"]["matchLabels"]
    service = rendered["Service"]["spec"]
    budget = rendered["PodDisruptionBudget"]["spec"]
    for selector in (deployment_selector, service["selector"], budget["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    (port,) = service["ports"]
    assert port["targetPort"] in {p["name"] for p in _container(rendered)["ports"]}
    replicas = rendered["Deployment"]["spec"]["replicas"]
    assert budget.get("maxUnavailable", 0) < replicas
