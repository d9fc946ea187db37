"""Settings: one LW_ prefix for every program, typos rejected, README tables generated from the classes."""

from __future__ import annotations

import pytest

from linewatch.errors import ConfigError
from linewatch.settings import KafkaSettings, RedisSettings, check_environment
from linewatch.settings_doc import README, program_classes, spliced
from worker.settings import WorkerSettings


def test_every_program_reads_the_same_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("LW_REDIS_PREFIX", "line7")
    monkeypatch.setenv("LW_MAX_BATCH", "4")
    for cls in program_classes().values():
        settings = cls()
        if isinstance(settings, KafkaSettings):
            assert settings.kafka_client_kwargs()["bootstrap_servers"] == ["broker-a:9092", "broker-b:9092"]
        if isinstance(settings, RedisSettings):
            assert settings.keys.latest("c") == "line7:latest:c"
    assert WorkerSettings().max_batch == 4


def test_a_misspelt_variable_stops_start_up() -> None:
    classes = tuple(program_classes().values())
    check_environment(*classes, environ={"LW_MAX_BATCH": "8", "PATH": "/bin"})
    with pytest.raises(ConfigError, match="LW_MAX_BACTH"):
        check_environment(*classes, environ={"LW_MAX_BACTH": "8"})


def test_unknown_keyword_is_rejected() -> None:
    with pytest.raises(ValueError):
        WorkerSettings(max_bacth=8)


def test_sasl_options_reach_the_kafka_client() -> None:
    settings = KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="/ca.pem")
    kwargs = settings.kafka_client_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["sasl_plain_password"] == "p"
    assert kwargs["ssl_cafile"] == "/ca.pem" and kwargs["security_protocol"] == "SASL_SSL"
    with pytest.raises(ConfigError):
        KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT").kafka_client_kwargs()


def test_every_kafka_client_gets_the_reconnect_bound() -> None:
    # A broker back after a restart is found within this bound by every client (docs/reliability.md).
    settings = KafkaSettings(kafka_reconnect_backoff_max_ms=2500)
    assert settings.kafka_client_kwargs()["reconnect_backoff_max_ms"] == 2500
    assert KafkaSettings().kafka_client_kwargs()["reconnect_backoff_max_ms"] == 1000
    with pytest.raises(ValueError):
        KafkaSettings(kafka_reconnect_backoff_max_ms=0)


def test_readme_settings_tables_are_current() -> None:
    text = README.read_text()
    assert spliced(text) == text, "README settings drifted: run python -m linewatch.settings_doc --write"
    for cls in program_classes().values():
        for name in cls.model_fields:
            assert f"`LW_{name.upper()}`" in text
