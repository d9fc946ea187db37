"""The bridge's dead-letter topic: records a sink refused for good, and records nobody can read.

Each keeps its original key and value, with lw-dlq-reason, lw-dlq-detail, lw-dlq-source (where it
was read) and lw-dlq-sink (which sink gave up). Sent synchronously: the runner commits past a
record only after Kafka confirmed its dead letter.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

from linewatch.contract import H_DLQ_DETAIL, H_DLQ_REASON, H_DLQ_SOURCE

H_DLQ_SINK = "lw-dlq-sink"


class DeadLetters:
    def __init__(self, producer: KafkaProducer, topic: str, timeout_s: float = 10.0) -> None:
        self.producer, self.topic, self.timeout_s = producer, topic, timeout_s

    def send(self, key: bytes | None, value: bytes, source: str, sink: str, reason: str, detail: str) -> Any:
        headers = [
            (H_DLQ_REASON, reason.encode()), (H_DLQ_DETAIL, detail[:512].encode("utf-8", "replace")),
            (H_DLQ_SOURCE, source.encode()), (H_DLQ_SINK, sink.encode()),
        ]
        return self.producer.send(self.topic, key=key, value=value, headers=headers).get(timeout=self.timeout_s)
