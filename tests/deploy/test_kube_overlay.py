"""deploy/podman/kube: the base manifests on one machine under podman kube play (deploy/podman/kube.py
runs it end to end). Here, offline: it runs the base's programs unchanged, its stand-ins run the
same commands as the Job and compose's one-shots, and every patch still finds its target."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import COMPOSE_DIR, KUBE_DIR, find, kustomize_resources, load_yaml_docs, pod_containers, read_env_file
from .test_settings_sources import KNOWN

OVERLAY = load_yaml_docs(KUBE_DIR / "kustomization.yaml")[0]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize_resources()


def _pod(name: str) -> dict[str, Any]:
    (doc,) = [d for f in OVERLAY["resources"] if not f.startswith("..")
              for d in load_yaml_docs(KUBE_DIR / f) if d["kind"] == "Pod" and d["metadata"]["name"] == name]
    return doc


def test_overlay_builds_on_the_base_unchanged() -> None:
    assert OVERLAY["resources"][0] == "../../k8s"
    assert OVERLAY["namespace"] == load_yaml_docs(KUBE_DIR.parents[1] / "k8s" / "kustomization.yaml")[0]["namespace"]


def test_one_shots_run_the_commands_of_the_job_and_compose(base: list[dict[str, Any]]) -> None:
    compose = load_yaml_docs(COMPOSE_DIR / "docker-compose.yml")[0]["services"]
    (topics,) = pod_containers(_pod("linewatch-topics"))
    assert topics["command"] == pod_containers(find(base, "Job", "linewatch-topics"))[0]["command"]
    assert topics["command"] == compose["topics"]["entrypoint"]
    (init,) = pod_containers(_pod("linewatch-model-init"))
    assert init["command"] == compose["model-init"]["entrypoint"]
    assert _pod("linewatch-model-init")["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == \
        find(base, "PersistentVolumeClaim", "linewatch-models")["metadata"]["name"]


def test_every_patch_finds_its_target(base: list[dict[str, Any]]) -> None:
    kust = load_yaml_docs(KUBE_DIR.parents[1] / "k8s" / "kustomization.yaml")[0]
    generated = [{"kind": "Secret", "metadata": {"name": g["name"]}} for g in kust["secretGenerator"]]
    base = base + generated
    for patch in OVERLAY["patches"]:
        if "target" in patch:
            target = patch["target"]
            hits = [d for d in base if d["kind"] == target["kind"]
                    and ("name" not in target or d["metadata"]["name"] == target["name"])]
            assert hits, f"patch target {target} is not in the base"
        else:
            doc = load_yaml_docs(KUBE_DIR / patch["path"])[0]
            find(base, doc["kind"], doc["metadata"]["name"])


def test_the_stand_ins_replace_what_podman_cannot_run(base: list[dict[str, Any]]) -> None:
    deleted = {(p["target"]["kind"], p["target"]["name"]) for p in OVERLAY["patches"]
               if "target" in p and "$patch: delete" in p["patch"]}
    assert deleted == {("Job", "linewatch-topics"), ("ScaledObject", "linewatch-worker"), ("Secret", "linewatch-secrets")}
    assert {"kafka", "redis"} <= {d["metadata"]["name"] for f in OVERLAY["resources"][1:]
                                  for d in load_yaml_docs(KUBE_DIR / f) if d["kind"] == "Service"}


def test_settings_point_at_the_overlays_pods() -> None:
    env = read_env_file(KUBE_DIR / "local.env")
    assert not {k for k in env if k.startswith("LW_")} - KNOWN
    assert env["LW_KAFKA_BOOTSTRAP"].split(":")[0] == _pod("kafka")["metadata"]["name"]
    assert env["LW_REDIS_URL"].split("//")[1].split(":")[0] == _pod("redis")["metadata"]["name"]
    (kafka,) = pod_containers(_pod("kafka"))
    advertised = {e["name"]: e["value"] for e in kafka["env"]}["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised.endswith("//" + env["LW_KAFKA_BOOTSTRAP"])
