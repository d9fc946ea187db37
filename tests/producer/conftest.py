"""Fixtures of the producer tests. Integration tests need the real broker: they fail, never skip."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from producer.settings import ProducerSettings

BOOTSTRAP = os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(autouse=True)
def _no_camera_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's LW_CAMERAS must not leak into tests that build settings themselves.
    monkeypatch.delenv("LW_CAMERAS", raising=False)
    monkeypatch.delenv("LW_METRICS_PORT", raising=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"Kafka broker {BOOTSTRAP} not reachable ({exc}): start it with deploy/local/services.sh")
    return BOOTSTRAP


@pytest.fixture
def kafka_producer_settings(kafka_bootstrap: str) -> ProducerSettings:
    """Producer settings on the real broker with a topic base of its own."""
    return ProducerSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_base=f"test-producer-{uuid.uuid4().hex[:10]}",
        metrics_port=0,
        log_json=False,
    )
