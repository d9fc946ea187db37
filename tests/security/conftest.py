"""Fixtures of the security tests: the secured Kafka (SASL_SSL, SCRAM-SHA-512, ACLs) and Redis
(TLS, ACL users) of deploy/local/secure.sh, with topics, ACLs and Redis users of each test's own.

If this checkout's secured services run (`bash deploy/local/secure.sh start`), the tests use them
and leave them running. Otherwise the session starts a private pair with the same scripts, in a
temporary folder on free ports, and stops it at the end: CI needs no step of its own.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from linewatch.settings import KafkaSettings, RedisSettings
from linewatch.topics import ensure_topics
from testkit.services import free_port

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy" / "local"


def _load_policy() -> ModuleType:
    """deploy/local/secure_policy.py: the scripts' own ACL policy, not a copy of it."""
    spec = importlib.util.spec_from_file_location("secure_policy", LOCAL / "secure_policy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


policy = _load_policy()
Secured = policy.Secured


def _script(command: str, env: dict[str, str], timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LOCAL / "secure.sh"), command], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    env = dict(os.environ)
    own = _script("status", env, timeout_s=30)
    if own.returncode == 0:
        folder = subprocess.run(["bash", str(LOCAL / "secrets.sh"), "dir"], env=env, capture_output=True, text=True, check=True)
        yield Secured(
            Path(folder.stdout.strip()),
            f"127.0.0.1:{env.get('LW_KAFKA_SECURE_PORT', '9094')}",
            f"127.0.0.1:{env.get('LW_REDIS_SECURE_PORT', '6380')}",
            f"127.0.0.1:{env.get('LW_KAFKA_SECURE_CONTROLLER_PORT', '9095')}",
        )
        return
    run_dir = tmp_path_factory.mktemp("secured-services")
    kafka, controller, redis_port = free_port(), free_port(), free_port()
    env |= {
        "LW_RUN_DIR": str(run_dir), "LW_KAFKA_SECURE_PORT": str(kafka),
        "LW_KAFKA_SECURE_CONTROLLER_PORT": str(controller), "LW_REDIS_SECURE_PORT": str(redis_port),
    }
    started = time.monotonic()
    try:  # a start that times out may have started one of the pair: stop it too
        result = _script("start", env)
        if result.returncode != 0:
            pytest.fail(f"secured services did not start:\n{result.stdout}\n{result.stderr}")
        sys.stderr.write(f"\nsecured services started in {time.monotonic() - started:.1f}s (private, {run_dir})\n")
        yield Secured(run_dir / "secure", f"127.0.0.1:{kafka}", f"127.0.0.1:{redis_port}", f"127.0.0.1:{controller}")
    finally:
        _script("stop", env, timeout_s=60)


def settings_env(env: dict[str, str]) -> dict[str, object]:
    """LW_* variables as keyword arguments of a settings class (the *_FILE ones read here)."""
    kwargs: dict[str, object] = {}
    for key, value in env.items():
        name = key.removeprefix("LW_").lower()
        if name.endswith("_file"):
            kwargs[name.removesuffix("_file")] = Path(value).read_text().strip()
        else:
            kwargs[name] = value
    return kwargs


@dataclass(frozen=True)
class Names:
    """A test's own topics, groups and Redis key prefix on the secured services."""

    base: str
    worker_group: str
    alerts_group: str
    prefix: str


def admin_kafka_settings(secured: Secured, base: str) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap=secured.kafka, topic_base=base, kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=policy.ADMIN,
        kafka_sasl_password=secured.password("kafka", "admin"), kafka_ssl_cafile=str(secured.ca),
    )


def role_settings(secured: Secured, role: str, names: Names, cls: type = KafkaSettings, **overrides: object):
    """Settings of a program running as `role` on the test's topics and keys."""
    kwargs = settings_env(secured.env(role, names.prefix)) | overrides
    if issubclass(cls, KafkaSettings):
        kwargs.setdefault("topic_base", names.base)
    else:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("kafka_")}
    if not issubclass(cls, RedisSettings):
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("redis_")}
    return cls(**kwargs)


@pytest.fixture
def names(secured: Secured) -> Iterator[Names]:
    """Topics (2 partitions) with the policy's ACLs, and Redis users for a key prefix, all the
    test's own; removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    made = Names(f"sec-{tag}", f"sec-workers-{tag}", f"sec-alerts-{tag}", f"sec:{tag}")
    admin_settings = admin_kafka_settings(secured, made.base)
    ensure_topics(admin_settings, partitions=2)
    acls = policy.kafka_acls(made.base, made.worker_group, made.alerts_group)
    admin = secured.kafka_admin()
    redis_admin = secured.redis_admin()
    try:
        policy.grant_kafka(admin, acls)
        policy.grant_redis(secured, redis_admin, made.prefix)
        yield made
    finally:
        try:
            policy.revoke_kafka(admin, acls)
            topics = admin_settings.topics
            admin.delete_topics([topics.frames, topics.alerts, topics.dead_letter])
        except KafkaError:  # cleanup only: leftovers harm no other test (names are unique)
            pass
        finally:
            admin.close()
        keys = list(redis_admin.scan_iter(f"{made.prefix}:*", count=1000))
        if keys:
            redis_admin.delete(*keys)
        policy.revoke_redis(redis_admin, made.prefix)
        redis_admin.close()


def admin_send(secured: Secured, topic: str, value: bytes) -> None:
    """One record written as the admin (set-up, not under test)."""
    producer = KafkaProducer(**admin_kafka_settings(secured, "unused").kafka_client_kwargs())
    try:
        producer.send(topic, value).get(timeout=10)
    finally:
        producer.close()


def all_passwords(secured: Secured) -> list[str]:
    """Every password of the secured services: none may show in any output."""
    return [p.read_text().strip() for p in sorted((secured.dir / "passwords").iterdir())]


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with `tiny@production`: two training steps, enough to score frames (the tests
    set thresholds that make every frame anomalous, so the model's quality does not matter)."""
    from model_store.quick import train_quick
    from producer.synthetic import SyntheticCamera
    from programs.demo import DEMO_AE

    root = tmp_path_factory.mktemp("secure-models")
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (1, 2) for seq in range(8)]
    train_quick(frames, root, "tiny", seconds=60, steps=2, seed=0, kwargs=DEMO_AE)
    return root


def program_env(secured: Secured, role: str, names: Names, **extra: str) -> dict[str, str]:
    """The environment of a program run as `role`: this one's, minus any LW_*, plus the role's
    settings (passwords as *_FILE variables) on the test's topics and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    return env | secured.env(role, names.prefix) | {"LW_TOPIC_BASE": names.base, "PYTHONUNBUFFERED": "1"} | extra
