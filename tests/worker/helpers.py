"""Helpers of the pipeline tests: workers in-process or as real processes, reading results back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import redis
from pydantic import SecretStr

from worker.app import Worker
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]

try:
    import confluent_kafka  # noqa: F401 - the `rdkafka` extra (in dev): LW_KAFKA_CONSUMER=confluent
    _NO_RDKAFKA = ""
except ImportError:
    _NO_RDKAFKA = "confluent-kafka is not installed"
# The worker's consumer clients (WorkerSettings.kafka_consumer), for tests that must hold for each.
CONSUMERS = ["kafka-python", pytest.param("confluent", marks=pytest.mark.skipif(bool(_NO_RDKAFKA), reason=_NO_RDKAFKA))]


@contextmanager
def running_worker(settings: WorkerSettings) -> Iterator[Worker]:
    """A worker in a thread of this process; drained and stopped on exit."""
    worker = Worker(settings)
    worker.start()
    thread = threading.Thread(target=worker.run, name=f"worker-{settings.worker_id}", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(timeout=90)
        assert not thread.is_alive(), "worker did not stop within 90 s"


def worker_process(settings: WorkerSettings, log_path: Path) -> subprocess.Popen:
    """A worker as a real process (`python -m worker.app`), configured only by LW_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    secrets = {name for name, value in settings if isinstance(value, SecretStr)}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name in secrets:  # the JSON dump masks secrets: pass the real value
            value = getattr(settings, name).get_secret_value()
        env[f"LW_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "worker.app"], cwd=REPO, env=env,
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )


def history(client: redis.Redis, prefix: str, camera: str) -> list[dict[str, str]]:
    return [
        {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
        for entry_id, fields in client.xrange(f"{prefix}:history:{camera}")
    ]


def wait_for_results(client: redis.Redis, prefix: str, cameras: list[str], expected: int, timeout_s: float = 120) -> int:
    """Wait until the cameras' history streams hold `expected` entries in all; return what they hold."""
    deadline = time.monotonic() + timeout_s
    total = 0
    while time.monotonic() < deadline:
        total = sum(client.xlen(f"{prefix}:history:{c}") for c in cameras)
        if total >= expected:
            return total
        time.sleep(0.2)
    return total
