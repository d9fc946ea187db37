from __future__ import annotations

import random
import threading
import time

import cv2
import numpy as np
import pytest
import structlog.testing

from linewatch.contract import parse_frame_record
from linewatch.errors import ConfigError
from linewatch.backoff import Backoff
from producer.capture import (
    CameraCapture,
    CaptureOptions,
    FrameQueues,
    OutgoingFrame,
    effective_fps,
    encode_frame,
)
from producer.metrics import ProducerMetrics
from producer.settings import CameraSpec
from producer.sources import SyntheticSource

from producer_helpers import FlakySource

DROPPED = "linewatch_producer_frames_dropped_total"


def frame(camera: str, seq: int) -> OutgoingFrame:
    return OutgoingFrame(camera, seq, b"x", [])


def test_drop_oldest_counts_every_drop_and_keeps_the_newest() -> None:
    metrics = ProducerMetrics()
    queues = FrameQueues(["a", "b"], maxsize=2, policy="drop_oldest", metrics=metrics)
    stop = threading.Event()
    for seq in range(5):
        assert queues.put(frame("a", seq), stop)
    queues.put(frame("b", 0), stop)
    assert metrics.value(DROPPED, "a") == 3 and metrics.value(DROPPED, "b") == 0
    assert metrics.value("linewatch_producer_queue_depth", "a") == 2
    got = [queues.get(0.01) for _ in range(4)]
    assert [(f.camera, f.seq) for f in got if f] == [("a", 3), ("b", 0), ("a", 4)]
    assert got[3] is None and queues.pending() == 0


def test_drops_are_logged_rate_limited() -> None:
    queues = FrameQueues(["a"], maxsize=1, policy="drop_oldest", metrics=ProducerMetrics())
    stop = threading.Event()
    with structlog.testing.capture_logs() as logs:
        for seq in range(50):
            queues.put(frame("a", seq), stop)
    drops = [entry for entry in logs if entry["event"] == "frame_dropped"]
    assert len(drops) == 1  # 49 drops, one log line in the interval; the counter has them all
    assert drops[0]["camera"] == "a" and drops[0]["reason"] == "queue_full"


def test_block_policy_waits_for_the_sender_and_counts_frames_abandoned_on_stop() -> None:
    metrics = ProducerMetrics()
    queues = FrameQueues(["a"], maxsize=1, policy="block", metrics=metrics)
    stop = threading.Event()
    queues.put(frame("a", 0), stop)
    done: list[bool] = []
    putter = threading.Thread(target=lambda: done.append(queues.put(frame("a", 1), stop)))
    putter.start()
    time.sleep(0.15)
    assert not done  # blocked: the queue is full
    assert queues.get(0.1).seq == 0  # type: ignore[union-attr]
    putter.join(2)
    assert done == [True] and metrics.value(DROPPED, "a") == 0
    stop.set()
    assert queues.put(frame("a", 2), stop) is False  # full and stopping: abandoned, and counted
    assert metrics.value(DROPPED, "a") == 1


def test_round_robin_does_not_starve_a_camera() -> None:
    queues = FrameQueues(["a", "b"], maxsize=100, policy="drop_oldest", metrics=ProducerMetrics())
    stop = threading.Event()
    for seq in range(10):
        queues.put(frame("a", seq), stop)
    queues.put(frame("b", 0), stop)
    first_two = {queues.get(0.01).camera for _ in range(2)}  # type: ignore[union-attr]
    assert first_two == {"a", "b"}


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5
    jittered = Backoff(1.0, 8.0, jitter=0.25, rng=random.Random(1))
    delays = [jittered.next() for _ in range(5)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8], strict=True):
        assert 0.75 * base <= delay <= base
    with pytest.raises(ConfigError):
        Backoff(2.0, 1.0)


@pytest.mark.parametrize("encoding", ["jpeg", "png", "raw"])
def test_encode_round_trip(encoding: str) -> None:
    image = SyntheticSource("synthetic://?seed=1&width=64&height=48").read().image  # type: ignore[union-attr]
    data = encode_frame(image, encoding, jpeg_quality=95)
    if encoding == "raw":
        decoded = np.frombuffer(data, np.uint8).reshape(48, 64, 3)
    else:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    tolerance = 6 if encoding == "jpeg" else 0
    assert np.abs(decoded.astype(int) - image.astype(int)).mean() <= tolerance


