"""The consumer loop's intake rule: a full pipeline waits for acknowledgements, keeping what was
fetched; only one that stays full, or outputs that are down, pause the partitions. Small fakes
stand in for the Kafka input and the checkpoint (pure logic: no broker involved)."""

from __future__ import annotations

import pytest

import worker.app as app
from linewatch.errors import OutputUnavailable
from worker.app import Worker
from worker.settings import WorkerSettings


class FakeInput:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_all(self) -> bool:
        fresh = not self.paused
        self.paused, self.pauses = True, self.pauses + fresh
        return fresh

    def resume_all(self) -> bool:
        was, self.paused = self.paused, False
        return was


class FakeCheckpoint:
    def __init__(self) -> None:
        self.frames = 0

    def in_flight(self) -> int:
        return self.frames


@pytest.fixture
def worker(tmp_path) -> Worker:
    w = Worker(WorkerSettings(model_root=tmp_path, inflight_frames=8))
    w.input, w.checkpoint = FakeInput(), FakeCheckpoint()  # type: ignore[assignment]
    return w


def test_a_full_pipeline_stops_polling_without_pausing(worker) -> None:
    worker.checkpoint.frames = 8
    assert worker._backpressure(now=100.0) is False
    assert worker._backpressure(now=100.0 + app.FULL_PAUSE_AFTER_S / 2) is False
    assert worker.input.pauses == 0  # what kafka-python fetched for these partitions stays
    worker.checkpoint.frames = 7
    assert worker._backpressure(now=101.5) is True


def test_a_pipeline_that_stays_full_pauses_then_resumes_when_it_drains(worker) -> None:
    worker.checkpoint.frames = 8
    assert worker._backpressure(now=100.0) is False
    assert worker._backpressure(now=100.1 + app.FULL_PAUSE_AFTER_S) is True  # polls go on, paused: rebalances complete
    assert worker.input.paused and worker.input.pauses == 1
    worker.checkpoint.frames = 0
    assert worker._backpressure(now=103.0) is True and not worker.input.paused
    worker.checkpoint.frames = 8  # full again: a fresh wait before any pause
    assert worker._backpressure(now=103.1) is False and worker.input.pauses == 1


def test_outputs_down_pause_at_once(worker) -> None:
    worker.health.down("redis", OutputUnavailable("redis: connection refused"))
    assert worker._backpressure(now=100.0) is True and worker.input.paused
    worker.health.up("redis")
    assert worker._backpressure(now=100.1) is True and not worker.input.paused
