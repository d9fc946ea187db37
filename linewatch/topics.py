"""Create linewatch's Kafka topics (frames, alerts, results, dead letters) if they are missing.

Idempotent: topics that already exist are left as they are (a warning says so when they have
fewer partitions than asked for; partitions are never changed behind an operator's back).
Kafka's admin exceptions are translated here into linewatch's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from linewatch.connect import kafka_connecting
from linewatch.errors import ConfigError, ServiceUnavailable
from linewatch.settings import KafkaSettings

log = structlog.get_logger("linewatch.topics")

# Room for record-batch overhead and headers above the largest frame (the DLQ adds headers too).
_MESSAGE_HEADROOM_BYTES = 64 * 1024


def ensure_topics(
    settings: KafkaSettings, partitions: int, replication_factor: int = 1, timeout_s: float = 30.0
) -> None:
    """Make sure <base>.frames, .alerts, .results and .frames.dlq exist; wait until they have leaders."""
    if partitions < 1 or replication_factor < 1:
        raise ConfigError(f"partitions and replication factor must be >= 1 ({partitions}, {replication_factor})")
    topics = settings.topics
    max_bytes = str(settings.kafka_max_message_bytes + _MESSAGE_HEADROOM_BYTES)
    wanted = {
        topics.frames: {"max.message.bytes": max_bytes},
        topics.alerts: {},
        topics.results: {},
        topics.dead_letter: {"max.message.bytes": max_bytes},
    }
    ensure_named_topics(settings, wanted, partitions, replication_factor, timeout_s)


def ensure_named_topics(
    settings: KafkaSettings, wanted: dict[str, dict[str, str]], partitions: int, replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Make sure the topics named in `wanted` (name -> topic configs) exist; wait until they have leaders."""
    with kafka_connecting(settings, "creating topics"):
        admin = KafkaAdminClient(
            **settings.kafka_client_kwargs(), client_id="linewatch-topics", request_timeout_ms=int(timeout_s * 1000)
        )
    try:
        for name, configs in wanted.items():
            _create_one(admin, name, partitions, replication_factor, configs, timeout_s)
        admin.wait_for_topics(list(wanted), timeout_ms=int(timeout_s * 1000))
        _warn_if_fewer_partitions(admin, list(wanted), partitions)
    except KafkaError as exc:
        raise ServiceUnavailable(f"creating topics {', '.join(wanted)}: {exc}") from exc
    finally:
        admin.close()


def _create_one(
    admin: KafkaAdminClient, name: str, partitions: int, replication: int, configs: dict[str, str], timeout_s: float
) -> None:
    spec = {name: {"num_partitions": partitions, "replication_factor": replication, "configs": configs}}
    result = admin.create_topics(spec, timeout_ms=int(timeout_s * 1000), raise_errors=False)
    for topic in result.get("topics", ()):
        error = for_code(topic["error_code"])
        if topic["error_code"] == 0:
            log.info("topic_created", topic=name, partitions=partitions, replication_factor=replication)
        elif error is TopicAlreadyExistsError:
            log.debug("topic_exists", topic=name)
        else:
            raise ServiceUnavailable(f"cannot create topic {name}: {error.__name__} {topic.get('error_message') or ''}")


def _warn_if_fewer_partitions(admin: KafkaAdminClient, names: list[str], partitions: int) -> None:
    for topic in admin.describe_topics(names):
        have = len(topic.get("partitions", ()))
        if have < partitions:
            name = topic.get("name", topic.get("topic"))  # kafka-python 3 says "name", 2.x "topic"
            log.warning("topic_has_fewer_partitions", topic=name, partitions=have, wanted=partitions)


def await_partitions(consumer: Any, topic: str, stop: threading.Event, timeout_s: float = 60.0) -> set[int]:
    """The topic's partitions in the consumer's metadata, waiting for a topic that does not exist yet
    (a program started before the topics one-shot). Empty when `stop` is set first;
    ServiceUnavailable when the topic is still missing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    parts = consumer.partitions_for_topic(topic)
    while not parts:
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(f"topic {topic} not found within {timeout_s:.0f} s (create the topics first)")
        if stop.wait(0.5):
            return set()
        parts = consumer.partitions_for_topic(topic)
    return set(parts)
