"""Secrets in settings: read from LW_<NAME>_FILE, never shown by repr, str, log lines or errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from linewatch.connect import check_redis
from linewatch.errors import ConfigError, ServiceUnavailable
from linewatch.logs import configure_logging
from linewatch.settings import KafkaSettings, RedisSettings, check_environment, known_variables, redact_url
from producer.settings import ProducerSettings
from programs.registry import program_classes
from bridge.alerts_consumer import AlertConsumerSettings
from worker.settings import WorkerSettings

PASSWORD = "pw-7f3a9c1e-never-print-me"
URL_PASSWORD = "url-pw-2b8d4e6f"


def _secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret of every program given the Kubernetes way: a mounted file per secret."""
    monkeypatch.setenv("LW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LW_KAFKA_SASL_PASSWORD_FILE", _secret_file(tmp_path, "kafka-password", PASSWORD + "\n"))
    monkeypatch.setenv("LW_KAFKA_SASL_USERNAME_FILE", _secret_file(tmp_path, "kafka-user", "lw-worker\n"))
    monkeypatch.setenv("LW_REDIS_PASSWORD_FILE", _secret_file(tmp_path, "redis-password", PASSWORD))
    url = f"rediss://lw-worker:{URL_PASSWORD}@127.0.0.1:1/0"
    monkeypatch.setenv("LW_REDIS_URL_FILE", _secret_file(tmp_path, "redis-url", url + "\r\n"))


def test_secrets_are_read_from_files(secrets_from_files: None) -> None:
    settings = WorkerSettings()
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD  # trailing newline dropped
    assert settings.kafka_sasl_username == "lw-worker"
    assert settings.redis_password.get_secret_value() == PASSWORD
    assert settings.redis_url == f"rediss://lw-worker:{URL_PASSWORD}@127.0.0.1:1/0"
    kwargs = settings.kafka_client_kwargs() | settings.redis_client_kwargs()
    assert kwargs["sasl_plain_password"] == PASSWORD and kwargs["password"] == PASSWORD


@pytest.mark.parametrize("cls", list(program_classes().values()), ids=lambda c: c.__name__)
def test_repr_and_str_hide_secrets(cls: type, secrets_from_files: None) -> None:
    settings = cls()
    for text in (repr(settings), str(settings), f"{settings}"):
        assert PASSWORD not in text and URL_PASSWORD not in text
    if isinstance(settings, RedisSettings):
        assert "rediss://lw-worker:***@127.0.0.1:1/0" in repr(settings)  # still says which Redis


@pytest.fixture
def program_logging() -> Iterator[None]:
    """configure_logging as a program calls it, undone afterwards (it binds this test's stderr)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_log_lines_hide_secrets(secrets_from_files: None, program_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", json=True)
    settings = WorkerSettings()
    structlog.get_logger("test").info("settings at start", settings=settings, redis=settings.redis_url_redacted)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["event"] == "settings at start"
    assert PASSWORD not in line and URL_PASSWORD not in line and "lw-worker:***@" in line


def test_failed_connection_error_hides_secrets(secrets_from_files: None) -> None:
    """Nothing listens on port 1: the error names the cause and the redacted URL, no password."""
    with pytest.raises(ServiceUnavailable) as failure:
        check_redis(WorkerSettings(), "test", timeout_s=2)
    text = "".join(str(e) for e in (failure.value, failure.value.__cause__))
    assert "nothing listens there" in text and "lw-worker:***@127.0.0.1:1" in text
    assert PASSWORD not in text and URL_PASSWORD not in text


def test_value_and_file_together_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_REDIS_PASSWORD", "a")
    monkeypatch.setenv("LW_REDIS_PASSWORD_FILE", _secret_file(tmp_path, "p", "b"))
    with pytest.raises(ConfigError, match="LW_REDIS_PASSWORD and LW_REDIS_PASSWORD_FILE are both set"):
        RedisSettings()


def test_unreadable_or_empty_file_names_the_variable_not_the_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("LW_KAFKA_SASL_PASSWORD_FILE", str(missing))
    with pytest.raises(ConfigError, match=f"LW_KAFKA_SASL_PASSWORD_FILE={missing}: cannot read it"):
        KafkaSettings()
    monkeypatch.setenv("LW_KAFKA_SASL_PASSWORD_FILE", _secret_file(tmp_path, "empty", "\n"))
    with pytest.raises(ConfigError, match="the file is empty"):
        KafkaSettings()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + PASSWORD.encode())
    monkeypatch.setenv("LW_KAFKA_SASL_PASSWORD_FILE", str(binary))
    with pytest.raises(ConfigError, match="not UTF-8") as failure:
        KafkaSettings()
    assert PASSWORD not in str(failure.value)


def test_only_secret_fields_take_a_file() -> None:
    programs = (WorkerSettings, ProducerSettings, AlertConsumerSettings)
    files = {name for name in known_variables(*programs) if name.endswith("_FILE")}
    assert files == {
        "LW_KAFKA_SASL_USERNAME_FILE", "LW_KAFKA_SASL_PASSWORD_FILE",
        "LW_REDIS_URL_FILE", "LW_REDIS_USERNAME_FILE", "LW_REDIS_PASSWORD_FILE",
    }
    check_environment(*programs, environ={"LW_REDIS_PASSWORD_FILE": "/run/secrets/redis"})
    with pytest.raises(ConfigError, match="LW_MAX_BATCH_FILE"):
        check_environment(*programs, environ={"LW_MAX_BATCH_FILE": "/tmp/x"})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:p%40ss@[::1]:6380/2", "rediss://user:***@[::1]:6380/2"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user@h:6379", "redis://user@h:6379"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
