"""How a failed output is named: the kind of error (retry, refuse, dead-letter) and its cause."""

from __future__ import annotations

import time

from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError, UnknownTopicOrPartitionError

from linewatch.errors import OutputRefused, OutputUnavailable
from worker.sinks import kafka_error
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
