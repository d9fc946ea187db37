"""Settings: one LW_ prefix for every program, typos rejected, README tables and the start-up's list of
variables generated from the classes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from linewatch.errors import ConfigError
from linewatch.program_variables import PROGRAM_VARIABLES
from linewatch.settings import KafkaSettings, RedisSettings, check_environment, known_variables
from linewatch.startup import check_program_environment, program_settings
from producer.settings import ProducerSettings
from programs.registry import program_classes
from programs.settings_doc import README, VARIABLES, spliced, variables_module
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


def test_readme_settings_tables_are_current() -> None:
    text = README.read_text()
    assert spliced(text) == text, "README settings drifted: run python -m programs.settings_doc --write"
    for cls in program_classes().values():
        for name in cls.model_fields:
            assert f"`LW_{name.upper()}`" in text


def test_the_start_up_list_of_variables_is_current() -> None:
    assert VARIABLES.read_text() == variables_module(), (
        "linewatch/program_variables.py drifted: run python -m programs.settings_doc --write"
    )
    assert PROGRAM_VARIABLES == known_variables(*program_classes().values())


def test_start_up_accepts_every_program_variable_and_its_own() -> None:
    """Any program's variable passes any program's check; a program's own passes even off the list."""
    check_program_environment(WorkerSettings, environ={"LW_VIEW_PORT": "1", "LW_CAMERAS": "synthetic:1", "HOME": "/"})
    with pytest.raises(ConfigError, match="LW_VIEW_PROT"):
        check_program_environment(WorkerSettings, environ={"LW_VIEW_PROT": "1"})

    class Newer(ProducerSettings):
        a_setting_not_yet_listed: int = 0

    check_program_environment(Newer, environ={"LW_A_SETTING_NOT_YET_LISTED": "1"})
    with pytest.raises(ConfigError, match="LW_A_SETTING_NOT_YET_LISTED"):
        check_program_environment(ProducerSettings, environ={"LW_A_SETTING_NOT_YET_LISTED": "1"})


@pytest.fixture
def program_logging() -> Iterator[None]:
    """A start-up configures logging on this test's stderr: undone afterwards, as pytest closes that stream."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_bad_settings_end_start_up_with_the_program_named(
    capsys: pytest.CaptureFixture[str], program_logging: None
) -> None:
    assert program_settings("linewatch-worker", WorkerSettings, {"max_batch": 0}) is None
    assert capsys.readouterr().err.startswith("linewatch-worker: bad settings: 1 validation error")
    assert program_settings("linewatch-producer", ProducerSettings, {"cameras": None}, check=ProducerSettings.check) is None
    assert capsys.readouterr().err == "linewatch-producer: bad settings: no cameras: set LW_CAMERAS (JSON list or synthetic:N)\n"
    settings = program_settings("linewatch-producer", ProducerSettings, {"cameras": "synthetic:2", "encoding": None})
    assert settings is not None and len(settings.cameras) == 2 and settings.encoding == ProducerSettings().encoding
