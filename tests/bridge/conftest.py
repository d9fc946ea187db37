"""Fixtures of the bridge's tests: its settings on the test's topics, a private mosquitto."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kafka.admin import KafkaAdminClient

from bridge.settings import BridgeSettings
from tests.bridge.helpers import Mosquitto, free_port


@pytest.fixture
def bridge_settings(kafka_bootstrap: str, topic_base: str, tmp_path: Path) -> Iterator[Callable[..., BridgeSettings]]:
    """Builds BridgeSettings on the test's topics, reading from their start; keyword arguments override."""
    group = f"bridge-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> BridgeSettings:
        base: dict[str, Any] = dict(
            kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, bridge_group_id=group, bridge_from_beginning=True,
            bridge_http_port=0, bridge_retry_max_s=1.0, log_json=False, log_level="warning",
            opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/linewatch/", opcua_password="opc-pass-1",
            opcua_cert_dir=tmp_path / "opcua-server", mqtt_ack_timeout_s=3.0,
        )
        base.update(overrides)
        return BridgeSettings(**base)

    yield make
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([f"{topic_base}.bridge.dlq"])
    except Exception:  # noqa: BLE001 - cleanup only; the topic may not exist
        pass
    finally:
        admin.close()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