def test_effective_fps() -> None:
    source = SyntheticSource("synthetic://?seed=1")
    assert effective_fps(CameraSpec(id="a", source="x"), source, 0) == 10.0  # the source's own
    assert effective_fps(CameraSpec(id="a", source="x", fps=3), source, 0) == 3
    assert effective_fps(CameraSpec(id="a", source="x", fps=0), source, 0) == 0  # unpaced
    assert effective_fps(CameraSpec(id="a", source="x", fps=3), source, 25) == 25  # override wins


def run_capture(
    source: FlakySource, options: CaptureOptions, timeout: float = 10.0
) -> tuple[CameraCapture, list[OutgoingFrame], ProducerMetrics]:
    metrics = ProducerMetrics()
    queues = FrameQueues(["cam"], maxsize=1000, policy="block", metrics=metrics)
    capture = CameraCapture(CameraSpec(id="cam", source="fake", fps=0), source, queues, options, metrics, threading.Event())
    capture.start()
    capture.join(timeout)
    assert not capture.is_alive() and capture.error is None
    frames = []
    while (f := queues.get(0.0)) is not None:
        frames.append(f)
    return capture, frames, metrics


def test_capture_reconnects_with_backoff_and_keeps_seq_contiguous() -> None:
    source = FlakySource(open_failures=2, lose_at=(3, 4, 9))
    options = CaptureOptions(encoding="png", max_frames=10, backoff_min_s=0.01, backoff_max_s=0.04)
    capture, frames, metrics = run_capture(source, options)
    assert [f.seq for f in frames] == list(range(10))
    # 2 failed initial opens retried, then 3 losses (reads 3, 4 and 9), each reopened once.
    assert metrics.value("linewatch_producer_reconnects_total", "cam") == 5
    assert source.opens == 6
    for f in frames:
        meta = parse_frame_record(b"cam", f.headers)
        assert (meta.camera, meta.seq, meta.encoding, meta.width, meta.height) == ("cam", f.seq, "png", 48, 32)


def test_capture_survives_any_source_or_encoder_failure() -> None:
    source = FlakySource(crash_at=(2,), bad_frame_at=(5,))
    options = CaptureOptions(encoding="jpeg", max_frames=6, backoff_min_s=0.01, backoff_max_s=0.02)
    capture, frames, metrics = run_capture(source, options)
    assert [f.seq for f in frames] == list(range(6))  # the camera thread lived on through both
    assert metrics.value("linewatch_producer_camera_errors_total", "cam") == 2
    assert metrics.value("linewatch_producer_reconnects_total", "cam") == 2 and source.opens == 3


def test_capture_ends_with_a_finite_source_and_resizes() -> None:
    source = FlakySource(frames=4)
    options = CaptureOptions(encoding="raw", resize=(24, 16))
    _, frames, metrics = run_capture(source, options)
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert all(len(f.value) == 24 * 16 * 3 for f in frames)
    assert metrics.value("linewatch_producer_frames_captured_total", "cam") == 4


def test_capture_paces_to_the_requested_rate() -> None:
    source = FlakySource()
    options = CaptureOptions(encoding="raw", max_frames=6, target_fps=50.0)
    start = time.monotonic()
    run_capture(source, options)
    assert time.monotonic() - start >= 5 / 50 * 0.9  # 6 frames at 50 fps span 5 periods


def test_capture_stops_promptly_while_reconnecting() -> None:
    metrics = ProducerMetrics()
    queues = FrameQueues(["cam"], maxsize=10, policy="block", metrics=metrics)
    stop = threading.Event()
    source = FlakySource(open_failures=10**6)
    options = CaptureOptions(backoff_min_s=5.0, backoff_max_s=5.0)
    capture = CameraCapture(CameraSpec(id="cam", source="fake"), source, queues, options, metrics, stop)
    capture.start()
    time.sleep(0.1)
    stop.set()
    capture.join(2.0)
    assert not capture.is_alive()


def test_discard_counts_what_a_stop_throws_away() -> None:
    metrics = ProducerMetrics()
    queues = FrameQueues(["a", "b"], maxsize=10, policy="drop_oldest", metrics=metrics)
    stop = threading.Event()
    for seq in range(3):
        queues.put(frame("a", seq), stop)
    queues.put(frame("b", 0), stop)
    assert queues.discard() == 4 and queues.pending() == 0
    assert metrics.value(DROPPED, "a") == 3 and metrics.value(DROPPED, "b") == 1
