"""Kubernetes manifests: probes, ports, GPU, drain time, KEDA trigger, model volume, real schemas."""

from __future__ import annotations

from typing import Any

import pytest

from linewatch.contract import Topics
from producer.settings import ProducerSettings
from view.settings import ViewSettings
from worker.settings import WorkerSettings

from .conftest import K8S_DIR, console_scripts, find, kustomize_resources, load_yaml_docs, pod_containers, read_env_file
from .test_settings_sources import effective

CONFIG = read_env_file(K8S_DIR / "linewatch.env")


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return kustomize_resources()


def _port(container: dict[str, Any], ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == ref]
    return port


def _worker(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = find(docs, "Deployment", "linewatch-worker")
    return deployment, pod_containers(deployment)[0]


def test_every_resource_is_namespaced_and_generated_names_are_used(docs: list[dict[str, Any]]) -> None:
    kust = load_yaml_docs(K8S_DIR / "kustomization.yaml")[0]
    generated = {g["name"] for g in kust["configMapGenerator"] + kust["secretGenerator"]}
    assert find(docs, "Namespace", kust["namespace"])
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            for container in pod_containers(doc):
                refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
                assert refs == generated, doc["metadata"]["name"]
                assert container["image"] in {i["name"] for i in kust["images"]}


def test_worker_probes_hit_the_real_endpoints(docs: list[dict[str, Any]]) -> None:
    deployment, container = _worker(docs)
    port = effective("k8s-config", WorkerSettings, "http_port")
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"  # worker/health.py
    for probe in probes.values():
        assert _port(container, probe["port"]) == port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port
    service = find(docs, "Service", "linewatch-worker-metrics")
    assert _port(container, service["spec"]["ports"][0]["targetPort"]) == port


def test_worker_requests_a_whole_gpu_in_limits(docs: list[dict[str, Any]]) -> None:
    _, container = _worker(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in container["resources"].get("requests", {})


def test_worker_has_time_to_drain(docs: list[dict[str, Any]]) -> None:
    deployment, _ = _worker(docs)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # drain, then the publisher join and client closes (worker/app.py: 5 s each)
    assert grace >= effective("k8s-config", WorkerSettings, "drain_timeout_s") + 15
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


def test_pdb_covers_the_workers(docs: list[dict[str, Any]]) -> None:
    deployment, _ = _worker(docs)
    pdb = find(docs, "PodDisruptionBudget", "linewatch-worker")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_model_store_mounted_at_model_root(docs: list[dict[str, Any]]) -> None:
    deployment, container = _worker(docs)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "models"]
    assert mount["mountPath"] == str(effective("k8s-config", WorkerSettings, "model_root"))
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    pvc = find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]  # workers on several nodes


def test_keda_trigger_matches_the_configmap(docs: list[dict[str, Any]]) -> None:
    scaled = find(docs, "ScaledObject", "linewatch-worker")
    deployment, _ = _worker(docs)
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["topic"] == Topics.from_base(effective("k8s-config", WorkerSettings, "topic_base")).frames
    assert meta["consumerGroup"] == effective("k8s-config", WorkerSettings, "group_id")
    assert meta["bootstrapServers"] == effective("k8s-config", WorkerSettings, "kafka_bootstrap")
    assert meta["offsetResetPolicy"] == "earliest"  # the worker's auto_offset_reset
    assert int(meta["lagThreshold"]) >= effective("k8s-config", WorkerSettings, "inflight_frames")
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= int(CONFIG["LINEWATCH_TOPIC_PARTITIONS"])


def test_sasl_component_patches_the_scaled_object(docs: list[dict[str, Any]]) -> None:
    component = load_yaml_docs(K8S_DIR / "components" / "kafka-sasl" / "kustomization.yaml")[0]
    assert component["kind"] == "Component"
    (patch,) = component["patches"]
    find(docs, patch["target"]["kind"], patch["target"]["name"])
    (auth,) = load_yaml_docs(K8S_DIR / "components" / "kafka-sasl" / "trigger-authentication.yaml")
    keys = {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert {"LW_KAFKA_SASL_USERNAME", "LW_KAFKA_SASL_PASSWORD"} <= keys
    documented = (K8S_DIR / "secrets.env").read_text()
    assert all(key in documented for key in keys)


def test_producer_metrics_port(docs: list[dict[str, Any]]) -> None:
    deployment = find(docs, "Deployment", "linewatch-producer")
    (container,) = pod_containers(deployment)
    port = effective("k8s-config", ProducerSettings, "metrics_port")
    assert _port(container, container["livenessProbe"]["httpGet"]["port"]) == port
    assert int(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]) == port
    service = find(docs, "Service", "linewatch-producer-metrics")
    assert _port(container, service["spec"]["ports"][0]["targetPort"]) == port
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_view_serves_where_its_probes_and_service_look(docs: list[dict[str, Any]]) -> None:
    from view.app import create_app  # the real routes, not a list copied here
    from view.auth import OPEN_PATHS

    deployment = find(docs, "Deployment", "linewatch-view")
    (container,) = pod_containers(deployment)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LW_VIEW_HOST"] == "0.0.0.0"  # reachable through the Service, not loopback only
    port = effective("k8s-config", ViewSettings, "view_port")
    paths = {r.path for r in create_app(ViewSettings()).app.routes}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths
        assert container[probe]["httpGet"]["path"] in OPEN_PATHS  # probes still pass once a token is set
        assert _port(container, container[probe]["httpGet"]["port"]) == port
    service = find(docs, "Service", "linewatch-view")
    assert _port(container, service["spec"]["ports"][0]["targetPort"]) == port


def test_commands_are_console_scripts(docs: list[dict[str, Any]]) -> None:
    scripts = console_scripts()
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            for container in pod_containers(doc):
                command = container.get("command", [])
                if command and command[0].startswith("linewatch-"):
                    assert command[0] in scripts


def _builtin(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kustomization's built-in resources plus the generated ConfigMap and Secret, as applied."""
    objects = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "linewatch-config"}, "data": CONFIG})
    secret = read_env_file(K8S_DIR / "secrets.env")
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "linewatch-secrets"}, "stringData": secret})
    objects += load_yaml_docs(K8S_DIR / "tools" / "models-cli.yaml")
    return objects


def test_manifests_validate_against_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    """Strict OpenAPI validation with the schemas bundled in `kubernetes-validate` (offline)."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev extra)")
    version = kv.latest_version()
    for obj in _builtin(docs):
        kv.validate(obj, version, strict=True)


def test_schema_validation_catches_mistakes() -> None:
    """The validator is real: a misspelt field and a wrong type fail."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev extra)")
    deployment = find(kustomize_resources(), "Deployment", "linewatch-worker")
    broken = {**deployment, "spec": {**deployment["spec"], "terminationGracePeriod": 60}}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)
    pdb = find(kustomize_resources(), "PodDisruptionBudget", "linewatch-worker")
    with pytest.raises(kv.ValidationError):
        kv.validate({**pdb, "spec": {**pdb["spec"], "selector": "app"}}, kv.latest_version(), strict=True)


def test_keda_objects_have_the_crd_shape(docs: list[dict[str, Any]]) -> None:
    """No KEDA schema offline: check the fields KEDA requires by hand."""
    scaled = find(docs, "ScaledObject", "linewatch-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert set(scaled["spec"]) <= {
        "scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod",
        "idleReplicaCount", "initialCooldownPeriod", "advanced", "fallback", "triggers",
    }
    for value in scaled["spec"]["triggers"][0]["metadata"].values():
        assert isinstance(value, str), "KEDA trigger metadata values are strings"
