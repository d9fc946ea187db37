"""Fakes and helpers shared by the producer tests (a module of its own: several conftest.py
files exist in the tree, so tests never import from conftest)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from kafka.future import Future

from producer.settings import CameraSpec, ProducerSettings
from producer.sources import CameraLost, SourceFrame
from testkit.topics import read_topic


def make_settings(**kwargs: Any) -> ProducerSettings:
    base: dict[str, Any] = {
        "cameras": [CameraSpec(id="cam-1", source="synthetic://?seed=1", fps=0)],
        "metrics_port": 0,
        "topic_base": "unit",
    }
    return ProducerSettings(**{**base, **kwargs})


class FakeMetadata:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeKafkaProducer:
    """Completes each send at once (or fails it when `fail(n)` says so), recording what was sent."""

    def __init__(self, fail: Any = None, delay_s: float = 0.0) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = fail or (lambda n: None)
        self.delay_s = delay_s
        self.flushed = self.closed = False
        self._lock = threading.Lock()

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None) -> Future:
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        with self._lock:
            n = len(self.records)
            self.records.append({"topic": topic, "key": key, "value": value, "headers": headers})
        future = Future()
        error = self.fail(n)
        if error is not None:
            future.failure(error)
        else:
            future.success(FakeMetadata(topic, 0, n))
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


class FlakySource:
    """A fake camera: fails to open `open_failures` times, loses the stream at the given reads."""

    live = False
    name = "flaky"

    def __init__(
        self, open_failures: int = 0, lose_at: tuple[int, ...] = (), frames: int | None = None,
        crash_at: tuple[int, ...] = (), bad_frame_at: tuple[int, ...] = (),
    ) -> None:
        self.open_failures = open_failures
        self.lose_at = set(lose_at)
        self.crash_at = set(crash_at)  # reads that raise something no camera driver is expected to raise
        self.bad_frame_at = set(bad_frame_at)  # reads that return a frame the encoder cannot encode
        self.frames = frames
        self.reads = 0
        self.served = 0
        self.opens = 0
        self.is_open = False

    @property
    def native_fps(self) -> float | None:
        return None

    def open(self) -> None:
        self.opens += 1
        if self.open_failures > 0:
            self.open_failures -= 1
            raise CameraLost("device busy")
        self.is_open = True

    def read(self) -> SourceFrame | None:
        assert self.is_open, "read on a closed source"
        self.reads += 1
        if self.reads in self.lose_at:
            raise CameraLost("stream ended unexpectedly")
        if self.reads in self.crash_at:
            raise ZeroDivisionError("a driver bug")
        if self.reads in self.bad_frame_at:
            return SourceFrame(np.zeros((0, 48, 3), np.uint8))  # an empty image: imencode raises
        if self.frames is not None and self.served >= self.frames:
            return None
        self.served += 1
        return SourceFrame(np.full((32, 48, 3), self.served % 256, np.uint8))

    def close(self) -> None:
        self.is_open = False


def consume_all(settings: ProducerSettings, expected: int, timeout_s: float = 60.0) -> list:
    """The producer's frames topic read back, as its own settings reach the broker."""
    return read_topic(settings.kafka_client_kwargs(), settings.topics.frames, expected, timeout_s,
                      max_partition_fetch_bytes=settings.kafka_max_message_bytes)
