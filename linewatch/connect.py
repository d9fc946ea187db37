"""Connecting to Kafka and Redis at start-up, with errors that name the cause.

kafka-python retries a failed bootstrap until its timeout and then raises only "Unable to
bootstrap"; the cause (bad credentials, an untrusted certificate, plaintext spoken to a TLS port)
appears in its log lines as it retries. `kafka_connecting` records those lines while a client is
made and turns the failure into a ServiceUnavailable that says what went wrong and which setting
to check. `check_redis` does the same for Redis with one PING. Neither message holds a secret:
kafka-python and redis-py name users and hosts, never passwords, and URLs are shown redacted.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from kafka.errors import KafkaError

from linewatch.errors import ServiceUnavailable
from linewatch.settings import KafkaSettings, RedisSettings

_AUTH = "authentication failed: wrong user name or password (LW_KAFKA_SASL_USERNAME, LW_KAFKA_SASL_PASSWORD)"
# (fragments of kafka-python's messages, what they mean); the first match of the newest line wins.
_KAFKA_CAUSES = (
    (("SaslAuthenticationFailed", "Authentication failed"), _AUTH),
    (("UnsupportedSaslMechanism",), "the broker does not offer this SASL mechanism (LW_KAFKA_SASL_MECHANISM)"),
    (("CERTIFICATE_VERIFY_FAILED",), "the broker's TLS certificate is not trusted (LW_KAFKA_SSL_CAFILE)"),
    (("WRONG_VERSION_NUMBER", "record layer failure", "unknown protocol", "UNEXPECTED_EOF_WHILE_READING"),
     "the TLS handshake failed: is it a plaintext listener? (LW_KAFKA_SECURITY_PROTOCOL)"),
    (("Connection refused", "ECONNREFUSED"), "nothing listens there (LW_KAFKA_BOOTSTRAP)"),
)
# A TLS record read as a Kafka frame length: 0x15 (alert) or 0x16 (handshake), then version 3.x.
_TLS_FRAME = re.compile(r"Invalid frame length: (\d+)")
_TLS_ANSWER = "the broker answered in TLS: this listener needs SSL or SASL_SSL (LW_KAFKA_SECURITY_PROTOCOL)"
# A TLS listener often just hangs up on a plaintext client, without a TLS answer to recognise.
_HUNG_UP = "the broker hung up at once: does this listener need SSL or SASL_SSL? (LW_KAFKA_SECURITY_PROTOCOL)"
# After a refused login the broker closes the connection 100 ms later (connection.failed.authentication.
# delay.ms); a client that has not read the refusal by then sees only a hang-up. A hang-up once the
# broker's version is known (the API-versions exchange is done) on a SASL listener is that case.
_SASL_HANG_UP = re.compile(r"broker_version=\(\d.*socket disconnected")
# Lines that only say the bootstrap failed or waits: never the cause.
_GENERIC = ("Unable to bootstrap", "not ready; waiting")


class _Recorder(logging.Handler):
    """Keeps the last warnings and errors of kafka-python's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=2000)  # a 30 s bootstrap logs a few hundred

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except (TypeError, ValueError):  # a malformed log call of the library; keep its template
            self.lines.append(str(record.msg))


def explain_kafka(lines: list[str], protocol: str = "PLAINTEXT") -> str | None:
    """What kafka-python's recent log lines say went wrong (newest first), with the line that says
    it; else its newest specific line; None if there is none."""
    specific = [line for line in lines if not any(g in line for g in _GENERIC)]
    for line in reversed(specific):
        for fragments, meaning in _KAFKA_CAUSES:
            if any(f in line for f in fragments):
                return f"{meaning} [{line}]"
        match = _TLS_FRAME.search(line)
        if match and int(match.group(1)) >> 24 in (0x15, 0x16):
            return f"{_TLS_ANSWER} [{line}]"
    if not specific:
        return None
    if protocol.startswith("SASL"):
        for line in reversed(specific):
            if _SASL_HANG_UP.search(line):
                return f"{_AUTH}; the broker hung up during the login [{line}]"
    if "SSL" not in protocol and "socket disconnected" in specific[-1]:
        return f"{_HUNG_UP} [{specific[-1]}]"
    return specific[-1]


@contextmanager
def kafka_connecting(settings: KafkaSettings, who: str) -> Iterator[None]:
    """Make Kafka clients inside this block; a KafkaError becomes a ServiceUnavailable with the cause."""
    recorder = _Recorder()
    logger = logging.getLogger("kafka")
    logger.addHandler(recorder)
    try:
        yield
    except KafkaError as exc:
        cause = explain_kafka(list(recorder.lines), settings.kafka_security_protocol) or f"{type(exc).__name__}: {exc}"
        raise ServiceUnavailable(
            f"{who}: Kafka at {settings.kafka_bootstrap} ({settings.kafka_security_protocol}): {cause}"
        ) from exc
    finally:
        logger.removeHandler(recorder)


def explain_redis(exc: redis.RedisError, settings: RedisSettings) -> str:
    text = str(exc)
    tls = settings.redis_url.startswith("rediss://")
    if isinstance(exc, redis.AuthenticationError):
        return "authentication failed: wrong user name or password (LW_REDIS_USERNAME, LW_REDIS_PASSWORD or the URL's)"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "the Redis user may not run this command (its ACL)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "Redis's TLS certificate is not trusted (LW_REDIS_SSL_CA_CERTS)"
    if tls and ("WRONG_VERSION_NUMBER" in text or "record layer failure" in text):
        return "Redis did not answer in TLS: it is a plaintext port (use redis://)"
    if not tls and ("reset by peer" in text or "Connection closed" in text):
        return "Redis closed the plaintext connection: a TLS port needs rediss:// (LW_REDIS_URL)"
    if "Connection refused" in text:
        return "nothing listens there (LW_REDIS_URL)"
    return "no known cause"


def redis_client(settings: RedisSettings, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, **settings.redis_client_kwargs(), **kwargs)


def check_redis(settings: RedisSettings, who: str, timeout_s: float = 5.0) -> None:
    """PING Redis with the program's own credentials; ServiceUnavailable naming the cause if it fails."""
    client = redis_client(settings, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"{who}: cannot use Redis at {settings.redis_url_redacted}: {explain_redis(exc, settings)}; "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        client.close()
