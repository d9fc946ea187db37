"""Every LW_* variable the deployment files set is a real setting with a valid value, and the
values the files repeat (ports, topic, group, partitions) agree with one another."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import BaseModel

from linewatch.settings import check_environment, known_variables
from producer.settings import ProducerSettings
from bridge.alerts_consumer import AlertConsumerSettings
from view.settings import ViewSettings
from worker.settings import WorkerSettings

from .conftest import COMPOSE_DIR, K8S_DIR, kustomize_resources, load_yaml_docs, pod_containers, read_env_file

# What the programs themselves accept at start-up (worker/app.py and producer/app.py check these):
# a variable per field, and LW_<NAME>_FILE for the fields that may hold a secret.
PROGRAMS = (WorkerSettings, ProducerSettings, AlertConsumerSettings, ViewSettings)
KNOWN = known_variables(*PROGRAMS)

ENV_FILES = {
    "compose": COMPOSE_DIR / "linewatch.env",
    "k8s-config": K8S_DIR / "linewatch.env",
    "k8s-secrets": K8S_DIR / "secrets.env",
}


def _lw(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("LW_")}


@pytest.mark.parametrize("which", sorted(ENV_FILES))
def test_env_file_names_only_known_settings(which: str) -> None:
    env = read_env_file(ENV_FILES[which])
    unknown = sorted(set(_lw(env)) - KNOWN)
    assert not unknown, f"{which}: not settings of any program: {unknown}"
    check_environment(*PROGRAMS, environ=env)  # the programs' own start-up check


@pytest.mark.parametrize("which", ["compose", "k8s-config"])
@pytest.mark.parametrize("cls", PROGRAMS, ids=lambda c: c.__name__)
def test_env_file_values_validate(which: str, cls: type[BaseModel], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each program builds its settings from the file (a bad value fails here, not at deploy)."""
    for key, value in _lw(read_env_file(ENV_FILES[which])).items():
        monkeypatch.setenv(key, value)
    cls()


def _compose_environment_vars() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in COMPOSE_DIR.glob("docker-compose*.yml"):
        for doc in load_yaml_docs(path):
            for service in doc.get("services", {}).values():
                environment: Any = service.get("environment", {})
                if isinstance(environment, list):
                    environment = dict(item.partition("=")[::2] for item in environment)
                found.update({k: str(v) for k, v in environment.items()})
    return found


def _k8s_container_env() -> dict[str, str]:
    found: dict[str, str] = {}
    docs = kustomize_resources() + load_yaml_docs(K8S_DIR / "tools" / "models-cli.yaml")
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job", "Pod", "StatefulSet"}:
            for container in pod_containers(doc):
                for item in container.get("env", []):
                    found[item["name"]] = str(item.get("value", ""))
    return found


def test_inline_environment_names_only_known_settings() -> None:
    inline = {**_compose_environment_vars(), **_k8s_container_env()}
    unknown = sorted(set(_lw(inline)) - KNOWN)
    assert not unknown, f"LW_* set inline that no program knows: {unknown}"


def test_compose_linewatch_services_share_one_env_file() -> None:
    compose = load_yaml_docs(COMPOSE_DIR / "docker-compose.yml")[0]
    for name in ("topics", "model-init", "producer", "worker", "alerts"):
        service = compose["services"][name]
        assert service.get("env_file") == ["linewatch.env"], name
        assert not _lw({k: str(v) for k, v in service.get("environment", {}).items()}), (
            f"{name} sets LW_* inline: keep them in linewatch.env"
        )


def test_no_lw_setting_in_dockerfile() -> None:
    from .conftest import dockerfile_instructions

    for instr, args in dockerfile_instructions():
        if instr == "ENV":
            assert "LW_" not in args, f"settings come from the environment only, not the image: {args}"


def _value(env: dict[str, str], cls: type[BaseModel], field: str) -> Any:
    """The setting as the program would read it: the env file's value, else the class default."""
    key = f"LW_{field.upper()}"
    if key in env:
        return type(cls.model_fields[field].default)(env[key]) if cls.model_fields[field].default is not None else env[key]
    return cls.model_fields[field].default


def effective(which: str, cls: type[BaseModel], field: str) -> Any:
    return _value(read_env_file(ENV_FILES[which]), cls, field)


def test_effective_helper_reads_defaults() -> None:
    assert _value({}, WorkerSettings, "http_port") == 8080
    assert _value({"LW_HTTP_PORT": "9000"}, WorkerSettings, "http_port") == 9000
    assert os.environ.get("LW_HTTP_PORT") is None  # the root conftest clears LW_* for every test
