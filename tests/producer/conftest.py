"""Fixtures of the producer tests, on top of tests/conftest.py (real broker, LW_* isolation).

Integration tests need the real broker: they fail, never skip (tests/conftest.py `kafka_bootstrap`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from producer.settings import ProducerSettings


@pytest.fixture
def kafka_producer_settings(kafka_bootstrap: str) -> Iterator[ProducerSettings]:
    """Producer settings on the real broker with a topic base of its own (topics not created yet)."""
    settings = ProducerSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_base=f"test-producer-{uuid.uuid4().hex[:10]}",
        metrics_port=0,
        log_json=False,
    )
    yield settings
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        mine = [t for t in (settings.topics.frames, settings.topics.alerts, settings.topics.dead_letter) if t in existing]
        if mine:
            admin.delete_topics(mine)
    except KafkaError:  # cleanup only: a leftover topic harms no other test
        pass
    finally:
        admin.close()
