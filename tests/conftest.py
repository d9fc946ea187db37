"""Shared fixtures: the real Kafka broker and Redis, each test with topics and keys of its own.

Integration tests never skip when a service is missing: they fail, naming the start command.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from kafka.admin import KafkaAdminClient

from linewatch.settings import KafkaSettings
from linewatch.topics import ensure_topics
from worker.settings import WorkerSettings

BOOTSTRAP = os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
START_HINT = "start the services with: bash deploy/local/services.sh start"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's LW_* variables must not change what a test builds."""
    for name in list(os.environ):
        if name.startswith("LW_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"Kafka broker {BOOTSTRAP} not reachable ({exc}); {START_HINT}")
    return BOOTSTRAP


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis {REDIS_URL} not reachable ({exc}); {START_HINT}")
    return REDIS_URL


@pytest.fixture
def topic_base(kafka_bootstrap: str) -> str:
    """A fresh set of topics (<base>.frames with 4 partitions, .alerts, .results, .frames.dlq), deleted afterwards."""
    base = f"test-{uuid.uuid4().hex[:12]}"
    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_base=base)
    ensure_topics(settings, partitions=4)
    yield base
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        t = settings.topics
        admin.delete_topics([t.frames, t.alerts, t.results, t.dead_letter])
    except Exception:  # noqa: BLE001 - cleanup only; a leftover topic harms no other test
        pass
    finally:
        admin.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> str:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (a user's clone has none)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding `synth@production`: a small autoencoder really trained on synthetic normal frames."""
    from model_store.quick import train_quick
    from producer.synthetic import SyntheticCamera
    from programs.demo import DEMO_AE

    root = tmp_path_factory.mktemp("models")
    cache = os.environ.get("LINEWATCH_TEST_MODEL_CACHE")  # a developer's shortcut: train once, reuse
    if cache and (Path(cache) / "synth").is_dir():
        shutil.copytree(cache, root, dirs_exist_ok=True)
        return root
    import torch

    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (1, 2, 3, 4) for seq in range(500, 560)]
    # Steps, not seconds, and a fixed thread count: the same model whichever tests ran first (the
    # thread count changes the order of float sums, and 150 steps later a different model);
    # smoothed L2 map so masks outline the defect.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_quick(frames, root, "synth", seconds=3600, steps=150, seed=0, kwargs=DEMO_AE)
    finally:
        torch.set_num_threads(threads)
    if cache:
        shutil.copytree(root, cache, dirs_exist_ok=True)
    return root


@pytest.fixture
def worker_settings(kafka_bootstrap: str, redis_url: str, topic_base: str, redis_prefix: str, model_root: Path) -> Callable[..., WorkerSettings]:
    """Builds WorkerSettings on the test's topics and keys; keyword arguments override."""
    group = f"g-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> WorkerSettings:
        base: dict[str, Any] = dict(
            kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, redis_url=redis_url, redis_prefix=redis_prefix,
            model="synth@production", model_root=model_root, group_id=group, http_port=0, max_wait_ms=5,
            threshold_refresh_s=0.2, model_poll_s=0.5, log_json=False, log_level="warning", drain_timeout_s=30,
        )
        base.update(overrides)
        return WorkerSettings(**base)

    return make


