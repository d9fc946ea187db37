"""The compose stack: structure, ports Prometheus scrapes, partitions vs workers, dashboard metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

import linewatch.topics
from producer.metrics import ProducerMetrics
from producer.settings import ProducerSettings
from worker import metrics as worker_metrics
from worker.settings import WorkerSettings

from .conftest import COMPOSE_DIR, K8S_DIR, console_scripts, find, kustomize_resources, load_yaml_docs, pod_containers, read_env_file
from .test_settings_sources import effective

ENV = COMPOSE_DIR / "linewatch.env"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml_docs(COMPOSE_DIR / "docker-compose.yml")[0]


def test_compose_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "redis", "topics", "producer", "worker", "alerts", "prometheus", "grafana"} <= set(compose["services"])
    kafka = compose["services"]["kafka"]["environment"]
    assert "broker" in kafka["KAFKA_PROCESS_ROLES"] and "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft
    bootstrap = read_env_file(ENV)["LW_KAFKA_BOOTSTRAP"]
    assert f"PLAINTEXT://{bootstrap}" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_gpu_override_targets_cuda_image() -> None:
    gpu = load_yaml_docs(COMPOSE_DIR / "docker-compose.gpu.yml")[0]["services"]["worker"]
    assert gpu["build"]["target"] == "worker"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_entry_points_exist(compose: dict[str, Any]) -> None:
    scripts = console_scripts()
    for name, service in compose["services"].items():
        entry = service.get("entrypoint")
        if entry and entry[0].startswith("linewatch-"):
            assert entry[0] in scripts, f"{name}: {entry[0]} is not a console script"


def _default_replicas(value: Any) -> int:
    """`${LW_WORKERS:-2}` -> 2 (compose interpolation default)."""
    match = re.fullmatch(r"\$\{\w+:-(\d+)\}", str(value))
    return int(match.group(1)) if match else int(value)


def test_partitions_cover_the_workers(compose: dict[str, Any]) -> None:
    partitions = int(read_env_file(ENV)["LINEWATCH_TOPIC_PARTITIONS"])
    assert _default_replicas(compose["services"]["worker"]["deploy"]["replicas"]) <= partitions


def test_worker_stop_grace_exceeds_drain(compose: dict[str, Any]) -> None:
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > effective("compose", WorkerSettings, "drain_timeout_s")


def test_topic_one_shot_is_the_same_program_everywhere(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """compose `topics` and the k8s Job run one program; it calls ensure_topics with the env file's counts."""
    compose_code = compose["services"]["topics"]["entrypoint"]
    job = find(kustomize_resources(), "Job", "linewatch-topics")
    job_code = pod_containers(job)[0]["command"]
    assert compose_code == job_code
    assert compose_code[:2] == ["python", "-c"]
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(linewatch.topics, "ensure_topics", lambda *a: calls.append(a))
    for env_file, rf in ((ENV, 1), (K8S_DIR / "linewatch.env", 3)):
        env = read_env_file(env_file)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        calls.clear()
        exec(compile(compose_code[2], "<topics>", "exec"), {})  # noqa: S102 (our own one-liner)
        (settings, partitions, replication), = calls
        assert settings.topic_base == env["LW_TOPIC_BASE"] and settings.kafka_bootstrap == env["LW_KAFKA_BOOTSTRAP"]
        assert (partitions, replication) == (int(env["LINEWATCH_TOPIC_PARTITIONS"]), rf)


def test_prometheus_scrapes_the_real_ports(compose: dict[str, Any]) -> None:
    prom = load_yaml_docs(COMPOSE_DIR / "prometheus" / "prometheus.yml")[0]
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    worker_sd = jobs["linewatch-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"] and "worker" in compose["services"]
    assert worker_sd["port"] == effective("compose", WorkerSettings, "http_port")
    (target,) = jobs["linewatch-producer"]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in compose["services"]
    assert int(port) == effective("compose", ProducerSettings, "metrics_port")
    mounted = compose["services"]["prometheus"]["volumes"][0].split(":")
    assert mounted[0] == "./prometheus/prometheus.yml"


def _defined_series() -> set[str]:
    """Every series name the worker and producer can expose (counter _total, histogram parts)."""
    candidates = [*vars(worker_metrics).values(), *vars(ProducerMetrics()).values()]
    families = [m for m in candidates if isinstance(m, MetricWrapperBase)]
    assert len(families) > 15
    names: set[str] = set()
    for metric in families:
        base = metric._name  # noqa: SLF001 (prometheus_client keeps no public accessor)
        kind = metric._type  # noqa: SLF001
        if kind == "counter":
            names.add(f"{base}_total")
        elif kind == "histogram":
            names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
        else:
            names.add(base)
    return names


def test_dashboard_uses_only_real_metrics() -> None:
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "linewatch.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][0]["definition"])
    used = {name for e in exprs for name in re.findall(r"\blinewatch_[a-z_]+", e)}
    defined = _defined_series()
    assert not used - defined, f"dashboard queries unknown series: {sorted(used - defined)}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "latency", "batch", "lag", "dropped", "dead-lettered", "camera"):
        assert topic in titles


def test_grafana_provisioning_points_at_prometheus(compose: dict[str, Any]) -> None:
    ds = load_yaml_docs(COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[0]
    (source,) = ds["datasources"]
    assert source["url"] == "http://prometheus:9090"
    # Published as [host-ip:]host-port:container-port; Grafana talks to the container port.
    assert any(p.endswith(":9090") for p in compose["services"]["prometheus"]["ports"])
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "linewatch.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
