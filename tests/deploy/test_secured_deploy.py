"""The secured deployment files (compose override, k8s component): every program has its own user,
reads its passwords from mounted files through LW_*_FILE, trusts the CA, and names only real
settings; no password is written in any of them."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from linewatch.settings import known_variables
from producer.settings import ProducerSettings
from bridge.alerts_consumer import AlertConsumerSettings
from view.settings import ViewSettings
from worker.settings import WorkerSettings

from .conftest import COMPOSE_DIR, K8S_DIR, ROOT, find, kustomize_resources, load_yaml_docs, pod_containers, read_env_file

PROGRAMS = (WorkerSettings, ProducerSettings, AlertConsumerSettings, ViewSettings)
KNOWN = known_variables(*PROGRAMS)
SECURED = K8S_DIR / "components" / "secured"
SERVICE_CLASS = {"worker": WorkerSettings, "producer": ProducerSettings, "alerts": AlertConsumerSettings,
                 "topics": ProducerSettings, "view": ViewSettings}
FILE_VARS = ("LW_KAFKA_SASL_PASSWORD_FILE", "LW_KAFKA_SASL_USERNAME_FILE", "LW_REDIS_PASSWORD_FILE", "LW_REDIS_USERNAME_FILE")
# What a written-out secret would look like: a password setting with a value of its own.
INLINE_SECRET = re.compile(r"^LW_(KAFKA_SASL_PASSWORD|REDIS_PASSWORD)=.+", re.MULTILINE)


def _settings_from(env: dict[str, str], cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The program's settings built from `env` as it would start, each mounted file replaced by a
    local one holding "pw" (the root conftest has cleared every other LW_* variable)."""
    for key, value in env.items():
        if key.endswith("_FILE"):
            local = tmp_path / value.strip("/").replace("/", "_")
            local.write_text("pw\n")
            value = str(local)
        if key.startswith("LW_"):
            monkeypatch.setenv(key, value)
    return cls()


# -- compose -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secure_compose() -> dict[str, Any]:
    return load_yaml_docs(COMPOSE_DIR / "docker-compose.secure.yml")[0]


def test_compose_override_only_adds_the_setup_service(secure_compose: dict[str, Any]) -> None:
    base = load_yaml_docs(COMPOSE_DIR / "docker-compose.yml")[0]
    assert set(secure_compose["services"]) - set(base["services"]) == {"security-setup"}


