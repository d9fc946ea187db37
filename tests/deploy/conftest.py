"""Loaders for the deployment files: env files, compose, kustomize resources, the Dockerfile.

No Docker and no cluster: the files are read as data and checked against the programs' own
settings classes, metric definitions and console scripts, so a rename in the code breaks a test
here instead of a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
K8S_DIR = ROOT / "deploy" / "k8s"
KUBE_DIR = ROOT / "deploy" / "podman" / "kube"  # the base run with podman kube play


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped (as compose and kustomize read them)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        env[key.strip()] = value
    return env


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomize_resources(directory: Path = K8S_DIR) -> list[dict[str, Any]]:
    """The kustomization's resources with its namespace applied (generators are read separately)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs = []
    for name in kust["resources"]:
        for doc in load_yaml_docs(directory / name):
            if doc["kind"] != "Namespace" and "namespace" in kust:
                doc.setdefault("metadata", {})["namespace"] = kust["namespace"]
            docs.append(doc)
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return pod.get("initContainers", []) + pod["containers"]


def console_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """A JSON exec-form argument list, or the shell form split into words."""
    args = args.strip()
    return json.loads(args) if args.startswith("[") else shlex.split(args)
