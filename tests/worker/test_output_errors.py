"""How a failed output is named: the kind of error (retry, refuse, dead-letter) and its cause."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError, UnknownTopicOrPartitionError

from linewatch.errors import OutputRefused, OutputUnavailable
from worker.sinks import KafkaSender, KafkaTopicCheck, OutRecord, kafka_error
from worker.supervision import OutputHealth


def test_a_send_timing_out_on_a_deleted_topic_names_the_topic() -> None:
    # The record's future times out ("Timeout after waiting for 0.0 secs"): no word of metadata in it.
    late = KafkaTimeoutError("Timeout after waiting for 0.0 secs.")
    refused = kafka_error(late, "line.alerts", lambda topic: False)
    assert isinstance(refused, OutputRefused) and "topic line.alerts does not exist" in str(refused)
    unknown = kafka_error(UnknownTopicOrPartitionError(), "line.alerts", lambda topic: False)
    assert isinstance(unknown, OutputRefused)


def test_a_timeout_with_the_topic_present_or_unknown_is_transient() -> None:
    late = KafkaTimeoutError("Timeout after waiting for 0.0 secs.")
    assert isinstance(kafka_error(late, "line.alerts", lambda topic: True), OutputUnavailable)
    assert isinstance(kafka_error(late, "line.alerts", lambda topic: None), OutputUnavailable)  # broker away


def test_not_authorised_is_refused_at_once() -> None:
    asked: list[str] = []
    error = kafka_error(TopicAuthorizationFailedError(), "line.alerts", lambda topic: asked.append(topic) or True)
    assert isinstance(error, OutputRefused) and "not authorised" in str(error) and asked == []


def test_a_write_waiting_for_an_answer_is_reported_until_answered() -> None:
    health = OutputHealth()
    health.sending("alerts")
    assert health.waiting(0.05) == []
    time.sleep(0.1)
    [(target, age)] = health.waiting(0.05)
    assert target == "alerts" and age >= 0.1
    health.answered("alerts")
    assert health.waiting(0.0) == []


@pytest.mark.integration
def test_a_send_to_a_topic_deleted_after_its_metadata_was_cached_is_named_before_the_timeout(kafka_bootstrap: str, topic_base: str) -> None:
    topic = f"{topic_base}.alerts"  # made by the fixture
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # Without the early lookup the client itself would give the record up after 10 s
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, max_block_ms=10_000,
                             request_timeout_ms=5_000, delivery_timeout_ms=10_000)
    check = KafkaTopicCheck({"bootstrap_servers": kafka_bootstrap})
    try:
        sender = KafkaSender(producer, check, timeout_s=30.0, name_after_s=2.0)
        assert sender.send_all([OutRecord(topic, b"cam-1", b"{}")]) == [None]  # metadata now cached
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while check(topic) is not False and time.monotonic() < deadline:
            time.sleep(0.2)
        started = time.monotonic()
        [outcome] = sender.send_all([OutRecord(topic, b"cam-1", b"{}")])
        took = time.monotonic() - started
        assert isinstance(outcome, OutputRefused) and f"topic {topic} does not exist" in str(outcome)
        assert took < 8.0, took  # named after name_after_s plus a lookup, not at the client's 10 s or our 30 s
    finally:
        producer.close(timeout=20)  # the refused record waits in the producer until its delivery timeout
        check.close()
        admin.close()
