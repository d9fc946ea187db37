"""Settings shared by every program: how to reach Kafka and Redis, and where things are named.

Each program (worker, producer, alert consumer, demo) has one pydantic-settings class of its own
that inherits these mixins (all built on BaseProgramSettings, so one prefix and config hold), so a connection option is defined once and read from the same
environment variable (prefix ``LW_``) by every program. ``check_environment`` rejects ``LW_*``
variables that no program knows, so a typo fails at start-up instead of being ignored (each
program's start-up, linewatch/startup.py, does it).

Settings that may hold a secret (passwords, a Redis URL with credentials) are declared with
``secret_field``: each can also be read from a file named by ``LW_<NAME>_FILE``, the way Kubernetes
secret mounts and Docker secrets provide them, and none is shown by ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from linewatch.contract import RedisKeys, Topics
from linewatch.errors import ConfigError

ENV_PREFIX = "LW_"
FILE_SUFFIX = "_FILE"
_FROM_FILE = "lw_from_file"  # json_schema_extra marker of fields that LW_<NAME>_FILE may set


def secret_field(default: Any, description: str, **kwargs: Any) -> Any:
    """A setting that may hold a secret: LW_<NAME>_FILE may name a file holding its value."""
    return Field(default, description=description, json_schema_extra={_FROM_FILE: True}, **kwargs)


def reads_from_file(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(_FROM_FILE))


def variable(name: str) -> str:
    """The environment variable of field `name`."""
    return f"{ENV_PREFIX}{name}".upper()


def known_variables(*classes: type[BaseSettings]) -> set[str]:
    """Every LW_* variable the classes read: one per field, plus LW_<NAME>_FILE for secret fields."""
    known = set()
    for cls in classes:
        for name, field in cls.model_fields.items():
            known.add(variable(name))
            if reads_from_file(field):
                known.add(variable(name) + FILE_SUFFIX)
    return known


def read_secret_file(var: str, path: str) -> str:
    """The file's text without its trailing newline. Errors name the variable and the path, never
    the content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{var}={path}: cannot read it ({reason})") from None
    text = text.rstrip("\r\n")
    if not text:
        raise ConfigError(f"{var}={path}: the file is empty")
    return text


class SecretFiles(PydanticBaseSettingsSource):
    """Values of secret fields from the files their LW_<NAME>_FILE variables name.

    Below the environment in priority, but a field set both ways is an error: which of two
    passwords was meant cannot be guessed.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.environ = {k.upper(): v for k, v in os.environ.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        var = variable(field_name) + FILE_SUFFIX
        path = self.environ.get(var) if reads_from_file(field) else None
        if path is None:
            return None, field_name, False
        if variable(field_name) in self.environ:
            raise ConfigError(f"{variable(field_name)} and {var} are both set: keep one")
        return read_secret_file(var, path), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                values[name] = value
        return values


class BaseProgramSettings(BaseSettings):
    """Base of every program's settings: LW_ prefix, unknown init keys rejected, secret files read."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_json: bool = Field(True, description="JSON log lines (structlog); false gives coloured console lines.")


class KafkaSettings(BaseProgramSettings):
    """How to reach Kafka; options are passed to kafka-python as they are."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic_base: str = Field(
        "linewatch",
        description="Base name of the topics: <base>.frames, <base>.alerts, <base>.results, <base>.frames.dlq.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = secret_field(None, "SASL user name.")
    kafka_sasl_password: SecretStr | None = secret_field(None, "SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers (SSL).")
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate for mutual TLS.")
    kafka_ssl_keyfile: str | None = Field(None, description="Client private key for mutual TLS.")
    kafka_max_message_bytes: int = Field(
        8 * 1024 * 1024,
        description="Largest frame record accepted, in bytes; must not exceed the broker's message.max.bytes.",
    )

    @property
    def topics(self) -> Topics:
        return Topics.from_base(self.topic_base)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments common to kafka-python's producer, consumer and admin."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()],
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_mechanism:
                raise ConfigError("LW_KAFKA_SASL_MECHANISM is required with a SASL protocol")
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                kwargs["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, f"kafka_{name}")
            if value:
                kwargs[name] = value
        return kwargs


class RedisSettings(BaseProgramSettings):
    """How to reach Redis and where linewatch's keys live."""

    # repr=False: a URL may hold a password; __repr_args__ shows it redacted.
    redis_url: str = secret_field(
        "redis://127.0.0.1:6379/0", "Redis URL; rediss:// for TLS, credentials may be in the URL.", repr=False
    )
    redis_username: str | None = secret_field(None, "Redis ACL user name (overrides the URL's).")
    redis_password: SecretStr | None = secret_field(None, "Redis password (overrides the URL's).")
    redis_ssl_ca_certs: str | None = Field(None, description="CA bundle to verify Redis over TLS.")
    redis_prefix: str = Field("lw", description="Prefix of every Redis key linewatch writes (see README: Redis keys).")

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.redis_prefix)

    @property
    def redis_url_redacted(self) -> str:
        """The URL with its password, if any, replaced by ***: fit for logs and messages."""
        return redact_url(self.redis_url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from super().__repr_args__()
        yield "redis_url", self.redis_url_redacted

    def redis_client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        if self.redis_ssl_ca_certs:
            kwargs["ssl_ca_certs"] = self.redis_ssl_ca_certs
        return kwargs


def redact_url(url: str) -> str:
    """`url` with the password of its user part replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def check_environment(*classes: type[BaseSettings], environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError for LW_* variables that none of `classes` defines (a typo, most likely)."""
    check_variables(known_variables(*classes), environ)


def check_variables(known: Collection[str], environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError for LW_* variables of `environ` (default: this process's) not in `known`."""
    environ = dict(os.environ if environ is None else environ)
    unknown = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
