"""Send side of the producer: one thread moves encoded frames from the queues to Kafka.

Delivery is asynchronous: every send gets a callback and an errback on its future, so a record
Kafka refuses (too large, broker gone past the retries) is counted and logged, never lost
silently. Callbacks run on kafka-python's I/O thread and must stay short.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol
from collections.abc import Callable

import structlog
from kafka.errors import KafkaError

from producer.capture import FrameQueues, OutgoingFrame
from linewatch.logs import RateLimitedLog
from producer.metrics import ProducerMetrics

log = structlog.get_logger("producer.sender")

AckCallback = Callable[[OutgoingFrame, Any], None]  # (frame, RecordMetadata)


class KafkaProducerLike(Protocol):
    """The part of kafka.KafkaProducer the producer uses (tests pass a fake)."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., headers: Any = ...) -> Any: ...

    def flush(self, timeout: float | None = ...) -> None: ...

    def close(self, timeout: float | None = ...) -> None: ...


class KafkaSender(threading.Thread):
    """Takes frames round-robin from the queues and sends them, key = camera id."""

    def __init__(
        self,
        producer: KafkaProducerLike,
        topic: str,
        queues: FrameQueues,
        metrics: ProducerMetrics,
        on_ack: AckCallback | None = None,
    ) -> None:
        super().__init__(name="kafka-sender", daemon=True)
        self.producer, self.topic, self.queues, self.metrics, self.on_ack = producer, topic, queues, metrics, on_ack
        self._finish = threading.Event()  # exit once the queues are empty (drain)
        self._abort = threading.Event()  # exit now (stop)
        self._lock = threading.Lock()
        self.in_flight = 0  # sent, not yet acknowledged or failed
        self._error_log = RateLimitedLog()
        self.error: BaseException | None = None

    def finish(self) -> None:
        """Send what is queued, then exit."""
        self._finish.set()

    def abort(self) -> None:
        self._abort.set()

    def run(self) -> None:
        try:
            while not self._abort.is_set():
                frame = self.queues.get(timeout=0.1)
                if frame is not None:
                    self._send(frame)
                elif self._finish.is_set() and self.queues.pending() == 0:
                    return
        except Exception as exc:  # thread boundary: record and log, never die silently
            self.error = exc
            log.exception("sender_failed")

    def _send(self, frame: OutgoingFrame) -> None:
        with self._lock:
            self.in_flight += 1
        try:
            future = self.producer.send(self.topic, value=frame.value, key=frame.camera.encode(), headers=frame.headers)
        except KafkaError as exc:  # e.g. metadata not available within max_block_ms
            self._failed(frame, exc)
            return
        future.add_callback(self._delivered, frame)
        future.add_errback(self._failed, frame)

    def _delivered(self, frame: OutgoingFrame, metadata: Any) -> None:
        with self._lock:
            self.in_flight -= 1
        self.metrics.sent.labels(frame.camera).inc()
        if self.on_ack is not None:
            self.on_ack(frame, metadata)

    def _failed(self, frame: OutgoingFrame, exc: BaseException) -> None:
        with self._lock:
            self.in_flight -= 1
        self.metrics.send_errors.labels(frame.camera).inc()
        suppressed = self._error_log.allow(f"{frame.camera}:{type(exc).__name__}")
        if suppressed is not None:
            log.warning(
                "frame_send_failed",
                camera=frame.camera,
                seq=frame.seq,
                bytes=len(frame.value),
                error=f"{type(exc).__name__}: {exc}",
                suppressed=suppressed,
                errors_total=int(self.metrics.value("linewatch_producer_send_errors_total", frame.camera)),
            )
