"""The librdkafka input's translation of linewatch's Kafka settings (pure: no broker).

Its behaviour on the real broker is tested with the kafka-python input's own tests, run for both
clients (CONSUMERS in tests/worker/helpers.py: test_poison.py, test_pipeline.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from worker.settings import WorkerSettings

pytest.importorskip("confluent_kafka")

from worker.kafka_input_rdkafka import rdkafka_config  # noqa: E402


def test_secured_settings_become_librdkafka_properties() -> None:
    settings = WorkerSettings(
        kafka_bootstrap="a:9093, b:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="worker", kafka_sasl_password=SecretStr("s3cret"), kafka_ssl_cafile="/ca.pem",
    )
    config = rdkafka_config(settings.kafka_client_kwargs(), {"group_id": "g", "session_timeout_ms": 6000})
    assert config == {
        "bootstrap.servers": "a:9093,b:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker", "sasl.password": "s3cret", "ssl.ca.location": "/ca.pem",
        "group.id": "g", "session.timeout.ms": 6000, "reconnect.backoff.max.ms": 1000,
    }


def test_a_fetch_larger_than_the_receive_buffer_raises_the_buffer() -> None:
    config = rdkafka_config({"bootstrap_servers": ["a:9092"]}, {"fetch_max_bytes": 200_000_000})
    assert config["receive.message.max.bytes"] >= 200_000_512


def test_an_unknown_keyword_is_not_passed_on() -> None:
    # librdkafka refuses unknown properties at start-up: only mapped names may pass.
    config = rdkafka_config({"bootstrap_servers": ["a:9092"], "api_version_auto_timeout_ms": 5}, {"max_poll_records": 9})
    assert config == {"bootstrap.servers": "a:9092"}