@pytest.mark.parametrize("service", ["producer", "worker", "alerts", "topics", "view"])
def test_compose_services_read_their_own_secrets_from_files(
    secure_compose: dict[str, Any], service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = secure_compose["services"][service]
    env: dict[str, str] = {}
    for name in spec["env_file"]:
        env.update(read_env_file(COMPOSE_DIR / name))  # later files win, as in compose
    assert not set(k for k in env if k.startswith("LW_")) - KNOWN
    assert not INLINE_SECRET.search("\n".join(f"{k}={v}" for k, v in env.items()))
    mounted = {f"/run/secrets/{name}" for name in spec["secrets"]}
    assert set(spec["secrets"]) <= set(secure_compose["secrets"])
    for key in [*FILE_VARS, "LW_KAFKA_SSL_CAFILE", "LW_REDIS_SSL_CA_CERTS"]:
        if key in env:
            assert env[key] in mounted, f"{service}: {key}={env[key]} is not one of its secrets"
    if service == "view":  # Redis only
        assert "LW_KAFKA_SASL_USERNAME" not in env and env["LW_REDIS_USERNAME"] == "lw-view"
        assert env["LW_REDIS_PASSWORD_FILE"] == "/run/secrets/redis-view-password"
        settings = _settings_from(env, SERVICE_CLASS[service], tmp_path, monkeypatch)
        assert settings.redis_client_kwargs()["ssl_ca_certs"] == "/run/secrets/ca"
        return
    role = "admin" if service == "topics" else service  # topics are created by the admin
    assert env["LW_KAFKA_SASL_USERNAME"] == f"lw-{role}"
    assert env["LW_KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/kafka-{role}-password"
    settings = _settings_from(env, SERVICE_CLASS[service], tmp_path, monkeypatch)
    kwargs = settings.kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_plain_password"] == "pw"
    assert kwargs["ssl_cafile"] == "/run/secrets/ca"
    if service == "worker":
        assert settings.redis_url.startswith("rediss://") and settings.redis_username == "lw-worker"
        assert settings.redis_client_kwargs()["ssl_ca_certs"] == "/run/secrets/ca"


def test_compose_secret_files_are_made_by_the_script(secure_compose: dict[str, Any]) -> None:
    script = (COMPOSE_DIR / "secrets.sh").read_text()
    made = {"ca.pem", "server-keystore.pem", "server.pem", "server.key", "redis-users.acl"}
    made |= {f"passwords/{name}" for name in re.search(r"for name in ([^;]+);", script).group(1).split()}
    for name, secret in secure_compose["secrets"].items():
        path = secret["file"]
        assert path.startswith(".run/secure/") and path.removeprefix(".run/secure/") in made, name


def test_compose_broker_and_redis_use_the_mounted_files(secure_compose: dict[str, Any]) -> None:
    props = dict(line.split("=", 1) for line in (COMPOSE_DIR / "kafka" / "secure.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    kafka = secure_compose["services"]["kafka"]
    mounted = {f"/run/secrets/{name}" for name in kafka["secrets"]}
    assert {props["ssl.keystore.location"], props["ssl.truststore.location"]} <= mounted
    assert "${dir:/run/secrets:kafka-admin-password}" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert "/run/secrets/kafka-admin-password" in mounted
    assert any(v.endswith("/etc/linewatch/kafka.properties:ro") for v in kafka["volumes"])
    redis_args = secure_compose["services"]["redis"]["command"]
    files = [redis_args[i + 1] for i, arg in enumerate(redis_args) if arg.endswith(("-file", "aclfile"))]
    assert files and set(files) <= {f"/run/secrets/{name}" for name in secure_compose["services"]["redis"]["secrets"]}
    assert redis_args[redis_args.index("--port") + 1] == "0"  # no plaintext port


# -- Kubernetes ----------------------------------------------------------------------------------

def _merge_by(base: list[dict[str, Any]], extra: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    merged = {item[key]: item for item in base}
    for item in extra:
        merged[item[key]] = {**merged.get(item[key], {}), **item}
    return list(merged.values())


def _apply(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The strategic merge kustomize does for these patches: env and volumes by name, mounts by path."""
    out = copy.deepcopy(doc)
    pod, extra = out["spec"]["template"]["spec"], patch["spec"]["template"]["spec"]
    pod["securityContext"] = {**pod.get("securityContext", {}), **extra.get("securityContext", {})}
    pod["volumes"] = _merge_by(pod.get("volumes", []), extra.get("volumes", []), "name")
    for change in extra["containers"]:
        (container,) = [c for c in pod["containers"] if c["name"] == change["name"]]
        container["env"] = _merge_by(container.get("env", []), change.get("env", []), "name")
        container["volumeMounts"] = _merge_by(container.get("volumeMounts", []), change.get("volumeMounts", []), "mountPath")
    return out


@pytest.fixture(scope="module")
def secured_docs() -> list[dict[str, Any]]:
    component = load_yaml_docs(SECURED / "kustomization.yaml")[0]
    assert component["kind"] == "Component"
    base = kustomize_resources()
    patched = []
    for entry in component["patches"]:
        if "path" in entry:
            (patch,) = load_yaml_docs(SECURED / entry["path"])
            patched.append(_apply(find(base, patch["kind"], patch["metadata"]["name"]), patch))
    return patched


def test_k8s_component_patches_every_program(secured_docs: list[dict[str, Any]]) -> None:
    names = {d["metadata"]["name"] for d in secured_docs}
    assert names == {"linewatch-worker", "linewatch-producer", "linewatch-alerts", "linewatch-topics", "linewatch-view"}


def test_k8s_programs_read_their_own_secret_files(secured_docs: list[dict[str, Any]]) -> None:
    config = read_env_file(K8S_DIR / "linewatch.env") | read_env_file(SECURED / "secured.env")
    assert not {k for k in config if k.startswith("LW_")} - KNOWN
    assert config["LW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and config["LW_REDIS_URL"].startswith("rediss://")
    for doc in secured_docs:
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert not {k for k in env if k.startswith("LW_")} - KNOWN
        assert not any(k in env for k in ("LW_KAFKA_SASL_PASSWORD", "LW_REDIS_PASSWORD"))  # files only
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        secret_dirs = {path for path, v in mounts.items() if "secret" in v}
        (credentials,) = [mounts[p]["secret"] for p in secret_dirs]
        assert credentials["secretName"] == f"{doc['metadata']['name']}-credentials"  # a Secret per program
        assert credentials["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 10001
        for key in FILE_VARS:
            if key in env:
                assert str(Path(env[key]).parent) in secret_dirs, key
        if doc["metadata"]["name"] == "linewatch-view":  # Redis only
            assert "LW_REDIS_PASSWORD_FILE" in env and not any(k.startswith("LW_KAFKA") for k in env)
        else:
            assert "LW_KAFKA_SASL_PASSWORD_FILE" in env
        for ca in (config["LW_KAFKA_SSL_CAFILE"], config["LW_REDIS_SSL_CA_CERTS"]):
            assert "configMap" in mounts[str(Path(ca).parent)]
        if doc["metadata"]["name"] == "linewatch-worker":
            assert "LW_REDIS_PASSWORD_FILE" in env


def test_k8s_patched_objects_validate(secured_docs: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev extra)")
    for doc in secured_docs:
        kv.validate(doc, kv.latest_version(), strict=True)


def test_k8s_keda_reads_lag_as_the_worker(secured_docs: list[dict[str, Any]]) -> None:
    (auth,) = load_yaml_docs(SECURED / "trigger-authentication.yaml")
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert {"sasl", "tls", "username", "password", "ca"} <= set(refs)
    assert {ref["name"] for ref in refs.values()} == {"linewatch-worker-credentials"}
    component = load_yaml_docs(SECURED / "kustomization.yaml")[0]
    (keda,) = [p for p in component["patches"] if "target" in p]
    find(kustomize_resources(), keda["target"]["kind"], keda["target"]["name"])
    assert auth["metadata"]["name"] in keda["patch"]


def test_no_password_in_any_deployment_file() -> None:
    files = [*COMPOSE_DIR.rglob("*.env"), *COMPOSE_DIR.rglob("*.yml"), *COMPOSE_DIR.rglob("*.properties"),
             *K8S_DIR.rglob("*.env"), *K8S_DIR.rglob("*.yaml")]
    assert len(files) > 10
    for path in files:
        text = path.read_text()
        assert not INLINE_SECRET.search(text), path
        assert not re.search(r'password="[^$"]', text), path  # JAAS passwords come from files


def test_generated_secrets_are_ignored_by_git() -> None:
    """Where secrets.sh and the compose script put certificates, keys and passwords, git looks away."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [".run/secure/ca.key", ".run/secure/passwords/kafka-admin", ".run/kafka-secure/secure.properties",
             "deploy/compose/.run/secure/server.key", "deploy/compose/.run/secure/passwords/redis-worker",
             "somewhere/else/server.pem"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True, check=False)
    assert sorted(result.stdout.split()) == sorted(paths)


def test_compose_override_health_checks_replace_the_base_ones(secure_compose: dict[str, Any]) -> None:
    """Strings in both files, not lists: podman-compose 1.0.3 appends an override's list to the base
    file's (the secured broker's check became `python3 probe.py 9092 CMD-SHELL ...`, always
    unhealthy) and cannot merge a string into a list."""
    base = load_yaml_docs(COMPOSE_DIR / "docker-compose.yml")[0]["services"]
    for name in ("kafka", "redis"):
        test = secure_compose["services"][name]["healthcheck"]["test"]
        assert isinstance(test, str) and isinstance(base[name]["healthcheck"]["test"], str), name
    kafka = secure_compose["services"]["kafka"]
    assert "/run/secrets/ca" in kafka["healthcheck"]["test"] and "ca" in kafka["secrets"]
