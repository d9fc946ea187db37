"""The torch and Kafka versions agree everywhere: images, compose, Kubernetes and the test environment.

deploy/versions.env names them once; deploy/podman/build.sh builds with them. A drift (the
Dockerfile pinning another torch than the tests run, compose running another Kafka than
deploy/local/kafka.sh) fails here instead of in a user's first `compose up`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

from .conftest import COMPOSE_DIR, K8S_DIR, KUBE_DIR, ROOT, dockerfile_instructions, load_yaml_docs, read_env_file

VERSIONS = read_env_file(ROOT / "deploy" / "versions.env")


def _release(text: str) -> str:
    """2.15.0+cu132 -> 2.15.0: the local build tag names the wheel's CUDA, not the release."""
    return text.split("+", 1)[0]


def _images(paths: list[Path]) -> dict[str, str]:
    """image of every compose service and Kubernetes container in these files: where -> image."""
    found: dict[str, str] = {}
    for path in paths:
        for doc in load_yaml_docs(path):
            for name, service in (doc.get("services") or {}).items():
                if "image" in service:
                    found[f"{path.name}:{name}"] = service["image"]
            spec = doc.get("spec", {}) if isinstance(doc.get("spec"), dict) else {}
            pod = spec.get("template", {}).get("spec", spec)
            for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                if container.get("image"):  # kustomize patches name containers without an image
                    found[f"{path.name}:{container['name']}"] = container["image"]
    return found


def _deployment_files() -> list[Path]:
    return sorted(COMPOSE_DIR.glob("*.yml")) + sorted(K8S_DIR.rglob("*.yaml")) + sorted(KUBE_DIR.glob("*.yaml"))


def test_tests_run_the_pinned_torch() -> None:
    assert _release(version("torch")) == VERSIONS["torch_version"], "update deploy/versions.env or the venv"


def test_dockerfile_pins_the_same_torch() -> None:
    args = dict(a.partition("=")[::2] for i, a in dockerfile_instructions() if i == "ARG" and "=" in a)
    assert args["TORCH_VERSION"] == VERSIONS["torch_version"]
    # The default index is where the tests' torch comes from (PyPI), so a plain build gets that wheel.
    assert args["TORCH_INDEX"] == "https://pypi.org/simple"


def test_local_kafka_is_the_pinned_kafka() -> None:
    pom = ET.parse(ROOT / "deploy" / "local" / "kafka-pom.xml").getroot()
    ns = {"m": pom.tag.split("}")[0].strip("{")} if pom.tag.startswith("{") else {}
    prop = pom.find("m:properties/m:kafka.version" if ns else "properties/kafka.version", ns)
    assert prop is not None and prop.text == VERSIONS["kafka_version"]
    assert VERSIONS["kafka_version"].split(".")[0] >= "4"  # KRaft only, as the tests run it


def test_deployments_run_the_pinned_kafka() -> None:
    images = _images(_deployment_files())
    kafka = {where: image for where, image in images.items() if "kafka" in image.lower()}
    assert kafka, "no Kafka image in compose or Kubernetes files"
    for where, image in kafka.items():
        assert image.rsplit("/", 1)[-1] == f"linewatch-kafka:{VERSIONS['kafka_version']}", where


def test_no_other_kafka_or_torch_pinned_in_deployment_files() -> None:
    """No file names a Kafka release or a torch version other than the pinned ones."""
    kafka, torch = VERSIONS["kafka_version"], VERSIONS["torch_version"]
    files = _deployment_files() + [ROOT / "Dockerfile"] + sorted((ROOT / "deploy" / "images").rglob("*"))
    for path in (p for p in files if p.is_file() and "__pycache__" not in p.parts):
        text = path.read_text()
        for found in re.findall(r"(?:apache/kafka|linewatch-kafka|kafka_2\.13-)[:-]?(\d+\.\d+\.\d+)", text):
            assert found == kafka, f"{path.relative_to(ROOT)} names Kafka {found}"
        for found in re.findall(r"torch==(\d+\.\d+\.\d+)|TORCH_VERSION=(\d+\.\d+\.\d+)", text):
            assert torch in found, f"{path.relative_to(ROOT)} names torch {found}"
