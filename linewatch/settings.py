"""Settings shared by every program: how to reach Kafka and Redis, and where things are named.

Each program (worker, producer, alert consumer, demo) has one pydantic-settings class of its own
that inherits these mixins (all built on BaseProgramSettings, so one prefix and config hold), so a connection option is defined once and read from the same
environment variable (prefix ``LW_``) by every program. ``check_environment`` rejects ``LW_*``
variables that no program knows, so a typo fails at start-up instead of being ignored.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from linewatch.contract import RedisKeys, Topics
from linewatch.errors import ConfigError

ENV_PREFIX = "LW_"


class BaseProgramSettings(BaseSettings):
    """Base of every program's settings: LW_ prefix, unknown init keys rejected."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_json: bool = Field(True, description="JSON log lines (structlog); false gives coloured console lines.")


class KafkaSettings(BaseProgramSettings):
    """How to reach Kafka; options are passed to kafka-python as they are."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic_base: str = Field(
        "linewatch",
        description="Base name of the topics: <base>.frames, <base>.alerts, <base>.frames.dlq.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
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

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis URL; rediss:// for TLS, credentials may be in the URL."
    )
    redis_username: str | None = Field(None, description="Redis ACL user name (overrides the URL's).")
    redis_password: SecretStr | None = Field(None, description="Redis password (overrides the URL's).")
    redis_ssl_ca_certs: str | None = Field(None, description="CA bundle to verify Redis over TLS.")
    redis_prefix: str = Field("lw", description="Prefix of every Redis key linewatch writes (see README: Redis keys).")

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.redis_prefix)

    def redis_client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        if self.redis_ssl_ca_certs:
            kwargs["ssl_ca_certs"] = self.redis_ssl_ca_certs
        return kwargs


def check_environment(*classes: type[BaseSettings], environ: dict[str, str] | None = None) -> None:
    """Raise ConfigError for LW_* variables that none of `classes` defines (a typo, most likely)."""
    environ = dict(os.environ if environ is None else environ)
    known = {f"{ENV_PREFIX}{name}".upper() for cls in classes for name in cls.model_fields}
    unknown = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
